//! Deterministic image layers: a sorted tar of files with fixed metadata, compressed
//! with gzip, hashed twice as it is written (the uncompressed digest is the layer's
//! `diff_id` in the config, the compressed one its digest in the manifest).
//!
//! Every entry has the mtime Docker gives files of a context this tool sends (so the
//! layer equals what `docker build` commits), the owner from `--chown` (else root), and
//! the mode from the context (0644, or 0755 for executables and directories) or from
//! `--chmod`. The gzip header carries no name and no time, so the same files give the
//! same digest on every machine.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};

use anyhow::{Context as _, Result, bail};
use camino::Utf8PathBuf;
use sha2::{Digest as _, Sha256};

use super::store::BlobStore;

/// The mtime of every entry: the context's (1980-01-01, see `xtask_engine::context`).
pub const LAYER_MTIME: u64 = 315_532_800;

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file of the build context, with the digest it was hashed with (checked as it
    /// is written, so a file edited since planning fails instead of being built).
    Context { path: Utf8PathBuf, digest: String },
    /// A file a dependency produced (covered by that dependency's input hash).
    Output { path: Utf8PathBuf },
}

/// What one layer entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryData {
    Dir,
    File(Content),
    Symlink(String),
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub data: EntryData,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// A layer as written: its digests and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayer {
    /// sha256 of the compressed blob (the manifest's layer digest).
    pub digest: String,
    /// sha256 of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
    pub size: u64,
}

/// Hashes what passes through.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `entries` (absolute paths without the leading `/`, sorted by the map) as one
/// layer into the store.
pub fn write_layer(store: &BlobStore, entries: &BTreeMap<String, Entry>) -> Result<WrittenLayer> {
    let mut tar = tar::Builder::new(compressing(store, 6)?);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, entry) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(LAYER_MTIME);
        h.set_uid(entry.uid);
        h.set_gid(entry.gid);
        h.set_mode(entry.mode);
        match &entry.data {
            EntryData::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), io::empty())?;
            }
            EntryData::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, path, target)?;
            }
            EntryData::File(content) => {
                let (src, expected) = match content {
                    Content::Context { path, digest } => (path, Some(digest)),
                    Content::Output { path } => (path, None),
                };
                let bytes = fs::read(src).with_context(|| format!("{src} is gone since it was hashed; run again"))?;
                if let Some(d) = expected
                    && &xtask_engine::filecache::hex(&Sha256::digest(&bytes)) != d
                {
                    bail!("{src} changed after it was hashed; run again so that its new content is hashed and built");
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(bytes.len() as u64);
                tar.append_data(&mut h, path, bytes.as_slice()).with_context(|| format!("failed to add {src} to a layer"))?;
            }
        }
    }
    let uncompressed = tar.into_inner().context("failed to finish a layer")?;
    store_compressed(store, uncompressed)
}

/// Copies an uncompressed layer tar (as `docker save` writes them) into the store,
/// compressed; returns its digests.
pub fn import_layer(store: &BlobStore, source: &mut dyn io::Read) -> Result<WrittenLayer> {
    // Level 1: a base is imported once, and its layers are large.
    let mut plain = compressing(store, 1)?;
    io::copy(source, &mut plain).context("failed to read a layer of the base image")?;
    store_compressed(store, plain)
}

/// A layer being written: a tar stream hashed as it goes in (the diff_id), compressed with
/// gzip (no name, no time), hashed again (the digest), into a temporary file in the store.
type Compressing = Hashing<flate2::write::GzEncoder<Hashing<io::BufWriter<tempfile::NamedTempFile>>>>;

fn compressing(store: &BlobStore, level: u32) -> Result<Compressing> {
    let compressed = Hashing { inner: io::BufWriter::new(store.temp()?), hasher: Sha256::new(), count: 0 };
    let gz = flate2::GzBuilder::new().mtime(0).write(compressed, flate2::Compression::new(level));
    Ok(Hashing { inner: gz, hasher: Sha256::new(), count: 0 })
}

/// Finishes a layer's streams and stores the blob under its digest.
fn store_compressed(store: &BlobStore, plain: Compressing) -> Result<WrittenLayer> {
    let diff_id = format!("sha256:{}", xtask_engine::filecache::hex(&plain.hasher.finalize()));
    let mut compressed = plain.inner.finish().context("failed to compress a layer")?;
    compressed.flush()?;
    let digest = format!("sha256:{}", xtask_engine::filecache::hex(&compressed.hasher.finalize()));
    let size = compressed.count;
    let file = compressed.inner.into_inner().map_err(|e| e.into_error()).context("failed to write a layer")?;
    if !store.has(&digest) {
        store.persist(file, &digest)?;
    }
    Ok(WrittenLayer { digest, diff_id, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8Path;

    #[test]
    fn the_same_entries_give_the_same_digests_and_an_edit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let store = BlobStore::open(&root.join("store")).unwrap();
        let f = root.join("handler.py");
        fs::write(&f, "print(1)\n").unwrap();
        let digest = xtask_engine::filecache::hex(&Sha256::digest(b"print(1)\n"));
        let mut entries = BTreeMap::new();
        entries.insert("var/task".to_owned(), Entry { data: EntryData::Dir, mode: 0o755, uid: 0, gid: 0 });
        let file = EntryData::File(Content::Context { path: f.clone(), digest });
        entries.insert("var/task/handler.py".to_owned(), Entry { data: file, mode: 0o644, uid: 0, gid: 0 });
        let a = write_layer(&store, &entries).unwrap();
        let b = write_layer(&store, &entries).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.digest, a.diff_id);
        // The blob decompresses to the tar the diff_id names.
        let mut plain = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(store.open_blob(&a.digest).unwrap()), &mut plain).unwrap();
        assert_eq!(super::super::store::digest_of(&plain), a.diff_id);
        let names: Vec<String> = tar::Archive::new(&plain[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["var/task/", "var/task/handler.py"]);
        fs::write(&f, "print(2)\n").unwrap();
        let err = write_layer(&store, &entries).unwrap_err().to_string();
        assert!(err.contains("changed after it was hashed"), "{err}");
    }
}

//! Content digests of files, remembered across runs by size, mtime, ctime and inode.
//!
//! A no-op build must not re-read every file. Like git's index, an entry is trusted only
//! while the file's metadata is unchanged *and* the file was last modified comfortably
//! before it was hashed: a file written within the timestamp granularity of its hashing
//! ("racily clean") is hashed again, so an edit in the same instant is never missed.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic::write_atomically;

/// Files modified closer than this to the moment they were hashed are re-read next time.
const RACY_WINDOW_NS: i128 = 2_000_000_000;
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    hashed_at_ns: i128,
    digest: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    entries: HashMap<String, Entry>,
}

/// Remembered file digests, shared by every target scanned in one run.
#[derive(Debug)]
pub struct FileCache {
    path: Option<Utf8PathBuf>,
    entries: Mutex<HashMap<String, Entry>>,
    stats: Mutex<CacheStats>,
}

/// How many digests came from memory and how many bytes had to be read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes_read: u64,
}

impl FileCache {
    /// A cache that is never persisted (tests, benchmarks of cold hashing).
    pub fn in_memory() -> Self {
        FileCache { path: None, entries: Mutex::default(), stats: Mutex::default() }
    }

    /// Loads the cache at `path`; a missing, corrupt or old-format file starts empty.
    pub fn load(path: &Utf8Path) -> Self {
        let entries = fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<OnDisk>(&bytes).ok())
            .filter(|d| d.version == FORMAT_VERSION)
            .map(|d| d.entries)
            .unwrap_or_default();
        FileCache { path: Some(path.to_owned()), entries: Mutex::new(entries), stats: Mutex::default() }
    }

    /// Writes the cache back atomically. Losing it costs only re-reading files. A run that
    /// hashed nothing (the no-op) changed nothing, and skips the write and its fsyncs.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        if self.stats().misses == 0 && path.is_file() {
            return Ok(());
        }
        let entries = self.entries.lock().expect("file cache lock poisoned").clone();
        let bytes = serde_json::to_vec(&OnDisk { version: FORMAT_VERSION, entries })?;
        write_atomically(path, &bytes).with_context(|| format!("failed to save file cache {path}"))
    }

    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().expect("file cache lock poisoned")
    }

    /// The SHA-256 of a regular file's content, from memory when it is safe to.
    pub fn digest(&self, path: &Utf8Path, meta: &Metadata) -> Result<String> {
        let key = path.as_str();
        let (mtime_ns, ctime_ns) = (stamp(meta.mtime(), meta.mtime_nsec()), stamp(meta.ctime(), meta.ctime_nsec()));
        if let Some(e) = self.entries.lock().expect("file cache lock poisoned").get(key)
            && e.size == meta.len()
            && e.mtime_ns == mtime_ns
            && e.ctime_ns == ctime_ns
            && e.ino == meta.ino()
            && mtime_ns + RACY_WINDOW_NS < e.hashed_at_ns
        {
            self.stats.lock().expect("file cache lock poisoned").hits += 1;
            return Ok(e.digest.clone());
        }
        let hashed_at_ns = now_ns();
        let (digest, bytes) = hash_file(path)?;
        {
            let mut stats = self.stats.lock().expect("file cache lock poisoned");
            stats.misses += 1;
            stats.bytes_read += bytes;
        }
        let entry = Entry { size: meta.len(), mtime_ns, ctime_ns, ino: meta.ino(), hashed_at_ns, digest: digest.clone() };
        self.entries.lock().expect("file cache lock poisoned").insert(key.to_owned(), entry);
        Ok(digest)
    }
}

fn stamp(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

fn now_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

/// Hashes a file's content in 256 KiB reads; returns the hex digest and the bytes read.
pub fn hash_file(path: &Utf8Path) -> Result<(String, u64)> {
    let mut file = File::open(path).with_context(|| format!("failed to open {path}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("failed to read {path}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// Lower-case hex of a byte slice.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn utf8(p: &std::path::Path) -> Utf8PathBuf {
        Utf8PathBuf::from_path_buf(p.to_path_buf()).unwrap()
    }

    #[test]
    fn digest_matches_known_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = utf8(&dir.path().join("a"));
        fs::write(&p, b"abc").unwrap();
        let cache = FileCache::in_memory();
        let d = cache.digest(&p, &fs::metadata(&p).unwrap()).unwrap();
        assert_eq!(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn racily_clean_files_are_rehashed_and_old_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = utf8(&dir.path().join("a"));
        fs::write(&p, b"one").unwrap();
        let cache = FileCache::in_memory();
        cache.digest(&p, &fs::metadata(&p).unwrap()).unwrap();
        // Just written: the entry is racy, so the next lookup reads the file again.
        cache.digest(&p, &fs::metadata(&p).unwrap()).unwrap();
        assert_eq!(cache.stats().misses, 2);

        // Backdate the file: now the remembered digest is trusted.
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(&p).unwrap().set_modified(old).unwrap();
        cache.digest(&p, &fs::metadata(&p).unwrap()).unwrap();
        cache.digest(&p, &fs::metadata(&p).unwrap()).unwrap();
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn a_same_size_edit_with_restored_mtime_is_still_seen_through_ctime() {
        let dir = tempfile::tempdir().unwrap();
        let p = utf8(&dir.path().join("a"));
        fs::write(&p, b"one").unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(&p).unwrap().set_modified(old).unwrap();
        let cache = FileCache::in_memory();
        let first = cache.digest(&p, &fs::metadata(&p).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        fs::write(&p, b"two").unwrap();
        File::options().write(true).open(&p).unwrap().set_modified(old).unwrap();
        let second = cache.digest(&p, &fs::metadata(&p).unwrap()).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn corrupt_cache_file_starts_empty_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = utf8(&dir.path().join("cache.json"));
        fs::write(&cache_path, b"{not json").unwrap();
        let cache = FileCache::load(&cache_path);
        let p = utf8(&dir.path().join("a"));
        fs::write(&p, b"x").unwrap();
        cache.digest(&p, &fs::metadata(&p).unwrap()).unwrap();
        cache.save().unwrap();
        let reloaded = FileCache::load(&cache_path);
        assert_eq!(reloaded.entries.lock().unwrap().len(), 1);
    }
}

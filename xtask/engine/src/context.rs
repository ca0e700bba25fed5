//! A build context as Docker would send it: the files under a root that survive
//! `.dockerignore`, each with its content digest, executable bit or link target.
//!
//! The same scan feeds both the input hash and the tar stream handed to `docker build`,
//! so what is hashed is exactly what is built.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest as _, Sha256};
use walkdir::WalkDir;

use crate::filecache::FileCache;
use crate::ignore::DockerIgnore;

/// What one path in a context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { executable: bool, digest: String },
    /// A symbolic link, hashed and sent as the link itself; its target is never read.
    Symlink { target: String },
}

impl EntryKind {
    /// The canonical one-line fingerprint used in input manifests.
    pub fn fingerprint(&self) -> String {
        match self {
            EntryKind::Dir => "dir".to_owned(),
            EntryKind::File { executable: true, digest } => format!("exec {digest}"),
            EntryKind::File { executable: false, digest } => format!("file {digest}"),
            EntryKind::Symlink { target } => format!("link {target}"),
        }
    }
}

/// The scanned content of a build context.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub root: Utf8PathBuf,
    /// Relative, `/`-separated path to entry, sorted.
    pub entries: BTreeMap<String, EntryKind>,
}

/// Files placed into the tar stream in addition to the scanned context, such as the
/// wheels a dependency produced. They are covered by that dependency's input hash.
#[derive(Debug, Clone)]
pub struct ExtraFile {
    pub dest: String,
    pub source: Utf8PathBuf,
}

/// Fixed metadata for every tar entry, so that Docker's own layer cache sees identical
/// content as identical (1980-01-01, the earliest time a zip file can carry).
const TAR_MTIME: u64 = 315_532_800;

impl BuildContext {
    /// Scans `root`, applying `ignore`. Directories excluded with no `!` rule that could
    /// re-include something inside are not descended into.
    pub fn scan(root: &Utf8Path, ignore: &DockerIgnore, cache: &FileCache) -> Result<Self> {
        if !root.is_dir() {
            bail!("build context {root} is not a directory");
        }
        let may_reinclude = ignore.has_negations();
        let mut entries = BTreeMap::new();
        let mut files: Vec<(String, Utf8PathBuf, fs::Metadata)> = Vec::new();
        let mut walker = WalkDir::new(root).follow_links(false).sort_by_file_name().min_depth(1).into_iter();
        while let Some(item) = walker.next() {
            let item = item.with_context(|| format!("failed to walk {root}"))?;
            let rel = item.path().strip_prefix(root).expect("walkdir stays under its root");
            let Some(rel) = rel.to_str() else {
                bail!("{} has a non-UTF-8 name; rename it or add it to .dockerignore", item.path().display());
            };
            let rel = rel.replace('\\', "/");
            let ft = item.file_type();
            if ignore.is_excluded(&rel) {
                if ft.is_dir() && !may_reinclude {
                    walker.skip_current_dir();
                }
                continue;
            }
            let abs = root.join(&rel);
            if ft.is_symlink() {
                let target = fs::read_link(&abs).with_context(|| format!("failed to read link {abs}"))?;
                let target = target.to_str().map(str::to_owned).with_context(|| format!("link {abs} has a non-UTF-8 target"))?;
                entries.insert(rel, EntryKind::Symlink { target });
            } else if ft.is_dir() {
                entries.insert(rel, EntryKind::Dir);
            } else if ft.is_file() {
                let meta = item.metadata().with_context(|| format!("failed to stat {abs}"))?;
                files.push((rel, abs, meta));
            }
            // Sockets, fifos and devices are skipped, as Docker cannot send them either.
        }
        for (rel, abs, meta, digest) in digest_parallel(files, cache)? {
            let executable = meta.permissions().mode() & 0o111 != 0;
            let _ = abs;
            entries.insert(rel, EntryKind::File { executable, digest });
        }
        Ok(BuildContext { root: root.to_owned(), entries })
    }

    /// The context as planned: rebuilt from the fingerprints an [`InputManifest`] holds,
    /// without looking at the disk, so that what is streamed is what was hashed.
    ///
    /// [`InputManifest`]: crate::InputManifest
    pub fn from_fingerprints(root: &Utf8Path, files: &BTreeMap<String, String>) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for (rel, fp) in files {
            let kind = if fp == "dir" {
                EntryKind::Dir
            } else if let Some(target) = fp.strip_prefix("link ") {
                EntryKind::Symlink { target: target.to_owned() }
            } else if let Some(digest) = fp.strip_prefix("exec ") {
                EntryKind::File { executable: true, digest: digest.to_owned() }
            } else if let Some(digest) = fp.strip_prefix("file ") {
                EntryKind::File { executable: false, digest: digest.to_owned() }
            } else {
                bail!("unknown fingerprint `{fp}` for {rel} in the plan");
            };
            entries.insert(rel.clone(), kind);
        }
        Ok(BuildContext { root: root.to_owned(), entries })
    }

    /// Writes the context, plus `extra` files, as a deterministic tar stream: fixed
    /// mtime and owner, and modes reduced to 0644/0755. Each file's content is checked
    /// against the digest it was hashed with as it is streamed: a file edited since then
    /// fails the write, so nothing is ever built (or recorded) under an old hash.
    pub fn write_tar<W: Write>(&self, out: W, extra: &[ExtraFile]) -> Result<W> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        let mut dirs_done: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for (rel, kind) in &self.entries {
            let abs = self.root.join(rel);
            let mut header = tar::Header::new_gnu();
            header.set_mtime(TAR_MTIME);
            header.set_uid(0);
            header.set_gid(0);
            match kind {
                EntryKind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{rel}/"), std::io::empty())?;
                    dirs_done.insert(rel.clone());
                }
                EntryKind::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, rel, target)?;
                }
                EntryKind::File { executable, digest } => {
                    let bytes = fs::read(&abs).with_context(|| format!("{abs} is gone since it was hashed; run again"))?;
                    if &crate::filecache::hex(&Sha256::digest(&bytes)) != digest {
                        bail!("{abs} changed after it was hashed; run again so that its new content is hashed and built");
                    }
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(if *executable { 0o755 } else { 0o644 });
                    header.set_size(bytes.len() as u64);
                    builder
                        .append_data(&mut header, rel, bytes.as_slice())
                        .with_context(|| format!("failed to add {abs} to the build context"))?;
                }
            }
        }
        for file in extra {
            if let Some((parent, _)) = file.dest.rsplit_once('/') {
                let mut acc = String::new();
                for part in parent.split('/') {
                    if !acc.is_empty() {
                        acc.push('/');
                    }
                    acc.push_str(part);
                    if dirs_done.insert(acc.clone()) {
                        let mut header = tar::Header::new_gnu();
                        header.set_mtime(TAR_MTIME);
                        header.set_entry_type(tar::EntryType::Directory);
                        header.set_mode(0o755);
                        header.set_size(0);
                        builder.append_data(&mut header, format!("{acc}/"), std::io::empty())?;
                    }
                }
            }
            let f = fs::File::open(&file.source).with_context(|| format!("failed to open {}", file.source))?;
            let mut header = tar::Header::new_gnu();
            header.set_mtime(TAR_MTIME);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(f.metadata()?.len());
            builder.append_data(&mut header, &file.dest, f)?;
        }
        Ok(builder.into_inner()?)
    }
}

/// Digests files on every core; the cache answers for unchanged ones without reading.
fn digest_parallel(
    files: Vec<(String, Utf8PathBuf, fs::Metadata)>,
    cache: &FileCache,
) -> Result<Vec<(String, Utf8PathBuf, fs::Metadata, String)>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if files.len() < 64 || threads == 1 {
        return files
            .into_iter()
            .map(|(rel, abs, meta)| {
                let d = cache.digest(&abs, &meta)?;
                Ok((rel, abs, meta, d))
            })
            .collect();
    }
    let chunk = files.len().div_ceil(threads);
    let mut chunks: Vec<Vec<_>> = Vec::new();
    let mut it = files.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(chunk).collect());
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| {
                s.spawn(move || {
                    c.into_iter()
                        .map(|(rel, abs, meta)| {
                            let d = cache.digest(&abs, &meta)?;
                            Ok((rel, abs, meta, d))
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(h.join().expect("hashing thread panicked")?);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
        (dir, root)
    }

    #[test]
    fn what_is_streamed_is_what_was_hashed() {
        let (_d, root) = setup();
        fs::write(root.join("handler.py"), "v1\n").unwrap();
        fs::create_dir(root.join("pkg")).unwrap();
        fs::write(root.join("pkg/mod.py"), "m\n").unwrap();
        let ignore = DockerIgnore::with_builtins(None).unwrap();
        let planned = BuildContext::scan(&root, &ignore, &FileCache::in_memory()).unwrap();
        let manifest = crate::InputManifest::new("image", "x").with_context(&planned);

        // Rebuilt from the plan's fingerprints, the context streams the same tar.
        let from_plan = BuildContext::from_fingerprints(&root, &manifest.files).unwrap();
        assert_eq!(from_plan.entries, planned.entries);
        assert_eq!(from_plan.write_tar(Vec::new(), &[]).unwrap(), planned.write_tar(Vec::new(), &[]).unwrap());

        // A file added after planning is not sent; one edited fails the stream.
        fs::write(root.join("late.py"), "late\n").unwrap();
        let tar = from_plan.write_tar(Vec::new(), &[]).unwrap();
        assert!(!String::from_utf8_lossy(&tar).contains("late.py"));
        fs::write(root.join("handler.py"), "v2\n").unwrap();
        let e = from_plan.write_tar(Vec::new(), &[]).unwrap_err().to_string();
        assert!(e.contains("handler.py changed after it was hashed; run again"), "{e}");
        fs::remove_file(root.join("pkg/mod.py")).unwrap();
        fs::write(root.join("handler.py"), "v1\n").unwrap();
        let e = from_plan.write_tar(Vec::new(), &[]).unwrap_err().to_string();
        assert!(e.contains("mod.py is gone since it was hashed"), "{e}");
    }

    #[test]
    fn scan_applies_dockerignore_and_builtins() {
        let (_d, root) = setup();
        fs::create_dir_all(root.join("tests")).unwrap();
        fs::create_dir_all(root.join("__pycache__")).unwrap();
        fs::write(root.join("handler.py"), "x").unwrap();
        fs::write(root.join("tests/test_handler.py"), "t").unwrap();
        fs::write(root.join("__pycache__/handler.cpython-311.pyc"), "c").unwrap();
        let ig = DockerIgnore::with_builtins(Some("tests\n")).unwrap();
        let ctx = BuildContext::scan(&root, &ig, &FileCache::in_memory()).unwrap();
        let paths: Vec<_> = ctx.entries.keys().cloned().collect();
        assert_eq!(paths, vec!["handler.py"]);
    }

    #[test]
    fn negation_reaches_inside_excluded_directories() {
        let (_d, root) = setup();
        fs::create_dir_all(root.join("docs/keep")).unwrap();
        fs::write(root.join("docs/a.md"), "a").unwrap();
        fs::write(root.join("docs/keep/b.md"), "b").unwrap();
        let ig = DockerIgnore::parse("docs\n!docs/keep/b.md").unwrap();
        let ctx = BuildContext::scan(&root, &ig, &FileCache::in_memory()).unwrap();
        assert!(ctx.entries.contains_key("docs/keep/b.md"));
        assert!(!ctx.entries.contains_key("docs/a.md"));
    }

    #[test]
    fn symlinks_are_recorded_as_links_not_followed() {
        let (_d, root) = setup();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        symlink(outside.path().join("secret"), root.join("link")).unwrap();
        let ctx = BuildContext::scan(&root, &DockerIgnore::default(), &FileCache::in_memory()).unwrap();
        match &ctx.entries["link"] {
            EntryKind::Symlink { target } => assert!(target.ends_with("secret")),
            other => panic!("expected a link, got {other:?}"),
        }
    }

    #[test]
    fn executable_bit_is_part_of_the_entry() {
        let (_d, root) = setup();
        fs::write(root.join("run.sh"), "#!/bin/sh").unwrap();
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        let ctx = BuildContext::scan(&root, &DockerIgnore::default(), &FileCache::in_memory()).unwrap();
        assert!(ctx.entries["run.sh"].fingerprint().starts_with("exec "));
    }

    #[test]
    fn tar_stream_is_deterministic_and_carries_extras() {
        let (_d, root) = setup();
        fs::write(root.join("a.txt"), "a").unwrap();
        let extra_dir = tempfile::tempdir().unwrap();
        let whl = Utf8PathBuf::from_path_buf(extra_dir.path().join("x.whl")).unwrap();
        fs::write(&whl, "wheel").unwrap();
        let ctx = BuildContext::scan(&root, &DockerIgnore::default(), &FileCache::in_memory()).unwrap();
        let extra = [ExtraFile { dest: "wheels/x.whl".into(), source: whl }];
        let one = ctx.write_tar(Vec::new(), &extra).unwrap();
        let two = ctx.write_tar(Vec::new(), &extra).unwrap();
        assert_eq!(one, two);
        let mut archive = tar::Archive::new(one.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["a.txt", "wheels/", "wheels/x.whl"]);
    }
}

//! Crash-safe file replacement: write a temporary file beside the target, fsync it,
//! rename it over the target, fsync the directory. A reader sees the old content or the
//! new, never a torn write, and a crash or kill at any moment leaves one or the other.
//!
//! The temporary file comes from `tempfile`: a unique, unpredictable name created with
//! `O_EXCL` (two threads or two runs writing the same file never share one), removed
//! when anything fails before the rename.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;

use anyhow::{Context as _, Result};
use camino::Utf8Path;

/// Replaces `path` with `bytes` atomically, creating parent directories as needed. The
/// file is readable by everyone (0644, less the umask), like one `fs::write` creates.
pub fn write_atomically(path: &Utf8Path, bytes: &[u8]) -> Result<()> {
    write_with_mode(path, bytes, 0o644)
}

/// As [`write_atomically`], for a file holding a secret (a token, a `.env`): readable
/// and writable by the owner only (0600), from the moment it exists.
pub fn write_private(path: &Utf8Path, bytes: &[u8]) -> Result<()> {
    write_with_mode(path, bytes, 0o600)
}

/// As [`write_private`], for a file that must not exist yet (one the user then edits,
/// such as `infra/.env`): fails with `AlreadyExists` instead of replacing it, and a
/// crash never leaves it half written.
pub fn create_private(path: &Utf8Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_str().is_empty()).unwrap_or(Utf8Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or("file");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_with_mode(path: &Utf8Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_str().is_empty()).unwrap_or(Utf8Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {dir}"))?;
    let name = path.file_name().with_context(|| format!("{path} has no file name"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temporary file in {dir}"))?;
    // Through the file itself: `NamedTempFile`'s own writes repeat the path in the error.
    tmp.as_file_mut().write_all(bytes).with_context(|| format!("failed to write {}", tmp.path().display()))?;
    tmp.as_file().sync_all().with_context(|| format!("failed to sync {}", tmp.path().display()))?;
    // On failure the error hands the temporary file back and dropping it removes it.
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("failed to replace {path}"))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8PathBuf;

    fn tmpdir() -> (tempfile::TempDir, Utf8PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        (t, p)
    }

    fn entries(dir: &Utf8Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_and_leaves_nothing_else() {
        let (_t, dir) = tmpdir();
        let path = dir.join("sub/state.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(entries(&dir.join("sub")), ["state.json"]);
    }

    #[test]
    fn many_threads_writing_one_file_never_collide_or_tear() {
        let (_t, dir) = tmpdir();
        let path = dir.join("state.json");
        let contents: Vec<Vec<u8>> = (0..16u8).map(|i| vec![b'a' + i; 64 * 1024]).collect();
        std::thread::scope(|s| {
            for c in &contents {
                let path = path.clone();
                s.spawn(move || {
                    for _ in 0..8 {
                        write_atomically(&path, c).unwrap();
                    }
                });
            }
        });
        let end = std::fs::read(&path).unwrap();
        assert!(contents.contains(&end), "the file holds one writer's bytes whole");
        assert_eq!(entries(&dir), ["state.json"], "no temporary file is left behind");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let (_t, dir) = tmpdir();
        let path = dir.join("state.json");
        write_atomically(&path, b"old").unwrap();
        // Renaming a file over a directory fails after the temporary file was written.
        let blocked = dir.join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("keep"), "x").unwrap();
        let err = format!("{:#}", write_atomically(&blocked, b"new").unwrap_err());
        assert!(err.contains("failed to replace") && err.contains("blocked"), "{err}");
        assert_eq!(entries(&dir), ["blocked", "state.json"], "the temporary file was removed");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn a_created_file_is_never_replaced() {
        let (_t, dir) = tmpdir();
        let path = dir.join(".env");
        create_private(&path, b"A=1").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let err = create_private(&path, b"A=2").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"A=1");
        assert_eq!(entries(&dir), [".env"], "no temporary file is left behind");
    }

    #[test]
    fn private_files_are_owner_only_even_when_replacing_a_readable_one() {
        let (_t, dir) = tmpdir();
        let path = dir.join(".env");
        std::fs::write(&path, "OLD=1").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"TOKEN=x").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"TOKEN=x");
    }
}

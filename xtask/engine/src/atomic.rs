//! Crash-safe file replacement: write a sibling temporary file, fsync, rename, fsync the
//! directory. A reader sees the old content or the new, never a torn write.

use std::fs::{self, File};
use std::io::Write;

use anyhow::{Context as _, Result};
use camino::Utf8Path;

/// Replaces `path` with `bytes` atomically, creating parent directories as needed.
pub fn write_atomically(path: &Utf8Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("failed to create {dir}"))?;
    let name = path.file_name().context("path has no file name")?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = File::create(&tmp).with_context(|| format!("failed to create {tmp}"))?;
        f.write_all(bytes).with_context(|| format!("failed to write {tmp}"))?;
        f.sync_all().with_context(|| format!("failed to sync {tmp}"))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("failed to replace {path}"))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

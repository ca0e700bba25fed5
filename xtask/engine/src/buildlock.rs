//! One build of a given input hash at a time on this machine.
//!
//! Two runs at once on one tree, or two clones sharing one Docker engine, plan the same
//! targets before either has built anything. Before building, a run takes an exclusive
//! lock for the target's input hash and then looks again: if the other run made the
//! output meanwhile (recorded in the state, or tagged with the hash in the engine), it is
//! used instead of being built a second time.
//!
//! The locks are `flock`s on files in a folder of the user's (`$XDG_RUNTIME_DIR`, else
//! `~/.cache`), mode 0700, never in a shared `/tmp`. Hashes share 256 lock files by their
//! first byte, so the folder stays bounded; two different targets that share a file
//! only wait for each other, and a build holds one lock at a time, so they cannot
//! deadlock. The lock goes with the process: a killed run never leaves one held.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::PathBuf;

use crate::inputs::InputHash;

/// A held lock; released on drop (or when the process ends, however it ends).
#[derive(Debug)]
pub struct BuildLock {
    _file: File,
}

/// Where the lock files are, created private to the user; `None` when there is no such
/// place (no `HOME`, a read-only home), and builds then go unlocked.
fn lock_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    let dir = base.join("xtask-build-locks");
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).ok()?;
    // A folder someone else made, or one open to others, is not used.
    let meta = std::fs::metadata(&dir).ok()?;
    (meta.permissions().mode() & 0o077 == 0).then_some(dir)
}

/// Waits for the lock of `hash` and takes it. `Ok(None)` when locks cannot be had here.
pub fn acquire(hash: &InputHash) -> anyhow::Result<Option<BuildLock>> {
    let Some(dir) = lock_dir() else {
        tracing::debug!("no private folder for build locks; building without one");
        return Ok(None);
    };
    let path = dir.join(format!("{}.lock", &hash.as_str()[..2]));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("failed to open the build lock {}: {e}", path.display()))?;
    file.lock().map_err(|e| anyhow::anyhow!("failed to take the build lock {}: {e}", path.display()))?;
    Ok(Some(BuildLock { _file: file }))
}

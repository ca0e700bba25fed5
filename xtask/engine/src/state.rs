//! The state store: per target, the input hash and manifest of its last successful build
//! and what that build produced.
//!
//! It lives under `target/xtask/`. Every update is a read-modify-write under an exclusive
//! file lock followed by an atomic replace, so two runs at once merge their records
//! instead of overwriting each other, and a kill at any instant leaves either the old or
//! the new file. A record is written only after its output exists. A corrupt or
//! old-format file is reported, set aside and treated as empty: everything rebuilds.

use std::collections::BTreeMap;
use std::fs::{self, File};

use anyhow::{Context as _, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomically;
use crate::inputs::{InputHash, InputManifest};

const FORMAT_VERSION: u32 = 1;

/// What a build produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The local artifact: an image id (`sha256:...`) or a file path.
    pub artifact: String,
    /// Registry (host or `ecr`) to the manifest digest pushed there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pushed: BTreeMap<String, String>,
    /// Plugin-specific facts worth keeping (image reference, wheel file name, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}

/// The last successful build of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub input_hash: InputHash,
    pub inputs: InputManifest,
    pub output: Output,
    /// Seconds since the epoch.
    pub recorded_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    targets: BTreeMap<String, TargetRecord>,
}

/// Access to `state.json` under a directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: Utf8PathBuf,
}

/// A state snapshot read at the start of a run.
#[derive(Debug, Default, Clone)]
pub struct State {
    pub targets: BTreeMap<String, TargetRecord>,
    /// Set when the file on disk could not be used, with the reason.
    pub discarded: Option<String>,
}

impl StateStore {
    pub fn new(dir: &Utf8Path) -> Self {
        StateStore { dir: dir.to_owned() }
    }

    pub fn path(&self) -> Utf8PathBuf {
        self.dir.join("state.json")
    }

    fn lock(&self) -> Result<File> {
        fs::create_dir_all(&self.dir).with_context(|| format!("failed to create {}", self.dir))?;
        let path = self.dir.join("state.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("failed to open lock file {path}"))?;
        file.lock().with_context(|| format!("failed to lock {path}"))?;
        Ok(file)
    }

    /// Reads the state. A file that does not parse is moved aside and reported.
    pub fn load(&self) -> Result<State> {
        let _guard = self.lock()?;
        Ok(self.read_unlocked())
    }

    fn read_unlocked(&self) -> State {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(_) => return State::default(),
        };
        let reason = match serde_json::from_slice::<StateFile>(&bytes) {
            Ok(f) if f.version == FORMAT_VERSION => return State { targets: f.targets, discarded: None },
            Ok(f) => format!("it has format version {} (expected {FORMAT_VERSION})", f.version),
            Err(e) => format!("it does not parse ({e})"),
        };
        let aside = self.dir.join("state.json.discarded");
        let _ = fs::rename(&path, &aside);
        State { targets: BTreeMap::new(), discarded: Some(format!("discarded {path}: {reason}; kept a copy at {aside}")) }
    }

    /// Records one target's successful build, merging with what other runs wrote.
    pub fn record(&self, id: &str, record: TargetRecord) -> Result<()> {
        self.update(|targets| {
            targets.insert(id.to_owned(), record);
        })
    }

    /// Records that a target's output, built from `input_hash`, is in `registry` with
    /// `digest`. Ignored when the record is for other inputs (a newer build replaced it).
    pub fn record_pushed(&self, id: &str, input_hash: &InputHash, registry: &str, digest: &str) -> Result<()> {
        self.update(|targets| {
            if let Some(rec) = targets.get_mut(id)
                && &rec.input_hash == input_hash
            {
                rec.output.pushed.insert(registry.to_owned(), digest.to_owned());
            }
        })
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, TargetRecord>)) -> Result<()> {
        let _guard = self.lock()?;
        let mut targets = self.read_unlocked().targets;
        change(&mut targets);
        let bytes = serde_json::to_vec_pretty(&StateFile { version: FORMAT_VERSION, targets })?;
        write_atomically(&self.path(), &bytes)
    }
}

/// Seconds since the epoch, for `recorded_at`.
/// `YYYYMMDDHHMMSS` for a Unix time, in UTC.
pub fn utc_stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}", rem / 3600, (rem % 3600) / 60, rem % 60)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamp_formats_known_instants() {
        assert_eq!(utc_stamp(0), "19700101000000");
        assert_eq!(utc_stamp(1_774_700_000), "20260328121320");
        assert_eq!(utc_stamp(951_782_400), "20000229000000");
    }

    use super::*;

    fn store() -> (tempfile::TempDir, StateStore) {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::new(Utf8Path::from_path(d.path()).unwrap());
        (d, s)
    }

    fn rec(id: &str) -> TargetRecord {
        let m = InputManifest::new("image", id);
        TargetRecord { input_hash: m.hash(), inputs: m, output: Output { artifact: format!("sha256:{id}"), ..Output::default() }, recorded_at: 1 }
    }

    #[test]
    fn records_round_trip_and_merge() {
        let (_d, s) = store();
        s.record("a", rec("a")).unwrap();
        s.record("b", rec("b")).unwrap();
        let state = s.load().unwrap();
        assert_eq!(state.targets.len(), 2);
        assert_eq!(state.targets["a"], rec("a"));
    }

    #[test]
    fn corrupt_file_is_discarded_with_a_reason() {
        let (_d, s) = store();
        fs::write(s.path(), b"{\"version\":1,\"targets\":{\"a\":").unwrap();
        let state = s.load().unwrap();
        assert!(state.targets.is_empty());
        assert!(state.discarded.as_deref().unwrap().contains("does not parse"));
        s.record("a", rec("a")).unwrap();
        assert_eq!(s.load().unwrap().targets.len(), 1);
    }

    #[test]
    fn old_format_is_discarded() {
        let (_d, s) = store();
        fs::write(s.path(), b"{\"version\":0,\"targets\":{}}").unwrap();
        assert!(s.load().unwrap().discarded.unwrap().contains("format version 0"));
    }

    #[test]
    fn concurrent_writers_never_lose_records() {
        let (_d, s) = store();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let s = s.clone();
                scope.spawn(move || {
                    for i in 0..25 {
                        s.record(&format!("t{t}-{i}"), rec("x")).unwrap();
                    }
                });
            }
        });
        assert_eq!(s.load().unwrap().targets.len(), 100);
    }
}

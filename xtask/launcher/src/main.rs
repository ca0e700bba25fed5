//! What `cargo xtask` runs: a dependency-free launcher that starts the real `xtask`
//! binary, rebuilding it first only when its sources changed.
//!
//! `cargo run --package xtask` makes Cargo check the freshness of every unit the binary
//! depends on (about 219 crates) before each run, which costs more than a whole no-op
//! build. This crate has no dependencies, so Cargo's check before running it is one unit.
//! The launcher then decides for itself, from modification times, whether `xtask` must be
//! rebuilt:
//!
//! - the inputs are `Cargo.lock`, the workspace `Cargo.toml`, `.cargo/config{,.toml}` (the
//!   repository's, its ancestors' and `$CARGO_HOME`'s), `rust-toolchain{,.toml}`, every
//!   file and folder under `xtask/` except target-like folders, and every local file
//!   Cargo's dep-info for the binary (`xtask.d`) names (it catches an `include_str!` of a
//!   file outside `xtask/`);
//! - after a successful `$CARGO build --quiet --package xtask` it writes a stamp beside the
//!   binary (`xtask.stamp`, written to a temporary file and renamed, so two launchers at
//!   once never leave a torn one) holding the time the build started, read from the file
//!   system's own clock, plus the binary's size and mtime, the Cargo executable and the
//!   build-relevant environment;
//! - it rebuilds when the stamp is missing, unreadable or from another checkout, when the
//!   binary is not the one the stamp describes, when the toolchain or the build
//!   environment changed, or when any input is as new as the build's start or newer (a
//!   file saved during a build counts as changed, as in git's racy-clean rule). When in
//!   doubt it builds: a build with nothing to do costs a Cargo no-op, never a wrong binary.
//!
//! Crates of the workspace that `xtask` does not depend on live outside `xtask/`, so
//! editing them never makes the launcher rebuild.
//!
//! It then replaces itself with the binary (Unix `exec`, so signals reach the tool and its
//! exit code is the command's), passing every argument through; elsewhere it runs the
//! binary and exits with its code. `XTASK_LAUNCHER_VERBOSE=1` prints the decision and why.
//!
//! Where it lives, by measurement (2 cores, warm caches, medians of 10 runs, CPU seconds,
//! which stay steady while wall time on this shared machine does not): `cargo run` of this
//! crate as a member of the main workspace costs 0.06 s of CPU, of the same crate as its own
//! one-crate workspace 0.03 s, so its own workspace would save about 0.03 s a run.
//! It is a member nonetheless: a Cargo alias cannot name a manifest relative to the
//! repository (`--manifest-path` is read relative to the working folder), so only
//! `--package` works from every subfolder, as `cargo xtask` must; and as a member it is
//! built into the same target folder as `xtask`, so the real binary is simply its
//! neighbour, wherever `CARGO_TARGET_DIR` or `build.target-dir` put them.
//!
//! Written with the standard library only (no anyhow, no walkdir): every dependency would
//! be one more unit for Cargo to check before each run.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First line of the stamp; a stamp of another format is stale.
const STAMP_HEADER: &str = "xtask-launcher stamp 1";

/// The package the launcher builds and runs.
const PACKAGE: &str = "xtask";

/// Environment variables that change what `cargo build` produces (by exact name, or by
/// prefix when they end in `_`).
const BUILD_ENV: &[&str] = &[
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTFLAGS",
    "RUSTUP_TOOLCHAIN",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_INCREMENTAL",
    "CARGO_HOME",
    "CARGO_BUILD_",
    "CARGO_PROFILE_",
    "CARGO_TARGET_",
];

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where everything is, for one run.
struct Layout {
    /// The workspace root (holds `Cargo.toml`, `Cargo.lock` and `xtask/`).
    root: PathBuf,
    /// The folder Cargo put the launcher in, and so puts `xtask` in: `<target>/debug`.
    bin_dir: PathBuf,
    /// The real binary.
    xtask: PathBuf,
    /// Cargo's dep-info for it: every local source file it was built from.
    dep_info: PathBuf,
    /// What the launcher wrote after the last successful build.
    stamp: PathBuf,
    /// The Cargo that ran the launcher (`CARGO`), used to build.
    cargo: OsString,
    verbose: bool,
}

impl Layout {
    fn find() -> Result<Layout, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find the launcher's own executable: {e}"))?;
        let bin_dir = exe.parent().ok_or("the launcher's executable has no folder")?.to_owned();
        // `cargo run` sets CARGO_MANIFEST_DIR for the program it runs; the value baked in at
        // build time serves when the launcher is started by hand.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let root = manifest_dir
            .parent()
            .and_then(Path::parent)
            .filter(|r| r.join("Cargo.toml").is_file())
            .ok_or_else(|| format!("{} is not `xtask/launcher` of a Cargo workspace; run it as `cargo xtask`", manifest_dir.display()))?
            .to_owned();
        let name = format!("{PACKAGE}{}", std::env::consts::EXE_SUFFIX);
        Ok(Layout {
            xtask: bin_dir.join(&name),
            dep_info: bin_dir.join(format!("{PACKAGE}.d")),
            stamp: bin_dir.join(format!("{PACKAGE}.stamp")),
            bin_dir,
            root,
            // Cargo sets CARGO for the programs it runs; by hand, the one on PATH.
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            verbose: std::env::var_os("XTASK_LAUNCHER_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0"),
        })
    }

    /// The Cargo flags that put the binary where Cargo put the launcher: the profile is
    /// the name of that folder (`debug` for `dev`).
    fn profile_args(&self) -> Vec<OsString> {
        match self.bin_dir.file_name().and_then(OsStr::to_str) {
            Some("debug") | None => vec![],
            Some("release") => vec!["--release".into()],
            Some(other) => vec!["--profile".into(), other.into()],
        }
    }

    /// The part of the stamp that must match exactly: which checkout, which Cargo (its
    /// path and mtime change when the toolchain does) and the build environment.
    fn key(&self) -> String {
        let mut key = String::new();
        let _ = writeln!(key, "root {:?}", self.root);
        let cargo_mtime = which(&self.cargo).and_then(|p| fs::metadata(p).ok()).and_then(|m| m.modified().ok()).map(stamp_time);
        let _ = writeln!(key, "cargo {:?} {cargo_mtime:?}", self.cargo);
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| {
                k.to_str().is_some_and(|k| BUILD_ENV.iter().any(|p| if p.ends_with('_') { k.starts_with(p) } else { k == *p }))
            })
            .collect();
        env.sort();
        for (k, v) in env {
            let _ = writeln!(key, "env {k:?}={v:?}");
        }
        key
    }
}

/// A stamp as read back.
struct Stamp {
    key: String,
    /// When the build that wrote it started, by the file system's clock.
    started: Duration,
    /// The binary it describes: mtime and size.
    binary: (Duration, u64),
}

impl Stamp {
    fn render(&self) -> String {
        format!(
            "{STAMP_HEADER}\nstarted {}.{:09}\nbinary {}.{:09} {}\n{}",
            self.started.as_secs(),
            self.started.subsec_nanos(),
            self.binary.0.as_secs(),
            self.binary.0.subsec_nanos(),
            self.binary.1,
            self.key
        )
    }

    /// `None` for anything that is not a whole stamp of this format.
    fn parse(text: &str) -> Option<Stamp> {
        let mut lines = text.splitn(4, '\n');
        if lines.next()? != STAMP_HEADER {
            return None;
        }
        let started = parse_time(lines.next()?.strip_prefix("started ")?)?;
        let (mtime, size) = lines.next()?.strip_prefix("binary ")?.split_once(' ')?;
        let binary = (parse_time(mtime)?, size.parse().ok()?);
        Some(Stamp { started, binary, key: lines.next()?.to_owned() })
    }
}

fn parse_time(text: &str) -> Option<Duration> {
    let (secs, nanos) = text.split_once('.')?;
    Some(Duration::new(secs.parse().ok()?, nanos.parse().ok()?))
}

fn stamp_time(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn run() -> Result<ExitCode, String> {
    let layout = Layout::find()?;
    match stale_because(&layout) {
        None => {
            if layout.verbose {
                eprintln!("xtask-launcher: {} is up to date", layout.xtask.display());
            }
        }
        Some(reason) => {
            if layout.verbose {
                eprintln!("xtask-launcher: building {PACKAGE}: {reason}");
            }
            if let Err(code) = build(&layout)? {
                return Ok(code);
            }
        }
    }
    exec(&layout.xtask)
}

/// Why the binary must be rebuilt, or `None` when it is up to date.
fn stale_because(layout: &Layout) -> Option<String> {
    let text = match fs::read_to_string(&layout.stamp) {
        Ok(t) => t,
        Err(_) => return Some("no stamp from an earlier build".into()),
    };
    let Some(stamp) = Stamp::parse(&text) else {
        return Some(format!("{} is not a stamp this launcher wrote", layout.stamp.display()));
    };
    if stamp.key != layout.key() {
        return Some("the checkout, the toolchain or the build environment changed".into());
    }
    match fs::metadata(&layout.xtask) {
        Ok(m) if m.modified().ok().map(stamp_time) == Some(stamp.binary.0) && m.len() == stamp.binary.1 => {}
        Ok(_) => return Some(format!("{} is not the binary the last build made", layout.xtask.display())),
        Err(_) => return Some(format!("{} is missing", layout.xtask.display())),
    }
    let changed = |path: &Path, meta: &fs::Metadata| -> Option<String> {
        let mtime = meta.modified().ok().map(stamp_time)?;
        newer_or_racy(mtime, stamp.started).then(|| format!("{} changed", path.display()))
    };
    // The fixed inputs: a missing one is fine (most are optional; Cargo reports the rest).
    for path in fixed_inputs(&layout.root) {
        if let Ok(meta) = fs::metadata(&path)
            && let Some(why) = changed(&path, &meta)
        {
            return Some(why);
        }
    }
    // Every local file the binary was built from, as Cargo recorded it; a vanished one is
    // for the build to report.
    let dep_info = match fs::read_to_string(&layout.dep_info) {
        Ok(t) => t,
        Err(_) => return Some(format!("Cargo's dep-info {} is missing", layout.dep_info.display())),
    };
    for dep in parse_dep_info(&dep_info) {
        let path = layout.root.join(dep);
        match fs::metadata(&path) {
            Ok(meta) => {
                if let Some(why) = changed(&path, &meta) {
                    return Some(why);
                }
            }
            Err(_) => return Some(format!("{} is gone", path.display())),
        }
    }
    // Everything under xtask/, folders included: a folder's mtime moves when a file in it
    // is added, removed or renamed, which the dep-info cannot show.
    let mut dirs = vec![layout.root.join("xtask")];
    while let Some(dir) = dirs.pop() {
        let meta = match fs::metadata(&dir) {
            Ok(m) => m,
            Err(e) => return Some(format!("cannot read {}: {e}", dir.display())),
        };
        if let Some(why) = changed(&dir, &meta) {
            return Some(why);
        }
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => return Some(format!("cannot list {}: {e}", dir.display())),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { return Some(format!("cannot read {}", path.display())) };
            if kind.is_dir() {
                if !is_target_like(&path) {
                    dirs.push(path);
                }
                continue;
            }
            // Symbolic links are followed to what they name.
            match fs::metadata(&path) {
                Ok(meta) => {
                    if let Some(why) = changed(&path, &meta) {
                        return Some(why);
                    }
                }
                Err(_) => return Some(format!("{} is a broken link", path.display())),
            }
        }
    }
    None
}

/// Whether a file with modification time `mtime` may have changed after a build that
/// started at `started`. A whole-second mtime may come from a file system with coarse
/// timestamps (FAT keeps two seconds, some network file systems one), so it counts as
/// anywhere in the two seconds that follow.
fn newer_or_racy(mtime: Duration, started: Duration) -> bool {
    let latest = if mtime.subsec_nanos() == 0 { mtime + Duration::from_secs(2) } else { mtime };
    latest >= started
}

/// Folders under `xtask/` whose content cannot change the binary: Cargo's build output
/// (named `target` or marked with `CACHEDIR.TAG`) and Python's bytecode caches, which the
/// integration tests' helper scripts leave behind.
fn is_target_like(dir: &Path) -> bool {
    matches!(dir.file_name().and_then(OsStr::to_str), Some("target" | "__pycache__")) || dir.join("CACHEDIR.TAG").exists()
}

/// The inputs that are not under `xtask/`: the workspace's manifest and lock, and the
/// configuration and toolchain files Cargo and rustup read for it.
fn fixed_inputs(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    let cargo_home =
        std::env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let config_dirs = root.ancestors().map(|a| a.join(".cargo")).chain(cargo_home);
    for dir in config_dirs {
        out.push(dir.join("config.toml"));
        out.push(dir.join("config"));
    }
    for dir in root.ancestors() {
        out.push(dir.join("rust-toolchain"));
        out.push(dir.join("rust-toolchain.toml"));
    }
    out
}

/// The prerequisites of the first rule of a Makefile-style dep-info file, as Cargo writes
/// it: `target: dep dep ...`, spaces inside paths escaped as `\ `.
fn parse_dep_info(text: &str) -> Vec<PathBuf> {
    let Some(first) = text.lines().next() else { return vec![] };
    // The target is a path that may hold a drive colon; the separator is ": ".
    let Some((_, deps)) = first.split_once(": ") else { return vec![] };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(PathBuf::from(current));
    }
    out
}

/// Builds the binary and writes the stamp. `Ok(Err(code))` when Cargo failed: its output
/// is already on the terminal, and the command exits with `code`.
fn build(layout: &Layout) -> Result<Result<(), ExitCode>, String> {
    // The build's start, by the clock the file system stamps files with: a file created
    // now. (The system clock can be ahead of it by a few milliseconds, which could let an
    // edit made just after the start look older.) It becomes the stamp once the build
    // succeeds, so a stamp is always complete when it appears under its name.
    let pending = layout.bin_dir.join(format!("{PACKAGE}.stamp.{}.tmp", std::process::id()));
    let started = fs::File::create(&pending)
        .and_then(|f| f.metadata())
        .and_then(|m| m.modified())
        .map(stamp_time)
        .map_err(|e| format!("cannot write {}: {e}; check that the target folder is writable", pending.display()))?;
    // The working folder is kept so that Cargo reads the same configuration as the
    // `cargo run` that started the launcher, and so builds into the same folder.
    let status = Command::new(&layout.cargo)
        .args(["build", "--quiet", "--package", PACKAGE, "--manifest-path"])
        .arg(layout.root.join("Cargo.toml"))
        .args(layout.profile_args())
        .status();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_file(&pending);
            return Err(format!("cannot run {:?} to build {PACKAGE}: {e}", layout.cargo));
        }
    };
    if !status.success() {
        let _ = fs::remove_file(&pending);
        eprintln!("error: building {PACKAGE} failed (Cargo's output is above); fix it and run the command again");
        let code = status.code().and_then(|c| u8::try_from(c).ok()).filter(|c| *c != 0).unwrap_or(1);
        return Ok(Err(ExitCode::from(code)));
    }
    let meta = fs::metadata(&layout.xtask).map_err(|e| {
        format!("Cargo built {PACKAGE} but {} is missing ({e}); is its profile or target set apart from the launcher's?", layout.xtask.display())
    })?;
    let binary = (meta.modified().map(stamp_time).unwrap_or_default(), meta.len());
    let stamp = Stamp { key: layout.key(), started, binary };
    let written = fs::write(&pending, stamp.render()).and_then(|()| fs::rename(&pending, &layout.stamp));
    if let Err(e) = written {
        // Not fatal: the next run builds again (a Cargo no-op) and retries.
        let _ = fs::remove_file(&pending);
        eprintln!("warning: cannot write {}: {e}", layout.stamp.display());
    }
    Ok(Ok(()))
}

/// Where a program named without a folder is found on PATH (for the toolchain key).
fn which(program: &OsStr) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return Some(p.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(p)).find(|c| c.is_file())
}

/// Runs the binary with the launcher's arguments: on Unix it replaces the launcher, so the
/// process, its signals and its exit code are the tool's own.
#[cfg(unix)]
fn exec(binary: &Path) -> Result<ExitCode, String> {
    use std::os::unix::process::CommandExt as _;
    let e = Command::new(binary).args(std::env::args_os().skip(1)).exec();
    Err(format!("cannot run {}: {e}", binary.display()))
}

/// Runs the binary with the launcher's arguments and exits with its code.
#[cfg(not(unix))]
fn exec(binary: &Path) -> Result<ExitCode, String> {
    let status = Command::new(binary).args(std::env::args_os().skip(1)).status().map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let code = status.code().unwrap_or(1);
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_paths_keep_escaped_spaces() {
        let deps = parse_dep_info("/t/debug/xtask: /r/a.rs /r/with\\ space/b.rs  /r/c.toml\n\n/r/a.rs:\n");
        assert_eq!(deps, [PathBuf::from("/r/a.rs"), PathBuf::from("/r/with space/b.rs"), PathBuf::from("/r/c.toml")]);
        assert!(parse_dep_info("").is_empty());
    }

    #[test]
    fn a_stamp_reads_back_and_a_torn_one_does_not() {
        let stamp = Stamp { key: "root \"/r\"\nenv \"A\"=\"b\\nc\"\n".into(), started: Duration::new(5, 7), binary: (Duration::new(9, 1), 42) };
        let text = stamp.render();
        let back = Stamp::parse(&text).expect("a whole stamp parses");
        assert_eq!((back.key, back.started, back.binary), (stamp.key, stamp.started, stamp.binary));
        let cut = &text[..text.find("binary").expect("has a binary line")];
        assert!(Stamp::parse(cut).is_none());
        assert!(Stamp::parse("something else\n").is_none());
    }

    #[test]
    fn files_saved_during_a_build_or_on_coarse_clocks_count_as_changed() {
        let started = Duration::new(100, 500);
        assert!(!newer_or_racy(Duration::new(99, 1), started));
        assert!(newer_or_racy(Duration::new(100, 500), started), "same instant: may have been saved after the build read it");
        assert!(newer_or_racy(Duration::new(100, 501), started));
        assert!(newer_or_racy(Duration::new(99, 0), started), "a whole second may hide up to two seconds");
        assert!(!newer_or_racy(Duration::new(90, 0), started));
    }
}

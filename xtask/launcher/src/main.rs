//! What `cargo xtask` runs: a dependency-free launcher that starts the real `xtask`
//! binary, rebuilding it first only when its sources changed.
//!
//! `cargo run --package xtask` makes Cargo resolve the workspace and check the freshness
//! of every unit the binary depends on (about 219 crates) before each run, which costs
//! more than a whole no-op build. This crate has no dependencies and a workspace of its
//! own, so Cargo's work before running it is one unit. The launcher then decides for
//! itself, from modification times, whether `xtask` must be rebuilt:
//!
//! - the inputs are `Cargo.lock`, the workspace `Cargo.toml`, `.cargo/config{,.toml}` (of
//!   the working folder, the repository and their ancestors, and `$CARGO_HOME`'s),
//!   `rust-toolchain{,.toml}`, every file and folder under `xtask/` except target-like
//!   folders, and every local file Cargo's dep-info for the binary (`xtask.d`) names, which
//!   catches an `include_str!` of a file outside `xtask/`; crates of the workspace that
//!   `xtask` does not depend on live outside `xtask/`, so editing them never rebuilds;
//! - after a successful `$CARGO build --quiet --package xtask` it writes a stamp beside the
//!   launcher (`xtask.stamp`, written to a temporary file and renamed, so two launchers at
//!   once never leave a torn one) holding where Cargo put the binary (from Cargo's own
//!   JSON messages, so `CARGO_TARGET_DIR`, `build.target-dir` and `build.target` are
//!   whatever Cargo made of them), the binary's size and mtime, the time the build
//!   started by the file system's clock, the Cargo executable and the build environment;
//! - it rebuilds when the stamp is missing, unreadable or from another checkout or working
//!   folder, when the binary is not the one the stamp describes, when the toolchain or the
//!   build environment changed, or when any input is as new as the build's start or newer
//!   (a file saved during a build counts as changed, as in git's racy-clean rule). When in
//!   doubt it builds: a build with nothing to do costs a Cargo no-op, never a stale binary.
//!
//! It then replaces itself with the binary (Unix `exec`, so signals reach the tool and its
//! exit code is the command's), passing every argument through; elsewhere it runs the
//! binary and exits with its code. `XTASK_LAUNCHER_VERBOSE=1` prints the decision and why.
//!
//! Why a workspace of its own, by measurement (2 cores, warm caches, medians of 15 runs in
//! turn): `cargo run` of a dependency-free binary that is a member of the main workspace
//! took 0.112 s of CPU (0.119 s wall at best), because Cargo resolves all 219 locked
//! packages first; the same binary as a one-crate workspace took 0.033 s (0.023 s wall at
//! best). That 0.08 s is more than the whole no-op build, so membership, the simpler
//! layout, lost. The price: a Cargo alias cannot name a manifest relative to the
//! repository (`--manifest-path` is read relative to the working folder), so `cargo xtask`
//! runs from the repository root, and the launcher is built into `xtask/launcher/target/`
//! unless `CARGO_TARGET_DIR` or `build.target-dir` say otherwise. It has no dev-dependencies
//! either: they would be resolved on every run too. Its tests are `xtask/tests/launcher.rs`.
//!
//! Written with the standard library only (no anyhow, no walkdir, no serde_json for the
//! one string it reads from Cargo's messages): every dependency would be one more package
//! for Cargo to resolve before each run.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First line of the stamp; a stamp of another format is stale.
const STAMP_HEADER: &str = "xtask-launcher stamp 2";

/// The package the launcher builds and runs.
const PACKAGE: &str = "xtask";

/// Environment variables that change what `cargo build` produces or where it puts it (by
/// exact name, or by prefix when they end in `_`).
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
    /// The working folder: Cargo reads its configuration from here and above.
    cwd: PathBuf,
    /// What the launcher wrote after the last successful build, beside the launcher.
    stamp: PathBuf,
    /// The Cargo that ran the launcher (`CARGO`), used to build.
    cargo: OsString,
    verbose: bool,
}

impl Layout {
    fn find() -> Result<Layout, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find the launcher's own executable: {e}"))?;
        let bin_dir = exe.parent().ok_or("the launcher's executable has no folder")?;
        // `cargo run` sets CARGO_MANIFEST_DIR for the program it runs; the value baked in at
        // build time serves when the launcher is started by hand.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let root = manifest_dir
            .parent()
            .and_then(Path::parent)
            .filter(|r| r.join("Cargo.toml").is_file())
            .ok_or_else(|| format!("{} is not `xtask/launcher` of a Cargo workspace; run it as `cargo xtask`", manifest_dir.display()))?
            .to_owned();
        Ok(Layout {
            stamp: bin_dir.join(format!("{PACKAGE}.stamp")),
            root,
            cwd: std::env::current_dir().map_err(|e| format!("cannot read the working folder: {e}"))?,
            // Cargo sets CARGO for the programs it runs; by hand, the one on PATH.
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            verbose: std::env::var_os("XTASK_LAUNCHER_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0"),
        })
    }

    /// The part of the stamp that must match exactly: which checkout and working folder,
    /// which Cargo (its path and mtime change when the toolchain does) and the build
    /// environment, each written with `{:?}` so that any value stays on one line.
    fn key(&self) -> String {
        let mut key = String::new();
        let _ = writeln!(key, "root {:?}", self.root);
        let _ = writeln!(key, "cwd {:?}", self.cwd);
        let cargo_mtime = which(&self.cargo).and_then(|p| fs::metadata(p).ok()).and_then(|m| m.modified().ok()).map(since_epoch);
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

/// A stamp as written and read back.
struct Stamp {
    /// When the build that wrote it started, by the file system's clock.
    started: Duration,
    /// The binary Cargo built, and its mtime and size then.
    binary: PathBuf,
    identity: (Duration, u64),
    key: String,
}

impl Stamp {
    /// `None` when the binary's path cannot be written on one line (then nothing is
    /// stamped and every run builds, which is slow but right).
    fn render(&self) -> Option<String> {
        let binary = self.binary.to_str().filter(|p| !p.contains('\n'))?;
        let (mtime, size) = self.identity;
        Some(format!(
            "{STAMP_HEADER}\nstarted {}\nidentity {} {size}\nbinary {binary}\n{}",
            show_time(self.started),
            show_time(mtime),
            self.key
        ))
    }

    /// `None` for anything that is not a whole stamp of this format.
    fn parse(text: &str) -> Option<Stamp> {
        let mut lines = text.splitn(5, '\n');
        if lines.next()? != STAMP_HEADER {
            return None;
        }
        let started = parse_time(lines.next()?.strip_prefix("started ")?)?;
        let (mtime, size) = lines.next()?.strip_prefix("identity ")?.split_once(' ')?;
        let identity = (parse_time(mtime)?, size.parse().ok()?);
        let binary = PathBuf::from(lines.next()?.strip_prefix("binary ")?);
        Some(Stamp { started, binary, identity, key: lines.next()?.to_owned() })
    }
}

fn show_time(t: Duration) -> String {
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

fn parse_time(text: &str) -> Option<Duration> {
    let (secs, nanos) = text.split_once('.')?;
    Some(Duration::new(secs.parse().ok()?, nanos.parse().ok()?))
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn identity(meta: &fs::Metadata) -> (Duration, u64) {
    (meta.modified().map(since_epoch).unwrap_or_default(), meta.len())
}

fn run() -> Result<ExitCode, String> {
    let layout = Layout::find()?;
    let binary = match check(&layout) {
        Ok(binary) => {
            if layout.verbose {
                eprintln!("xtask-launcher: {} is up to date", binary.display());
            }
            binary
        }
        Err(reason) => {
            if layout.verbose {
                eprintln!("xtask-launcher: building {PACKAGE}: {reason}");
            }
            match build(&layout)? {
                Ok(binary) => binary,
                Err(code) => return Ok(code),
            }
        }
    };
    exec(&binary)
}

/// The binary when it is up to date, else why it must be rebuilt.
fn check(layout: &Layout) -> Result<PathBuf, String> {
    let text = fs::read_to_string(&layout.stamp).map_err(|_| "no stamp from an earlier build".to_owned())?;
    let stamp = Stamp::parse(&text).ok_or_else(|| format!("{} is not a stamp this launcher wrote", layout.stamp.display()))?;
    if stamp.key != layout.key() {
        return Err("the checkout, the working folder, the toolchain or the build environment changed".into());
    }
    match fs::metadata(&stamp.binary) {
        Ok(meta) if identity(&meta) == stamp.identity => {}
        Ok(_) => return Err(format!("{} is not the binary the last build made", stamp.binary.display())),
        Err(_) => return Err(format!("{} is missing", stamp.binary.display())),
    }
    let changed = |path: &Path, meta: &fs::Metadata| -> Result<(), String> {
        match meta.modified() {
            Ok(mtime) if !newer_or_racy(since_epoch(mtime), stamp.started) => Ok(()),
            _ => Err(format!("{} changed", path.display())),
        }
    };
    // The fixed inputs: a missing one is fine (most are optional; Cargo reports the rest).
    for path in fixed_inputs(&layout.root, &layout.cwd) {
        if let Ok(meta) = fs::metadata(&path) {
            changed(&path, &meta)?;
        }
    }
    // Every local file the binary was built from, as Cargo recorded it; a vanished one is
    // for the build to report.
    let dep_info = stamp.binary.with_extension("d");
    let deps = fs::read_to_string(&dep_info).map_err(|_| format!("Cargo's dep-info {} is missing", dep_info.display()))?;
    for dep in parse_dep_info(&deps) {
        let path = layout.root.join(dep);
        let meta = fs::metadata(&path).map_err(|_| format!("{} is gone", path.display()))?;
        changed(&path, &meta)?;
    }
    // Everything under xtask/, folders included: a folder's mtime moves when a file in it
    // is added, removed or renamed, which the dep-info cannot show.
    let mut dirs = vec![layout.root.join(PACKAGE)];
    while let Some(dir) = dirs.pop() {
        let meta = fs::metadata(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        changed(&dir, &meta)?;
        let entries = fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if kind.is_dir() {
                if !is_target_like(&path) {
                    dirs.push(path);
                }
                continue;
            }
            // Symbolic links are followed to what they name.
            let meta = fs::metadata(&path).map_err(|_| format!("{} is a broken link", path.display()))?;
            changed(&path, &meta)?;
        }
    }
    Ok(stamp.binary)
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
/// (named `target`, like the launcher's own, or marked with `CACHEDIR.TAG`) and Python's
/// bytecode caches, which the integration tests' helper scripts leave behind.
fn is_target_like(dir: &Path) -> bool {
    matches!(dir.file_name().and_then(OsStr::to_str), Some("target" | "__pycache__")) || dir.join("CACHEDIR.TAG").exists()
}

/// The inputs that are not under `xtask/`: the workspace's manifest and lock, and the
/// configuration and toolchain files Cargo and rustup read for it.
fn fixed_inputs(root: &Path, cwd: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    let cargo_home =
        std::env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    for dir in cwd.ancestors().chain(root.ancestors()) {
        for name in [".cargo/config.toml", ".cargo/config", "rust-toolchain", "rust-toolchain.toml"] {
            out.push(dir.join(name));
        }
    }
    if let Some(dir) = cargo_home {
        out.push(dir.join("config.toml"));
        out.push(dir.join("config"));
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

/// Builds the binary and writes the stamp; returns where the binary is. `Ok(Err(code))`
/// when Cargo failed: its diagnostics are already on the terminal, and the command exits
/// with `code`.
fn build(layout: &Layout) -> Result<Result<PathBuf, ExitCode>, String> {
    let bin_dir = layout.stamp.parent().ok_or("the stamp has no folder")?;
    // The build's start, by the clock the file system stamps files with: a file created
    // now. (The system clock can run a few milliseconds ahead of it, which could make an
    // edit saved just after the start look older.) It becomes the stamp once the build
    // succeeds, so a stamp is always whole when it appears under its name.
    let pending = bin_dir.join(format!("{PACKAGE}.stamp.{}.tmp", std::process::id()));
    let started = fs::File::create(&pending)
        .and_then(|f| f.metadata())
        .and_then(|m| m.modified())
        .map(since_epoch)
        .map_err(|e| format!("cannot write {}: {e}; check that the target folder is writable", pending.display()))?;
    // The working folder is kept so that Cargo reads the same configuration as the
    // `cargo run` that started the launcher. Diagnostics are rendered on stderr as usual;
    // stdout carries the JSON messages that say where the binary went.
    // The first build here compiles a few hundred crates for minutes: say so, and let
    // Cargo show its progress. Later rebuilds are quiet, as `cargo run --quiet` is.
    let first = !layout.stamp.exists();
    if first {
        eprintln!("building the {PACKAGE} tool (first run here; a few minutes, once)");
    }
    let quiet: &[&str] = if first { &[] } else { &["--quiet"] };
    let child = Command::new(&layout.cargo)
        .arg("build")
        .args(quiet)
        .args(["--package", PACKAGE, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(layout.root.join("Cargo.toml"))
        .stdout(Stdio::piped())
        .spawn();
    let result = child.and_then(|mut child| {
        let mut messages = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut messages)?;
        }
        Ok((child.wait()?, messages))
    });
    let (status, messages) = match result {
        Ok(r) => r,
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
    let Some(binary) = executable(&messages) else {
        let _ = fs::remove_file(&pending);
        return Err(format!("Cargo built {PACKAGE} but named no executable for it; run `cargo build --package {PACKAGE}` to see why"));
    };
    let meta = fs::metadata(&binary).map_err(|e| format!("Cargo built {} but it cannot be read: {e}", binary.display()))?;
    let stamp = Stamp { started, identity: identity(&meta), binary: binary.clone(), key: layout.key() };
    let written = match stamp.render() {
        Some(text) => fs::write(&pending, text).and_then(|()| fs::rename(&pending, &layout.stamp)),
        None => Err(std::io::Error::other("the binary's path does not fit on one line")),
    };
    if let Err(e) = written {
        // Not fatal: the next run builds again (a Cargo no-op) and retries.
        let _ = fs::remove_file(&pending);
        eprintln!("warning: cannot write {}: {e}", layout.stamp.display());
    }
    Ok(Ok(binary))
}

/// The executable of the `xtask` binary target among Cargo's JSON messages (one object a
/// line; the artifact line has `"executable":"<path>"` and its target's name).
fn executable(messages: &str) -> Option<PathBuf> {
    let name = format!("\"name\":\"{PACKAGE}\"");
    messages
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(&name) && l.contains("\"kind\":[\"bin\"]"))
        .filter_map(|l| json_string_after(l, "\"executable\":\""))
        .map(PathBuf::from)
        .next_back()
}

/// The JSON string that starts right after `prefix` in `line`, unescaped.
fn json_string_after(line: &str, prefix: &str) -> Option<String> {
    let start = line.find(prefix)? + prefix.len();
    let mut out = String::new();
    let mut chars = line[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex = |chars: &mut std::str::Chars<'_>| u32::from_str_radix(&chars.by_ref().take(4).collect::<String>(), 16).ok();
                    let high = hex(&mut chars)?;
                    let code = if (0xd800..0xdc00).contains(&high) {
                        // A surrogate pair: `\uD83D\uDE00`.
                        if chars.next()? != '\\' || chars.next()? != 'u' {
                            return None;
                        }
                        0x10000 + ((high - 0xd800) << 10) + (hex(&mut chars)?.checked_sub(0xdc00)?)
                    } else {
                        high
                    };
                    out.push(char::from_u32(code)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
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
    let status =
        Command::new(binary).args(std::env::args_os().skip(1)).status().map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    std::process::exit(status.code().unwrap_or(1))
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
        let stamp = Stamp {
            started: Duration::new(5, 7),
            binary: PathBuf::from("/t/debug/xtask"),
            identity: (Duration::new(9, 1), 42),
            key: "root \"/r\"\nenv \"A\"=\"b\\nc\"\n".into(),
        };
        let text = stamp.render().expect("renders");
        let back = Stamp::parse(&text).expect("a whole stamp parses");
        assert_eq!((back.started, back.binary, back.identity, back.key), (stamp.started, stamp.binary, stamp.identity, stamp.key));
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

    #[test]
    fn the_executable_is_read_from_the_binarys_artifact_line() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"xtask_engine"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"crate_types":["bin"],"name":"xtask"},"executable":"C:\\t\\debug\\x\"\u00e9\ud83d\ude00.exe","fresh":true}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(executable(messages), Some(PathBuf::from("C:\\t\\debug\\x\"é😀.exe")));
        assert_eq!(executable(r#"{"reason":"build-finished","success":true}"#), None);
    }
}

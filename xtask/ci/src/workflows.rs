//! The repository's own rules for its GitHub Actions workflows, on top of what actionlint,
//! zizmor and the workflow schema check. The workflows must run on GitHub's stock
//! `ubuntu-latest` runner with nothing but what the tool and a few pinned actions provide:
//!
//! - the 11 workflows of the seeds exist, under their names;
//! - every `run:` step does its work through `cargo xtask` (each command line starts with
//!   it), so that every job runs the same on a laptop, and the tool provisions what it
//!   calls (uv, the linters, the test servers); jobs run on `ubuntu-latest`;
//! - the only actions are those of [`PINNED`], each pinned by the full commit SHA checked
//!   against its repository, with that version in a comment: the setup ones (checkout,
//!   the Rust toolchain, the cargo cache, the tool's cache), AWS credentials through OIDC,
//!   the Pulumi CLI installer, and the docs site's hand-over and deploy (artifacts,
//!   Cloudflare Pages); checkout never keeps the token (`persist-credentials: false`);
//!   jobs may call the repository's reusable workflows;
//! - a step that talks to AWS comes after the job assumed a role through OIDC, and a step
//!   that runs the Pulumi CLI after Pulumi's installer; no long-lived AWS key appears
//!   anywhere; `id-token: write` is granted to exactly the jobs that assume a role, and
//!   the role comes from a repository or environment variable;
//! - caches that hit: every deploy job restores the one shared cargo cache
//!   ([`SHARED_CARGO_KEY`]), which only [`CACHE_WRITER`] writes, on main; every workflow
//!   sets the same `CARGO*` environment, which rust-cache hashes into its key; the tool's
//!   folder is cached only in its parts that hold no secret ([`CACHEABLE_STATE`]), by a
//!   cache step after rust-cache (which deletes files under `target/`);
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

/// Workflows whose jobs deploy (the tag-gated ones and the infrastructure's): each job
/// that runs the tool restores the shared cargo cache.
pub const DEPLOY_WORKFLOWS: &[&str] = &["docker-build.yml", "deploy-lambdas.yml", "publish-libs.yml", "deploy-infra.yml"];

/// The conditions every deployment job's `if:` must contain.
pub const TAG_GATE: &[&str] =
    &["github.event.workflow_run.conclusion == 'success'", "startsWith(github.event.workflow_run.head_branch, 'v')"];

/// One action a step may use, at one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub action: &'static str,
    /// The commit the version's tag points at in the action's repository, checked there.
    pub sha: &'static str,
    /// The version, which the pin's comment names (`# v5.0.0`).
    pub version: &'static str,
}

/// Every action a step may use, and the commits it may be pinned to. Each SHA was read
/// from the action's own repository (the commit its version tag points at); a new
/// version goes here only after the same check.
pub const PINNED: &[Pin] = &[
    Pin { action: "actions/checkout", sha: "08c6903cd8c0fde910a37f88322edcfb5dd907a8", version: "v5.0.0" },
    Pin { action: "dtolnay/rust-toolchain", sha: "e97e2d8cc328f1b50210efc529dca0028893a2d9", version: "v1" },
    Pin { action: "Swatinem/rust-cache", sha: "6323deb102c322ba6fcbdcafc7e3dddab59af2b6", version: "v2.9.2" },
    Pin { action: "Swatinem/rust-cache", sha: "f13886b937689c021905a6b90929199931d60db1", version: "v2.8.1" },
    Pin { action: "actions/cache", sha: "27d5ce7f107fe9357f9df03efb73ab90386fccae", version: "v5.0.5" },
    Pin { action: "aws-actions/configure-aws-credentials", sha: "e6de054238d6b7531b4efff3b6587d9aade6a06c", version: "v6.2.3" },
    Pin { action: "pulumi/actions", sha: "8e5e406f4007fca908480587cb9893c07090f58d", version: "v7.0.0" },
    // docs.yml's deploy job, which builds nothing: the site's hand-over and Cloudflare's
    // official deploy action.
    Pin { action: "actions/upload-artifact", sha: "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", version: "v7.0.0" },
    Pin { action: "actions/download-artifact", sha: "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", version: "v8.0.1" },
    Pin { action: "cloudflare/wrangler-action", sha: "ebbaa1584979971c8614a24965b4405ff95890e0", version: "v4.0.0" },
];

/// The actions a step may use (those of [`PINNED`]).
pub fn allowed_actions() -> Vec<&'static str> {
    let mut out: Vec<&str> = PINNED.iter().map(|p| p.action).collect();
    out.dedup();
    out
}

/// The cargo cache every job of the runner shares (`Swatinem/rust-cache` `shared-key`).
pub const SHARED_CARGO_KEY: &str = "xtask";

/// The one job that writes the shared cargo cache (workflow file, job id): CI's tool
/// tests, whose build (the tool and its tests) covers what every other job compiles.
pub const CACHE_WRITER: (&str, &str) = ("ci.yml", "rust");

/// The writer's `save-if`: on main only, never for a pull request or a tag.
pub const CACHE_WRITER_SAVE_IF: &str = "${{ github.ref == 'refs/heads/main' }}";

/// The environment every workflow that uses the shared cargo cache sets: rust-cache hashes
/// every variable starting with [`CACHE_KEY_ENV_PREFIXES`] into its key, so one job with
/// another value would never hit.
pub const CARGO_ENV: (&str, &str) = ("CARGO_TERM_COLOR", "always");

/// The prefixes of the variables rust-cache hashes into its key (its `config.ts`).
pub const CACHE_KEY_ENV_PREFIXES: &[&str] = &["CARGO", "CC", "CFLAGS", "CXX", "CMAKE", "RUST"];

/// The parts of the tool's folder a workflow may cache: its provisioned tools, its build
/// state and what builds reuse. Never the rest: `pulumi-backups/` holds the stacks' state
/// (secrets included), `pulumi/` the image manifests of one registry, `ci/` and `bench/`
/// one run's reports.
pub const CACHEABLE_STATE: &[&str] = &[
    "target/xtask/tools",
    "target/xtask/state.json",
    "target/xtask/file-cache.json",
    "target/xtask/wheels",
    "target/xtask/wheelhouses",
    "target/xtask/site-packages",
    "target/xtask/oci",
];

/// Long-lived AWS keys, as secrets, environment variables or action inputs.
pub const LONG_LIVED_KEYS: &[&str] = &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws-access-key-id", "aws-secret-access-key"];

/// The action that assumes an AWS role through OIDC.
pub const AWS_CREDENTIALS: &str = "aws-actions/configure-aws-credentials";

/// Pulumi's action, used only to install the CLI.
pub const PULUMI_INSTALLER: &str = "pulumi/actions";

/// Commands that call AWS (seed aliases such as `infra-up-compute` start with one).
pub const AWS_COMMANDS: &[&str] = &[
    "ecs-status",
    "ecs-force-deploy",
    "ecs-force-deploy-all",
    "asg-status",
    "asg-refresh",
    "codeartifact-login",
    "publish-all-libs",
    "lambda-check-images",
    "rollback",
    "service-ecr-login",
    "infra-preview",
    "infra-up",
    "infra-bootstrap",
    "infra-outputs",
    "infra-destroy",
    "infra-recover",
];

/// Commands that run the Pulumi CLI.
pub const PULUMI_COMMANDS: &[&str] = &["infra-preview", "infra-up", "infra-bootstrap", "infra-outputs", "infra-destroy", "infra-recover"];

/// The command names of a `cargo xtask ...` line (the first word, and the first after a
/// `--`), and its flags.
fn command_words(command: &str) -> (Vec<&str>, Vec<&str>) {
    let rest = command.strip_prefix("cargo xtask").unwrap_or(command);
    let words: Vec<&str> = rest.split_whitespace().map(|w| w.trim_matches('"')).collect();
    let mut names = Vec::new();
    let mut expect_name = true;
    for w in &words {
        if *w == "--" {
            expect_name = true;
        } else if expect_name && !w.starts_with('-') {
            names.push(*w);
            expect_name = false;
        }
    }
    (names, words)
}

/// `infra-recover ... --instructions` prints the procedure and runs nothing.
fn runs_nothing(names: &[&str], words: &[&str]) -> bool {
    names.contains(&"infra-recover") && words.contains(&"--instructions")
}

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.iter().any(|c| name == *c || name.strip_prefix(c).is_some_and(|rest| rest.starts_with('-')) && !list.contains(&name))
}

/// Whether a `cargo xtask ...` command line talks to AWS: an AWS command, or a build that
/// publishes to ECR or updates functions.
pub fn needs_aws(command: &str) -> bool {
    let (names, words) = command_words(command);
    if runs_nothing(&names, &words) {
        return false;
    }
    let ecr = words.windows(2).any(|w| w[0] == "--registry" && w[1] == "ecr") || words.contains(&"--registry=ecr");
    ecr || words.contains(&"--update-functions") || names.iter().any(|n| is_one_of(n, AWS_COMMANDS))
}

/// Whether a `cargo xtask ...` command line runs the Pulumi CLI.
pub fn needs_pulumi(command: &str) -> bool {
    let (names, words) = command_words(command);
    !runs_nothing(&names, &words) && names.iter().any(|n| is_one_of(n, PULUMI_COMMANDS))
}

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

/// Whether `permissions` (of a workflow or a job) grants `id-token: write`.
fn grants_id_token(permissions: &Yaml) -> bool {
    permissions.as_str() == Some("write-all") || permissions["id-token"].as_str() == Some("write")
}

/// The lines of a multi-line `with:` value (`path: |`), trimmed, blank ones dropped.
fn lines_of(value: &Yaml) -> Vec<String> {
    value.as_str().map(|v| v.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

/// A `with:` value as text: strings as written, booleans and numbers as YAML prints them.
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        _ => None,
    }
}

fn check_one(file: &str, rel: &str, text: &str, doc: &Yaml, report: &mut PolicyReport) {
    let lines: Vec<&str> = text.lines().collect();
    // The first line at or after `from` (1-based) that contains `needle` and is not a
    // comment; the first anywhere when there is none after.
    let find_from = |from: u32, needle: &str| -> Option<u32> {
        let hit = |(i, l): &(usize, &&str)| l.contains(needle) && !l.trim_start().starts_with('#') && *i + 1 >= from as usize;
        lines.iter().enumerate().find(hit).or_else(|| lines.iter().enumerate().find(|(_, l)| l.contains(needle))).map(|(i, _)| i as u32 + 1)
    };
    let find = |needle: &str| find_from(1, needle);
    let mut problems: Vec<(Option<u32>, String)> = Vec::new();

    if let Some((_, name)) = EXPECTED.iter().find(|(f, _)| *f == file)
        && doc["name"].as_str() != Some(*name)
    {
        problems.push((find("name:"), format!("the workflow's name must be `{name}`, as the seeds name it")));
    }
    if doc["permissions"].is_badvalue() {
        problems.push((find("on:"), "set top-level `permissions:` (least privilege, e.g. `contents: read`)".into()));
    } else if grants_id_token(&doc["permissions"]) {
        problems.push((
            find("id-token"),
            "the workflow grants `id-token: write` to every job; grant it only to the jobs that assume an AWS role".into(),
        ));
    }

    // Long-lived AWS keys, wherever they appear (env, with, secrets).
    for (i, line) in lines.iter().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(key) = LONG_LIVED_KEYS.iter().find(|k| code.contains(*k)) {
            problems.push((
                Some(i as u32 + 1),
                format!(
                    "long-lived AWS key `{key}`: assume the environment's role through OIDC instead ({AWS_CREDENTIALS} with `role-to-assume: ${{{{ vars.AWS_ROLE_ARN }}}}` and `id-token: write`)"
                ),
            ));
        }
    }

    let triggers = &doc["on"];
    if DEPLOYMENTS.contains(&file) {
        let run = &triggers["workflow_run"];
        let workflows: Vec<&str> = run["workflows"].as_vec().map(|v| v.iter().filter_map(Yaml::as_str).collect()).unwrap_or_default();
        let types: Vec<&str> = run["types"].as_vec().map(|v| v.iter().filter_map(Yaml::as_str).collect()).unwrap_or_default();
        if workflows != ["CI"] || !types.contains(&"completed") {
            problems.push((find("on:"), "a deployment runs on `workflow_run: {workflows: [CI], types: [completed]}`".into()));
        }
        if triggers["workflow_dispatch"].is_badvalue() {
            problems.push((find("on:"), "keep `workflow_dispatch` on a deployment for emergencies".into()));
        }
    }

    // The CARGO* environment rust-cache hashes: one value for the whole repository.
    let cargo_env_problems = |env: &Yaml, line: Option<u32>, whose: &str, out: &mut Vec<(Option<u32>, String)>| {
        for (k, v) in env.as_hash().into_iter().flatten() {
            let Some(k) = k.as_str() else { continue };
            if CACHE_KEY_ENV_PREFIXES.iter().any(|p| k.starts_with(p))
                && !(k == CARGO_ENV.0 && v.as_str() == Some(CARGO_ENV.1) && whose.is_empty())
            {
                out.push((
                    line,
                    format!(
                        "{whose}`{k}` changes rust-cache's key (it hashes every {} variable): set only `{}: {}`, at the top of every workflow",
                        CACHE_KEY_ENV_PREFIXES.join("*/") + "*",
                        CARGO_ENV.0,
                        CARGO_ENV.1
                    ),
                ));
            }
        }
    };
    cargo_env_problems(&doc["env"], find("env:"), "", &mut problems);

    let Some(jobs) = doc["jobs"].as_hash() else {
        problems.push((find("jobs"), "no `jobs:`".into()));
        flush(rel, problems, report);
        return;
    };
    let mut uses_shared_cache = false;
    for (job_name, job) in jobs {
        let job_name = job_name.as_str().unwrap_or("?");
        let job_line = find(&format!("  {job_name}:")).unwrap_or(1);
        let at = |needle: &str| find_from(job_line, needle);
        if DEPLOYMENTS.contains(&file) {
            let condition = job["if"].as_str().map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default();
            let missing: Vec<&&str> = TAG_GATE.iter().filter(|g| !condition.contains(**g)).collect();
            if !missing.is_empty() {
                problems.push((
                    Some(job_line),
                    format!(
                        "job `{job_name}` must run only for a successful CI run of a v* tag: its `if:` lacks {}",
                        missing.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(" and ")
                    ),
                ));
            }
        }
        if let Some(uses) = job["uses"].as_str() {
            if !(uses.starts_with("./.github/workflows/") || uses.starts_with("$/.github/workflows/")) {
                problems
                    .push((at(uses), format!("job `{job_name}` calls `{uses}`; jobs may only call this repository's reusable workflows")));
            }
            continue;
        }
        cargo_env_problems(&job["env"], Some(job_line), &format!("job `{job_name}` sets "), &mut problems);
        let Some(steps) = job["steps"].as_vec() else { continue };
        let in_container = !job["container"].is_badvalue();
        if !in_container && job["runs-on"].as_str() != Some("ubuntu-latest") {
            problems.push((
                at("runs-on"),
                format!("job `{job_name}` must run on GitHub's stock `ubuntu-latest` runner, whose tools the workflows rely on"),
            ));
        }

        let mut assumed_role = false;
        let mut has_pulumi = false;
        let mut rust_cache_seen = false;
        let mut shared_cache = false;
        let mut runs_xtask = false;
        for step in steps {
            if let Some(script) = step["run"].as_str() {
                report.run_steps += 1;
                for command in commands(script) {
                    let first = command.lines().next().unwrap_or(&command).to_owned();
                    if !(command == "cargo xtask" || command.starts_with("cargo xtask ")) {
                        problems.push((
                            at(&first),
                            format!(
                                "`{first}` in job `{job_name}` does work outside `cargo xtask`; make it a `cargo xtask` command so that it runs the same locally"
                            ),
                        ));
                        continue;
                    }
                    runs_xtask = true;
                    if needs_aws(&command) && !assumed_role {
                        problems.push((
                            at(&first),
                            format!(
                                "`{first}` in job `{job_name}` talks to AWS, but no earlier step assumes a role: add {AWS_CREDENTIALS} (OIDC) before it"
                            ),
                        ));
                    }
                    if needs_pulumi(&command) && !has_pulumi {
                        problems.push((
                            at(&first),
                            format!(
                                "`{first}` in job `{job_name}` runs the Pulumi CLI, which the runner lacks: install it first with {PULUMI_INSTALLER} (no `command:`, an exact `pulumi-version`)"
                            ),
                        ));
                    }
                }
            }
            let Some(uses) = step["uses"].as_str() else { continue };
            report.uses_steps += 1;
            let (action, reference) = uses.split_once('@').unwrap_or((uses, ""));
            let with = &step["with"];
            let line = at(uses);
            if !PINNED.iter().any(|p| p.action == action) {
                problems.push((
                    line,
                    format!(
                        "job `{job_name}` uses `{action}`; steps may only use the setup actions ({}), work goes through `cargo xtask`",
                        allowed_actions().join(", ")
                    ),
                ));
            } else if reference.len() != 40 || !reference.chars().all(|c| c.is_ascii_hexdigit()) {
                problems.push((line, format!("pin `{action}` by its full commit SHA (`{action}@<40 hex> # vX.Y.Z`), not `{reference}`")));
            } else if let Some(pin) = PINNED.iter().find(|p| p.action == action && p.sha == reference) {
                let comment = line.and_then(|l| lines.get(l as usize - 1)).and_then(|l| l.split_once(" # ")).map(|(_, c)| c.trim());
                if !comment.is_some_and(|c| c == pin.version || c.starts_with(&format!("{} ", pin.version))) {
                    problems.push((line, format!("the pin of `{action}` must name its version in a comment: `{uses} # {}`", pin.version)));
                }
            } else {
                let known: Vec<String> =
                    PINNED.iter().filter(|p| p.action == action).map(|p| format!("{} ({})", p.sha, p.version)).collect();
                problems.push((
                    line,
                    format!(
                        "`{action}@{reference}` is not a pin checked against {action}'s repository: use {}, or add the new version's commit to PINNED after checking it there",
                        known.join(" or ")
                    ),
                ));
            }
            match action {
                "actions/checkout" if with["persist-credentials"].as_bool() != Some(false) => {
                    problems.push((line, format!("checkout in job `{job_name}` must set `persist-credentials: false`")));
                }
                "Swatinem/rust-cache" => {
                    rust_cache_seen = true;
                    let save_if = scalar(&with["save-if"]);
                    if with["shared-key"].as_str() == Some(SHARED_CARGO_KEY) {
                        shared_cache = true;
                        let writer = (file, job_name) == CACHE_WRITER;
                        let want = if writer { CACHE_WRITER_SAVE_IF } else { "false" };
                        if save_if.as_deref() != Some(want) {
                            problems.push((
                                line,
                                if writer {
                                    format!("the shared cargo cache's writer must save on main only: `save-if: {CACHE_WRITER_SAVE_IF}`")
                                } else {
                                    format!(
                                        "job `{job_name}` would write the shared cargo cache: set `save-if: false` (only {} job `{}` writes it, on main)",
                                        CACHE_WRITER.0, CACHE_WRITER.1
                                    )
                                },
                            ));
                        }
                    }
                }
                "actions/cache" | "actions/cache/restore" => {
                    for path in lines_of(&with["path"]).iter().filter(|p| p.starts_with("target/")) {
                        if !CACHEABLE_STATE.contains(&path.as_str()) {
                            problems.push((
                                at(path.as_str()),
                                format!(
                                    "job `{job_name}` caches `{path}`; cache only these parts of the tool's folder, which hold no secret: {}",
                                    CACHEABLE_STATE.join(", ")
                                ),
                            ));
                        } else if !rust_cache_seen && !job_steps_use(steps, "Swatinem/rust-cache").is_empty() {
                            problems.push((
                                line,
                                format!(
                                    "in job `{job_name}` the cache of `{path}` comes before rust-cache, whose restore and cleanup delete the files under target/: put it after"
                                ),
                            ));
                        }
                    }
                }
                AWS_CREDENTIALS => {
                    assumed_role = true;
                    let role = with["role-to-assume"].as_str().unwrap_or_default();
                    if !role.contains("vars.") {
                        problems.push((
                            line,
                            format!(
                                "{AWS_CREDENTIALS} in job `{job_name}` must assume the role named by a repository or environment variable: `role-to-assume: ${{{{ vars.AWS_ROLE_ARN }}}}`"
                            ),
                        ));
                    }
                    if with["aws-region"].is_badvalue() {
                        problems.push((line, format!("{AWS_CREDENTIALS} in job `{job_name}` needs `aws-region`")));
                    }
                    if !grants_id_token(&job["permissions"]) {
                        problems.push((
                            line,
                            format!("job `{job_name}` assumes an AWS role through OIDC, so it needs `permissions: {{id-token: write}}`"),
                        ));
                    }
                }
                PULUMI_INSTALLER => {
                    has_pulumi = true;
                    if !with["command"].is_badvalue() {
                        problems.push((
                            line,
                            format!("{PULUMI_INSTALLER} in job `{job_name}` only installs the CLI: drop `command:`, the tool runs Pulumi"),
                        ));
                    }
                    let version = scalar(&with["pulumi-version"]).unwrap_or_default();
                    let exact = version.split('.').count() == 3
                        && version.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
                    if !exact {
                        problems.push((
                            line,
                            format!("{PULUMI_INSTALLER} in job `{job_name}` must pin the CLI: `pulumi-version: X.Y.Z`, not `{version}`"),
                        ));
                    }
                }
                _ => {}
            }
        }
        if grants_id_token(&job["permissions"]) && !assumed_role {
            problems.push((
                at("id-token"),
                format!("job `{job_name}` grants `id-token: write` but assumes no AWS role; grant it only to the jobs that do"),
            ));
        }
        if DEPLOY_WORKFLOWS.contains(&file) && runs_xtask && !shared_cache {
            problems.push((
                Some(job_line),
                format!(
                    "deploy job `{job_name}` compiles the tool without the shared cargo cache: use Swatinem/rust-cache with `shared-key: {SHARED_CARGO_KEY}` and `save-if: false`, so it restores CI's compile"
                ),
            ));
        }
        uses_shared_cache |= shared_cache;
    }
    if uses_shared_cache && doc["env"][CARGO_ENV.0].as_str() != Some(CARGO_ENV.1) {
        problems.push((
            find("jobs:"),
            format!(
                "the workflow uses the shared cargo cache: set `env: {{{}: {}}}` at its top, as every such workflow does, so that rust-cache's key is the same in all of them",
                CARGO_ENV.0, CARGO_ENV.1
            ),
        ));
    }
    flush(rel, problems, report);
}

/// The steps of a job that use `action`.
fn job_steps_use<'a>(steps: &'a [Yaml], action: &str) -> Vec<&'a Yaml> {
    steps.iter().filter(|s| s["uses"].as_str().is_some_and(|u| u.split('@').next() == Some(action))).collect()
}

fn flush(rel: &str, problems: Vec<(Option<u32>, String)>, report: &mut PolicyReport) {
    for (line, message) in problems {
        report.diagnostics.push(Diagnostic::new("workflow policy", message).at(rel, line, None));
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

    /// The policy's findings for one deployment workflow `text` (with the 10 others
    /// missing, whose findings are dropped), as `line: message` strings.
    fn findings(file: &str, text: &str) -> Vec<String> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        write(dir, file, text);
        let report = check(dir, "w").unwrap();
        report
            .diagnostics
            .iter()
            .filter(|d| d.file.is_some())
            .map(|d| format!("{}: {}", d.line.map(|l| l.to_string()).unwrap_or_default(), d.message))
            .collect()
    }

    /// The 1-based line of the first line of `text` containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).expect("needle in text") + 1
    }

    const CHECKOUT: &str = "      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0\n        with:\n          persist-credentials: false\n";
    const SHARED_CACHE: &str = "      - uses: Swatinem/rust-cache@6323deb102c322ba6fcbdcafc7e3dddab59af2b6 # v2.9.2\n        with:\n          shared-key: xtask\n          save-if: false\n";
    const OIDC: &str = "      - uses: aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c # v6.2.3\n        with:\n          role-to-assume: ${{ vars.AWS_ROLE_ARN }}\n          aws-region: eu-central-1\n";
    const HEAD: &str =
        "name: Deploy Infrastructure\non: workflow_dispatch\npermissions:\n  contents: read\nenv:\n  CARGO_TERM_COLOR: always\njobs:\n";

    /// A deployment job as the workflows write one: OIDC, the shared cargo cache, the tool.
    fn deploy_job(permissions: &str, steps: &str) -> String {
        format!("{HEAD}  deploy:\n    runs-on: ubuntu-latest\n{permissions}    steps:\n{CHECKOUT}{SHARED_CACHE}{steps}")
    }
    const ID_TOKEN: &str = "    permissions:\n      contents: read\n      id-token: write\n";

    #[test]
    fn a_clean_deployment_job_passes() {
        let text = deploy_job(ID_TOKEN, &format!("{OIDC}      - run: cargo xtask ecs-force-deploy backend --env dev\n"));
        assert_eq!(findings("deploy-infra.yml", &text), Vec::<String>::new());
    }

    #[test]
    fn long_lived_aws_keys_are_refused_wherever_they_appear() {
        let text = deploy_job(
            "    env:\n      AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}\n",
            "      - run: cargo xtask ci lint\n        env:\n          AWS_SECRET_ACCESS_KEY: ${{ secrets.KEY }}\n      # AWS_ACCESS_KEY_ID in a comment is not a key\n",
        );
        let found = findings("deploy-infra.yml", &text);
        assert!(
            found.iter().any(|f| f.starts_with("11: long-lived AWS key `AWS_ACCESS_KEY_ID`: assume the environment's role through OIDC")),
            "{found:#?}"
        );
        let line = line_of(&text, "AWS_SECRET_ACCESS_KEY:");
        assert!(found.iter().any(|f| f.starts_with(&format!("{line}: long-lived AWS key `AWS_SECRET_ACCESS_KEY`"))), "{found:#?}");
        assert_eq!(found.len(), 2, "the comment is not a finding: {found:#?}");
        let inputs = deploy_job(ID_TOKEN, &OIDC.replace("role-to-assume: ${{ vars.AWS_ROLE_ARN }}", "aws-access-key-id: ${{ secrets.K }}"));
        let found = findings("deploy-infra.yml", &inputs);
        assert!(found.iter().any(|f| f.contains("long-lived AWS key `aws-access-key-id`")), "{found:#?}");
        assert!(found.iter().any(|f| f.contains("must assume the role named by a repository or environment variable")), "{found:#?}");
    }

    #[test]
    fn id_token_goes_with_the_role_and_only_with_it() {
        let no_token = deploy_job("", &format!("{OIDC}      - run: cargo xtask asg-refresh --env dev\n"));
        let found = findings("deploy-infra.yml", &no_token);
        assert!(
            found.iter().any(|f| f.contains("job `deploy` assumes an AWS role through OIDC, so it needs `permissions: {id-token: write}`")),
            "{found:#?}"
        );
        let token_only = deploy_job(ID_TOKEN, "      - run: cargo xtask ci lint\n");
        let found = findings("deploy-infra.yml", &token_only);
        assert!(found.iter().any(|f| f.contains("job `deploy` grants `id-token: write` but assumes no AWS role")), "{found:#?}");
        let top = deploy_job(ID_TOKEN, &format!("{OIDC}      - run: cargo xtask asg-status --env dev\n"))
            .replace("permissions:\n  contents: read\n", "permissions:\n  contents: read\n  id-token: write\n");
        let found = findings("deploy-infra.yml", &top);
        assert!(found.iter().any(|f| f.starts_with("5: the workflow grants `id-token: write` to every job")), "{found:#?}");
    }

    #[test]
    fn aws_and_pulumi_steps_need_what_provides_them_first() {
        let text = deploy_job(
            ID_TOKEN,
            &format!(
                "      - run: cargo xtask service-push-all --registry ecr\n{OIDC}      - run: cargo xtask infra-up compute dev --yes-prod\n      - run: pulumi up\n"
            ),
        );
        let found = findings("deploy-infra.yml", &text);
        let line = line_of(&text, "service-push-all");
        assert!(
            found.iter().any(|f| f.starts_with(&format!(
                "{line}: `cargo xtask service-push-all --registry ecr` in job `deploy` talks to AWS, but no earlier step assumes a role"
            ))),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f
                    .contains("`cargo xtask infra-up compute dev --yes-prod` in job `deploy` runs the Pulumi CLI, which the runner lacks")),
            "{found:#?}"
        );
        assert!(found.iter().any(|f| f.contains("`pulumi up` in job `deploy` does work outside `cargo xtask`")), "{found:#?}");
        let installer = "      - uses: pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d # v7.0.0\n        with:\n          command: up\n          pulumi-version: ^3\n";
        let found = findings(
            "deploy-infra.yml",
            &deploy_job(ID_TOKEN, &format!("{installer}{OIDC}      - run: cargo xtask infra-up compute dev\n")),
        );
        assert!(found.iter().any(|f| f.contains("only installs the CLI: drop `command:`")), "{found:#?}");
        assert!(found.iter().any(|f| f.contains("must pin the CLI: `pulumi-version: X.Y.Z`, not `^3`")), "{found:#?}");
        assert_eq!(found.len(), 2, "{found:#?}");
    }

    #[test]
    fn deploy_jobs_restore_the_shared_cargo_cache_and_only_the_writer_saves_it() {
        let own_key = deploy_job(ID_TOKEN, &format!("{OIDC}      - run: cargo xtask asg-status --env dev\n"))
            .replace("shared-key: xtask\n          ", "");
        let found = findings("deploy-infra.yml", &own_key);
        assert!(
            found.iter().any(|f| f.starts_with("8: deploy job `deploy` compiles the tool without the shared cargo cache")),
            "{found:#?}"
        );
        let saves = deploy_job(ID_TOKEN, &format!("{OIDC}      - run: cargo xtask asg-status --env dev\n"))
            .replace("save-if: false", "save-if: true");
        let found = findings("deploy-infra.yml", &saves);
        assert!(
            found
                .iter()
                .any(|f| f
                    .contains("job `deploy` would write the shared cargo cache: set `save-if: false` (only ci.yml job `rust` writes it")),
            "{found:#?}"
        );
        let writer = format!(
            "name: CI\non: push\npermissions:\n  contents: read\nenv:\n  CARGO_TERM_COLOR: always\njobs:\n  rust:\n    runs-on: ubuntu-latest\n    steps:\n{CHECKOUT}{SHARED_CACHE}      - run: cargo xtask ci rust\n"
        );
        let found = findings("ci.yml", &writer);
        assert!(found.iter().any(|f| f.contains("the shared cargo cache's writer must save on main only")), "{found:#?}");
        assert!(findings("ci.yml", &writer.replace("save-if: false", "save-if: ${{ github.ref == 'refs/heads/main' }}")).is_empty());
    }

    #[test]
    fn the_cargo_environment_is_one_for_every_shared_cache_user() {
        let text = deploy_job(ID_TOKEN, &format!("{OIDC}      - run: cargo xtask asg-status --env dev\n"));
        let found = findings("deploy-infra.yml", &text.replace("env:\n  CARGO_TERM_COLOR: always\n", ""));
        assert!(
            found.iter().any(|f| f.contains("the workflow uses the shared cargo cache: set `env: {CARGO_TERM_COLOR: always}`")),
            "{found:#?}"
        );
        let job_env = text.replace("    runs-on: ubuntu-latest\n", "    runs-on: ubuntu-latest\n    env:\n      RUSTFLAGS: -Dwarnings\n");
        let found = findings("deploy-infra.yml", &job_env);
        assert!(found.iter().any(|f| f.contains("job `deploy` sets `RUSTFLAGS` changes rust-cache's key")), "{found:#?}");
    }

    #[test]
    fn the_tools_folder_is_cached_after_rust_cache_and_never_whole() {
        let cache = |path: &str| {
            format!(
                "      - uses: actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae # v5.0.5\n        with:\n          path: |\n            {path}\n          key: k\n"
            )
        };
        let after = deploy_job(ID_TOKEN, &format!("{}{OIDC}      - run: cargo xtask asg-status --env dev\n", cache("target/xtask/tools")));
        assert!(findings("deploy-infra.yml", &after).is_empty(), "{:#?}", findings("deploy-infra.yml", &after));
        let whole = deploy_job(ID_TOKEN, &format!("{}{OIDC}      - run: cargo xtask asg-status --env dev\n", cache("target/xtask")));
        let found = findings("deploy-infra.yml", &whole);
        assert!(
            found.iter().any(|f| f.contains("caches `target/xtask`; cache only these parts of the tool's folder, which hold no secret")),
            "{found:#?}"
        );
        let backups =
            deploy_job(ID_TOKEN, &format!("{}{OIDC}      - run: cargo xtask asg-status --env dev\n", cache("target/xtask/pulumi-backups")));
        assert!(findings("deploy-infra.yml", &backups).iter().any(|f| f.contains("caches `target/xtask/pulumi-backups`")));
        let before = format!(
            "{HEAD}  deploy:\n    runs-on: ubuntu-latest\n{ID_TOKEN}    steps:\n{CHECKOUT}{}{SHARED_CACHE}{OIDC}      - run: cargo xtask asg-status --env dev\n",
            cache("target/xtask/tools")
        );
        let found = findings("deploy-infra.yml", &before);
        assert!(found.iter().any(|f| f.contains("the cache of `target/xtask/tools` comes before rust-cache")), "{found:#?}");
    }

    #[test]
    fn pins_are_the_checked_commits_with_their_version_named() {
        let unknown = deploy_job(ID_TOKEN, &format!("{OIDC}      - run: cargo xtask asg-status --env dev\n"))
            .replace("e6de054238d6b7531b4efff3b6587d9aade6a06c", &"a".repeat(40));
        let found = findings("deploy-infra.yml", &unknown);
        assert!(found.iter().any(|f| f.contains("is not a pin checked against aws-actions/configure-aws-credentials's repository: use e6de054238d6b7531b4efff3b6587d9aade6a06c (v6.2.3)")), "{found:#?}");
        let no_comment =
            deploy_job(ID_TOKEN, &format!("{OIDC}      - run: cargo xtask asg-status --env dev\n")).replace(" # v6.2.3", " # v6");
        let found = findings("deploy-infra.yml", &no_comment);
        assert!(found.iter().any(|f| f.contains("must name its version in a comment: `aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c # v6.2.3`")), "{found:#?}");
        let self_hosted = deploy_job(ID_TOKEN, &format!("{OIDC}      - run: cargo xtask asg-status --env dev\n"))
            .replace("runs-on: ubuntu-latest", "runs-on: self-hosted");
        assert!(findings("deploy-infra.yml", &self_hosted).iter().any(|f| f.contains("must run on GitHub's stock `ubuntu-latest` runner")));
    }

    #[test]
    fn which_commands_need_aws_and_pulumi() {
        assert!(needs_aws("cargo xtask service-push-all --registry ecr"));
        assert!(needs_aws("cargo xtask ci shards --max 4 -- lambda-bootstrap --registry ecr --explain"));
        assert!(needs_aws("cargo xtask ecs-force-deploy backend --env \"$DEPLOY_ENV\" --yes-prod"));
        assert!(needs_aws("cargo xtask infra-up-compute dev") && needs_pulumi("cargo xtask infra-up-compute dev"));
        assert!(!needs_aws("cargo xtask infra-recover \"$STACK\" \"$DEPLOY_ENV\" --instructions"));
        assert!(!needs_pulumi("cargo xtask infra-recover all dev --instructions") && needs_pulumi("cargo xtask infra-recover all dev"));
        assert!(!needs_aws("cargo xtask lambda-bootstrap --shard 1/2") && !needs_aws("cargo xtask infra-pr-comment preview.md --pr 1"));
        assert!(!needs_pulumi("cargo xtask ci infra") && !needs_aws("cargo xtask ci changes --all"));
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

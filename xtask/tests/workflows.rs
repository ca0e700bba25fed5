//! The 11 workflows pass actionlint, zizmor (offline) and check-jsonschema's GitHub
//! workflow schema, follow the repository's policy (xtask/ci/src/workflows.rs), and work
//! on a stock `ubuntu-latest` runner: no long-lived AWS key, every deploy job on the
//! shared cargo cache, no tool the runner lacks. The checkers are installed by `cargo
//! xtask ci workflows` from the locked `workflow-lint` group; when they cannot be
//! installed the command, and so these tests, fail.
//!
//! Each rule is shown twice: the repository's workflows pass it, and a copy with the
//! violation planted fails it, naming the file and line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use camino::Utf8Path;
use xtask_ci::workflows::{self, EXPECTED};
use yaml_rust2::{Yaml, YamlLoader};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn xtask(root: &Path, args: &[&str]) -> Output {
    xtask_env(root, args, &[])
}

fn xtask_env(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("--root").arg(root).args(args).env_remove("GITHUB_ACTIONS").env_remove("GITHUB_OUTPUT").env_remove("GITHUB_STEP_SUMMARY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn workflow(file: &str) -> Yaml {
    let text = fs::read_to_string(repo_root().join(".github/workflows").join(file)).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// The steps of job `job` of `file`.
fn steps(file: &str, job: &str) -> Vec<Yaml> {
    workflow(file)["jobs"][job]["steps"].as_vec().unwrap_or_else(|| panic!("{file} has a job `{job}` with steps")).clone()
}

/// The step of `steps` whose `run:` contains `needle`.
fn run_step<'a>(steps: &'a [Yaml], needle: &str) -> &'a Yaml {
    steps.iter().find(|s| s["run"].as_str().is_some_and(|r| r.contains(needle))).unwrap_or_else(|| panic!("a step runs `{needle}`"))
}

/// A copy of the repository's workflows (and the zizmor configuration) in a fresh
/// folder with an `xtask.toml`, for planting violations.
struct Copy {
    dir: tempfile::TempDir,
}

impl Copy {
    fn new() -> Copy {
        let copy = Copy { dir: tempfile::tempdir().unwrap() };
        let root = copy.dir.path();
        fs::write(root.join("xtask.toml"), "").unwrap();
        let dir = root.join(".github/workflows");
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(repo_root().join(".github/workflows")).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        fs::copy(repo_root().join(".github/zizmor.yml"), root.join(".github/zizmor.yml")).unwrap();
        copy
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces `from` (which must be there) with `to` in one workflow.
    fn plant(&self, file: &str, from: &str, to: &str) {
        let path = self.root().join(".github/workflows").join(file);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} contains {from:?}");
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// The policy's findings, as `file:line: workflow policy: message` lines.
    fn policy(&self) -> Vec<String> {
        let dir = Utf8Path::from_path(self.root()).unwrap().join(".github/workflows");
        workflows::check(&dir, ".github/workflows").unwrap().diagnostics.iter().map(|d| d.display()).collect()
    }
}

#[test]
fn every_workflow_passes_actionlint_zizmor_and_the_schema() {
    let out = xtask(&repo_root(), &["ci", "workflows"]);
    let err = stderr(&out);
    assert!(out.status.success(), "cargo xtask ci workflows failed:\n{err}");
    // Each checker really ran over the 11 files (not vacuously).
    assert!(err.contains("ok     workflows policy") && err.contains(&format!("{} workflows", EXPECTED.len())), "{err}");
    assert!(err.contains("ok     workflows actionlint") && err.contains(&format!("{} files", EXPECTED.len())), "{err}");
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
fn no_workflow_uses_long_lived_aws_keys() {
    // Read the files directly: no key name, as a secret, an env var or an action input.
    for file in workflows::workflow_files(Utf8Path::from_path(&repo_root().join(".github/workflows")).unwrap()) {
        let text = fs::read_to_string(repo_root().join(".github/workflows").join(&file)).unwrap();
        for key in workflows::LONG_LIVED_KEYS {
            assert!(!text.contains(key), "{file} mentions {key}");
        }
    }
    // Every job that talks to AWS assumes a role through OIDC first, named by a variable.
    let mut oidc_jobs = 0;
    for file in workflows::DEPLOY_WORKFLOWS {
        for (name, job) in workflow(file)["jobs"].as_hash().unwrap() {
            let steps = job["steps"].as_vec().unwrap();
            let Some(at) = steps.iter().position(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(workflows::AWS_CREDENTIALS))) else {
                continue;
            };
            oidc_jobs += 1;
            assert_eq!(steps[at]["with"]["role-to-assume"].as_str(), Some("${{ vars.AWS_ROLE_ARN }}"), "{file} {name:?}");
            assert_eq!(job["permissions"]["id-token"].as_str(), Some("write"), "{file} {name:?}");
        }
    }
    assert_eq!(oidc_jobs, 7, "plan, build, functions; build-push; publish; preview, deploy (and no others)");

    // Planted: a static key, as the workflows had before, is a policy error with its line.
    let copy = Copy::new();
    copy.plant(
        "publish-libs.yml",
        "        run: cargo xtask publish-all-libs \"$DEPLOY_ENV\" --yes-prod\n",
        "        run: cargo xtask publish-all-libs \"$DEPLOY_ENV\" --yes-prod\n        env:\n          AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n",
    );
    let found = copy.policy();
    assert!(
        found.iter().any(|f| f.starts_with(".github/workflows/publish-libs.yml:")
            && f.contains("workflow policy: long-lived AWS key `AWS_SECRET_ACCESS_KEY`: assume the environment's role through OIDC")),
        "{found:#?}"
    );
}

#[test]
fn every_deploy_job_restores_the_shared_cargo_cache_which_only_ci_writes() {
    let mut deploy_jobs = 0;
    for file in workflows::DEPLOY_WORKFLOWS {
        for (name, job) in workflow(file)["jobs"].as_hash().unwrap() {
            let steps = job["steps"].as_vec().unwrap();
            let cache = steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("Swatinem/rust-cache@")));
            let cache = cache.unwrap_or_else(|| panic!("{file} job {name:?} has no cargo cache"));
            assert_eq!(cache["with"]["shared-key"].as_str(), Some(workflows::SHARED_CARGO_KEY), "{file} {name:?}");
            assert_eq!(cache["with"]["save-if"].as_bool(), Some(false), "{file} {name:?} only reads it");
            deploy_jobs += 1;
        }
    }
    assert_eq!(deploy_jobs, 8, "the deploy workflows' jobs");
    // The writer: CI's tool tests, on main only; its build covers every job's.
    let (file, job) = workflows::CACHE_WRITER;
    let writer = steps(file, job);
    let cache = writer.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("Swatinem/rust-cache@"))).unwrap();
    assert_eq!(cache["with"]["shared-key"].as_str(), Some(workflows::SHARED_CARGO_KEY));
    assert_eq!(cache["with"]["save-if"].as_str(), Some(workflows::CACHE_WRITER_SAVE_IF));
    // One CARGO* environment everywhere the key is shared: rust-cache hashes it.
    for f in ["ci.yml", "_lint.yml", "_test.yml", "deploy-lambdas.yml", "docker-build.yml", "publish-libs.yml", "deploy-infra.yml"] {
        assert_eq!(workflow(f)["env"]["CARGO_TERM_COLOR"].as_str(), Some("always"), "{f}");
    }

    // Planted: a deploy job on its own cache key compiles everything from scratch.
    let copy = Copy::new();
    copy.plant("docker-build.yml", "          shared-key: xtask # CI's compile of the tool, restored\n", "");
    let found = copy.policy();
    assert!(
        found.iter().any(|f| f.starts_with(".github/workflows/docker-build.yml:")
            && f.contains("deploy job `build-push` compiles the tool without the shared cargo cache")),
        "{found:#?}"
    );
    // Planted: a second writer.
    let copy = Copy::new();
    copy.plant("deploy-lambdas.yml", "          save-if: false # only CI's rust job writes it, on main\n", "");
    let found = copy.policy();
    assert!(found.iter().any(|f| f.contains("job `plan` would write the shared cargo cache: set `save-if: false`")), "{found:#?}");
}

#[test]
fn no_step_calls_a_tool_the_runner_lacks() {
    // The policy's reading: every command is `cargo xtask`, each AWS command after the
    // role, each Pulumi command after Pulumi's installer; the repository passes it.
    let dir = Utf8Path::from_path(&repo_root()).unwrap().join(".github/workflows");
    let report = workflows::check(&dir, ".github/workflows").unwrap();
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    // The Pulumi CLI is the SDK's version, the one infra/uv.lock locks.
    let lock = fs::read_to_string(repo_root().join("infra/uv.lock")).unwrap();
    let sdk = lock.split("[[package]]").find(|p| p.contains("\nname = \"pulumi\"\n")).expect("pulumi in infra/uv.lock");
    let sdk = sdk.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"');
    let mut installers = 0;
    for job in ["preview", "deploy"] {
        for s in steps("deploy-infra.yml", job).iter().filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("pulumi/actions@"))) {
            installers += 1;
            assert_eq!(s["with"]["pulumi-version"].as_str(), Some(sdk), "deploy-infra.yml {job}: the CLI of the locked SDK");
            assert!(s["with"]["command"].is_badvalue(), "install only");
        }
    }
    assert_eq!(installers, 2);
    // Images on the real upstream bases, which a stock runner pulls: never the stand-in.
    for file in workflows::workflow_files(Utf8Path::from_path(&repo_root().join(".github/workflows")).unwrap()) {
        let text = fs::read_to_string(repo_root().join(".github/workflows").join(&file)).unwrap();
        assert!(!text.contains("--allow-standin-base"), "{file} publishes images built on the stand-in base");
    }

    // Planted: a tool the runner does not have, a Pulumi command without the CLI, an AWS
    // command before the role.
    let copy = Copy::new();
    copy.plant(
        "docs-freshness.yml",
        "        run: cargo xtask docs-freshness\n",
        "        run: |\n          cargo xtask docs-freshness\n          uv run mkdocs build\n",
    );
    copy.plant("deploy-infra.yml", "      - uses: pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d # v7.0.0\n        with:\n          pulumi-version: 3.272.0\n", "");
    copy.plant(
        "docker-build.yml",
        "      - uses: aws-actions/configure-aws-credentials",
        "      - run: cargo xtask ecs-status --env \"$DEPLOY_ENV\"\n      - uses: aws-actions/configure-aws-credentials",
    );
    let policy = copy.policy();
    let has = |needle: &str| policy.iter().any(|f| f.contains(needle));
    assert!(has("docs-freshness.yml:") && has("`uv run mkdocs build` in job `freshness` does work outside `cargo xtask`"), "{policy:#?}");
    assert!(
        has(
            "`cargo xtask infra-preview \"$PREVIEW_ENV\" --pr-comment preview.md` in job `preview` runs the Pulumi CLI, which the runner lacks"
        ),
        "{policy:#?}"
    );
    assert!(
        has("`cargo xtask ecs-status --env \"$DEPLOY_ENV\"` in job `build-push` talks to AWS, but no earlier step assumes a role"),
        "{policy:#?}"
    );
}

#[test]
fn each_checker_fails_on_a_planted_violation_and_names_the_file() {
    let copy = Copy::new();
    // Not a job key: actionlint and the schema. Work outside cargo xtask, with an
    // attacker-controlled expansion: the policy and zizmor.
    copy.plant("docs-freshness.yml", "    runs-on: ubuntu-latest\n", "    runs-on: ubuntu-latest\n    bogus-key: 1\n");
    copy.plant(
        "docs-freshness.yml",
        "        run: cargo xtask docs-freshness\n",
        "        run: echo ${{ github.event.head_commit.message }}\n",
    );
    // A command that does not exist: the policy's call check.
    copy.plant("_lint.yml", "run: cargo xtask ci lint", "run: cargo xtask lint-all --quick");
    // A tag instead of a SHA on one of GitHub's own actions: the policy, and zizmor by the
    // repository's configuration (its default accepts a tag for `actions/*`).
    copy.plant(
        "devcontainer-prebuild.yml",
        "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0",
        "actions/checkout@v5.0.0",
    );

    let out = xtask(copy.root(), &["ci", "workflows"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = |needle: &str| err.lines().any(|l| l.starts_with("error: ") && l.contains(needle));
    assert!(
        line("workflows policy: .github/workflows/docs-freshness.yml:")
            && line("`echo ${{ github.event.head_commit.message }}` in job `freshness` does work outside `cargo xtask`"),
        "{err}"
    );
    assert!(line("workflows policy: .github/workflows/_lint.yml:") && line("`cargo xtask lint-all` is not a command"), "{err}");
    assert!(
        line("workflows policy: .github/workflows/devcontainer-prebuild.yml:") && line("pin `actions/checkout` by its full commit SHA"),
        "{err}"
    );
    assert!(line("workflows actionlint: .github/workflows/docs-freshness.yml:") && line("bogus-key"), "{err}");
    assert!(line("workflows zizmor: .github/workflows/docs-freshness.yml:") && line("[template-injection]"), "{err}");
    assert!(line("workflows zizmor: .github/workflows/devcontainer-prebuild.yml:") && line("[unpinned-uses]"), "{err}");
    assert!(line("workflows schema: .github/workflows/docs-freshness.yml:") && line("'bogus-key' was unexpected"), "{err}");
}

/// Evaluates a step's `if:` of the form `env.DEPLOY_ENV == '<env>'` or `!=` for `env`.
fn runs_for(condition: Option<&str>, env: &str) -> bool {
    let Some(condition) = condition else { return true };
    let (op, value) = if let Some((_, v)) = condition.split_once("==") {
        ("==", v)
    } else if let Some((_, v)) = condition.split_once("!=") {
        ("!=", v)
    } else {
        panic!("write the rollout conditions as `env.DEPLOY_ENV == '<env>'` or `!=`, not `{condition}`")
    };
    assert!(condition.trim_start().starts_with("env.DEPLOY_ENV"), "{condition}");
    let value = value.trim().trim_matches('\'');
    (op == "==") == (value == env)
}

#[test]
fn services_are_built_once_against_ecr_and_rolled_out_where_each_environment_runs_them() {
    let steps = steps("docker-build.yml", "build-push");
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    // One ECR-aware build and push: what ECR holds by input hash is not rebuilt, so no
    // separate `docker-build` into the local engine first.
    assert_eq!(runs.iter().filter(|r| r.contains("service-push-all --registry ecr")).count(), 1, "{runs:#?}");
    assert!(!runs.iter().any(|r| r.contains("cargo xtask docker-build")), "{runs:#?}");
    let ecs = run_step(&steps, "ecs-force-deploy");
    let asg = run_step(&steps, "asg-refresh");
    // The ECS step redeploys every service image the repository builds.
    let mut services: Vec<String> = fs::read_dir(repo_root().join("services"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Dockerfile").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    services.sort();
    for s in &services {
        assert!(ecs["run"].as_str().unwrap().contains(&format!("ecs-force-deploy {s} ")), "{s}");
    }
    // Where each environment runs them is deployment.toml's `[consolidated-ec2]`.
    let facts = xtask_repo::Deployment::builtin();
    assert!(facts.environments.len() >= 3);
    for env in &facts.environments {
        let on_host = facts.consolidated(env);
        assert_eq!(runs_for(asg["if"].as_str(), env), on_host, "{env}: the consolidated host's refresh runs exactly there");
        assert_eq!(runs_for(ecs["if"].as_str(), env), !on_host, "{env}: ECS force-deploys run exactly where they are ECS services");
    }
}

#[test]
fn lambdas_are_built_by_a_matrix_of_shards_then_deployed_once() {
    let doc = workflow("deploy-lambdas.yml");
    let jobs = &doc["jobs"];
    // The plan decides the shards from a dry run against ECR and hands them on.
    let plan = run_step(jobs["plan"]["steps"].as_vec().unwrap(), "ci shards");
    let plan_run = plan["run"].as_str().unwrap();
    assert!(plan_run.contains("-- lambda-bootstrap --registry ecr"), "{plan_run}");
    assert_eq!(jobs["plan"]["outputs"]["matrix"].as_str(), Some("${{ steps.shards.outputs.matrix }}"));
    assert_eq!(plan["id"].as_str(), Some("shards"));
    // The build job is that matrix, one `--shard I/N` each, skipped when ECR holds everything.
    let build = &jobs["build"];
    assert_eq!(build["strategy"]["matrix"].as_str(), Some("${{ fromJSON(needs.plan.outputs.matrix) }}"));
    assert!(build["if"].as_str().unwrap().contains("needs.plan.outputs.count != '0'"));
    let shard = run_step(build["steps"].as_vec().unwrap(), "--shard");
    assert!(shard["run"].as_str().unwrap().contains("lambda-bootstrap --registry ecr --shard \"$SHARD\""));
    assert_eq!(shard["env"]["SHARD"].as_str(), Some("${{ matrix.shard }}"));
    // Then the functions are updated once, unsharded, after every shard (or none) succeeded.
    let functions = &jobs["functions"];
    let needs: Vec<&str> = functions["needs"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert_eq!(needs, ["plan", "build"]);
    let condition = functions["if"].as_str().unwrap();
    assert!(condition.contains("needs.build.result == 'skipped'") && condition.contains("!cancelled()"), "{condition}");
    let update = run_step(functions["steps"].as_vec().unwrap(), "--update-functions");
    assert!(!update["run"].as_str().unwrap().contains("--shard"), "updating functions needs every image: unsharded");
}

#[test]
fn ci_runs_the_tools_own_tests_when_the_rust_workspace_changes() {
    let doc = workflow("ci.yml");
    let jobs = &doc["jobs"];
    assert_eq!(jobs["changes"]["outputs"]["rust"].as_str(), Some("${{ steps.pr.outputs.rust || steps.full.outputs.rust }}"));
    assert!(jobs["changes"]["outputs"]["rust_crates"].as_str().unwrap().contains("outputs.rust_crates"));
    let rust = &jobs["rust"];
    assert_eq!(rust["if"].as_str(), Some("needs.changes.outputs.rust == 'true'"));
    let step = run_step(rust["steps"].as_vec().unwrap(), "ci rust");
    assert_eq!(step["run"].as_str(), Some("cargo xtask ci rust --crates \"$RUST_CRATES\""));
    assert_eq!(step["env"]["RUST_CRATES"].as_str(), Some("${{ needs.changes.outputs.rust_crates }}"));
    let gate: Vec<&str> = jobs["gate"]["needs"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert!(gate.contains(&"rust"), "the verdict counts the tool's tests: {gate:?}");
}

/// A repository with a small Cargo workspace (`core`, and `app` depending on it) and the
/// least a repository model needs, committed once.
fn rust_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    write("xtask.toml", "");
    write(".gitignore", "target/\ngh-output\n");
    write("pyproject.toml", "[tool.uv.workspace]\nmembers = [\"libs/*\"]\n");
    write("uv.lock", "version = 1\n");
    write("libs/tradai-common/pyproject.toml", "[project]\nname = \"tradai-common\"\nversion = \"0.1.0\"\n");
    write("libs/tradai-common/src/tradai_common/__init__.py", "");
    write("lambdas/base/Dockerfile", "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nCOPY site-packages/ /var/lang/lib/python3.11/site-packages/\n");
    write("README.md", "# fixture\n");
    write("Cargo.toml", "[workspace]\nresolver = \"3\"\nmembers = [\"tool/core\", \"tool\"]\n");
    write(
        "tool/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\ncore = { path = \"core\" }\n",
    );
    write("tool/src/main.rs", "fn main() {}\n");
    write("tool/core/Cargo.toml", "[package]\nname = \"core\"\nversion = \"0.1.0\"\nedition = \"2024\"\n");
    write("tool/core/src/lib.rs", "pub const FACTS: &str = include_str!(\"../../../facts.toml\");\n");
    write("facts.toml", "a = 1\n");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "base"]);
    dir
}

fn git(root: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=ci-test", "-c", "user.email=ci-test@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `ci changes --base HEAD` after appending to `file`: the `rust` and `rust_crates`
/// outputs (from $GITHUB_OUTPUT) and the JSON reasons.
fn rust_outputs(root: &Path, file: &str) -> (String, String, serde_json::Value) {
    let path = root.join(file);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(if file.ends_with(".rs") { "\n// changed\n" } else { "\n# changed\n" });
    fs::write(&path, text).unwrap();
    let outputs = root.join("gh-output");
    let _ = fs::remove_file(&outputs);
    let out = xtask_env(root, &["ci", "changes", "--base", "HEAD"], &[("GITHUB_OUTPUT", &outputs)]);
    assert!(out.status.success(), "{}", stderr(&out));
    git(root, &["checkout", "-q", "--", "."]);
    let written = fs::read_to_string(&outputs).unwrap();
    let get = |name: &str| {
        written.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("{name} in {written}")).to_owned()
    };
    (get("rust"), get("rust_crates"), serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["reasons"].clone())
}

#[test]
fn ci_changes_derives_the_rust_output_from_the_crate_graph() {
    let repo = rust_fixture();
    let root = repo.path();
    let (rust, crates, reasons) = rust_outputs(root, "tool/core/src/lib.rs");
    assert_eq!((rust.as_str(), crates.as_str()), ("true", "[\"app\",\"core\"]"), "a library and the crate built on it");
    assert_eq!(reasons["crate:app"][0], "depends on core");
    let (_, crates, _) = rust_outputs(root, "tool/src/main.rs");
    assert_eq!(crates, "[\"app\"]", "the binary's folder holds the library's, whose files are not the binary's");
    let (_, crates, reasons) = rust_outputs(root, "facts.toml");
    assert_eq!(crates, "[\"app\",\"core\"]", "a file compiled in from outside the crate");
    assert_eq!(reasons["crate:core"][0], "compiles in facts.toml");
    let (rust, crates, _) = rust_outputs(root, "README.md");
    assert_eq!((rust.as_str(), crates.as_str()), ("false", "[]"));
    let (_, crates, _) = rust_outputs(root, "Cargo.toml");
    assert_eq!(crates, "[\"app\",\"core\"]", "the workspace manifest affects every crate");
}

#[test]
fn ci_rust_checks_its_crates_and_runs_nextest_on_them() {
    let out = xtask(&repo_root(), &["ci", "rust", "--crates", "xtask-ci,nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("unknown crate(s) nope in --crates; valid: xtask, ") && err.contains("xtask-ci"), "{err}");
    // The real thing, on one small crate: provisioning, then nextest, then the job line.
    let out = xtask(&repo_root(), &["ci", "rust", "--crates", "[\"xtask-ci\"]"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ok     rust") && err.contains(": xtask-ci"), "{err}");
    assert!(err.contains("workflows::tests::the_repository_workflows_follow_the_policy"), "nextest ran the crate's tests: {err}");
}

#[test]
fn ci_shards_turns_a_dry_run_into_a_shard_matrix() {
    // This repository's pipelines, planned against the local engine: however many images
    // each would build (the services are seldom built on a development machine, the
    // Lambdas often are), the matrix has one `I/N` entry per shard, the images' own count
    // with --per-shard 1, at most 4.
    for command in ["lambda-build-all", "docker-build"] {
        let outputs = tempfile::NamedTempFile::new().unwrap();
        let out = xtask_env(&repo_root(), &["ci", "shards", "--per-shard", "1", "--", command], &[("GITHUB_OUTPUT", outputs.path())]);
        assert!(out.status.success(), "{}", stderr(&out));
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let images = result["images"].as_array().unwrap().len();
        let count = result["count"].as_u64().unwrap() as usize;
        assert_eq!(count, images.min(4), "{command}: one shard per image with --per-shard 1, at most 4");
        let written = fs::read_to_string(outputs.path()).unwrap();
        assert!(written.contains(&format!("count={count}\n")), "{written}");
        let matrix = written.lines().find_map(|l| l.strip_prefix("matrix=")).unwrap();
        let matrix: serde_json::Value = serde_json::from_str(matrix).unwrap();
        let shards: Vec<&str> = matrix["shard"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
        let want: Vec<String> = if count == 0 { vec!["1/1".into()] } else { (1..=count).map(|i| format!("{i}/{count}")).collect() };
        assert_eq!(shards, want, "{command}");
    }
    // A command that is not a build is an error naming it.
    let out = xtask(&repo_root(), &["ci", "shards", "--", "ecs-status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cargo xtask ecs-status --dry-run --json"), "{}", stderr(&out));
}

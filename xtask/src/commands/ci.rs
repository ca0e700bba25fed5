//! `cargo xtask ci`: the jobs of the CI gate, each runnable on a laptop exactly as a
//! workflow runs it: change detection, lint, typecheck, tests with coverage thresholds,
//! security, performance and contract tests; `cargo xtask ci` alone runs them all.
//!
//! The Python tools come from the uv workspace's `dev` dependency group (installed with
//! `uv sync --all-packages --frozen` when missing) and run through `uv run --frozen`.
//! Each tool's problems are parsed into file and line: they end the run with a non-zero
//! status naming the files, and under GitHub Actions become `::error` annotations, with a
//! `::group::` per job, a step summary and job outputs.

use std::collections::BTreeSet;
use std::fs;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, Subcommand};
use xtask_ci::diagnostics::{self, BANDIT_TEMPLATE, Diagnostic};
use xtask_ci::github::markdown_table;
use xtask_ci::repo::{LAMBDAS_DIR, coverage_threshold};
use xtask_ci::{Affected, Github, Repo};
use xtask_engine::{Cmd, ProcessError, Program};

use crate::project::Project;
use crate::tools::Group;

/// Tools the jobs run, all from the workspace's `dev` group.
const TOOLS: &[&str] = &["ruff", "mypy", "pytest", "bandit", "pip-audit"];

/// The workflow checkers' programs, from the locked `workflow-lint` dependency group.
const WORKFLOW_BINARIES: &[&str] = &["zizmor", "check-jsonschema", "actionlint"];
const WORKFLOWS_DIR: &str = ".github/workflows";

/// The folders of the performance and contract suites.
const PERF_DIR: &str = "tests/perf";
const CONTRACT_DIR: &str = "tests/contract";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CiArgs {
    #[command(subcommand)]
    pub job: Option<CiJob>,
    /// With no job: test only what changed since this ref, as a pull request does
    /// (default: everything, the workflows and infra/ included)
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// With no job: leave out pip-audit (it needs PyPI's vulnerability API)
    #[arg(long)]
    pub skip_audit: bool,
}

#[derive(Debug, Subcommand)]
pub enum CiJob {
    /// Which packages and images a change affects, as JSON for a GitHub Actions matrix
    Changes(ChangesArgs),
    /// ruff check and ruff format --check over the Python code
    Lint,
    /// mypy over the sources of every workspace package
    Typecheck,
    /// pytest with coverage for one matrix entry, or `lambdas`
    Test(CiTestArgs),
    /// pip-audit over the locked dependencies and bandit over the code
    Security(SecurityArgs),
    /// The performance budgets (tests/perf)
    Perf,
    /// The contracts between services, Lambda functions and the shared models (tests/contract)
    Contract,
    /// The workflows: actionlint, zizmor, the workflow schema, and every step a real `cargo xtask` command
    Workflows,
    /// The Pulumi programs: ruff and their unit tests (infra/)
    Infra,
    /// Fails when a job the workflow needed failed or was cancelled (one required check)
    Verdict(VerdictArgs),
}

#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// The ref the change is compared with (a pull request's base branch or commit)
    #[arg(long, value_name = "REF", required_unless_present = "all")]
    pub base: Option<String>,
    /// The ref holding the change (default: the working tree, uncommitted files included)
    #[arg(long, value_name = "REF", requires = "base")]
    pub head: Option<String>,
    /// Select everything, as a push, a tag or a scheduled run does
    #[arg(long, conflicts_with_all = ["base", "head"])]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct CiTestArgs {
    /// A matrix entry (common, data, strategy, backend, data-collection, strategy-service,
    /// cli, integration) or `lambdas`
    #[arg(value_name = "PACKAGE")]
    pub package: String,
}

#[derive(Debug, Args)]
pub struct SecurityArgs {
    /// Leave out pip-audit (it needs PyPI's vulnerability API)
    #[arg(long)]
    pub skip_audit: bool,
}

#[derive(Debug, Args)]
pub struct VerdictArgs {
    /// The workflow's `needs` context as JSON (default: the NEEDS environment variable)
    #[arg(long, value_name = "JSON")]
    pub needs: Option<String>,
}

impl CiArgs {
    /// `cli` is the command line's definition (`Cli::command()`): `ci workflows` checks
    /// every `cargo xtask` call of the workflows against it.
    pub fn run(self, project: &Project, cli: clap::Command) -> Result<ExitCode> {
        let github = Github::detect();
        match self.job {
            Some(CiJob::Changes(args)) => changes(project, &github, &args),
            Some(CiJob::Verdict(args)) => verdict(&github, &args),
            Some(job) => {
                let mut ci = Gate::new(project, github, cli)?;
                match job {
                    CiJob::Lint => ci.lint(),
                    CiJob::Typecheck => ci.typecheck(),
                    CiJob::Test(args) => ci.test(&args.package),
                    CiJob::Security(args) => ci.security(args.skip_audit),
                    CiJob::Perf => ci.suite("perf", PERF_DIR),
                    CiJob::Contract => ci.suite("contract", CONTRACT_DIR),
                    CiJob::Workflows => ci.workflows(),
                    CiJob::Infra => ci.infra(),
                    // Neither needs the Python tools; both are dispatched above.
                    CiJob::Changes(_) | CiJob::Verdict(_) => Ok(()),
                }?;
                ci.finish()
            }
            None => {
                let repo = discover(project)?;
                let affected = match &self.base {
                    Some(base) => {
                        let files = xtask_ci::git::changed_files(&project.root, base, None)?;
                        xtask_ci::analyze(&repo, &files)
                    }
                    None => xtask_ci::everything(&repo),
                };
                let mut ci = Gate::new(project, github, cli)?;
                ci.lint()?;
                ci.typecheck()?;
                ci.security(self.skip_audit)?;
                ci.suite("perf", PERF_DIR)?;
                ci.suite("contract", CONTRACT_DIR)?;
                for package in &affected.packages {
                    ci.test(package)?;
                }
                if affected.lambda_tests {
                    ci.test("lambdas")?;
                }
                // What other pull-request workflows check: the workflows themselves
                // (ci.yml) and the Pulumi programs (deploy-infra.yml).
                if affected.workflows {
                    ci.workflows()?;
                }
                if affected.infra {
                    ci.infra()?;
                }
                ci.finish()
            }
        }
    }
}

fn discover(project: &Project) -> Result<Repo> {
    Repo::discover(&project.root).context("failed to read the repository for change detection")
}

/// `cargo xtask ci changes`.
fn changes(project: &Project, github: &Github, args: &ChangesArgs) -> Result<ExitCode> {
    let repo = discover(project)?;
    // Tests follow the files and their imports; images follow the engine's input hashes.
    let affected = match (&args.base, args.all) {
        (_, true) => {
            let mut a = xtask_ci::everything(&repo);
            a.set_targets(&crate::changes::all_targets(project)?);
            a
        }
        (Some(base), false) => {
            let files = xtask_ci::git::changed_files(&project.root, base, args.head.as_deref())?;
            let mut a = xtask_ci::analyze(&repo, &files);
            a.set_targets(&crate::changes::changed_targets(project, base, args.head.as_deref())?);
            a
        }
        (None, false) => {
            bail!("pass --base <ref> to compare with a ref, or --all to select everything")
        }
    };
    let json = serde_json::to_string_pretty(&affected).context("failed to encode the result")?;
    println!("{json}");
    eprintln!("{}", describe(&affected));
    write_outputs(github, &affected)?;
    github.summary(&changes_summary(&affected))?;
    Ok(ExitCode::SUCCESS)
}

fn describe(a: &Affected) -> String {
    let list = |v: &[String]| {
        if v.is_empty() { "none".to_owned() } else { v.join(", ") }
    };
    let scope = if a.all && a.changed_files.is_empty() {
        "everything selected".to_owned()
    } else {
        format!("{} changed file(s)", a.changed_files.len())
    };
    format!(
        "{scope}: tests {}{}; Lambda images {}{}; service images {}",
        list(&a.packages),
        if a.lambda_tests { " + lambdas" } else { "" },
        list(&a.lambdas),
        if a.lambda_base { " (lambda-base rebuilt)" } else { "" },
        list(&a.services)
    )
}

fn write_outputs(github: &Github, a: &Affected) -> Result<()> {
    let bool_str = |b: bool| if b { "true" } else { "false" }.to_owned();
    let outputs: Vec<(&str, String)> = vec![
        ("matrix", json(&a.matrix)),
        ("any", bool_str(a.any)),
        ("packages", json(&a.packages)),
        ("integration", bool_str(a.integration)),
        ("lambda_tests", bool_str(a.lambda_tests)),
        ("wheel", bool_str(a.wheel)),
        ("lambda_base", bool_str(a.lambda_base)),
        ("lambdas", json(&a.lambdas)),
        ("lambda_images", json(&a.lambda_images)),
        ("services", json(&a.services)),
        ("service_images", json(&a.service_images)),
        ("images", bool_str(a.images)),
        ("infra", bool_str(a.infra)),
        ("docs", bool_str(a.docs)),
        ("rust", bool_str(a.rust)),
        ("workflows", bool_str(a.workflows)),
    ];
    for (name, value) in outputs {
        github.set_output(name, &value).context("failed to write $GITHUB_OUTPUT")?;
    }
    Ok(())
}

/// Compact JSON for a job output.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn changes_summary(a: &Affected) -> String {
    let mut rows = Vec::new();
    for (target, why) in &a.reasons {
        rows.push(vec![format!("`{target}`"), why.join("; ")]);
    }
    let mut s = format!("### Change detection\n\n{}\n\n", describe(a));
    if !rows.is_empty() {
        s.push_str(&markdown_table(&["affected", "why"], &rows));
    }
    s
}

/// `cargo xtask ci verdict`: the single status a branch protection rule can require.
fn verdict(github: &Github, args: &VerdictArgs) -> Result<ExitCode> {
    let text = match &args.needs {
        Some(t) => t.clone(),
        None => std::env::var("NEEDS").context("pass --needs '<json>' or set NEEDS to ${{ toJSON(needs) }}")?,
    };
    let needs: serde_json::Value = serde_json::from_str(&text).context("--needs is not JSON; pass ${{ toJSON(needs) }}")?;
    let Some(jobs) = needs.as_object() else { bail!("--needs must be a JSON object of jobs; pass ${{{{ toJSON(needs) }}}}") };
    let mut bad = Vec::new();
    let mut rows = Vec::new();
    for (name, job) in jobs {
        let result = job.get("result").and_then(|r| r.as_str()).unwrap_or("unknown");
        rows.push(vec![name.clone(), result.to_owned()]);
        if !matches!(result, "success" | "skipped") {
            bad.push(format!("{name} ({result})"));
        }
    }
    github.summary(&format!("### CI verdict\n\n{}", markdown_table(&["job", "result"], &rows)))?;
    if bad.is_empty() {
        eprintln!("every job succeeded or was not needed ({} jobs)", jobs.len());
        Ok(ExitCode::SUCCESS)
    } else {
        xtask_ci::github::annotate(github, &[Diagnostic::new("CI verdict", format!("jobs that did not succeed: {}", bad.join(", ")))]);
        eprintln!("error: jobs that did not succeed: {}; open them in the run for their errors", bad.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// How one job ended.
struct JobResult {
    name: String,
    ok: bool,
    seconds: f64,
    /// A one-line note for the summary (coverage reached, counts).
    note: String,
    diagnostics: Vec<Diagnostic>,
}

/// The Python tools and the results of the jobs run so far.
struct Gate<'a> {
    project: &'a Project,
    github: Github,
    /// uv, provisioned the first time a job needs it.
    uv: Program,
    out_dir: Utf8PathBuf,
    results: Vec<JobResult>,
    /// Whether the Python workspace's tools were found or installed (once per run).
    python_ready: bool,
    /// The command line's definition, for checking the workflows' calls.
    cli: clap::Command,
}

impl<'a> Gate<'a> {
    fn new(project: &'a Project, github: Github, cli: clap::Command) -> Result<Self> {
        let uv = project.uv();
        let out_dir = project.state_dir().join("ci");
        fs::create_dir_all(&out_dir).with_context(|| format!("failed to create {out_dir}"))?;
        Ok(Gate { project, github, uv, out_dir, results: Vec::new(), python_ready: false, cli })
    }

    fn root(&self) -> &Utf8Path {
        &self.project.root
    }

    /// Installs the workspace and its dev tools when a tool is missing from the
    /// environment (the jobs that need no Python, like `ci workflows`, never ask).
    fn ensure_tools(&mut self) -> Result<()> {
        if self.python_ready {
            return Ok(());
        }
        self.python_ready = true;
        let venv = match std::env::var("UV_PROJECT_ENVIRONMENT") {
            Ok(v) if !v.is_empty() => self.root().join(v),
            _ => self.root().join(".venv"),
        };
        let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !venv.join("bin").join(t).is_file()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        eprintln!("installing the Python workspace ({} missing from {venv})", missing.join(", "));
        self.uv
            .cmd("install the Python workspace and its dev tools")?
            .args(["sync", "--all-packages", "--frozen"])
            .dir(self.root())
            .inherit_output()
            .run()
            .map_err(|e| anyhow::anyhow!("{e}; check that uv.lock is up to date (`uv lock`)"))?;
        Ok(())
    }

    /// `uv run --frozen <tool> <args>`.
    fn tool(&self, tool: &str, purpose: &str) -> Result<Cmd> {
        Ok(self.uv.cmd(purpose.to_owned())?.args(["run", "--frozen", tool]).dir(self.root()))
    }

    /// Runs a captured command; returns its combined output and whether it succeeded.
    /// A tool that could not start at all is an error.
    fn capture(&self, cmd: Cmd) -> Result<(String, Option<i32>)> {
        match cmd.run() {
            Ok(done) => Ok((format!("{}{}", done.stdout, done.stderr), Some(0))),
            Err(ProcessError::Failed { stdout, stderr, status, .. }) => {
                let code = status.strip_prefix("status ").and_then(|c| c.parse().ok());
                Ok((format!("{stdout}{stderr}"), code.or(Some(-1))))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn record(&mut self, result: JobResult) {
        xtask_ci::github::annotate(&self.github, &result.diagnostics);
        let secs = result.seconds;
        if result.ok {
            eprintln!(
                "ok     {} ({secs:.1}s){}",
                result.name,
                if result.note.is_empty() { String::new() } else { format!(": {}", result.note) }
            );
        } else {
            eprintln!(
                "FAILED {} ({secs:.1}s){}",
                result.name,
                if result.note.is_empty() { String::new() } else { format!(": {}", result.note) }
            );
        }
        self.results.push(result);
    }

    fn lint(&mut self) -> Result<()> {
        self.ensure_tools()?;
        let started = Instant::now();
        self.github.group("ci lint: ruff check, ruff format --check");
        let (check, check_code) =
            self.capture(self.tool("ruff", "check the Python code with ruff")?.args(["check", "--output-format=concise", "."]))?;
        eprint!("{check}");
        let (format, format_code) =
            self.capture(self.tool("ruff", "check the Python formatting with ruff")?.args(["format", "--check", "."]))?;
        eprint!("{format}");
        self.github.end_group();
        let mut diagnostics = diagnostics::ruff_check(&check);
        diagnostics.extend(diagnostics::ruff_format(&format));
        let ok = check_code == Some(0) && format_code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new(
                "ruff",
                format!("ruff failed without a located problem: {}", last_line(&format!("{check}{format}"))),
            ));
        }
        let note = if ok { String::new() } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: "lint".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    fn typecheck(&mut self) -> Result<()> {
        self.ensure_tools()?;
        let repo = discover(self.project)?;
        let packages: Vec<_> =
            repo.packages.iter().filter(|p| p.project.is_some() && self.root().join(&p.dir).join("src").is_dir()).cloned().collect();
        if packages.is_empty() {
            bail!("no workspace package with a src/ folder under {}; check [tool.uv.workspace] members in pyproject.toml", self.root());
        }
        for p in packages {
            let started = Instant::now();
            let src = format!("{}/src", p.dir);
            self.github.group(&format!("ci typecheck {}: mypy {src}", p.name));
            let (out, code) = self.capture(self.tool("mypy", &format!("type-check {}", p.name))?.args([
                "--no-pretty",
                "--show-column-numbers",
                "--no-color-output",
                src.as_str(),
            ]))?;
            eprint!("{out}");
            self.github.end_group();
            let mut diagnostics = diagnostics::mypy(&out);
            let ok = code == Some(0);
            if !ok && diagnostics.is_empty() {
                diagnostics.push(Diagnostic::new("mypy", format!("mypy failed on {src}: {}", last_line(&out))));
            }
            let note = if ok { String::new() } else { format!("{} error(s)", diagnostics.len()) };
            self.record(JobResult {
                name: format!("typecheck {}", p.name),
                ok,
                seconds: started.elapsed().as_secs_f64(),
                note,
                diagnostics,
            });
        }
        Ok(())
    }

    /// `ci test <package>`: pytest with coverage, threshold checked from the JSON report.
    fn test(&mut self, name: &str) -> Result<()> {
        self.ensure_tools()?;
        let repo = discover(self.project)?;
        let (dir, cov): (String, Vec<String>) = if name == "lambdas" {
            (LAMBDAS_DIR.to_owned(), vec![LAMBDAS_DIR.to_owned()])
        } else {
            let Some(p) = repo.package(name) else {
                let mut valid: Vec<&str> = repo.packages.iter().map(|p| p.name.as_str()).collect();
                valid.push("lambdas");
                bail!("unknown test suite `{name}`; valid: {}", valid.join(", "));
            };
            let modules: BTreeSet<String> = if p.modules.is_empty() {
                // The integration tests measure the workspace packages they drive.
                repo.packages.iter().flat_map(|q| q.modules.iter().cloned()).collect()
            } else {
                p.modules.iter().cloned().collect()
            };
            (p.dir.clone(), modules.into_iter().collect())
        };
        if !self.root().join(&dir).is_dir() {
            bail!("{dir} does not exist under {}; nothing to test for `{name}`", self.root());
        }
        let threshold = coverage_threshold(name);
        let started = Instant::now();
        let junit = self.out_dir.join(format!("junit-{name}.xml"));
        let cov_json = self.out_dir.join(format!("coverage-{name}.json"));
        let _ = fs::remove_file(&junit);
        let _ = fs::remove_file(&cov_json);
        let mut cmd = self
            .tool("pytest", &format!("run the {name} tests"))?
            .args([dir.as_str(), "-rfE", "-o", "junit_family=xunit1"])
            .arg(format!("--junitxml={junit}"))
            .args(cov.iter().map(|c| format!("--cov={c}")))
            .args(["--cov-report=term-missing:skip-covered".to_owned(), format!("--cov-report=json:{cov_json}")])
            .env("COVERAGE_FILE", self.out_dir.join(format!(".coverage-{name}")).as_str());
        if self.github.actions {
            cmd = cmd.arg("--color=yes");
        }
        self.github.group(&format!("ci test {name}: pytest {dir} (coverage >= {threshold}%)"));
        let result = cmd.inherit_output().run();
        self.github.end_group();
        let (code, mut diagnostics) = self.pytest_outcome(result, &junit)?;
        let mut ok = code == Some(0);
        let mut note = String::new();
        if code == Some(5) {
            diagnostics.push(Diagnostic::new("pytest", format!("no tests were collected in {dir}")).at(dir.clone(), None, None));
        }
        match fs::read_to_string(&cov_json).ok().and_then(|t| diagnostics::coverage_percent(&t)) {
            Some(percent) => {
                note = format!("coverage {percent:.1}% (threshold {threshold}%)");
                if percent + 1e-9 < f64::from(threshold) {
                    ok = false;
                    diagnostics.push(Diagnostic::new("coverage", format!("coverage of {name} is {percent:.1}%, below the {threshold}% threshold; add tests for the lines listed as missing")).at(dir.clone(), None, None));
                }
            }
            None if ok => {
                ok = false;
                diagnostics.push(Diagnostic::new("coverage", format!("no coverage report at {cov_json}; is pytest-cov in the dev group?")));
            }
            None => {}
        }
        if !ok && diagnostics.is_empty() {
            diagnostics.push(
                Diagnostic::new("pytest", format!("pytest failed on {dir} (exit code {})", code.map_or("?".into(), |c| c.to_string()))).at(
                    dir.clone(),
                    None,
                    None,
                ),
            );
        }
        if !ok && note.is_empty() {
            note = format!("{} problem(s)", diagnostics.len());
        }
        self.github.set_output("coverage", &note)?;
        self.record(JobResult { name: format!("test {name}"), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    /// The exit code of a pytest run and the failures its JUnit report lists.
    fn pytest_outcome(
        &self,
        result: Result<xtask_engine::process::Finished, ProcessError>,
        junit: &Utf8Path,
    ) -> Result<(Option<i32>, Vec<Diagnostic>)> {
        let code = match result {
            Ok(_) => Some(0),
            Err(ProcessError::Failed { status, .. }) => status.strip_prefix("status ").and_then(|c| c.parse().ok()).or(Some(-1)),
            Err(e) => return Err(e.into()),
        };
        let diagnostics = fs::read_to_string(junit).map(|xml| diagnostics::pytest_junit(&xml)).unwrap_or_default();
        Ok((code, diagnostics))
    }

    /// `ci perf` and `ci contract`: a pytest folder without coverage; an empty or missing
    /// folder fails, so the job can never pass by testing nothing.
    fn suite(&mut self, name: &str, dir: &str) -> Result<()> {
        self.ensure_tools()?;
        let started = Instant::now();
        if !self.root().join(dir).is_dir() {
            self.record(JobResult {
                name: name.into(),
                ok: false,
                seconds: 0.0,
                note: format!("{dir} is missing"),
                diagnostics: vec![Diagnostic::new(name.to_owned(), format!("{dir} does not exist; add the {name} tests there"))],
            });
            return Ok(());
        }
        let junit = self.out_dir.join(format!("junit-{name}.xml"));
        let _ = fs::remove_file(&junit);
        self.github.group(&format!("ci {name}: pytest {dir}"));
        let result = self
            .tool("pytest", &format!("run the {name} tests"))?
            .args([dir, "-rfE", "-p", "no:cacheprovider", "-o", "junit_family=xunit1"])
            .arg(format!("--junitxml={junit}"))
            .inherit_output()
            .run();
        self.github.end_group();
        let (code, mut diagnostics) = self.pytest_outcome(result, &junit)?;
        if code == Some(5) {
            diagnostics.push(Diagnostic::new("pytest", format!("no tests were collected in {dir}")).at(dir, None, None));
        }
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("pytest", format!("pytest failed on {dir}")).at(dir, None, None));
        }
        let note = if ok { String::new() } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: name.into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    /// The workflow checkers' bin folder, provisioned from the locked `workflow-lint`
    /// group. A failure to install is an error: the checks never pass by not running.
    fn workflow_tools(&self) -> Result<Utf8PathBuf> {
        let bin = self.project.tools().group(Group::WorkflowLint)?.join("bin");
        for b in WORKFLOW_BINARIES {
            if !bin.join(b).is_file() {
                bail!("{} is missing from the workflow-lint environment; delete {} and retry", bin.join(b), bin.parent().unwrap_or(&bin));
            }
        }
        Ok(bin)
    }

    /// `ci workflows`: the repository policy, every `cargo xtask` call a real command with
    /// real flags, then actionlint, zizmor (offline) and the workflow schema.
    fn workflows(&mut self) -> Result<()> {
        let dir = self.root().join(WORKFLOWS_DIR);
        let files = xtask_ci::workflows::workflow_files(&dir);
        let paths: Vec<String> = files.iter().map(|f| format!("{WORKFLOWS_DIR}/{f}")).collect();

        let started = Instant::now();
        let report = xtask_ci::workflows::check(&dir, WORKFLOWS_DIR).context("failed to read the workflows")?;
        let mut diagnostics = report.diagnostics;
        diagnostics.extend(check_xtask_calls(&dir, &self.cli));
        let ok = diagnostics.is_empty();
        let note = format!("{} workflows, {} run steps, {} setup actions", report.files.len(), report.run_steps, report.uses_steps);
        self.record(JobResult { name: "workflows policy".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        if files.is_empty() {
            return Ok(());
        }

        let bin = self.workflow_tools()?;
        let started = Instant::now();
        self.github.group("ci workflows: actionlint");
        let (out, code) = self.capture(
            Cmd::new(bin.join("actionlint").as_str(), "lint the workflows with actionlint")
                .args(["-oneline", "-no-color"])
                .args(paths.iter().cloned())
                .dir(self.root()),
        )?;
        eprint!("{out}");
        self.github.end_group();
        let mut diagnostics = diagnostics::actionlint(&out);
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("actionlint", format!("actionlint failed: {}", last_line(&out))));
        }
        self.record(JobResult {
            name: "workflows actionlint".into(),
            ok,
            seconds: started.elapsed().as_secs_f64(),
            note: format!("{} files", paths.len()),
            diagnostics,
        });

        let started = Instant::now();
        self.github.group("ci workflows: zizmor --offline");
        let (out, code) = self.capture(
            Cmd::new(bin.join("zizmor").as_str(), "audit the workflows with zizmor")
                .args(["--offline", "--quiet", "--format", "plain", WORKFLOWS_DIR])
                .env("NO_COLOR", "1")
                .dir(self.root()),
        )?;
        eprint!("{out}");
        self.github.end_group();
        let mut diagnostics = diagnostics::zizmor(&out);
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("zizmor", format!("zizmor failed: {}", last_line(&out))));
        }
        self.record(JobResult {
            name: "workflows zizmor".into(),
            ok,
            seconds: started.elapsed().as_secs_f64(),
            note: last_line(&out),
            diagnostics,
        });

        let started = Instant::now();
        self.github.group("ci workflows: check-jsonschema --builtin-schema vendor.github-workflows");
        let (out, code) = self.capture(
            Cmd::new(bin.join("check-jsonschema").as_str(), "validate the workflows against GitHub's workflow schema")
                .args(["--builtin-schema", "vendor.github-workflows", "--output-format", "json"])
                .args(paths.iter().cloned())
                .dir(self.root()),
        )?;
        eprintln!("{out}");
        self.github.end_group();
        let mut diagnostics = diagnostics::check_jsonschema(&out);
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("check-jsonschema", format!("check-jsonschema failed: {}", last_line(&out))));
        }
        self.record(JobResult {
            name: "workflows schema".into(),
            ok,
            seconds: started.elapsed().as_secs_f64(),
            note: format!("{} files", paths.len()),
            diagnostics,
        });
        Ok(())
    }

    /// `ci infra`: the Pulumi programs, with infra/'s own ruff settings and uv project.
    fn infra(&mut self) -> Result<()> {
        self.ensure_tools()?;
        let infra = self.root().join("infra");
        if !infra.join("pyproject.toml").is_file() {
            bail!("no infra/pyproject.toml under {}; the Pulumi programs live in infra/", self.root());
        }
        let started = Instant::now();
        self.github.group("ci infra: ruff check, ruff format --check (infra/pyproject.toml settings)");
        // Run in infra/ so that ruff reads infra's configuration; ruff itself comes from the
        // root workspace's dev group.
        let ruff = |purpose: &str| {
            Ok::<Cmd, anyhow::Error>(
                self.uv.cmd(purpose.to_owned())?.args(["run", "--frozen", "--project", self.root().as_str(), "ruff"]).dir(infra.clone()),
            )
        };
        let (check, check_code) =
            self.capture(ruff("check the Pulumi programs with ruff")?.args(["check", "--output-format=concise", "."]))?;
        eprint!("{check}");
        let (format, format_code) = self.capture(ruff("check the Pulumi programs' formatting")?.args(["format", "--check", "."]))?;
        eprint!("{format}");
        self.github.end_group();
        let mut diagnostics: Vec<Diagnostic> =
            diagnostics::ruff_check(&check).into_iter().chain(diagnostics::ruff_format(&format)).map(|d| under_dir(d, "infra")).collect();
        let ok = check_code == Some(0) && format_code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("ruff", format!("ruff failed on infra/: {}", last_line(&format!("{check}{format}")))));
        }
        let note = if ok { String::new() } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: "infra lint".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });

        let started = Instant::now();
        let junit = self.out_dir.join("junit-infra.xml");
        let _ = fs::remove_file(&junit);
        self.github.group("ci infra: pytest (the 4 stacks under Pulumi's mocks)");
        let result = self
            .uv
            .cmd("run the Pulumi program tests")?
            .args(["run", "--frozen", "--project", "infra", "pytest", "infra", "-rfE", "-o", "junit_family=xunit1"])
            .arg(format!("--junitxml={junit}"))
            .dir(self.root())
            .inherit_output()
            .run();
        self.github.end_group();
        let (code, diagnostics) = self.pytest_outcome(result, &junit)?;
        let mut diagnostics: Vec<Diagnostic> = diagnostics.into_iter().map(|d| under_dir(d, "infra")).collect();
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("pytest", "pytest failed on infra/").at("infra", None, None));
        }
        let note = if ok { String::new() } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: "infra tests".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    fn security(&mut self, skip_audit: bool) -> Result<()> {
        self.ensure_tools()?;
        if !skip_audit {
            self.pip_audit()?;
        }
        self.bandit()
    }

    fn pip_audit(&mut self) -> Result<()> {
        let started = Instant::now();
        let requirements = self.out_dir.join("requirements.txt");
        let report = self.out_dir.join("pip-audit.json");
        let _ = fs::remove_file(&report);
        self.github.group("ci security: pip-audit over uv.lock");
        self.uv
            .cmd("export the locked dependencies for pip-audit")?
            .args([
                "export",
                "--frozen",
                "--all-packages",
                "--format",
                "requirements-txt",
                "--no-emit-workspace",
                "--quiet",
                "-o",
                requirements.as_str(),
            ])
            .dir(self.root())
            .run()
            .map_err(|e| anyhow::anyhow!("{e}; check that uv.lock is up to date (`uv lock`)"))?;
        let (out, code) = self.capture(self.tool("pip-audit", "audit the locked dependencies")?.args([
            "--disable-pip",
            "--requirement",
            requirements.as_str(),
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            report.as_str(),
        ]))?;
        eprint!("{out}");
        self.github.end_group();
        let lock = fs::read_to_string(self.root().join("uv.lock")).unwrap_or_default();
        let (mut diagnostics, audited, skipped) =
            match fs::read_to_string(&report).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) {
                Some(json) => audit_findings(&json, &lock),
                None => (vec![Diagnostic::new("pip-audit", format!("pip-audit wrote no report: {}", last_line(&out)))], 0, Vec::new()),
            };
        if !skipped.is_empty() {
            diagnostics.push(Diagnostic::new(
                "pip-audit",
                format!(
                    "{} of {} dependencies could not be audited (first: {}); run where PyPI's per-release JSON API (https://pypi.org/pypi/<name>/<version>/json) answers, or pass --skip-audit",
                    skipped.len(),
                    skipped.len() + audited,
                    skipped[0]
                ),
            ).at("uv.lock", None, None));
        }
        let ok = diagnostics.is_empty() && code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("pip-audit", format!("pip-audit failed: {}", last_line(&out))));
        }
        let note = if ok { format!("{audited} dependencies audited") } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: "security pip-audit".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    fn bandit(&mut self) -> Result<()> {
        let started = Instant::now();
        let targets: Vec<&str> = ["libs", "services", "lambdas"].into_iter().filter(|d| self.root().join(d).is_dir()).collect();
        self.github.group(&format!("ci security: bandit over {}", targets.join(", ")));
        let (out, code) = self.capture(
            self.tool("bandit", "scan the code with bandit")?
                .args(["--quiet", "--configfile", "pyproject.toml", "--recursive"])
                .args(targets.iter().copied())
                .args(["--format", "custom", "--msg-template", BANDIT_TEMPLATE]),
        )?;
        eprint!("{out}");
        self.github.end_group();
        let mut diagnostics = diagnostics::bandit(&out);
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("bandit", format!("bandit failed: {}", last_line(&out))));
        }
        let note = if ok { String::new() } else { format!("{} finding(s)", diagnostics.len()) };
        self.record(JobResult { name: "security bandit".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    /// Prints the closing table and every problem, writes the step summary, and turns the
    /// results into the exit status.
    fn finish(self) -> Result<ExitCode> {
        let failed: Vec<&JobResult> = self.results.iter().filter(|r| !r.ok).collect();
        let rows: Vec<Vec<String>> = self
            .results
            .iter()
            .map(|r| {
                vec![r.name.clone(), if r.ok { "passed".into() } else { "failed".into() }, format!("{:.1}s", r.seconds), r.note.clone()]
            })
            .collect();
        let mut summary = format!("### cargo xtask ci\n\n{}", markdown_table(&["job", "result", "time", "notes"], &rows));
        for r in &failed {
            summary.push_str(&format!("\n**{}**\n\n", r.name));
            for d in r.diagnostics.iter().take(30) {
                summary.push_str(&format!("- `{}`\n", d.display().replace('`', "'")));
            }
        }
        self.github.summary(&summary)?;
        self.github.set_output("result", if failed.is_empty() { "success" } else { "failure" })?;
        if failed.is_empty() {
            eprintln!("ci: {} job(s) passed", self.results.len());
            return Ok(ExitCode::SUCCESS);
        }
        for r in &failed {
            for d in r.diagnostics.iter().take(50) {
                eprintln!("error: {}: {}", r.name, d.display());
            }
            if r.diagnostics.len() > 50 {
                eprintln!("error: {}: ... and {} more", r.name, r.diagnostics.len() - 50);
            }
        }
        let names: Vec<&str> = failed.iter().map(|r| r.name.as_str()).collect();
        eprintln!("error: failed: {}; run `cargo xtask ci <job>` to repeat one", names.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// pip-audit's JSON: every vulnerability as a diagnostic on its `uv.lock` entry, the
/// number of audited dependencies, and the ones it skipped.
fn audit_findings(json: &serde_json::Value, lock: &str) -> (Vec<Diagnostic>, usize, Vec<String>) {
    let mut diagnostics = Vec::new();
    let mut audited = 0;
    let mut skipped = Vec::new();
    for dep in json.get("dependencies").and_then(|d| d.as_array()).into_iter().flatten() {
        let name = dep.get("name").and_then(|n| n.as_str()).unwrap_or("?");
        if let Some(reason) = dep.get("skip_reason").and_then(|r| r.as_str()) {
            skipped.push(format!("{name}: {reason}"));
            continue;
        }
        audited += 1;
        let version = dep.get("version").and_then(|v| v.as_str()).unwrap_or("?");
        for vuln in dep.get("vulns").and_then(|v| v.as_array()).into_iter().flatten() {
            let id = vuln.get("id").and_then(|i| i.as_str()).unwrap_or("?");
            let fixes: Vec<&str> =
                vuln.get("fix_versions").and_then(|f| f.as_array()).into_iter().flatten().filter_map(|f| f.as_str()).collect();
            let fix = if fixes.is_empty() {
                "no fixed release yet".to_owned()
            } else {
                format!("fixed in {}; run `uv lock --upgrade-package {name}`", fixes.join(", "))
            };
            let line = lock.lines().position(|l| l.trim() == format!("name = \"{name}\"")).map(|i| i as u32 + 1);
            diagnostics.push(
                Diagnostic::new(format!("pip-audit {id}"), format!("{name} {version} is vulnerable ({id}); {fix}"))
                    .at("uv.lock", line, None),
            );
        }
    }
    (diagnostics, audited, skipped)
}

/// A diagnostic whose path is relative to `dir`, made relative to the root.
fn under_dir(mut d: Diagnostic, dir: &str) -> Diagnostic {
    if let Some(f) = &d.file
        && !f.starts_with(&format!("{dir}/"))
    {
        d.file = Some(format!("{dir}/{}", f.trim_start_matches("./")));
    }
    d
}

/// Every `cargo xtask ...` line of the workflows names a real command and only flags
/// that command has (seed aliases expanded), so a renamed command or flag fails here
/// rather than in a deployment.
fn check_xtask_calls(dir: &Utf8Path, cli: &clap::Command) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for file in xtask_ci::workflows::workflow_files(dir) {
        let Ok(text) = fs::read_to_string(dir.join(&file)) else {
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            let Some(at) = line.find("cargo xtask") else {
                continue;
            };
            if line.trim_start().starts_with('#') {
                continue;
            }
            let rel = format!("{WORKFLOWS_DIR}/{file}");
            let mut words: Vec<String> = vec!["xtask".into()];
            words.extend(line[at + "cargo xtask".len()..].split_whitespace().map(|w| w.trim_matches('"').trim_matches('\'').to_owned()));
            let words = crate::aliases::expand_aliases(words);
            let mut command = cli;
            let mut path = Vec::new();
            for word in words.iter().skip(1).take_while(|w| !w.starts_with('-')) {
                match command.find_subcommand(word) {
                    Some(sub) => {
                        command = sub;
                        path.push(word.as_str());
                    }
                    None if path.is_empty() => {
                        out.push(
                            Diagnostic::new("workflow policy", format!("`cargo xtask {word}` is not a command; see `cargo xtask --help`"))
                                .at(rel.clone(), Some(index as u32 + 1), None),
                        );
                        break;
                    }
                    None => break,
                }
            }
            if path.is_empty() {
                continue;
            }
            let known: BTreeSet<String> = command
                .get_arguments()
                .chain(cli.get_arguments())
                .filter_map(|a| a.get_long().map(str::to_owned))
                .chain(["help".to_owned()])
                .collect();
            for flag in words.iter().filter_map(|w| w.strip_prefix("--")) {
                let flag = flag.split('=').next().unwrap_or(flag);
                if !known.contains(flag) {
                    out.push(
                        Diagnostic::new(
                            "workflow policy",
                            format!("`cargo xtask {}` has no --{flag}; see `cargo xtask {} --help`", path.join(" "), path.join(" ")),
                        )
                        .at(rel.clone(), Some(index as u32 + 1), None),
                    );
                }
            }
        }
    }
    out
}

fn last_line(text: &str) -> String {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_findings_point_at_uv_lock() {
        let json = serde_json::json!({"dependencies": [
            {"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-1", "fix_versions": ["3.1.3"], "description": "x"}]},
            {"name": "ok", "version": "1.0", "vulns": []},
            {"name": "gone", "skip_reason": "Dependency not found on PyPI"}
        ]});
        let lock = "version = 1\n\n[[package]]\nname = \"jinja2\"\nversion = \"3.1.2\"\n";
        let (d, audited, skipped) = audit_findings(&json, lock);
        assert_eq!(audited, 2);
        assert_eq!(skipped.len(), 1);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].file.as_deref(), d[0].line), (Some("uv.lock"), Some(4)));
        assert!(d[0].message.contains("uv lock --upgrade-package jinja2"), "{}", d[0].message);
    }
}

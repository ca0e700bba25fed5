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
use xtask_ci::diagnostics::{self, Diagnostic};
use xtask_ci::github::markdown_table;
use xtask_ci::{Affected, Github};
use xtask_engine::{Cmd, ProcessError, Program};
use xtask_repo::suites::{CONTRACT_DIR, PERF_DIR};
use xtask_repo::{LAMBDAS_DIR, Repository, coverage_threshold};

use crate::project::Project;
use crate::tools::Group;

mod changes;
mod infra;
mod python;
mod rust;
mod security;
mod shards;
mod workflows;

use changes::{changes, verdict};

/// Tools the jobs run, all from the workspace's `dev` group.
const TOOLS: &[&str] = &["ruff", "mypy", "pytest", "bandit", "pip-audit"];

/// The workflow checkers' programs, from the locked `workflow-lint` dependency group.
const WORKFLOW_BINARIES: &[&str] = &["zizmor", "check-jsonschema", "actionlint"];
const WORKFLOWS_DIR: &str = ".github/workflows";

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
    /// The tool's own Rust tests (cargo-nextest), for the workspace or the crates `ci changes` named
    Rust(rust::RustArgs),
    /// How many shards a build needs, from its dry run: a matrix for `--shard I/N` (`ci shards -- lambda-bootstrap --registry ecr`)
    Shards(shards::ShardsArgs),
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
            Some(CiJob::Shards(args)) => shards::shards(project, &github, &args),
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
                    CiJob::Rust(args) => ci.rust(&args),
                    // None of these needs the Python tools; they are dispatched above.
                    CiJob::Changes(_) | CiJob::Verdict(_) | CiJob::Shards(_) => Ok(()),
                }?;
                ci.finish()
            }
            None => {
                let repo = discover(project)?;
                let affected = match &self.base {
                    Some(base) => {
                        let files = xtask_ci::git::changed_files(&project.root, base, None)?;
                        xtask_ci::analyze(repo, &files).context("failed to read the Python imports")?
                    }
                    None => xtask_ci::everything(repo),
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

/// The repository model every job reads (loaded once per run).
fn discover(project: &Project) -> Result<&Repository> {
    project.repository()
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

    /// One checker that reads a tool's machine-readable output: its log group, the findings
    /// parsed from the output and shown one a line, a finding of its own when the tool
    /// failed without naming one, and the job's result.
    fn run_checker(
        &mut self,
        job: &str,
        group: &str,
        tool: &str,
        cmd: Cmd,
        parse: impl Fn(&str) -> Vec<Diagnostic>,
        note: impl Fn(bool, &[Diagnostic]) -> String,
    ) -> Result<()> {
        let started = Instant::now();
        self.github.group(group);
        let (out, code) = self.capture(cmd)?;
        let mut diagnostics = parse(&out);
        show(&diagnostics);
        self.github.end_group();
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new(tool, format!("{tool} failed: {}", last_line(&out))));
        }
        let note = note(ok, &diagnostics);
        self.record(JobResult { name: job.to_owned(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
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

/// A diagnostic whose path is relative to `dir`, made relative to the root.
fn under_dir(mut d: Diagnostic, dir: &str) -> Diagnostic {
    if let Some(f) = &d.file
        && !f.starts_with(&format!("{dir}/"))
    {
        d.file = Some(format!("{dir}/{}", f.trim_start_matches("./")));
    }
    d
}

/// Prints a tool's findings to the log, one readable line each (the tools are run with
/// their machine-readable output, which is what the jobs parse).
fn show(found: &[Diagnostic]) {
    for d in found {
        eprintln!("{}", d.display());
    }
}

fn last_line(text: &str) -> String {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_owned()
}

//! `cargo xtask doctor`: one table of what the commands need on this machine, each row
//! with a verdict that matches what the build will then do, and the exact fix.
//!
//! A prerequisite is required exactly when the commands will need it here: debootstrap
//! only when the Debian stand-in base must be built, the provisioned tools only when they
//! cannot be installed on first use (`--offline`). `--fix` installs and pulls whatever
//! can be installed and pulled, then checks again. Exit status 0 only when nothing
//! required is missing.

use std::process::ExitCode;

use anyhow::Result;
use camino::Utf8Path;
use clap::{Args, ValueEnum};
use serde::Serialize;
use xtask_engine::Cmd;
use xtask_engine::plan::{closure, make_plan};
use xtask_image::DockerEngine;

use crate::bases::{Bases, Role, python_base_id};
use crate::commands::base_images::verdict;
use crate::project::Project;
use crate::tools::{HostFacts, SystemTool, Toolbox, find_program, offline};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Install the missing tools and pull the missing base images that can be, then check again
    #[arg(long)]
    pub fix: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// Present.
    Ok,
    /// Absent, and the commands install it themselves the first time they need it.
    OnFirstUse,
    /// Absent, and not needed on this machine as it is configured.
    NotNeeded,
    /// Not available here; the build uses a stand-in instead.
    Fallback,
    /// Absent; only some commands need it.
    OptionalMissing,
    /// Absent, needed, and not installable by the tool: the fix says what to run.
    Missing,
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckStatus::Ok => "ok",
            CheckStatus::OnFirstUse => "on-first-use",
            CheckStatus::NotNeeded => "not-needed",
            CheckStatus::Fallback => "fallback",
            CheckStatus::OptionalMissing => "optional-missing",
            CheckStatus::Missing => "missing",
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    /// The version found, or what is wrong.
    pub detail: String,
    /// What to run to fix it (empty when nothing needs doing).
    pub fix: String,
    /// What needs it.
    pub needed_for: &'static str,
}

impl Check {
    fn new(name: &'static str, needed_for: &'static str, status: CheckStatus, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, status, detail: detail.into(), fix: fix.into(), needed_for }
    }
}

fn probe(program: &str, args: &[&str]) -> Result<String, String> {
    Cmd::new(program, format!("check {program}"))
        .args(args.iter().copied())
        .run()
        .map(|o| {
            let text = if o.stdout.trim().is_empty() { o.stderr } else { o.stdout };
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .map_err(|e| match e {
            xtask_engine::ProcessError::NotFound { program, .. } => {
                format!("`{program}` not found on PATH")
            }
            other => other.to_string().lines().next().unwrap_or("").to_owned(),
        })
}

fn required(name: &'static str, needed_for: &'static str, result: Result<String, String>, fix: &str) -> Check {
    match result {
        Ok(v) => Check::new(name, needed_for, CheckStatus::Ok, v, ""),
        Err(e) => Check::new(name, needed_for, CheckStatus::Missing, e, fix),
    }
}

/// A tool the commands provision: installed, installed on first use, or (offline) missing.
fn provisioned(name: &'static str, needed_for: &'static str, installed: bool, path: &Utf8Path, pin: &str) -> Check {
    if installed {
        Check::new(name, needed_for, CheckStatus::Ok, format!("{pin} in {path}"), "")
    } else if offline() {
        Check::new(
            name,
            needed_for,
            CheckStatus::Missing,
            format!("{pin} not installed, and --offline forbids installing it"),
            "cargo xtask doctor --fix (online)",
        )
    } else {
        Check::new(name, needed_for, CheckStatus::OnFirstUse, format!("{pin}, installed into {path} on first use"), "")
    }
}

/// A system package: present, installed on first use (root on Debian/Ubuntu), or missing
/// with the command to run; `needed` says whether anything here will call it.
fn system(tool: SystemTool, needed_for: &'static str, needed: Result<(), String>, host: &HostFacts) -> Check {
    let name = match tool {
        SystemTool::Debootstrap => "debootstrap",
        SystemTool::DockerRegistry => "docker-registry",
    };
    if let Some(p) = find_program(tool.program()) {
        let detail = match &needed {
            Ok(()) => format!("{p} (not needed here)"),
            Err(why) => format!("{p} (needed: {why})"),
        };
        return Check::new(name, needed_for, CheckStatus::Ok, detail, "");
    }
    let why_not = match needed {
        Ok(()) => {
            return Check::new(name, needed_for, CheckStatus::NotNeeded, "not installed", "");
        }
        Err(why) => why,
    };
    if tool == SystemTool::Debootstrap && !host.root {
        return Check::new(
            name,
            needed_for,
            CheckStatus::Missing,
            format!("{why_not}; the stand-in is built with debootstrap, which needs root"),
            "run as root, or make the upstream base pullable (`cargo xtask base-images`)",
        );
    }
    if host.root && host.debian_like && !offline() {
        return Check::new(name, needed_for, CheckStatus::OnFirstUse, format!("{why_not}; apt-get installs it when needed"), "");
    }
    Check::new(name, needed_for, CheckStatus::Missing, why_not, host.install_command(tool.package()))
}

/// Whether the stand-in must be built here: `Err(why)` when it must.
/// `verdicts` are the two roles' [`verdict`]s, each asked once (they may probe a registry).
fn stand_in_needed(project: &Project, engine: &std::sync::Arc<DockerEngine>, bases: &Bases, verdicts: &[(bool, String)]) -> Result<(), String> {
    let Some(reason) = verdicts.iter().find(|(stand_in, _)| *stand_in).map(|(_, uses)| uses.clone()) else {
        return Ok(());
    };
    // Already built and still in the engine: nothing to run debootstrap for.
    let mut forced = bases.clone();
    forced.lambda = crate::bases::Base::StandIn { reason: reason.clone() };
    let built = (|| -> Result<bool> {
        let targets = project.targets(engine, &forced)?;
        let order = closure(&targets, &[python_base_id().to_owned()])?;
        let state = project.state_store().load()?;
        let plan = make_plan(&order, &[python_base_id().to_owned()], &state, &project.file_cache(), None)?;
        Ok(plan.to_build().next().is_none())
    })();
    match built {
        Ok(true) => Ok(()),
        _ => Err(format!("builds use {reason}")),
    }
}

/// What a build here uses for the Lambda and the service base, and whether that is the
/// stand-in.
fn verdicts(project: &Project, bases: &Bases) -> Vec<(bool, String)> {
    [Role::Lambda, Role::Service].into_iter().map(|role| verdict(project, bases.get(role))).collect()
}

/// Runs every check.
pub fn checks(root: Option<&Utf8Path>) -> Vec<Check> {
    let mut out = Vec::new();
    let docker = probe("docker", &["version", "--format", "{{.Server.Version}}"]).map(|v| format!("engine {v}"));
    let engine_ok = docker.is_ok();
    out.push(required(
        "Docker engine",
        "every image build",
        docker.map_err(|e| if e.contains("not found") { "docker CLI not on PATH".into() } else { "engine not reachable".to_owned() }),
        "install Docker Engine and start it (`sudo service docker start`), or set DOCKER_HOST",
    ));
    let python = probe("python3", &["--version"]).and_then(|v| if v.contains("3.11.") { Ok(v) } else { Err(format!("{v} (need 3.11)")) });
    out.push(required(
        "Python 3.11",
        "installing uv, wheel downloads for images",
        python,
        "install Python 3.11 as python3 (pyenv install 3.11)",
    ));

    let project = Project::locate(root);
    let host = HostFacts::read();
    match &project {
        Ok(project) => {
            let tools = Toolbox::current(&project.root);
            for t in tools.states() {
                let (name, needed_for) = match t.name.as_str() {
                    "uv" => ("uv", "wheels and Python tests"),
                    "test-servers" => ("test servers", "`cargo xtask test` (moto, pypiserver)"),
                    _ => ("workflow linters", "`ci workflows` (actionlint, zizmor, check-jsonschema)"),
                };
                out.push(provisioned(name, needed_for, t.installed, &t.path, &t.pin));
            }
            let engine = std::sync::Arc::new(DockerEngine::new());
            let bases = if engine_ok { Bases::resolve(&project.config.python_base, &engine, true).ok() } else { None };
            match &bases {
                Some(bases) => {
                    let verdicts = verdicts(project, bases);
                    for (name, (stand_in, uses)) in ["Lambda base", "service base"].into_iter().zip(&verdicts) {
                        let status = if *stand_in { CheckStatus::Fallback } else { CheckStatus::Ok };
                        let fix = if *stand_in { "make the registry reachable, then `cargo xtask base-images --pull`" } else { "" };
                        out.push(Check::new(name, "the images' Python base", status, format!("builds use {uses}"), fix));
                    }
                    let needed = stand_in_needed(project, &engine, bases, &verdicts);
                    out.push(system(SystemTool::Debootstrap, "building the Debian stand-in base", needed, &host));
                }
                None => out.push(Check::new(
                    "Python bases",
                    "the images' Python base",
                    CheckStatus::Missing,
                    "cannot tell without the Docker engine",
                    "start the Docker engine",
                )),
            }
        }
        Err(e) => out.push(Check::new(
            "repository",
            "every command",
            CheckStatus::Missing,
            format!("{e:#}"),
            "run inside the TradAI repository or pass --root",
        )),
    }
    out.push(system(
        SystemTool::DockerRegistry,
        "`cargo xtask test` and `bench` (a loopback registry)",
        Err("the tests start it".into()),
        &host,
    ));
    let pulumi = probe("pulumi", &["version"]);
    out.push(match pulumi {
        Ok(v) => Check::new("Pulumi CLI", "infra-* commands", CheckStatus::Ok, v, ""),
        Err(e) => Check::new(
            "Pulumi CLI",
            "infra-* commands",
            CheckStatus::OptionalMissing,
            e,
            "install the Pulumi CLI: https://www.pulumi.com/docs/install/",
        ),
    });
    out.push(match aws_config(root) {
        Ok(v) => Check::new("AWS configuration", "ECR, Lambda, ECS and infra commands", CheckStatus::Ok, v, ""),
        Err(e) => Check::new(
            "AWS configuration",
            "ECR, Lambda, ECS and infra commands",
            CheckStatus::OptionalMissing,
            e,
            "set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and AWS_REGION, or run `cargo xtask infra-setup` and edit infra/.env",
        ),
    });
    out
}

/// Where AWS configuration would come from; never prints a value.
fn aws_config(root: Option<&Utf8Path>) -> Result<String, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("AWS_ACCESS_KEY_ID").is_some() && env("AWS_SECRET_ACCESS_KEY").is_some() {
        return Ok("credentials from the environment".into());
    }
    if let Some(p) = env("AWS_PROFILE") {
        return Ok(format!("profile {p}"));
    }
    if let Some(home) = env("HOME")
        && (Utf8Path::new(&home).join(".aws/credentials").is_file() || Utf8Path::new(&home).join(".aws/config").is_file())
    {
        return Ok("~/.aws configuration".into());
    }
    let root = root.map(Utf8Path::to_owned).or_else(|| Project::locate(None).ok().map(|p| p.root));
    if let Some(root) = root
        && root.join("infra/.env").is_file()
    {
        return Ok("infra/.env".into());
    }
    Err("no credentials, profile or infra/.env found".into())
}

impl DoctorArgs {
    pub fn run(&self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        if self.fix {
            fix(root)?;
        }
        let checks = checks(root);
        match self.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&checks)?),
            Format::Table => print!("{}", table(&checks)),
        }
        let ok = checks.iter().all(|c| c.status != CheckStatus::Missing);
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

/// `--fix`: installs every provisioned tool and the system packages needed here, and
/// pulls the missing bases. Failures are reported; the table that follows shows the rest.
fn fix(root: Option<&Utf8Path>) -> Result<()> {
    let project = Project::locate(root)?;
    let tools = Toolbox::current(&project.root);
    let engine = std::sync::Arc::new(DockerEngine::new());
    let mut system = vec![SystemTool::DockerRegistry];
    if let Ok(mut bases) = Bases::resolve(&project.config.python_base, &engine, true) {
        bases.pull_missing(&project.config.python_base, &engine, &[Role::Lambda, Role::Service], &|l| eprintln!("{l}"));
        if stand_in_needed(&project, &engine, &bases, &verdicts(&project, &bases)).is_err() && crate::tools::is_root() {
            system.push(SystemTool::Debootstrap);
        }
    }
    for e in tools.install_all(&system) {
        eprintln!("could not fix: {e}");
    }
    Ok(())
}

fn table(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let detail = if c.fix.is_empty() { c.detail.clone() } else { format!("{}; fix: {}", c.detail, c.fix) };
            vec![c.name.to_owned(), c.status.to_string(), detail]
        })
        .collect();
    let mut s = xtask_engine::report::text_table(&["check", "status", "detail / fix"], &rows);
    let missing = checks.iter().filter(|c| c.status == CheckStatus::Missing).count();
    if missing == 0 {
        s.push_str("\neverything the build commands need is present or installed on first use\n");
    } else {
        s.push_str(&format!("\n{missing} required prerequisite(s) missing\n"));
    }
    s
}

//! `cargo xtask doctor`: one table of prerequisites, each `ok`, `missing` or
//! `optional-missing` with the exact fix; exit status 0 only when everything the build
//! commands need is present.

use std::process::ExitCode;

use anyhow::Result;
use camino::Utf8Path;
use clap::{Args, ValueEnum};
use serde::Serialize;
use xtask_engine::Cmd;

use crate::project::Project;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    Ok,
    Missing,
    OptionalMissing,
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Missing => "missing",
            CheckStatus::OptionalMissing => "optional-missing",
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    /// The version found, or what is wrong.
    pub detail: String,
    /// What to run to fix it (empty when ok).
    pub fix: String,
    /// What needs it.
    pub needed_for: &'static str,
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
            xtask_engine::ProcessError::NotFound { program, .. } => format!("`{program}` not found on PATH"),
            other => other.to_string().lines().next().unwrap_or("").to_owned(),
        })
}

fn required(name: &'static str, needed_for: &'static str, result: Result<String, String>, fix: &str) -> Check {
    match result {
        Ok(v) => Check { name, status: CheckStatus::Ok, detail: v, fix: String::new(), needed_for },
        Err(e) => Check { name, status: CheckStatus::Missing, detail: e, fix: fix.to_owned(), needed_for },
    }
}

fn optional(name: &'static str, needed_for: &'static str, result: Result<String, String>, fix: &str) -> Check {
    let mut c = required(name, needed_for, result, fix);
    if c.status == CheckStatus::Missing {
        c.status = CheckStatus::OptionalMissing;
    }
    c
}

/// Runs every check.
pub fn checks(root: Option<&Utf8Path>) -> Vec<Check> {
    let mut out = Vec::new();
    let docker = probe("docker", &["version", "--format", "{{.Server.Version}}"]).map(|v| format!("engine {v}"));
    out.push(required(
        "Docker engine",
        "every image build",
        docker.map_err(|e| if e.contains("not found") { "docker CLI not on PATH".into() } else { "engine not reachable".to_owned() }),
        "install Docker Engine and start it (`sudo service docker start`), or set DOCKER_HOST",
    ));
    out.push(required("uv", "wheels and Python tests", probe("uv", &["--version"]), "pip install uv"));
    let python = probe("python3", &["--version"]).and_then(|v| if v.contains("3.11.") { Ok(v) } else { Err(format!("{v} (need 3.11)")) });
    out.push(required("Python 3.11", "wheel downloads for images", python, "install Python 3.11 as python3 (pyenv install 3.11)"));
    out.push(optional(
        "debootstrap",
        "the Debian-built Python base (when the upstream base image is not loaded)",
        probe("debootstrap", &["--version"]),
        "apt-get install debootstrap",
    ));
    out.push(optional("Pulumi CLI", "infra-* commands", probe("pulumi", &["version"]), "install the Pulumi CLI: https://www.pulumi.com/docs/install/"));
    out.push(optional("AWS configuration", "ECR, Lambda, ECS and infra commands", aws_config(root), "set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and AWS_REGION, or run `cargo xtask infra-setup` and edit infra/.env"));
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
        let checks = checks(root);
        match self.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&checks)?),
            Format::Table => print!("{}", table(&checks)),
        }
        let ok = checks.iter().all(|c| c.status != CheckStatus::Missing);
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

fn table(checks: &[Check]) -> String {
    let w = checks.iter().map(|c| c.name.len()).max().unwrap_or(5);
    let mut s = format!("{:<w$}  {:<16}  {}\n", "check", "status", "detail / fix");
    for c in checks {
        let detail = if c.fix.is_empty() { c.detail.clone() } else { format!("{}; fix: {}", c.detail, c.fix) };
        s.push_str(&format!("{:<w$}  {:<16}  {}\n", c.name, c.status.to_string(), detail));
    }
    let missing = checks.iter().filter(|c| c.status == CheckStatus::Missing).count();
    if missing == 0 {
        s.push_str("\neverything the build commands need is present\n");
    } else {
        s.push_str(&format!("\n{missing} required prerequisite(s) missing\n"));
    }
    s
}

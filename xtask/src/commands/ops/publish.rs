//! `publish-all-libs <env>`: builds the libraries other repositories install (the seeds
//! publish tradai-strategy, for the tradai-strategies repository) through the build
//! engine, so an unchanged library is not rebuilt, and uploads each wheel to the package
//! index with `uv publish` (the tool's own pinned uv; credentials in its environment,
//! never in its arguments), which checks the index first (`--check-url`) and skips a file
//! it already holds.
//!
//! The index is the environment's CodeArtifact repository, or, when `TRADAI_PUBLISH_URL`
//! is set, that URL with `TRADAI_PUBLISH_USER` (default `aws`) and `TRADAI_PUBLISH_TOKEN`
//! (or `TRADAI_PUBLISH_PASSWORD`). A version already on the index is reported and left
//! alone: indexes refuse to replace a published file.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use camino::Utf8PathBuf;
use clap::Args;
use xtask_aws::Secret;
use xtask_engine::plan::{closure, make_plan};
use xtask_engine::{Cmd, ExecOptions, ProcessError, Progress, Status, Target, execute};
use xtask_wheel::WheelBuilder;

use super::codeartifact::{PackageIndex, TOKEN_USER, codeartifact_index};
use super::{ChangeArgs, Env, confirm, connect};
use crate::project::Project;

/// The libraries published for use outside this repository (seeds: publish-libs.yml).
pub const PUBLISHED_LIBS: &[&str] = &["tradai-strategy"];

/// A token for one publish run needs minutes, not CodeArtifact's 12-hour maximum.
const PUBLISH_TOKEN_DURATION: Duration = Duration::from_secs(900);

#[derive(Debug, Args)]
pub struct PublishAllLibsArgs {
    /// The environment whose package index to publish to (dev, staging or prod)
    #[arg(value_name = "ENV")]
    pub env: Env,
    /// Change prod without asking (otherwise prod needs its name typed on a terminal)
    #[arg(long)]
    pub yes_prod: bool,
    /// Print one JSON object on stdout (human output goes to stderr)
    #[arg(long)]
    pub json: bool,
}

/// What happened to one library.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub package: String,
    pub version: String,
    pub file: String,
    /// `built` or `skipped` (unchanged since the last build).
    pub build: String,
    /// `uploaded` or `already-published`.
    pub action: String,
}

impl PublishAllLibsArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let change = ChangeArgs { env: self.env, yes_prod: self.yes_prod };
        confirm(&change, "publish libraries to the prod package index")?;
        // The index first: missing credentials fail before anything is built.
        let index = resolve_index(project, self.env)?;
        let progress = Progress::detect(false);
        progress.line(&format!("publishing to {}", index.label));
        let wheels = build_wheels(project, &progress)?;
        let uv = project.tools().uv()?;
        let mut results = Vec::new();
        for (package, file, build) in wheels {
            let filename = file.file_name().unwrap_or(file.as_str()).to_owned();
            let (name, version) = wheel_name_version(&filename)?;
            let action = match upload(&uv, &index, &file)? {
                Upload::Done => {
                    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                    progress.line(&format!("uploaded {filename} ({} KiB) to {}", size.div_ceil(1024), index.url));
                    "uploaded"
                }
                Upload::Exists { identical } => {
                    report_already(&progress, &index, &package, &name, &version, identical);
                    "already-published"
                }
            };
            results.push(Published { package, version, file: filename, build, action: action.to_owned() });
        }
        if self.json {
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &serde_json::json!({ "index": index.url, "published": results }))?;
            writeln!(stdout)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn report_already(progress: &Progress, index: &PackageIndex, package: &str, name: &str, version: &str, identical: bool) {
    let what = if identical { "the same file" } else { "a file of that name" };
    progress.line(&format!(
        "{name} {version} is already in {} ({what}); nothing uploaded; bump the version in libs/{package}/pyproject.toml to publish",
        index.url
    ));
}

/// The index from the environment (tests, other indexes) or CodeArtifact.
fn resolve_index(project: &Project, env: Env) -> Result<PackageIndex> {
    if let Some(url) = std::env::var("TRADAI_PUBLISH_URL").ok().filter(|u| !u.trim().is_empty()) {
        let password =
            std::env::var("TRADAI_PUBLISH_TOKEN").or_else(|_| std::env::var("TRADAI_PUBLISH_PASSWORD")).ok().filter(|p| !p.is_empty());
        if password.is_none() {
            bail!(
                "TRADAI_PUBLISH_URL is set but no credentials are: set TRADAI_PUBLISH_TOKEN (or TRADAI_PUBLISH_USER and TRADAI_PUBLISH_PASSWORD), or unset TRADAI_PUBLISH_URL to publish to CodeArtifact"
            );
        }
        let username = std::env::var("TRADAI_PUBLISH_USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| TOKEN_USER.to_owned());
        let url = url.trim().to_owned();
        return Ok(PackageIndex {
            label: format!("{url} (from TRADAI_PUBLISH_URL)"),
            url,
            username,
            password: password.map(Secret::new),
            expires_at: None,
        });
    }
    let aws = connect(project, env)?;
    codeartifact_index(&aws, env, None, PUBLISH_TOKEN_DURATION)
}

/// Builds every published library's wheel through the engine (skipped when its inputs
/// are unchanged and the wheel still exists); returns (package, wheel path, build).
fn build_wheels(project: &Project, progress: &Progress) -> Result<Vec<(String, Utf8PathBuf, String)>> {
    let out = project.state_dir();
    let targets: Vec<Target> = PUBLISHED_LIBS
        .iter()
        .map(|lib| Target {
            id: (*lib).to_owned(),
            deps: vec![],
            builder: Arc::new(WheelBuilder {
                package_dir: project.root.join("libs").join(lib),
                out_root: out.join("wheels").join(lib),
                uv: project.uv(),
            }),
        })
        .collect();
    let selected: Vec<String> = PUBLISHED_LIBS.iter().map(|s| (*s).to_owned()).collect();
    let order = closure(&targets, &selected)?;
    let store = project.state_store();
    let state = store.load()?;
    let files = project.file_cache();
    let plan = make_plan(&order, &selected, &state, &files, None)?;
    files.save()?;
    let reports = execute(&plan, &targets, &store, ExecOptions { jobs: 1, fail_fast: true }, progress);
    let mut wheels = Vec::new();
    for r in reports {
        match (r.status, &r.artifact) {
            (Status::Built | Status::Skipped, Some(artifact)) => {
                wheels.push((r.id.clone(), Utf8PathBuf::from(artifact), r.status.to_string()))
            }
            _ => bail!("building the {} wheel failed: {}", r.id, r.error.as_deref().unwrap_or(&r.reason)),
        }
    }
    Ok(wheels)
}

/// What an upload came to.
enum Upload {
    Done,
    /// The index already has a file of that name: the same file, or another one.
    Exists {
        identical: bool,
    },
}

/// The distribution name (PEP 503 form) and version a wheel's file name carries
/// (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, PEP 427).
fn wheel_name_version(filename: &str) -> Result<(String, String)> {
    let stem = filename.strip_suffix(".whl").unwrap_or(filename);
    let parts: Vec<&str> = stem.split('-').collect();
    if !(5..=6).contains(&parts.len()) || !filename.ends_with(".whl") {
        bail!("{filename} is not a wheel file name (name-version-python-abi-platform.whl); rebuild the wheel");
    }
    Ok((xtask_repo::normalize(parts[0]), parts[1].to_owned()))
}

/// Uploads one wheel with `uv publish`. uv reads the index first and skips a file it
/// already holds; its messages for that, and for a different file of the same name, are
/// how the outcome is known (uv publish has no machine-readable output).
fn upload(uv: &camino::Utf8Path, index: &PackageIndex, wheel: &camino::Utf8Path) -> Result<Upload> {
    let mut cmd = Cmd::new(uv.as_str(), format!("upload {wheel} to {}", index.url))
        .args(["publish", "--trusted-publishing", "never", "--publish-url", index.url.as_str()])
        .args(["--check-url", index.simple_url().as_str(), wheel.as_str()])
        .env("UV_PUBLISH_USERNAME", index.username.as_str());
    if let Some(password) = &index.password {
        cmd = cmd.env("UV_PUBLISH_PASSWORD", password.expose());
    }
    match cmd.run() {
        Ok(done) if done.stderr.contains("already exists, skipping") => Ok(Upload::Exists { identical: true }),
        Ok(_) => Ok(Upload::Done),
        Err(ProcessError::Failed { stderr, .. }) if stderr.contains("do not match") => Ok(Upload::Exists { identical: false }),
        Err(ProcessError::Failed { stderr, .. }) => {
            let status = ["401", "403"].into_iter().find(|code| stderr.contains(code));
            match status {
                Some(code) => bail!("{}", refused(index, code, "upload to")),
                None => {
                    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
                    bail!("uploading {wheel} to {} failed: {last}; check that the package index is reachable", index.url)
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The one-line error for a refused token, with the fix for where it came from.
fn refused(index: &PackageIndex, status: &str, what: &str) -> String {
    let fix = if index.label.contains("TRADAI_PUBLISH_URL") {
        "check TRADAI_PUBLISH_USER and TRADAI_PUBLISH_TOKEN (or TRADAI_PUBLISH_PASSWORD)"
    } else {
        "the token is fetched fresh on every run, so the AWS credentials in use lack codeartifact:PublishPackageVersion or ReadFromRepository: use a profile with publish rights (AWS_PROFILE)"
    };
    format!("the package index refused the credentials to {what} {} (HTTP {status}); {fix}", index.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_file_names_give_the_normalised_name_and_version() {
        assert_eq!(wheel_name_version("tradai_strategy-0.1.0-py3-none-any.whl").unwrap(), ("tradai-strategy".into(), "0.1.0".into()));
        assert_eq!(wheel_name_version("x-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl").unwrap(), ("x".into(), "1.0".into()));
        assert!(wheel_name_version("tradai_strategy-0.1.0.tar.gz").is_err());
    }
}

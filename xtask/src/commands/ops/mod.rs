//! Operations on the running system (the seeds' "Service Operations" and emergency
//! procedures): ECS status and redeploys, the consolidated EC2 group, CodeArtifact login
//! and library publishing, the Lambda image check and rollback. Everything AWS goes through
//! `xtask_aws`; every name (cluster, service, function, group, repository) comes from the
//! repository model's naming rules; this module adds confirmation for prod, progress and
//! the fixes that errors suggest.

pub mod asg;
pub mod codeartifact;
pub mod ecs;
pub mod lambda_images;
pub mod publish;
pub mod rollback;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use xtask_aws::Aws;
use xtask_engine::Progress;

use crate::project::Project;

/// A deployment environment: the same type the stack graph uses.
pub use xtask_pulumi::graph::Env;

use xtask_repo::{Deployment, Names};

/// The deployment facts (the repository model's, from deployment.toml).
pub fn deployment() -> &'static Deployment {
    Deployment::builtin()
}

/// The naming rules (the repository model's).
pub fn names() -> &'static Names {
    xtask_repo::names()
}

/// Whether the API services of `env` run on the consolidated EC2 host instead of ECS.
pub fn consolidated(env: Env) -> bool {
    deployment().consolidated(env.name())
}

/// `--env` for commands that only read.
#[derive(Debug, Clone, Args)]
pub struct EnvArg {
    /// The environment (dev, staging or prod)
    #[arg(long, default_value_t = Env::Dev)]
    pub env: Env,
}

/// `--env` and the prod confirmation, for commands that change something.
#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    /// The environment (dev, staging or prod)
    #[arg(long, default_value_t = Env::Dev)]
    pub env: Env,
    /// Change prod without asking (otherwise prod needs its name typed on a terminal)
    #[arg(long)]
    pub yes_prod: bool,
}

/// How long to wait for a change to settle.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Give up waiting after this many seconds (the change itself goes on)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Start the change and return without waiting for it
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds between status checks
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, hide = true)]
    pub poll_interval: f64,
}

impl WaitArgs {
    pub fn timeout_or(&self, default_secs: u64) -> Duration {
        Duration::from_secs(self.timeout.unwrap_or(default_secs))
    }
    pub fn poll(&self) -> Duration {
        Duration::from_secs_f64(self.poll_interval.clamp(0.05, 300.0))
    }
}

/// `<project>-<name>-<env>`, the standard resource name (config.py `get_resource_name`).
pub fn resource_name(name: &str, env: Env) -> String {
    names().resource(name, env.name())
}

/// Refuses to change prod unless `--yes-prod` is given or the user types `prod` on a
/// terminal. Runs before any AWS call.
pub fn confirm(args: &ChangeArgs, what: &str) -> Result<()> {
    if args.env != Env::Prod {
        return Ok(());
    }
    crate::confirm::typed("prod", &format!("{what} in prod"), args.yes_prod, "--yes-prod")
}

/// Connects to AWS for `env`. The standard chain decides (AWS_PROFILE, AWS_REGION,
/// credentials in the environment, SSO, instance roles); `AWS_PROFILE` and `AWS_REGION`
/// from infra/.env fill in what the process environment lacks, as the seeds' recipes
/// read them from there (the same settings the ECR registry uses).
pub fn connect(project: &Project, env: Env) -> Result<Aws> {
    let settings = crate::ecr::aws_settings(project, Some(env.name()))?;
    Ok(Aws::connect(&settings)?)
}

/// Progress of a wait: a status line redrawn in place on a terminal, a plain line per
/// change of state otherwise (CI logs, pipes); lasting lines go through the engine's
/// [`Progress`].
pub struct Watch {
    progress: Progress,
    live: bool,
    drawn: bool,
    last: Option<String>,
    started: Instant,
}

impl Watch {
    pub fn new() -> Self {
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        Watch {
            progress: Progress::plain(),
            live: std::io::stderr().is_terminal() && !github,
            drawn: false,
            last: None,
            started: Instant::now(),
        }
    }

    /// A lasting line.
    pub fn line(&mut self, text: &str) {
        self.clear();
        self.progress.line(text);
    }

    /// The current state of what is being waited for.
    pub fn status(&mut self, text: &str) {
        if self.live {
            let secs = self.started.elapsed().as_secs();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{text} ({secs}s)");
            let _ = err.flush();
            self.drawn = true;
        } else if self.last.as_deref() != Some(text) {
            self.progress.line(text);
            self.last = Some(text.to_owned());
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `YYYY-MM-DD HH:MM UTC` for Unix seconds.
pub fn utc_time(secs: u64) -> String {
    let s = xtask_engine::state::utc_stamp(secs);
    format!("{}-{}-{} {}:{} UTC", &s[0..4], &s[4..6], &s[6..8], &s[8..10], &s[10..12])
}

/// `3h 12m`, `4m 05s`, `12s`.
pub fn duration_text(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

pub use xtask_engine::report::text_table as table;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_seeds() {
        assert_eq!(resource_name("consolidated", Env::Dev), "tradai-consolidated-dev");
        assert_eq!(resource_name("backend-api", Env::Prod), "tradai-backend-api-prod");
        assert!(consolidated(Env::Dev) && consolidated(Env::Staging) && !consolidated(Env::Prod));
    }

    #[test]
    fn the_deployment_facts_cover_every_environment_the_tool_knows() {
        let known: Vec<&str> = Env::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(deployment().environments, known, "deployment.toml and the stack graph list the same environments");
        assert_eq!(names().project(), "tradai");
        assert_eq!(crate::commands::ops::ecs::trading_services(), ["dry-run-trading", "live-trading"]);
    }

    #[test]
    fn times_and_durations_read_naturally() {
        assert_eq!(utc_time(1_774_700_000), "2026-03-28 12:13 UTC");
        assert_eq!(duration_text(43_200), "12h 00m");
        assert_eq!(duration_text(245), "4m 05s");
        assert_eq!(duration_text(9), "9s");
    }
}

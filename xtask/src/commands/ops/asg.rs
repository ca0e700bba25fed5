//! `asg-status` and `asg-refresh`: the consolidated EC2 group that runs the API services
//! in dev and staging, and the instance refresh that rolls it onto a new launch template
//! or new images.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use xtask_aws::{Aws, AwsError, RefreshPreferences, ResourceKind};

use super::{ChangeArgs, Env, EnvArg, WaitArgs, Watch, confirm, connect, table, utc_time};
use crate::project::Project;

/// A refresh replaces instances one at a time, each warming up; 30 minutes is bounded
/// and enough for the small group.
const DEFAULT_TIMEOUT_SECS: u64 = 1800;

#[derive(Debug, Args)]
pub struct AsgStatusArgs {
    #[command(flatten)]
    pub env: EnvArg,
}

#[derive(Debug, Args)]
pub struct AsgRefreshArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Capacity that must stay in service during the refresh, in percent
    #[arg(long, value_name = "PERCENT", default_value_t = 100)]
    pub min_healthy: i32,
    /// Capacity allowed during the refresh, in percent (above 100: launch before terminating)
    #[arg(long, value_name = "PERCENT", default_value_t = 200)]
    pub max_healthy: i32,
}

/// The consolidated group of an environment (config.py `get_resource_name("consolidated")`).
pub fn group_name(env: Env) -> String {
    super::names().consolidated_group(env.name())
}

/// Maps a missing group in prod (which runs everything on Fargate) to the command that
/// redeploys there.
fn explain_missing(e: AwsError, env: Env) -> anyhow::Error {
    if env == Env::Prod && e.is_not_found(ResourceKind::AutoScalingGroup) {
        return anyhow::anyhow!(
            "prod has no consolidated EC2 group ({} does not exist): its services run on ECS Fargate; redeploy them with `cargo xtask ecs-force-deploy-all --env prod` or `cargo xtask ecs-force-deploy <service> --env prod`",
            group_name(env)
        );
    }
    e.into()
}

impl AsgStatusArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let env = self.env.env;
        let aws = connect(project, env)?;
        let name = group_name(env);
        let group = aws.describe_auto_scaling_group(&name).map_err(|e| explain_missing(e, env))?;
        let mut out = format!(
            "Auto Scaling group {name}: desired {} (min {}, max {}), launch template {}\n",
            group.desired,
            group.min,
            group.max,
            group.launch_template.as_deref().unwrap_or("none")
        );
        if group.instances.is_empty() {
            out.push_str("no instances\n");
        } else {
            let rows: Vec<Vec<String>> = group
                .instances
                .iter()
                .map(|i| {
                    vec![
                        i.id.clone(),
                        i.lifecycle_state.clone(),
                        i.health.clone(),
                        i.instance_type.clone().unwrap_or_else(|| "-".into()),
                        i.launch_template_version.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            out.push_str(&table(&["instance", "state", "health", "type", "template version"], &rows));
        }
        out.push_str(&refreshes_text(&aws, &name)?);
        eprint!("{out}");
        Ok(ExitCode::SUCCESS)
    }
}

fn refreshes_text(aws: &Aws, group: &str) -> Result<String> {
    let refreshes = aws.describe_instance_refreshes(group, &[])?;
    if refreshes.is_empty() {
        return Ok("no instance refreshes\n".into());
    }
    let rows: Vec<Vec<String>> = refreshes
        .iter()
        .take(5)
        .map(|r| {
            vec![
                r.id.clone(),
                r.status.clone(),
                r.percentage.map(|p| format!("{p}%")).unwrap_or_else(|| "-".into()),
                r.started_at.map(utc_time).unwrap_or_else(|| "-".into()),
                r.ended_at.map(utc_time).unwrap_or_else(|| "-".into()),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    Ok(format!("instance refreshes (newest first):\n{}", table(&["refresh", "status", "done", "started", "ended", "reason"], &rows)))
}

impl AsgRefreshArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let env = self.change.env;
        let name = group_name(env);
        if !(0..=100).contains(&self.min_healthy) || !(100..=200).contains(&self.max_healthy) {
            bail!("--min-healthy must be 0-100 and --max-healthy 100-200 (got {} and {})", self.min_healthy, self.max_healthy);
        }
        confirm(&self.change, &format!("replace the instances of {name}"))?;
        let aws = connect(project, env)?;
        let prefs = RefreshPreferences { min_healthy_percentage: self.min_healthy, max_healthy_percentage: self.max_healthy };
        let mut watch = Watch::new();
        let id = start_refresh(&aws, env, prefs, &mut watch)?;
        if self.wait.no_wait {
            watch.line(&format!("not waiting (--no-wait); follow it with `cargo xtask asg-status --env {env}`"));
            return Ok(ExitCode::SUCCESS);
        }
        wait_refresh(&aws, env, &id, &self.wait, &mut watch)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Starts an instance refresh of the environment's group (checked to exist first, so a
/// missing one fails with the fix before anything starts); returns its id.
pub(super) fn start_refresh(aws: &Aws, env: Env, prefs: RefreshPreferences, watch: &mut Watch) -> Result<String> {
    let name = group_name(env);
    let group = aws.describe_auto_scaling_group(&name).map_err(|e| explain_missing(e, env))?;
    let id = aws.start_instance_refresh(&name, prefs)?;
    watch.line(&format!(
        "started instance refresh {id} of {name} ({} instance(s); min healthy {}%, max healthy {}%)",
        group.instances.len(),
        prefs.min_healthy_percentage,
        prefs.max_healthy_percentage
    ));
    Ok(id)
}

/// Follows refresh `id` to its end; an error unless it ends Successful in time.
pub(super) fn wait_refresh(aws: &Aws, env: Env, id: &str, wait: &WaitArgs, watch: &mut Watch) -> Result<()> {
    let name = group_name(env);
    let timeout = wait.timeout_or(DEFAULT_TIMEOUT_SECS);
    let outcome = aws.wait_for_instance_refresh(&name, id, timeout, wait.poll(), &mut |r| {
        let pct = r.percentage.map(|p| format!(" {p}%")).unwrap_or_default();
        let left = r.instances_to_update.map(|n| format!(", {n} instance(s) to update")).unwrap_or_default();
        watch.status(&format!("refreshing {name}: {}{pct}{left}", r.status));
    })?;
    let r = &outcome.refresh;
    let secs = outcome.seconds.round() as u64;
    if outcome.timed_out {
        watch.line(&format!("timed out: refresh {id} of {name} is {} after {secs}s", r.status));
        bail!(
            "the instance refresh of {name} did not finish within {}s ({}); it goes on: follow it with `cargo xtask asg-status --env {env}` or wait longer with --timeout",
            timeout.as_secs(),
            r.status
        );
    }
    if r.succeeded() {
        watch.line(&format!("refreshed {name}: instance refresh {id} Successful in {secs}s"));
        return Ok(());
    }
    let reason = r.reason.as_deref().unwrap_or("no reason given");
    watch.line(&format!("failed   {name}: instance refresh {id} ended {} after {secs}s: {reason}", r.status));
    bail!(
        "the instance refresh of {name} ended {}: {reason}; check the instances with `cargo xtask asg-status --env {env}` and the container logs, then run asg-refresh again",
        r.status
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_is_named_as_the_compute_stack_names_it() {
        assert_eq!(group_name(Env::Dev), "tradai-consolidated-dev");
    }

    #[test]
    fn a_missing_prod_group_points_at_ecs() {
        let e = AwsError::NotFound {
            kind: ResourceKind::AutoScalingGroup,
            name: "tradai-consolidated-prod".into(),
            place: String::new(),
            env: "prod".into(),
        };
        let text = explain_missing(e, Env::Prod).to_string();
        assert!(text.contains("ecs-force-deploy-all --env prod"), "{text}");
        let e = AwsError::NotFound {
            kind: ResourceKind::AutoScalingGroup,
            name: "tradai-consolidated-dev".into(),
            place: String::new(),
            env: "dev".into(),
        };
        assert!(explain_missing(e, Env::Dev).to_string().contains("infra-up compute dev"));
    }
}

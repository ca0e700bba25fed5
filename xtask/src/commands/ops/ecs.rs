//! `ecs-status`, `ecs-force-deploy <service>` and `ecs-force-deploy-all`: the ECS
//! services of an environment, and redeploying them (after an image push, or as the
//! seeds' emergency hotfix) with a wait until each deployment settles.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use xtask_aws::{Aws, DeploymentOutcome, DeploymentState, EcsService, ResourceKind};

use super::{ChangeArgs, Env, EnvArg, WaitArgs, Watch, confirm, connect, table};
use crate::project::Project;

/// The trading services: the strategy-service image run as long-lived ECS services in
/// every environment (deployment.toml, which config.py reads too); they have no
/// Dockerfile of their own.
pub fn trading_services() -> Vec<String> {
    super::deployment().trading_services()
}

/// What `ecs-force-deploy-all` redeploys, as the seeds define it: the trading services.
pub const FORCE_DEPLOY_ALL: &[&str] = &["strategy-service", "dry-run-trading", "live-trading"];

/// A deployment settles within minutes; 10 is generous and still bounded.
const DEFAULT_TIMEOUT_SECS: u64 = 600;

#[derive(Debug, Args)]
pub struct EcsStatusArgs {
    #[command(flatten)]
    pub env: EnvArg,
    /// Print one JSON object on stdout (human output goes to stderr)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EcsForceDeployArgs {
    /// The service: backend, data-collection, strategy-service, mlflow, dry-run-trading or live-trading
    #[arg(value_name = "SERVICE")]
    pub service: String,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct EcsForceDeployAllArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The API services (services/*/Dockerfile) and the trading services, sorted.
pub fn known_services(project: &Project) -> Result<Vec<String>> {
    let mut all = project.services()?;
    all.extend(trading_services());
    all.sort();
    Ok(all)
}

/// The ECS service name: `<project>-<service>-<env>`, with `backend` deployed as
/// `backend-api` (config.py `get_ecs_service_name`).
pub fn ecs_service_name(service: &str, env: Env) -> String {
    super::names().ecs_service(service, env.name())
}

/// The ECS cluster of an environment.
pub fn cluster_name(env: Env) -> String {
    super::names().cluster(env.name())
}

/// Checks a service name typed by the user; `backend-api` is accepted for `backend`.
fn resolve_service(project: &Project, name: &str) -> Result<String> {
    let known = known_services(project)?;
    let name = super::names().service_of_deployed(name);
    if known.iter().any(|k| k == name) {
        return Ok(name.to_owned());
    }
    bail!("unknown service `{name}`; valid services: {}", known.join(", "))
}

/// Whether `service` is an API service that `env` runs on the consolidated EC2 host
/// rather than on ECS.
fn on_consolidated_host(project: &Project, service: &str, env: Env) -> Result<bool> {
    Ok(super::consolidated(env) && project.services()?.iter().any(|s| s == service))
}

impl EcsStatusArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let env = self.env.env;
        let cluster = cluster_name(env);
        let aws = connect(project, env)?;
        let names = aws.list_services(&cluster)?;
        let described = aws.describe_services(&cluster, &names)?;
        let mut rows = Vec::new();
        let mut json = Vec::new();
        for s in &described.found {
            let images = match aws.task_definition_images(&s.task_definition) {
                Ok(i) => i,
                Err(e) => {
                    tracing::info!(service = %s.name, error = %e, "task definition not readable");
                    Vec::new()
                }
            };
            let image = images
                .first()
                .map(|i| match &i.digest {
                    Some(d) => short_digest(d),
                    None => i.image.rsplit('/').next().unwrap_or(&i.image).to_owned(),
                })
                .unwrap_or_else(|| "-".into());
            rows.push(vec![
                s.name.clone(),
                s.desired.to_string(),
                s.running.to_string(),
                s.pending.to_string(),
                s.task_definition_revision().to_owned(),
                image,
                deployment_summary(s),
            ]);
            json.push(serde_json::json!({
                "service": s.name,
                "desired": s.desired,
                "running": s.running,
                "pending": s.pending,
                "task_definition": s.task_definition_revision(),
                "images": images.iter().map(|i| serde_json::json!({"container": i.container, "image": i.image, "digest": i.digest})).collect::<Vec<_>>(),
                "deployments": s.deployments.iter().map(|d| serde_json::json!({
                    "id": d.id, "status": d.status, "rollout_state": d.rollout_state, "running": d.running, "desired": d.desired, "failed_tasks": d.failed_tasks,
                })).collect::<Vec<_>>(),
            }));
        }
        let mut out = format!("ECS cluster {cluster} ({} services, region {})\n", described.found.len(), aws.region());
        if rows.is_empty() {
            out.push_str("no services\n");
        } else {
            out.push_str(&table(&["service", "desired", "running", "pending", "task definition", "image", "deployment"], &rows));
        }
        let absent: Vec<String> =
            known_services(project)?.iter().map(|s| ecs_service_name(s, env)).filter(|n| !names.contains(n)).collect();
        if !absent.is_empty() {
            out.push_str(&format!("not in the cluster: {}", absent.join(", ")));
            if super::consolidated(env) {
                out.push_str(&format!(" ({env} runs the API services on the consolidated EC2 host: `cargo xtask asg-status --env {env}`)"));
            }
            out.push('\n');
        }
        eprint!("{out}");
        if self.json {
            let v = serde_json::json!({"cluster": cluster, "services": json, "absent": absent});
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &v)?;
            writeln!(stdout)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `sha256:0123456789ab` from a full digest.
fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => d.to_owned(),
    }
}

/// One cell on the state of a service's deployments.
fn deployment_summary(s: &EcsService) -> String {
    let Some(p) = s.primary() else { return "no deployment".into() };
    let mut text = p
        .rollout_state
        .clone()
        .unwrap_or_else(|| if s.deployments.len() == 1 && p.running == p.desired { "STEADY".into() } else { "IN_PROGRESS".into() });
    let older = s.deployments.len().saturating_sub(1);
    if older > 0 {
        text.push_str(&format!(" (+{older} older)"));
    }
    if p.failed_tasks > 0 {
        text.push_str(&format!(", {} failed tasks", p.failed_tasks));
    }
    text
}

impl EcsForceDeployArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let service = resolve_service(project, &self.service)?;
        let env = self.change.env;
        confirm(&self.change, &format!("redeploy {}", ecs_service_name(&service, env)))?;
        let aws = connect(project, env)?;
        let name = ecs_service_name(&service, env);
        let cluster = cluster_name(env);
        let found = aws.describe_services(&cluster, std::slice::from_ref(&name))?;
        if !found.missing.is_empty() {
            if on_consolidated_host(project, &service, env)? {
                bail!(
                    "{name} is not an ECS service in {env}: {env} runs the API services on the consolidated EC2 host; roll it onto new images with `cargo xtask asg-refresh --env {env}`"
                );
            }
            bail!(aws_missing_service(&name, &cluster, env));
        }
        deploy(&aws, &cluster, &[(service, name)], &self.wait, env)
    }
}

impl EcsForceDeployAllArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let env = self.change.env;
        confirm(&self.change, "redeploy the trading services")?;
        let aws = connect(project, env)?;
        let cluster = cluster_name(env);
        let wanted: Vec<(String, String)> = FORCE_DEPLOY_ALL.iter().map(|s| ((*s).to_owned(), ecs_service_name(s, env))).collect();
        let names: Vec<String> = wanted.iter().map(|(_, n)| n.clone()).collect();
        let found = aws.describe_services(&cluster, &names)?;
        let mut selected = Vec::new();
        let mut missing = Vec::new();
        let mut watch = Watch::new();
        for (service, name) in wanted {
            if !found.missing.contains(&name) {
                selected.push((service, name));
            } else if on_consolidated_host(project, &service, env)? {
                watch.line(&format!("skipped  {name}: {env} runs {service} on the consolidated EC2 host (`cargo xtask asg-refresh --env {env}` redeploys it)"));
            } else {
                missing.push(name);
            }
        }
        drop(watch);
        // Check every service before starting any deployment: nothing half-done.
        if !missing.is_empty() {
            bail!(
                "ECS service(s) {} do not exist in cluster {cluster}; they are created by the compute stack: `cargo xtask infra-up compute {env}`",
                missing.join(", ")
            );
        }
        deploy(&aws, &cluster, &selected, &self.wait, env)
    }
}

fn aws_missing_service(name: &str, cluster: &str, env: Env) -> String {
    xtask_aws::AwsError::NotFound {
        kind: ResourceKind::EcsService,
        name: name.to_owned(),
        place: format!(" in cluster {cluster}"),
        env: env.to_string(),
    }
    .to_string()
}

/// Forces a new deployment of each `(service, ECS name)`, then waits for all of them in
/// one polling loop and reports each end state. Failures show the service's recent
/// events.
pub(super) fn deploy(aws: &Aws, cluster: &str, services: &[(String, String)], wait: &WaitArgs, env: Env) -> Result<ExitCode> {
    let mut watch = Watch::new();
    let mut started = Vec::new();
    for (_, name) in services {
        let svc = aws.force_new_deployment(cluster, name)?;
        let primary = svc.primary().map(|d| d.id.clone()).unwrap_or_default();
        watch.line(&format!("started deployment {primary} of {name} (task definition {})", svc.task_definition_revision()));
        started.push((name.clone(), primary));
    }
    if wait.no_wait {
        watch.line(&format!("not waiting (--no-wait); follow it with `cargo xtask ecs-status --env {env}`"));
        return Ok(ExitCode::SUCCESS);
    }
    let timeout = wait.timeout_or(DEFAULT_TIMEOUT_SECS);
    let outcomes = aws.wait_for_deployments(cluster, &started, timeout, wait.poll(), &mut |snapshot| {
        let parts: Vec<String> = snapshot
            .iter()
            .map(|s| {
                let state = s.primary().and_then(|p| p.rollout_state.clone()).unwrap_or_else(|| "IN_PROGRESS".into());
                format!("{}: {state}, {}/{} running", s.name, s.running, s.desired)
            })
            .collect();
        watch.status(&format!("waiting for {}", parts.join("; ")));
    })?;
    let mut failures = Vec::new();
    for o in &outcomes {
        report_outcome(&mut watch, o);
        if !matches!(o.state, DeploymentState::Completed) || o.timed_out {
            failures.push(o);
        }
    }
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let described: Vec<String> = failures
        .iter()
        .map(|o| {
            if o.timed_out {
                format!("{} did not settle within {}s", o.service, timeout.as_secs())
            } else {
                match &o.state {
                    DeploymentState::Failed(reason) => format!("{} failed: {reason}", o.service),
                    DeploymentState::Superseded(by) => format!("{} was replaced by deployment {by}", o.service),
                    _ => format!("{} did not complete", o.service),
                }
            }
        })
        .collect();
    let fix = if failures.iter().all(|o| o.timed_out) {
        format!("ECS keeps deploying: follow it with `cargo xtask ecs-status --env {env}` or wait longer with --timeout")
    } else {
        format!("see the service events above, fix the cause, then redeploy (`cargo xtask ecs-force-deploy <service> --env {env}`)")
    };
    bail!("{}; {fix}", described.join("; "))
}

fn report_outcome(watch: &mut Watch, o: &DeploymentOutcome) {
    let counts =
        o.last.as_ref().map(|s| format!("{}/{} running, {}", s.running, s.desired, s.task_definition_revision())).unwrap_or_default();
    let secs = o.seconds.round() as u64;
    let line = match (&o.state, o.timed_out) {
        (_, true) => format!("timed out {}: deployment {} still in progress after {secs}s ({counts})", o.service, o.deployment_id),
        (DeploymentState::Completed, _) => {
            format!("deployed {}: deployment {} completed in {secs}s ({counts})", o.service, o.deployment_id)
        }
        (DeploymentState::Failed(reason), _) => {
            format!("failed   {}: deployment {} failed: {reason} ({counts})", o.service, o.deployment_id)
        }
        (DeploymentState::Superseded(by), _) => format!("replaced {}: deployment {} was replaced by {by}", o.service, o.deployment_id),
        (DeploymentState::InProgress, _) => format!("pending  {}: deployment {} ({counts})", o.service, o.deployment_id),
    };
    watch.line(&line);
    if matches!(o.state, DeploymentState::Completed) && !o.timed_out {
        return;
    }
    match o.last.as_ref().map(|s| &s.events) {
        Some(events) if !events.is_empty() => {
            watch.line(&format!("  recent events of {}:", o.service));
            for e in events.iter().take(5) {
                let at = e.at.map(super::utc_time).unwrap_or_default();
                watch.line(&format!("    {at}  {}", e.message));
            }
        }
        _ => watch.line(&format!("  {} has no recent events", o.service)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_deployed_as_backend_api() {
        assert_eq!(ecs_service_name("backend", Env::Dev), "tradai-backend-api-dev");
        assert_eq!(ecs_service_name("live-trading", Env::Prod), "tradai-live-trading-prod");
        assert_eq!(cluster_name(Env::Staging), "tradai-staging");
    }

    #[test]
    fn digests_are_shortened_for_the_table() {
        assert_eq!(short_digest(&format!("sha256:{}", "ab".repeat(32))), "sha256:abababababab");
        assert_eq!(short_digest("x"), "x");
    }
}

//! ECS: what each service runs and how its deployments stand, forcing a new deployment,
//! and waiting until deployments settle.

use std::time::{Duration, Instant};

use crate::error::{classify, code_of};
use crate::{Aws, Result, ResourceKind};

/// DescribeServices takes at most 10 services per call.
const DESCRIBE_LIMIT: usize = 10;
/// How many of a service's events are kept (newest first).
const EVENTS_KEPT: usize = 10;

/// One ECS service as DescribeServices reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsService {
    pub name: String,
    pub status: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// Task definition ARN (`...:task-definition/<family>:<revision>`).
    pub task_definition: String,
    pub deployments: Vec<EcsDeployment>,
    /// Newest first.
    pub events: Vec<EcsEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsDeployment {
    pub id: String,
    /// PRIMARY (the newest), ACTIVE (being replaced) or INACTIVE.
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub failed_tasks: i32,
    /// COMPLETED, FAILED or IN_PROGRESS, when ECS tracks the rollout.
    pub rollout_state: Option<String>,
    pub rollout_reason: Option<String>,
    /// Unix seconds.
    pub created_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsEvent {
    /// Unix seconds.
    pub at: Option<u64>,
    pub message: String,
}

/// The services found and the names that do not exist (or are inactive).
#[derive(Debug, Clone, Default)]
pub struct EcsServices {
    pub found: Vec<EcsService>,
    pub missing: Vec<String>,
}

/// A container's image in a task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskImage {
    pub container: String,
    pub image: String,
    /// `sha256:<hex>` when the image is pinned by digest.
    pub digest: Option<String>,
}

/// Where a deployment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentState {
    InProgress,
    Completed,
    /// The rollout failed (the circuit breaker rolled it back, or tasks keep failing).
    Failed(String),
    /// A newer deployment replaced it before it finished (its id).
    Superseded(String),
}

/// How waiting for one service's deployment ended.
#[derive(Debug, Clone)]
pub struct DeploymentOutcome {
    pub service: String,
    pub deployment_id: String,
    pub state: DeploymentState,
    /// True when the wait ran out of time before the deployment settled.
    pub timed_out: bool,
    pub seconds: f64,
    /// The service as last seen.
    pub last: Option<EcsService>,
}

impl EcsService {
    pub fn primary(&self) -> Option<&EcsDeployment> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }

    /// `<family>:<revision>` of the service's task definition.
    pub fn task_definition_revision(&self) -> &str {
        self.task_definition.rsplit('/').next().unwrap_or(&self.task_definition)
    }

    /// Where deployment `id` stands, from this snapshot.
    pub fn deployment_state(&self, id: &str) -> DeploymentState {
        let Some(d) = self.deployments.iter().find(|d| d.id == id) else {
            return DeploymentState::Superseded(self.primary().map(|p| p.id.clone()).unwrap_or_else(|| "unknown".into()));
        };
        if d.status != "PRIMARY" {
            return DeploymentState::Superseded(self.primary().map(|p| p.id.clone()).unwrap_or_else(|| "unknown".into()));
        }
        match d.rollout_state.as_deref() {
            Some("FAILED") => DeploymentState::Failed(d.rollout_reason.clone().unwrap_or_else(|| "the rollout failed".into())),
            Some("COMPLETED") => DeploymentState::Completed,
            Some(_) => DeploymentState::InProgress,
            // Without rollout tracking, steady state is the only deployment left running
            // every desired task.
            None if self.deployments.len() == 1 && d.running == d.desired && d.pending == 0 => DeploymentState::Completed,
            None => DeploymentState::InProgress,
        }
    }
}

impl Aws {
    /// The names of every service in `cluster`.
    pub fn list_services(&self, cluster: &str) -> Result<Vec<String>> {
        let site = self.site("ECS", "ListServices", "ecs");
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = match self.block(self.ecs.list_services().cluster(cluster).max_results(100).set_next_token(token.take()).send()) {
                Ok(o) => o,
                Err(e) if code_of(&e) == Some("ClusterNotFoundException") => return Err(self.not_found(ResourceKind::EcsCluster, cluster, String::new())),
                Err(e) => return Err(classify(&site, e)),
            };
            names.extend(out.service_arns().iter().map(|arn| arn.rsplit('/').next().unwrap_or(arn).to_owned()));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        names.sort();
        Ok(names)
    }

    /// Describes `names` in `cluster`, 10 per call, in the order asked.
    pub fn describe_services(&self, cluster: &str, names: &[String]) -> Result<EcsServices> {
        let site = self.site("ECS", "DescribeServices", "ecs");
        let mut result = EcsServices::default();
        for chunk in names.chunks(DESCRIBE_LIMIT) {
            let req = self.ecs.describe_services().cluster(cluster).set_services(Some(chunk.to_vec()));
            let out = match self.block(req.send()) {
                Ok(o) => o,
                Err(e) if code_of(&e) == Some("ClusterNotFoundException") => return Err(self.not_found(ResourceKind::EcsCluster, cluster, String::new())),
                Err(e) => return Err(classify(&site, e)),
            };
            for name in chunk {
                let found = out.services().iter().find(|s| s.service_name() == Some(name.as_str()) && s.status() != Some("INACTIVE"));
                match found {
                    Some(s) => result.found.push(convert_service(s)),
                    None => result.missing.push(name.clone()),
                }
            }
        }
        Ok(result)
    }

    /// The container images of a task definition.
    pub fn task_definition_images(&self, task_definition: &str) -> Result<Vec<TaskImage>> {
        let site = self.site("ECS", "DescribeTaskDefinition", "ecs");
        let out = self.block(self.ecs.describe_task_definition().task_definition(task_definition).send()).map_err(|e| classify(&site, e))?;
        let Some(td) = out.task_definition() else { return Ok(Vec::new()) };
        Ok(td
            .container_definitions()
            .iter()
            .map(|c| {
                let image = c.image().unwrap_or_default().to_owned();
                let digest = image.rsplit_once('@').map(|(_, d)| d.to_owned()).filter(|d| d.starts_with("sha256:"));
                TaskImage { container: c.name().unwrap_or_default().to_owned(), image, digest }
            })
            .collect())
    }

    /// Starts a new deployment of `service` with its current task definition (which
    /// pulls the tag again); returns the service with the new PRIMARY deployment.
    pub fn force_new_deployment(&self, cluster: &str, service: &str) -> Result<EcsService> {
        let site = self.site("ECS", "UpdateService", "ecs");
        let req = self.ecs.update_service().cluster(cluster).service(service).force_new_deployment(true);
        match self.block(req.send()) {
            Ok(out) => match out.service() {
                Some(s) => Ok(convert_service(s)),
                None => Err(crate::AwsError::Other(format!("ECS returned no service for {service}"))),
            },
            Err(e) if matches!(code_of(&e), Some("ServiceNotFoundException" | "ServiceNotActiveException")) => {
                Err(self.not_found(ResourceKind::EcsService, service, format!(" in cluster {cluster}")))
            }
            Err(e) if code_of(&e) == Some("ClusterNotFoundException") => Err(self.not_found(ResourceKind::EcsCluster, cluster, String::new())),
            Err(e) => Err(classify(&site, e)),
        }
    }

    /// Waits until every `(service, deployment id)` has settled (completed, failed or
    /// been replaced) or `timeout` passes, polling all of them in one DescribeServices
    /// call every `poll`. `observe` sees each snapshot (for a progress line).
    pub fn wait_for_deployments(
        &self,
        cluster: &str,
        deployments: &[(String, String)],
        timeout: Duration,
        poll: Duration,
        observe: &mut dyn FnMut(&[EcsService]),
    ) -> Result<Vec<DeploymentOutcome>> {
        let started = Instant::now();
        let mut outcomes: Vec<DeploymentOutcome> = deployments
            .iter()
            .map(|(s, id)| DeploymentOutcome { service: s.clone(), deployment_id: id.clone(), state: DeploymentState::InProgress, timed_out: false, seconds: 0.0, last: None })
            .collect();
        loop {
            let pending: Vec<String> = outcomes.iter().filter(|o| o.state == DeploymentState::InProgress).map(|o| o.service.clone()).collect();
            let snapshot = self.describe_services(cluster, &pending)?;
            observe(&snapshot.found);
            for o in outcomes.iter_mut().filter(|o| o.state == DeploymentState::InProgress) {
                o.seconds = started.elapsed().as_secs_f64();
                match snapshot.found.iter().find(|s| s.name == o.service) {
                    Some(s) => {
                        o.state = s.deployment_state(&o.deployment_id);
                        o.last = Some(s.clone());
                    }
                    None => o.state = DeploymentState::Failed(format!("the service {} disappeared from cluster {cluster}", o.service)),
                }
            }
            if outcomes.iter().all(|o| o.state != DeploymentState::InProgress) {
                return Ok(outcomes);
            }
            let elapsed = started.elapsed();
            if elapsed >= timeout {
                for o in outcomes.iter_mut().filter(|o| o.state == DeploymentState::InProgress) {
                    o.timed_out = true;
                }
                return Ok(outcomes);
            }
            std::thread::sleep(poll.min(timeout - elapsed));
        }
    }
}

fn convert_service(s: &aws_sdk_ecs::types::Service) -> EcsService {
    EcsService {
        name: s.service_name().unwrap_or_default().to_owned(),
        status: s.status().unwrap_or_default().to_owned(),
        desired: s.desired_count(),
        running: s.running_count(),
        pending: s.pending_count(),
        task_definition: s.task_definition().unwrap_or_default().to_owned(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| EcsDeployment {
                id: d.id().unwrap_or_default().to_owned(),
                status: d.status().unwrap_or_default().to_owned(),
                task_definition: d.task_definition().unwrap_or_default().to_owned(),
                desired: d.desired_count(),
                running: d.running_count(),
                pending: d.pending_count(),
                failed_tasks: d.failed_tasks(),
                rollout_state: d.rollout_state().map(|r| r.as_str().to_owned()),
                rollout_reason: d.rollout_state_reason().map(str::to_owned),
                created_at: d.created_at().and_then(crate::unix),
            })
            .collect(),
        events: s
            .events()
            .iter()
            .take(EVENTS_KEPT)
            .map(|e| EcsEvent { at: e.created_at().and_then(crate::unix), message: e.message().unwrap_or_default().to_owned() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: &str, status: &str, rollout: Option<&str>, running: i32, desired: i32) -> EcsDeployment {
        EcsDeployment {
            id: id.into(),
            status: status.into(),
            task_definition: "arn:aws:ecs:eu-central-1:1:task-definition/tradai-backend-api-dev:3".into(),
            desired,
            running,
            pending: desired - running,
            failed_tasks: 0,
            rollout_state: rollout.map(str::to_owned),
            rollout_reason: rollout.map(|r| format!("reason {r}")),
            created_at: None,
        }
    }

    fn service(deployments: Vec<EcsDeployment>) -> EcsService {
        EcsService {
            name: "tradai-backend-api-dev".into(),
            status: "ACTIVE".into(),
            desired: 1,
            running: 1,
            pending: 0,
            task_definition: "arn:aws:ecs:eu-central-1:1:task-definition/tradai-backend-api-dev:3".into(),
            deployments,
            events: vec![],
        }
    }

    #[test]
    fn rollout_state_decides_when_present() {
        let s = service(vec![deployment("new", "PRIMARY", Some("IN_PROGRESS"), 0, 1), deployment("old", "ACTIVE", Some("COMPLETED"), 1, 1)]);
        assert_eq!(s.deployment_state("new"), DeploymentState::InProgress);
        assert_eq!(s.deployment_state("old"), DeploymentState::Superseded("new".into()));
        let s = service(vec![deployment("new", "PRIMARY", Some("COMPLETED"), 1, 1)]);
        assert_eq!(s.deployment_state("new"), DeploymentState::Completed);
        let s = service(vec![deployment("new", "PRIMARY", Some("FAILED"), 0, 1)]);
        assert_eq!(s.deployment_state("new"), DeploymentState::Failed("reason FAILED".into()));
    }

    #[test]
    fn without_rollout_state_steady_state_means_completed() {
        let s = service(vec![deployment("new", "PRIMARY", None, 1, 1), deployment("old", "ACTIVE", None, 1, 1)]);
        assert_eq!(s.deployment_state("new"), DeploymentState::InProgress);
        let s = service(vec![deployment("new", "PRIMARY", None, 1, 1)]);
        assert_eq!(s.deployment_state("new"), DeploymentState::Completed);
        assert_eq!(s.deployment_state("gone"), DeploymentState::Superseded("new".into()));
        assert_eq!(s.task_definition_revision(), "tradai-backend-api-dev:3");
    }
}

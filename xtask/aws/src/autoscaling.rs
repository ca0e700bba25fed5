//! Auto Scaling: the consolidated EC2 group, instance refreshes, and waiting for one to
//! end.

use std::time::{Duration, Instant};

use aws_sdk_autoscaling::types::RefreshPreferences as SdkPreferences;

use crate::error::{classify, code_of, message_of};
use crate::{Aws, AwsError, ResourceKind, Result};

/// An Auto Scaling group as DescribeAutoScalingGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoScalingGroup {
    pub name: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    /// `<name or id>:<version>` of the launch template, when the group uses one.
    pub launch_template: Option<String>,
    pub instances: Vec<AsgInstance>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsgInstance {
    pub id: String,
    pub lifecycle_state: String,
    pub health: String,
    pub instance_type: Option<String>,
    /// The launch template version the instance was started from.
    pub launch_template_version: Option<String>,
}

/// One instance refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRefresh {
    pub id: String,
    /// Pending, InProgress, Baking, Successful, Failed, Cancelling, Cancelled,
    /// RollbackInProgress, RollbackFailed, RollbackSuccessful.
    pub status: String,
    pub reason: Option<String>,
    pub percentage: Option<i32>,
    pub instances_to_update: Option<i32>,
    /// Unix seconds.
    pub started_at: Option<u64>,
    pub ended_at: Option<u64>,
}

impl InstanceRefresh {
    /// Whether the refresh has ended (in any way).
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "Successful" | "Failed" | "Cancelled" | "RollbackFailed" | "RollbackSuccessful")
    }
    pub fn succeeded(&self) -> bool {
        self.status == "Successful"
    }
}

/// How a refresh replaces instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPreferences {
    /// Capacity that must stay in service, in percent.
    pub min_healthy_percentage: i32,
    /// Capacity allowed during the refresh, in percent; above 100 launches replacements
    /// before terminating (a one-instance group stays up).
    pub max_healthy_percentage: i32,
}

/// How waiting for a refresh ended.
#[derive(Debug, Clone)]
pub struct RefreshOutcome {
    pub refresh: InstanceRefresh,
    pub timed_out: bool,
    pub seconds: f64,
}

impl Aws {
    /// Describes the group `name`; a missing group is [`AwsError::NotFound`].
    pub fn describe_auto_scaling_group(&self, name: &str) -> Result<AutoScalingGroup> {
        let site = self.site("Auto Scaling", "DescribeAutoScalingGroups", "autoscaling");
        let out = self.block(self.autoscaling.describe_auto_scaling_groups().auto_scaling_group_names(name).send()).map_err(|e| classify(&site, e))?;
        let Some(g) = out.auto_scaling_groups().iter().find(|g| g.auto_scaling_group_name() == Some(name)) else {
            return Err(self.not_found(ResourceKind::AutoScalingGroup, name, String::new()));
        };
        let template = g.launch_template().or_else(|| {
            g.mixed_instances_policy().and_then(|m| m.launch_template()).and_then(|t| t.launch_template_specification())
        });
        Ok(AutoScalingGroup {
            name: name.to_owned(),
            min: g.min_size().unwrap_or(0),
            max: g.max_size().unwrap_or(0),
            desired: g.desired_capacity().unwrap_or(0),
            launch_template: template.map(|t| {
                let id = t.launch_template_name().or(t.launch_template_id()).unwrap_or("?");
                format!("{id}:{}", t.version().unwrap_or("$Default"))
            }),
            instances: g
                .instances()
                .iter()
                .map(|i| AsgInstance {
                    id: i.instance_id().unwrap_or_default().to_owned(),
                    lifecycle_state: i.lifecycle_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    health: i.health_status().unwrap_or_default().to_owned(),
                    instance_type: i.instance_type().map(str::to_owned),
                    launch_template_version: i.launch_template().and_then(|t| t.version()).map(str::to_owned),
                })
                .collect(),
        })
    }

    /// Starts an instance refresh of `group`; returns its id. A refresh already running
    /// is an error that names it.
    pub fn start_instance_refresh(&self, group: &str, prefs: RefreshPreferences) -> Result<String> {
        let site = self.site("Auto Scaling", "StartInstanceRefresh", "autoscaling");
        let preferences = SdkPreferences::builder()
            .min_healthy_percentage(prefs.min_healthy_percentage)
            .max_healthy_percentage(prefs.max_healthy_percentage)
            .build();
        let req = self.autoscaling.start_instance_refresh().auto_scaling_group_name(group).preferences(preferences);
        match self.block(req.send()) {
            Ok(out) => out.instance_refresh_id().map(str::to_owned).ok_or_else(|| AwsError::Other(format!("Auto Scaling returned no refresh id for {group}"))),
            Err(e) if code_of(&e) == Some("InstanceRefreshInProgress") => Err(AwsError::Other(format!(
                "an instance refresh of {group} is already running ({}); follow it with `cargo xtask asg-status --env {}` and start a new one when it has ended",
                crate::error::one_line(&message_of(&e)),
                self.env
            ))),
            Err(e) if code_of(&e) == Some("ResourceContention") => Err(AwsError::Other(format!(
                "{group} has another update pending; wait a minute and retry"
            ))),
            Err(e) => {
                let message = message_of(&e);
                // The API answers a missing group with a validation error.
                if code_of(&e) == Some("ValidationError") && message.contains("not found") {
                    return Err(self.not_found(ResourceKind::AutoScalingGroup, group, String::new()));
                }
                Err(classify(&site, e))
            }
        }
    }

    /// The group's instance refreshes, newest first (all of them, or the ones in `ids`).
    pub fn describe_instance_refreshes(&self, group: &str, ids: &[String]) -> Result<Vec<InstanceRefresh>> {
        let site = self.site("Auto Scaling", "DescribeInstanceRefreshes", "autoscaling");
        let req = self.autoscaling.describe_instance_refreshes().auto_scaling_group_name(group).set_instance_refresh_ids((!ids.is_empty()).then(|| ids.to_vec()));
        let out = self.block(req.send()).map_err(|e| classify(&site, e))?;
        Ok(out
            .instance_refreshes()
            .iter()
            .map(|r| InstanceRefresh {
                id: r.instance_refresh_id().unwrap_or_default().to_owned(),
                status: r.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                reason: r.status_reason().map(str::to_owned).filter(|s| !s.is_empty()),
                percentage: r.percentage_complete(),
                instances_to_update: r.instances_to_update(),
                started_at: r.start_time().and_then(crate::unix),
                ended_at: r.end_time().and_then(crate::unix),
            })
            .collect())
    }

    /// Waits until refresh `id` of `group` ends or `timeout` passes; `observe` sees each
    /// poll's state.
    pub fn wait_for_instance_refresh(
        &self,
        group: &str,
        id: &str,
        timeout: Duration,
        poll: Duration,
        observe: &mut dyn FnMut(&InstanceRefresh),
    ) -> Result<RefreshOutcome> {
        let started = Instant::now();
        loop {
            let refreshes = self.describe_instance_refreshes(group, &[id.to_owned()])?;
            let Some(refresh) = refreshes.into_iter().find(|r| r.id == id) else {
                return Err(AwsError::Other(format!("instance refresh {id} of {group} is no longer listed; check `cargo xtask asg-status --env {}`", self.env)));
            };
            observe(&refresh);
            let elapsed = started.elapsed();
            if refresh.is_finished() {
                return Ok(RefreshOutcome { refresh, timed_out: false, seconds: elapsed.as_secs_f64() });
            }
            if elapsed >= timeout {
                return Ok(RefreshOutcome { refresh, timed_out: true, seconds: elapsed.as_secs_f64() });
            }
            std::thread::sleep(poll.min(timeout - elapsed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_states_are_the_terminal_ones() {
        let r = |s: &str| InstanceRefresh { id: "i".into(), status: s.into(), reason: None, percentage: None, instances_to_update: None, started_at: None, ended_at: None };
        for s in ["Pending", "InProgress", "Baking", "Cancelling", "RollbackInProgress"] {
            assert!(!r(s).is_finished(), "{s}");
        }
        for s in ["Successful", "Failed", "Cancelled", "RollbackFailed", "RollbackSuccessful"] {
            assert!(r(s).is_finished(), "{s}");
        }
        assert!(r("Successful").succeeded() && !r("Failed").succeeded());
    }
}

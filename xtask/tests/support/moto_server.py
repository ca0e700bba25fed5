"""moto in server mode for the xtask integration tests.

Usage: python3 moto_server.py <port>

moto (5.x) serves ECR, Lambda, ECS and Auto Scaling, but not Auto Scaling's instance
refresh calls. This adds StartInstanceRefresh and DescribeInstanceRefreshes to moto's own
Auto Scaling handler, on top of moto's real groups: a refresh of a group that does not
exist is refused as AWS refuses it, a second refresh while one runs is refused with
InstanceRefreshInProgress, and each DescribeInstanceRefreshes call moves a running
refresh one step on (Pending, InProgress 0%, 50%, then Successful 100%). A group tagged
``xtask-test-refresh=fail`` ends Failed instead, with a reason, for the failure path.
Everything else is moto unchanged.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timezone
from typing import Any

from moto import server
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult

FINISHED = {"Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"}
# (account, region, group name) -> refreshes, newest first
REFRESHES: dict[tuple[str, str, str], list[dict[str, Any]]] = {}


class ValidationError(ServiceException):
    code = "ValidationError"


class InstanceRefreshInProgress(ServiceException):
    code = "InstanceRefreshInProgress"


def _group(response: AutoScalingResponse, name: str) -> Any:
    groups = response.autoscaling_backend.describe_auto_scaling_groups([name])
    if not groups:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {name} not found")
    return groups[0]


def start_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    name = self._get_param("AutoScalingGroupName")
    group = _group(self, name)
    refreshes = REFRESHES.setdefault((self.current_account, self.region, name), [])
    running = [r for r in refreshes if r["Status"] not in FINISHED]
    if running:
        raise InstanceRefreshInProgress(
            f"An Instance Refresh is already in progress and blocks the execution of this Instance Refresh. "
            f"(Instance Refresh {running[0]['InstanceRefreshId']})"
        )
    tags = {t["key"]: t["value"] for t in getattr(group, "tags", []) if isinstance(t, dict) and "key" in t}
    tags.update({t["Key"]: t["Value"] for t in getattr(group, "tags", []) if isinstance(t, dict) and "Key" in t})
    refresh = {
        "InstanceRefreshId": str(uuid.uuid4()),
        "AutoScalingGroupName": name,
        "Status": "Pending",
        "PercentageComplete": 0,
        "InstancesToUpdate": len(group.instance_states),
        "StartTime": datetime.now(timezone.utc),
        "Preferences": self._get_param("Preferences") or {},
        "_fail": tags.get("xtask-test-refresh") == "fail",
        "_step": 0,
    }
    refreshes.insert(0, refresh)
    return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})


def _advance(r: dict[str, Any]) -> None:
    if r["Status"] in FINISHED:
        return
    r["_step"] += 1
    if r["_step"] == 1:
        r["Status"] = "InProgress"
    elif r["_step"] == 2:
        r["PercentageComplete"] = 50
    else:
        r["EndTime"] = datetime.now(timezone.utc)
        if r["_fail"]:
            r["Status"] = "Failed"
            r["StatusReason"] = "Instance failed to reach a healthy state (test group tagged to fail)"
        else:
            r["Status"] = "Successful"
            r["PercentageComplete"] = 100
            r["InstancesToUpdate"] = 0


def describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
    name = self._get_param("AutoScalingGroupName")
    _group(self, name)
    ids = self._get_param("InstanceRefreshIds") or []
    refreshes = REFRESHES.get((self.current_account, self.region, name), [])
    out = []
    for r in refreshes:
        if ids and r["InstanceRefreshId"] not in ids:
            continue
        _advance(r)
        out.append({k: v for k, v in r.items() if not k.startswith("_")})
    return ActionResult({"InstanceRefreshes": out})


AutoScalingResponse.start_instance_refresh = start_instance_refresh  # type: ignore[attr-defined]
AutoScalingResponse.describe_instance_refreshes = describe_instance_refreshes  # type: ignore[attr-defined]

if __name__ == "__main__":
    server.main(["-H", "127.0.0.1", "-p", sys.argv[1]])

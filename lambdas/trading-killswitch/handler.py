"""trading-killswitch: stop (or re-allow) trading in one call.

Event: ``{"action": "activate"|"deactivate"|"status", "reason": "...",
"services"?: [...]}``. ``activate`` records the switch in the trading-state table
(item ``killswitch``), scales the trading ECS services (``tradai-<service>-<env>``) on
``ECS_CLUSTER`` to zero and alerts. ``deactivate`` clears the switch only: services
are brought back deliberately, not automatically.
"""

from __future__ import annotations

from typing import Any

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import utc_now
from tradai_common.settings import Settings
from tradai_common.state import from_dynamo

logger = get_logger("tradai.lambda.trading_killswitch")
TRADING_SERVICES = ("strategy-service", "dry-run-trading", "live-trading")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action")
    if action not in ("activate", "deactivate", "status"):
        raise ValueError("action must be 'activate', 'deactivate' or 'status'")
    settings = Settings.from_env()
    table = aws.resource("dynamodb", settings).Table(settings.trading_table)
    if action == "status":
        item = table.get_item(Key={"pk": "killswitch"}).get("Item") or {"active": False}
        return {k: v for k, v in from_dynamo(item).items() if k != "pk"}

    reason = str(event.get("reason") or "").strip()
    if action == "activate" and not reason:
        raise ValueError("activating the kill switch needs a 'reason'")
    active = action == "activate"
    state = {
        "active": active,
        "reason": reason,
        "updated_at": utc_now(),
        "requested_by": getattr(context, "aws_request_id", "unknown"),
    }
    table.put_item(Item={"pk": "killswitch", **state})

    stopped = []
    if active:
        ecs = aws.client("ecs", settings)
        cluster = settings.require("ecs_cluster")
        for service in event.get("services") or TRADING_SERVICES:
            name = settings.resource_name(service)
            try:
                ecs.update_service(cluster=cluster, service=name, desiredCount=0)
                stopped.append(name)
            except ecs.exceptions.ServiceNotFoundException:
                logger.warning("service not found", extra={"service": name})
    aws.publish_alert(
        f"kill switch {'ACTIVATED' if active else 'released'}",
        {**state, "stopped_services": stopped},
        settings,
    )
    logger.warning(
        "kill switch changed", extra={"active": active, "reason": reason, "stopped": stopped}
    )
    return {**state, "stopped_services": stopped}

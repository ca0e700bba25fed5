"""heartbeat-monitor: find services whose heartbeat has gone quiet.

Scheduled. Services write their latest HealthStatus to the health-state table; an
entry older than ``HEARTBEAT_MAX_AGE_SECONDS`` (default 300, or ``max_age_seconds``
in the event) is stale. Stale services are reported on ``ALERTS_TOPIC_ARN``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import parse_timestamp
from tradai_common.settings import Settings
from tradai_common.state import scan_all

logger = get_logger("tradai.lambda.heartbeat_monitor")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    max_age = int(event.get("max_age_seconds", os.environ.get("HEARTBEAT_MAX_AGE_SECONDS", 300)))
    cutoff = datetime.now(tz=UTC) - timedelta(seconds=max_age)
    table = aws.resource("dynamodb", settings).Table(settings.health_table)

    stale: dict[str, str] = {}
    unhealthy: list[str] = []
    for item in scan_all(table):
        service = item["service"]
        last_seen = item.get("checked_at", "")
        try:
            is_stale = parse_timestamp(last_seen, "checked_at") < cutoff
        except ValueError:
            is_stale = True
        if is_stale:
            stale[service] = last_seen or "never"
        elif item.get("healthy") is False:
            unhealthy.append(service)

    if stale or unhealthy:
        aws.publish_alert(
            f"heartbeat: {len(stale)} stale, {len(unhealthy)} unhealthy",
            {"stale": stale, "unhealthy": sorted(unhealthy)},
            settings,
        )
    logger.info("heartbeats checked", extra={"stale": sorted(stale), "unhealthy": unhealthy})
    return {"stale": dict(sorted(stale.items())), "unhealthy": sorted(unhealthy)}

"""cleanup-expired: delete finished workflow records past their retention.

Scheduled (daily). A record in a terminal state (COMPLETED, FAILED, CANCELLED) whose
``updated_at`` is older than ``RETENTION_DAYS`` (default 30, or ``retention_days`` in
the event) is deleted from the workflow-state table. Running jobs are never touched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Attr

from tradai_common.logs import get_logger
from tradai_common.models import WorkflowState, parse_timestamp
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore, scan_all

logger = get_logger("tradai.lambda.cleanup_expired")
TERMINAL = [s.value for s in WorkflowState if s.is_terminal]


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    days = int(event.get("retention_days", settings.retention_days))
    if days <= 0:
        raise ValueError("retention_days must be positive")
    cutoff = datetime.now(tz=UTC) - timedelta(days=days)
    dry_run = bool(event.get("dry_run", False))
    store = WorkflowStore.from_settings(settings)

    expired = [
        item["job_id"]
        for item in scan_all(store.table, FilterExpression=Attr("state").is_in(TERMINAL))
        if parse_timestamp(str(item.get("updated_at", "")), "updated_at") < cutoff
    ]
    if not dry_run:
        with store.table.batch_writer() as batch:
            for job_id in expired:
                batch.delete_item(Key={"job_id": job_id})
    logger.info(
        "expired workflows", extra={"count": len(expired), "dry_run": dry_run, "days": days}
    )
    return {
        "deleted": 0 if dry_run else len(expired),
        "expired": sorted(expired),
        "dry_run": dry_run,
    }

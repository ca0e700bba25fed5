"""retraining-scheduler: queue retraining backtests for strategies that need them.

Scheduled (``retraining_scheduler_schedule``, weekly). A registered strategy
(``strategy#<name>`` in the trading-state table) is due when it was never trained,
was last trained more than ``RETRAIN_AFTER_DAYS`` (default 7) ago, or its live item is
flagged ``drift_detected``. Each due strategy gets a BacktestJob over the last
``LOOKBACK_DAYS`` (default 90) days, recorded QUEUED and sent to the backtest queue.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Attr

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import BacktestJob, WorkflowState, parse_timestamp, utc_now
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore, scan_all

logger = get_logger("tradai.lambda.retraining_scheduler")


def _due(item: dict[str, Any], drifted: set[str], cutoff: datetime) -> bool:
    if item["name"] in drifted or not item.get("last_trained_at"):
        return True
    return parse_timestamp(item["last_trained_at"], "last_trained_at") < cutoff


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    now = datetime.now(tz=UTC)
    cutoff = now - timedelta(days=int(os.environ.get("RETRAIN_AFTER_DAYS", 7)))
    lookback = timedelta(days=int(os.environ.get("LOOKBACK_DAYS", 90)))
    table = aws.resource("dynamodb", settings).Table(settings.trading_table)
    items = list(
        scan_all(
            table,
            FilterExpression=Attr("pk").begins_with("strategy#") | Attr("pk").begins_with("live#"),
        )
    )
    drifted = {
        i["pk"].removeprefix("live#")
        for i in items
        if i["pk"].startswith("live#") and i.get("drift_detected")
    }
    strategies = [
        i
        for i in items
        if i["pk"].count("#") == 1 and i["pk"].startswith("strategy#") and "name" in i
    ]

    store = WorkflowStore.from_settings(settings)
    sqs = aws.client("sqs", settings)
    scheduled = {}
    for item in sorted(
        (i for i in strategies if _due(i, drifted, cutoff)), key=lambda i: i["name"]
    ):
        job = BacktestJob(
            strategy=item["name"],
            symbol=event.get("symbol", "BTC/USDT"),
            timeframe=event.get("timeframe", "1h"),
            start=(now - lookback).date().isoformat(),
            end=now.date().isoformat(),
            parameters=item.get("parameters") or {},
        )
        store.put(job, WorkflowState.QUEUED)
        sqs.send_message(
            QueueUrl=settings.require("backtest_queue_url"), MessageBody=json.dumps(job.to_dict())
        )
        table.update_item(
            Key={"pk": item["pk"]},
            UpdateExpression="SET last_trained_at = :now",
            ExpressionAttributeValues={":now": utc_now()},
        )
        scheduled[item["name"]] = job.job_id
    logger.info(
        "retraining scheduled", extra={"scheduled": sorted(scheduled), "drifted": sorted(drifted)}
    )
    return {"scheduled": scheduled}

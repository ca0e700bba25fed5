"""drift-monitor: compare live strategy performance with its backtest.

Scheduled (``drift_monitor_schedule``, daily). Live performance items in the
trading-state table (``live#<strategy>``) carry ``backtest_sharpe`` and
``live_sharpe``; a strategy drifts when the live Sharpe ratio falls more than
``DRIFT_THRESHOLD`` (default 0.5) below the backtest. Drifting strategies are flagged
(``drift_detected``, read by the retraining scheduler) and reported on the alerts topic.
"""

from __future__ import annotations

import os
from typing import Any

from boto3.dynamodb.conditions import Attr

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import utc_now
from tradai_common.settings import Settings
from tradai_common.state import scan_all, to_dynamo

logger = get_logger("tradai.lambda.drift_monitor")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    threshold = float(event.get("threshold", os.environ.get("DRIFT_THRESHOLD", 0.5)))
    table = aws.resource("dynamodb", settings).Table(settings.trading_table)
    drifted: dict[str, float] = {}
    checked = 0
    for item in scan_all(table, FilterExpression=Attr("pk").begins_with("live#")):
        backtest, live = item.get("backtest_sharpe"), item.get("live_sharpe")
        if not isinstance(backtest, int | float) or not isinstance(live, int | float):
            continue
        checked += 1
        drift = round(backtest - live, 6)
        detected = drift > threshold
        if detected:
            drifted[item["pk"].removeprefix("live#")] = drift
        table.update_item(
            Key={"pk": item["pk"]},
            UpdateExpression="SET drift = :d, drift_detected = :flag, drift_checked_at = :now",
            ExpressionAttributeValues=to_dynamo(
                {":d": drift, ":flag": detected, ":now": utc_now()}
            ),
        )
    if drifted:
        aws.publish_alert(
            f"drift: {', '.join(sorted(drifted))}",
            {"threshold": threshold, "drift": drifted},
            settings,
        )
    logger.info("drift checked", extra={"checked": checked, "drifted": sorted(drifted)})
    return {"checked": checked, "drifted": drifted}

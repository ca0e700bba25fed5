"""model-promoter: promote a registered strategy version when its metrics qualify.

Event: ``{"name", "version", "stage": "staging"|"production", "metrics": {"sharpe",
"max_drawdown"}}``. Thresholds: ``MIN_SHARPE`` (default 1.0) and ``MAX_DRAWDOWN``
(default 0.25), overridable in the event. Promotes by setting the version item's
``stage`` (the item must exist) and the strategy pointer's ``production_version``.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import ClientError

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import utc_now
from tradai_common.settings import Settings

logger = get_logger("tradai.lambda.model_promoter")
STAGES = ("staging", "production")


def _reasons(metrics: dict[str, Any], min_sharpe: float, max_drawdown: float) -> list[str]:
    reasons = []
    sharpe, drawdown = metrics.get("sharpe"), metrics.get("max_drawdown")
    if not isinstance(sharpe, int | float) or sharpe < min_sharpe:
        reasons.append(f"sharpe {sharpe} is below {min_sharpe}")
    if not isinstance(drawdown, int | float) or drawdown > max_drawdown:
        reasons.append(f"max_drawdown {drawdown} exceeds {max_drawdown}")
    return reasons


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name, version, stage = event.get("name"), event.get("version"), event.get("stage", "production")
    if not name or not version or stage not in STAGES:
        raise ValueError(f"event needs 'name', 'version' and a stage in {STAGES}")
    min_sharpe = float(event.get("min_sharpe", os.environ.get("MIN_SHARPE", 1.0)))
    max_drawdown = float(event.get("max_drawdown", os.environ.get("MAX_DRAWDOWN", 0.25)))
    reasons = _reasons(event.get("metrics") or {}, min_sharpe, max_drawdown)
    if reasons:
        logger.info(
            "promotion refused", extra={"strategy": name, "version": version, "reasons": reasons}
        )
        return {"promoted": False, "reasons": reasons}

    settings = Settings.from_env()
    table = aws.resource("dynamodb", settings).Table(settings.trading_table)
    try:
        table.update_item(
            Key={"pk": f"strategy#{name}#{version}"},
            UpdateExpression="SET stage = :stage, promoted_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":stage": stage, ":now": utc_now()},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return {"promoted": False, "reasons": [f"{name} {version} is not registered"]}
    table.update_item(
        Key={"pk": f"strategy#{name}"},
        UpdateExpression=f"SET {stage}_version = :version",
        ExpressionAttributeValues={":version": version},
    )
    logger.info("strategy promoted", extra={"strategy": name, "version": version, "stage": stage})
    return {"promoted": True, "name": name, "version": version, "stage": stage}

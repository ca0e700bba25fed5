"""validate-strategy: check a backtest request before the workflow starts.

Event: a BacktestJob (or ``{"job": {...}}``). Valid when the job passes model
validation and its strategy is registered in the trading-state table (item
``strategy#<name>``). Returns ``{"valid": bool, "errors": [...], "job"?: {...}}``.
"""

from __future__ import annotations

from typing import Any

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import BacktestJob
from tradai_common.settings import Settings
from tradai_common.state import from_dynamo

logger = get_logger("tradai.lambda.validate_strategy")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        job = BacktestJob.from_dict(event.get("job", event))
    except ValueError as exc:
        return {"valid": False, "errors": [str(exc)]}

    settings = Settings.from_env()
    table = aws.resource("dynamodb", settings).Table(settings.trading_table)
    item = table.get_item(Key={"pk": f"strategy#{job.strategy}"}).get("Item")
    errors = []
    if item is None:
        errors.append(f"strategy {job.strategy!r} is not registered")
    else:
        registered = from_dynamo(item)
        unknown = sorted(set(job.parameters) - set(registered.get("parameters") or {}))
        if unknown:
            errors.append(f"unknown parameter(s) for {job.strategy}: {', '.join(unknown)}")
    logger.info("strategy validated", extra={"job_id": job.job_id, "errors": errors})
    result: dict[str, Any] = {"valid": not errors, "errors": errors}
    if not errors:
        result["job"] = job.to_dict()
    return result

"""health-check: scheduled check of the platform's shared AWS resources.

Checks the three state tables and, when configured, the backtest queue and the
results bucket; stores the outcome in the health-state table (service ``platform``)
and publishes an alert on ``ALERTS_TOPIC_ARN`` when anything failed.
"""

from __future__ import annotations

from typing import Any

import tradai_common.aws as aws
from tradai_common.health import (
    Check,
    dynamodb_table_check,
    record_health,
    run_checks,
    s3_bucket_check,
    sqs_queue_check,
)
from tradai_common.logs import get_logger
from tradai_common.settings import Settings

logger = get_logger("tradai.lambda.health_check")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    ddb = aws.client("dynamodb", settings)
    checks: dict[str, Check] = {
        "workflow_table": dynamodb_table_check(settings.workflow_table, ddb),
        "health_table": dynamodb_table_check(settings.health_table, ddb),
        "trading_table": dynamodb_table_check(settings.trading_table, ddb),
    }
    if settings.backtest_queue_url:
        checks["backtest_queue"] = sqs_queue_check(
            settings.backtest_queue_url, aws.client("sqs", settings)
        )
    if settings.results_bucket:
        checks["results_bucket"] = s3_bucket_check(
            settings.results_bucket, aws.client("s3", settings)
        )
    status = run_checks(event.get("service", "platform"), checks)
    try:
        record_health(status, settings.health_table, aws.resource("dynamodb", settings))
    except Exception:
        logger.exception("could not record health status")
    if not status.healthy:
        aws.publish_alert(
            f"unhealthy: {', '.join(status.failed_checks)}", status.to_dict(), settings
        )
    logger.info("health checked", extra={"healthy": status.healthy, "failed": status.failed_checks})
    return status.to_dict()

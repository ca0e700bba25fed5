"""data-freshness-check: alert when collected candles stop arriving.

Scheduled. For each symbol (event ``symbols`` or ``FRESHNESS_SYMBOLS``, comma-separated)
it looks at ``s3://$DATA_BUCKET/candles/<SYMBOL>/<timeframe>.jsonl`` (the layout the
data-collection service writes); an object that is missing or older than
``max_age_hours`` (default 2) is stale and reported on the alerts topic.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.settings import Settings

logger = get_logger("tradai.lambda.data_freshness_check")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    bucket = settings.require("data_bucket")
    symbols = event.get("symbols") or os.environ.get("FRESHNESS_SYMBOLS", "BTC-USDT").split(",")
    timeframe = event.get("timeframe", "1h")
    max_age = timedelta(hours=float(event.get("max_age_hours", 2)))
    now = datetime.now(tz=UTC)
    s3 = aws.client("s3", settings)

    ages: dict[str, float | None] = {}
    for symbol in (s.strip().upper().replace("/", "-") for s in symbols if s.strip()):
        key = f"candles/{symbol}/{timeframe}.jsonl"
        try:
            modified = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
            ages[symbol] = None
            continue
        ages[symbol] = round((now - modified).total_seconds() / 3600, 3)
    stale = sorted(
        s for s, age in ages.items() if age is None or age > max_age.total_seconds() / 3600
    )
    if stale:
        aws.publish_alert(
            f"stale {timeframe} candles: {', '.join(stale)}",
            {"bucket": bucket, "age_hours": ages, "stale": stale},
            settings,
        )
    logger.info("freshness checked", extra={"stale": stale, "checked": len(ages)})
    return {"fresh": not stale, "stale": stale, "age_hours": ages}

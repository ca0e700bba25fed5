"""backtest-results: record the results a backtest task wrote to S3.

S3 ObjectCreated trigger on the results bucket, keys ``results/<job_id>.json``. The
object holds the result summary (or ``{"error": ...}``); the workflow record moves
RUNNING -> COMPLETED with the summary (or FAILED with the error).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import WorkflowState
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore

logger = get_logger("tradai.lambda.backtest_results")
PREFIX, SUFFIX = "results/", ".json"


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    s3 = aws.client("s3", settings)
    store = WorkflowStore.from_settings(settings)
    recorded: dict[str, str] = {}
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        if not (key.startswith(PREFIX) and key.endswith(SUFFIX)):
            logger.info("ignoring object", extra={"key": key})
            continue
        job_id = key[len(PREFIX) : -len(SUFFIX)]
        body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        if "error" in body:
            updated = store.update_status(job_id, WorkflowState.FAILED, error=str(body["error"]))
        else:
            updated = store.update_status(job_id, WorkflowState.COMPLETED, result=body)
        recorded[job_id] = updated.state.value
        logger.info("result recorded", extra={"job_id": job_id, "state": updated.state.value})
    return {"recorded": recorded}

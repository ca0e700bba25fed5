"""backtest-launcher: accept a backtest job and put it on the backtest queue.

Invoked by the API / Step Functions with a BacktestJob (``{"job": {...}}`` or the job
itself). Records the job PENDING, sends it to ``BACKTEST_QUEUE_URL`` and moves it to
QUEUED. Returns ``{"accepted": false, "error": ...}`` for an invalid job.
"""

from __future__ import annotations

import json
from typing import Any

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.settings import Settings
from tradai_common.state import StateConflictError, WorkflowStore

logger = get_logger("tradai.lambda.backtest_launcher")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    queue_url = settings.require("backtest_queue_url")
    try:
        job = BacktestJob.from_dict(event.get("job", event))
    except ValueError as exc:
        logger.warning("rejected backtest job", extra={"error": str(exc)})
        return {"accepted": False, "error": str(exc)}

    store = WorkflowStore.from_settings(settings)
    try:
        store.put(job)
    except StateConflictError as exc:
        return {"accepted": False, "job_id": job.job_id, "error": str(exc)}
    aws.client("sqs", settings).send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(job.to_dict()),
        MessageAttributes={"strategy": {"DataType": "String", "StringValue": job.strategy}},
    )
    record = store.update_status(job.job_id, WorkflowState.QUEUED, expected=WorkflowState.PENDING)
    logger.info("backtest queued", extra={"job_id": job.job_id, "strategy": job.strategy})
    return {"accepted": True, "job_id": job.job_id, "state": record.state.value}

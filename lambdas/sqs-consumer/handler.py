"""sqs-consumer: apply status updates that backtest tasks post to the status queue.

SQS trigger with partial batch responses. Each body is ``{"job_id", "state",
"result"?, "error"?}``. Updates that lost a race (the record already moved on) are
dropped; malformed messages and unknown jobs are returned as batch item failures so
SQS retries them and finally moves them to the DLQ.
"""

from __future__ import annotations

import json
from typing import Any

from tradai_common.logs import get_logger
from tradai_common.models import WorkflowState
from tradai_common.settings import Settings
from tradai_common.state import StateConflictError, WorkflowStore

logger = get_logger("tradai.lambda.sqs_consumer")


def _apply(store: WorkflowStore, body: Any) -> WorkflowState:
    if not isinstance(body, dict) or not isinstance(body.get("job_id"), str):
        raise ValueError("message must be an object with a string 'job_id'")
    state = WorkflowState.parse(body.get("state", ""))
    return store.update_status(
        body["job_id"], state, result=body.get("result"), error=body.get("error")
    ).state


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    store = WorkflowStore.from_settings(Settings.from_env())
    failures = []
    applied = 0
    for record in event.get("Records", []):
        message_id = record.get("messageId")
        try:
            state = _apply(store, json.loads(record["body"]))
            applied += 1
            logger.info("status applied", extra={"message_id": message_id, "state": state.value})
        except StateConflictError as exc:
            logger.warning(
                "stale status update dropped", extra={"message_id": message_id, "reason": str(exc)}
            )
        except (ValueError, LookupError) as exc:
            logger.error(
                "status update failed", extra={"message_id": message_id, "error": str(exc)}
            )
            failures.append({"itemIdentifier": message_id})
    logger.info("batch done", extra={"applied": applied, "failed": len(failures)})
    return {"batchItemFailures": failures}

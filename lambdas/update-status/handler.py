"""update-status: move a workflow record to a new state (Step Functions task).

Event: ``{"job_id": ..., "state": "RUNNING"|"COMPLETED"|..., "expected"?: ...,
"result"?: {...}, "error"?: "..."}``. Returns the updated record. An invalid
transition raises ``StateConflictError`` so the state machine can catch it.
"""

from __future__ import annotations

from typing import Any

from tradai_common.logs import get_logger
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore

logger = get_logger("tradai.lambda.update_status")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    job_id = event.get("job_id")
    new_state = event.get("state")
    if not isinstance(job_id, str) or not job_id or not isinstance(new_state, str):
        raise ValueError("event needs string fields 'job_id' and 'state'")
    result = event.get("result")
    if result is not None and not isinstance(result, dict):
        raise ValueError("'result' must be an object")

    store = WorkflowStore.from_settings(Settings.from_env())
    record = store.update_status(
        job_id,
        new_state,
        expected=event.get("expected"),
        result=result,
        error=event.get("error"),
    )
    logger.info(
        "workflow status updated",
        extra={
            "job_id": job_id,
            "state": record.state.value,
            "request_id": getattr(context, "aws_request_id", None),
        },
    )
    return record.to_dict()

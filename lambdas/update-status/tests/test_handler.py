import pytest

from tradai_common.models import BacktestJob
from tradai_common.state import StateConflictError, WorkflowNotFoundError, WorkflowStore


@pytest.fixture
def store(tables, job_data):
    store = WorkflowStore.from_settings()
    store.put(BacktestJob.from_dict(job_data))
    return store


def test_walks_job_to_completion(handler, context, store):
    running = handler.lambda_handler({"job_id": "job-1", "state": "running"}, context)
    assert running["state"] == "RUNNING"
    done = handler.lambda_handler(
        {"job_id": "job-1", "state": "COMPLETED", "result": {"total_return": 0.25}}, context
    )
    assert done["state"] == "COMPLETED"
    assert store.require("job-1").result == {"total_return": 0.25}


def test_invalid_transition_raises(handler, context, store):
    with pytest.raises(StateConflictError, match="is PENDING; cannot move to COMPLETED"):
        handler.lambda_handler({"job_id": "job-1", "state": "COMPLETED"}, context)


def test_expected_state_is_enforced(handler, context, store):
    with pytest.raises(StateConflictError):
        handler.lambda_handler(
            {"job_id": "job-1", "state": "RUNNING", "expected": "QUEUED"}, context
        )


def test_unknown_job_and_bad_events(handler, context, store):
    with pytest.raises(WorkflowNotFoundError):
        handler.lambda_handler({"job_id": "nope", "state": "FAILED"}, context)
    with pytest.raises(ValueError, match="'job_id' and 'state'"):
        handler.lambda_handler({"state": "FAILED"}, context)
    with pytest.raises(ValueError, match="unknown workflow state"):
        handler.lambda_handler({"job_id": "job-1", "state": "DONE"}, context)
    with pytest.raises(ValueError, match="'result' must be an object"):
        handler.lambda_handler({"job_id": "job-1", "state": "FAILED", "result": [1]}, context)

from decimal import Decimal

import boto3
import pytest
from moto import mock_aws

from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.state import (
    StateConflictError,
    WorkflowNotFoundError,
    WorkflowStore,
    from_dynamo,
    to_dynamo,
)

TABLE = "tradai-workflow-state-dev"


def make_store():
    store = WorkflowStore.from_settings()
    store.create_table()
    return store


def test_decimal_conversion_round_trip():
    value = {"a": 1.5, "b": [2.25, 3], "c": True, "d": {"e": 0.1}}
    converted = to_dynamo(value)
    assert converted["a"] == Decimal("1.5")
    assert converted["d"]["e"] == Decimal("0.1")
    assert converted["c"] is True
    assert from_dynamo(converted) == value


@mock_aws
def test_put_and_get(job_data):
    store = make_store()
    job = BacktestJob.from_dict(job_data)
    store.put(job)
    record = store.get(job.job_id)
    assert record is not None
    assert record.state is WorkflowState.PENDING
    assert record.job == job
    raw = boto3.resource("dynamodb").Table(TABLE).get_item(Key={"job_id": job.job_id})["Item"]
    assert raw["state"] == "PENDING"
    assert store.get("missing") is None


@mock_aws
def test_put_refuses_duplicate(job_data):
    store = make_store()
    job = BacktestJob.from_dict(job_data)
    store.put(job)
    with pytest.raises(StateConflictError, match="already exists"):
        store.put(job)


@mock_aws
def test_status_walks_valid_transitions(job_data):
    store = make_store()
    job = BacktestJob.from_dict(job_data)
    store.put(job)
    running = store.update_status(job.job_id, WorkflowState.RUNNING)
    assert running.state is WorkflowState.RUNNING
    done = store.update_status(job.job_id, "COMPLETED", result={"total_return": 0.125, "trades": 3})
    assert done.state is WorkflowState.COMPLETED
    assert done.result == {"total_return": 0.125, "trades": 3}
    assert store.require(job.job_id).result == {"total_return": 0.125, "trades": 3}


@mock_aws
def test_conditional_update_rejects_invalid_transition(job_data):
    store = make_store()
    job = BacktestJob.from_dict(job_data)
    store.put(job)
    with pytest.raises(StateConflictError, match="is PENDING; cannot move to COMPLETED"):
        store.update_status(job.job_id, WorkflowState.COMPLETED)
    store.update_status(job.job_id, WorkflowState.FAILED, error="no data")
    with pytest.raises(StateConflictError, match="is FAILED"):
        store.update_status(job.job_id, WorkflowState.RUNNING)
    assert store.require(job.job_id).error == "no data"


@mock_aws
def test_expected_state_narrows_condition(job_data):
    store = make_store()
    job = BacktestJob.from_dict(job_data)
    store.put(job)
    with pytest.raises(StateConflictError, match="is PENDING"):
        store.update_status(job.job_id, WorkflowState.RUNNING, expected=WorkflowState.QUEUED)
    with pytest.raises(StateConflictError, match="transition COMPLETED -> RUNNING is invalid"):
        store.update_status(job.job_id, WorkflowState.RUNNING, expected="COMPLETED")
    with pytest.raises(StateConflictError, match="no state may transition to PENDING"):
        store.update_status(job.job_id, WorkflowState.PENDING)
    record = store.update_status(job.job_id, WorkflowState.RUNNING, expected="PENDING")
    assert record.state is WorkflowState.RUNNING


@mock_aws
def test_missing_record(job_data):
    store = make_store()
    with pytest.raises(WorkflowNotFoundError):
        store.update_status("nope", WorkflowState.RUNNING)
    with pytest.raises(WorkflowNotFoundError):
        store.require("nope")


@mock_aws
def test_list_by_state_and_delete(job_data):
    store = make_store()
    jobs = [BacktestJob.from_dict(job_data) for _ in range(3)]
    for job in jobs:
        store.put(job)
    store.update_status(jobs[1].job_id, WorkflowState.RUNNING)
    pending = {r.job_id for r in store.list_by_state("PENDING")}
    assert pending == {jobs[0].job_id, jobs[2].job_id}
    store.delete(jobs[0].job_id)
    assert [r.job_id for r in store.list_by_state(WorkflowState.PENDING)] == [jobs[2].job_id]

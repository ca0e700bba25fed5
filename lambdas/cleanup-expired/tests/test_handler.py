from datetime import UTC, datetime, timedelta

import pytest

from tradai_common.models import BacktestJob, WorkflowRecord, WorkflowState
from tradai_common.state import to_dynamo


def put(table, job_data, job_id, state, age_days):
    stamp = (datetime.now(tz=UTC) - timedelta(days=age_days)).isoformat(timespec="seconds")
    job = BacktestJob.from_dict({**job_data, "job_id": job_id})
    record = WorkflowRecord(job=job, state=state, created_at=stamp, updated_at=stamp)
    table.put_item(Item=to_dynamo(record.to_dict()))


@pytest.fixture
def seeded(tables, job_data):
    put(tables.workflow, job_data, "old-done", WorkflowState.COMPLETED, 45)
    put(tables.workflow, job_data, "old-failed", WorkflowState.FAILED, 31)
    put(tables.workflow, job_data, "old-running", WorkflowState.RUNNING, 90)
    put(tables.workflow, job_data, "new-done", WorkflowState.COMPLETED, 2)
    return tables.workflow


def remaining(table):
    return sorted(i["job_id"] for i in table.scan()["Items"])


def test_deletes_only_expired_terminal_records(handler, context, seeded):
    result = handler.lambda_handler({}, context)
    assert result == {"deleted": 2, "expired": ["old-done", "old-failed"], "dry_run": False}
    assert remaining(seeded) == ["new-done", "old-running"]


def test_retention_and_dry_run(handler, context, seeded, monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "40")
    dry = handler.lambda_handler({"dry_run": True}, context)
    assert dry["expired"] == ["old-done"]
    assert len(remaining(seeded)) == 4
    assert handler.lambda_handler({"retention_days": 1}, context)["deleted"] == 3
    assert remaining(seeded) == ["old-running"]
    with pytest.raises(ValueError, match="retention_days"):
        handler.lambda_handler({"retention_days": 0}, context)

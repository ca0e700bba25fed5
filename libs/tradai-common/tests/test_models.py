import pytest

from tradai_common.models import (
    BacktestJob,
    HealthStatus,
    WorkflowRecord,
    WorkflowState,
    parse_timestamp,
)


def test_backtest_job_round_trip(job_data):
    job = BacktestJob.from_dict(job_data)
    assert len(job.job_id) == 32
    assert job.initial_capital == 10_000.0
    assert job.timeframe_seconds == 3600
    assert (job.end_at - job.start_at).days == 31
    again = BacktestJob.from_dict(job.to_dict())
    assert again == job


def test_symbol_is_normalised(job_data):
    job = BacktestJob.from_dict({**job_data, "symbol": "ETH-USDT", "initial_capital": "500"})
    assert job.symbol == "ETH/USDT"
    assert job.initial_capital == 500.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategy": "MA Crossover"}, "strategy must be a lowercase slug"),
        ({"symbol": "bitcoin"}, "symbol must look like"),
        ({"timeframe": "2h"}, "timeframe must be one of"),
        ({"start": "yesterday"}, "start must be an ISO-8601"),
        ({"end": "2023-12-01"}, "must be before end"),
        ({"initial_capital": -5}, "initial_capital must be positive"),
        ({"initial_capital": "lots"}, "initial_capital must be a number"),
        ({"initial_capital": True}, "initial_capital must be a number"),
        ({"parameters": {"fast": [1]}}, "parameter 'fast'"),
        ({"parameters": "fast=1"}, "parameters must be an object"),
        ({"colour": "blue"}, "unknown field"),
    ],
)
def test_backtest_job_validation(job_data, change, message):
    with pytest.raises(ValueError, match=message):
        BacktestJob.from_dict({**job_data, **change})


def test_missing_fields_are_listed(job_data):
    del job_data["symbol"]
    del job_data["end"]
    with pytest.raises(ValueError, match="missing required field\\(s\\): end, symbol"):
        BacktestJob.from_dict(job_data)


def test_non_mapping_rejected():
    with pytest.raises(ValueError, match="expected an object"):
        BacktestJob.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


def test_workflow_transitions():
    assert WorkflowState.PENDING.can_transition_to(WorkflowState.RUNNING)
    assert WorkflowState.RUNNING.can_transition_to(WorkflowState.COMPLETED)
    assert not WorkflowState.COMPLETED.can_transition_to(WorkflowState.RUNNING)
    assert not WorkflowState.PENDING.can_transition_to(WorkflowState.COMPLETED)
    assert WorkflowState.COMPLETED.is_terminal
    assert not WorkflowState.QUEUED.is_terminal
    assert set(WorkflowState.COMPLETED.allowed_sources()) == {WorkflowState.RUNNING}
    assert WorkflowState.PENDING.allowed_sources() == ()


def test_workflow_state_parse():
    assert WorkflowState.parse("running") is WorkflowState.RUNNING
    assert WorkflowState.parse(WorkflowState.FAILED) is WorkflowState.FAILED
    with pytest.raises(ValueError, match="unknown workflow state 'DONE'"):
        WorkflowState.parse("DONE")


def test_workflow_record_round_trip(job_data):
    job = BacktestJob.from_dict(job_data)
    record = WorkflowRecord(job=job, state=WorkflowState.COMPLETED, result={"total_return": 0.1})
    data = record.to_dict()
    assert data["state"] == "COMPLETED"
    assert "error" not in data
    assert WorkflowRecord.from_dict(data) == record


def test_workflow_record_rejects_mismatched_id(job_data):
    job = BacktestJob.from_dict(job_data)
    data = WorkflowRecord(job=job).to_dict()
    data["job_id"] = "other"
    with pytest.raises(ValueError, match="does not match"):
        WorkflowRecord.from_dict(data)


def test_health_status():
    status = HealthStatus(service="backend", healthy=False, checks={"db": True, "queue": False})
    assert status.status == "unhealthy"
    assert status.failed_checks == ["queue"]
    assert HealthStatus.from_dict(status.to_dict()) == status
    with pytest.raises(ValueError, match="service must be a non-empty string"):
        HealthStatus(service="", healthy=True)
    with pytest.raises(ValueError, match="check 'db' must be a bool"):
        HealthStatus.from_dict({"service": "x", "healthy": True, "checks": {"db": "yes"}})
    with pytest.raises(ValueError, match="missing required field"):
        HealthStatus.from_dict({"service": "x"})


def test_parse_timestamp_assumes_utc():
    assert parse_timestamp("2024-01-01T00:00:00", "t").utcoffset().total_seconds() == 0
    assert parse_timestamp("2024-01-01T02:00:00+02:00", "t").hour == 2

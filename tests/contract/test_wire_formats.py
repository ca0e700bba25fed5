"""The JSON shapes other systems depend on (queues, the state table, the strategies
repository) stay what they are: a change here is a breaking change to announce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tradai_common.models import BacktestJob, HealthStatus, WorkflowRecord, WorkflowState

GOLDEN = Path(__file__).parent / "golden"


def _shape(value: Any) -> Any:
    """Field names and JSON types, values left out."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def test_backtest_job_matches_its_golden_shape() -> None:
    golden = json.loads((GOLDEN / "backtest_job.json").read_text())
    job = BacktestJob.from_dict(golden)
    assert _shape(job.to_dict()) == _shape(golden)
    assert job.to_dict() == golden, "to_dict must reproduce a stored job exactly"


def test_workflow_record_round_trips_through_its_golden_form() -> None:
    golden = json.loads((GOLDEN / "workflow_record.json").read_text())
    record = WorkflowRecord.from_dict(golden)
    assert record.state is WorkflowState.COMPLETED
    assert record.to_dict() == golden


def test_health_status_is_what_the_health_checks_store() -> None:
    status = HealthStatus(service="backend", healthy=False, checks={"db": True, "queue": False})
    data = status.to_dict()
    assert set(data) == {"service", "status", "healthy", "checks", "details", "checked_at"}
    assert data["status"] == "unhealthy"
    assert HealthStatus.from_dict(json.loads(json.dumps(data))) == status

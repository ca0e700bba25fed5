import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from tradai_common.models import BacktestJob
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore
from tradai_strategy_service.app import create_app


@pytest.fixture
def client():
    return TestClient(create_app(Settings.from_env({})))


def test_health_and_strategies(client):
    health = client.get("/health").json()
    assert health["healthy"] is True
    assert health["details"]["strategies"] == "ma-crossover"
    assert client.get("/strategies").json() == {
        "strategies": {"ma-crossover": {"fast": 10, "slow": 30}}
    }


def test_validate_parameters(client):
    ok = client.post("/strategies/ma-crossover/validate", json={"fast": 5}).json()
    assert ok == {"valid": True, "parameters": {"fast": 5, "slow": 30}}
    bad = client.post("/strategies/ma-crossover/validate", json={"fast": 40}).json()
    assert bad["valid"] is False
    assert "must be smaller" in bad["error"]
    assert client.post("/strategies/rsi/validate", json={}).json()["valid"] is False


def test_backtest_on_given_closes(client, job):
    closes = [100 - i for i in range(20)] + [80 + 2 * i for i in range(20)]
    response = client.post("/backtests", json={"job": job, "closes": closes, "fee_rate": 0})
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == "job-1"
    assert body["bars"] == 40
    assert body["num_trades"] == 1
    assert body["total_return"] > 0
    assert "equity_curve" not in body


def test_backtest_on_synthetic_candles_is_deterministic(client, job):
    first = client.post("/backtests", json={"job": job, "seed": 5, "full": True}).json()
    second = client.post("/backtests", json={"job": job, "seed": 5, "full": True}).json()
    assert first == second
    assert first["bars"] == 7 * 24
    assert len(first["equity_curve"]) == 7 * 24


def test_backtest_errors_are_422(client, job):
    assert client.post("/backtests", json={"job": {**job, "symbol": "?"}}).status_code == 422
    too_short = client.post("/backtests", json={"job": job, "closes": [1.0, 2.0]})
    assert too_short.status_code == 422
    assert "bars in range" in too_short.json()["detail"]
    negative = client.post("/backtests", json={"job": job, "closes": [-1.0]})
    assert negative.status_code == 422


@mock_aws
def test_run_recorded_job_completes_and_cannot_rerun(job):
    store = WorkflowStore.from_settings()
    store.create_table()
    store.put(BacktestJob.from_dict(job))
    client = TestClient(create_app(Settings.from_env(), store=store))
    response = client.post("/jobs/job-1/run")
    assert response.status_code == 200
    record = response.json()
    assert record["state"] == "COMPLETED"
    assert record["result"]["bars"] == 7 * 24
    assert store.require("job-1").result == record["result"]
    assert client.post("/jobs/job-1/run").status_code == 409
    assert client.post("/jobs/missing/run").status_code == 404


@mock_aws
def test_run_recorded_job_failure_is_recorded(job):
    store = WorkflowStore.from_settings()
    store.create_table()
    store.put(BacktestJob.from_dict({**job, "end": "2024-01-01T05:00:00"}))
    client = TestClient(create_app(Settings.from_env(), store=store))
    record = client.post("/jobs/job-1/run").json()
    assert record["state"] == "FAILED"
    assert "bars in range" in record["error"]

"""Backend, strategy library and strategy service working on one workflow table."""

import json

import boto3
from fastapi.testclient import TestClient

from tradai_backend.app import create_app as create_backend
from tradai_common.models import WorkflowState
from tradai_common.settings import Settings
from tradai_strategy import PriceBar, run_job
from tradai_strategy_service.app import create_app as create_strategy_service


def test_submit_run_and_read_back(store, job_payload):
    backend = TestClient(create_backend(Settings.from_env(), store=store))
    submitted = backend.post("/backtests", json=job_payload).json()
    job_id = submitted["job_id"]
    assert submitted["state"] == "PENDING"

    # A worker picks the job up from the table and runs the strategy library on it.
    record = store.update_status(job_id, WorkflowState.RUNNING)
    start = int(record.job.start_at.timestamp())
    prices = [100 - i * 0.2 for i in range(200)] + [60 + i * 0.5 for i in range(280)]
    bars = [PriceBar(start + i * 3600, p) for i, p in enumerate(prices)]
    result = run_job(record.job, bars)
    assert result.bars == 20 * 24
    assert result.initial_capital == 5000
    store.update_status(job_id, WorkflowState.COMPLETED, result=result.summary())

    final = backend.get(f"/backtests/{job_id}").json()
    assert final["state"] == "COMPLETED"
    assert final["result"]["num_trades"] == result.num_trades
    assert final["result"]["total_return"] == result.total_return
    assert backend.post(f"/backtests/{job_id}/cancel").status_code == 409


def test_backend_and_strategy_service_share_state(store, job_payload):
    settings = Settings.from_env()
    backend = TestClient(create_backend(settings, store=store))
    strategy_service = TestClient(create_strategy_service(settings, store=store))

    job_id = backend.post("/backtests", json=job_payload).json()["job_id"]
    ran = strategy_service.post(f"/jobs/{job_id}/run", params={"seed": 11})
    assert ran.status_code == 200
    assert ran.json()["state"] == "COMPLETED"

    seen_by_backend = backend.get(f"/backtests/{job_id}").json()
    assert seen_by_backend["result"] == ran.json()["result"]
    # Same job, same seed, run statelessly: identical metrics.
    replay = strategy_service.post(
        "/backtests", json={"job": seen_by_backend["job"], "seed": 11}
    ).json()
    assert replay["total_return"] == seen_by_backend["result"]["total_return"]
    assert replay["sharpe"] == seen_by_backend["result"]["sharpe"]


def test_queued_job_round_trip_through_sqs(store, job_payload, monkeypatch):
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="tradai-backtest-queue-dev")["QueueUrl"]
    monkeypatch.setenv("BACKTEST_QUEUE_URL", queue_url)
    settings = Settings.from_env()
    backend = TestClient(create_backend(settings, store=store))
    strategy_service = TestClient(create_strategy_service(settings, store=store))

    submitted = backend.post("/backtests", json=job_payload).json()
    assert submitted["state"] == "QUEUED"

    [message] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    queued_job = json.loads(message["Body"])
    assert queued_job == submitted["job"]
    done = strategy_service.post(f"/jobs/{queued_job['job_id']}/run").json()
    assert done["state"] == "COMPLETED"
    assert backend.get(f"/backtests/{queued_job['job_id']}").json()["state"] == "COMPLETED"


def test_invalid_job_never_reaches_the_table(store, job_payload):
    backend = TestClient(create_backend(Settings.from_env(), store=store))
    response = backend.post("/backtests", json={**job_payload, "parameters": {"fast": [1]}})
    assert response.status_code == 422
    assert store.table.scan()["Count"] == 0

import json

import boto3
from fastapi.testclient import TestClient

from tradai_backend.app import create_app
from tradai_common.settings import Settings


def test_health_reports_table(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["service"] == "backend"
    assert body["checks"] == {"workflow_table": True}


def test_health_503_without_table(mocked):
    client = TestClient(create_app(Settings.from_env()))
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"] == {"workflow_table": False}


def test_submit_then_get(client, job_payload):
    response = client.post("/backtests", json=job_payload)
    assert response.status_code == 202
    record = response.json()
    assert record["state"] == "PENDING"
    assert record["job"]["symbol"] == "ETH/USDT"
    fetched = client.get(f"/backtests/{record['job_id']}")
    assert fetched.status_code == 200
    assert fetched.json()["job"] == record["job"]


def test_invalid_job_is_422_with_reason(client, job_payload):
    response = client.post("/backtests", json={**job_payload, "timeframe": "7m"})
    assert response.status_code == 422
    assert "timeframe must be one of" in response.json()["detail"]
    response = client.post("/backtests", json={"strategy": "ma-crossover"})
    assert response.status_code == 422
    assert "missing required field" in response.json()["detail"]


def test_duplicate_job_id_is_409(client, job_payload):
    payload = {**job_payload, "job_id": "fixed-id"}
    assert client.post("/backtests", json=payload).status_code == 202
    response = client.post("/backtests", json=payload)
    assert response.status_code == 409


def test_unknown_job_404(client):
    assert client.get("/backtests/nope").status_code == 404
    assert client.post("/backtests/nope/cancel").status_code == 404


def test_cancel_then_cancel_again_conflicts(client, job_payload):
    job_id = client.post("/backtests", json=job_payload).json()["job_id"]
    response = client.post(f"/backtests/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["state"] == "CANCELLED"
    again = client.post(f"/backtests/{job_id}/cancel")
    assert again.status_code == 409
    assert "is CANCELLED" in again.json()["detail"]


def test_submit_enqueues_when_queue_configured(store, monkeypatch, job_payload):
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="tradai-backtest-queue-dev")["QueueUrl"]
    monkeypatch.setenv("BACKTEST_QUEUE_URL", queue_url)
    client = TestClient(create_app(Settings.from_env(), store=store))
    record = client.post("/backtests", json=job_payload).json()
    assert record["state"] == "QUEUED"
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    assert json.loads(messages[0]["Body"])["job_id"] == record["job_id"]

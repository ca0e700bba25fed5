"""The backtest pipeline's messages: backend -> backtest queue -> backtest-consumer, and
a backtest's result -> status queue -> sqs-consumer -> workflow record -> backend API."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
from fastapi.testclient import TestClient

from tradai_backend.app import create_app
from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore
from tradai_data import SyntheticSource
from tradai_strategy import PriceBar, run_job

LoadLambda = Callable[[str], ModuleType]
SqsEvent = Callable[..., dict[str, Any]]


class _Context:
    function_name = "contract-test"
    aws_request_id = "req-1"


def test_backend_message_starts_a_backtest_task(
    store: WorkflowStore,
    backtest_queue: str,
    backtest_cluster: Any,
    job_payload: dict[str, Any],
    load_lambda: LoadLambda,
    sqs_event: SqsEvent,
    region: str,
) -> None:
    client = TestClient(create_app(Settings.from_env(), store=store))
    submitted = client.post("/backtests", json=job_payload)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert submitted.json()["state"] == "QUEUED"

    sqs = boto3.client("sqs", region_name=region)
    messages = sqs.receive_message(QueueUrl=backtest_queue, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1

    consumer = load_lambda("backtest-consumer")
    outcome = consumer.lambda_handler(sqs_event(messages[0]["Body"]), _Context())
    assert outcome == {"batchItemFailures": []}, "the consumer rejected the backend's message"
    assert store.require(job_id).state is WorkflowState.RUNNING
    tasks = backtest_cluster.list_tasks(cluster="tradai-dev")["taskArns"]
    assert len(tasks) == 1


def test_backtest_result_reaches_the_backend_through_the_status_queue(
    store: WorkflowStore,
    job_payload: dict[str, Any],
    load_lambda: LoadLambda,
    sqs_event: SqsEvent,
) -> None:
    job = BacktestJob.from_dict(job_payload)
    store.put(job, WorkflowState.RUNNING)
    candles = SyntheticSource(seed=7).fetch(
        job.symbol, job.timeframe, datetime(2024, 1, 1, tzinfo=UTC), 24 * 20
    )
    bars = [PriceBar(timestamp=c.timestamp, close=c.close) for c in candles]
    result = run_job(job, bars)
    # What a backtest task posts when it finishes.
    status_message = json.dumps(
        {"job_id": job.job_id, "state": "COMPLETED", "result": result.summary()}
    )

    consumer = load_lambda("sqs-consumer")
    outcome = consumer.lambda_handler(sqs_event(status_message), _Context())
    assert outcome == {"batchItemFailures": []}, "sqs-consumer rejected the status message"

    client = TestClient(create_app(Settings.from_env(), store=store))
    record = client.get(f"/backtests/{job.job_id}").json()
    assert record["state"] == "COMPLETED"
    assert record["result"]["num_trades"] == result.num_trades
    assert abs(record["result"]["final_equity"] - result.final_equity) < 1e-6


def test_a_status_message_the_consumer_cannot_apply_goes_back_to_sqs(
    store: WorkflowStore, load_lambda: LoadLambda, sqs_event: SqsEvent
) -> None:
    consumer = load_lambda("sqs-consumer")
    bad = json.dumps({"job_id": "never-submitted", "state": "COMPLETED"})
    outcome = consumer.lambda_handler(sqs_event(bad, "not json"), _Context())
    assert outcome == {
        "batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-1"}]
    }

"""Shared fixtures for the Lambda tests (``uv run pytest lambdas``).

Every function lives in ``lambdas/<name>/handler.py``; the ``handler`` fixture loads
the one next to the requesting test under a unique module name
(``lambda_<name>_handler``), so seventeen ``handler`` modules never collide.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tradai_common.state import create_table

LAMBDAS_DIR = Path(__file__).resolve().parent
REGION = "eu-central-1"


def load_handler(name: str) -> ModuleType:
    """Import ``lambdas/<name>/handler.py`` as module ``lambda_<name>_handler``."""
    path = LAMBDAS_DIR / name / "handler.py"
    module_name = f"lambda_{name.replace('-', '_')}_handler"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def handler(request: pytest.FixtureRequest) -> ModuleType:
    """The handler module of the Lambda whose ``tests/`` folder holds this test."""
    return load_handler(request.path.parent.parent.name)


@dataclass
class FakeContext:
    function_name: str = "tradai-test-dev"
    aws_request_id: str = "req-0001"
    memory_limit_in_mb: int = 256

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("TRADAI_ENV", "dev")
    for var in (
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "BACKTEST_QUEUE_URL",
        "BACKTEST_DLQ_URL",
        "ALERTS_TOPIC_ARN",
        "REGISTRATION_TOPIC_ARN",
        "DATA_BUCKET",
        "RESULTS_BUCKET",
        "ECS_CLUSTER",
        "BACKTEST_TASK_DEFINITION",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def aws() -> Any:
    with mock_aws():
        yield


@dataclass
class Tables:
    workflow: Any
    health: Any
    trading: Any


@pytest.fixture
def tables(aws: None) -> Tables:
    """The three state tables, named as ``Settings.from_env()`` expects in dev."""
    ddb = boto3.resource("dynamodb", region_name=REGION)
    return Tables(
        workflow=create_table(ddb, "tradai-workflow-state-dev", "job_id"),
        health=create_table(ddb, "tradai-health-state-dev", "service"),
        trading=create_table(ddb, "tradai-trading-state-dev", "pk"),
    )


@pytest.fixture
def backtest_queue(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName="tradai-backtest-queue-dev"
    )["QueueUrl"]
    monkeypatch.setenv("BACKTEST_QUEUE_URL", url)
    return url


class TopicInbox:
    """An SNS topic with an SQS queue subscribed, to read what was published."""

    def __init__(self, name: str) -> None:
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.arn: str = self.sns.create_topic(Name=name)["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.arn, Protocol="sqs", Endpoint=queue_arn)

    def messages(self) -> list[dict[str, Any]]:
        """Published notifications: ``{"Subject": ..., "Message": ...}`` dicts."""
        out = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def make_topic(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``make_topic(name, env_var)``: create a topic + inbox and export its ARN."""

    def make(name: str, env_var: str) -> TopicInbox:
        inbox = TopicInbox(name)
        monkeypatch.setenv(env_var, inbox.arn)
        return inbox

    return make


@pytest.fixture
def alerts(make_topic: Any) -> TopicInbox:
    inbox: TopicInbox = make_topic("tradai-alerts-dev", "ALERTS_TOPIC_ARN")
    return inbox


def sqs_event(*bodies: Any) -> dict[str, Any]:
    """An SQS-trigger event whose records carry ``bodies`` (dicts are JSON-encoded)."""
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "eventSource": "aws:sqs",
            }
            for i, body in enumerate(bodies)
        ]
    }


@pytest.fixture
def make_sqs_event() -> Any:
    return sqs_event


@pytest.fixture
def job_data() -> dict[str, Any]:
    return {
        "job_id": "job-1",
        "strategy": "ma-crossover",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-03-01",
        "parameters": {"fast": 5, "slow": 20},
    }

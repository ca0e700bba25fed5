"""Fixtures for the contract tests (``cargo xtask ci contract``).

A contract test runs the producer and the consumer of one message or API for real,
in one mocked AWS account, so that a change to either side that breaks the other fails
here before it reaches a deployment.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-central-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("TRADAI_ENV", "dev")
    for var in (
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "BACKTEST_QUEUE_URL",
        "ECS_CLUSTER",
        "BACKTEST_TASK_DEFINITION",
        "DATA_BUCKET",
        "RESULTS_BUCKET",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def store() -> Iterator[WorkflowStore]:
    """The workflow-state table every component shares."""
    with mock_aws():
        store = WorkflowStore.from_settings(Settings.from_env())
        store.create_table()
        yield store


@pytest.fixture
def backtest_queue(store: WorkflowStore, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName="tradai-backtest-queue-dev"
    )["QueueUrl"]
    monkeypatch.setenv("BACKTEST_QUEUE_URL", url)
    return url


@pytest.fixture
def backtest_cluster(store: WorkflowStore, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An ECS cluster and backtest task definition, as the compute stack creates them."""
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_cluster(clusterName="tradai-dev")
    # moto cannot attach awsvpc interfaces; bridge mode keeps RunTask testable.
    ecs.register_task_definition(
        family="tradai-backtest-dev",
        networkMode="bridge",
        containerDefinitions=[{"name": "backtest", "image": "tradai/backtest", "memory": 512}],
    )
    monkeypatch.setenv("ECS_CLUSTER", "tradai-dev")
    monkeypatch.setenv("BACKTEST_TASK_DEFINITION", "tradai-backtest-dev")
    return ecs


def _load_lambda(name: str) -> ModuleType:
    """Import ``lambdas/<name>/handler.py`` under a name of its own."""
    path = ROOT / "lambdas" / name / "handler.py"
    module_name = f"contract_lambda_{name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _sqs_event(*bodies: str) -> dict[str, Any]:
    """An SQS trigger event carrying ``bodies`` as they were sent."""
    return {
        "Records": [
            {"messageId": f"msg-{i}", "body": body, "eventSource": "aws:sqs"}
            for i, body in enumerate(bodies)
        ]
    }


@pytest.fixture
def load_lambda() -> Callable[[str], ModuleType]:
    """Loads a Lambda function's handler module by folder name."""
    return _load_lambda


@pytest.fixture
def sqs_event() -> Callable[..., dict[str, Any]]:
    """Builds an SQS trigger event from message bodies."""
    return _sqs_event


@pytest.fixture
def region() -> str:
    return REGION


@pytest.fixture
def job_payload() -> dict[str, Any]:
    return {
        "strategy": "ma-crossover",
        "symbol": "BTC-USDT",
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-01-21",
        "parameters": {"fast": 6, "slow": 24},
        "initial_capital": 5000,
    }

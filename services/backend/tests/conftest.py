import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from tradai_backend.app import create_app
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("BACKTEST_QUEUE_URL", raising=False)
    monkeypatch.setenv("TRADAI_ENV", "dev")


@pytest.fixture
def mocked():
    with mock_aws():
        yield


@pytest.fixture
def store(mocked):
    store = WorkflowStore.from_settings()
    store.create_table()
    return store


@pytest.fixture
def client(store):
    return TestClient(create_app(Settings.from_env(), store=store))


@pytest.fixture
def job_payload():
    return {
        "strategy": "ma-crossover",
        "symbol": "ETH-USDT",
        "timeframe": "4h",
        "start": "2024-01-01",
        "end": "2024-06-01",
        "parameters": {"fast": 5, "slow": 20},
    }

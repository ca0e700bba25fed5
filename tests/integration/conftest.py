import pytest
from moto import mock_aws

from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("TRADAI_ENV", "dev")
    for var in ("AWS_ENDPOINT_URL", "AWS_REGION", "BACKTEST_QUEUE_URL", "DATA_BUCKET"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def store():
    """The workflow-state table in a mocked AWS account, shared by every component."""
    with mock_aws():
        store = WorkflowStore.from_settings(Settings.from_env())
        store.create_table()
        yield store


@pytest.fixture
def job_payload():
    return {
        "strategy": "ma-crossover",
        "symbol": "BTC-USDT",
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-01-21",
        "parameters": {"fast": 6, "slow": 24},
        "initial_capital": 5000,
    }

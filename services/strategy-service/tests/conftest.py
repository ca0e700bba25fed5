import pytest


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("TRADAI_ENV", "dev")


@pytest.fixture
def job():
    return {
        "strategy": "ma-crossover",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-01-08",
        "parameters": {"fast": 3, "slow": 8},
        "job_id": "job-1",
    }

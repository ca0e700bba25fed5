import pytest


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    """Fake credentials and a fixed region; never let a test reach a real endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("TRADAI_ENV", "dev")


@pytest.fixture
def job_data():
    return {
        "strategy": "ma-crossover",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-02-01",
        "parameters": {"fast": 5, "slow": 20},
    }

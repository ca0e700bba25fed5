import json

import pytest


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("TRADAI_ENV", "dev")


@pytest.fixture
def job_file(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(
        json.dumps(
            {
                "strategy": "ma-crossover",
                "symbol": "btc-usdt".upper(),
                "timeframe": "1h",
                "start": "2024-01-01",
                "end": "2024-01-15",
                "parameters": {"fast": 4, "slow": 12},
                "job_id": "job-123",
            }
        )
    )
    return path

import boto3
import pytest

BUCKET = "tradai-data-dev"


@pytest.fixture
def bucket(aws, monkeypatch):
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    monkeypatch.setenv("DATA_BUCKET", BUCKET)
    s3.put_object(Bucket=BUCKET, Key="candles/BTC-USDT/1h.jsonl", Body=b"{}\n")
    return s3


def test_fresh_and_missing_symbols(handler, context, bucket, alerts):
    result = handler.lambda_handler({"symbols": ["BTC/USDT", "eth-usdt"]}, context)
    assert result["fresh"] is False
    assert result["stale"] == ["ETH-USDT"]
    assert result["age_hours"]["ETH-USDT"] is None
    assert 0 <= result["age_hours"]["BTC-USDT"] < 0.1
    [message] = alerts.messages()
    assert message["Subject"] == "[tradai dev] stale 1h candles: ETH-USDT"


def test_age_limit_applies(handler, context, bucket, alerts):
    assert handler.lambda_handler({}, context)["fresh"] is True
    assert alerts.messages() == []
    result = handler.lambda_handler({"max_age_hours": -1}, context)
    assert result["stale"] == ["BTC-USDT"]


def test_other_timeframe_and_env_symbols(handler, context, bucket, monkeypatch):
    monkeypatch.setenv("FRESHNESS_SYMBOLS", "BTC-USDT, SOL-USDT")
    result = handler.lambda_handler({"timeframe": "4h"}, context)
    assert result["stale"] == ["BTC-USDT", "SOL-USDT"]


def test_bucket_required(handler, context, aws):
    with pytest.raises(ValueError, match="data_bucket"):
        handler.lambda_handler({}, context)

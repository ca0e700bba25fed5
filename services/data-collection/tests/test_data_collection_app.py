import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from tradai_common.settings import Settings
from tradai_data_collection.app import create_app

START = "2024-03-01T00:00:00Z"


@pytest.fixture
def client():
    return TestClient(create_app(Settings.from_env({})))


def test_health_uses_memory_store_without_bucket(client):
    body = client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["store"] == "InMemoryCandleStore"


def test_collect_then_read_and_resample(client):
    response = client.post(
        "/collect", json={"symbol": "BTC-USDT", "timeframe": "1h", "start": START, "count": 48}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["collected"] == 48
    assert body["last"] - body["first"] == 47 * 3600

    hourly = client.get("/candles", params={"symbol": "BTC-USDT", "timeframe": "1h"}).json()
    assert len(hourly["candles"]) == 48
    daily = client.get(
        "/candles", params={"symbol": "BTC/USDT", "timeframe": "1h", "resample": "1d"}
    ).json()
    assert daily["timeframe"] == "1d"
    assert len(daily["candles"]) == 2
    first_day = hourly["candles"][:24]
    assert daily["candles"][0]["high"] == max(c["high"] for c in first_day)
    assert daily["candles"][0]["close"] == first_day[-1]["close"]


def test_collect_is_idempotent(client):
    payload = {"symbol": "ETH-USDT", "timeframe": "15m", "start": START, "count": 10}
    client.post("/collect", json=payload)
    assert client.post("/collect", json=payload).json()["stored"] == 10


def test_window_and_errors(client):
    client.post("/collect", json={"symbol": "SOL-USDT", "start": START, "count": 5})
    first = client.get("/candles", params={"symbol": "SOL-USDT"}).json()["candles"]
    window = client.get(
        "/candles",
        params={"symbol": "SOL-USDT", "start": first[1]["timestamp"], "end": first[3]["timestamp"]},
    ).json()["candles"]
    assert window == first[1:3]
    assert client.get("/candles", params={"symbol": "XRP-USDT"}).status_code == 404
    bad_resample = client.get("/candles", params={"symbol": "SOL-USDT", "resample": "1w"})
    assert bad_resample.status_code == 422
    bad_symbol = client.post("/collect", json={"symbol": "BTC", "start": START})
    assert bad_symbol.status_code == 422
    too_many = client.post("/collect", json={"symbol": "BTC-USDT", "start": START, "count": 10**6})
    assert too_many.status_code == 422


@mock_aws
def test_s3_store_when_bucket_configured():
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket="tradai-data-dev", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    client = TestClient(create_app(Settings.from_env({"DATA_BUCKET": "tradai-data-dev"})))
    assert client.get("/health").json()["store"] == "S3CandleStore"
    client.post("/collect", json={"symbol": "BTC-USDT", "start": START, "count": 3})
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="tradai-data-dev")["Contents"]]
    assert keys == ["candles/BTC-USDT/1h.jsonl"]

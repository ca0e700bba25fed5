import itertools
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from tradai_common.settings import Settings
from tradai_data.candles import resample
from tradai_data.sources import SyntheticSource
from tradai_data.store import InMemoryCandleStore, S3CandleStore, normalise_symbol

START = datetime(2024, 1, 1, tzinfo=UTC)


def test_synthetic_source_is_deterministic_and_valid():
    source = SyntheticSource(seed=7)
    a = source.fetch("BTC/USDT", "1h", START, 48)
    b = SyntheticSource(seed=7).fetch("BTC/USDT", "1h", START, 48)
    other = SyntheticSource(seed=8).fetch("BTC/USDT", "1h", START, 48)
    assert a == b
    assert a != other
    assert a[0].timestamp == int(START.timestamp())
    assert all(y.timestamp - x.timestamp == 3600 for x, y in itertools.pairwise(a))
    assert all(y.open == x.close for x, y in itertools.pairwise(a))
    assert len(resample(a, "1d")) == 2


def test_synthetic_source_rejects_bad_arguments():
    with pytest.raises(ValueError, match="start_price"):
        SyntheticSource(start_price=0)
    with pytest.raises(ValueError, match="volatility"):
        SyntheticSource(volatility=0.9)
    with pytest.raises(ValueError, match="count"):
        SyntheticSource().fetch("BTC/USDT", "1h", START, 0)


def test_normalise_symbol():
    assert normalise_symbol("btc/usdt") == "BTC-USDT"
    with pytest.raises(ValueError, match="symbol must look like"):
        normalise_symbol("BTC")


def test_memory_store_merges_and_windows():
    store = InMemoryCandleStore()
    candles = SyntheticSource().fetch("ETH/USDT", "1h", START, 10)
    assert store.write("ETH/USDT", "1h", candles[:6]) == 6
    assert store.write("eth-usdt", "1h", candles[4:]) == 10
    assert store.read("ETH/USDT", "1h") == candles
    start = candles[2].timestamp
    end = candles[5].timestamp
    assert store.read("ETH/USDT", "1h", start, end) == candles[2:5]
    assert store.read("ETH/USDT", "4h") == []
    assert store.symbols() == ["ETH-USDT"]


@mock_aws
def test_s3_store_round_trip():
    s3 = boto3.client("s3", region_name="eu-central-1")
    s3.create_bucket(
        Bucket="tradai-data-dev", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    store = S3CandleStore.from_settings(Settings.from_env({"DATA_BUCKET": "tradai-data-dev"}), s3)
    candles = SyntheticSource().fetch("BTC/USDT", "15m", START, 8)
    assert store.read("BTC/USDT", "15m") == []
    store.write("BTC/USDT", "15m", candles[:5])
    assert store.write("BTC/USDT", "15m", candles[3:]) == 8
    assert store.key("BTC/USDT", "15m") == "candles/BTC-USDT/15m.jsonl"
    body = s3.get_object(Bucket="tradai-data-dev", Key="candles/BTC-USDT/15m.jsonl")["Body"]
    assert len(body.read().decode().splitlines()) == 8
    assert store.read("BTC/USDT", "15m") == candles
    assert store.read("BTC/USDT", "15m", start=candles[6].timestamp) == candles[6:]


def test_s3_store_requires_bucket():
    with pytest.raises(ValueError, match="data_bucket"):
        S3CandleStore.from_settings(Settings.from_env({}), client=None)

import pytest

from tradai_data.candles import Candle, parse_timeframe, resample


def c(ts, o, h, l, cl, v=1.0):  # noqa: E741
    return Candle(timestamp=ts, open=o, high=h, low=l, close=cl, volume=v)


@pytest.mark.parametrize(
    ("tf", "seconds"), [("1m", 60), ("15m", 900), ("4h", 14400), ("1d", 86400)]
)
def test_parse_timeframe(tf, seconds):
    assert parse_timeframe(tf) == seconds


@pytest.mark.parametrize("tf", ["0m", "1w", "h", "", "60"])
def test_parse_timeframe_rejects(tf):
    with pytest.raises(ValueError, match="invalid timeframe"):
        parse_timeframe(tf)


def test_candle_validation():
    with pytest.raises(ValueError, match="high"):
        c(0, 10, 9, 8, 9.5)
    with pytest.raises(ValueError, match="low"):
        c(0, 10, 11, 10.5, 10.8)
    with pytest.raises(ValueError, match="positive"):
        c(0, 0, 1, 0, 1)
    with pytest.raises(ValueError, match="volume"):
        c(0, 1, 1, 1, 1, -1)
    with pytest.raises(ValueError, match="integer epoch"):
        Candle(timestamp=1.5, open=1, high=1, low=1, close=1)  # type: ignore[arg-type]


def test_candle_dict_round_trip():
    candle = c(3600, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert Candle.from_dict(candle.to_dict()) == candle
    assert candle.time.isoformat() == "1970-01-01T01:00:00+00:00"
    with pytest.raises(ValueError, match="missing field 'close'"):
        Candle.from_dict({"timestamp": 0, "open": 1, "high": 1, "low": 1})
    with pytest.raises(ValueError, match="invalid candle"):
        Candle.from_dict({"timestamp": "x", "open": 1, "high": 1, "low": 1, "close": 1})


def test_resample_aggregates_ohlcv():
    minutes = [
        c(0, 10, 11, 9, 10.5, 1),
        c(60, 10.5, 12, 10, 11, 2),
        c(120, 11, 11.5, 8, 9, 3),
        c(300, 9, 9.5, 8.5, 9.2, 4),  # next 5m bucket
    ]
    five = resample(minutes, "5m")
    assert five == [c(0, 10, 12, 8, 9, 6), c(300, 9, 9.5, 8.5, 9.2, 4)]


def test_resample_aligns_buckets_and_rejects_unsorted():
    hours = [c(3600 * i + 1800, 1, 1, 1, 1) for i in range(5)]
    four = resample(hours, "4h")
    assert [x.timestamp for x in four] == [0, 14400]
    assert [x.volume for x in four] == [4.0, 1.0]
    with pytest.raises(ValueError, match="strictly increasing"):
        resample([c(60, 1, 1, 1, 1), c(0, 1, 1, 1, 1)], "5m")
    assert resample([], "1h") == []

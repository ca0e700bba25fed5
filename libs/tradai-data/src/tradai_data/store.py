"""Candle stores: in memory (tests, local runs) and S3 (one JSON-lines object per
symbol and timeframe). Writes merge on timestamp, so re-collecting a range is
idempotent."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from tradai_common.logs import get_logger
from tradai_common.settings import Settings
from tradai_data.candles import Candle, parse_timeframe

logger = get_logger(__name__)


def _merge(existing: Iterable[Candle], new: Iterable[Candle]) -> list[Candle]:
    by_ts = {c.timestamp: c for c in existing}
    by_ts.update({c.timestamp: c for c in new})
    return [by_ts[ts] for ts in sorted(by_ts)]


def _window(candles: list[Candle], start: int | None, end: int | None) -> list[Candle]:
    return [
        c
        for c in candles
        if (start is None or c.timestamp >= start) and (end is None or c.timestamp < end)
    ]


def normalise_symbol(symbol: str) -> str:
    """``btc/usdt`` and ``BTC-USDT`` both become ``BTC-USDT`` (safe in keys and URLs)."""
    cleaned = symbol.strip().upper().replace("/", "-")
    parts = cleaned.split("-")
    if len(parts) != 2 or not all(p.isalnum() for p in parts):
        raise ValueError(f"symbol must look like 'BTC/USDT', got {symbol!r}")
    return cleaned


class CandleStore(Protocol):
    def write(self, symbol: str, timeframe: str, candles: Iterable[Candle]) -> int: ...

    def read(
        self, symbol: str, timeframe: str, start: int | None = None, end: int | None = None
    ) -> list[Candle]: ...


class InMemoryCandleStore:
    def __init__(self) -> None:
        self._data: dict[tuple[str, str], list[Candle]] = {}

    def write(self, symbol: str, timeframe: str, candles: Iterable[Candle]) -> int:
        parse_timeframe(timeframe)
        key = (normalise_symbol(symbol), timeframe)
        merged = _merge(self._data.get(key, []), candles)
        self._data[key] = merged
        return len(merged)

    def read(
        self, symbol: str, timeframe: str, start: int | None = None, end: int | None = None
    ) -> list[Candle]:
        return _window(self._data.get((normalise_symbol(symbol), timeframe), []), start, end)

    def symbols(self) -> list[str]:
        return sorted({symbol for symbol, _ in self._data})


class S3CandleStore:
    """Candles in ``s3://{bucket}/{prefix}/{SYMBOL}/{timeframe}.jsonl``.

    The S3 client is passed in, so this library needs nothing from AWS beyond the
    client's ``get_object`` / ``put_object``.
    """

    def __init__(self, bucket: str, client: Any, prefix: str = "candles") -> None:
        self.bucket = bucket
        self.client = client
        self.prefix = prefix.strip("/")

    @classmethod
    def from_settings(cls, settings: Settings, client: Any) -> S3CandleStore:
        return cls(settings.require("data_bucket"), client)

    def key(self, symbol: str, timeframe: str) -> str:
        parse_timeframe(timeframe)
        return f"{self.prefix}/{normalise_symbol(symbol)}/{timeframe}.jsonl"

    def _load(self, key: str) -> list[Candle]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return []
        lines = body.decode("utf-8").splitlines()
        return [Candle.from_dict(json.loads(line)) for line in lines if line.strip()]

    def write(self, symbol: str, timeframe: str, candles: Iterable[Candle]) -> int:
        key = self.key(symbol, timeframe)
        merged = _merge(self._load(key), candles)
        body = "\n".join(json.dumps(c.to_dict(), separators=(",", ":")) for c in merged)
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=(body + "\n").encode("utf-8"),
            ContentType="application/x-ndjson",
        )
        logger.info("candles stored", extra={"key": key, "count": len(merged)})
        return len(merged)

    def read(
        self, symbol: str, timeframe: str, start: int | None = None, end: int | None = None
    ) -> list[Candle]:
        return _window(self._load(self.key(symbol, timeframe)), start, end)

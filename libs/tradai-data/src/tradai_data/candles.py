"""The OHLCV candle and resampling to a coarser timeframe."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_TIMEFRAME_RE = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def parse_timeframe(timeframe: str) -> int:
    """``"15m"`` -> 900 seconds. Raises ``ValueError`` on anything else."""
    match = _TIMEFRAME_RE.match(timeframe) if isinstance(timeframe, str) else None
    if match is None:
        raise ValueError(f"invalid timeframe {timeframe!r}; expected e.g. '1m', '4h', '1d'")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True, order=True)
class Candle:
    """One OHLCV bar; ``timestamp`` is the bar's open time in epoch seconds (UTC)."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.timestamp, bool) or not isinstance(self.timestamp, int):
            raise ValueError(f"timestamp must be integer epoch seconds, got {self.timestamp!r}")
        if self.timestamp < 0:
            raise ValueError("timestamp must not be negative")
        prices = (self.open, self.high, self.low, self.close)
        if any(p <= 0 for p in prices):
            raise ValueError(f"prices must be positive at {self.timestamp}: {prices}")
        if self.high < max(self.open, self.close, self.low):
            raise ValueError(f"high {self.high} is below open/close/low at {self.timestamp}")
        if self.low > min(self.open, self.close):
            raise ValueError(f"low {self.low} is above open/close at {self.timestamp}")
        if self.volume < 0:
            raise ValueError(f"volume must not be negative at {self.timestamp}")

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, tz=UTC)

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candle:
        try:
            return cls(
                timestamp=int(data["timestamp"]),
                open=float(data["open"]),
                high=float(data["high"]),
                low=float(data["low"]),
                close=float(data["close"]),
                volume=float(data.get("volume", 0.0)),
            )
        except KeyError as exc:
            raise ValueError(f"candle is missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid candle {dict(data)!r}: {exc}") from None


def resample(candles: Iterable[Candle], timeframe: str) -> list[Candle]:
    """Aggregate candles into ``timeframe`` buckets aligned on the epoch.

    Open is the first bar's open, close the last bar's close, high/low the extremes
    and volume the sum. Input must be sorted by timestamp without duplicates.
    """
    step = parse_timeframe(timeframe)
    out: list[Candle] = []
    bucket: list[Candle] = []
    bucket_start = -1
    previous = -1
    for candle in candles:
        if candle.timestamp <= previous:
            raise ValueError(
                f"candles must be strictly increasing in time ({candle.timestamp} after {previous})"
            )
        previous = candle.timestamp
        start = candle.timestamp - candle.timestamp % step
        if bucket and start != bucket_start:
            out.append(_merge(bucket_start, bucket))
            bucket = []
        bucket_start = start
        bucket.append(candle)
    if bucket:
        out.append(_merge(bucket_start, bucket))
    return out


def _merge(start: int, bucket: list[Candle]) -> Candle:
    return Candle(
        timestamp=start,
        open=bucket[0].open,
        high=max(c.high for c in bucket),
        low=min(c.low for c in bucket),
        close=bucket[-1].close,
        volume=round(sum(c.volume for c in bucket), 8),
    )

"""Candle sources. ``SyntheticSource`` is a deterministic random walk used in
development, tests and demos where no exchange is reachable."""

from __future__ import annotations

import random
from datetime import datetime

from tradai_data.candles import Candle, parse_timeframe


class SyntheticSource:
    """Reproducible geometric random walk: same seed and symbol, same candles."""

    def __init__(self, seed: int = 42, start_price: float = 100.0, volatility: float = 0.01):
        if start_price <= 0:
            raise ValueError("start_price must be positive")
        if not 0 < volatility < 0.5:
            raise ValueError("volatility must be between 0 and 0.5")
        self.seed = seed
        self.start_price = start_price
        self.volatility = volatility

    def fetch(self, symbol: str, timeframe: str, start: datetime, count: int) -> list[Candle]:
        if count <= 0:
            raise ValueError("count must be positive")
        step = parse_timeframe(timeframe)
        first = int(start.timestamp())
        first -= first % step
        # Not for cryptography: a seeded generator gives reproducible series.
        rng = random.Random(f"{self.seed}:{symbol}:{timeframe}")  # noqa: S311  # nosec B311
        price = self.start_price
        candles = []
        for i in range(count):
            open_ = price
            close = max(open_ * (1 + rng.gauss(0.0, self.volatility)), 0.01)
            spread = abs(rng.gauss(0.0, self.volatility / 2))
            high = max(open_, close) * (1 + spread)
            low = min(open_, close) * (1 - spread)
            volume = round(rng.uniform(1.0, 100.0), 4)
            candles.append(
                Candle(
                    timestamp=first + i * step,
                    open=round(open_, 6),
                    high=round(high, 6),
                    low=round(low, 6),
                    close=round(close, 6),
                    volume=volume,
                )
            )
            price = close
        return candles

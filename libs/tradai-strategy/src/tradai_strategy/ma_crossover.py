"""Moving-average crossover: long when the fast SMA crosses above the slow one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from tradai_strategy.base import Signal, Strategy


def sma(values: Sequence[float], window: int) -> list[float | None]:
    """Simple moving average; ``None`` until ``window`` values have been seen."""
    if window <= 0:
        raise ValueError("window must be positive")
    out: list[float | None] = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / window if i >= window - 1 else None)
    return out


class MovingAverageCrossover(Strategy):
    name: ClassVar[str] = "ma-crossover"
    defaults: ClassVar[dict[str, Any]] = {"fast": 10, "slow": 30}

    def validate(self) -> None:
        fast, slow = self.parameters["fast"], self.parameters["slow"]
        for label, value in (("fast", fast), ("slow", slow)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{self.name}: {label} must be a positive integer, got {value!r}")
        if fast >= slow:
            raise ValueError(f"{self.name}: fast ({fast}) must be smaller than slow ({slow})")

    @property
    def warmup(self) -> int:
        return int(self.parameters["slow"])

    def signals(self, closes: Sequence[float]) -> list[Signal]:
        fast = sma(closes, self.parameters["fast"])
        slow = sma(closes, self.parameters["slow"])
        out = [Signal.HOLD] * len(closes)
        for i in range(1, len(closes)):
            f0, s0, f1, s1 = fast[i - 1], slow[i - 1], fast[i], slow[i]
            if f0 is None or s0 is None or f1 is None or s1 is None:
                continue
            if f0 <= s0 and f1 > s1:
                out[i] = Signal.BUY
            elif f0 >= s0 and f1 < s1:
                out[i] = Signal.SELL
        return out

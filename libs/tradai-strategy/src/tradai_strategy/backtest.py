"""A bar-by-bar, long-only backtester (plain Python, no vector library).

Orders fill at the close of the bar that produced the signal; a fee is charged on
every fill; an open position is closed at the last bar.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tradai_strategy.base import Bar, Signal, Strategy

SECONDS_PER_YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class Trade:
    entry_time: int
    entry_price: float
    exit_time: int
    exit_price: float
    pnl: float

    @property
    def won(self) -> bool:
        return self.pnl > 0


@dataclass(frozen=True)
class BacktestResult:
    strategy: str
    parameters: dict[str, Any]
    initial_capital: float
    final_equity: float
    total_return: float
    max_drawdown: float
    sharpe: float
    num_trades: int
    win_rate: float
    bars: int
    trades: list[Trade] = field(default_factory=list)
    equity_curve: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Metrics only: what gets stored in a workflow record."""
        data = asdict(self)
        del data["trades"], data["equity_curve"]
        return data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def max_drawdown(equity: Sequence[float]) -> float:
    """Largest peak-to-trough loss as a fraction of the peak (0.25 = -25 %)."""
    peak = -math.inf
    worst = 0.0
    for value in equity:
        peak = max(peak, value)
        if peak > 0:
            worst = max(worst, (peak - value) / peak)
    return worst


def sharpe_ratio(equity: Sequence[float], periods_per_year: float) -> float:
    """Annualised Sharpe ratio of per-bar returns (risk-free rate 0)."""
    returns = [b / a - 1 for a, b in itertools.pairwise(equity) if a > 0]
    if len(returns) < 2:
        return 0.0
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if var <= 0:
        return 0.0
    return mean / math.sqrt(var) * math.sqrt(periods_per_year)


def backtest(
    strategy: Strategy,
    bars: Sequence[Bar],
    *,
    initial_capital: float = 10_000.0,
    fee_rate: float = 0.001,
    bar_seconds: int | None = None,
) -> BacktestResult:
    """Run ``strategy`` over ``bars`` (sorted by time) and measure the result."""
    if initial_capital <= 0:
        raise ValueError("initial_capital must be positive")
    if not 0 <= fee_rate < 0.1:
        raise ValueError("fee_rate must be in [0, 0.1)")
    if any(b.timestamp <= a.timestamp for a, b in itertools.pairwise(bars)):
        raise ValueError("bars must be sorted by strictly increasing timestamp")
    if bar_seconds is None:
        bar_seconds = bars[1].timestamp - bars[0].timestamp if len(bars) > 1 else 86400

    closes = [float(b.close) for b in bars]
    signals = strategy.signals(closes)
    cash = initial_capital
    units = 0.0
    entry: tuple[int, float, float] | None = None  # time, price, cost
    trades: list[Trade] = []
    equity: list[float] = []

    def sell(i: int) -> None:
        nonlocal cash, units, entry
        if entry is None:
            return
        proceeds = units * closes[i] * (1 - fee_rate)
        trades.append(Trade(entry[0], entry[1], bars[i].timestamp, closes[i], proceeds - entry[2]))
        cash, units, entry = cash + proceeds, 0.0, None

    for i, signal in enumerate(signals):
        if signal is Signal.BUY and entry is None:
            cost = cash
            units = cash * (1 - fee_rate) / closes[i]
            cash = 0.0
            entry = (bars[i].timestamp, closes[i], cost)
        elif signal is Signal.SELL and entry is not None:
            sell(i)
        equity.append(cash + units * closes[i])
    if entry is not None:
        sell(len(bars) - 1)
        equity[-1] = cash

    final = equity[-1] if equity else initial_capital
    wins = sum(1 for t in trades if t.won)
    return BacktestResult(
        strategy=strategy.name,
        parameters=dict(strategy.parameters),
        initial_capital=initial_capital,
        final_equity=round(final, 6),
        total_return=round(final / initial_capital - 1, 8),
        max_drawdown=round(max_drawdown(equity), 8),
        sharpe=round(sharpe_ratio(equity, SECONDS_PER_YEAR / bar_seconds), 6),
        num_trades=len(trades),
        win_rate=round(wins / len(trades), 6) if trades else 0.0,
        bars=len(bars),
        trades=trades,
        equity_curve=[round(e, 6) for e in equity],
    )

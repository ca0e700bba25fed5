"""Strategy registry and running a :class:`~tradai_common.models.BacktestJob`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tradai_common.models import BacktestJob
from tradai_strategy.backtest import BacktestResult, backtest
from tradai_strategy.base import Bar, Strategy
from tradai_strategy.ma_crossover import MovingAverageCrossover

_STRATEGIES: dict[str, type[Strategy]] = {
    MovingAverageCrossover.name: MovingAverageCrossover,
}


def available_strategies() -> dict[str, dict[str, Any]]:
    """Strategy name -> default parameters."""
    return {name: dict(cls.defaults) for name, cls in sorted(_STRATEGIES.items())}


def create_strategy(name: str, parameters: dict[str, Any] | None = None) -> Strategy:
    try:
        cls = _STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(_STRATEGIES))
        raise ValueError(f"unknown strategy {name!r}; available: {known}") from None
    return cls(**(parameters or {}))


def run_job(job: BacktestJob, bars: Sequence[Bar], *, fee_rate: float = 0.001) -> BacktestResult:
    """Backtest ``job`` on the bars that fall inside ``[job.start, job.end)``."""
    strategy = create_strategy(job.strategy, dict(job.parameters))
    start, end = job.start_at.timestamp(), job.end_at.timestamp()
    window = [b for b in bars if start <= b.timestamp < end]
    if len(window) <= strategy.warmup:
        raise ValueError(
            f"job {job.job_id}: {len(window)} bars in range, "
            f"{job.strategy} needs more than {strategy.warmup}"
        )
    return backtest(
        strategy,
        window,
        initial_capital=job.initial_capital,
        fee_rate=fee_rate,
        bar_seconds=job.timeframe_seconds,
    )

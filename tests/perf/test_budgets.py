"""Time budgets of the hot paths: a backtest, candle resampling, job validation, and the
import of tradai-common that every Lambda cold start pays."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from tradai_common.models import BacktestJob
from tradai_data import SyntheticSource, resample
from tradai_strategy import PriceBar, backtest, create_strategy

BestOf = Callable[[int, Callable[[], object]], float]
START = datetime(2024, 1, 1, tzinfo=UTC)


def test_backtest_of_a_year_of_hourly_bars(best_of: BestOf) -> None:
    candles = SyntheticSource(seed=1).fetch("BTC/USDT", "1h", START, 24 * 365)
    bars = [PriceBar(timestamp=c.timestamp, close=c.close) for c in candles]
    strategy = create_strategy("ma-crossover", {"fast": 12, "slow": 48})
    seconds = best_of(3, lambda: backtest(strategy, bars))
    assert seconds < 2.0, f"backtest over {len(bars)} bars took {seconds:.2f}s (budget 2s)"


def test_resampling_a_month_of_minute_candles(best_of: BestOf) -> None:
    candles = SyntheticSource(seed=2).fetch("ETH/USDT", "1m", START, 60 * 24 * 30)
    seconds = best_of(3, lambda: resample(candles, "1h"))
    assert len(resample(candles, "1h")) == 24 * 30
    assert seconds < 2.0, f"resampling {len(candles)} candles took {seconds:.2f}s (budget 2s)"


def test_validating_ten_thousand_jobs(best_of: BestOf) -> None:
    payload = {
        "strategy": "ma-crossover",
        "symbol": "BTC-USDT",
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-02-01",
        "parameters": {"fast": 6, "slow": 24},
    }

    def validate() -> None:
        for _ in range(10_000):
            BacktestJob.from_dict(payload)

    seconds = best_of(3, validate)
    assert seconds < 2.0, f"10,000 BacktestJob.from_dict calls took {seconds:.2f}s (budget 2s)"


def test_lambda_cold_import_of_tradai_common() -> None:
    code = (
        "import time; t = time.perf_counter(); "
        "import tradai_common.aws, tradai_common.health, tradai_common.logs, "
        "tradai_common.models, tradai_common.settings, tradai_common.state; "
        "print(time.perf_counter() - t)"
    )
    timings = []
    for _ in range(3):
        out = subprocess.run(  # noqa: S603  # nosec B603: our own interpreter, fixed code
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        timings.append(float(out.stdout.strip()))
    seconds = min(timings)
    assert seconds < 4.0, f"importing tradai_common took {seconds:.2f}s (budget 4s)"

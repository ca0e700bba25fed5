import math
from typing import ClassVar

import pytest

from tradai_common.models import BacktestJob
from tradai_strategy.backtest import backtest, max_drawdown, sharpe_ratio
from tradai_strategy.base import PriceBar, Signal, Strategy
from tradai_strategy.ma_crossover import MovingAverageCrossover
from tradai_strategy.registry import available_strategies, create_strategy, run_job


class Scripted(Strategy):
    """Emits a fixed list of signals, to test the accounting exactly."""

    name = "scripted"
    defaults: ClassVar[dict[str, str]] = {"script": ""}

    def validate(self) -> None:
        if not set(self.parameters["script"]) <= {"B", "S", "."}:
            raise ValueError("bad script")

    def signals(self, closes):
        table = {"B": Signal.BUY, "S": Signal.SELL, ".": Signal.HOLD}
        return [table[c] for c in self.parameters["script"]][: len(closes)]


def bars(prices, step=3600):
    return [PriceBar(timestamp=i * step, close=p) for i, p in enumerate(prices)]


def test_buy_and_sell_accounting_without_fees():
    result = backtest(Scripted(script="B.S."), bars([100, 110, 120, 90]), fee_rate=0.0)
    assert result.final_equity == pytest.approx(12_000)
    assert result.total_return == pytest.approx(0.2)
    assert result.num_trades == 1
    assert result.trades[0].pnl == pytest.approx(2_000)
    assert result.win_rate == 1.0
    assert result.equity_curve == pytest.approx([10_000, 11_000, 12_000, 12_000])


def test_fees_are_charged_on_both_fills_and_open_position_is_closed():
    result = backtest(Scripted(script="B..."), bars([100, 100, 100, 50]), fee_rate=0.01)
    expected = 10_000 * 0.99 * 0.5 * 0.99
    assert result.final_equity == pytest.approx(expected)
    assert result.num_trades == 1
    assert result.win_rate == 0.0
    # The peak is the first bar, already net of the entry fee.
    assert result.max_drawdown == pytest.approx(1 - expected / 9_900, rel=1e-6)


def test_metrics_helpers():
    assert max_drawdown([100, 120, 60, 130, 65]) == pytest.approx(0.5)
    assert max_drawdown([]) == 0.0
    assert sharpe_ratio([100, 100, 100], 365) == 0.0
    assert sharpe_ratio([100], 365) == 0.0
    up_down = [100, 102, 101, 104, 103, 106]
    assert sharpe_ratio(up_down, 365) > 0
    assert sharpe_ratio(list(reversed(up_down)), 365) < 0


def test_ma_crossover_profits_on_trend_reversal():
    prices = [100 - i for i in range(30)] + [70 + 2 * i for i in range(40)]
    result = backtest(MovingAverageCrossover(fast=3, slow=8), bars(prices), fee_rate=0.001)
    assert result.num_trades == 1
    assert result.total_return > 0.5
    assert result.bars == 70
    assert math.isfinite(result.sharpe)
    summary = result.summary()
    assert "equity_curve" not in summary
    assert summary["strategy"] == "ma-crossover"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_capital": 0}, "initial_capital"),
        ({"fee_rate": 0.5}, "fee_rate"),
    ],
)
def test_backtest_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        backtest(Scripted(script=".."), bars([1, 2]), **kwargs)


def test_backtest_rejects_unsorted_bars():
    with pytest.raises(ValueError, match="sorted"):
        backtest(Scripted(script=".."), [PriceBar(10, 1.0), PriceBar(5, 1.0)])


def test_registry():
    assert available_strategies() == {"ma-crossover": {"fast": 10, "slow": 30}}
    assert isinstance(create_strategy("ma-crossover", {"fast": 2, "slow": 5}), Strategy)
    with pytest.raises(ValueError, match="unknown strategy 'rsi'"):
        create_strategy("rsi")


def test_run_job_uses_job_window_and_capital():
    job = BacktestJob.from_dict(
        {
            "strategy": "ma-crossover",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "start": "1970-01-01T10:00:00",
            "end": "1970-01-04T00:00:00",
            "parameters": {"fast": 3, "slow": 8},
            "initial_capital": 1000,
        }
    )
    prices = [100 - i * 0.5 for i in range(40)] + [80 + i for i in range(60)]
    result = run_job(job, bars(prices))
    assert result.bars == 100 - 10 - (100 - 72)
    assert result.initial_capital == 1000
    assert result.parameters == {"fast": 3, "slow": 8}
    short = BacktestJob.from_dict({**job.to_dict(), "end": "1970-01-01T12:00:00"})
    with pytest.raises(ValueError, match="2 bars in range"):
        run_job(short, bars(prices))

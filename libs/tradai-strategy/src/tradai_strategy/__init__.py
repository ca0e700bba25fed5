"""TradAI strategies: the :class:`Strategy` base class, a moving-average crossover
strategy and a bar-by-bar backtester."""

from tradai_strategy.backtest import BacktestResult, Trade, backtest
from tradai_strategy.base import Bar, PriceBar, Signal, Strategy
from tradai_strategy.ma_crossover import MovingAverageCrossover
from tradai_strategy.registry import available_strategies, create_strategy, run_job

__version__ = "0.1.0"
__all__ = [
    "BacktestResult",
    "Bar",
    "MovingAverageCrossover",
    "PriceBar",
    "Signal",
    "Strategy",
    "Trade",
    "__version__",
    "available_strategies",
    "backtest",
    "create_strategy",
    "run_job",
]

"""OHLCV candles for TradAI: model, resampling, a synthetic source and stores."""

from tradai_data.candles import Candle, parse_timeframe, resample
from tradai_data.sources import SyntheticSource
from tradai_data.store import CandleStore, InMemoryCandleStore, S3CandleStore

__all__ = [
    "Candle",
    "CandleStore",
    "InMemoryCandleStore",
    "S3CandleStore",
    "SyntheticSource",
    "parse_timeframe",
    "resample",
]
__version__ = "0.1.0"

import pytest

from tradai_strategy.base import Signal
from tradai_strategy.ma_crossover import MovingAverageCrossover, sma


def test_sma():
    assert sma([1, 2, 3, 4, 5], 2) == [None, 1.5, 2.5, 3.5, 4.5]
    assert sma([4.0], 1) == [4.0]
    with pytest.raises(ValueError, match="window"):
        sma([1.0], 0)


def test_crossover_signals_on_v_shape():
    closes = [10, 9, 8, 7, 6, 7, 8, 9, 10, 11, 10, 9, 8, 7]
    signals = MovingAverageCrossover(fast=2, slow=4).signals(closes)
    assert len(signals) == len(closes)
    buys = [i for i, s in enumerate(signals) if s is Signal.BUY]
    sells = [i for i, s in enumerate(signals) if s is Signal.SELL]
    assert buys == [6]
    assert sells == [11]
    assert all(s is Signal.HOLD for s in signals[:4])


def test_signals_only_use_past_data():
    closes = [float(x) for x in [5, 4, 3, 4, 5, 6, 5, 4, 3, 2, 3, 4, 5]]
    strategy = MovingAverageCrossover(fast=2, slow=3)
    full = strategy.signals(closes)
    for i in range(len(closes)):
        assert strategy.signals(closes[: i + 1])[i] == full[i]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fast": 30, "slow": 10}, "must be smaller"),
        ({"fast": 0}, "fast must be a positive integer"),
        ({"slow": 2.5}, "slow must be a positive integer"),
        ({"fast": True}, "fast must be a positive integer"),
        ({"window": 3}, "unknown parameter"),
    ],
)
def test_invalid_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        MovingAverageCrossover(**params)


def test_defaults_and_repr():
    strategy = MovingAverageCrossover(fast=3)
    assert strategy.parameters == {"fast": 3, "slow": 30}
    assert strategy.warmup == 30
    assert repr(strategy) == "MovingAverageCrossover(fast=3, slow=30)"

"""Strategy base class and the minimal bar interface strategies consume."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol


class Signal(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class Bar(Protocol):
    """Anything with an open time and a close price (e.g. ``tradai_data.Candle``)."""

    @property
    def timestamp(self) -> int: ...

    @property
    def close(self) -> float: ...


@dataclass(frozen=True)
class PriceBar:
    """The smallest concrete :class:`Bar`."""

    timestamp: int
    close: float


class Strategy(ABC):
    """A strategy turns a close-price series into one signal per bar.

    Subclasses declare ``name`` and ``defaults`` and implement :meth:`validate` and
    :meth:`signals`. ``signals(closes)[i]`` may only look at ``closes[: i + 1]``.
    """

    name: ClassVar[str]
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **parameters: Any) -> None:
        unknown = sorted(set(parameters) - set(self.defaults))
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s): {', '.join(unknown)}")
        self.parameters: dict[str, Any] = {**self.defaults, **parameters}
        self.validate()

    @abstractmethod
    def validate(self) -> None:
        """Raise ``ValueError`` when ``self.parameters`` are unusable."""

    @abstractmethod
    def signals(self, closes: Sequence[float]) -> list[Signal]:
        """One signal per close price."""

    @property
    def warmup(self) -> int:
        """Bars needed before the first non-HOLD signal is possible."""
        return 0

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(self.parameters.items()))
        return f"{type(self).__name__}({params})"

"""Fixtures for the performance budgets (``cargo xtask ci perf``).

Each test times one hot path and fails when it exceeds its budget. Budgets are several
times the time measured on a 2-core CI runner, so that they catch an accidental
quadratic loop or a heavy import, not the noise of a shared machine; the best of a few
runs is compared, for the same reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def _best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.fixture
def best_of() -> Callable[[int, Callable[[], object]], float]:
    """Seconds of the fastest of ``runs`` calls of ``work``."""
    return _best_of

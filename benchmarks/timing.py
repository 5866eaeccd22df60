"""Measuring: warm-up, repeats taken in turn by each side, and the median rate.

A workload is an async callable returning a :class:`Sample`: how many units of
work it did (commands, loads, events) and how long they took. Each side of a
comparison runs once as a warm-up, then the sides take turns, repeat by repeat,
so that a drift of the machine (page cache, WAL growth, autovacuum) touches
them alike. The figure kept is the median rate over the repeats.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """Units of work done and the seconds they took."""

    units: int
    seconds: float

    @property
    def rate(self) -> float:
        """Return units per second."""
        return self.units / self.seconds if self.seconds > 0 else float("inf")


Workload = Callable[[], Awaitable[Sample]]
"""One repeat of a workload: does the work and times it."""


class Stopwatch:
    """Times a block with ``time.perf_counter``: ``with Stopwatch() as watch: ...``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._start


async def compare(
    sides: Mapping[str, Workload], *, repeats: int, warm_up: bool = True
) -> dict[str, float]:
    """Run every side ``repeats`` times in turn (after a warm-up); return each median rate."""
    if warm_up:
        for workload in sides.values():
            await workload()
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, workload in sides.items():
            gc.collect()
            rates[name].append((await workload()).rate)
    return {name: statistics.median(values) for name, values in rates.items()}


def timed_sync(function: Callable[[], int]) -> Sample:
    """Run ``function`` (which returns its unit count) and time it."""
    with Stopwatch() as watch:
        units = function()
    return Sample(units, watch.seconds)

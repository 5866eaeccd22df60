"""The lag of each worker over the last hour, sampled in memory for the page's chart.

A :class:`LagHistory` keeps, for every worker that follows the event log or
the outbox (those with a head: projections, relays, saga feeds), how many
events it was behind at each sample. Samples older than the window (one hour)
are dropped, and two samples are at least ``min_gap`` seconds apart, so the
history holds a bounded number of samples whatever the traffic.

Samples come from two places: the sampler task the router's lifespan runs
(:meth:`LagHistory.sampling`, every ``interval`` seconds while the
application runs), and every read of the overview (the page would have read
the same rows anyway). The history lives in the application's process: a
restart starts it again, empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from cqrs_ddd_ops.status import WorkerRow

logger = logging.getLogger("cqrs_ddd_ops.web")

WINDOW_SECONDS = 3600.0
"""How far back the chart goes: one hour."""


@dataclass(frozen=True)
class LagSample:
    """The lag of every charted worker at one moment (Unix seconds)."""

    at: float
    lag_events: dict[str, int]


class LagHistory:
    """The lag samples of the last hour, oldest first, bounded in number.

    ``min_gap`` is the shortest time between two samples (a sample offered
    sooner is ignored), so at most ``window / min_gap + 1`` samples are kept.
    """

    def __init__(
        self,
        *,
        window: float = WINDOW_SECONDS,
        min_gap: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window <= 0 or min_gap <= 0:
            raise ValueError("window and min_gap must be positive numbers of seconds")
        self.window = window
        self.min_gap = min_gap
        self._clock = clock
        self._samples: deque[LagSample] = deque(maxlen=int(window / min_gap) + 1)

    def record(self, rows: Sequence[WorkerRow]) -> bool:
        """Add a sample of ``rows`` (the workers with a head); return whether it was kept."""
        now = self._clock()
        if self._samples and now - self._samples[-1].at < self.min_gap:
            return False
        lags = {row.name: row.lag_events for row in rows if row.head is not None}
        self._samples.append(LagSample(now, lags))
        self._forget_before(now - self.window)
        return True

    def samples(self) -> list[LagSample]:
        """Return the samples of the window, oldest first."""
        self._forget_before(self._clock() - self.window)
        return list(self._samples)

    def now(self) -> float:
        """Return the history's clock (Unix seconds)."""
        return self._clock()

    def _forget_before(self, moment: float) -> None:
        while self._samples and self._samples[0].at < moment:
            self._samples.popleft()

    @contextlib.asynccontextmanager
    async def sampling(
        self, read: Callable[[], Awaitable[Sequence[WorkerRow] | None]], *, interval: float
    ) -> AsyncIterator[None]:
        """Sample ``read()`` every ``interval`` seconds in a task, for the block's duration.

        The first sample is taken one interval in. ``read`` returns the
        workers' rows, or None when there is nothing to read yet (the
        application is not started). A failed read is logged and tried again
        at the next interval; the task is cancelled when the
        block ends.
        """

        async def run() -> None:
            while True:
                await asyncio.sleep(interval)  # not at once: the application is starting
                try:
                    rows = await read()
                except Exception as error:  # noqa: BLE001 - the next round tries again
                    logger.warning("the operations page could not sample the lag: %r", error)
                else:
                    if rows is not None:
                        self.record(rows)

        task = asyncio.create_task(run(), name="cqrs-ddd-ops-lag-sampler")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

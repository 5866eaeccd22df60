"""``CommandSchedulerWorker``: runs due scheduled commands in the background.

The worker keeps up to ``batch_size`` claimed commands running at once, each
through :meth:`CommandSchedulerService.run`, and claims more as soon as half of
its slots are free (one claim statement for several commands, and never a
pause while a slow command finishes); it renews the leases of the runs in
flight every third of ``lease_ttl``, and fires due occurrences of recurring
schedules whenever it is idle and at least every second while busy (a failure
there is logged and never keeps commands from running). When nothing was due it asks the
store how long until something is (by the store's clock) and waits that long,
at most ``poll_interval``, or until a wake-up: a command scheduled in this
process, or in another one where the store can say so (PostgreSQL ``LISTEN``,
a SQLite file's ``data_version``), wakes it at once, so a command due before
the next poll still runs on time. A failing round (the database went away)
is logged and retried with exponential back-off.

Several workers, in one process or many, share the work: claims never
overlap, and a run whose worker died is taken over when its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from uuid import UUID

from cqrs_ddd_advanced_core.domain.exceptions import ScheduleConfigurationError
from cqrs_ddd_advanced_core.scheduling.ports import ClaimedSchedule
from cqrs_ddd_advanced_core.scheduling.service import CommandSchedulerService, default_owner
from cqrs_ddd_advanced_core.workers.loop import WorkerState
from cqrs_ddd_core.wakeup import Wakeup

logger = logging.getLogger(__name__)

_NOTHING_CLAIMABLE_PAUSE = 0.05
"""Seconds to wait when something is due but nothing could be claimed (locked elsewhere)."""


class CommandSchedulerWorker:
    """Runs ``service``'s due commands until stopped; see the module docs.

    ``owner`` names this worker in the store's leases (host, pid and a random
    suffix by default). ``retry_backoff`` and ``max_backoff`` (seconds) space
    the rounds retried after a failure.
    """

    def __init__(
        self,
        service: CommandSchedulerService,
        poll_interval: float = 60.0,
        *,
        batch_size: int = 10,
        owner: str | None = None,
        retry_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if batch_size < 1:
            raise ScheduleConfigurationError(f"batch_size={batch_size}: must be at least 1")
        if poll_interval <= 0:
            raise ScheduleConfigurationError(f"poll_interval={poll_interval}: must be positive")
        self.service = service
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.owner = owner or default_owner()
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.state: WorkerState = "idle"
        self.runs = 0
        """How many claimed commands this worker has run (whatever their outcome)."""
        self.last_error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._claims: dict[UUID, ClaimedSchedule] = {}
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        """Whether the worker's task is alive."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start working in a background task; starting a running worker does nothing.

        Returns once the worker listens for wake-ups, so a command scheduled
        after ``start()`` returns wakes it.
        """
        if self.running:
            return
        self._stopping = stopping = asyncio.Event()
        listening = asyncio.Event()
        self._task = asyncio.create_task(
            self._run(listening, stopping), name=f"scheduler:{self.owner}"
        )
        waiter = asyncio.create_task(listening.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # raise why it could not start

    async def stop(self, *, cancel_after: float | None = None) -> None:
        """Stop after the commands in flight finish (cancelled after ``cancel_after`` seconds).

        A cancelled command's run is taken over by a worker once its lease
        expires; nothing it did outside its transaction is undone.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self.service.scheduler.wakeup.notify()
        try:
            await asyncio.wait_for(asyncio.shield(task), cancel_after)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.state = "stopped"

    async def run_once(self) -> int:
        """Do one round now, in the caller's task: fire recurring schedules, run what is due."""
        await self.service.fire_recurring()
        ran = await self.service.run_due(owner=self.owner, limit=self.batch_size)
        self.runs += ran
        return ran

    async def _run(self, listening: asyncio.Event, stopping: asyncio.Event) -> None:
        async with self.service.scheduler.listening() as wakeup:
            listening.set()
            self.state = "running"
            heartbeat = asyncio.create_task(self._keep_leases(), name="scheduler-leases")
            try:
                await self._work(wakeup, stopping)
                if self._running:  # stopping: let the commands in flight finish
                    await asyncio.wait(self._running)
            finally:
                for running in self._running:
                    running.cancel()
                await asyncio.gather(*self._running, return_exceptions=True)
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
        self.state = "stopped"

    async def _work(self, wakeup: Wakeup, stopping: asyncio.Event) -> None:
        """Keep up to ``batch_size`` commands running; claim more once half the slots are free."""
        failures = 0
        fired_at = -math.inf
        while not stopping.is_set():
            seen = wakeup.generation
            free = self.batch_size - len(self._running)
            if free < max(1, self.batch_size // 2):
                await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
                continue
            if time.monotonic() - fired_at >= min(self.poll_interval, 1.0) or not self._running:
                fired_at = time.monotonic()
                await self._fire_recurring()
            try:
                claims = await self.service.scheduler.claim(
                    self.owner, free, self.service.lease_ttl
                )
                for claim in claims:
                    self._start(claim)
                if claims:
                    failures = 0
                    continue
                wait = await self.service.scheduler.seconds_until_due()
                failures = 0
            except Exception as error:
                failures += 1
                self.last_error = error
                wait = min(self.retry_backoff * 2 ** (failures - 1), self.max_backoff)
                logger.exception("scheduler round failed; again in %.2fs", wait)
            if stopping.is_set():
                break
            # due but not claimable (a row locked by another transaction): do not spin
            pause = (
                self.poll_interval
                if wait is None
                else wait
                if wait > 0
                else _NOTHING_CLAIMABLE_PAUSE
            )
            await wakeup.wait(min(pause, self.poll_interval), seen=seen)

    async def _fire_recurring(self) -> None:
        """Fire due recurring schedules; a failure here never keeps commands from running."""
        try:
            await self.service.fire_recurring()
        except Exception as error:
            self.last_error = error
            logger.exception("firing recurring schedules failed")

    def _start(self, claim: ClaimedSchedule) -> None:
        self._claims[claim.schedule_id] = claim
        running = asyncio.create_task(self.service.run(claim), name=f"schedule:{claim.schedule_id}")
        self._running.add(running)

        def finished(task: asyncio.Task[None]) -> None:
            self._running.discard(task)
            if self._claims.get(claim.schedule_id) is claim:  # not a later claim of the same row
                del self._claims[claim.schedule_id]
            self.runs += 1
            if not task.cancelled() and task.exception() is not None:
                logger.error("running %s failed", claim.schedule_id, exc_info=task.exception())

        running.add_done_callback(finished)

    async def _keep_leases(self) -> None:
        """Renew the leases of the runs in flight every third of their time."""
        ttl = self.service.lease_ttl
        while True:
            await asyncio.sleep(ttl / 3)
            if not self._claims:
                continue
            try:
                await self.service.scheduler.extend(list(self._claims.values()), ttl)
            except Exception:
                logger.warning("renewing the leases of running schedules failed", exc_info=True)

"""``CommandSchedulerWorker``: runs due scheduled commands in the background.

Each round the worker fires due occurrences of recurring schedules, claims up
to ``batch_size`` due commands and runs them (see
:meth:`CommandSchedulerService.run_due`). When nothing was due it asks the
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

from cqrs_ddd_advanced_core.scheduling.service import CommandSchedulerService, default_owner
from cqrs_ddd_advanced_core.workers.loop import WorkerState

logger = logging.getLogger(__name__)


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
        self._stopping = asyncio.Event()
        listening = asyncio.Event()
        self._task = asyncio.create_task(self._run(listening), name=f"scheduler:{self.owner}")
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

    async def _run(self, listening: asyncio.Event) -> None:
        failures = 0
        async with self.service.scheduler.listening() as wakeup:
            listening.set()
            self.state = "running"
            while not self._stopping.is_set():
                seen = wakeup.generation
                try:
                    if await self.run_once():
                        failures = 0
                        continue
                    wait = await self.service.scheduler.seconds_until_due()
                    failures = 0
                except Exception as error:
                    failures += 1
                    self.last_error = error
                    wait = min(self.retry_backoff * 2 ** (failures - 1), self.max_backoff)
                    logger.exception("scheduler round failed; again in %.2fs", wait)
                if self._stopping.is_set():
                    break
                pause = (
                    self.poll_interval if wait is None else min(max(wait, 0.0), self.poll_interval)
                )
                if pause > 0:
                    await wakeup.wait(pause, seen=seen)
        self.state = "stopped"

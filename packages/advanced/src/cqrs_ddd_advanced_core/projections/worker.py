"""``ProjectionWorker``: keeps projections up to date from the global event log.

Each registered projector is a :class:`ProjectionJob` run by its own
:class:`~cqrs_ddd_advanced_core.workers.WorkerLoop`: take the projection's lease
(or stand by while another worker has it), apply the next batch of events in a
transaction fenced by the lease that also stores the checkpoint, and wait for a
wake-up or the poll interval when there is nothing to read. The worker adds
what an operator does to projections: catch up now, rebuild, resume a halted
one, replay dead letters, and read their status.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable

from cqrs_ddd_advanced_core.projections.job import (
    ErrorPolicy,
    ProjectionJob,
    ProjectionSettings,
)
from cqrs_ddd_advanced_core.projections.registry import ProjectorRegistry
from cqrs_ddd_advanced_core.projections.replay import ReplayResult, replay_dead_letters
from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_advanced_core.upcasting.registry import UpcasterRegistry
from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter
from cqrs_ddd_advanced_core.workers.loop import WorkerLoop, WorkerState
from cqrs_ddd_advanced_core.workers.status import WorkerStatus, read_status
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage, WorkerStorageProvider
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.wakeup import Wakeup

logger = logging.getLogger(__name__)

ProjectionState = WorkerState
"""Where a projection's loop is: not started, applying, waiting for the lease, halted, stopped."""

ProjectionStatus = WorkerStatus
"""How far a projection is: checkpoint, head, lag, lease and dead letters."""

__all__ = [
    "ErrorPolicy",
    "ProjectionState",
    "ProjectionStatus",
    "ProjectionWorker",
    "ReplayResult",
]


class ProjectionWorker:
    """Applies every registered projection from its checkpoint, in the background.

    ``storage`` is where the projections keep their leases, checkpoints and
    dead letters; without one, the event store's (``worker_storage()``, which
    the SQL and in-memory event stores offer). ``worker_id`` names this worker
    in leases (default: a random id).

    Several workers (processes, hosts) may run the same projections: each
    projection is applied by the one holding its lease, renewed by every batch
    and every idle poll; a worker that dies (or stalls) past ``lease_ttl``
    seconds is replaced by a standby, and its late writes are refused by the
    fence.
    """

    def __init__(
        self,
        projector_registry: ProjectorRegistry,
        event_store: EventStore,
        batch_size: int = 100,
        *,
        storage: WorkerStorage | None = None,
        upcaster_registry: UpcasterRegistry | None = None,
        poll_interval: float = 1.0,
        lease_ttl: float = 15.0,
        max_attempts: int = 3,
        retry_backoff: float = 0.05,
        max_backoff: float = 5.0,
        on_error: ErrorPolicy = "skip",
        worker_id: str | None = None,
    ) -> None:
        _check_options(batch_size, max_attempts, on_error)
        self.projector_registry = projector_registry
        self.event_store = event_store
        self.storage = storage if storage is not None else _storage_beside(event_store)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._decoder = EventDecoder(projector_registry.event_registry, upcaster_registry)
        settings = ProjectionSettings(
            batch_size=batch_size,
            lease_ttl=lease_ttl,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            on_error=on_error,
        )
        self._nudge = Wakeup()
        self._loops: dict[str, WorkerLoop] = {}
        for entry in projector_registry:
            job = ProjectionJob(entry, event_store, self.storage, self._decoder, settings)
            self._loops[entry.name] = WorkerLoop(
                job,
                self.storage.leases,
                owner=self.worker_id,
                nudge=self._nudge,
                lease_ttl=lease_ttl,
                poll_interval=poll_interval,
                retry_backoff=retry_backoff,
                max_backoff=max_backoff,
                logger=logger,
            )
        self._stopping = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    @property
    def decoder(self) -> EventDecoder:
        """How the projections read stored events (upcast, then built through the registry)."""
        return self._decoder

    @decoder.setter
    def decoder(self, decoder: EventDecoder) -> None:
        self._decoder = decoder
        for loop in self._loops.values():
            _job(loop).decoder = decoder

    # -- lifecycle -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._pump is not None

    async def start(self) -> None:
        """Start one background loop per projection, and the wake-up listener."""
        if self._pump is not None:
            return
        self._stopping = asyncio.Event()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pump = asyncio.create_task(self._pump_wakeups(ready), name="projection-wakeups")
        await ready
        for loop in self._loops.values():
            if loop.state != "halted":
                loop.state = "idle"
            self._launch(loop)

    async def stop(self, *, grace: float = 30.0) -> None:
        """Stop every loop after the batch in hand (cancelled, so rolled back, after ``grace`` s).

        Leases are released, so a standby takes over at once.
        """
        if self._pump is None:
            return
        self._stopping.set()
        self._nudge.notify()
        tasks = [loop.task for loop in self._loops.values() if loop.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._pump.cancel()
        await asyncio.gather(self._pump, return_exceptions=True)
        self._pump = None
        for loop in self._loops.values():
            loop.task = None
            await loop.give_up_lease()
            if loop.state != "halted":
                loop.state = "stopped"

    async def wait_until_caught_up(self, *, within: float = 30.0) -> None:
        """Wait until every running projection has reached the head seen when called.

        Raises ``TimeoutError`` after ``within`` seconds; projections that are
        halted or held by another worker are not waited for.
        """
        head = await self.event_store.current_position()
        deadline = time.monotonic() + within
        while True:
            behind = [
                loop.name
                for loop in self._loops.values()
                if loop.state in ("running", "idle") and _job(loop).position < head
            ]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"projections {', '.join(behind)} did not reach {head}")
            await asyncio.sleep(0.01)

    # -- operations ----------------------------------------------------------------

    async def catch_up(self, name: str | None = None) -> list[ProjectionStatus]:
        """Apply projections up to the current head in this task (no background loop).

        Takes each projection's lease for the run and gives it back after;
        a projection whose lease another worker holds is left alone.
        """
        for loop in self._selected(name):
            await loop.drain()
        return await self.status(name)

    async def rebuild(self, name: str, *, within: float = 300.0) -> ProjectionStatus:
        """Empty the projection's read model and apply every event again from position 0.

        The reset (the projector's ``reset``, checkpoint 0, dead letters gone)
        is one transaction; a worker applying the projection loses its lease
        with it and starts again from 0 (when another worker process takes the
        projection over, it does the replay). The rebuild stops at the first
        event it cannot apply and raises :class:`ProjectionRebuildError`
        naming it; the projection is then halted at that event (see :meth:`resume`).
        """
        loop = self._loop(name)
        job = _job(loop)
        await self.storage.reset(name, job.entry.projector.reset)
        job.forget_failures()
        # done once a lease taken after the reset (a newer epoch) reaches the head
        job.rebuild_epoch = (await self.storage.checkpoints.record(name)).epoch
        job.rebuild_target = await self.event_store.current_position()
        loop.lease = None  # the reset ended it
        if loop.task is None:
            await loop.drain()
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            job.rebuild_waiters.append(waiter)
            self._nudge.notify()  # the loop takes a new lease at once
            async with asyncio.timeout(within):
                await waiter
        return (await self.status(name))[0]

    async def resume(self, name: str) -> None:
        """Let a halted projection go on: its failing event is tried again first."""
        loop = self._loop(name)
        await self.storage.resume(name)
        job = _job(loop)
        job.attempts.clear()
        job.errors.clear()
        if loop.state == "halted":
            loop.state = "idle"
            if self.running:
                self._launch(loop)

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """Return the projection's dead letters, in position order."""
        self._loop(name)
        return await self.storage.letters.dead_letters(name)

    async def replay_dead_letters(self, name: str) -> ReplayResult:
        """Apply the projection's dead letters again, in position order.

        Each one that applies is deleted in the same transaction; one that
        fails again stays, with its attempts and error updated. The checkpoint
        does not move.
        """
        return await replay_dead_letters(self._loop(name), self.storage, self.lease_ttl)

    async def status(self, name: str | None = None) -> list[ProjectionStatus]:
        """Return each projection's checkpoint, head, lag, lease and dead-letter count."""
        return [
            await read_status(self.storage, self.event_store, loop.name, state=loop.state)
            for loop in self._selected(name)
        ]

    # -- internals -----------------------------------------------------------------

    def _launch(self, loop: WorkerLoop) -> None:
        loop.task = asyncio.create_task(loop.run(self._stopping), name=f"projection-{loop.name}")

    async def _pump_wakeups(self, ready: asyncio.Future[None]) -> None:
        while True:
            try:
                async with self.storage.wakeups.listening() as wakeup:
                    if not ready.done():
                        ready.set_result(None)
                    listener = wakeup.listener()
                    while True:
                        await listener.wait(self.poll_interval)
                        self._nudge.notify()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the loops poll meanwhile
                if not ready.done():
                    ready.set_exception(error)
                    return
                logger.warning("projection wake-ups failed (%r); listening again", error)
                await asyncio.sleep(self.poll_interval)

    def _loop(self, name: str) -> WorkerLoop:
        try:
            return self._loops[name]
        except KeyError:
            raise KeyError(f"no projection named {name!r}") from None

    def _selected(self, name: str | None) -> Iterable[WorkerLoop]:
        return list(self._loops.values()) if name is None else [self._loop(name)]


def _job(loop: WorkerLoop) -> ProjectionJob:
    job = loop.job
    assert isinstance(job, ProjectionJob)  # noqa: S101 - the worker only builds these
    return job


def _storage_beside(event_store: EventStore) -> WorkerStorage:
    if not isinstance(event_store, WorkerStorageProvider):
        raise TypeError(
            f"{type(event_store).__name__} keeps no worker state: pass storage= "
            "(e.g. SQLAlchemyWorkerStorage(engine) or InMemoryWorkerStorage())"
        )
    return event_store.worker_storage()


def _check_options(batch_size: int, max_attempts: int, on_error: str) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if on_error not in ("skip", "halt"):
        raise ValueError(f"on_error must be 'skip' or 'halt', got {on_error!r}")

"""``ProjectionWorker``: keeps projections up to date from the global event log.

For each registered projector the worker runs one loop:

1. take the projection's lease (or wait as a standby while another worker has it);
2. read the next batch of events after the checkpoint, in global order;
3. decode the ones the projector handles (upcasting on the way) and apply them
   inside one fenced transaction that also stores the new checkpoint;
4. when there is nothing to read, wait for a wake-up (``LISTEN/NOTIFY`` on
   PostgreSQL, an in-process signal elsewhere) or the poll interval.

A batch is first applied in one go. When a handler raises, the transaction
rolls back and the batch is applied again event by event, each in a
savepoint: the failing event is retried with backoff up to ``max_attempts``
times, then recorded as a dead letter (and skipped, or the projection halted,
per ``on_error``); events that cannot be decoded (unknown type, malformed
payload, failing upcaster) are recorded at once, since retrying cannot help.
The whole-batch try counts as an attempt of the event whose handler raised,
unless what failed in that handler was the sending of read-model writes held
back from earlier events (a read sends them first): then no event is blamed,
and the event-by-event pass finds the one whose write fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar

from cqrs_ddd_advanced_core.domain.exceptions import (
    LeaseLostError,
    ProjectionHaltedError,
    ProjectionRebuildError,
)
from cqrs_ddd_advanced_core.projections.projector import ProjectionContext, ProjectionHandler
from cqrs_ddd_advanced_core.projections.registry import ProjectorRegistry, RegisteredProjector
from cqrs_ddd_advanced_core.projections.storage import (
    ChangeSignal,
    DeadLetter,
    Lease,
    ProjectionBatch,
    ProjectionStorage,
    ProjectionStorageProvider,
)
from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_advanced_core.upcasting.registry import UpcasterRegistry
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import CqrsDddError
from cqrs_ddd_core.failpoints import async_failpoint
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent

logger = logging.getLogger(__name__)

ErrorPolicy = Literal["skip", "halt"]
"""What a projection does with an event that keeps failing: record it and go on, or stop."""

ProjectionState = Literal["idle", "running", "standby", "halted", "stopped"]
"""Where a projection's loop is: not started, applying, waiting for the lease, halted, stopped."""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """How far a projection is: checkpoint, head, lag, lease and dead letters."""

    name: str
    state: ProjectionState
    checkpoint: int
    head_position: int
    lag_events: int
    lag_seconds: float
    owner: str | None
    epoch: int
    dead_letters: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying a projection's dead letters did."""

    applied: list[int]
    failed: list[DeadLetter]


@dataclass(slots=True)
class _Step:
    stored: StoredEvent
    handler: ProjectionHandler | None
    event: DomainEvent | None = None
    error: BaseException | None = None


@dataclass(eq=False, slots=True)
class _Runner:
    entry: RegisteredProjector
    lease: Lease | None = None
    position: int = 0
    state: ProjectionState = "idle"
    attempts: dict[int, int] = field(default_factory=dict)
    errors: dict[int, BaseException] = field(default_factory=dict)
    first_failed: dict[int, datetime] = field(default_factory=dict)
    careful_until: int = 0
    rebuild_target: int | None = None
    rebuild_epoch: int = 0
    rebuild_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    renewed_at: float = 0.0
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.entry.name


class _HandlerFailedError(Exception):
    """A batch failed; ``step`` is the failing event's, or None when it cannot be told."""

    def __init__(self, step: _Step | None, error: BaseException) -> None:
        super().__init__(str(error))
        self.step = step
        self.error = error


class ProjectionWorker:
    """Applies every registered projection from its checkpoint, in the background.

    ``event_store`` must provide the projections' storage (the SQL and in-memory
    event stores do, through ``projection_storage()``), or pass ``storage``.
    ``worker_id`` names this worker in leases (default: a random id).

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
        storage: ProjectionStorage | None = None,
        upcaster_registry: UpcasterRegistry | None = None,
        poll_interval: float = 1.0,
        lease_ttl: float = 15.0,
        max_attempts: int = 3,
        retry_backoff: float = 0.05,
        max_backoff: float = 5.0,
        on_error: ErrorPolicy = "skip",
        worker_id: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if on_error not in ("skip", "halt"):
            raise ValueError(f"on_error must be 'skip' or 'halt', got {on_error!r}")
        if storage is None:
            if not isinstance(event_store, ProjectionStorageProvider):
                raise TypeError(
                    f"{type(event_store).__name__} keeps no projection state: pass storage="
                )
            storage = event_store.projection_storage()
        self.projector_registry = projector_registry
        self.event_store = event_store
        self.storage = storage
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.on_error: ErrorPolicy = on_error
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self.decoder = EventDecoder(projector_registry.event_registry, upcaster_registry)
        self._runners = {entry.name: _Runner(entry) for entry in projector_registry}
        self._nudge = ChangeSignal()
        self._stopping = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------

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
        for runner in self._runners.values():
            if runner.state != "halted":
                runner.state = "idle"
            runner.task = asyncio.create_task(self._run(runner), name=f"projection-{runner.name}")

    async def stop(self, *, grace: float = 30.0) -> None:
        """Stop every loop after the batch in hand (cancelled, so rolled back, after ``grace`` s).

        Leases are released, so a standby takes over at once.
        """
        if self._pump is None:
            return
        self._stopping.set()
        self._nudge.notify()
        tasks = [runner.task for runner in self._runners.values() if runner.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._pump.cancel()
        await asyncio.gather(self._pump, return_exceptions=True)
        self._pump = None
        for runner in self._runners.values():
            runner.task = None
            await self._give_up_lease(runner)
            if runner.state != "halted":
                runner.state = "stopped"

    async def wait_until_caught_up(self, *, within: float = 30.0) -> None:
        """Wait until every running projection has reached the head seen when called.

        Raises ``TimeoutError`` after ``within`` seconds; projections that are
        halted or held by another worker are not waited for.
        """
        head = await self.event_store.current_position()
        deadline = time.monotonic() + within
        while True:
            behind = [
                runner
                for runner in self._runners.values()
                if runner.state in ("running", "idle") and runner.position < head
            ]
            if not behind:
                return
            if time.monotonic() > deadline:
                names = ", ".join(runner.name for runner in behind)
                raise TimeoutError(f"projections {names} did not reach position {head}")
            await asyncio.sleep(0.01)

    # -- operations ----------------------------------------------------------

    async def catch_up(self, name: str | None = None) -> list[ProjectionStatus]:
        """Apply projections up to the current head in this task (no background loop).

        Takes each projection's lease for the run and gives it back after;
        a projection whose lease another worker holds is left alone.
        """
        for runner in self._selected(name):
            await self._catch_up(runner)
        return await self.status(name)

    async def rebuild(self, name: str, *, within: float = 300.0) -> ProjectionStatus:
        """Empty the projection's read model and apply every event again from position 0.

        The reset (the projector's ``reset``, checkpoint 0, dead letters gone)
        is one transaction; a worker applying the projection loses its lease
        with it and starts again from 0 (when another worker process takes the
        projection over, it does the replay). The rebuild stops at the first event it cannot
        apply and raises :class:`ProjectionRebuildError` naming it; the
        projection is then halted at that event (see :meth:`resume`).
        """
        runner = self._runner(name)
        await self.storage.reset(name, runner.entry.projector.reset)
        runner.attempts.clear()
        runner.errors.clear()
        runner.first_failed.clear()
        # done once a lease taken after the reset (a newer epoch) reaches the head
        runner.rebuild_epoch = (await self.storage.record(name)).epoch
        runner.rebuild_target = await self.event_store.current_position()
        if runner.task is None:
            runner.lease = None
            await self._catch_up(runner)
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            runner.rebuild_waiters.append(waiter)
            runner.lease = None  # the reset ended it; the loop takes a new one at once
            self._nudge.notify()
            async with asyncio.timeout(within):
                await waiter
        return (await self.status(name))[0]

    async def resume(self, name: str) -> None:
        """Let a halted projection go on: its failing event is tried again first."""
        runner = self._runner(name)
        await self.storage.resume(name)
        runner.attempts.clear()
        runner.errors.clear()
        if runner.state == "halted":
            runner.state = "idle"
            if self.running:
                runner.task = asyncio.create_task(self._run(runner), name=f"projection-{name}")

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """Return the projection's dead letters, in position order."""
        self._runner(name)
        return await self.storage.dead_letters(name)

    async def replay_dead_letters(self, name: str) -> ReplayResult:
        """Apply the projection's dead letters again, in position order.

        Each one that applies is deleted in the same transaction; one that
        fails again stays, with its attempts and error updated. The checkpoint
        does not move.
        """
        runner = self._runner(name)
        checkpoint = (await self.storage.record(name)).position
        # letters past the checkpoint (a halted projection) are the worker's to retry
        letters = [
            letter
            for letter in await self.storage.dead_letters(name)
            if letter.position <= checkpoint
        ]
        applied: list[int] = []
        failed: list[DeadLetter] = []
        if not letters:
            return ReplayResult(applied, failed)
        lease, borrowed = runner.lease, runner.lease is not None
        if lease is None:
            # an owner of its own: taking the lease as worker_id would bump the
            # epoch under this worker's loop if it were acquiring at this moment
            owner = f"{self.worker_id}/replay"
            lease = await self.storage.acquire(name, owner, self.lease_ttl)
            if lease is None and runner.task is not None:
                # this worker's own loop may be taking the lease right now: borrow it
                lease = await self._loop_lease(runner)
                borrowed = lease is not None
            if lease is None:
                raise LeaseLostError(name, owner, 0)
        try:
            for letter in letters:
                found = await self.event_store.read_all(after_position=letter.position - 1, limit=1)
                if not found or found[0].position != letter.position:
                    continue
                step = self._plan(runner, found)[0]
                async with self.storage.batch(lease, self.lease_ttl) as batch:
                    error = step.error
                    if error is None:
                        try:
                            async with batch.savepoint():
                                await self._apply(runner, step, batch)
                        except Exception as raised:  # noqa: BLE001 - any handler error is recorded
                            error = raised
                    if error is None:
                        await batch.resolve(letter.position)
                        applied.append(letter.position)
                    else:
                        again = _letter(
                            name,
                            step.stored,
                            error,
                            attempts=letter.attempts + 1,
                            first_seen=letter.first_seen_at,
                        )
                        await batch.quarantine(again)
                        failed.append(again)
        finally:
            if not borrowed:
                await self.storage.release(lease)
        return ReplayResult(applied, failed)

    async def _loop_lease(self, runner: _Runner) -> Lease | None:
        deadline = time.monotonic() + self.lease_ttl
        while runner.lease is None and runner.task is not None and time.monotonic() < deadline:
            if runner.task.done() or runner.state == "standby":
                return None
            await asyncio.sleep(0.01)
        return runner.lease

    async def status(self, name: str | None = None) -> list[ProjectionStatus]:
        """Return each projection's checkpoint, head, lag, lease and dead-letter count."""
        head = await self.event_store.current_position()
        statuses = []
        for runner in self._selected(name):
            record = await self.storage.record(runner.name)
            lag_events = await self.storage.events_after(record.position)
            lag_seconds = 0.0
            if lag_events:
                oldest = await self.event_store.read_all(after_position=record.position, limit=1)
                if oldest:
                    waited = datetime.now(UTC) - oldest[0].occurred_at
                    lag_seconds = max(waited.total_seconds(), 0.0)
            state: ProjectionState = "halted" if record.halted else runner.state
            statuses.append(
                ProjectionStatus(
                    name=runner.name,
                    state=state,
                    checkpoint=record.position,
                    head_position=head,
                    lag_events=lag_events,
                    lag_seconds=lag_seconds,
                    owner=record.owner,
                    epoch=record.epoch,
                    dead_letters=len(await self.storage.dead_letters(runner.name)),
                    last_error=record.last_error,
                )
            )
        return statuses

    # -- the loop ------------------------------------------------------------

    async def _pump_wakeups(self, ready: asyncio.Future[None]) -> None:
        while True:
            try:
                async with self.storage.wakeups() as wakeup:
                    if not ready.done():
                        ready.set_result(None)
                    while True:
                        await wakeup.wait(self.poll_interval)
                        self._nudge.notify()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the loops poll meanwhile
                if not ready.done():
                    ready.set_exception(error)
                    return
                # the loops still poll; listen again after a pause
                logger.warning("projection wake-ups failed (%r); listening again", error)
                await asyncio.sleep(self.poll_interval)

    async def _run(self, runner: _Runner) -> None:
        failures = 0
        while not self._stopping.is_set():
            seen = self._nudge.generation
            try:
                if runner.lease is None and not await self._take_lease(runner):
                    runner.state = "standby"
                    await self._nudge.wait(min(self.lease_ttl / 4, self.poll_interval * 2))
                    continue
                runner.state = "running"
                if await self._step(runner):
                    failures = 0
                    continue
                failures = 0
                await self._keep_lease(runner)
                # wake often enough to renew the lease before it runs out
                await self._nudge.wait(min(self.poll_interval, self.lease_ttl / 3), seen=seen)
            except LeaseLostError as lost:
                logger.info("%s", lost)
                runner.lease = None
            except ProjectionHaltedError as halted:
                logger.error("%s", halted)
                runner.state = "halted"
                await self._give_up_lease(runner)
                return
            except ProjectionRebuildError as failed:
                logger.error("%s", failed)
                await self._halt_rebuild(runner, failed)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                delay = min(self.retry_backoff * 2**failures, self.max_backoff)
                logger.exception("projection %r failed; again in %.2fs", runner.name, delay)
                runner.lease = None
                await self._nudge.wait(delay)

    async def _catch_up(self, runner: _Runner) -> None:
        if not await self._take_lease(runner):
            return
        try:
            runner.state = "running"
            while await self._step(runner):
                pass
        except ProjectionRebuildError as failed:
            await self._halt_rebuild(runner, failed)
            raise
        finally:
            if runner.state == "running":
                runner.state = "idle"
            await self._give_up_lease(runner)

    async def _take_lease(self, runner: _Runner) -> bool:
        lease = await self.storage.acquire(runner.name, self.worker_id, self.lease_ttl)
        if lease is None:
            return False
        runner.lease, runner.position = lease, lease.position
        runner.renewed_at = time.monotonic()
        return True

    async def _keep_lease(self, runner: _Runner) -> None:
        lease = runner.lease
        if lease is None or time.monotonic() - runner.renewed_at < self.lease_ttl / 3:
            return
        if not await self.storage.renew(lease, self.lease_ttl):
            raise LeaseLostError(runner.name, lease.owner, lease.epoch)
        runner.renewed_at = time.monotonic()

    async def _give_up_lease(self, runner: _Runner) -> None:
        lease, runner.lease = runner.lease, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await self.storage.release(lease)

    async def _halt_rebuild(self, runner: _Runner, failed: ProjectionRebuildError) -> None:
        runner.state = "halted"
        lease = runner.lease
        if lease is not None:
            with contextlib.suppress(CqrsDddError):
                async with self.storage.batch(lease, self.lease_ttl) as batch:
                    batch.halt(str(failed))
        self._finish_rebuild(runner, failed)
        await self._give_up_lease(runner)

    def _finish_rebuild(self, runner: _Runner, error: BaseException | None = None) -> None:
        runner.rebuild_target = None
        waiters, runner.rebuild_waiters = runner.rebuild_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def _step(self, runner: _Runner) -> bool:
        """Apply the next batch; return False when there was nothing to read."""
        stored = await self.event_store.read_all(
            after_position=runner.position, limit=self.batch_size
        )
        await async_failpoint("projection.after_fetch")
        if not stored:
            if self._rebuild_done(runner):
                self._finish_rebuild(runner)
            return False
        steps = self._plan(runner, stored)
        if runner.rebuild_target is not None:
            await self._rebuild_step(runner, steps)
        elif stored[0].position <= runner.careful_until or any(s.error for s in steps):
            await self._apply_carefully(runner, steps)
        else:
            try:
                await self._apply_batch(runner, steps)
            except _HandlerFailedError as failed:
                # again event by event, each in a savepoint: the failing one is found
                runner.careful_until = stored[-1].position
                if failed.step is not None:
                    position = failed.step.stored.position
                    self._count_failure(runner, position, failed.error)
                    await self._backoff(runner, position)
        return True

    async def _rebuild_step(self, runner: _Runner, steps: list[_Step]) -> None:
        # fail fast: apply the batch in one go up to the first undecodable event
        bad = next((index for index, step in enumerate(steps) if step.error is not None), None)
        good = steps if bad is None else steps[:bad]
        try:
            if good:
                await self._apply_batch(runner, good)
        except _HandlerFailedError as failed:
            # halt right before the failing event: apply the ones before it, then stop
            await self._rebuild_up_to(runner, good, failed)
        if bad is not None:
            stored, error = steps[bad].stored, steps[bad].error or ValueError("undecodable")
            raise _event_error(ProjectionRebuildError, runner.name, stored, error) from error
        if self._rebuild_done(runner):
            self._finish_rebuild(runner)

    async def _rebuild_up_to(
        self, runner: _Runner, steps: list[_Step], failed: _HandlerFailedError
    ) -> None:
        """Apply ``steps`` up to the one that failed, then raise its rebuild error."""
        if failed.step is not None:
            index = steps.index(failed.step)
            try:
                if index:
                    await self._apply_batch(runner, steps[:index])
            except _HandlerFailedError as again:
                await self._rebuild_up_to(runner, steps[:index], again)
            raise _event_error(
                ProjectionRebuildError, runner.name, failed.step.stored, failed.error
            ) from failed.error
        # a held-back write failed: one event per transaction finds whose it was
        for step in steps:
            try:
                await self._apply_batch(runner, [step])
            except _HandlerFailedError as alone:
                raise _event_error(
                    ProjectionRebuildError, runner.name, step.stored, alone.error
                ) from alone.error
        # every event applied on its own: the failure did not recur

    def _rebuild_done(self, runner: _Runner) -> bool:
        lease, target = runner.lease, runner.rebuild_target
        return (
            target is not None
            and lease is not None
            and lease.epoch > runner.rebuild_epoch
            and runner.position >= target
        )

    def _plan(self, runner: _Runner, stored: Sequence[StoredEvent]) -> list[_Step]:
        handlers = runner.entry.handlers
        steps = []
        for event in stored:
            handler = handlers.get(event.event_type)
            step = _Step(event, handler)
            if handler is not None:
                try:
                    step.event = self.decoder.decode(event)
                except Exception as error:  # noqa: BLE001 - quarantined, never retried
                    step.error = error
            steps.append(step)
        return steps

    async def _apply(self, runner: _Runner, step: _Step, batch: ProjectionBatch) -> None:
        if step.handler is not None:
            context = ProjectionContext(runner.name, batch.connection, step.stored)
            await step.handler(step.event, context)

    async def _apply_batch(self, runner: _Runner, steps: list[_Step]) -> None:
        lease = _held(runner)
        middle = len(steps) // 2
        async with self.storage.batch(lease, self.lease_ttl) as batch:
            for index, step in enumerate(steps):
                if index == middle:
                    await async_failpoint("projection.mid_batch")
                if step.handler is None:
                    continue
                try:
                    await self._apply(runner, step, batch)
                except Exception as error:
                    if batch.broken:  # the connection went away: not the event's fault
                        raise
                    # a held-back write of an earlier event may be what failed here
                    blamed = None if batch.held_writes_failed else step
                    raise _HandlerFailedError(blamed, error) from error
            try:
                await batch.flush()
            except Exception as error:
                if batch.broken:
                    raise
                raise _HandlerFailedError(None, error) from error
            batch.advance(steps[-1].stored.position)
            await async_failpoint("projection.after_apply_before_commit")
        runner.renewed_at = time.monotonic()
        await async_failpoint("projection.after_commit_before_ack")
        runner.position = steps[-1].stored.position
        runner.attempts.clear()
        runner.errors.clear()

    async def _apply_carefully(self, runner: _Runner, steps: list[_Step]) -> None:
        lease = _held(runner)
        retry_at: int | None = None
        halted: ProjectionHaltedError | None = None
        async with self.storage.batch(lease, self.lease_ttl) as batch:
            reached = runner.position
            for step in steps:
                position = step.stored.position
                error = step.error
                if runner.attempts.get(position, 0) >= self.max_attempts:
                    error = runner.errors.get(position, error)  # tried enough already
                elif error is None and step.handler is not None:
                    try:
                        async with batch.savepoint():
                            await self._apply(runner, step, batch)
                    except Exception as raised:
                        if batch.broken:  # the connection went away: not the event's fault
                            raise
                        error = raised
                        attempts = self._count_failure(runner, position, raised)
                        if attempts < self.max_attempts:
                            retry_at = position
                            break
                if error is not None:
                    attempts = runner.attempts.get(position, 1)
                    letter = _letter(
                        runner.name,
                        step.stored,
                        error,
                        attempts=attempts,
                        first_seen=runner.first_failed.get(position),
                    )
                    await batch.quarantine(letter)
                    logger.warning(
                        "projection %r quarantined %s after %d attempt(s): %r",
                        runner.name,
                        _describe(step.stored),
                        attempts,
                        error,
                    )
                    if self.on_error == "halt":
                        halted = _event_error(
                            ProjectionHaltedError, runner.name, step.stored, error
                        )
                        batch.halt(str(halted))
                        break
                runner.attempts.pop(position, None)
                runner.errors.pop(position, None)
                runner.first_failed.pop(position, None)
                reached = position
            batch.advance(reached)
        runner.renewed_at = time.monotonic()
        runner.position = reached
        if halted is not None:
            raise halted
        if retry_at is not None:
            await self._backoff(runner, retry_at)

    def _count_failure(self, runner: _Runner, position: int, error: BaseException) -> int:
        attempts = runner.attempts.get(position, 0) + 1
        runner.attempts[position] = attempts
        runner.errors[position] = error
        runner.first_failed.setdefault(position, datetime.now(UTC))
        return attempts

    async def _backoff(self, runner: _Runner, position: int) -> None:
        attempts = runner.attempts.get(position, 1)
        delay = min(self.retry_backoff * 2 ** (attempts - 1), self.max_backoff)
        if delay > 0:
            await asyncio.sleep(delay)

    def _runner(self, name: str) -> _Runner:
        try:
            return self._runners[name]
        except KeyError:
            raise KeyError(f"no projection named {name!r}") from None

    def _selected(self, name: str | None) -> Iterable[_Runner]:
        return list(self._runners.values()) if name is None else [self._runner(name)]


def _held(runner: _Runner) -> Lease:
    if runner.lease is None:
        raise LeaseLostError(runner.name, "?", 0)
    return runner.lease


def _describe(stored: StoredEvent) -> str:
    return (
        f"{stored.event_type!r} at position {stored.position} "
        f"(stream {stored.stream_id!r}, version {stored.version})"
    )


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _letter(
    projection: str,
    stored: StoredEvent,
    error: BaseException,
    *,
    attempts: int,
    first_seen: datetime | None,
) -> DeadLetter:
    now = datetime.now(UTC)
    return DeadLetter(
        projection=projection,
        position=stored.position,
        stream_id=stored.stream_id,
        version=stored.version,
        event_type=stored.event_type,
        event_id=stored.event_id,
        error_class=f"{type(error).__module__}.{type(error).__qualname__}",
        error_message=str(error)[:2000],
        attempts=attempts,
        first_seen_at=first_seen or now,
        last_seen_at=now,
    )


TEventError = TypeVar("TEventError", ProjectionHaltedError, ProjectionRebuildError)


def _event_error(
    kind: type[TEventError], projection: str, stored: StoredEvent, error: BaseException
) -> TEventError:
    return kind(
        projection,
        position=stored.position,
        stream_id=stored.stream_id,
        version=stored.version,
        event_type=stored.event_type,
        reason=_reason(error),
    )

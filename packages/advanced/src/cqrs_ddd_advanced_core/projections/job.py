"""``ProjectionJob``: one projection as a job of the worker loop.

Each step reads the next batch of events after the checkpoint, decodes the
ones the projector handles (upcasting on the way) and applies them inside one
transaction fenced by the lease, which also stores the new checkpoint.

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
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from cqrs_ddd_advanced_core.domain.exceptions import (
    ProjectionHaltedError,
    ProjectionRebuildError,
    WorkHaltedError,
)
from cqrs_ddd_advanced_core.projections.failures import describe, event_error
from cqrs_ddd_advanced_core.projections.projector import ProjectionContext, ProjectionHandler
from cqrs_ddd_advanced_core.projections.registry import RegisteredProjector
from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_advanced_core.workers.dead_letters import dead_letter_of
from cqrs_ddd_advanced_core.workers.lease import Lease
from cqrs_ddd_advanced_core.workers.progress import WorkTransaction
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.failpoints import async_failpoint
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent

logger = logging.getLogger("cqrs_ddd_advanced_core.projections.worker")

ErrorPolicy = Literal["skip", "halt"]
"""What a projection does with an event that keeps failing: record it and go on, or stop."""


@dataclass(frozen=True, slots=True)
class ProjectionSettings:
    """How a projection worker applies events (see ``ProjectionWorker``)."""

    batch_size: int
    lease_ttl: float
    max_attempts: int
    retry_backoff: float
    max_backoff: float
    on_error: ErrorPolicy


@dataclass(slots=True)
class Step:
    """One event of a batch: its handler, and the decoded event or why it cannot be."""

    stored: StoredEvent
    handler: ProjectionHandler | None
    event: DomainEvent | None = None
    error: BaseException | None = None


class _HandlerFailedError(Exception):
    """A batch failed; ``step`` is the failing event's, or None when it cannot be told."""

    def __init__(self, step: Step | None, error: BaseException) -> None:
        super().__init__(str(error))
        self.step = step
        self.error = error


@dataclass(eq=False)
class ProjectionJob:
    """Applies one projection from its checkpoint; the :class:`WorkerLoop` drives it."""

    entry: RegisteredProjector
    event_store: EventStore
    storage: WorkerStorage
    decoder: EventDecoder
    settings: ProjectionSettings
    position: int = 0
    attempts: dict[int, int] = field(default_factory=dict)
    errors: dict[int, BaseException] = field(default_factory=dict)
    first_failed: dict[int, datetime] = field(default_factory=dict)
    careful_until: int = 0
    rebuild_target: int | None = None
    rebuild_epoch: int = 0
    rebuild_waiters: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The projection's name."""
        return self.entry.name

    @property
    def kind(self) -> str:
        """Always ``"projection"``."""
        return "projection"

    def leased(self, lease: Lease) -> None:
        """Resume from the checkpoint the lease was taken at."""
        self.position = lease.position

    def forget_failures(self) -> None:
        """Start counting attempts afresh (after a reset or a resume)."""
        self.attempts.clear()
        self.errors.clear()
        self.first_failed.clear()

    async def step(self, lease: Lease) -> bool:
        """Apply the next batch; return False when there was nothing to read."""
        stored = await self.event_store.read_all(
            after_position=self.position, limit=self.settings.batch_size
        )
        await async_failpoint("projection.after_fetch")
        if not stored:
            if self.rebuild_done(lease):
                self.finish_rebuild()
            return False
        steps = self.plan(stored)
        if self.rebuild_target is not None:
            await self._rebuild_step(lease, steps)
        elif stored[0].position <= self.careful_until or any(s.error for s in steps):
            await self._apply_carefully(lease, steps)
        else:
            try:
                await self._apply_batch(lease, steps)
            except _HandlerFailedError as failed:
                # again event by event, each in a savepoint: the failing one is found
                self.careful_until = stored[-1].position
                if failed.step is not None:
                    position = failed.step.stored.position
                    self._count_failure(position, failed.error)
                    await self._backoff(position)
        return True

    async def halted(self, error: WorkHaltedError, lease: Lease | None) -> None:
        """Record a failed rebuild's halt (a halted batch recorded its own)."""
        if isinstance(error, ProjectionRebuildError) and lease is not None:
            try:
                async with self.storage.batch(lease, self.settings.lease_ttl) as transaction:
                    transaction.halt(str(error))
            except Exception:
                logger.exception("could not record the halt of projection %r", self.name)
        if isinstance(error, ProjectionRebuildError):
            self.finish_rebuild(error)

    def plan(self, stored: Sequence[StoredEvent]) -> list[Step]:
        """Return the batch's steps: each event with its handler, decoded when handled."""
        handlers = self.entry.handlers
        steps = []
        for event in stored:
            handler = handlers.get(event.event_type)
            step = Step(event, handler)
            if handler is not None:
                try:
                    step.event = self.decoder.decode(event)
                except Exception as error:  # noqa: BLE001 - quarantined, never retried
                    step.error = error
            steps.append(step)
        return steps

    async def apply(self, step: Step, transaction: WorkTransaction) -> None:
        """Run the step's handler (if any) in ``transaction``."""
        if step.handler is not None:
            context = ProjectionContext(self.name, transaction.connection, step.stored)
            await step.handler(step.event, context)

    # -- rebuilds ------------------------------------------------------------------

    def rebuild_done(self, lease: Lease) -> bool:
        """Whether a rebuild under way has reached its target on a lease taken after it."""
        target = self.rebuild_target
        return target is not None and lease.epoch > self.rebuild_epoch and self.position >= target

    def finish_rebuild(self, error: BaseException | None = None) -> None:
        """End the rebuild under way: its waiters get ``error``, or return."""
        self.rebuild_target = None
        waiters, self.rebuild_waiters = self.rebuild_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def _rebuild_step(self, lease: Lease, steps: list[Step]) -> None:
        # fail fast: apply the batch in one go up to the first undecodable event
        bad = next((index for index, step in enumerate(steps) if step.error is not None), None)
        good = steps if bad is None else steps[:bad]
        try:
            if good:
                await self._apply_batch(lease, good)
        except _HandlerFailedError as failed:
            # halt right before the failing event: apply the ones before it, then stop
            await self._rebuild_up_to(lease, good, failed)
        if bad is not None:
            stored, error = steps[bad].stored, steps[bad].error or ValueError("undecodable")
            raise event_error(ProjectionRebuildError, self.name, stored, error) from error
        if self.rebuild_done(lease):
            self.finish_rebuild()

    async def _rebuild_up_to(
        self, lease: Lease, steps: list[Step], failed: _HandlerFailedError
    ) -> None:
        """Apply ``steps`` up to the one that failed, then raise its rebuild error."""
        if failed.step is None:
            await self._find_failing_write(lease, steps)
            return  # every event applied on its own: the failure did not recur
        index = steps.index(failed.step)
        try:
            if index:
                await self._apply_batch(lease, steps[:index])
        except _HandlerFailedError as again:
            await self._rebuild_up_to(lease, steps[:index], again)
        raise event_error(
            ProjectionRebuildError, self.name, failed.step.stored, failed.error
        ) from failed.error

    async def _find_failing_write(self, lease: Lease, steps: list[Step]) -> None:
        # a held-back write failed: one event per transaction finds whose it was
        for step in steps:
            try:
                await self._apply_batch(lease, [step])
            except _HandlerFailedError as alone:
                raise event_error(
                    ProjectionRebuildError, self.name, step.stored, alone.error
                ) from alone.error

    # -- applying --------------------------------------------------------------------

    async def _apply_batch(self, lease: Lease, steps: list[Step]) -> None:
        middle = len(steps) // 2
        ttl = self.settings.lease_ttl
        async with self.storage.batch(lease, ttl) as transaction:
            for index, step in enumerate(steps):
                if index == middle:
                    await async_failpoint("projection.mid_batch")
                await self._apply_in_batch(step, transaction)
            try:
                await transaction.flush()
            except Exception as error:
                if transaction.broken:
                    raise
                raise _HandlerFailedError(None, error) from error
            transaction.advance(steps[-1].stored.position)
            await async_failpoint("projection.after_apply_before_commit")
        await async_failpoint("projection.after_commit_before_ack")
        self.position = steps[-1].stored.position
        self.attempts.clear()
        self.errors.clear()

    async def _apply_in_batch(self, step: Step, transaction: WorkTransaction) -> None:
        if step.handler is None:
            return
        try:
            await self.apply(step, transaction)
        except Exception as error:
            if transaction.broken:  # the connection went away: not the event's fault
                raise
            # a held-back write of an earlier event may be what failed here
            blamed = None if transaction.held_writes_failed else step
            raise _HandlerFailedError(blamed, error) from error

    async def _apply_carefully(self, lease: Lease, steps: list[Step]) -> None:
        retry_at: int | None = None
        halted: ProjectionHaltedError | None = None
        ttl = self.settings.lease_ttl
        async with self.storage.batch(lease, ttl) as transaction:
            reached = self.position
            for step in steps:
                outcome = await self._try_carefully(step, transaction)
                if outcome == "retry":
                    retry_at = step.stored.position
                    break
                if isinstance(outcome, ProjectionHaltedError):
                    halted = outcome
                    break
                reached = step.stored.position
            transaction.advance(reached)
        self.position = reached
        if halted is not None:
            raise halted
        if retry_at is not None:
            await self._backoff(retry_at)

    async def _try_carefully(
        self, step: Step, transaction: WorkTransaction
    ) -> Literal["done", "retry"] | ProjectionHaltedError:
        """Apply one event in a savepoint; quarantine it when it has failed enough."""
        position = step.stored.position
        error = step.error
        if self.attempts.get(position, 0) >= self.settings.max_attempts:
            error = self.errors.get(position, error)  # tried enough already
        elif error is None and step.handler is not None:
            error = await self._attempt(step, transaction)
            if error is not None and self.attempts[position] < self.settings.max_attempts:
                return "retry"
        if error is not None:
            halted = await self._quarantine(step, error, transaction)
            if halted is not None:
                return halted
        self.attempts.pop(position, None)
        self.errors.pop(position, None)
        self.first_failed.pop(position, None)
        return "done"

    async def _attempt(self, step: Step, transaction: WorkTransaction) -> BaseException | None:
        try:
            async with transaction.savepoint():
                await self.apply(step, transaction)
        except Exception as raised:
            if transaction.broken:  # the connection went away: not the event's fault
                raise
            self._count_failure(step.stored.position, raised)
            return raised
        return None

    async def _quarantine(
        self, step: Step, error: BaseException, transaction: WorkTransaction
    ) -> ProjectionHaltedError | None:
        position = step.stored.position
        attempts = self.attempts.get(position, 1)
        letter = dead_letter_of(
            self.name,
            step.stored,
            error,
            attempts=attempts,
            first_seen=self.first_failed.get(position),
        )
        await self.storage.letters.quarantine(transaction, letter)
        logger.warning(
            "projection %r quarantined %s after %d attempt(s): %r",
            self.name,
            describe(step.stored),
            attempts,
            error,
        )
        if self.settings.on_error != "halt":
            return None
        halted = event_error(ProjectionHaltedError, self.name, step.stored, error)
        transaction.halt(str(halted))
        return halted

    def _count_failure(self, position: int, error: BaseException) -> int:
        attempts = self.attempts.get(position, 0) + 1
        self.attempts[position] = attempts
        self.errors[position] = error
        self.first_failed.setdefault(position, datetime.now(UTC))
        return attempts

    async def _backoff(self, position: int) -> None:
        attempts = self.attempts.get(position, 1)
        delay = min(self.settings.retry_backoff * 2 ** (attempts - 1), self.settings.max_backoff)
        if delay > 0:
            await asyncio.sleep(delay)

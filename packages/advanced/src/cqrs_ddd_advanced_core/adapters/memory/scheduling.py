"""``InMemoryCommandScheduler``: scheduled commands in a dict, for fast tests.

It behaves as the SQL scheduler does (both run ``CommandSchedulerContract``):
claims under a lease and fencing token, completions fenced by that token, due
time judged by its own clock (``clock``, wall-clock Unix seconds by default;
tests pass a fake one). Inside a command whose unit of work is an
``InMemoryUnitOfWork``, schedules, cancellations and completions are staged
and apply when the command commits; inside a command with another kind of
unit of work they are refused with ``UnitOfWorkError`` (they could not roll
back with it), as the other in-memory stores refuse it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cqrs_ddd_advanced_core.domain.exceptions import (
    ScheduleLeaseLostError,
    ScheduleNotCancellableError,
    ScheduleNotFoundError,
    ScheduleNotRetryableError,
    ScheduleNotRunnableError,
)
from cqrs_ddd_advanced_core.scheduling.ports import (
    ClaimedSchedule,
    FiringPlan,
    NewSchedule,
    RecurringSchedule,
    ScheduleState,
    ScheduleStatus,
    from_epoch,
    state_of,
)
from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import current_scope_or_none
from cqrs_ddd_core.exceptions import UnitOfWorkError
from cqrs_ddd_core.wakeup import Wakeup


@dataclass(slots=True)
class _Row:
    schedule_id: UUID
    command_type: str
    payload: dict[str, Any]
    due_at: float
    available_at: float
    created_at: float
    recurrence: str | None
    status: ScheduleStatus = "pending"
    attempts: int = 0
    lease_token: int = 0
    owner: str | None = None
    last_error: str | None = None
    error_class: str | None = None
    finished_at: float | None = None


logger = logging.getLogger(__name__)


class InMemoryCommandScheduler:
    """Scheduled commands in memory; ``clock`` returns Unix seconds (``time.time`` by default)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, wakeup: Wakeup | None = None
    ) -> None:
        self.clock = clock
        self._wakeup = wakeup or Wakeup()
        self._rows: dict[UUID, _Row] = {}
        self._recurring: dict[str, RecurringSchedule] = {}

    @property
    def wakeup(self) -> Wakeup:
        """Notified after a schedule is added or a recurring schedule changes."""
        return self._wakeup

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[Wakeup]:
        """Yield the wake-up (nothing outside this process can schedule here)."""
        yield self._wakeup

    async def add(self, entry: NewSchedule) -> bool:
        """Store ``entry``, with the command when inside one; False when its id exists."""
        if entry.schedule_id in self._rows:
            return False
        now = self.clock()
        due_at = now if entry.due_at is None else entry.due_at
        row = _Row(
            schedule_id=entry.schedule_id,
            command_type=entry.command_type,
            payload=dict(entry.payload),
            due_at=due_at,
            available_at=due_at,
            created_at=now,
            recurrence=entry.recurrence,
        )

        def insert() -> None:
            self._rows.setdefault(row.schedule_id, row)
            self._wakeup.notify()

        _apply_with_command("schedule a command", ("schedule", entry.schedule_id), _nothing, insert)
        return True

    async def cancel(self, schedule_id: UUID) -> None:
        """Cancel a pending schedule (with the command, when inside one)."""
        row = self._row(schedule_id)
        if row.status != "pending":
            raise ScheduleNotCancellableError(schedule_id, row.status)

        def check() -> None:
            if row.status != "pending":
                raise ScheduleNotCancellableError(schedule_id, row.status)

        def apply() -> None:
            row.status, row.finished_at = "cancelled", self.clock()

        _apply_with_command("cancel a schedule", ("cancel", schedule_id), check, apply)

    async def state(self, schedule_id: UUID) -> ScheduleState | None:
        """Return the schedule's state, or None."""
        row = self._rows.get(schedule_id)
        return None if row is None else state_of(row)

    async def claim(self, owner: str, limit: int, lease_ttl: float) -> list[ClaimedSchedule]:
        """Claim up to ``limit`` due schedules (pending, or running with an expired lease)."""
        now = self.clock()
        due = sorted(
            (
                row
                for row in self._rows.values()
                if row.status in ("pending", "running") and row.available_at <= now
            ),
            key=lambda row: (row.available_at, row.due_at),
        )[:limit]
        claims = []
        for row in due:
            row.status, row.owner = "running", owner
            row.attempts += 1
            row.lease_token += 1
            row.available_at = now + lease_ttl
            claims.append(
                ClaimedSchedule(
                    row.schedule_id,
                    row.command_type,
                    dict(row.payload),
                    row.attempts,
                    row.lease_token,
                    from_epoch(row.due_at),
                )
            )
        return claims

    async def extend(self, claims: Sequence[ClaimedSchedule], lease_ttl: float) -> set[UUID]:
        """Extend the leases still held by ``claims``."""
        kept = set()
        expires = self.clock() + lease_ttl
        for claim in claims:
            row = self._rows.get(claim.schedule_id)
            if row is not None and self._holds(row, claim):
                row.available_at = expires
                kept.add(claim.schedule_id)
        return kept

    async def complete_in_command(self, claim: ClaimedSchedule) -> bool:
        """Stage the completion in the command's ``InMemoryUnitOfWork``; False for another kind."""
        scope = current_scope_or_none()
        if scope is None or not isinstance(scope.uow, InMemoryUnitOfWork):
            return False
        row = self._row(claim.schedule_id)

        def check() -> None:
            if not self._holds(row, claim):
                raise ScheduleLeaseLostError(claim.schedule_id, claim.lease_token)

        scope.uow.stage(("done", claim.schedule_id), check=check, apply=lambda: self._done(row))
        return True

    async def complete(self, claim: ClaimedSchedule) -> None:
        """Mark ``claim`` done now, if its lease still holds."""
        row = self._row(claim.schedule_id)
        if not self._holds(row, claim):
            raise ScheduleLeaseLostError(claim.schedule_id, claim.lease_token)
        self._done(row)

    async def fail(
        self, claim: ClaimedSchedule, error_class: str, message: str, *, retry_in: float | None
    ) -> bool:
        """Record a failed run (pending again after ``retry_in``, else failed for good)."""
        row = self._rows.get(claim.schedule_id)
        if row is None or not self._holds(row, claim):
            return False
        now = self.clock()
        row.owner = None
        row.last_error, row.error_class = f"{error_class}: {message}", error_class
        if retry_in is None:
            row.status, row.finished_at = "failed", now
        else:
            row.status, row.available_at = "pending", now + retry_in
            self._wakeup.notify()
        return True

    async def seconds_until_due(self) -> float | None:
        """Return how long until a schedule, expired lease or recurring schedule is due."""
        times = [
            row.available_at for row in self._rows.values() if row.status in ("pending", "running")
        ]
        now = self.clock()
        times.extend(
            now if recurring.next_fire_at is None else recurring.next_fire_at
            for recurring in self._recurring.values()
            if not recurring.paused
        )
        return None if not times else max(min(times) - now, 0.0)

    async def failed(self, *, limit: int = 100) -> list[ScheduleState]:
        """Return the failed schedules, most recent first."""
        rows = [row for row in self._rows.values() if row.status == "failed"]
        rows.sort(key=lambda row: row.finished_at or 0.0, reverse=True)
        return [state_of(row) for row in rows[:limit]]

    async def run_now(self, schedule_id: UUID) -> None:
        """Make a pending or failed schedule due now (a failed one with attempts reset)."""
        row = self._row(schedule_id)
        if row.status not in ("pending", "failed"):
            raise ScheduleNotRunnableError(schedule_id, row.status)
        if row.status == "failed":
            row.status, row.attempts, row.finished_at = "pending", 0, None
        row.due_at = row.available_at = self.clock()
        self._wakeup.notify()

    async def retry(self, schedule_id: UUID) -> None:
        """Make a failed schedule pending again, due now, attempts reset."""
        row = self._row(schedule_id)
        if row.status != "failed":
            raise ScheduleNotRetryableError(schedule_id, row.status)
        row.status, row.attempts, row.finished_at = "pending", 0, None
        row.available_at = self.clock()
        self._wakeup.notify()

    async def put_recurring(self, recurring: RecurringSchedule) -> None:
        """Create or replace a recurring schedule."""
        self._recurring[recurring.name] = recurring
        self._wakeup.notify()

    async def recurring(self, name: str) -> RecurringSchedule | None:
        """Return the recurring schedule ``name``, or None."""
        return self._recurring.get(name)

    async def pause_recurring(self, name: str, *, paused: bool) -> None:
        """Pause or resume ``name``; a resume re-anchors its next occurrence."""
        recurring = self._recurring.get(name)
        if recurring is None:
            raise ScheduleNotFoundError(name)
        if recurring.paused == paused:
            return
        self._recurring[name] = dataclasses.replace(recurring, paused=paused, next_fire_at=None)
        self._wakeup.notify()

    async def remove_recurring(self, name: str) -> None:
        """Delete the recurring schedule ``name``."""
        if self._recurring.pop(name, None) is None:
            raise ScheduleNotFoundError(name)

    async def fire_recurring(self, plan: FiringPlan) -> int:
        """Add the due occurrences of every unpaused recurring schedule."""
        now = self.clock()
        added = 0
        for name, recurring in list(self._recurring.items()):
            if recurring.paused:
                continue
            if recurring.next_fire_at is not None and recurring.next_fire_at > now:
                continue
            try:
                firing = plan(recurring, now)
            except Exception as error:  # noqa: BLE001 - one bad schedule stops no other
                logger.error(
                    "recurring schedule %r paused: its occurrences cannot be computed (%s: %s)",
                    name,
                    type(error).__qualname__,
                    error,
                )
                self._recurring[name] = dataclasses.replace(recurring, paused=True)
                continue
            for occurrence in firing.occurrences:
                added += await self.add(occurrence)
            self._recurring[name] = dataclasses.replace(recurring, next_fire_at=firing.next_fire_at)
        return added

    def _row(self, schedule_id: UUID) -> _Row:
        row = self._rows.get(schedule_id)
        if row is None:
            raise ScheduleNotFoundError(schedule_id)
        return row

    def _holds(self, row: _Row, claim: ClaimedSchedule) -> bool:
        return (
            row.status == "running"
            and row.lease_token == claim.lease_token
            and row.available_at > self.clock()
        )

    def _done(self, row: _Row) -> None:
        row.status, row.finished_at, row.owner = "done", self.clock(), None


def _nothing() -> None:
    return None


def _apply_with_command(
    operation: str, key: object, check: Callable[[], None], apply: Callable[[], None]
) -> None:
    """Stage ``apply`` in the command's ``InMemoryUnitOfWork``; outside a command apply it now."""
    scope = current_scope_or_none()
    if scope is None:
        check()
        apply()
        return
    if not isinstance(scope.uow, InMemoryUnitOfWork):
        raise UnitOfWorkError(
            f"{operation} cannot join the command's {type(scope.uow).__qualname__}: the "
            "in-memory scheduler joins an InMemoryUnitOfWork only"
        )
    scope.uow.stage(key, check=check, apply=apply)

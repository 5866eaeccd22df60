"""The scheduler port: where scheduled commands are kept, claimed and marked done.

A :class:`CommandScheduler` stores each scheduled command as a row: its type
name and fields (through the message type registry), when it is due, its
status and attempts. Workers *claim* due rows: a claim gives the worker a
lease for a while and a fencing token (the row's ``lease_token``, one higher
at each claim). Everything a worker writes about a run afterwards (done,
failed, retried) names that token, so a worker whose lease passed to another
writes nothing. Due time is judged by the store's clock (the database's), never
by a worker's.

Adapters: ``InMemoryCommandScheduler`` (``cqrs_ddd_advanced_core.adapters.memory``)
and ``SQLAlchemyCommandScheduler`` (``cqrs_ddd_persistence_sqlalchemy``). Both run
the contract suite ``CommandSchedulerContract``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from cqrs_ddd_advanced_core.domain.exceptions import ScheduledCommandFailedError
from cqrs_ddd_core.wakeup import Wakeup

ScheduleStatus = Literal["pending", "running", "done", "failed", "cancelled"]
"""Where a scheduled command is: waiting, claimed by a worker, ran, failed for good, cancelled."""

MissedRunPolicy = Literal["skip", "run_once", "run_all"]
"""What a recurring schedule does with occurrences missed while no worker was up."""


def to_epoch(moment: datetime) -> float:
    """Return an aware ``moment`` as Unix seconds."""
    return moment.timestamp()


def from_epoch(seconds: float) -> datetime:
    """Return Unix ``seconds`` as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class NewSchedule:
    """A command to store for later: its id, registered type name, JSON fields and due time.

    ``due_at`` is in Unix seconds; None means "now, by the store's clock".
    ``recurrence`` names the recurring schedule an occurrence belongs to.
    """

    schedule_id: UUID
    command_type: str
    payload: dict[str, Any]
    due_at: float | None
    recurrence: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What a scheduled command is now: status, attempts, last error, times (UTC).

    ``attempts`` counts the runs started; ``last_error`` is ``"ErrorClass: message"``
    of the last failed one (kept after a later success, for the record).
    ``finished_at`` is when it ran, failed for good or was cancelled.
    """

    schedule_id: UUID
    command_type: str
    status: ScheduleStatus
    due_at: datetime
    attempts: int
    last_error: str | None
    error_class: str | None
    created_at: datetime
    finished_at: datetime | None
    recurrence: str | None

    def failure(self) -> ScheduledCommandFailedError | None:
        """Return the typed permanent failure of a failed schedule; None for any other status."""
        if self.status != "failed":
            return None
        message = self.last_error or ""
        prefix = f"{self.error_class}: " if self.error_class else ""
        return ScheduledCommandFailedError(
            self.schedule_id,
            self.command_type,
            self.error_class or "?",
            message.removeprefix(prefix),
            self.attempts,
        )


def state_of(row: Any) -> ScheduleState:
    """Return the state a stored schedule's fields describe (times in Unix seconds).

    ``row`` is anything with the fields of :class:`ScheduleState` as
    attributes: an adapter's row.
    """
    return ScheduleState(
        schedule_id=row.schedule_id,
        command_type=row.command_type,
        status=row.status,
        due_at=from_epoch(row.due_at),
        attempts=row.attempts,
        last_error=row.last_error,
        error_class=row.error_class,
        created_at=from_epoch(row.created_at),
        finished_at=None if row.finished_at is None else from_epoch(row.finished_at),
        recurrence=row.recurrence,
    )


@dataclass(frozen=True, slots=True)
class ClaimedSchedule:
    """A due command a worker claimed: what to run, and the fencing token of this run.

    ``attempts`` includes this run; ``due_at`` is the original due time (UTC).
    """

    schedule_id: UUID
    command_type: str
    payload: Any
    attempts: int
    lease_token: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class RecurringSchedule:
    """A command run again and again: on a cron expression or at a fixed interval.

    ``cron`` is read in ``timezone`` (an IANA name), so "0 9 * * *" is 09:00
    local time on both sides of a daylight-saving change; ``every`` is a
    fixed number of seconds. ``next_fire_at`` (Unix seconds) is the next
    occurrence not yet turned into a scheduled command; None until a worker
    anchors it at the store's clock (after creation without ``start_at``, and
    after a resume). ``missed`` says what to do with occurrences older than
    ``grace`` seconds when a worker finally gets to them.
    """

    name: str
    command_type: str
    payload: dict[str, Any]
    cron: str | None
    every: float | None
    timezone: str
    missed: MissedRunPolicy
    grace: float
    paused: bool
    next_fire_at: float | None


@dataclass(frozen=True, slots=True)
class Firing:
    """What a recurring schedule's due occurrences become: commands to add, the next fire time."""

    occurrences: Sequence[NewSchedule]
    next_fire_at: float


FiringPlan = Callable[[RecurringSchedule, float], Firing]
"""Given a recurring schedule that is due and the store's clock, say what to fire."""


class CommandScheduler(Protocol):
    """Keeps scheduled commands; hands due ones to workers under a lease and fencing token.

    Writes made inside a command (:meth:`add`, :meth:`cancel`) join the
    command's unit of work when the store can, and commit or roll back with
    it; outside a command each commits on its own. After a commit, the store
    notifies :attr:`wakeup`.
    """

    @property
    def wakeup(self) -> Wakeup:
        """The wake-up notified after a schedule is added or a recurring one changes."""
        ...

    def listening(self) -> AbstractAsyncContextManager[Wakeup]:
        """Yield :attr:`wakeup`, notified by other processes' schedules too while the block runs."""
        ...

    async def add(self, entry: NewSchedule) -> bool:
        """Store ``entry``; False (nothing changed) when a schedule with its id exists."""
        ...

    async def cancel(self, schedule_id: UUID) -> None:
        """Cancel a pending schedule.

        Raises ``ScheduleNotFoundError`` or ``ScheduleNotCancellableError``.
        """
        ...

    async def state(self, schedule_id: UUID) -> ScheduleState | None:
        """Return the schedule's state, or None when there is none with this id."""
        ...

    async def claim(self, owner: str, limit: int, lease_ttl: float) -> list[ClaimedSchedule]:
        """Claim up to ``limit`` due schedules for ``owner``, earliest due first.

        Due: pending with its due time reached, or running with its lease
        expired (its worker died or stalled). Each claim raises the row's
        fencing token and leases it for ``lease_ttl`` seconds of the store's
        clock. No row is claimed by two workers at once.
        """
        ...

    async def extend(self, claims: Sequence[ClaimedSchedule], lease_ttl: float) -> set[UUID]:
        """Extend the leases of ``claims`` still held; return their ids."""
        ...

    async def complete_in_command(self, claim: ClaimedSchedule) -> bool:
        """Mark ``claim`` done inside the running command's unit of work, when the store can.

        True: the completion commits with the command, or neither does
        (raises ``ScheduleLeaseLostError`` when the lease is no longer this
        run's). False: the command's unit of work is not one this store can
        join; call :meth:`complete` after the command committed.
        """
        ...

    async def complete(self, claim: ClaimedSchedule) -> None:
        """Mark ``claim`` done in a transaction of its own; ``ScheduleLeaseLostError`` if fenced."""
        ...

    async def fail(
        self, claim: ClaimedSchedule, error_class: str, message: str, *, retry_in: float | None
    ) -> bool:
        """Record a failed run: pending again in ``retry_in`` seconds, or failed for good (None).

        False when the lease is no longer this run's (nothing written). A
        retry wakes sleeping workers, as a new schedule does.
        """
        ...

    async def seconds_until_due(self) -> float | None:
        """Return how long until something is due (0 when already), by the store's clock.

        Counts pending schedules, expired leases and recurring schedules;
        None when nothing is waiting at all.
        """
        ...

    async def failed(self, *, limit: int = 100) -> list[ScheduleState]:
        """Return the dead letters: failed schedules, most recent first."""
        ...

    async def run_now(self, schedule_id: UUID) -> None:
        """Make a pending or failed schedule due now (a failed one with its attempts reset).

        Raises ``ScheduleNotFoundError``, or ``ScheduleNotRunnableError``
        naming the status when it is running, done or cancelled.
        """
        ...

    async def retry(self, schedule_id: UUID) -> None:
        """Make a failed schedule pending again, due now, with its attempts reset.

        Raises ``ScheduleNotFoundError``, or ``ScheduleNotRetryableError``
        naming the status when it is not failed.
        """
        ...

    async def put_recurring(self, recurring: RecurringSchedule) -> None:
        """Create or replace the recurring schedule named ``recurring.name``."""
        ...

    async def recurring(self, name: str) -> RecurringSchedule | None:
        """Return the recurring schedule ``name``, or None."""
        ...

    async def pause_recurring(self, name: str, *, paused: bool) -> None:
        """Pause or resume ``name`` (a resume anchors the next occurrence afresh).

        Raises ``ScheduleNotFoundError``.
        """
        ...

    async def remove_recurring(self, name: str) -> None:
        """Delete the recurring schedule ``name`` (its pending occurrences stay)."""
        ...

    async def fire_recurring(self, plan: FiringPlan) -> int:
        """Turn due occurrences of recurring schedules into scheduled commands.

        For each unpaused recurring schedule whose next fire time has come
        (or is not anchored), in one transaction: ``plan(recurring, now)``
        says which occurrences to add (ids already present are left alone)
        and the next fire time, which is stored. Two workers never fire the
        same schedule at once. A schedule ``plan`` raises for (a time zone
        this host does not know, a cron expression it cannot parse) is
        paused, with an error logged, and the others fire. Returns how many
        commands were added.
        """
        ...

"""``SQLAlchemyCommandScheduler``: scheduled commands in ``cqrs_scheduled_commands``.

Every decision about time is made by the database's clock, in the statement
that acts on it: a worker whose clock is wrong never runs a command early.

Claiming (several workers, in any number of processes):

* PostgreSQL: the due rows are picked in a ``MATERIALIZED`` CTE with ``FOR
  UPDATE SKIP LOCKED`` and ``LIMIT``, and updated by joining on it. (Written as
  ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)`` the planner
  may run the sub-select more than once, and a claimer can get more than ``n``
  rows or rows another claimer holds; the materialized CTE runs it once.)
* SQLite: ``UPDATE … WHERE schedule_id IN (SELECT … LIMIT n) RETURNING`` inside
  ``BEGIN IMMEDIATE`` (the unit of work's transaction): one writer at a time.

Each claim adds one to the row's ``lease_token`` (the fencing token) and sets
``available_at`` to the lease's expiry. The completion is ``UPDATE … WHERE
schedule_id = ? AND lease_token = ? AND status = 'running' AND available_at >
now``; run inside the command's unit of work, it commits with the command's
effect or the command rolls back (``ScheduleLeaseLostError``).

Scheduling ``NOTIFY``s ``cqrs_schedules`` on PostgreSQL at commit, and the
worker's wake-up feed ``LISTEN``s there; on a SQLite file the feed watches the
file's ``data_version``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Float,
    Row,
    and_,
    case,
    delete,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

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
    from_epoch,
    state_of,
)
from cqrs_ddd_core.wakeup import Wakeup
from cqrs_ddd_persistence_sqlalchemy.channels import SCHEDULE_CHANNEL
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, Reads, engine_of
from cqrs_ddd_persistence_sqlalchemy.database_clock import database_clock
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.schema import recurring_schedules as recurring_rows
from cqrs_ddd_persistence_sqlalchemy.schema import scheduled_commands as rows
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import (
    SQLAlchemyUnitOfWork,
    ambient_unit_of_work,
    unit_of_work_for_write,
)
from cqrs_ddd_persistence_sqlalchemy.wakeup_feed import SQLAlchemyWakeupFeed

logger = logging.getLogger(__name__)

_CLAIMABLE = ("pending", "running")
_INDEX_ORDER_ONLY = select(
    func.set_config("enable_bitmapscan", "off", True),
    func.set_config("enable_seqscan", "off", True),
    func.set_config("enable_sort", "off", True),
)
"""For the claim's transaction only: walk the claimable index in due order, whatever the stats.

A queue table's statistics are always stale (rows change status all the time; a
new table has none): misled, the planner reads every due row with a bitmap scan
and sorts them, a cost that grows with the backlog (3.5 ms for 8,000 due rows,
against 0.05 ms for the index walk that stops after ``LIMIT`` rows)."""
_STATE_COLUMNS = (
    rows.c.schedule_id,
    rows.c.command_type,
    rows.c.status,
    rows.c.due_at,
    rows.c.attempts,
    rows.c.last_error,
    rows.c.error_class,
    rows.c.created_at,
    rows.c.finished_at,
    rows.c.recurrence,
)


class SQLAlchemyCommandScheduler:
    """Scheduled and recurring commands in the database of ``session`` (SQLite or PostgreSQL).

    ``session`` is an engine, or a session factory or session bound to one.
    Inside a command running in a ``SQLAlchemyUnitOfWork`` on the same
    database, schedules, cancellations and completions join its transaction;
    in a unit of work it cannot join they are refused (``UnitOfWorkError``).
    ``wakeup`` is notified after each schedule commits in this process (a
    fresh one by default).
    """

    def __init__(self, session: EngineSource, *, wakeup: Wakeup | None = None) -> None:
        self.engine = engine_of(session)
        self.is_postgresql = self.engine.dialect.name == "postgresql"
        self._dialect: Any = postgresql if self.is_postgresql else sqlite
        self._wakeup = wakeup or Wakeup()
        self._reads = Reads(self.engine)
        self._feed = SQLAlchemyWakeupFeed(self.engine, self._wakeup, channel=SCHEDULE_CHANNEL)

    @property
    def wakeup(self) -> Wakeup:
        """Notified after a schedule commits in this process."""
        return self._wakeup

    def listening(self) -> Any:
        """Yield the wake-up, fed by ``LISTEN`` (PostgreSQL) or ``data_version`` (SQLite file)."""
        return self._feed.listening()

    # -- the database's clock -------------------------------------------------

    def _now(self) -> ColumnElement[float]:
        """Return the statement's time in Unix seconds (stable in a statement: indexes use it)."""
        return database_clock(self.is_postgresql, stable=True)

    def _clock(self) -> ColumnElement[float]:
        """Return the time right now in Unix seconds (PostgreSQL: not the transaction's start)."""
        return database_clock(self.is_postgresql)

    # -- writing, with the command or on its own ------------------------------

    @asynccontextmanager
    async def _writing(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """Yield the connection to write on: the command's, or a transaction of its own.

        The wake-up is notified once the write commits.
        """
        uow = unit_of_work_for_write(self.engine, operation)
        if uow is not None:
            uow.call_after_commit(self._wakeup.notify)
            with translated_errors(operation):
                yield uow.connection
            return
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as own:
            with translated_errors(operation):
                yield own.connection
            await own.commit()
        self._wakeup.notify()

    async def _notify_others(self, connection: AsyncConnection) -> None:
        if self.is_postgresql:
            await connection.execute(select(func.pg_notify(SCHEDULE_CHANNEL, "")))

    async def add(self, entry: NewSchedule) -> bool:
        """Insert ``entry`` (with the command, inside one); False when its id exists."""
        async with self._writing(f"schedule {entry.command_type}") as connection:
            inserted = await self._insert(connection, [entry])
            if inserted:
                await self._notify_others(connection)
        return inserted > 0

    async def _insert(self, connection: AsyncConnection, entries: Sequence[NewSchedule]) -> int:
        added = 0
        now = self._now()
        for entry in entries:
            due: Any = now if entry.due_at is None else literal(entry.due_at, Float)
            statement = (
                self._dialect.insert(rows)
                .values(
                    schedule_id=entry.schedule_id,
                    command_type=entry.command_type,
                    payload=entry.payload,
                    status="pending",
                    due_at=due,
                    available_at=due,
                    attempts=0,
                    lease_token=0,
                    created_at=now,
                    recurrence=entry.recurrence,
                )
                .on_conflict_do_nothing(index_elements=[rows.c.schedule_id])
            )
            result = await connection.execute(statement)
            added += max(result.rowcount, 0)
        return added

    async def cancel(self, schedule_id: UUID) -> None:
        """Cancel a pending schedule (with the command, inside one)."""
        async with self._writing(f"cancel schedule {schedule_id}") as connection:
            result = await connection.execute(
                update(rows)
                .where(rows.c.schedule_id == schedule_id, rows.c.status == "pending")
                .values(status="cancelled", finished_at=self._now())
            )
            if result.rowcount == 0:
                await _refuse(connection, schedule_id, ScheduleNotCancellableError)

    async def state(self, schedule_id: UUID) -> ScheduleState | None:
        """Return the schedule's state, or None."""

        async def read(connection: AsyncConnection) -> ScheduleState | None:
            found = (
                await connection.execute(
                    select(*_STATE_COLUMNS).where(rows.c.schedule_id == schedule_id)
                )
            ).first()
            return None if found is None else state_of(found)

        return await self._reads.run(f"read schedule {schedule_id}", read)

    async def failed(self, *, limit: int = 100) -> list[ScheduleState]:
        """Return the failed schedules, most recent first."""

        async def read(connection: AsyncConnection) -> list[ScheduleState]:
            result = await connection.execute(
                select(*_STATE_COLUMNS)
                .where(rows.c.status == "failed")
                .order_by(rows.c.finished_at.desc())
                .limit(limit)
            )
            return [state_of(row) for row in result]

        return await self._reads.run("read failed schedules", read)

    # -- workers ----------------------------------------------------------------

    async def claim(self, owner: str, limit: int, lease_ttl: float) -> list[ClaimedSchedule]:
        """Claim up to ``limit`` due schedules for ``owner`` (see the module docs)."""
        now = self._now()
        due = (
            select(rows.c.schedule_id)
            .where(rows.c.status.in_(_CLAIMABLE), rows.c.available_at <= now)
            .order_by(rows.c.available_at)
            .limit(limit)
        )
        claimed = update(rows).values(
            status="running",
            owner=owner,
            attempts=rows.c.attempts + 1,
            lease_token=rows.c.lease_token + 1,
            available_at=now + lease_ttl,
        )
        if self.is_postgresql:
            picked = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
            statement = claimed.where(rows.c.schedule_id == picked.c.schedule_id)
        else:
            statement = claimed.where(rows.c.schedule_id.in_(due.scalar_subquery()))
        statement = statement.returning(
            rows.c.schedule_id,
            rows.c.command_type,
            rows.c.payload,
            rows.c.attempts,
            rows.c.lease_token,
            rows.c.due_at,
            rows.c.available_at,
        )
        if not self.is_postgresql and not await self._any(
            select(rows.c.schedule_id)
            .where(rows.c.status.in_(_CLAIMABLE), rows.c.available_at <= now)
            .limit(1)
        ):
            return []  # SQLite: no write lock taken (and kept from other processes) for nothing
        async with SQLAlchemyUnitOfWork(self.engine, operation="claim due schedules") as uow:
            with translated_errors("claim due schedules"):
                if self.is_postgresql:
                    await uow.connection.execute(_INDEX_ORDER_ONLY)
                result = sorted(
                    (await uow.connection.execute(statement)).all(),
                    key=lambda row: row.available_at,
                )
            await uow.commit()
        return [
            ClaimedSchedule(
                row.schedule_id,
                row.command_type,
                row.payload,
                row.attempts,
                row.lease_token,
                from_epoch(row.due_at),
            )
            for row in result
        ]

    def _held(self, schedule_id: UUID, lease_token: int) -> ColumnElement[bool]:
        return and_(
            rows.c.schedule_id == schedule_id,
            rows.c.lease_token == lease_token,
            rows.c.status == "running",
            rows.c.available_at > self._clock(),
        )

    async def extend(self, claims: Sequence[ClaimedSchedule], lease_ttl: float) -> set[UUID]:
        """Extend the leases still held by ``claims``; return their ids."""
        if not claims:
            return set()
        pairs = [(claim.schedule_id, claim.lease_token) for claim in claims]
        statement = (
            update(rows)
            .where(
                tuple_(rows.c.schedule_id, rows.c.lease_token).in_(pairs),
                rows.c.status == "running",
                rows.c.available_at > self._clock(),
            )
            .values(available_at=self._clock() + lease_ttl)
            .returning(rows.c.schedule_id)
        )
        async with SQLAlchemyUnitOfWork(self.engine, operation="extend schedule leases") as uow:
            with translated_errors("extend schedule leases"):
                kept = set((await uow.connection.execute(statement)).scalars())
            await uow.commit()
        return kept

    def _completion(self, claim: ClaimedSchedule) -> Any:
        return (
            update(rows)
            .where(self._held(claim.schedule_id, claim.lease_token))
            .values(status="done", finished_at=self._clock(), owner=None)
        )

    async def complete_in_command(self, claim: ClaimedSchedule) -> bool:
        """Mark ``claim`` done in the command's unit of work, when it is on this database."""
        uow = ambient_unit_of_work(self.engine)
        if uow is None:
            return False
        with translated_errors(f"complete schedule {claim.schedule_id}"):
            result = await uow.connection.execute(self._completion(claim))
        if result.rowcount != 1:
            raise ScheduleLeaseLostError(claim.schedule_id, claim.lease_token)
        return True

    async def complete(self, claim: ClaimedSchedule) -> None:
        """Mark ``claim`` done in a transaction of its own."""
        operation = f"complete schedule {claim.schedule_id}"
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as uow:
            with translated_errors(operation):
                result = await uow.connection.execute(self._completion(claim))
            if result.rowcount != 1:
                raise ScheduleLeaseLostError(claim.schedule_id, claim.lease_token)
            await uow.commit()

    async def fail(
        self, claim: ClaimedSchedule, error_class: str, message: str, *, retry_in: float | None
    ) -> bool:
        """Record a failed run: pending again after ``retry_in`` seconds, or failed for good."""
        values: dict[str, Any] = {
            "owner": None,
            "last_error": f"{error_class}: {message}"[:4000],
            "error_class": error_class[:255],
        }
        if retry_in is None:
            values.update(status="failed", finished_at=self._clock())
        else:
            values.update(status="pending", available_at=self._clock() + retry_in)
        operation = f"record the failure of schedule {claim.schedule_id}"
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as uow:
            with translated_errors(operation):
                result = await uow.connection.execute(
                    update(rows)
                    .where(self._held(claim.schedule_id, claim.lease_token))
                    .values(**values)
                )
                recorded = bool(result.rowcount == 1)
                if recorded and retry_in is not None:  # sleeping workers wake for the retry
                    await self._notify_others(uow.connection)
            await uow.commit()
        if recorded and retry_in is not None:
            self._wakeup.notify()
        return recorded

    async def seconds_until_due(self) -> float | None:
        """Return how long until something is due, by the database's clock (0 when it is)."""
        now = self._now()
        next_run = (
            select(func.min(rows.c.available_at))
            .where(rows.c.status.in_(_CLAIMABLE))
            .scalar_subquery()
        )
        next_fire = (
            select(func.min(func.coalesce(recurring_rows.c.next_fire_at, now)))
            .where(recurring_rows.c.paused.is_(False))
            .scalar_subquery()
        )

        async def read(connection: AsyncConnection) -> float | None:
            found = (await connection.execute(select(next_run - now, next_fire - now))).one()
            waits = [float(wait) for wait in found if wait is not None]
            return max(min(waits), 0.0) if waits else None

        return await self._reads.run("read the next due time", read)

    async def retry(self, schedule_id: UUID) -> None:
        """Make a failed schedule pending again, due now, attempts reset."""
        async with self._writing(f"re-run schedule {schedule_id}") as connection:
            result = await connection.execute(
                update(rows)
                .where(rows.c.schedule_id == schedule_id, rows.c.status == "failed")
                .values(status="pending", attempts=0, available_at=self._now(), finished_at=None)
            )
            if result.rowcount == 0:
                await _refuse(connection, schedule_id, ScheduleNotRetryableError)
            await self._notify_others(connection)

    async def run_now(self, schedule_id: UUID) -> None:
        """Make a pending or failed schedule due now (a failed one with attempts reset)."""
        runnable = rows.c.status.in_(("pending", "failed"))
        async with self._writing(f"run schedule {schedule_id} now") as connection:
            now = self._now()
            result = await connection.execute(
                update(rows)
                .where(rows.c.schedule_id == schedule_id, runnable)
                .values(
                    status="pending",
                    attempts=case((rows.c.status == "failed", 0), else_=rows.c.attempts),
                    due_at=now,
                    available_at=now,
                    finished_at=None,
                )
            )
            if result.rowcount == 0:
                await _refuse(connection, schedule_id, ScheduleNotRunnableError)
            await self._notify_others(connection)

    async def _any(self, query: Any) -> bool:
        """Return whether ``query`` finds a row (a read: no lock, no write transaction)."""

        async def read(connection: AsyncConnection) -> bool:
            return (await connection.execute(query)).first() is not None

        return await self._reads.run("look for due schedules", read)

    # -- recurring schedules ----------------------------------------------------

    async def put_recurring(self, recurring: RecurringSchedule) -> None:
        """Create or replace the recurring schedule ``recurring.name``."""
        values = {
            "name": recurring.name,
            "command_type": recurring.command_type,
            "payload": recurring.payload,
            "cron": recurring.cron,
            "every": recurring.every,
            "timezone": recurring.timezone,
            "missed": recurring.missed,
            "grace": recurring.grace,
            "paused": recurring.paused,
            "next_fire_at": recurring.next_fire_at,
        }
        statement = self._dialect.insert(recurring_rows).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[recurring_rows.c.name],
            set_={key: value for key, value in values.items() if key != "name"},
        )
        async with self._writing(f"schedule recurring {recurring.name!r}") as connection:
            await connection.execute(statement)
            await self._notify_others(connection)

    async def recurring(self, name: str) -> RecurringSchedule | None:
        """Return the recurring schedule ``name``, or None."""

        async def read(connection: AsyncConnection) -> RecurringSchedule | None:
            found = (
                await connection.execute(
                    select(recurring_rows).where(recurring_rows.c.name == name)
                )
            ).first()
            return None if found is None else _recurring(found)

        return await self._reads.run(f"read recurring schedule {name!r}", read)

    async def pause_recurring(self, name: str, *, paused: bool) -> None:
        """Pause or resume ``name``; a resume re-anchors its next occurrence at the clock."""
        async with self._writing(f"pause recurring {name!r}") as connection:
            result = await connection.execute(
                update(recurring_rows)
                .where(recurring_rows.c.name == name, recurring_rows.c.paused.is_(not paused))
                .values(paused=paused, next_fire_at=None)
            )
            if result.rowcount == 0:
                found = await connection.scalar(
                    select(recurring_rows.c.name).where(recurring_rows.c.name == name)
                )
                if found is None:
                    raise ScheduleNotFoundError(name)
            await self._notify_others(connection)

    async def remove_recurring(self, name: str) -> None:
        """Delete the recurring schedule ``name``."""
        async with self._writing(f"remove recurring {name!r}") as connection:
            result = await connection.execute(
                delete(recurring_rows).where(recurring_rows.c.name == name)
            )
            if result.rowcount == 0:
                raise ScheduleNotFoundError(name)

    async def fire_recurring(self, plan: FiringPlan) -> int:
        """Add the due occurrences of unpaused recurring schedules (see the port)."""
        now = self._now()
        is_due = and_(
            recurring_rows.c.paused.is_(False),
            (recurring_rows.c.next_fire_at.is_(None)) | (recurring_rows.c.next_fire_at <= now),
        )
        due = select(recurring_rows, now.label("now")).where(is_due)
        if self.is_postgresql:
            due = due.with_for_update(skip_locked=True, of=recurring_rows)
        if not await self._any(select(recurring_rows.c.name).where(is_due).limit(1)):
            return 0  # nothing due: no write transaction
        added = 0
        async with SQLAlchemyUnitOfWork(self.engine, operation="fire recurring schedules") as uow:
            with translated_errors("fire recurring schedules"):
                found = (await uow.connection.execute(due.limit(100))).all()
                if not found:
                    return 0
                for row in found:
                    try:
                        firing = plan(_recurring(row), float(row.now))
                    except Exception as error:  # noqa: BLE001 - one bad schedule stops no other
                        logger.error(
                            "recurring schedule %r paused: its occurrences cannot be computed "
                            "(%s: %s); fix it and schedule it again",
                            row.name,
                            type(error).__qualname__,
                            error,
                        )
                        await uow.connection.execute(
                            update(recurring_rows)
                            .where(recurring_rows.c.name == row.name)
                            .values(paused=True)
                        )
                        continue
                    added += await self._insert(uow.connection, firing.occurrences)
                    await uow.connection.execute(
                        update(recurring_rows)
                        .where(recurring_rows.c.name == row.name)
                        .values(next_fire_at=firing.next_fire_at)
                    )
                if added:
                    await self._notify_others(uow.connection)
            await uow.commit()
        if added:
            self._wakeup.notify()
        return added


async def _refuse(
    connection: AsyncConnection,
    schedule_id: UUID,
    refusal: type[
        ScheduleNotCancellableError | ScheduleNotRetryableError | ScheduleNotRunnableError
    ],
) -> None:
    """Raise why a schedule was not in the status an update asked for."""
    status = await connection.scalar(select(rows.c.status).where(rows.c.schedule_id == schedule_id))
    if status is None:
        raise ScheduleNotFoundError(schedule_id)
    raise refusal(schedule_id, status)


def _recurring(row: Row[Any, *tuple[Any, ...]]) -> RecurringSchedule:
    return RecurringSchedule(
        name=row.name,
        command_type=row.command_type,
        payload=dict(row.payload),
        cron=row.cron,
        every=row.every,
        timezone=row.timezone,
        missed=row.missed,
        grace=row.grace,
        paused=row.paused,
        next_fire_at=row.next_fire_at,
    )

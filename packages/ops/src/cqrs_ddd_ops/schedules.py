"""What the command scheduler holds: scheduled commands and recurring schedules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy.database_clock import database_clock
from cqrs_ddd_persistence_sqlalchemy.schema import recurring_schedules, scheduled_commands

SCHEDULE_STATUSES = ("pending", "running", "failed", "done", "cancelled")
"""Every status a scheduled command can be in."""


@dataclass(frozen=True)
class ScheduleRow:
    """One scheduled command, as the tools show it."""

    schedule_id: str
    command_type: str
    status: str
    due_at: datetime
    attempts: int
    last_error: str | None
    recurrence: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class RecurringRow:
    """One recurring schedule: its rule, whether it is paused, its next occurrence."""

    name: str
    command_type: str
    rule: str
    timezone: str
    paused: bool
    next_fire_at: datetime | None


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


async def list_schedules(
    engine: AsyncEngine, *, status: str | None = None, due: bool = False, limit: int = 50
) -> list[ScheduleRow]:
    """Return scheduled commands by due time: of ``status``, or only those due now (``due``)."""
    table = scheduled_commands
    query = select(table).order_by(table.c.due_at, table.c.schedule_id).limit(limit)
    if status is not None:
        query = query.where(table.c.status == status)
    if due:  # claimable now, in the database's clock (as the workers judge it)
        now = database_clock(engine.dialect.name == "postgresql")
        query = query.where(table.c.status == "pending", table.c.available_at <= now)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [_schedule_row(row) for row in rows]


async def list_recurring(engine: AsyncEngine) -> list[RecurringRow]:
    """Return the recurring schedules by name."""
    table = recurring_schedules
    async with engine.connect() as connection:
        rows = (await connection.execute(select(table).order_by(table.c.name))).all()
    return [
        RecurringRow(
            name=row.name,
            command_type=row.command_type,
            rule=row.cron if row.cron is not None else f"every {row.every:g} s",
            timezone=row.timezone,
            paused=row.paused,
            next_fire_at=_utc(row.next_fire_at),
        )
        for row in rows
    ]


async def schedule(engine: AsyncEngine, schedule_id: UUID) -> ScheduleRow | None:
    """Return one scheduled command, or None."""
    table = scheduled_commands
    async with engine.connect() as connection:
        row = (
            await connection.execute(select(table).where(table.c.schedule_id == schedule_id))
        ).first()
    return None if row is None else _schedule_row(row)


def _schedule_row(row: Any) -> ScheduleRow:
    return ScheduleRow(
        schedule_id=str(row.schedule_id),
        command_type=row.command_type,
        status=row.status,
        due_at=datetime.fromtimestamp(row.due_at, UTC),
        attempts=row.attempts,
        last_error=row.last_error,
        recurrence=row.recurrence,
        payload=row.payload,
    )

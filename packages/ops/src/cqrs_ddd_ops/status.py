"""Every worker of a system on one shape, read from its database alone.

The rows of ``cqrs_projections`` give the workers that keep a checkpoint under
a lease (projections, relays, saga feeds); their figures come from the
framework's own :func:`~cqrs_ddd_advanced_core.workers.read_status`, so the
tool reads what the worker itself would report. The command scheduler, the
saga instances and the outbox table have no checkpoint: each is shown by its
queue instead (what waits, what is due, what failed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_advanced_core.outbox import Partition
from cqrs_ddd_advanced_core.workers import DeadLetter, read_status
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStore,
    SQLAlchemyWorkerStorage,
)
from cqrs_ddd_persistence_sqlalchemy.database_clock import database_clock
from cqrs_ddd_persistence_sqlalchemy.schema import outbox, projections, sagas, scheduled_commands

PARTITION = re.compile(r":(\d+)of(\d+)$")
"""The suffix a relay's partition adds to its name (``events:0of2``)."""


def relay_of(name: str) -> str:
    """Return the relay a partition's name belongs to (``events:0of2`` belongs to ``events``)."""
    return PARTITION.sub("", name)


ACTIVE_SAGAS = ("running", "confirming", "compensating")


@dataclass(frozen=True)
class WorkerRow:
    """One worker or queue on the status shape.

    ``position`` is a checkpoint (an event position or outbox id) for the
    workers that keep one, and the queue's depth for the scheduler, the sagas
    and the outbox; ``lag_events`` counts what is behind (events after the
    checkpoint, commands due now, sagas in flight, messages unsent) and
    ``lag_seconds`` how long the oldest of it has waited. ``lease_expires_at``
    is in the database's clock; a lease that expired is a worker that died
    or stalled (another takes over).
    """

    name: str
    kind: str
    state: str
    owner: str | None
    lease_expires_at: datetime | None
    position: int
    head: int | None
    lag_events: int
    lag_seconds: float
    dead_letters: int
    last_error: str | None


async def database_now(engine: AsyncEngine) -> float:
    """Return the database's clock, in Unix seconds."""
    async with engine.connect() as connection:
        return float(await connection.scalar(select(database_clock(_is_pg(engine)))) or 0.0)


async def worker_rows(engine: AsyncEngine) -> list[WorkerRow]:
    """Return every worker of the system, by kind and name, then the queues."""
    now = await database_now(engine)
    async with engine.connect() as connection:
        jobs = (await connection.execute(select(projections).order_by(projections.c.name))).all()
    storage = SQLAlchemyWorkerStorage(engine)
    events = SQLAlchemyEventStore(engine)
    found: list[WorkerRow] = []
    for job in jobs:
        kind = job.kind or "worker"
        if kind == "outbox-relay":
            found.append(await _outbox_relay(engine, storage, job, now))
            continue
        status = await read_status(storage, events, job.name, kind=kind)
        found.append(
            WorkerRow(
                name=status.name,
                kind=status.kind,
                state=_state(status.state, status.owner, status.lease_expires_at, now),
                owner=status.owner,
                lease_expires_at=_utc(status.lease_expires_at),
                position=status.checkpoint,
                head=status.head_position,
                lag_events=status.lag_events,
                lag_seconds=round(status.lag_seconds, 3),
                dead_letters=status.dead_letters,
                last_error=status.last_error,
            )
        )
    found.sort(key=lambda row: (row.kind, row.name))
    async with engine.connect() as connection:
        found.append(await _scheduler(connection, now))
        found.append(await _sagas(connection, now))
    found.append(await _outbox(engine))
    return found


async def dead_letters_of(engine: AsyncEngine, name: str) -> list[DeadLetter]:
    """Return the dead letters of worker ``name`` (a projection, a saga feed...), by position."""
    return await SQLAlchemyWorkerStorage(engine).letters.dead_letters(name)


def _state(state: str, owner: str | None, expires_at: float | None, now: float) -> str:
    if state == "running" and owner is not None and expires_at is not None and expires_at < now:
        return "lease expired"
    return state


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _is_pg(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


async def _outbox_relay(
    engine: AsyncEngine, storage: SQLAlchemyWorkerStorage, job: Any, now: float
) -> WorkerRow:
    """Return an outbox-table relay: checkpoint the newest id it marked, lag the backlog."""
    matched = PARTITION.search(job.name)
    partition = Partition(int(matched[1]), int(matched[2])) if matched else None
    backlog = await SQLAlchemyOutboxStore(engine).backlog(partition=partition)
    oldest = backlog.oldest_created_at
    owner = job.owner
    state = "halted" if job.halted else ("running" if owner is not None else "idle")
    return WorkerRow(
        name=job.name,
        kind="outbox-relay",
        state=_state(state, owner, job.lease_expires_at, now),
        owner=owner,
        lease_expires_at=_utc(job.lease_expires_at),
        position=int(job.position),
        head=max(int(job.position), backlog.newest_id or 0),
        lag_events=backlog.count,
        lag_seconds=_waited(now, None if oldest is None else oldest.timestamp()),
        dead_letters=backlog.set_aside + backlog.held + await storage.letters.count(job.name),
        last_error=job.last_error,
    )


async def _count(connection: AsyncConnection, *conditions: Any, table: Any) -> int:
    query = select(func.count()).select_from(table).where(*conditions)
    return int(await connection.scalar(query) or 0)


async def _scheduler(connection: AsyncConnection, now: float) -> WorkerRow:
    """Return the command scheduler's queue: pending, due now, running, failed."""
    table = scheduled_commands
    pending = await _count(connection, table.c.status == "pending", table=table)
    due = select(func.count(), func.min(table.c.due_at)).where(
        table.c.status == "pending", table.c.available_at <= now
    )
    due_count, oldest_due = (await connection.execute(due)).one()
    running = (
        await connection.execute(
            select(table.c.owner).where(table.c.status == "running").distinct()
        )
    ).scalars()
    owners = sorted(owner for owner in running if owner)
    failed = await _count(connection, table.c.status == "failed", table=table)
    last_error = await connection.scalar(
        select(table.c.last_error)
        .where(table.c.status == "failed")
        .order_by(table.c.finished_at.desc())
        .limit(1)
    )
    return _queue(
        "scheduled commands",
        "scheduler",
        state="due" if due_count else "waiting",
        owner=", ".join(owners) or None,
        depth=pending,
        behind=int(due_count),
        waited=_waited(now, oldest_due),
        dead_letters=failed,
        last_error=last_error,
    )


async def _sagas(connection: AsyncConnection, now: float) -> WorkerRow:
    """Return the sagas: running (the queue), in flight (lag), parked (dead letters)."""
    active = await _count(connection, sagas.c.status.in_(ACTIVE_SAGAS), table=sagas)
    in_flight = select(func.count(), func.min(sagas.c.updated_at)).where(
        sagas.c.in_flight.is_(True), sagas.c.status.in_(ACTIVE_SAGAS)
    )
    flying, oldest = (await connection.execute(in_flight)).one()
    parked = await _count(connection, sagas.c.status == "parked", table=sagas)
    newest_parked = await connection.scalar(
        select(sagas.c.state)
        .where(sagas.c.status == "parked")
        .order_by(sagas.c.updated_at.desc())
        .limit(1)
    )
    reason = newest_parked.get("reason") if isinstance(newest_parked, dict) else None
    return _queue(
        "saga instances",
        "sagas",
        state="in flight" if flying else "waiting",
        depth=active,
        behind=int(flying),
        waited=_waited(now, oldest),
        dead_letters=parked,
        last_error=reason,
    )


async def _outbox(engine: AsyncEngine) -> WorkerRow:
    """Return the outbox table: what may go now (lag), what was set aside or waits behind it."""
    backlog = await SQLAlchemyOutboxStore(engine).backlog()
    aside = outbox.c.failed_at.is_not(None) & outbox.c.published_at.is_(None)
    async with engine.connect() as connection:
        last_error = await connection.scalar(
            select(outbox.c.last_error).where(aside).order_by(outbox.c.failed_at.desc()).limit(1)
        )
    oldest = backlog.oldest_created_at
    return _queue(
        "outbox table",
        "outbox",
        state="sending" if backlog.count else "empty",
        depth=backlog.count,
        behind=backlog.count,
        waited=_waited(
            datetime.now(UTC).timestamp(), None if oldest is None else oldest.timestamp()
        ),
        dead_letters=backlog.set_aside + backlog.held,
        last_error=last_error,
    )


def _waited(now: float, oldest: float | None) -> float:
    """Return how long the oldest item has waited, in seconds (0 without one)."""
    return 0.0 if oldest is None else round(max(now - oldest, 0.0), 3)


def _queue(
    name: str,
    kind: str,
    *,
    state: str,
    depth: int,
    behind: int,
    waited: float,
    dead_letters: int,
    last_error: str | None,
    owner: str | None = None,
) -> WorkerRow:
    """Return a queue (no checkpoint, no lease) on the status shape."""
    return WorkerRow(
        name=name,
        kind=kind,
        state=state,
        owner=owner,
        lease_expires_at=None,
        position=depth,
        head=None,
        lag_events=behind,
        lag_seconds=waited,
        dead_letters=dead_letters,
        last_error=last_error,
    )

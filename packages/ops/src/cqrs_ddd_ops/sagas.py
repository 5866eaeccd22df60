"""What the saga instances hold: their status, steps and history, read as stored.

The documents are read as JSON, without the application's saga classes, so
the tools show any saga, including one whose state no longer reads back into
its class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.workers import DeadLetter
from cqrs_ddd_ops.database import OpsError
from cqrs_ddd_ops.status import dead_letters_of
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemySagaRepository
from cqrs_ddd_persistence_sqlalchemy.schema import projections, sagas

SAGA_STATUSES = ("running", "confirming", "compensating", "completed", "compensated", "parked")
"""Every status a saga instance can be in."""


@dataclass(frozen=True)
class SagaRow:
    """One saga instance: type, key, status, whether it waits on its own commands."""

    saga_id: str
    saga_type: str
    correlation_key: str
    status: str
    in_flight: bool
    version: int
    updated_at: datetime
    awaiting: str | None
    reason: str | None


@dataclass(frozen=True)
class StepRow:
    """One step an instance took: its command and what became of it."""

    step: str
    outcome: str
    command_type: str
    compensation: str | None


@dataclass(frozen=True)
class HistoryRow:
    """One line of an instance's history."""

    at: str
    what: str
    step: str | None


@dataclass(frozen=True)
class SagaDetail:
    """One instance in full: its row, steps, history and the saga's own data."""

    saga: SagaRow
    steps: list[StepRow] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


async def list_sagas(
    engine: AsyncEngine,
    *,
    status: str | None = None,
    saga_type: str | None = None,
    limit: int = 50,
) -> list[SagaRow]:
    """Return saga instances of ``status`` (and ``saga_type``), the most recently changed first."""
    query = select(sagas).order_by(sagas.c.updated_at.desc(), sagas.c.saga_id).limit(limit)
    if status is not None:
        query = query.where(sagas.c.status == status)
    if saga_type is not None:
        query = query.where(sagas.c.saga_type == saga_type)
    async with engine.connect() as connection:
        return [_row(row) for row in await connection.execute(query)]


async def saga_detail(engine: AsyncEngine, saga_id: UUID) -> SagaDetail | None:
    """Return one instance with its steps and history, or None."""
    async with engine.connect() as connection:
        row = (await connection.execute(select(sagas).where(sagas.c.saga_id == saga_id))).first()
    if row is None:
        return None
    document: dict[str, Any] = row.state if isinstance(row.state, dict) else {}
    steps = [
        StepRow(
            step=str(step.get("step")),
            outcome=str(step.get("outcome")),
            command_type=str((step.get("command") or {}).get("command_type")),
            compensation=(step.get("compensation") or {}).get("command_type"),
        )
        for step in document.get("steps", [])
    ]
    history = [
        HistoryRow(at=str(entry.get("at")), what=str(entry.get("what")), step=entry.get("step"))
        for entry in document.get("history", [])
    ]
    return SagaDetail(_row(row), steps, history, dict(document.get("data") or {}))


async def saga_shapes(engine: AsyncEngine, *, sample: int = 200) -> dict[str, list[str]]:
    """Return each saga type's steps in the order its instances take them.

    Read from the newest ``sample`` instances of each type (the tools have no
    saga classes): a step seen in any of them is placed after the steps seen
    before it.
    """
    async with engine.connect() as connection:
        types = (await connection.scalars(select(sagas.c.saga_type).distinct())).all()
        shapes: dict[str, list[str]] = {}
        for saga_type in sorted(types):
            documents = await connection.scalars(
                select(sagas.c.state)
                .where(sagas.c.saga_type == saga_type)
                .order_by(sagas.c.updated_at.desc())
                .limit(sample)
            )
            order: list[str] = []
            for document in documents:
                for step in (document or {}).get("steps", []):
                    name = str(step.get("step"))
                    if name not in order:
                        order.append(name)
            shapes[saga_type] = order
    return shapes


async def retry_saga(engine: AsyncEngine, saga_id: UUID) -> str:
    """Send a parked instance back to the phase it stopped in; return the phase.

    The running system's saga recovery resumes it once it has been unchanged
    for the recovery's interval, as any instance in flight.
    Raises ``SagaRetryError`` when it is unknown, not parked, or has nothing
    to resume.
    """
    return await SQLAlchemySagaRepository(engine).retry(saga_id)


async def feed_dead_letters(engine: AsyncEngine, feed: str | None = None) -> list[DeadLetter]:
    """Return the events saga feeds set aside (of ``feed``, or of every feed), by position.

    Raises ``OpsError`` when ``feed`` names no saga feed.
    """
    async with engine.connect() as connection:
        query = select(projections.c.name).where(projections.c.kind == "saga-feed")
        feeds = sorted((await connection.scalars(query)).all())
    if feed is not None:
        if feed not in feeds:
            raise OpsError(f"no saga feed {feed!r} (known: {', '.join(feeds) or 'none ran yet'})")
        feeds = [feed]
    found = [letter for name in feeds for letter in await dead_letters_of(engine, name)]
    return sorted(found, key=lambda letter: (letter.projection, letter.position))


def _row(row: Any) -> SagaRow:
    document: dict[str, Any] = row.state if isinstance(row.state, dict) else {}
    return SagaRow(
        saga_id=str(row.saga_id),
        saga_type=row.saga_type,
        correlation_key=row.correlation_key,
        status=row.status,
        in_flight=bool(row.in_flight),
        version=int(row.version),
        updated_at=datetime.fromtimestamp(row.updated_at, UTC),
        awaiting=document.get("awaiting"),
        reason=document.get("reason"),
    )

"""What the event log holds: its streams, one stream's events, the events after a position."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.schema import events


@dataclass(frozen=True)
class StreamSummary:
    """One stream: its aggregate type, how many events, its version, its last event."""

    stream_id: str
    aggregate_type: str | None
    events: int
    version: int
    last_position: int
    last_event_type: str
    last_occurred_at: datetime


@dataclass(frozen=True)
class EventRow:
    """One stored event, as the tools show it."""

    position: int
    stream_id: str
    version: int
    event_type: str
    schema_version: int
    occurred_at: datetime
    payload: dict[str, Any]


async def list_streams(
    engine: AsyncEngine, *, prefix: str = "", limit: int = 50
) -> list[StreamSummary]:
    """Return the streams whose id starts with ``prefix``, the most recently written first."""
    last = func.max(events.c.position).label("last_position")
    grouped = (
        select(
            events.c.stream_id,
            func.max(events.c.aggregate_type).label("aggregate_type"),
            func.count().label("events"),
            func.max(events.c.version).label("version"),
            last,
        )
        .where(func.substr(events.c.stream_id, 1, len(prefix)) == prefix)
        .group_by(events.c.stream_id)
        .order_by(last.desc())
        .limit(limit)
        .subquery()
    )
    query = select(grouped, events.c.event_type, events.c.occurred_at).join(
        events, events.c.position == grouped.c.last_position
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query.order_by(grouped.c.last_position.desc()))).all()
    return [
        StreamSummary(
            stream_id=row.stream_id,
            aggregate_type=row.aggregate_type,
            events=row.events,
            version=row.version,
            last_position=row.last_position,
            last_event_type=row.event_type,
            last_occurred_at=row.occurred_at,
        )
        for row in rows
    ]


async def stream_events(engine: AsyncEngine, stream_id: str) -> list[EventRow]:
    """Return the events of ``stream_id`` in version order (empty for an unknown stream)."""
    return [_row(event) for event in await SQLAlchemyEventStore(engine).load_stream(stream_id)]


async def events_after(engine: AsyncEngine, position: int, *, limit: int = 100) -> list[EventRow]:
    """Return up to ``limit`` events after ``position`` in position order.

    Read through the event store's ``read_all``, which never skips an event
    committed after a later one (a plain ``position >`` query would).
    """
    stored = await SQLAlchemyEventStore(engine).read_all(after_position=position, limit=limit)
    return [_row(event) for event in stored]


def _row(event: StoredEvent) -> EventRow:
    return EventRow(
        position=event.position or 0,
        stream_id=event.stream_id,
        version=event.version,
        event_type=event.event_type,
        schema_version=event.schema_version,
        occurred_at=event.occurred_at,
        payload=dict(event.payload),
    )


async def before_last(engine: AsyncEngine, count: int) -> int:
    """Return the position just before the newest ``count`` events (0 for a shorter log)."""
    newest = select(events.c.position).order_by(events.c.position.desc()).limit(count).subquery()
    async with engine.connect() as connection:
        oldest = await connection.scalar(select(func.min(newest.c.position)))
    return max(0, int(oldest or 1) - 1)

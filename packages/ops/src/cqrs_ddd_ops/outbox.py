"""The outbox's health: what waits to be sent, per topic, and what the relays set aside.

The outbox-table relay sets a message aside on its row (``failed_at``): putting
it back in the queue needs the database only. The event-log relay sets an
event aside as a dead letter of its partition: publishing it again needs the
broker, so the running relay does it (``OutboxWorker.replay_dead_letters``,
the web page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.outbox import FailedMessage
from cqrs_ddd_ops.status import dead_letters_of, worker_rows
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyOutboxStore
from cqrs_ddd_persistence_sqlalchemy.schema import outbox


@dataclass(frozen=True)
class TopicRow:
    """One topic of the outbox: messages sent, waiting and set aside, the oldest waiting."""

    topic: str
    published: int
    pending: int
    failed: int
    oldest_pending_at: datetime | None


async def topics(engine: AsyncEngine) -> list[TopicRow]:
    """Return the outbox's messages counted by topic, in topic order."""
    sent = outbox.c.published_at.is_not(None)
    aside = outbox.c.published_at.is_(None) & outbox.c.failed_at.is_not(None)
    waiting = outbox.c.published_at.is_(None) & outbox.c.failed_at.is_(None)
    query = (
        select(
            outbox.c.topic,
            func.count(case((sent, 1))),
            func.count(case((waiting, 1))),
            func.count(case((aside, 1))),
            func.min(case((waiting, outbox.c.created_at)), type_=outbox.c.created_at.type),
        )
        .group_by(outbox.c.topic)
        .order_by(outbox.c.topic)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        TopicRow(
            topic=topic,
            published=int(published),
            pending=int(pending),
            failed=int(failed),
            oldest_pending_at=oldest,
        )
        for topic, published, pending, failed, oldest in rows
    ]


@dataclass(frozen=True)
class OutboxLetter:
    """Something a relay set aside: from the outbox table, or an event of the log.

    ``source`` is ``"outbox table"`` or the event-log relay's partition;
    ``id`` the outbox row's id or the event's position; ``topic`` the row's
    topic (None for an event: the relay's topic function names it); ``key``
    the row's partition key or the event's stream.
    """

    source: str
    id: int
    message_id: str
    message_type: str
    topic: str | None
    key: str | None
    attempts: int
    error: str
    set_aside_at: datetime


OUTBOX_TABLE = "outbox table"


async def dead_letters(engine: AsyncEngine, *, limit: int = 100) -> list[OutboxLetter]:
    """Return what the relays set aside: the outbox table's messages, then the log's events."""
    found = [
        OutboxLetter(
            source=OUTBOX_TABLE,
            id=message.id,
            message_id=str(message.message_id),
            message_type=message.message_type,
            topic=message.topic,
            key=message.partition_key,
            attempts=message.attempts,
            error=message.last_error,
            set_aside_at=message.failed_at,
        )
        for message in await failed_messages(engine, limit=limit)
    ]
    for row in await worker_rows(engine):
        if row.kind != "relay" or not row.dead_letters:
            continue
        found += [
            OutboxLetter(
                source=row.name,
                id=letter.position,
                message_id=str(letter.event_id),
                message_type=letter.event_type,
                topic=None,
                key=letter.stream_id,
                attempts=letter.attempts,
                error=f"{letter.error_class.rpartition('.')[2]}: {letter.error_message}",
                set_aside_at=letter.last_seen_at,
            )
            for letter in await dead_letters_of(engine, row.name)
        ]
    return found[:limit]


async def failed_messages(engine: AsyncEngine, *, limit: int = 100) -> list[FailedMessage]:
    """Return the messages the relays set aside, oldest first."""
    return await SQLAlchemyOutboxStore(engine).failed(limit=limit)


async def replay(engine: AsyncEngine, ids: Sequence[int] | None = None) -> int:
    """Put the messages set aside (all, or ``ids``) back in the queue; return how many."""
    return await SQLAlchemyOutboxStore(engine).retry_failed(ids)

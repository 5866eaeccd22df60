"""The outbox table's health: what waits to be sent, per topic, and what was set aside."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.outbox import FailedMessage
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


async def failed_messages(engine: AsyncEngine, *, limit: int = 100) -> list[FailedMessage]:
    """Return the messages the relays set aside, oldest first."""
    return await SQLAlchemyOutboxStore(engine).failed(limit=limit)


async def replay(engine: AsyncEngine, ids: Sequence[int] | None = None) -> int:
    """Put the messages set aside (all, or ``ids``) back in the queue; return how many."""
    return await SQLAlchemyOutboxStore(engine).retry_failed(ids)

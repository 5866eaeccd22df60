"""Writing outbox rows: the messages a command publishes, committed with the command."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.serialization import encode_event
from cqrs_ddd_persistence_sqlalchemy.schema import outbox


async def write_outbox(
    connection: AsyncConnection, events: Sequence[DomainEvent], *, topic: str
) -> None:
    """Insert one outbox row per event, in the transaction of ``connection``.

    The row's ``message_id`` is the event id, so a relay that publishes it twice
    publishes the same id and consumers can drop the duplicate; the partition
    key is the aggregate id, which keeps one aggregate's messages in order.
    """
    if not events:
        return
    now = datetime.now(UTC)
    await connection.execute(
        insert(outbox),
        [
            {
                "message_id": event.event_id,
                "topic": topic,
                "partition_key": event.aggregate_id,
                "payload": encode_event(event),
                "created_at": now,
                "published_at": None,
                "attempts": 0,
                "last_error": None,
            }
            for event in events
        ],
    )

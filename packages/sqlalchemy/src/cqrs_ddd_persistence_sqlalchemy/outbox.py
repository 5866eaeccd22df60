"""Writing outbox rows: the messages a command would publish, committed with the command.

Nothing publishes them yet: no relay exists (one is coming, in the messaging
package), so ``published_at`` stays empty and the rows are a durable record
of each command's events, written in its transaction.
"""

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

    The row's ``message_id`` is the event id and its partition key the
    aggregate id: chosen so that the coming relay can publish a row twice
    under the same id (consumers drop the duplicate) and keep one aggregate's
    messages in order. No relay reads the rows yet.
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

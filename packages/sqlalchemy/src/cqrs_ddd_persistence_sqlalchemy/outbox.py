"""The outbox: rows a command writes with its state, and the store a relay reads them from.

``write_outbox`` inserts one row per event in the command's transaction;
``SQLAlchemyOutboxStore`` hands a relay (the messaging package's
``OutboxTableRelay``) the rows not yet published, marks the published ones,
sets aside the ones the relay keeps failing on (its dead letters: ``failed``,
``retry_failed``), and deletes published rows past their retention
(``purge_published``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from cqrs_ddd_advanced_core.outbox import (
    FailedMessage,
    OutboxBacklog,
    OutboxMessage,
    Partition,
    partition_hash,
)
from cqrs_ddd_advanced_core.workers.progress import WorkTransaction
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.serialization import encode_event
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, Reads, engine_of
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.schema import outbox
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import SQLAlchemyUnitOfWork


async def write_outbox(
    connection: AsyncConnection, events: Sequence[DomainEvent], *, topic: str
) -> None:
    """Insert one outbox row per event, in the transaction of ``connection``.

    The row's ``message_id`` is the event id and its partition key the
    aggregate id (with its ``partition_hash``): a relay publishing a row twice
    does so under the same id (consumers drop the duplicate), and one
    aggregate's rows go out in order, through one partition.
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
                "partition_hash": partition_hash(event.aggregate_id),
                "payload": encode_event(event),
                "created_at": now,
                "published_at": None,
                "attempts": 0,
                "last_error": None,
                "failed_at": None,
            }
            for event in events
        ],
    )


class SQLAlchemyOutboxStore:
    """The ``cqrs_outbox`` rows of the database of ``session``, for a relay (``OutboxStore``).

    ``pending`` reads the rows whose ``published_at`` is empty, by ``id`` (the
    order they were written in, per aggregate too): never "after the last id
    seen", so a row whose transaction commits after a later id's is not
    skipped. With a ``partition``, only the rows whose stored ``partition_hash``
    it holds. ``mark_published`` sets ``published_at`` (and counts the attempt)
    through the relay's fenced transaction. A row set aside (``failed_at``) is
    not pending until :meth:`retry_failed` puts it back, and neither are the
    later rows of its partition key: they wait behind it, so that an
    aggregate's messages still go out in the order they were written.
    """

    def __init__(self, session: EngineSource) -> None:
        self.engine = engine_of(session)
        self._reads = Reads(self.engine)

    async def pending(
        self, *, limit: int, partition: Partition | None = None, excluding: Sequence[int] = ()
    ) -> list[OutboxMessage]:
        """Return up to ``limit`` unpublished messages (of ``partition``), oldest first.

        ``excluding`` leaves out the rows of those ids: the first ``limit`` plus
        as many ids are read from the pending index, the excluded ones dropped
        in Python, and the rows of the rest read by primary key (a long
        ``NOT IN`` list could make PostgreSQL's planner scan every pending row).
        """
        pending = _unsent() & _of(partition) & ~_behind_one_set_aside()
        columns = (
            outbox.c.id,
            outbox.c.message_id,
            outbox.c.topic,
            outbox.c.partition_key,
            outbox.c.payload,
            outbox.c.created_at,
        )
        left_out = set(excluding)

        async def read(connection: AsyncConnection) -> list[OutboxMessage]:
            query = select(*columns).where(pending).order_by(outbox.c.id).limit(limit)
            if left_out:
                candidates = select(outbox.c.id).where(pending).order_by(outbox.c.id)
                ids = await connection.scalars(candidates.limit(limit + len(left_out)))
                chosen = [row_id for row_id in ids if row_id not in left_out][:limit]
                if not chosen:
                    return []
                query = select(*columns).where(outbox.c.id.in_(chosen)).order_by(outbox.c.id)
            return [
                OutboxMessage(
                    id=row.id,
                    message_id=row.message_id,
                    topic=row.topic,
                    partition_key=row.partition_key,
                    document=row.payload,
                    created_at=row.created_at,
                )
                for row in await connection.execute(query)
            ]

        return await self._reads.run("read the outbox", read)

    async def backlog(self, *, partition: Partition | None = None) -> OutboxBacklog:
        """Count the unpublished rows (of ``partition``): how many, newest id, oldest time.

        The rows set aside, and the rows waiting behind them, are counted apart
        (``set_aside``, ``held``).
        """
        query = (
            select(func.count(), func.max(outbox.c.id), func.min(outbox.c.created_at))
            .where(_unsent() & ~_behind_one_set_aside())
            .where(_of(partition))
        )
        aside = (
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.failed_at.is_not(None), outbox.c.published_at.is_(None))
            .where(_of(partition))
        )
        behind = (
            select(func.count())
            .select_from(outbox)
            .where(_unsent() & _behind_one_set_aside())
            .where(_of(partition))
        )

        async def read(connection: AsyncConnection) -> OutboxBacklog:
            count, newest, oldest = (await connection.execute(query)).one()
            set_aside = int(await connection.scalar(aside) or 0)
            held = int(await connection.scalar(behind) or 0) if set_aside else 0
            return OutboxBacklog(int(count), newest, oldest, set_aside, held)

        return await self._reads.run("count the outbox", read)

    async def purge_published(self, *, older_than: float) -> int:
        """Delete the rows published more than ``older_than`` seconds ago; return how many.

        Unpublished rows are never deleted. Run it from time to time (an
        operator's job or a scheduled command) so the table holds what is
        still to send and a window of what was sent.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        statement = delete(outbox).where(
            outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff
        )
        operation = "purge the outbox"
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as uow:
            with translated_errors(operation):
                deleted = await uow.connection.execute(statement)
            await uow.commit()
        return int(deleted.rowcount or 0)

    async def mark_published(self, transaction: WorkTransaction, ids: Sequence[int]) -> None:
        """Mark ``ids`` published, in the relay's lease-fenced transaction."""
        if not ids:
            return
        connection: AsyncConnection = transaction.connection
        await connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(list(ids)))
            .values(published_at=datetime.now(UTC), attempts=outbox.c.attempts + 1)
        )

    async def record_failure(
        self, transaction: WorkTransaction, message_id: int, error: str, *, max_attempts: int
    ) -> bool:
        """Count a failed attempt at message ``message_id``, in the relay's fenced transaction.

        At ``max_attempts`` the message is set aside (``failed_at``): the relay
        goes on without it. Returns True when it was set aside.
        """
        connection: AsyncConnection = transaction.connection
        attempts = outbox.c.attempts + 1
        row = (
            await connection.execute(
                update(outbox)
                .where(outbox.c.id == message_id, outbox.c.published_at.is_(None))
                .values(
                    attempts=attempts,
                    last_error=error[:2000],
                    failed_at=case((attempts >= max_attempts, datetime.now(UTC)), else_=None),
                )
                .returning(outbox.c.failed_at)
            )
        ).first()
        return row is not None and row.failed_at is not None

    async def failed(self, *, limit: int = 100) -> list[FailedMessage]:
        """Return the messages set aside, oldest first, with their error and attempts."""
        query = (
            select(outbox)
            .where(outbox.c.failed_at.is_not(None), outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        )

        async def read(connection: AsyncConnection) -> list[FailedMessage]:
            return [
                FailedMessage(
                    id=row.id,
                    message_id=row.message_id,
                    topic=row.topic,
                    partition_key=row.partition_key,
                    message_type=str(row.payload.get("event_type", "?")),
                    attempts=row.attempts,
                    last_error=row.last_error or "",
                    failed_at=row.failed_at,
                    created_at=row.created_at,
                )
                for row in await connection.execute(query)
            ]

        return await self._reads.run("read the outbox's failed messages", read)

    async def retry_failed(self, ids: Sequence[int] | None = None) -> int:
        """Put messages set aside back in the queue (all, or those of ``ids``); return how many.

        Their attempts start again from 0; a relay publishes them with the
        next page, in id order with the rest.
        """
        statement = (
            update(outbox)
            .where(outbox.c.failed_at.is_not(None), outbox.c.published_at.is_(None))
            .values(failed_at=None, attempts=0, last_error=None)
        )
        if ids is not None:
            statement = statement.where(outbox.c.id.in_(list(ids)))
        operation = "retry the outbox's failed messages"
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as uow:
            with translated_errors(operation):
                result = await uow.connection.execute(statement)
            await uow.commit()
        return int(result.rowcount or 0)


def _unsent() -> ColumnElement[bool]:
    return outbox.c.published_at.is_(None) & outbox.c.failed_at.is_(None)


def _behind_one_set_aside() -> ColumnElement[bool]:
    """Return the condition that a row waits behind an earlier row of its key set aside."""
    earlier = outbox.alias("earlier")
    return exists().where(
        earlier.c.partition_key == outbox.c.partition_key,
        earlier.c.failed_at.is_not(None),
        earlier.c.published_at.is_(None),
        earlier.c.id < outbox.c.id,
    )


def _of(partition: Partition | None) -> ColumnElement[bool]:
    if partition is None or partition.count == 1:
        return true()
    return outbox.c.partition_hash % partition.count == partition.index

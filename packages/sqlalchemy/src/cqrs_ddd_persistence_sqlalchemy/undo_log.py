"""``SQLAlchemyUndoLog``: undo log entries in ``cqrs_undo_log``, on SQLite or PostgreSQL.

One row per entry: its token, its place in the log (``seq``), who ran it,
its status and version as columns, and the entry itself as JSON; the
aggregates it touched in ``cqrs_undo_aggregates`` (one row per entry and
aggregate), for the per-aggregate stacks. Every write joins the command's
``SQLAlchemyUnitOfWork`` (it must be on the same database): an entry commits
with the command's events, an undo's change of status with the inverse
command's. A save is ``UPDATE … WHERE token = ? AND version = ?``: when
another client changed the entry first it changes nothing and raises
``ConcurrencyError`` (on PostgreSQL the second update waits for the first
transaction, then finds the version moved on), so the inverse command rolls
back with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import and_, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cqrs_ddd_advanced_core.undo.log import UndoEntry
from cqrs_ddd_core.exceptions import ConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, Reads, engine_of
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.schema import undo_aggregates, undo_log
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import (
    SQLAlchemyUnitOfWork,
    unit_of_work_for_write,
)

_COLUMNS = (undo_log.c.entry, undo_log.c.status, undo_log.c.version)


class SQLAlchemyUndoLog:
    """Undo log entries in the database of ``session`` (an engine, or a session factory)."""

    def __init__(self, session: EngineSource) -> None:
        self.engine = engine_of(session)
        self._reads = Reads(self.engine)
        self._dialect: Any = postgresql if self.engine.dialect.name == "postgresql" else sqlite

    async def add(self, entry: UndoEntry) -> None:
        """Insert a new entry (version 1) and the aggregates it touched."""
        operation = f"log undo entry {entry.token}"

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(
                insert(undo_log).values(
                    token=entry.token,
                    user_id=entry.user,
                    status=entry.status,
                    version=1,
                    entry=_document(entry),
                )
            )
            if entry.aggregates:
                await connection.execute(
                    insert(undo_aggregates),
                    [
                        {"token": entry.token, "aggregate_id": aggregate_id}
                        for aggregate_id in sorted(entry.aggregates)
                    ],
                )

        await self._write(operation, write)

    async def get(self, token: UUID) -> UndoEntry | None:
        """Return the entry ``token``, or None."""

        async def read(connection: AsyncConnection) -> UndoEntry | None:
            row = (
                await connection.execute(select(*_COLUMNS).where(undo_log.c.token == token))
            ).first()
            return None if row is None else _entry(row)

        return await self._reads.run(f"read undo entry {token}", read)

    async def save(self, entry: UndoEntry) -> None:
        """Store ``entry`` as the next version; ``ConcurrencyError`` if the stored one moved on."""
        operation = f"save undo entry {entry.token}"

        async def write(connection: AsyncConnection) -> None:
            result = await connection.execute(
                update(undo_log)
                .where(undo_log.c.token == entry.token, undo_log.c.version == entry.version)
                .values(status=entry.status, version=entry.version + 1, entry=_document(entry))
            )
            if result.rowcount != 1:
                stored = await connection.scalar(
                    select(undo_log.c.version).where(undo_log.c.token == entry.token)
                )
                raise ConcurrencyError(
                    f"undo entry {entry.token}",
                    expected_version=entry.version,
                    actual_version=0 if stored is None else int(stored),
                )
            if entry.aggregates:  # an undo or redo may touch an aggregate the entry did not
                await connection.execute(
                    self._dialect.insert(undo_aggregates)
                    .values(
                        [
                            {"token": entry.token, "aggregate_id": aggregate_id}
                            for aggregate_id in sorted(entry.aggregates)
                        ]
                    )
                    .on_conflict_do_nothing()
                )

        await self._write(operation, write)

    async def supersede(self, aggregate_ids: Sequence[str]) -> None:
        """Mark the undone entries of these aggregates superseded (their redo stack empties)."""
        if not aggregate_ids:
            return
        touched = select(undo_aggregates.c.token).where(
            undo_aggregates.c.aggregate_id.in_(list(aggregate_ids))
        )

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(
                update(undo_log)
                .where(undo_log.c.status == "undone", undo_log.c.token.in_(touched))
                .values(status="superseded", version=undo_log.c.version + 1)
            )

        await self._write("supersede undone entries", write)

    async def history(
        self,
        *,
        aggregate_id: str | None = None,
        user: str | None = None,
        limit: int = 50,
        statuses: Sequence[str] | None = None,
    ) -> list[UndoEntry]:
        """Return entries, newest first, of one aggregate and/or one user (in ``statuses``)."""
        query = select(*_COLUMNS).order_by(undo_log.c.seq.desc()).limit(limit)
        if aggregate_id is not None:
            query = query.join(
                undo_aggregates,
                and_(
                    undo_aggregates.c.token == undo_log.c.token,
                    undo_aggregates.c.aggregate_id == aggregate_id,
                ),
            )
        if user is not None:
            query = query.where(undo_log.c.user_id == user)
        if statuses is not None:
            query = query.where(undo_log.c.status.in_(list(statuses)))

        async def read(connection: AsyncConnection) -> list[UndoEntry]:
            return [_entry(row) for row in await connection.execute(query)]

        return await self._reads.run("read the undo history", read)

    async def _write(self, operation: str, write: Any) -> None:
        uow = unit_of_work_for_write(self.engine, operation)
        if uow is not None:
            with translated_errors(operation):
                await write(uow.connection)
            return
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as own:
            with translated_errors(operation):
                await write(own.connection)
            await own.commit()


def _document(entry: UndoEntry) -> dict[str, Any]:
    return entry.model_dump(mode="json", exclude={"status", "version"})


def _entry(row: Any) -> UndoEntry:
    return UndoEntry.model_validate({**row.entry, "status": row.status, "version": row.version})

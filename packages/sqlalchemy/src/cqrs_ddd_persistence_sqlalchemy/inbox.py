"""``SQLAlchemyInbox``: the messages each consumer handled, in ``cqrs_inbox`` (``Inbox``).

A claim is ``INSERT … ON CONFLICT DO NOTHING`` of (consumer, message id) in
the handler's ``SQLAlchemyUnitOfWork``: a new row means handle the message;
none means it was handled already. On PostgreSQL a second delivery handled at
the same time waits for the first's transaction, then finds the row. The row
commits, or rolls back, with the handler's effect. ``purge`` deletes rows
older than the retention window.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from cqrs_ddd_core.exceptions import UnitOfWorkError
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, engine_of
from cqrs_ddd_persistence_sqlalchemy.database_clock import database_clock
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.schema import inbox
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import (
    SQLAlchemyUnitOfWork,
    unit_of_work_for_write,
)


class SQLAlchemyInbox:
    """The inbox in the database of ``session`` (an engine, or a session factory on one)."""

    def __init__(self, session: EngineSource) -> None:
        self.engine = engine_of(session)
        self.is_postgresql = self.engine.dialect.name == "postgresql"
        self._dialect: Any = postgresql if self.is_postgresql else sqlite

    async def claim(self, consumer: str, message_id: UUID) -> bool:
        """Claim ``message_id`` for ``consumer`` in the handler's unit of work; False if seen."""
        operation = f"claim message {message_id} for {consumer}"
        uow = unit_of_work_for_write(self.engine, operation)
        if uow is None:
            raise UnitOfWorkError(f"{operation}: it must be inside the handler's unit of work")
        statement = (
            self._dialect.insert(inbox)
            .values(
                consumer=consumer,
                message_id=message_id,
                received_at=database_clock(self.is_postgresql),
            )
            .on_conflict_do_nothing()
        )
        with translated_errors(operation):
            result = await uow.connection.execute(statement)
        return bool(result.rowcount == 1)

    async def purge(self, *, older_than: float) -> int:
        """Delete the claims older than ``older_than`` seconds; return how many."""
        operation = "purge the inbox"
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as uow:
            with translated_errors(operation):
                result = await uow.connection.execute(
                    delete(inbox).where(
                        inbox.c.received_at < database_clock(self.is_postgresql) - older_than
                    )
                )
            await uow.commit()
        return int(result.rowcount or 0)

"""Dead letters of background workers in ``cqrs_projection_dead_letters``.

Written and deleted in the worker's own transaction (the ``connection`` of
its ``WorkTransaction``), so a letter commits with the checkpoint that passes
its event, and goes with the transaction that finally applies it.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter
from cqrs_ddd_advanced_core.workers.progress import WorkTransaction
from cqrs_ddd_persistence_sqlalchemy.connections import Reads
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.schema import projection_dead_letters as letters


class SQLAlchemyDeadLetterStore:
    """Keeps each job's dead letters, one row per position."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._reads = Reads(engine)
        is_postgresql = engine.dialect.name == "postgresql"
        self._dialect = postgresql if is_postgresql else sqlite

    async def quarantine(self, transaction: WorkTransaction, letter: DeadLetter) -> None:
        """Insert ``letter``, or update the attempts and error of the one at its position."""
        insert = self._dialect.insert(letters).values(
            projection=letter.projection,
            position=letter.position,
            stream_id=letter.stream_id,
            version=letter.version,
            event_type=letter.event_type,
            event_id=letter.event_id,
            error_class=letter.error_class[:255],
            error_message=letter.error_message,
            attempts=letter.attempts,
            first_seen_at=letter.first_seen_at,
            last_seen_at=letter.last_seen_at,
        )
        await transaction.connection.execute(
            insert.on_conflict_do_update(
                index_elements=[letters.c.projection, letters.c.position],
                set_={
                    "error_class": insert.excluded.error_class,
                    "error_message": insert.excluded.error_message,
                    "attempts": insert.excluded.attempts,
                    "last_seen_at": insert.excluded.last_seen_at,
                },
            )
        )

    async def resolve(self, transaction: WorkTransaction, name: str, position: int) -> None:
        """Delete the letter ``name`` holds for ``position``."""
        await transaction.connection.execute(
            delete(letters).where(letters.c.projection == name, letters.c.position == position)
        )

    async def discard(self, transaction: WorkTransaction, name: str, *, after: int = 0) -> None:
        """Delete the job's letters at positions above ``after``."""
        await transaction.connection.execute(
            delete(letters).where(letters.c.projection == name, letters.c.position > after)
        )

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """Return the job's dead letters in position order."""
        query = select(letters).where(letters.c.projection == name).order_by(letters.c.position)
        with translated_errors(f"read the dead letters of {name!r}"):
            async with self._reads.connection() as connection:
                found = await connection.execute(query)
                return [
                    DeadLetter(
                        projection=row.projection,
                        position=int(row.position),
                        stream_id=row.stream_id,
                        version=row.version,
                        event_type=row.event_type,
                        event_id=row.event_id,
                        error_class=row.error_class,
                        error_message=row.error_message,
                        attempts=row.attempts,
                        first_seen_at=row.first_seen_at,
                        last_seen_at=row.last_seen_at,
                    )
                    for row in found
                ]

    async def count(self, name: str) -> int:
        """Return how many dead letters the job holds."""
        query = select(func.count()).select_from(letters).where(letters.c.projection == name)
        with translated_errors(f"count the dead letters of {name!r}"):
            async with self._reads.connection() as connection:
                return int(await connection.scalar(query) or 0)

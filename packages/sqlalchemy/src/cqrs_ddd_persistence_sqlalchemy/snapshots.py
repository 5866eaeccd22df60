"""``SQLAlchemySnapshotStorage``: snapshots in the ``cqrs_snapshots`` table."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.snapshots import Snapshot
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, engine_of, reading
from cqrs_ddd_persistence_sqlalchemy.errors import translated_errors
from cqrs_ddd_persistence_sqlalchemy.schema import snapshots
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import ambient_connection


class SQLAlchemySnapshotStorage:
    """Keeps snapshots in ``cqrs_snapshots``, joining the command's unit of work.

    ``SnapshotStore(session, strategy)`` builds one of these when ``session`` is
    a SQLAlchemy ``AsyncSession``, ``async_sessionmaker`` or ``AsyncEngine``.
    A save inside a command commits with the command's events; saving a
    snapshot that already exists (same stream and version) is a no-op.
    """

    def __init__(self, source: EngineSource) -> None:
        self.engine: AsyncEngine = engine_of(source)
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        self._insert = dialect.insert(snapshots)

    async def latest(self, stream_id: str) -> Snapshot | None:
        """Return the stream's newest snapshot, or None."""
        query = (
            select(snapshots)
            .where(snapshots.c.stream_id == stream_id)
            .order_by(snapshots.c.version.desc())
            .limit(1)
        )
        with translated_errors(f"load the snapshot of {stream_id!r}"):
            async with reading(self.engine) as connection:
                row = (await connection.execute(query)).mappings().first()
        if row is None:
            return None
        return Snapshot(
            stream_id=row["stream_id"],
            aggregate_type=row["aggregate_type"],
            version=row["version"],
            schema_version=row["schema_version"],
            state=row["state"],
            taken_at=row["taken_at"],
        )

    async def save(self, snapshot: Snapshot, *, keep: int) -> None:
        """Store ``snapshot`` and delete the stream's snapshots older than the ``keep`` newest."""
        with translated_errors(f"save a snapshot of {snapshot.stream_id!r}"):
            connection = ambient_connection(self.engine)
            if connection is not None:
                await self._save(connection, snapshot, keep)
                return
            async with self.engine.begin() as own:
                await self._save(own, snapshot, keep)

    async def _save(self, connection: AsyncConnection, snapshot: Snapshot, keep: int) -> None:
        await connection.execute(
            self._insert.values(
                stream_id=snapshot.stream_id,
                version=snapshot.version,
                aggregate_type=snapshot.aggregate_type,
                schema_version=snapshot.schema_version,
                state=snapshot.state,
                taken_at=snapshot.taken_at,
            ).on_conflict_do_nothing()
        )
        newest = (
            select(snapshots.c.version)
            .where(snapshots.c.stream_id == snapshot.stream_id)
            .order_by(snapshots.c.version.desc())
            .limit(max(keep, 1))
        )
        await connection.execute(
            delete(snapshots).where(
                snapshots.c.stream_id == snapshot.stream_id,
                snapshots.c.version.not_in(newest.scalar_subquery()),
            )
        )


def snapshot_storage_for(session: object) -> SQLAlchemySnapshotStorage | None:
    """Return a storage for a SQLAlchemy session, session factory or engine; else None.

    This is the package's ``cqrs_ddd.snapshot_storage`` entry point.
    """
    if not isinstance(session, AsyncEngine | AsyncSession | async_sessionmaker):
        return None
    try:
        return SQLAlchemySnapshotStorage(session)
    except TypeError:  # a session (factory) bound to no engine: not something we can use
        return None

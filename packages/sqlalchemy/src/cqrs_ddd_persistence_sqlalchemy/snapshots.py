"""``SQLAlchemySnapshotRepository``: snapshots in the ``cqrs_snapshots`` table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from itertools import starmap
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    String,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.snapshots import Snapshot
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent
from cqrs_ddd_persistence_sqlalchemy.connections import (
    EngineSource,
    Reads,
    engine_of,
    once_more_if_disconnected,
)
from cqrs_ddd_persistence_sqlalchemy.driver_reads import PreparedRead
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.event_store import SQLAlchemyEventStore
from cqrs_ddd_persistence_sqlalchemy.schema import events, snapshots
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import (
    ambient_unit_of_work,
    unit_of_work_for_write,
)

_logger = logging.getLogger("cqrs_ddd_persistence_sqlalchemy.snapshots")

_STREAM_ID = bindparam("stream_id", type_=String())

_LATEST = (
    select(
        snapshots.c.stream_id,
        snapshots.c.aggregate_type,
        snapshots.c.version,
        snapshots.c.schema_version,
        snapshots.c.state,
        snapshots.c.taken_at,
    )
    .where(snapshots.c.stream_id == _STREAM_ID)
    .order_by(snapshots.c.version.desc())
    .limit(1)
)

# The newest snapshot and the events from its version on, in one statement (the
# event at the snapshot's own version shows that the snapshot is not past the
# stream's end): the events' rows (in the order of ``StoredEvent``'s fields, as
# ``load_stream`` reads them) and the snapshot as one more row of the same
# shape, told apart by its NULL position. Without a snapshot the rows are the
# whole stream, as a load without snapshots reads it. A UNION has no order of
# its own, so the rows are put in version order in Python (they come in it, so
# that is a single pass).
#
# Two things keep PostgreSQL on the (stream_id, version) index whatever its
# statistics say. The ORDER BY inside the events' subquery (the index gives that
# order for free; another index, (stream_id, event_id), would need a sort). And
# ``version <= 2**31 - 1``, which excludes nothing (the column is a 32-bit
# integer) but makes the condition a range: the lower bound comes from a
# subquery, unknown when planning, and a lone ``>`` on an unknown value is
# estimated at a third of the stream, enough for a sequential scan when one
# large stream dominates the table (the streams that need snapshots), while a
# range with an unknown end is estimated at 0.5%.
_NEWEST_VERSION = (
    select(func.max(snapshots.c.version)).where(snapshots.c.stream_id == _STREAM_ID)
).scalar_subquery()
_EVENTS_AFTER_SNAPSHOT = (
    select(
        events.c.position,
        events.c.stream_id,
        events.c.version,
        events.c.event_type,
        events.c.schema_version,
        events.c.event_id,
        events.c.occurred_at,
        events.c.payload,
        events.c.aggregate_type,
        events.c.correlation_id,
        events.c.causation_id,
        events.c.metadata,
    )
    .where(
        events.c.stream_id == _STREAM_ID,
        events.c.version >= func.coalesce(_NEWEST_VERSION, literal_column("0")),
        events.c.version <= literal_column(str(2**31 - 1)),
    )
    .order_by(events.c.version)
    .subquery("later_events")
)
_SNAPSHOT_AS_ROW = select(
    cast(null(), events.c.position.type),
    snapshots.c.stream_id,
    snapshots.c.version,
    cast(null(), events.c.event_type.type),
    snapshots.c.schema_version,
    cast(null(), events.c.event_id.type),
    snapshots.c.taken_at,
    snapshots.c.state,
    snapshots.c.aggregate_type,
    cast(null(), events.c.correlation_id.type),
    cast(null(), events.c.causation_id.type),
    cast(null(), events.c.metadata.type),
).where(snapshots.c.stream_id == _STREAM_ID, snapshots.c.version == _NEWEST_VERSION)
_SNAPSHOT_AND_LATER_EVENTS = union_all(select(_EVENTS_AFTER_SNAPSHOT), _SNAPSHOT_AS_ROW)


class SQLAlchemySnapshotRepository:
    """Keeps snapshots in ``cqrs_snapshots``, joining the command's unit of work.

    Give it to the snapshot store: ``SnapshotStore(strategy=...,
    repository=SQLAlchemySnapshotRepository(engine))``. The spec's
    ``SnapshotStore(session, strategy)`` builds one too, through this package's
    entry point, when ``session`` is a SQLAlchemy ``AsyncSession``,
    ``async_sessionmaker`` or ``AsyncEngine``. A save inside a command commits
    with the command's events; saving a snapshot that already exists (same
    stream and version) is a no-op.

    It is also a ``SnapshotAndEventsReader`` of a :class:`SQLAlchemyEventStore`
    on the same engine: a load reads the newest snapshot and the events after
    it in one statement, one round trip (inside a command on the command's
    connection, in its transaction). Outside a command the statement runs on
    the driver connection without SQLAlchemy's execution layer, and on a SQLite
    file on the event loop's thread (see :class:`SQLiteLoopReader`) unless
    ``sqlite_loop_reads=False``.
    """

    def __init__(self, source: EngineSource, *, sqlite_loop_reads: bool = True) -> None:
        self.engine: AsyncEngine = engine_of(source)
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        self._insert = dialect.insert(snapshots)
        self.sqlite_loop_reads = sqlite_loop_reads
        self._reads = Reads(self.engine)
        self._joint_read: PreparedRead | None = None  # compiled on the first load

    async def latest(self, stream_id: str) -> Snapshot | None:
        """Return the stream's newest snapshot, or None."""

        async def read(connection: AsyncConnection) -> tuple[Any, ...] | None:
            row = (await connection.execute(_LATEST, {"stream_id": stream_id})).first()
            return None if row is None else tuple(row)

        row = await self._reads.run(f"load the snapshot of {stream_id!r}", read)
        if row is None:
            return None
        return Snapshot(*row)

    def reads_events_of(self, event_store: EventStore) -> bool:
        """Return whether ``event_store`` is a ``SQLAlchemyEventStore`` reading this database.

        True when it reads the same tables through the same pool (the same
        engine, or views of one engine with the same execution options), and
        does not change how streams are loaded.
        """
        if not isinstance(event_store, SQLAlchemyEventStore):
            return False
        if type(event_store).load_stream is not SQLAlchemyEventStore.load_stream:
            return False
        theirs = event_store.engine
        return (
            theirs.pool is self.engine.pool
            and theirs.get_execution_options() == self.engine.get_execution_options()
        )

    async def load_snapshot_and_events(
        self, stream_id: str
    ) -> tuple[Snapshot | None, list[StoredEvent]]:
        """Return the newest snapshot and the events from its version on (all without one).

        The events are what ``SQLAlchemyEventStore.load_stream(stream_id,
        from_version=snapshot.version)`` returns, read with the snapshot in one
        statement. Inside a command the read runs on the command's connection
        and sees its writes.
        """
        parameters = {"stream_id": stream_id}
        rows = await once_more_if_disconnected(
            self.engine,
            f"load the snapshot and events of {stream_id!r}",
            partial(self._read_joint, parameters),
        )
        snapshot: Snapshot | None = None
        event_rows: list[Sequence[Any]] = []
        for row in rows:
            if row[0] is None:
                snapshot = Snapshot(
                    stream_id=row[1],
                    aggregate_type=row[8],
                    version=row[2],
                    schema_version=row[4],
                    state=row[7],
                    taken_at=row[6],
                )
            else:
                event_rows.append(row)
        event_rows.sort(key=itemgetter(2))
        return snapshot, list(starmap(StoredEvent, event_rows))

    async def _read_joint(self, parameters: dict[str, Any]) -> Sequence[Sequence[Any]]:
        joint = self._joint_read
        if joint is None:
            joint = self._joint_read = PreparedRead(_SNAPSHOT_AND_LATER_EVENTS, self.engine)
        query = joint.query
        uow = ambient_unit_of_work(self.engine)
        if uow is not None:
            # In the command's transaction, on the driver: on SQLite on the loop's
            # thread, on PostgreSQL before BEGIN if nothing needed it yet (see
            # driver_transaction); through SQLAlchemy for other drivers.
            driver = await uow.driver_for_read()
            if query is not None and driver is not None:
                return await query.fetch_with(driver, parameters)
            return (await uow.connection.execute(_SNAPSHOT_AND_LATER_EVENTS, parameters)).all()
        if query is not None:
            if joint.loop_reader is not None and self.sqlite_loop_reads:
                raw_rows = joint.loop_reader.fetch(query.arguments(parameters))
                if raw_rows is not None:
                    return query.rows(raw_rows)
            try:
                return await query.fetch_pooled(self.engine, parameters)
            except Exception:  # SQLAlchemy's run below reports it, typed
                _logger.debug("driver read failed, reading through SQLAlchemy", exc_info=True)
        async with self._reads.connection() as own:
            return (await own.execute(_SNAPSHOT_AND_LATER_EVENTS, parameters)).all()

    async def save(self, snapshot: Snapshot, *, keep: int) -> None:
        """Store ``snapshot`` and delete the stream's snapshots older than the ``keep`` newest."""
        operation = f"save a snapshot of {snapshot.stream_id!r}"
        uow = unit_of_work_for_write(self.engine, operation)
        with translated_errors(operation):
            if uow is not None:
                await self._save(uow.connection, snapshot, keep)
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


def snapshot_repository_for(session: object) -> SQLAlchemySnapshotRepository | None:
    """Return a repository for a SQLAlchemy session, session factory or engine; else None.

    This is the package's ``cqrs_ddd.snapshot_repository`` entry point, which
    serves only the spec's ``SnapshotStore(session, strategy)``.
    """
    if not isinstance(session, AsyncEngine | AsyncSession | async_sessionmaker):
        return None
    try:
        return SQLAlchemySnapshotRepository(session)
    except TypeError:  # a session (factory) bound to no engine: not something we can use
        return None

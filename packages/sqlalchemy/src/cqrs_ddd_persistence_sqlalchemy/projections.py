"""``SQLAlchemyProjectionStorage``: projection checkpoints, leases and dead letters in SQL.

The checkpoint row is updated in the transaction that applies the batch, so
with a read model in the same database a batch's changes and its checkpoint
commit together (exactly-once effect). Read models in another database get
at-least-once delivery: their handlers must be idempotent.

Leases live in the same row (owner, epoch, expiry in the database's clock).
Each batch starts by extending the lease with ``UPDATE … WHERE owner = ? AND
epoch = ?``: a worker that lost its lease finds no row and writes nothing,
and the row lock it takes keeps anyone from taking the lease over until the
batch ends. On PostgreSQL the batch's transaction also sets
``idle_in_transaction_session_timeout`` to the lease time, so a stalled
worker's transaction is ended by the server instead of blocking its successor.

Wake-ups: on PostgreSQL appends ``NOTIFY`` the ``cqrs_events`` channel at
commit and the storage ``LISTEN``s on a connection of its own (reconnecting
when it is cut); on SQLite, appends made in this process signal directly, and
appends from other processes are found by the worker's poll.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    cast,
    delete,
    extract,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_advanced_core.projections import (
    ChangeSignal,
    CheckpointRegressionError,
    DeadLetter,
    Lease,
    LeaseLostError,
    ProjectionRecord,
    SignalWakeup,
)
from cqrs_ddd_persistence_sqlalchemy.connections import (
    EngineSource,
    base_engine,
    engine_of,
    reading,
)
from cqrs_ddd_persistence_sqlalchemy.errors import translated_errors
from cqrs_ddd_persistence_sqlalchemy.pending_writes import drop_writes, hold_writes
from cqrs_ddd_persistence_sqlalchemy.schema import events, projection_dead_letters, projections

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "cqrs_events"
"""The PostgreSQL channel appends notify at commit."""

_IDLE_TIMEOUT = "idle_in_transaction_session_timeout"
_ADMIN_TTL = 30.0
"""How long a release, reset or resume may sit idle in its transaction (seconds)."""


def _milliseconds(seconds: float) -> str:
    return str(max(int(seconds * 1000), 1000))


_signals: weakref.WeakKeyDictionary[Any, ChangeSignal] = weakref.WeakKeyDictionary()


def commit_signal(engine: AsyncEngine) -> ChangeSignal:
    """Return the in-process signal notified when events commit through ``engine``.

    One per engine (views made with ``execution_options`` share their engine's),
    surviving ``engine.dispose()``.
    """
    base = base_engine(engine)
    signal = _signals.get(base)
    if signal is None:
        signal = _signals[base] = ChangeSignal()
    return signal


class _Batch:
    def __init__(
        self,
        connection: AsyncConnection,
        storage: SQLAlchemyProjectionStorage,
        projection: str,
        checkpoint: int,
    ) -> None:
        self._connection = connection
        self._storage = storage
        self._projection = projection
        self._checkpoint = checkpoint
        self._pending = hold_writes(connection)
        self.position: int | None = None
        self.halted: str | None = None

    @property
    def connection(self) -> AsyncConnection:
        return self._connection

    @property
    def broken(self) -> bool:
        return self._connection.invalidated

    @property
    def held_writes_failed(self) -> bool:
        return self._pending.failed

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        await self.flush()
        try:
            async with self._connection.begin_nested():
                yield
                await self.flush()  # inside: a queued write's error is this block's
        except BaseException:
            self._pending.discard()
            raise

    async def flush(self) -> None:
        if self._pending:
            await self._connection.run_sync(self._pending.send)

    def advance(self, position: int) -> None:
        if position < self._checkpoint:
            raise CheckpointRegressionError(
                self._projection, checkpoint=self._checkpoint, requested=position
            )
        self._checkpoint = self.position = position

    async def quarantine(self, letter: DeadLetter) -> None:
        await self._storage.write_dead_letter(self._connection, letter)

    async def resolve(self, position: int) -> None:
        await self._connection.execute(
            delete(projection_dead_letters).where(
                projection_dead_letters.c.projection == self._projection,
                projection_dead_letters.c.position == position,
            )
        )

    def halt(self, reason: str) -> None:
        self.halted = reason


class _Listener:
    """LISTENs for appends on a connection of its own; reconnects when it is cut."""

    def __init__(self, engine: AsyncEngine, signal: ChangeSignal) -> None:
        self._engine = engine
        self._signal = signal
        self._wakeup = SignalWakeup(signal)
        self._connection: AsyncConnection | None = None
        self._driver: Any = None

    async def open(self) -> None:
        connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(NOTIFY_CHANNEL, self._on_notification)
            # a cut connection wakes the waiter, which reconnects at once
            driver.add_termination_listener(self._on_notification)
        except BaseException:
            await connection.invalidate()
            await connection.close()
            raise
        self._connection, self._driver = connection, driver

    async def close(self) -> None:
        connection, driver = self._connection, self._driver
        self._connection = self._driver = None
        if connection is None:
            return
        with contextlib.suppress(Exception):
            if not driver.is_closed():
                await driver.remove_listener(NOTIFY_CHANNEL, self._on_notification)
        with contextlib.suppress(Exception):
            await connection.invalidate()  # never hand a LISTENing connection back to the pool
        with contextlib.suppress(Exception):
            await connection.close()

    async def wait(self, seconds: float) -> None:
        if self._driver is None or self._driver.is_closed():
            await self.close()
            try:
                await self.open()
            except Exception as error:  # noqa: BLE001 - the worker polls meanwhile
                logger.warning("cannot LISTEN for new events (%r); polling", error)
            # notifications may have been missed while the connection was down
            self._signal.notify()
        await self._wakeup.wait(seconds)

    def _on_notification(self, *_: object) -> None:
        self._signal.notify()


class SQLAlchemyProjectionStorage:
    """Projection state in ``cqrs_projections`` and ``cqrs_projection_dead_letters``.

    ``SQLAlchemyEventStore.projection_storage()`` returns one on the store's
    engine; read models written by the projectors should live in the same
    database to get the exactly-once effect.
    """

    def __init__(self, source: EngineSource) -> None:
        self.engine: AsyncEngine = engine_of(source)
        self._is_postgresql = self.engine.dialect.name == "postgresql"
        self._dialect = postgresql if self._is_postgresql else sqlite
        self.signal = commit_signal(self.engine)

    @asynccontextmanager
    async def _transaction(self, ttl: float) -> AsyncIterator[AsyncConnection]:
        """Open a transaction that PostgreSQL ends if this worker stalls in it past ``ttl``.

        A worker frozen between a lease-row UPDATE and its COMMIT would
        otherwise keep the row locked, and no standby could take over.
        """
        async with self.engine.begin() as connection:
            if self._is_postgresql:
                await connection.execute(
                    select(func.set_config(_IDLE_TIMEOUT, _milliseconds(ttl), literal(True)))
                )
            yield connection

    def _now(self) -> ColumnElement[float]:
        if self._is_postgresql:
            return cast(extract("epoch", func.clock_timestamp()), Float)
        return (func.julianday("now") - 2440587.5) * 86400.0

    def _holder(self, lease: Lease) -> ColumnElement[bool]:
        return and_(
            projections.c.name == lease.projection,
            projections.c.owner == lease.owner,
            projections.c.epoch == lease.epoch,
        )

    async def _ensure(self, connection: AsyncConnection, projection: str) -> None:
        await connection.execute(
            self._dialect.insert(projections)
            .values(name=projection, position=0, epoch=0, halted=False)
            .on_conflict_do_nothing()
        )

    async def acquire(self, projection: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease when it is free, expired or already ``owner``'s; else None."""
        now = self._now()
        with translated_errors(f"take the lease of projection {projection!r}"):
            async with self._transaction(ttl) as connection:
                await self._ensure(connection, projection)
                row = (
                    await connection.execute(
                        update(projections)
                        .where(
                            projections.c.name == projection,
                            projections.c.halted.is_(False),
                            or_(
                                projections.c.owner.is_(None),
                                projections.c.owner == owner,
                                projections.c.lease_expires_at < now,
                            ),
                        )
                        .values(
                            owner=owner,
                            epoch=projections.c.epoch + 1,
                            lease_expires_at=now + ttl,
                        )
                        .returning(projections.c.epoch, projections.c.position)
                    )
                ).first()
        if row is None:
            return None
        return Lease(projection, owner, int(row.epoch), int(row.position))

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease``; False when it was lost."""
        with translated_errors(f"renew the lease of projection {lease.projection!r}"):
            async with self._transaction(ttl) as connection:
                result = await connection.execute(
                    update(projections)
                    .where(self._holder(lease))
                    .values(lease_expires_at=self._now() + ttl)
                    .returning(projections.c.epoch)
                )
                return result.first() is not None

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (no-op when it was lost)."""
        with translated_errors(f"release the lease of projection {lease.projection!r}"):
            async with self._transaction(_ADMIN_TTL) as connection:
                await connection.execute(
                    update(projections)
                    .where(self._holder(lease))
                    .values(owner=None, lease_expires_at=None)
                )

    @asynccontextmanager
    async def batch(self, lease: Lease, ttl: float) -> AsyncIterator[_Batch]:
        """Open a fenced transaction; see the ``ProjectionStorage`` port."""
        fence = (
            update(projections)
            .where(self._holder(lease), projections.c.halted.is_(False))
            .values(lease_expires_at=self._now() + ttl)
            .returning(projections.c.position)
        )
        if self._is_postgresql:
            fence = fence.returning(
                func.set_config(_IDLE_TIMEOUT, _milliseconds(ttl), literal(True))
            )
        with translated_errors(f"apply a batch of projection {lease.projection!r}"):
            async with self.engine.connect() as connection, connection.begin():
                fenced = (await connection.execute(fence)).first()
                if fenced is None:
                    raise LeaseLostError(lease.projection, lease.owner, lease.epoch)
                batch = _Batch(connection, self, lease.projection, int(fenced.position))
                try:
                    yield batch
                    await batch.flush()
                finally:
                    drop_writes(connection)
                values: dict[str, Any] = {}
                if batch.position is not None:
                    values["position"] = batch.position
                if batch.halted is not None:
                    values.update(halted=True, last_error=batch.halted[:2000])
                if values:
                    await connection.execute(
                        update(projections).where(self._holder(lease)).values(**values)
                    )

    async def write_dead_letter(self, connection: AsyncConnection, letter: DeadLetter) -> None:
        """Insert ``letter``, or update the attempts and error of the one at its position."""
        insert = self._dialect.insert(projection_dead_letters).values(
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
        await connection.execute(
            insert.on_conflict_do_update(
                index_elements=[
                    projection_dead_letters.c.projection,
                    projection_dead_letters.c.position,
                ],
                set_={
                    "error_class": insert.excluded.error_class,
                    "error_message": insert.excluded.error_message,
                    "attempts": insert.excluded.attempts,
                    "last_seen_at": insert.excluded.last_seen_at,
                },
            )
        )

    async def record(self, projection: str) -> ProjectionRecord:
        """Return the projection's stored state (a fresh one when it has none)."""
        with translated_errors(f"read projection {projection!r}"):
            async with reading(self.engine) as connection:
                row = (
                    await connection.execute(
                        select(projections).where(projections.c.name == projection)
                    )
                ).first()
        if row is None:
            return ProjectionRecord(projection, 0, None, 0, None, False, None)
        return ProjectionRecord(
            name=projection,
            position=int(row.position),
            owner=row.owner,
            epoch=int(row.epoch),
            lease_expires_at=row.lease_expires_at,
            halted=bool(row.halted),
            last_error=row.last_error,
        )

    async def reset(self, projection: str, reset: Callable[[Any], Awaitable[None]]) -> None:
        """Empty the read model and start the projection again from position 0, atomically.

        The projection row is updated first: its lock makes the reset wait for
        a batch in flight, so no batch commits between the reset and the replay.
        """
        with translated_errors(f"reset projection {projection!r}"):
            async with self._transaction(_ADMIN_TTL) as connection:
                await self._ensure(connection, projection)
                await connection.execute(
                    update(projections)
                    .where(projections.c.name == projection)
                    .values(
                        position=0,
                        epoch=projections.c.epoch + 1,
                        owner=None,
                        lease_expires_at=None,
                        halted=False,
                        last_error=None,
                    )
                )
                await reset(connection)
                await connection.execute(
                    delete(projection_dead_letters).where(
                        projection_dead_letters.c.projection == projection
                    )
                )

    async def resume(self, projection: str) -> None:
        """Clear the halted flag and the dead letters after the checkpoint."""
        with translated_errors(f"resume projection {projection!r}"):
            async with self._transaction(_ADMIN_TTL) as connection:
                position = await connection.scalar(
                    update(projections)
                    .where(projections.c.name == projection)
                    .values(halted=False, last_error=None)
                    .returning(projections.c.position)
                )
                if position is not None:
                    await connection.execute(
                        delete(projection_dead_letters).where(
                            projection_dead_letters.c.projection == projection,
                            projection_dead_letters.c.position > position,
                        )
                    )

    async def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's dead letters in position order."""
        table = projection_dead_letters
        with translated_errors(f"read the dead letters of projection {projection!r}"):
            async with reading(self.engine) as connection:
                rows = await connection.execute(
                    select(table).where(table.c.projection == projection).order_by(table.c.position)
                )
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
                    for row in rows
                ]

    async def events_after(self, position: int) -> int:
        """Return how many committed events lie after ``position``."""
        with translated_errors("count the events after a checkpoint"):
            async with reading(self.engine) as connection:
                count = await connection.scalar(
                    select(func.count()).select_from(events).where(events.c.position > position)
                )
        return int(count or 0)

    @asynccontextmanager
    async def wakeups(self) -> AsyncIterator[_Listener | SignalWakeup]:
        """LISTEN for appends on PostgreSQL; the in-process signal on SQLite."""
        if not self._is_postgresql:
            yield SignalWakeup(self.signal)
            return
        listener = _Listener(self.engine, self.signal)
        await listener.open()
        try:
            yield listener
        finally:
            await listener.close()

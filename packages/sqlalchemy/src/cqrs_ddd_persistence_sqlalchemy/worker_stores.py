"""Leases and checkpoints of background workers in ``cqrs_projections``.

One row per job holds its checkpoint (``position``), its lease (``owner``,
``epoch``, expiry in the database's clock, Unix seconds) and whether it is
halted. :class:`SQLAlchemyLeaseStore` hands leases out;
:class:`SQLAlchemyCheckpointStore` opens the fenced transactions a worker works
in: each starts by extending the lease with ``UPDATE … WHERE owner = ? AND
epoch = ?`` (a worker that lost its lease finds no row and writes nothing, and
the row lock it takes keeps anyone from taking the lease over until the
transaction ends), and writes the new checkpoint at its end. With a read model
in the same database, a batch's changes and its checkpoint commit together
(exactly-once effect); read models elsewhere get at-least-once delivery.

On PostgreSQL every transaction of a worker sets
``idle_in_transaction_session_timeout`` to the lease time, so a stalled
worker's transaction is ended by the server instead of blocking its successor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_advanced_core.domain.exceptions import CheckpointRegressionError, LeaseLostError
from cqrs_ddd_advanced_core.workers.lease import Lease
from cqrs_ddd_advanced_core.workers.progress import WorkerRecord, WorkTransaction
from cqrs_ddd_persistence_sqlalchemy.connections import Reads
from cqrs_ddd_persistence_sqlalchemy.database_clock import database_clock
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.pending_writes import PendingWrites, drop_writes, hold_writes
from cqrs_ddd_persistence_sqlalchemy.schema import projections as rows
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import SQLAlchemyUnitOfWork

_IDLE_TIMEOUT = "idle_in_transaction_session_timeout"
ADMIN_TTL = 30.0
"""How long a release, reset or resume may sit idle in its transaction (seconds)."""


def _milliseconds(seconds: float) -> str:
    return str(max(int(seconds * 1000), 1000))


class _JobRows:
    """What the lease and checkpoint stores share: the engine, the dialect, the row of a job."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_postgresql = engine.dialect.name == "postgresql"
        self.dialect = postgresql if self.is_postgresql else sqlite

    @asynccontextmanager
    async def transaction(self, ttl: float) -> AsyncIterator[AsyncConnection]:
        """Open a transaction that PostgreSQL ends if this worker stalls in it past ``ttl``.

        A worker frozen between a lease-row UPDATE and its COMMIT would
        otherwise keep the row locked, and no standby could take over.
        """
        async with self.engine.begin() as connection:
            if self.is_postgresql:
                await connection.execute(
                    select(func.set_config(_IDLE_TIMEOUT, _milliseconds(ttl), literal(True)))
                )
            yield connection

    def now(self) -> ColumnElement[float]:
        """Return the database's clock, in Unix seconds."""
        return database_clock(self.is_postgresql)

    @staticmethod
    def holder(lease: Lease) -> ColumnElement[bool]:
        """Return the condition that the job's row is still held by ``lease``."""
        return and_(
            rows.c.name == lease.name, rows.c.owner == lease.owner, rows.c.epoch == lease.epoch
        )

    async def ensure(self, connection: AsyncConnection, name: str) -> None:
        """Insert the job's row unless it exists."""
        await connection.execute(
            self.dialect.insert(rows)
            .values(name=name, position=0, epoch=0, halted=False)
            .on_conflict_do_nothing()
        )


class SQLAlchemyLeaseStore:
    """Leases of named jobs, one row each, fenced by an epoch that every takeover increments."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._rows = _JobRows(engine)

    async def acquire(
        self, name: str, owner: str, ttl: float, *, kind: str | None = None
    ) -> Lease | None:
        """Take the lease when it is free, expired or already ``owner``'s; else None."""
        job = self._rows
        now = job.now()
        with translated_errors(f"take the lease of {name!r}"):
            async with job.transaction(ttl) as connection:
                await job.ensure(connection, name)
                row = (
                    await connection.execute(
                        update(rows)
                        .where(
                            rows.c.name == name,
                            rows.c.halted.is_(False),
                            or_(
                                rows.c.owner.is_(None),
                                rows.c.owner == owner,
                                rows.c.lease_expires_at < now,
                            ),
                        )
                        .values(
                            owner=owner,
                            epoch=rows.c.epoch + 1,
                            lease_expires_at=now + ttl,
                            kind=rows.c.kind if kind is None else kind,
                        )
                        .returning(rows.c.epoch, rows.c.position)
                    )
                ).first()
        if row is None:
            return None
        return Lease(name, owner, int(row.epoch), int(row.position))

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease``; False when it was lost."""
        job = self._rows
        with translated_errors(f"renew the lease of {lease.name!r}"):
            async with job.transaction(ttl) as connection:
                result = await connection.execute(
                    update(rows)
                    .where(job.holder(lease))
                    .values(lease_expires_at=job.now() + ttl)
                    .returning(rows.c.epoch)
                )
                return result.first() is not None

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (no-op when it was lost)."""
        job = self._rows
        with translated_errors(f"release the lease of {lease.name!r}"):
            async with job.transaction(ADMIN_TTL) as connection:
                await connection.execute(
                    update(rows).where(job.holder(lease)).values(owner=None, lease_expires_at=None)
                )


class SQLTransaction:
    """A worker's open transaction on the database; see the ``WorkTransaction`` port.

    With ``hold_writes`` (a fenced work transaction), read-model upserts made
    through :attr:`connection` are held back and sent together (see
    ``pending_writes``); :meth:`savepoint` and :meth:`flush` send them.
    """

    def __init__(
        self, connection: AsyncConnection, name: str, checkpoint: int, *, holds: bool = False
    ) -> None:
        self._connection = connection
        self._name = name
        self._checkpoint = checkpoint
        self._pending = hold_writes(connection) if holds else PendingWrites()
        self.position: int | None = None
        self.halted: str | None = None

    @property
    def name(self) -> str:
        """The job the transaction belongs to."""
        return self._name

    @property
    def connection(self) -> AsyncConnection:
        """The SQLAlchemy connection holding the transaction."""
        return self._connection

    @property
    def checkpoint(self) -> int:
        """The checkpoint as stored when the transaction began, or as advanced since."""
        return self._checkpoint

    @property
    def broken(self) -> bool:
        """True when the connection was lost."""
        return self._connection.invalidated

    @property
    def held_writes_failed(self) -> bool:
        """True once sending the held-back writes failed."""
        return self._pending.failed

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Open a savepoint whose held-back writes are sent inside it."""
        await self.flush()
        try:
            async with self._connection.begin_nested():
                yield
                await self.flush()  # inside: a queued write's error is this block's
        except BaseException:
            self._pending.discard()
            raise

    async def flush(self) -> None:
        """Send the held-back writes."""
        if self._pending:
            await self._connection.run_sync(self._pending.send)

    def advance(self, position: int) -> None:
        """Set the checkpoint written at commit; never backwards."""
        if position < self._checkpoint:
            raise CheckpointRegressionError(
                self._name, checkpoint=self._checkpoint, requested=position
            )
        self._checkpoint = self.position = position

    def halt(self, reason: str) -> None:
        """Mark the job halted at commit."""
        self.halted = reason

    def changes(self) -> dict[str, Any]:
        """Return the row's columns the transaction changes at commit."""
        values: dict[str, Any] = {}
        if self.position is not None:
            values["position"] = self.position
        if self.halted is not None:
            values.update(halted=True, last_error=self.halted[:2000])
        return values


class SQLAlchemyCheckpointStore:
    """Checkpoints and halts of named jobs, changed in transactions fenced by their lease."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._rows = _JobRows(engine)
        self._reads = Reads(engine)

    @asynccontextmanager
    async def transaction(self, lease: Lease, ttl: float) -> AsyncIterator[SQLTransaction]:
        """Open a fenced transaction; see the ``CheckpointStore`` port."""
        job = self._rows
        fence = (
            update(rows)
            .where(job.holder(lease), rows.c.halted.is_(False))
            .values(lease_expires_at=job.now() + ttl)
            .returning(rows.c.position)
        )
        if job.is_postgresql:
            fence = fence.returning(
                func.set_config(_IDLE_TIMEOUT, _milliseconds(ttl), literal(True))
            )
        operation = f"apply a batch of projection {lease.name!r}"
        with translated_errors(operation):
            async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as uow:
                connection = uow.connection
                fenced = (await connection.execute(fence)).first()
                if fenced is None:
                    raise LeaseLostError(lease.name, lease.owner, lease.epoch)
                transaction = SQLTransaction(
                    connection, lease.name, int(fenced.position), holds=True
                )
                try:
                    yield transaction
                    await transaction.flush()
                finally:
                    drop_writes(connection)
                changes = transaction.changes()
                if changes:
                    await connection.execute(
                        update(rows).where(job.holder(lease)).values(**changes)
                    )
                await uow.commit()

    async def record(self, name: str) -> WorkerRecord:
        """Return the job's stored state (a fresh one when it has none)."""
        with translated_errors(f"read the state of {name!r}"):
            async with self._reads.connection() as connection:
                row = (await connection.execute(select(rows).where(rows.c.name == name))).first()
        if row is None:
            return WorkerRecord(name, 0, None, 0, None, False, None)
        return WorkerRecord(
            name=name,
            position=int(row.position),
            owner=row.owner,
            epoch=int(row.epoch),
            lease_expires_at=row.lease_expires_at,
            halted=bool(row.halted),
            last_error=row.last_error,
            kind=row.kind,
        )

    async def reset(self, name: str, reset: Callable[[WorkTransaction], Awaitable[None]]) -> None:
        """Start the job over, atomically; see the ``CheckpointStore`` port.

        The job's row is updated first: its lock makes the reset wait for a
        transaction in flight, so none commits between the reset and the replay.
        """
        job = self._rows
        with translated_errors(f"reset {name!r}"):
            async with job.transaction(ADMIN_TTL) as connection:
                await job.ensure(connection, name)
                await connection.execute(
                    update(rows)
                    .where(rows.c.name == name)
                    .values(
                        position=0,
                        epoch=rows.c.epoch + 1,
                        owner=None,
                        lease_expires_at=None,
                        halted=False,
                        last_error=None,
                    )
                )
                await reset(SQLTransaction(connection, name, 0))

    async def resume(self, name: str, resume: Callable[[WorkTransaction], Awaitable[None]]) -> None:
        """Clear the job's halt and run the callback in the same transaction."""
        with translated_errors(f"resume {name!r}"):
            async with self._rows.transaction(ADMIN_TTL) as connection:
                position = await connection.scalar(
                    update(rows)
                    .where(rows.c.name == name)
                    .values(halted=False, last_error=None)
                    .returning(rows.c.position)
                )
                if position is not None:
                    await resume(SQLTransaction(connection, name, int(position)))

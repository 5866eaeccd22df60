"""``SQLAlchemySagaRepository``: saga instances in ``cqrs_sagas``, on SQLite or PostgreSQL.

One row per instance: its id, type and correlation key (unique together: two
starting events racing for one key insert one row, ``INSERT … ON CONFLICT DO
NOTHING``), status, the whole state as JSON, its version and the database
clock's time of its last change. A save is ``UPDATE … WHERE saga_id = ? AND
version = ?``: a save against a version that moved on changes nothing and
raises ``ConcurrencyError``, and the saga manager applies its event again on
the fresh state. Inside the repository's unit of work (a
``SQLAlchemyUnitOfWork`` on the same database) every write joins it.

A stored state that no longer reads back into ``SagaState`` (a release
changed it, or the row was damaged) raises ``UnreadableSagaStateError``
naming the saga type and id.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import pydantic
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from cqrs_ddd_advanced_core.sagas.barrier import (
    BarrierError,
    BarrierOutcome,
    BranchOperation,
    branch_operation,
    decide,
)
from cqrs_ddd_advanced_core.sagas.orchestration import (
    ACTIVE_STATUSES,
    BranchCommand,
    SagaRetryError,
    SagaState,
    SagaStatus,
    UnreadableSagaStateError,
    retry_phase,
)
from cqrs_ddd_core.exceptions import ConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, Reads, engine_of
from cqrs_ddd_persistence_sqlalchemy.database_clock import database_clock
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.schema import saga_barrier
from cqrs_ddd_persistence_sqlalchemy.schema import sagas as rows
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import (
    SQLAlchemyUnitOfWork,
    unit_of_work_for_write,
)

logger = logging.getLogger(__name__)


class SQLAlchemySagaRepository:
    """Saga instances in the database of ``session`` (an engine, or a session factory on one)."""

    def __init__(self, session: EngineSource) -> None:
        self.engine = engine_of(session)
        self.is_postgresql = self.engine.dialect.name == "postgresql"
        self._dialect: Any = postgresql if self.is_postgresql else sqlite
        self._reads = Reads(self.engine)
        self._state_types: dict[str, type[SagaState]] = {}
        self._save = (
            update(rows)
            .where(
                rows.c.saga_id == bindparam("p_saga_id", type_=rows.c.saga_id.type),
                rows.c.version == bindparam("p_version", type_=rows.c.version.type),
            )
            .values(
                status=bindparam("p_status", type_=rows.c.status.type),
                state=bindparam("p_state", type_=rows.c.state.type),
                version=bindparam("p_new_version", type_=rows.c.version.type),
                updated_at=self._now(),
                in_flight=bindparam("p_in_flight", type_=rows.c.in_flight.type),
            )
        )
        """The save, built once: only its parameters change."""

    def unit_of_work(self) -> SQLAlchemyUnitOfWork:
        """Return a unit of work on the repository's database, which its writes join."""
        return SQLAlchemyUnitOfWork(self.engine)

    def _state(self, row: Any) -> SagaState:
        state_type = self._state_types.get(row.saga_type, SagaState)
        try:
            return state_type.model_validate({**row.state, "version": row.version})
        except (pydantic.ValidationError, TypeError) as error:
            raise UnreadableSagaStateError(row.saga_type, row.saga_id, str(error)) from None

    def _now(self) -> ColumnElement[float]:
        return database_clock(self.is_postgresql)

    async def find(self, saga_type: str, correlation_key: str) -> SagaState | None:
        """Return the instance of ``saga_type`` named ``correlation_key``, or None."""
        return await self._one(
            (rows.c.saga_type == saga_type) & (rows.c.correlation_key == correlation_key),
            f"read saga {saga_type}:{correlation_key}",
        )

    async def get(self, saga_id: UUID) -> SagaState | None:
        """Return the instance ``saga_id``, or None."""
        return await self._one(rows.c.saga_id == saga_id, f"read saga {saga_id}")

    async def _one(self, condition: ColumnElement[bool], operation: str) -> SagaState | None:
        async def read(connection: AsyncConnection) -> SagaState | None:
            found = (
                await connection.execute(
                    select(rows.c.saga_id, rows.c.saga_type, rows.c.state, rows.c.version).where(
                        condition
                    )
                )
            ).first()
            return None if found is None else self._state(found)

        return await self._reads.run(operation, read)

    async def add(self, state: SagaState) -> bool:
        """Insert a new instance at version 1; False when its type and key are taken."""
        statement = (
            self._dialect.insert(rows)
            .values(
                saga_id=state.saga_id,
                saga_type=state.saga_type,
                correlation_key=state.correlation_key,
                status=state.status,
                state=_document(state, 1),
                version=1,
                updated_at=self._now(),
                in_flight=state.in_flight,
            )
            .on_conflict_do_nothing(index_elements=[rows.c.saga_type, rows.c.correlation_key])
        )
        result = await self._write(statement, f"start saga {state.saga_type}")
        return bool(result.rowcount == 1)

    async def save(self, state: SagaState) -> None:
        """Store ``state`` as the next version; ``ConcurrencyError`` if the stored one moved on."""
        parameters = {
            "p_saga_id": state.saga_id,
            "p_version": state.version,
            "p_status": state.status,
            "p_state": _document(state, state.version + 1),
            "p_new_version": state.version + 1,
            "p_in_flight": state.in_flight,
        }
        result = await self._write(self._save, f"save saga {state.saga_id}", parameters)
        if result.rowcount != 1:
            raise ConcurrencyError(
                f"saga {state.saga_id}",
                expected_version=state.version,
                actual_version=state.version + 1,
            )

    async def stalled(self, older_than: float, *, limit: int = 100) -> list[SagaState]:
        """Claim up to ``limit`` instances in flight and unchanged for ``older_than`` seconds.

        The claim sets their ``updated_at`` to now (not their version), so a
        recovery worker in another process passes them by for ``older_than``
        seconds. On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``
        in a materialized CTE, and the update checks again that each is still
        stalled; on SQLite the update runs in ``BEGIN IMMEDIATE``. One whose
        state no longer reads back is parked (an error is logged) instead of
        failing the whole round.
        """
        now = self._now()
        stale = (
            rows.c.in_flight.is_(True)
            & rows.c.status.in_(ACTIVE_STATUSES)
            & (rows.c.updated_at <= now - older_than)
        )
        picked = select(rows.c.saga_id).where(stale).order_by(rows.c.updated_at).limit(limit)
        claim = update(rows).values(updated_at=now)
        if self.is_postgresql:
            chosen = picked.with_for_update(skip_locked=True).cte("stalled")
            chosen = chosen.prefix_with("MATERIALIZED")
            statement = claim.where(rows.c.saga_id == chosen.c.saga_id, stale)
        else:
            statement = claim.where(rows.c.saga_id.in_(picked.scalar_subquery()), stale)
        statement = statement.returning(
            rows.c.saga_id, rows.c.saga_type, rows.c.state, rows.c.version
        )
        if not await self._reads.run(
            "look for stalled sagas",
            lambda connection: _any(connection, picked.limit(1)),
        ):
            return []  # no write (nor SQLite's write lock) for nothing
        result = await self._write(statement, "claim stalled sagas")
        states = []
        for row in result.all():
            try:
                states.append(self._state(row))
            except UnreadableSagaStateError as error:
                logger.error("%s; parked", error)
                await self.park(error.saga_id, error.reason)
        return states

    def register_state_type(self, saga_type: str, state_type: type[SagaState]) -> None:
        """Read the instances of ``saga_type`` as ``state_type``."""
        self._state_types[saga_type] = state_type

    async def park(self, saga_id: UUID, reason: str) -> None:
        """Mark the instance ``saga_id`` parked, without reading its state (it may not read)."""
        await self._write(
            update(rows).where(rows.c.saga_id == saga_id).values(status="parked", in_flight=False),
            f"park saga {saga_id}",
        )

    async def retry(self, saga_id: UUID) -> SagaStatus:
        """Send a parked instance back to the phase it stopped in; return that phase.

        For an operator, once the cause is mended: the instance becomes
        ``confirming`` or ``compensating`` again, in flight, so that the
        running system's recovery (``SagaManager.recover``) resumes it, like
        any instance in flight, once it is unchanged for the recovery's
        ``older_than``, and sends the step that failed again. The stored
        document is changed as it is (a tool needs no saga class to retry),
        its version moves on, and a history entry records the retry.
        Raises :class:`SagaRetryError` for an unknown instance, one that is
        not parked, or one parked because its state did not read back
        (nothing to resume: mend the row first).
        """
        operation = f"retry saga {saga_id}"
        query = select(rows.c.status, rows.c.state, rows.c.version).where(rows.c.saga_id == saga_id)
        if self.is_postgresql:
            query = query.with_for_update()
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as uow:
            with translated_errors(operation):
                row = (await uow.connection.execute(query)).first()
                if row is None:
                    raise SagaRetryError(saga_id, "no such saga instance")
                document = dict(row.state)
                phase = retry_phase(row.status, document.get("parked_from"), document.get("reason"))
                if phase is None:
                    why = (
                        f"it is {row.status}: only a parked saga can be retried"
                        if row.status != "parked"
                        else f"it was parked with nothing to resume ({document.get('reason')})"
                    )
                    raise SagaRetryError(saga_id, why)
                entry = {"at": datetime.now(UTC).isoformat(), "what": "retried by an operator"}
                document |= {
                    "status": phase,
                    "version": row.version + 1,
                    "history": [*document.get("history", []), {**entry, "step": None}],
                }
                document.pop("parked_from", None)
                await uow.connection.execute(
                    update(rows)
                    .where(rows.c.saga_id == saga_id, rows.c.version == row.version)
                    .values(
                        status=phase,
                        state=document,
                        version=row.version + 1,
                        in_flight=True,
                        updated_at=self._now(),
                    )
                )
            await uow.commit()
        return phase

    async def _write(
        self, statement: Any, operation: str, parameters: dict[str, Any] | None = None
    ) -> Any:
        uow = unit_of_work_for_write(self.engine, operation)
        if uow is not None:
            with translated_errors(operation):
                return await uow.connection.execute(statement, parameters)
        async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as own:
            with translated_errors(operation):
                result = await own.connection.execute(statement, parameters)
            await own.commit()
        return result


class SQLAlchemyBranchBarrier:
    """The TCC branch barrier in ``cqrs_saga_barrier``, written in the handler's transaction.

    ``session`` is an engine, or a session factory on one; the handler must
    run in a ``SQLAlchemyUnitOfWork`` on the same database (the barrier's rows
    commit or roll back with the branch's effect). On PostgreSQL, an insert of
    a row another transaction inserted and has not committed waits for it:
    a cancel racing its try sees the try's outcome.
    """

    def __init__(self, session: EngineSource) -> None:
        self.engine = engine_of(session)
        self.is_postgresql = self.engine.dialect.name == "postgresql"
        self._dialect: Any = postgresql if self.is_postgresql else sqlite

    async def enter(self, command: BranchCommand) -> BarrierOutcome:
        """Record ``command``'s operation in the handler's unit of work; say whether to run it."""
        saga_id, branch, operation = branch_operation(command)
        what = f"pass the barrier of saga {saga_id} branch {branch!r} ({operation})"
        uow = unit_of_work_for_write(self.engine, what)
        if uow is None:
            raise BarrierError(
                f"{type(command).__name__} must {what} inside its handler's unit of work, "
                "so the barrier's row commits or rolls back with its effect"
            )
        connection = uow.connection

        async def insert(
            row_operation: BranchOperation, origin: BranchOperation
        ) -> BranchOperation | None:
            key = (
                (saga_barrier.c.saga_id == saga_id)
                & (saga_barrier.c.branch == branch)
                & (saga_barrier.c.operation == row_operation)
            )
            statement = (
                self._dialect.insert(saga_barrier)
                .values(
                    saga_id=saga_id,
                    branch=branch,
                    operation=row_operation,
                    origin=origin,
                    created_at=database_clock(self.is_postgresql),
                )
                .on_conflict_do_nothing()
            )
            with translated_errors(what):
                if (await connection.execute(statement)).rowcount == 1:
                    return None
                found = await connection.scalar(select(saga_barrier.c.origin).where(key))
            return cast("BranchOperation", found)

        return await decide(operation, insert)


def _document(state: SagaState, version: int) -> dict[str, Any]:
    document = state.model_dump(mode="json")
    document["version"] = version
    if document.get("parked_from") is None:
        # written only when set: a process of an earlier release reads the document too
        document.pop("parked_from", None)
    return document


async def _any(connection: AsyncConnection, statement: Any) -> bool:
    return (await connection.execute(statement)).first() is not None


__all__ = ["SQLAlchemyBranchBarrier", "SQLAlchemySagaRepository", "UnreadableSagaStateError"]

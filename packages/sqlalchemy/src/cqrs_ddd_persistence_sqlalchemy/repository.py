"""``SQLAlchemyRepository``: state-stored aggregates as JSON documents, with an outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pydantic
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.exceptions import (
    AggregateNotFoundError,
    ConcurrencyError,
    NoActiveUnitOfWorkError,
)
from cqrs_ddd_core.serialization import UnreadableJSON, encode_state
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, Reads, engine_of
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.exceptions import UnreadableStateError
from cqrs_ddd_persistence_sqlalchemy.outbox import write_outbox
from cqrs_ddd_persistence_sqlalchemy.schema import aggregates
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import unit_of_work_for_write

TAggregate = TypeVar("TAggregate", bound=AggregateRoot)


class SQLAlchemyRepository(Generic[TAggregate]):
    """Stores aggregates of one type as JSON documents in ``cqrs_aggregates``.

    ``save`` joins the command's :class:`SQLAlchemyUnitOfWork`: it writes the
    aggregate's state, checked against the version it was loaded at (a stale
    aggregate raises ``ConcurrencyError``), and one outbox row per new event,
    all in the command's transaction. Every save advances the stored version,
    even one that recorded no event
    (:meth:`~cqrs_ddd_core.domain.AggregateRoot.collect_state_change`), so two
    commands changing the same aggregate at once never both succeed. The events
    also go to the command, recorded as stored (``CommandScope.record(...,
    stored=True)``): the mediator returns and dispatches them after the commit,
    and never appends them to an event store, whatever the orchestrator's
    registrations say. The outbox is where a state-stored aggregate's events live.
    ``topic`` names the outbox topic (the aggregate's type name by default).

    The state is ``model_dump(mode="json")``; loading validates it back into the
    class, so the aggregate's fields must round-trip through JSON.
    """

    def __init__(
        self, aggregate_type: type[TAggregate], source: EngineSource, *, topic: str | None = None
    ) -> None:
        self.aggregate_type = aggregate_type
        self.engine: AsyncEngine = engine_of(source)
        self._reads = Reads(self.engine)
        self.topic = topic or aggregate_type.aggregate_type_name
        self._type_name = aggregate_type.aggregate_type_name
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )(aggregates)

    async def get(self, aggregate_id: str) -> TAggregate:
        """Return the aggregate, or raise ``AggregateNotFoundError``."""
        found = await self.find(aggregate_id)
        if found is None:
            raise AggregateNotFoundError(self._type_name, aggregate_id)
        return found

    async def find(self, aggregate_id: str) -> TAggregate | None:
        """Return the aggregate, or None when there is none with that id."""
        query = select(aggregates.c.state, aggregates.c.version).where(
            aggregates.c.aggregate_type == self._type_name,
            aggregates.c.aggregate_id == aggregate_id,
        )

        async def read(connection: AsyncConnection) -> tuple[Any, int] | None:
            row = (await connection.execute(query)).first()
            return None if row is None else (row.state, row.version)

        operation = f"load {self._type_name} {aggregate_id!r}"
        row = await self._reads.run(operation, read)
        if row is None:
            return None
        state, version = row
        if not isinstance(state, dict):
            reason = (
                f"its state is not valid JSON ({state.reason})"
                if isinstance(state, UnreadableJSON)
                else f"its state is a {type(state).__name__}, not a JSON object"
            )
            raise UnreadableStateError(self._type_name, aggregate_id, reason)
        try:
            return self.aggregate_type.model_validate({**state, "version": version})
        except pydantic.ValidationError as error:
            raise UnreadableStateError(
                self._type_name, aggregate_id, f"its state no longer fits the class: {error}"
            ) from error

    async def save(self, aggregate: TAggregate) -> None:
        """Write the aggregate's state and outbox rows in the ambient unit of work."""
        uow = unit_of_work_for_write(self.engine, f"save {self._type_name} {aggregate.id!r}")
        if uow is None:  # a state-stored save only happens inside a command
            raise NoActiveUnitOfWorkError
        connection = uow.connection
        state = encode_state(aggregate)
        expected_version, events = aggregate.collect_state_change()
        events = current_scope().record(events, stored=True)
        state["version"] = aggregate.version
        with translated_errors(f"save {self._type_name} {aggregate.id!r}"):
            await self._write_state(connection, aggregate, state, expected_version)
            await write_outbox(connection, events, topic=self.topic)

    async def _write_state(
        self,
        connection: AsyncConnection,
        aggregate: TAggregate,
        state: dict[str, Any],
        expected_version: int,
    ) -> None:
        now = datetime.now(UTC)
        key = (aggregates.c.aggregate_type == self._type_name) & (
            aggregates.c.aggregate_id == aggregate.id
        )
        if expected_version == 0:
            written = await connection.execute(
                self._insert.values(
                    aggregate_type=self._type_name,
                    aggregate_id=aggregate.id,
                    version=aggregate.version,
                    state=state,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
                .returning(aggregates.c.version)
            )
            stored = written.first() is not None
        else:
            result = await connection.execute(
                update(aggregates)
                .where(key, aggregates.c.version == expected_version)
                .values(version=aggregate.version, state=state, updated_at=now)
                .returning(aggregates.c.version)
            )
            stored = result.first() is not None
        if not stored:
            actual = await connection.scalar(select(aggregates.c.version).where(key))
            raise ConcurrencyError(
                aggregate.id, expected_version=expected_version, actual_version=int(actual or 0)
            )

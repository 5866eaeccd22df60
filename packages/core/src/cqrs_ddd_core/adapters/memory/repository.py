"""An in-memory repository for state-stored aggregates."""

from __future__ import annotations

from typing import Generic, TypeVar

from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.exceptions import AggregateNotFoundError, ConcurrencyError, UnitOfWorkError
from cqrs_ddd_core.ports.specification import Satisfiable
from cqrs_ddd_core.serialization import encode_state

TAggregate = TypeVar("TAggregate", bound=AggregateRoot)


class InMemoryRepository(Generic[TAggregate]):
    """Keeps aggregates of one type in a dict, transactionally, for fast tests.

    ``save`` stages the aggregate in the ambient :class:`InMemoryUnitOfWork` and
    hands its new events to the command, recorded as stored (a state-stored
    aggregate's events are never appended to an event store: the mediator
    only returns and dispatches them); the change becomes visible when the
    unit of work commits, and only if the stored version is still the one the
    aggregate was loaded at (otherwise ``ConcurrencyError``). Every save
    advances the version, even one that recorded no event
    (:meth:`~cqrs_ddd_core.domain.AggregateRoot.collect_state_change`). Readers
    always get a copy, so changing a loaded aggregate without saving it changes
    nothing.
    """

    def __init__(self, aggregate_type: type[TAggregate]) -> None:
        self.aggregate_type = aggregate_type
        self._items: dict[str, TAggregate] = {}

    async def get(self, aggregate_id: str) -> TAggregate:
        """Return a copy of the aggregate, or raise ``AggregateNotFoundError``."""
        found = await self.find(aggregate_id)
        if found is None:
            raise AggregateNotFoundError(self.aggregate_type.aggregate_type_name, aggregate_id)
        return found

    async def find(self, aggregate_id: str) -> TAggregate | None:
        """Return a copy of the aggregate, or None."""
        stored = self._items.get(aggregate_id)
        return stored.model_copy(deep=True) if stored is not None else None

    async def save(self, aggregate: TAggregate) -> None:
        """Stage the aggregate and its new events in the ambient unit of work."""
        scope = current_scope()
        if not isinstance(scope.uow, InMemoryUnitOfWork):
            raise UnitOfWorkError(
                "InMemoryRepository needs an InMemoryUnitOfWork, "
                f"not {type(scope.uow).__qualname__}"
            )
        encode_state(aggregate)  # refuses what the SQL repository would refuse
        expected_version, events = aggregate.collect_state_change()
        scope.record(events, stored=True)
        state = aggregate.model_copy(deep=True)
        aggregate_id = aggregate.id

        def check() -> None:
            stored = self._items.get(aggregate_id)
            actual_version = stored.version if stored is not None else 0
            if actual_version != expected_version:
                raise ConcurrencyError(
                    aggregate_id, expected_version=expected_version, actual_version=actual_version
                )

        def apply() -> None:
            self._items[aggregate_id] = state

        scope.uow.stage((id(self), aggregate_id), check=check, apply=apply)

    async def list(self, specification: Satisfiable[TAggregate] | None = None) -> list[TAggregate]:
        """Return copies of the stored aggregates that meet ``specification`` (all if None)."""
        return [
            item.model_copy(deep=True)
            for item in self._items.values()
            if specification is None or specification.is_satisfied_by(item)
        ]

    def __len__(self) -> int:
        return len(self._items)

"""``EventSourcedRepository``: load event-sourced aggregates, hand their new events on."""

from __future__ import annotations

from typing import Generic, TypeVar

from cqrs_ddd_advanced_core.event_sourcing.loader import EventSourcedLoader
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_core.domain.aggregate import AggregateRoot

TAggregate = TypeVar("TAggregate", bound=AggregateRoot)


class EventSourcedRepository(Generic[TAggregate]):
    """The repository of an event-sourced aggregate type.

    ``get``/``find`` rebuild the aggregate through its loader (snapshot first,
    when it has a snapshot store). ``save`` takes the aggregate's new events and
    hands them to the command, and takes a snapshot when the loader's snapshot
    strategy says so; the
    ``EventSourcedMediator`` appends them, with the expected version the first
    one implies, when the handler returns. Use it with that mediator: the core
    mediator keeps no events.
    """

    def __init__(self, loader: EventSourcedLoader[TAggregate]) -> None:
        self.loader = loader

    async def get(self, aggregate_id: str) -> TAggregate:
        """Return the aggregate, or raise ``AggregateNotFoundError``."""
        return await self.loader.load(aggregate_id)

    async def find(self, aggregate_id: str) -> TAggregate | None:
        """Return the aggregate, or None when it has no events."""
        return await self.loader.find(aggregate_id)

    async def save(self, aggregate: TAggregate) -> None:
        """Hand the aggregate's new events to the command; snapshot it if due.

        The snapshot (when the loader has a snapshot store whose strategy says
        so) is written in the command's unit of work, with the events.
        """
        scope = current_scope()
        previous_version = aggregate.persisted_version
        scope.record(aggregate.collect_events())
        snapshots = self.loader.snapshot_store
        if snapshots is not None and aggregate.version > previous_version:
            await snapshots.snapshot_if_due(aggregate, previous_version=previous_version)

"""``EventSourcedRepository``: load event-sourced aggregates, append their new events."""

from __future__ import annotations

from typing import Generic, TypeVar

from cqrs_ddd_advanced_core.event_sourcing.loader import EventSourcedLoader
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.ports.event_store import append_for_command

TAggregate = TypeVar("TAggregate", bound=AggregateRoot)


class EventSourcedRepository(Generic[TAggregate]):
    """The repository of an event-sourced aggregate type.

    ``get``/``find`` rebuild the aggregate through its loader (snapshot first,
    when it has a snapshot store). ``save`` appends the aggregate's new events
    to the loader's event store itself, in the command's unit of work, then
    takes a snapshot when the loader's snapshot strategy says so. The events
    are recorded in the command as stored, so the mediator (core or
    ``EventSourcedMediator``) returns and dispatches them after the commit
    but never appends them a second time.
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
        """Append the aggregate's new events to its stream; snapshot it if due.

        Must run inside a command (``NoActiveUnitOfWorkError`` otherwise): the
        append and the snapshot join the command's unit of work, so they commit
        with the rest of the command or not at all. The events are stamped with
        the command's correlation and causation ids and appended with the
        aggregate's persisted version as the expected version: an aggregate
        that another command changed since it was loaded raises
        ``ConcurrencyError``, here or, where the store holds the append back
        to the commit (``SQLAlchemyEventStore`` on PostgreSQL, see
        ``append_for_command``), from the command's commit. Either way the
        command fails whole, and ``RetryBehavior`` and ``ConflictBehavior``
        run it again. A save without new events writes nothing.
        """
        scope = current_scope()
        previous_version = aggregate.persisted_version
        events = scope.record(aggregate.collect_events(), stored=True)
        if not events:
            return
        await append_for_command(
            self.loader.event_store, aggregate.id, events, expected_version=previous_version
        )
        snapshots = self.loader.snapshot_store
        if snapshots is not None:
            await snapshots.snapshot_if_due(aggregate, previous_version=previous_version)

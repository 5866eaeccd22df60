"""``EventSourcedLoader``: rebuilds an aggregate from its stream of events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar, cast

from cqrs_ddd_advanced_core.decorators.event_sourcing import is_marked_non_event_sourced
from cqrs_ddd_advanced_core.domain.aggregate_mixin import EventSourcedAggregateMixin
from cqrs_ddd_advanced_core.domain.exceptions import EventSourcedAggregateRequiredError
from cqrs_ddd_advanced_core.snapshots.store import SnapshotStore
from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_advanced_core.upcasting.registry import UpcasterRegistry
from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import AggregateNotFoundError
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.serialization import EventTypeRegistry

TAggregate = TypeVar("TAggregate", bound=AggregateRoot)


class EventSourcedLoader(Generic[TAggregate]):
    """Loads aggregates of one event-sourced type by replaying their stored events.

    With a ``snapshot_store`` the newest usable snapshot is restored first and
    only the later events are read (in the same round trip when the snapshot
    repository reads the event store's events, see ``SnapshotAndEventsReader``).
    Each stored event is upcast along ``upcaster_registry``'s chain and turned
    back into its class through ``event_registry`` (an unknown type, a failing
    upcaster or a malformed payload raises a typed error naming the stream,
    version and type) and applied by the aggregate's
    ``@aggregate_event_handler`` methods. The aggregate type must use
    :class:`EventSourcedAggregateMixin` and must not be ``@non_event_sourced``;
    otherwise :class:`EventSourcedAggregateRequiredError` is raised when the
    loader is built.
    """

    def __init__(
        self,
        aggregate_type: type[TAggregate],
        event_store: EventStore,
        event_registry: EventTypeRegistry,
        snapshot_store: SnapshotStore | None = None,
        upcaster_registry: UpcasterRegistry | None = None,
    ) -> None:
        _require_event_sourced(aggregate_type)
        self.aggregate_type = aggregate_type
        self._type_name = aggregate_type.aggregate_type_name
        self.event_store = event_store
        self.event_registry = event_registry
        self.snapshot_store = snapshot_store
        self.upcaster_registry = upcaster_registry
        self.decoder = EventDecoder(event_registry, upcaster_registry)

    async def load(self, aggregate_id: str) -> TAggregate:
        """Return the aggregate rebuilt from its events, or raise ``AggregateNotFoundError``."""
        aggregate = await self.find(aggregate_id)
        if aggregate is None:
            raise AggregateNotFoundError(self.aggregate_type.aggregate_type_name, aggregate_id)
        return aggregate

    async def find(self, aggregate_id: str) -> TAggregate | None:
        """Return the aggregate rebuilt from its events, or None when it has none.

        A stream written by another aggregate type (ids are shared by all types
        of one event store) is not this type's aggregate: None as well.
        """
        if self.snapshot_store is None:
            restored, stored = None, await self.event_store.load_stream(aggregate_id)
        else:
            restored, stored = await self.snapshot_store.restore_with_events(
                self.aggregate_type, aggregate_id, self.event_store
            )
        if restored is None and (
            not stored or stored[0].aggregate_type not in (None, self._type_name)
        ):
            return None
        events = [self.decoder.decode(event) for event in stored]
        return self.rebuild(aggregate_id, events, starting_from=restored)

    def rebuild(
        self,
        aggregate_id: str,
        events: Sequence[DomainEvent],
        *,
        starting_from: TAggregate | None = None,
    ) -> TAggregate:
        """Return the aggregate with ``events`` applied in order (no I/O).

        Without ``starting_from`` (a restored snapshot) the aggregate starts
        from its field defaults (fields without one stay unset until an event
        handler sets them), so the handlers alone decide its state.
        """
        aggregate = starting_from or cast(
            "TAggregate", self.aggregate_type.model_construct(id=aggregate_id, version=0)
        )
        EventSourcedAggregateMixin.replay_events(aggregate, events)  # type: ignore[arg-type]
        return aggregate


def _require_event_sourced(aggregate_type: type) -> None:
    if not issubclass(aggregate_type, EventSourcedAggregateMixin) or is_marked_non_event_sourced(
        aggregate_type
    ):
        raise EventSourcedAggregateRequiredError(aggregate_type.__name__, "EventSourcedLoader")

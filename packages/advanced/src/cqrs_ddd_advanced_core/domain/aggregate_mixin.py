"""``EventSourcedAggregateMixin``: aggregates whose state is rebuilt from their events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel

from cqrs_ddd_advanced_core.domain.conflict_events import ConflictResolved, apply_resolved_state
from cqrs_ddd_advanced_core.domain.event_handlers import aggregate_event_handler
from cqrs_ddd_advanced_core.domain.event_validation import EventValidator
from cqrs_ddd_core.domain.events import DomainEvent

TEvent = TypeVar("TEvent", bound=DomainEvent)


class _RecordsEvents(Protocol):
    """What the mixin needs from the aggregate it is mixed into (an ``AggregateRoot``)."""

    version: int
    event_validator: ClassVar[EventValidator]

    def stamp_event(self, event: TEvent) -> TEvent: ...

    def record_event(self, event: TEvent) -> TEvent: ...


class EventSourcedAggregateMixin:
    """Lets an ``AggregateRoot`` apply its events through ``@aggregate_event_handler`` methods.

    Mix it in before ``AggregateRoot``::

        class Order(EventSourcedAggregateMixin, AggregateRoot): ...

    Command methods call :meth:`trigger_event`: the event is applied by its
    handler and, only if that succeeds, recorded. Loading calls
    :meth:`replay_events`: stored events are applied in order and the version
    follows them. Handlers only change state, so a replay rebuilds exactly the
    aggregate that the original commands produced.

    Class settings (declare them as ``ClassVar`` in subclasses):
    ``event_validator`` decides what happens to an event without a handler
    (lenient by default: nothing); ``recorded_event_types`` optionally lists the
    events the aggregate records, for :meth:`EventValidator.validate`;
    ``schema_version`` is the version of the aggregate's state shape, carried
    by its snapshots: raise it when fields change, and older snapshots are
    ignored instead of loaded into the changed class.

    The mixin applies one event itself: :class:`ConflictResolved`, recorded
    when a conflict-resolving handler merged a concurrent change, sets the
    fields its ``state`` names (declare your own handler for it to do more).
    """

    event_validator: ClassVar[EventValidator] = EventValidator()
    recorded_event_types: ClassVar[tuple[type[DomainEvent], ...]] = ()
    schema_version: ClassVar[int] = 1

    @classmethod
    def event_handler_map(cls) -> Mapping[type[DomainEvent], str]:
        """Return the handler method names of this class by the event class they apply."""
        return cls.event_validator.handlers_of(cls)

    @classmethod
    def handled_event_types(cls) -> frozenset[type[DomainEvent]]:
        """Return the event classes this aggregate has handlers for."""
        return frozenset(cls.event_handler_map())

    def apply_event(self: _RecordsEvents, event: DomainEvent) -> bool:
        """Apply ``event`` to the state through its handler; return whether one ran.

        Neither records the event nor changes the version.
        """
        name = self.event_validator.handler_for(type(self), event)
        if name is None:
            return False
        handler: Any = getattr(self, name)
        handler(event)
        return True

    def trigger_event(self: _RecordsEvents, event: TEvent) -> TEvent:
        """Apply ``event`` as the aggregate's next event, then record it; return it stamped.

        If the handler raises, nothing is recorded and the version is unchanged.
        """
        stamped = self.stamp_event(event)
        EventSourcedAggregateMixin.apply_event(self, stamped)
        return self.record_event(stamped)  # already stamped: recorded without a second copy

    def replay_events(self: _RecordsEvents, events: Iterable[DomainEvent]) -> None:
        """Apply stored events in order; the version follows the last one."""
        for event in events:
            EventSourcedAggregateMixin.apply_event(self, event)
            if event.version is not None:
                self.version = event.version

    @aggregate_event_handler(ConflictResolved)
    def _apply_conflict_resolved(self, event: ConflictResolved) -> None:
        assert isinstance(self, BaseModel)  # noqa: S101 - the mixin goes on an AggregateRoot
        apply_resolved_state(self, event.state)

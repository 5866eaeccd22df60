"""Aggregate roots: consistency boundaries that record domain events."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import Field, PrivateAttr

from cqrs_ddd_core.domain.entity import Entity
from cqrs_ddd_core.domain.events import DomainEvent

TEvent = TypeVar("TEvent", bound=DomainEvent)


class AggregateRoot(Entity):
    """The root entity of an aggregate: its id, its version and its new events.

    ``version`` counts the events the aggregate has recorded over its life: 0 for
    a new aggregate, N after N events (the first event has version 1). State
    changes happen in methods that call :meth:`record_event`; the framework then
    takes the recorded events once with :meth:`collect_events`, persists them with
    the aggregate in one transaction and dispatches them after the commit.

    A state-stored aggregate (saved as its state, not rebuilt from events) may
    also change without recording an event. Its repository saves it through
    :meth:`collect_state_change`, which advances the version by one for such a
    save, so that every save is checked against the version it was loaded at
    and no concurrent change is ever lost. Its version then counts saves and
    events rather than events alone.

    ``aggregate_type_name`` is the stable name events and streams use for this
    class; it defaults to the class name.
    """

    aggregate_type_name: ClassVar[str] = "AggregateRoot"

    version: int = Field(default=0, ge=0)
    _pending_events: list[DomainEvent] = PrivateAttr(default_factory=list)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "aggregate_type_name" not in cls.__dict__:
            cls.aggregate_type_name = cls.__name__

    def stamp_event(self, event: TEvent) -> TEvent:
        """Return a copy of ``event`` stamped as this aggregate's next event, without recording it.

        The copy carries this aggregate's id and type name and the next version.
        """
        return event.model_copy(
            update={
                "aggregate_id": self.id,
                "aggregate_type": self.aggregate_type_name,
                "version": self.version + 1,
            }
        )

    def record_event(self, event: TEvent) -> TEvent:
        """Record ``event`` as the aggregate's next event and return it, stamped.

        The returned event carries this aggregate's id and type and the next
        version (see :meth:`stamp_event`); the aggregate's ``version`` advances by one.
        It is a stamped copy, or ``event`` itself when it already carries exactly
        those values (as :meth:`stamp_event` returns it): events are immutable.
        """
        version = self.version + 1
        if (
            event.version == version
            and event.aggregate_id == self.id
            and event.aggregate_type == self.aggregate_type_name
        ):
            stamped = event
        else:
            stamped = self.stamp_event(event)
        self.version += 1
        self._pending_events.append(stamped)
        return stamped

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        """Return the events recorded since the last collection, without taking them."""
        return tuple(self._pending_events)

    @property
    def persisted_version(self) -> int:
        """Return the version the aggregate had before its pending events.

        This is the expected version for optimistic concurrency when saving.
        """
        return self.version - len(self._pending_events)

    def collect_events(self) -> list[DomainEvent]:
        """Take the recorded events: each is handed out once, then forgotten."""
        events, self._pending_events = self._pending_events, []
        return events

    def collect_state_change(self) -> tuple[int, list[DomainEvent]]:
        """Take what a state-stored save writes: the version to check, and the new events.

        Returns the version the stored state must still have (the one the
        aggregate was loaded or last saved at) and the recorded events, taken
        as :meth:`collect_events` takes them. The aggregate's ``version`` is
        then the version to store: advanced by the number of events, or by one
        when the change recorded none, so that a concurrent save of the same
        aggregate is always detected.
        """
        expected_version = self.persisted_version
        events = self.collect_events()
        if not events:
            self.version = expected_version + 1
        return expected_version, events

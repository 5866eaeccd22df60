"""``EventSourcedPersistenceOrchestrator``: which aggregates keep events, and where."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from cqrs_ddd_advanced_core.decorators.event_sourcing import is_marked_non_event_sourced
from cqrs_ddd_advanced_core.domain.exceptions import EventSourcingConfigurationError
from cqrs_ddd_core.cqrs.response import CommandResponse
from cqrs_ddd_core.cqrs.scope import stamp_ids
from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.ports.event_store import EventStore, append_for_command

AggregateTypeRef = str | type[AggregateRoot]
"""An aggregate type, given as its class or as its ``aggregate_type_name``."""


class EventSourcedPersistenceOrchestrator:
    """Appends the events no repository stored to their event store, per aggregate type.

    A repository decides where the events of the aggregates it saves go
    (``EventSourcedRepository`` appends them to their stream, a state-stored
    repository keeps them with the state); ``EventSourcedMediator`` hands this
    orchestrator only the events of a command that no repository stored: those
    a handler returned in its ``CommandResponse`` without saving them. For
    those, whether an aggregate type is event-sourced is decided, in this order:

    1. an explicit :meth:`register_event_sourced_type` or
       :meth:`register_non_event_sourced_type` (the latest one for the type);
    2. when the type is given as a class, the ``@non_event_sourced`` mark on it;
    3. the default: event-sourced.

    Events carry their aggregate type only by name, so for them the
    registrations decide, else the default: mark a class and also register it
    non-event-sourced if a handler returns its events without a repository.

    ``default_event_store`` is required (``EventSourcingConfigurationError``
    otherwise, at construction). Event-sourced types append their events to
    the type's event store (the one given at registration, else the default).
    Call :meth:`persist_events` inside the command's unit of work, as
    ``EventSourcedMediator`` does: the append joins the command's transaction,
    so a failure anywhere leaves nothing.
    """

    def __init__(self, default_event_store: EventStore | None = None) -> None:
        if default_event_store is None:
            raise EventSourcingConfigurationError(
                "EventSourcedPersistenceOrchestrator requires default_event_store: the event "
                "store that keeps the events of event-sourced types"
            )
        self.default_event_store: EventStore = default_event_store
        self._event_sourced: dict[str, EventStore | None] = {}
        self._state_stored: set[str] = set()

    def register_event_sourced_type(
        self, aggregate_type: AggregateTypeRef, event_store: EventStore | None = None
    ) -> None:
        """Keep the events of ``aggregate_type`` in ``event_store`` (or the default one)."""
        name = _name_of(aggregate_type)
        self._state_stored.discard(name)
        self._event_sourced[name] = event_store

    def register_non_event_sourced_type(self, aggregate_type: AggregateTypeRef) -> None:
        """Treat ``aggregate_type`` as state-stored: its events are not appended here."""
        name = _name_of(aggregate_type)
        self._event_sourced.pop(name, None)
        self._state_stored.add(name)

    def is_event_sourced(self, aggregate_type: AggregateTypeRef) -> bool:
        """Return whether the events of ``aggregate_type`` (a class or a name) are appended here.

        A registration decides; without one, a class marked
        ``@non_event_sourced`` is not, and every other type (any name) is.
        """
        name = _name_of(aggregate_type)
        if name in self._event_sourced:
            return True
        if name in self._state_stored:
            return False
        return not (
            isinstance(aggregate_type, type) and is_marked_non_event_sourced(aggregate_type)
        )

    def event_store_for(self, aggregate_type: AggregateTypeRef) -> EventStore:
        """Return the event store that keeps the events of ``aggregate_type``.

        Raises ``EventSourcingConfigurationError`` for a type that is not
        event-sourced (see :meth:`is_event_sourced`).
        """
        name = _name_of(aggregate_type)
        if not self.is_event_sourced(aggregate_type):
            raise EventSourcingConfigurationError(f"{name!r} is not an event-sourced type")
        store = self._event_sourced.get(name)
        return self.default_event_store if store is None else store

    async def persist_event(
        self, event: DomainEvent, command_response: CommandResponse[Any] | None = None
    ) -> None:
        """Persist one event; see :meth:`persist_events`."""
        await self.persist_events([event], command_response)

    async def persist_events(
        self, events: Sequence[DomainEvent], command_response: CommandResponse[Any] | None = None
    ) -> None:
        """Append the events of event-sourced aggregate types, one append per stream, in order.

        Give it only events no repository stored, as ``EventSourcedMediator``
        does. Each stream's batch is appended with the expected version its first
        event implies, so a stale aggregate raises ``ConcurrencyError``. Events
        lacking correlation or causation ids take them from ``command_response``.
        Events of types registered non-event-sourced, and events no aggregate
        recorded (without an aggregate id), are skipped.
        """
        for aggregate_type, stream_id, batch in _batches(events):
            if not self.is_event_sourced(aggregate_type):
                continue
            stamped = [
                stamp_ids(event, command_response.correlation_id, command_response.causation_id)
                if command_response is not None
                else event
                for event in batch
            ]
            first_version = stamped[0].version or 1
            await append_for_command(
                self.event_store_for(aggregate_type),
                stream_id,
                stamped,
                expected_version=first_version - 1,
            )


def _name_of(aggregate_type: AggregateTypeRef) -> str:
    if isinstance(aggregate_type, str):
        return aggregate_type
    return aggregate_type.aggregate_type_name


def _batches(events: Sequence[DomainEvent]) -> Iterator[tuple[str, str, list[DomainEvent]]]:
    grouped: dict[tuple[str, str], list[DomainEvent]] = {}
    for event in events:
        if event.aggregate_type is None or event.aggregate_id is None:
            continue
        grouped.setdefault((event.aggregate_type, event.aggregate_id), []).append(event)
    for (aggregate_type, stream_id), batch in grouped.items():
        yield aggregate_type, stream_id, batch

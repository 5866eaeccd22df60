"""``EventDecoder``: stored events back to domain events, at their current schema."""

from __future__ import annotations

from cqrs_ddd_advanced_core.upcasting.registry import UpcasterRegistry
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import EventSchemaVersionError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.serialization import EventTypeRegistry


class EventDecoder:
    """Upcasts a stored event along its chain, then builds its class through the registry.

    Everything that reads events (aggregate loads, projections, replays) goes
    through one of these, so an event is read the same way everywhere. Errors
    are typed and name the stream and version: ``UpcastingError``,
    ``UnknownEventTypeError``, ``EventSchemaVersionError`` (the chain does not
    reach the class's version), ``EventDeserializationError``.
    """

    def __init__(
        self, event_registry: EventTypeRegistry, upcaster_registry: UpcasterRegistry | None = None
    ) -> None:
        self.event_registry = event_registry
        self.upcaster_registry = upcaster_registry

    def decode(self, stored: StoredEvent) -> DomainEvent:
        """Return the domain event ``stored`` holds, at its class's schema version."""
        if self.upcaster_registry is None:
            return self.event_registry.from_stored(stored)
        payload, schema_version = self.upcaster_registry.upcast(
            stored.event_type,
            stored.schema_version,
            stored.payload,
            stream_id=stored.stream_id,
            version=stored.version,
        )
        try:
            return self.event_registry.from_stored(
                stored, payload=payload, schema_version=schema_version
            )
        except EventSchemaVersionError as error:
            raise EventSchemaVersionError(
                stored.event_type,
                stored_version=stored.schema_version,
                class_version=error.class_version,
                stream_id=stored.stream_id,
                version=stored.version,
            ) from error

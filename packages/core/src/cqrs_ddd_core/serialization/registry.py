"""The event type registry: stable names and schema versions mapped to event classes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pydantic

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import (
    EventDeserializationError,
    EventSchemaVersionError,
    EventTypeConflictError,
    FieldIssue,
    UnknownEventTypeError,
)
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.serialization.codec import (
    ENVELOPE_KEYS,
    encode_event,
    payload_issue,
    validation_issues,
)

TEventClass = TypeVar("TEventClass", bound=type[DomainEvent])


class EventTypeRegistry:
    """Maps each event type name to its class, and events to JSON documents and back.

    Only registered classes are ever built from stored data: a name the registry
    does not know raises :class:`~cqrs_ddd_core.exceptions.UnknownEventTypeError`,
    and no stored string is ever imported as a module path. Registries are plain
    objects built at the composition root; ``register`` also works as a class
    decorator.
    """

    def __init__(self, event_classes: Iterable[type[DomainEvent]] = ()) -> None:
        self._classes: dict[str, type[DomainEvent]] = {}
        for event_class in event_classes:
            self.register(event_class)

    def register(self, event_class: TEventClass) -> TEventClass:
        """Register ``event_class`` under its ``event_type`` name and return it.

        Registering the same class again is harmless; registering a different
        class under a taken name raises ``EventTypeConflictError``.
        """
        name = event_class.event_type
        existing = self._classes.get(name)
        if existing is not None and existing is not event_class:
            raise EventTypeConflictError(name, existing, event_class)
        self._classes[name] = event_class
        return event_class

    def resolve(
        self, event_type: str, *, stream_id: str | None = None, version: int | None = None
    ) -> type[DomainEvent]:
        """Return the class registered under ``event_type``.

        ``stream_id`` and ``version`` only enrich the error raised for an unknown name.
        """
        try:
            return self._classes[event_type]
        except KeyError:
            raise UnknownEventTypeError(event_type, stream_id=stream_id, version=version) from None

    def is_registered(self, event_type: str) -> bool:
        """Return whether a class is registered under ``event_type``."""
        return event_type in self._classes

    def schema_version_of(self, event_type: str) -> int:
        """Return the current schema version of the class registered under ``event_type``."""
        return self.resolve(event_type).schema_version

    def __iter__(self) -> Iterator[type[DomainEvent]]:
        return iter(self._classes.values())

    def __len__(self) -> int:
        return len(self._classes)

    def serialize(self, event: DomainEvent) -> dict[str, Any]:
        """Return ``event`` as a portable JSON document (see :func:`encode_event`).

        The event's class must be registered, so that whatever is written can be
        read back by this registry.
        """
        registered = self.resolve(event.event_type)
        if registered is not type(event):
            raise EventTypeConflictError(event.event_type, registered, type(event))
        return encode_event(event)

    def deserialize(self, document: Mapping[str, Any]) -> DomainEvent:
        """Build the event a document made by :meth:`serialize` describes.

        Raises ``UnknownEventTypeError`` for an unregistered name,
        ``EventSchemaVersionError`` when the document's schema version is not the
        class's, and ``EventDeserializationError`` naming each bad field when the
        document does not fit the class.
        """
        event_type = document.get("event_type")
        if not isinstance(event_type, str):
            raise EventDeserializationError(
                str(event_type), [FieldIssue("event_type", "must be a string")]
            )
        missing = [key for key in (*ENVELOPE_KEYS, "payload") if key not in document]
        if missing:
            raise EventDeserializationError(
                event_type, [FieldIssue(key, "is missing") for key in missing]
            )
        envelope = {key: document[key] for key in ENVELOPE_KEYS}
        return self._build(
            event_type,
            schema_version=document["schema_version"],
            envelope=envelope,
            payload=document["payload"],
        )

    def from_stored(
        self,
        stored: StoredEvent,
        *,
        payload: Mapping[str, Any] | None = None,
        schema_version: int | None = None,
    ) -> DomainEvent:
        """Build the event a store row describes; errors name its stream and version.

        ``payload`` and ``schema_version``, when given, replace the row's (an
        upcaster's output), so readers need not copy the row to upcast it.
        """
        envelope = {
            "event_id": stored.event_id,
            "occurred_at": stored.occurred_at,
            # a stream holds the events of one aggregate: its id is the aggregate's id
            "aggregate_id": stored.stream_id,
            "aggregate_type": stored.aggregate_type,
            "version": stored.version,
            "correlation_id": stored.correlation_id,
            "causation_id": stored.causation_id,
            "metadata": stored.metadata,
        }
        return self._build(
            stored.event_type,
            schema_version=stored.schema_version if schema_version is None else schema_version,
            envelope=envelope,
            payload=stored.payload if payload is None else payload,
            stream_id=stored.stream_id,
            version=stored.version,
        )

    def _build(
        self,
        event_type: str,
        *,
        schema_version: object,
        envelope: Mapping[str, Any],
        payload: object,
        stream_id: str | None = None,
        version: int | None = None,
    ) -> DomainEvent:
        event_class = self.resolve(event_type, stream_id=stream_id, version=version)
        if not isinstance(payload, Mapping):
            raise EventDeserializationError(
                event_type, [payload_issue(payload)], stream_id=stream_id, version=version
            )
        if not isinstance(schema_version, int) or isinstance(schema_version, bool):
            raise EventDeserializationError(
                event_type,
                [FieldIssue("schema_version", "must be an integer")],
                stream_id=stream_id,
                version=version,
            )
        if schema_version != event_class.schema_version:
            raise EventSchemaVersionError(
                event_type,
                stored_version=schema_version,
                class_version=event_class.schema_version,
                stream_id=stream_id,
                version=version,
            )
        clashes = sorted(set(payload) & set(envelope))
        if clashes:
            raise EventDeserializationError(
                event_type,
                [FieldIssue(key, "is an envelope field, not a payload field") for key in clashes],
                stream_id=stream_id,
                version=version,
            )
        envelope_fields = {
            k: v for k, v in envelope.items() if k not in ("event_type", "schema_version")
        }
        try:
            return event_class.model_validate({**payload, **envelope_fields})
        except pydantic.ValidationError as exc:
            raise EventDeserializationError(
                event_type, validation_issues(exc), stream_id=stream_id, version=version
            ) from exc

"""The message envelope: one domain event as it travels through a broker.

Every adapter sends the same JSON body (content type ``application/json``)::

    {"message_id": ..., "event_type": ..., "schema_version": 1,
     "aggregate_id": ..., "aggregate_type": ..., "version": 3, "position": 42,
     "correlation_id": ..., "causation_id": ..., "occurred_at": "...",
     "metadata": {...}, "payload": {...}}

``message_id`` is the event id: the broker's duplicate detection (NATS
JetStream's ``Nats-Msg-Id``) and the consumers' inbox key. ``position`` is the
event's place in the event log when it came from there (None for an outbox
row). :meth:`MessageEnvelope.headers` maps the envelope's identity onto
broker headers, so a consumer can route without parsing the body.

A body that is not an envelope raises :class:`EnvelopeError` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import CqrsDddError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.serialization import encode_event

CONTENT_TYPE = "application/json"


class EnvelopeError(CqrsDddError):
    """A message body is not an envelope; ``field`` names what is wrong, ``reason`` how."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"not a message envelope: {field}: {reason}")


class MessageEnvelope(BaseModel):
    """One event, as every broker adapter sends it (see the module docs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: UUID
    event_type: str
    schema_version: int = Field(ge=1)
    aggregate_id: str | None = None
    aggregate_type: str | None = None
    version: int | None = None
    position: int | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    occurred_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    payload: dict[str, Any]

    @classmethod
    def of_event(cls, event: DomainEvent, *, position: int | None = None) -> MessageEnvelope:
        """Return the envelope of ``event`` (its fields checked as portable JSON)."""
        return cls.of_document(encode_event(event), position=position)

    @classmethod
    def of_document(
        cls, document: Mapping[str, Any], *, position: int | None = None
    ) -> MessageEnvelope:
        """Return the envelope of an event's JSON document (``encode_event``, an outbox row's)."""
        try:
            return cls(
                message_id=document["event_id"],
                event_type=document["event_type"],
                schema_version=document["schema_version"],
                aggregate_id=document.get("aggregate_id"),
                aggregate_type=document.get("aggregate_type"),
                version=document.get("version"),
                position=position,
                correlation_id=document.get("correlation_id"),
                causation_id=document.get("causation_id"),
                occurred_at=document["occurred_at"],
                metadata=document.get("metadata") or {},
                payload=document["payload"],
            )
        except KeyError as missing:
            raise EnvelopeError(str(missing.args[0]), "missing from the event document") from None
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "$"
            raise EnvelopeError(where, first["msg"]) from None

    @classmethod
    def of_stored(cls, stored: StoredEvent) -> MessageEnvelope:
        """Return the envelope of an event read from the event log."""
        return cls(
            message_id=stored.event_id,
            event_type=stored.event_type,
            schema_version=stored.schema_version,
            aggregate_id=stored.stream_id,
            aggregate_type=stored.aggregate_type,
            version=stored.version,
            position=stored.position,
            correlation_id=stored.correlation_id,
            causation_id=stored.causation_id,
            occurred_at=stored.occurred_at,
            metadata=stored.metadata,
            payload=stored.payload,
        )

    def to_bytes(self) -> bytes:
        """Return the JSON body."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> MessageEnvelope:
        """Read a body; ``EnvelopeError`` naming the field when it is not an envelope."""
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise EnvelopeError("$", f"not JSON ({error})") from None
        if not isinstance(document, Mapping):
            raise EnvelopeError("$", f"a JSON {type(document).__name__}, not an object")
        try:
            return cls.model_validate(document)
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "$"
            raise EnvelopeError(where, first["msg"]) from None

    def headers(self) -> dict[str, str]:
        """Return the broker headers of this envelope (only the fields that are set)."""
        values = {
            "message-id": str(self.message_id),
            "event-type": self.event_type,
            "schema-version": str(self.schema_version),
            "aggregate-id": self.aggregate_id,
            "aggregate-type": self.aggregate_type,
            "aggregate-version": None if self.version is None else str(self.version),
            "correlation-id": self.correlation_id,
            "causation-id": self.causation_id,
        }
        return {name: value for name, value in values.items() if value is not None}

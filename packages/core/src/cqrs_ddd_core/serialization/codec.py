"""Turning domain events into portable JSON documents and back, without a registry.

A serialised event is a JSON-compatible dict: the envelope (``event_type``,
``schema_version``, ``event_id``, ``occurred_at``, ``aggregate_id``,
``aggregate_type``, ``version``, ``correlation_id``, ``causation_id``,
``metadata``) beside ``payload``, the event's own fields in their JSON form.
UUIDs, datetimes and Decimals become strings and come back as their types when
the document is validated against the event class again.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic

from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import EventSerializationError, FieldIssue, ValidationError
from cqrs_ddd_core.serialization.json_safety import (
    MAX_DEPTH,
    has_containers,
    json_key_issues,
    json_safety_issues,
    portable_dump,
)
from cqrs_ddd_core.serialization.stream_ids import stream_id_issue

ENVELOPE_KEYS = (
    "event_type",
    "schema_version",
    "event_id",
    "occurred_at",
    "aggregate_id",
    "aggregate_type",
    "version",
    "correlation_id",
    "causation_id",
    "metadata",
)
"""The keys of a serialised event beside ``payload``."""


class UnreadableJSON(str):
    """Stored text that should hold a JSON document but does not parse.

    Storage adapters hand it out in place of a document they cannot decode (a
    damaged row), so that the reader, not the read, decides what to do: the
    event type registry refuses it with a typed error naming the event, and a
    snapshot store replays the stream instead. ``reason`` says why it did not
    parse; the string itself is the text as stored.
    """

    reason: str

    def __new__(cls, text: str, reason: str) -> UnreadableJSON:
        """Wrap ``text``, which did not parse for ``reason``."""
        unreadable = super().__new__(cls, text)
        unreadable.reason = reason
        return unreadable


def encode_event(event: DomainEvent) -> dict[str, Any]:
    """Return ``event`` as a portable JSON document.

    Raises :class:`~cqrs_ddd_core.exceptions.EventSerializationError`, naming the
    event type and the field, when a value is not portable JSON (NaN or infinite
    floats, the NUL character, lone surrogates, excessive nesting); no backend
    stores such an event.
    """
    # Keys first, on the Python values, at any depth: dumping would quietly turn
    # a key that is not a string into one, or a lone surrogate in a key into
    # U+FFFD, and so store a different document.
    for name, value in event:
        if has_containers(value):
            for where, reason in json_key_issues(value, path=name):
                raise EventSerializationError(event.event_type, where, reason)
    try:
        document = event.model_dump(mode="json")
    except ValueError as error:  # pydantic refuses what it cannot dump (e.g. deep nesting)
        raise EventSerializationError(event.event_type, "$", str(error)) from error
    payload = {key: value for key, value in document.items() if key not in _ENVELOPE_FIELDS}
    encoded: dict[str, Any] = {
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "event_id": document["event_id"],
        "occurred_at": document["occurred_at"],
        "aggregate_id": document["aggregate_id"],
        "aggregate_type": document["aggregate_type"],
        "version": document["version"],
        "correlation_id": document["correlation_id"],
        "causation_id": document["causation_id"],
        "metadata": document["metadata"],
        "payload": payload,
    }
    if type(event).model_dump is not _MODEL_DUMP or not _plainly_portable(encoded):
        for where, reason in json_safety_issues(encoded):
            field = where.removeprefix("$.").removeprefix("payload.")
            raise EventSerializationError(event.event_type, field, reason)
    return encoded


def encode_state(aggregate: AggregateRoot) -> dict[str, Any]:
    """Return a state-stored aggregate's state as a portable JSON document.

    Raises :class:`~cqrs_ddd_core.exceptions.ValidationError` naming each
    field that keeps the state from reading back exactly as it is (keys that
    are not strings at any depth, NaN, NUL, lone surrogates, integers past
    4,300 digits, deep nesting) and an ``id`` that is not a valid stream id
    (at most 255 characters of letters, digits, ``_-:@``): every repository
    runs this, so SQLite, PostgreSQL and memory refuse alike, before any write.
    """
    document, found = portable_dump(aggregate)
    issues = [FieldIssue(path, reason) for path, reason in found]
    reason = stream_id_issue(aggregate.id)
    if reason:
        issues.insert(0, FieldIssue("id", reason))
    if issues:
        raise ValidationError(f"{aggregate.aggregate_type_name} {aggregate.id!r}", issues)
    return document


def _plainly_portable(document: dict[str, Any]) -> bool:
    """Return True only if ``json_safety_issues(document)`` would find nothing.

    A fast check on the dumped text: ``allow_nan=False`` refuses NaN and
    infinities and anything that is not a JSON value, UTF-8 encoding refuses
    lone surrogates, a NUL always appears escaped (as backslash-u0000), at most
    ``MAX_DEPTH`` opening brackets bound the nesting. Keys are strings
    because pydantic's ``mode="json"`` dump (not overridden: checked by the
    caller) only makes string keys. False means "walk the document", which
    then names the field, so the outcome is the same for every input.
    """
    try:
        text = json.dumps(document, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except Exception:  # noqa: BLE001 - whatever the dump refuses, the walk explains
        return False
    return (
        "\\u0000" not in text
        and "\x00" not in text
        and text.count("{") + text.count("[") <= MAX_DEPTH
    )


_ENVELOPE_FIELDS = DomainEvent.envelope_fields()
_MODEL_DUMP = DomainEvent.model_dump


def payload_issue(payload: object) -> FieldIssue:
    """Return why a stored ``payload`` that is not a mapping is refused."""
    if isinstance(payload, UnreadableJSON):
        return FieldIssue("payload", f"is not valid JSON ({payload.reason})")
    return FieldIssue("payload", "must be a JSON object")


def validation_issues(error: pydantic.ValidationError) -> list[FieldIssue]:
    """Return each field pydantic refused, as a dotted path and the reason."""
    return [
        FieldIssue(".".join(str(part) for part in detail["loc"]) or "$", detail["msg"])
        for detail in error.errors()
    ]

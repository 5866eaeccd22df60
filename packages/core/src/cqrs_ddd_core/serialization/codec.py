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

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import EventSerializationError
from cqrs_ddd_core.serialization.json_safety import (
    MAX_DEPTH,
    json_key_issues,
    json_safety_issues,
)

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
    # Keys first, on the Python values: dumping would quietly replace a lone
    # surrogate in a key with U+FFFD and so store a different key.
    for name, value in event:
        if isinstance(value, dict | list | tuple):
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

"""The one check every event store runs on a batch before writing anything.

Running the same validation in every adapter is what makes the in-memory store,
SQLite and PostgreSQL accept and refuse exactly the same appends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import FieldIssue, ValidationError
from cqrs_ddd_core.serialization.codec import encode_event
from cqrs_ddd_core.serialization.stream_ids import stream_id_issue


def prepare_append(
    stream_id: str, events: Sequence[DomainEvent], *, expected_version: int
) -> list[dict[str, Any]]:
    """Validate an append and return each event as a portable JSON document.

    The documents carry their stream versions (``expected_version + 1`` on); an
    event that already carries a version must carry exactly that one. Raises
    :class:`~cqrs_ddd_core.exceptions.ValidationError` naming each bad field
    (``stream_id``, ``expected_version``, ``events[i]...``), or
    ``EventSerializationError`` for a value that is not portable JSON. Nothing
    has been written when either is raised.
    """
    issues: list[FieldIssue] = []
    reason = stream_id_issue(stream_id)
    if reason:
        issues.append(FieldIssue("stream_id", reason))
    if not isinstance(expected_version, int) or isinstance(expected_version, bool):
        issues.append(FieldIssue("expected_version", "must be an integer"))
    elif expected_version < 0:
        issues.append(FieldIssue("expected_version", "must not be negative"))
    if issues:
        raise ValidationError("append", issues)
    seen: set[object] = set()
    for index, event in enumerate(events):
        issues.extend(_event_issues(index, event, stream_id, expected_version + index + 1, seen))
    if issues:
        raise ValidationError("append", issues)
    documents = [encode_event(event) for event in events]
    for index, document in enumerate(documents):
        document["version"] = expected_version + index + 1
        document["aggregate_id"] = stream_id
    return documents


MAX_NAME_LENGTH = 255
"""The longest event type, aggregate type, correlation id or causation id accepted."""


def _event_issues(
    index: int, event: object, stream_id: str, version: int, seen: set[object]
) -> list[FieldIssue]:
    if not isinstance(event, DomainEvent):
        return [FieldIssue(f"events[{index}]", f"is a {type(event).__name__}, not a DomainEvent")]
    issues = _envelope_issues(index, event)
    if event.version is not None and event.version != version:
        issues.append(
            FieldIssue(f"events[{index}].version", f"is {event.version}, expected {version}")
        )
    if event.aggregate_id is not None and event.aggregate_id != stream_id:
        issues.append(
            FieldIssue(
                f"events[{index}].aggregate_id",
                f"is {event.aggregate_id!r}, but the stream is {stream_id!r}",
            )
        )
    if event.event_id in seen:
        issues.append(FieldIssue(f"events[{index}].event_id", "repeats an earlier event's id"))
    seen.add(event.event_id)
    return issues


def _envelope_issues(index: int, event: DomainEvent) -> list[FieldIssue]:
    issues = []
    names: dict[str, object] = {
        "event_type": event.event_type,
        "aggregate_type": event.aggregate_type,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
    }
    for field, value in names.items():
        if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME_LENGTH):
            issues.append(
                FieldIssue(f"events[{index}].{field}", f"must be text of at most {MAX_NAME_LENGTH}")
            )
    metadata: object = event.metadata  # model_copy(update=...) skips validation
    if not isinstance(metadata, dict):
        issues.append(FieldIssue(f"events[{index}].metadata", "must be a JSON object"))
    return issues

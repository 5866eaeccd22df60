"""``TimestampStrategy``: the side that changed last wins, whole or field by field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, overload

from pydantic import BaseModel

from cqrs_ddd_advanced_core.conflict._documents import Side, TModel, merge_sides, same_value
from cqrs_ddd_advanced_core.domain.exceptions import (
    ConflictResolutionError,
    UnresolvableConflictError,
)

_Winner = Literal["existing", "incoming"]


class TimestampStrategy:
    """Resolves a conflict in favour of the side whose timestamp is newer.

    By default the side whose ``timestamp_field`` is newer wins whole. With
    ``per_field_timestamps`` naming a field that maps field names to
    timestamps on each side (``{"email": "2024-05-01T10:00:00+00:00"}``), each
    top-level field is taken from the side that changed it last; a field with
    no timestamp on either side goes by ``timestamp_field``; a field only one
    side has is kept. The merged document then carries, for the timestamp field
    and for each per-field entry, the newer of the two timestamps.

    Timestamps may be datetimes (naive ones are read as UTC), ISO 8601 strings
    or POSIX seconds. On a tie the incoming side wins. A side without a
    timestamp (the field missing or None) loses to the other; when neither
    side has one, ``UnresolvableConflictError`` is raised. A timestamp that is
    none of those kinds raises ``ConflictResolutionError``. The result shares
    no container with the inputs.
    """

    def __init__(
        self, timestamp_field: str = "updated_at", *, per_field_timestamps: str | None = None
    ) -> None:
        self.timestamp_field = timestamp_field
        self.per_field_timestamps = per_field_timestamps

    @overload
    def merge(self, existing: TModel, incoming: TModel) -> TModel: ...
    @overload
    def merge(self, existing: Mapping[str, Any], incoming: Side) -> dict[str, Any]: ...
    @overload
    def merge(self, existing: Side, incoming: Mapping[str, Any]) -> dict[str, Any]: ...
    def merge(self, existing: Side, incoming: Side) -> dict[str, Any] | BaseModel:
        """Return the newer side, or each field from the side that changed it last.

        The result is a model when both sides are models of one class.
        """
        return merge_sides(existing, incoming, self._merge_documents)

    def _merge_documents(
        self, existing: dict[str, Any], incoming: dict[str, Any]
    ) -> dict[str, Any]:
        if self.per_field_timestamps is None:
            return self._merge_whole(existing, incoming)
        return self._merge_fields(existing, incoming, self.per_field_timestamps)

    def _winner(self, existing: Mapping[str, Any], incoming: Mapping[str, Any]) -> _Winner | None:
        field = self.timestamp_field
        return _newer(field, existing.get(field), incoming.get(field))

    def _merge_whole(self, existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
        winner = self._winner(existing, incoming)
        if winner is None:
            raise UnresolvableConflictError(
                self.timestamp_field, None, None, reason="neither side has a timestamp"
            )
        return existing if winner == "existing" else incoming

    def _merge_fields(
        self, existing: dict[str, Any], incoming: dict[str, Any], stamps_field: str
    ) -> dict[str, Any]:
        merged = dict(existing)
        for field, value in incoming.items():
            if field == stamps_field:
                merged[field] = _newest_stamps(
                    field, _stamps(field, existing), _stamps(field, incoming)
                )
            elif field == self.timestamp_field:
                merged[field] = _newest(field, existing.get(field), value)
            elif field in existing and not same_value(existing[field], value):
                winner = self._field_winner(field, existing, incoming, stamps_field)
                merged[field] = existing[field] if winner == "existing" else value
            else:
                merged[field] = value
        return merged

    def _field_winner(
        self,
        field: str,
        existing: Mapping[str, Any],
        incoming: Mapping[str, Any],
        stamps_field: str,
    ) -> _Winner:
        stamp_path = f"{stamps_field}.{field}"
        existing_stamp = _stamps(stamps_field, existing).get(field)
        incoming_stamp = _stamps(stamps_field, incoming).get(field)
        winner = _newer(stamp_path, existing_stamp, incoming_stamp) or self._winner(
            existing, incoming
        )
        if winner is None:
            raise UnresolvableConflictError(
                field,
                existing[field],
                incoming[field],
                reason=f"neither side has a timestamp in {stamp_path!r} "
                f"or {self.timestamp_field!r}",
            )
        return winner


def _stamps(stamps_field: str, document: Mapping[str, Any]) -> Mapping[str, Any]:
    stamps = document.get(stamps_field)
    if stamps is None:
        return {}
    if not isinstance(stamps, Mapping):
        raise ConflictResolutionError(
            f"{stamps_field!r} must map field names to timestamps, not {stamps!r}"
        )
    return stamps


def _newest_stamps(
    field: str, existing: Mapping[str, Any], incoming: Mapping[str, Any]
) -> dict[str, Any]:
    newest = dict(existing)
    for name, stamp in incoming.items():
        newest[name] = _newest(f"{field}.{name}", existing.get(name), stamp)
    return newest


def _newest(field_path: str, existing: Any, incoming: Any) -> Any:
    return existing if _newer(field_path, existing, incoming) == "existing" else incoming


def _newer(field_path: str, existing: Any, incoming: Any) -> _Winner | None:
    """Return the side with the newer timestamp (incoming on a tie), None when neither has one."""
    existing_time = _as_time(field_path, existing)
    incoming_time = _as_time(field_path, incoming)
    if incoming_time is None:
        return None if existing_time is None else "existing"
    if existing_time is None or incoming_time >= existing_time:
        return "incoming"
    return "existing"


def _as_time(field_path: str, stamp: Any) -> datetime | None:
    try:
        if stamp is None:
            return None
        if isinstance(stamp, datetime):
            return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
        if isinstance(stamp, str):
            return _as_time(field_path, datetime.fromisoformat(stamp))
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            return datetime.fromtimestamp(stamp, tz=UTC)
    except (ValueError, OverflowError, OSError) as error:
        raise ConflictResolutionError(
            f"{field_path!r} holds an unreadable timestamp: {stamp!r}"
        ) from error
    raise ConflictResolutionError(
        f"{field_path!r} holds {stamp!r}: a timestamp is a datetime, an ISO 8601 string "
        "or POSIX seconds"
    )

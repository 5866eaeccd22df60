"""``Snapshot``: an aggregate's state at one version of its stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The JSON state of an aggregate after ``version`` events of its stream.

    ``schema_version`` is the aggregate class's ``schema_version`` when the
    snapshot was taken: a snapshot from another schema is never loaded into the
    class (the loader replays the events instead).
    """

    stream_id: str
    aggregate_type: str
    version: int
    schema_version: int
    state: dict[str, Any]
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))

"""``EventUpcaster``: one step of an event type's schema evolution."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class EventUpcaster(ABC):
    """Turns the stored payload of ``event_type`` at ``source_version`` into the next version.

    Subclasses set ``event_type`` (the stored name) and ``source_version`` and
    implement :meth:`upcast`, a pure function of the payload: it is applied at
    read time, every time the event is read, and the stored row is never
    rewritten. The result is at ``source_version + 1``; chain upcasters to go
    further (v1 → v2 → v3).
    """

    event_type: ClassVar[str]
    source_version: ClassVar[int]

    @property
    def target_version(self) -> int:
        """Return the schema version :meth:`upcast` produces."""
        return self.source_version + 1

    @abstractmethod
    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        """Return the payload at the next schema version (``data`` must not be mutated)."""

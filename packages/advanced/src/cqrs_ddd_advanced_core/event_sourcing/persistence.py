"""The persistence orchestrator under its second path (its home is ``persistence_orchestrator``)."""

from __future__ import annotations

from cqrs_ddd_advanced_core.event_sourcing.persistence_orchestrator import (
    EventSourcedPersistenceOrchestrator,
)

__all__ = ["EventSourcedPersistenceOrchestrator"]

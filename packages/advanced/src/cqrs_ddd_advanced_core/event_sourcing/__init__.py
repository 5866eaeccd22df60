"""Event sourcing: rebuild aggregates from their events and persist new ones per command."""

from __future__ import annotations

from cqrs_ddd_advanced_core.event_sourcing.factory import EventSourcedMediatorFactory
from cqrs_ddd_advanced_core.event_sourcing.loader import EventSourcedLoader
from cqrs_ddd_advanced_core.event_sourcing.mediator import EventSourcedMediator
from cqrs_ddd_advanced_core.event_sourcing.persistence_orchestrator import (
    EventSourcedPersistenceOrchestrator,
)
from cqrs_ddd_advanced_core.event_sourcing.repository import EventSourcedRepository

__all__ = [
    "EventSourcedLoader",
    "EventSourcedMediator",
    "EventSourcedMediatorFactory",
    "EventSourcedPersistenceOrchestrator",
    "EventSourcedRepository",
]

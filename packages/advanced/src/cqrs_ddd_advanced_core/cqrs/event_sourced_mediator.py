"""``EventSourcedMediator`` under its ``cqrs`` path (its home is ``event_sourcing.mediator``)."""

from __future__ import annotations

from cqrs_ddd_advanced_core.event_sourcing.mediator import EventSourcedMediator

__all__ = ["EventSourcedMediator"]

"""``EventSourcedMediatorFactory`` under its ``cqrs`` path (home: ``event_sourcing.factory``)."""

from __future__ import annotations

from cqrs_ddd_advanced_core.event_sourcing.factory import EventSourcedMediatorFactory

__all__ = ["EventSourcedMediatorFactory"]

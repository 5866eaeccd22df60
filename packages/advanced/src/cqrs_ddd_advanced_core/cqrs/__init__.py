"""Advanced command handling: the event-sourced mediator and its factory.

Retry, conflict-resolution and resilient handlers join this package as they land.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.cqrs.event_sourced_mediator import EventSourcedMediator
from cqrs_ddd_advanced_core.cqrs.factory import EventSourcedMediatorFactory

__all__ = ["EventSourcedMediator", "EventSourcedMediatorFactory"]

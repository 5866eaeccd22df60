"""Ports: the interfaces (``typing.Protocol``) the core calls and adapters implement."""

from __future__ import annotations

from cqrs_ddd_core.ports.event_dispatcher import EventDispatcherPort
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent, append_for_command
from cqrs_ddd_core.ports.message_publisher import MessagePublisher
from cqrs_ddd_core.ports.repository import Repository
from cqrs_ddd_core.ports.specification import Satisfiable
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "EventDispatcherPort",
    "EventStore",
    "MessagePublisher",
    "Repository",
    "Satisfiable",
    "StoredEvent",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "append_for_command",
]

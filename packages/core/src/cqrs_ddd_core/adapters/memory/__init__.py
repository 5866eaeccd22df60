"""In-memory implementations of the core's ports: products for fast tests."""

from __future__ import annotations

from cqrs_ddd_core.adapters.memory.message_publisher import (
    InMemoryMessagePublisher,
    PublishedMessage,
)
from cqrs_ddd_core.adapters.memory.repository import InMemoryRepository
from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork

__all__ = [
    "InMemoryMessagePublisher",
    "InMemoryRepository",
    "InMemoryUnitOfWork",
    "PublishedMessage",
]

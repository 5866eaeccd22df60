"""What the tests of retries and conflict resolution share.

``Order`` is state-stored (an ``InMemoryRepository`` keeps it) and changes
through ``update(changes)``, which records ``OrderUpdated``; ``UpdateOrder``
carries the changes, as in the spec's ``UpdateOrderHandler`` example.
``VirtualTime`` stands in for the clock and ``asyncio.sleep``: it records each
pause and moves its clock on, without waiting. ``RaceGate`` holds the first
attempt of two commands until both loaded their aggregate, so they conflict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from pydantic import Field

from cqrs_ddd_advanced_core import DeepMergeStrategy, ResilientCommandHandler
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    DomainEvent,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    Mediator,
)
from cqrs_ddd_core.cqrs import PipelineBehavior
from cqrs_ddd_core.ports.event_dispatcher import EventDispatcherPort


class OrderUpdated(DomainEvent):
    changes: dict[str, Any]


class Order(AggregateRoot):
    """A state-stored order whose fields change through ``update``."""

    status: str = "pending"
    note: str = ""
    customer: dict[str, Any] = Field(default_factory=dict)
    items: list[dict[str, Any]] = Field(default_factory=list)

    def update(self, changes: Mapping[str, Any]) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        self.record_event(OrderUpdated(changes=dict(changes)))


class UpdateOrder(Command):
    order_id: str
    changes: dict[str, Any]


class TransientError(Exception):
    """A failure that goes away by itself (a lost connection, a deadlock)."""


class PermanentError(Exception):
    """A failure no retry can cure (a broken business rule)."""


class VirtualTime:
    """A clock and a ``sleep`` that records each pause and moves the clock on at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.delays: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds


class RaceGate:
    """Holds the first attempt of each of ``parties`` commands until all of them got there."""

    def __init__(self, parties: int = 2) -> None:
        self.barrier = asyncio.Barrier(parties)
        self.passed: set[UUID] = set()

    async def wait(self, command: Command) -> None:
        if command.command_id in self.passed:  # a later attempt: it must not wait again
            return
        self.passed.add(command.command_id)
        await asyncio.wait_for(self.barrier.wait(), timeout=10)


class UpdateOrderHandler(ResilientCommandHandler[UpdateOrder]):
    """The spec's example, on the in-memory repository, with a race gate and virtual time."""

    max_retries = 3
    retry_delay = 1.0
    exponential_backoff = True
    conflict_strategy = DeepMergeStrategy(list_identity_key="id")

    def __init__(self, repo: InMemoryRepository[Order], gate: RaceGate | None = None) -> None:
        self.repo = repo
        self.gate = gate
        self.time = VirtualTime()
        self.retry_sleep = self.time.sleep
        self.handled = 0
        self.resolved = 0

    async def _handle_internal(self, command: UpdateOrder) -> None:
        self.handled += 1
        order = await self.repo.get(command.order_id)
        if self.gate is not None:
            await self.gate.wait(command)
        order.update(command.changes)
        await self.repo.save(order)

    def resolve_conflict(self, existing: Order, incoming: dict[str, Any]) -> Order:
        self.resolved += 1
        assert self.conflict_strategy is not None
        merged = self.conflict_strategy.merge(existing.model_dump(), incoming)
        return Order(**merged)


def in_memory_mediator(
    registry: HandlerRegistry,
    *,
    behaviors: Sequence[PipelineBehavior] = (),
    dispatcher: EventDispatcherPort | None = None,
) -> Mediator:
    """Return a mediator on in-memory units of work."""
    return Mediator(
        registry=registry,
        uow_factory=InMemoryUnitOfWork,
        behaviors=behaviors,
        event_dispatcher=dispatcher,
    )


async def stored_order(orders: InMemoryRepository[Order], order_id: str = "o-1") -> Order:
    """Store a fresh order at version 1 (outside any command) and return it."""
    registry = HandlerRegistry()

    class CreateOrder(Command):
        pass

    @registry.command_handler(CreateOrder)
    async def create(command: CreateOrder) -> None:
        order = Order(id=order_id)
        order.update({"status": "pending"})
        await orders.save(order)

    await in_memory_mediator(registry).send(CreateOrder())
    return await orders.get(order_id)

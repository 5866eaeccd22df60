"""What the snapshot tests of the advanced and SQLAlchemy packages share.

Around the shop of ``advanced_test_model``: ``AddItems`` adds a batch of lines
in one command, so one save can cross a snapshot threshold by several events;
``OrderV2`` is the shop's ``Order`` after its state's schema moved on;
``CountingEventStore`` remembers which versions each ``load_stream`` read; and
``SnapshottingShop`` wires the real write path (``EventSourcedMediator``,
``EventSourcedRepository`` with a ``SnapshotStore``) to any event store and
unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

from advanced_test_model import (
    CreateOrder,
    CreateOrderThroughRepositoryHandler,
    ItemAdded,
    ItemRemoved,
    Order,
    OrderCreated,
    OrderPaid,
)
from pydantic import BaseModel, ConfigDict

from cqrs_ddd_advanced_core import (
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedPersistenceOrchestrator,
    EventSourcedRepository,
)
from cqrs_ddd_advanced_core.snapshots import SnapshotStore
from cqrs_ddd_core import (
    Command,
    CommandHandler,
    DomainEvent,
    EventTypeRegistry,
    HandlerRegistry,
    StoredEvent,
)
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.ports.unit_of_work import UnitOfWorkFactory


class Line(BaseModel):
    """One line of an ``AddItems`` command."""

    model_config = ConfigDict(frozen=True)

    sku: str
    quantity: int
    unit_price: Decimal


class AddItems(Command):
    """Add every line to the order in one command (one save, one event per line)."""

    order_id: str
    lines: tuple[Line, ...] = ()
    fail_after_saving: bool = False


class PaymentDeclinedError(Exception):
    """Raised by ``AddItems`` handlers after saving, when the command asks them to fail."""


class AddItemsHandler(CommandHandler[AddItems]):
    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: AddItems) -> None:
        order = await self.orders.get(command.order_id)
        for line in command.lines:
            order.add_item(line.sku, line.quantity, line.unit_price)
        await self.orders.save(order)
        if command.fail_after_saving:
            raise PaymentDeclinedError(f"order {command.order_id}: the card was declined")


def lines(count: int, *, sku: str = "sku-1", unit_price: str = "1.50") -> tuple[Line, ...]:
    """Return ``count`` lines of one item each."""
    return tuple(Line(sku=sku, quantity=1, unit_price=Decimal(unit_price)) for _ in range(count))


class OrderV2(Order):
    """The shop's ``Order`` after a release that changed the shape of its state."""

    aggregate_type_name: ClassVar[str] = "Order"
    schema_version: ClassVar[int] = 2


def order_event_types() -> EventTypeRegistry:
    """Return a registry of the order's events."""
    return EventTypeRegistry([OrderCreated, ItemAdded, ItemRemoved, OrderPaid])


@dataclass(frozen=True)
class StreamRead:
    """One ``load_stream`` call: from which version, and how many events it returned."""

    stream_id: str
    from_version: int
    count: int


class CountingEventStore:
    """Another event store, remembering each ``load_stream`` call made through it."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.reads: list[StreamRead] = []

    async def append(
        self, stream_id: str, events: Sequence[DomainEvent], *, expected_version: int
    ) -> list[StoredEvent]:
        return await self.inner.append(stream_id, events, expected_version=expected_version)

    async def load_stream(self, stream_id: str, *, from_version: int = 1) -> list[StoredEvent]:
        stored = await self.inner.load_stream(stream_id, from_version=from_version)
        self.reads.append(StreamRead(stream_id, from_version, len(stored)))
        return stored

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return await self.inner.read_all(after_position=after_position, limit=limit)

    async def current_position(self) -> int:
        return await self.inner.current_position()


@dataclass
class SnapshottingShop:
    """Orders kept in ``event_store``, snapshotted into ``snapshots`` by the write path."""

    event_store: EventStore
    snapshots: SnapshotStore
    orders: EventSourcedRepository[Order]
    mediator: EventSourcedMediator
    registry: HandlerRegistry
    event_types: EventTypeRegistry = field(default_factory=order_event_types)

    def replaying_loader(
        self, aggregate_type: type[Order] = Order, event_store: EventStore | None = None
    ) -> EventSourcedLoader[Order]:
        """Return a loader without snapshots: it replays every event."""
        return EventSourcedLoader(
            aggregate_type=aggregate_type,
            event_store=event_store or self.event_store,
            event_registry=self.event_types,
        )

    def snapshot_loader(
        self, event_store: EventStore, aggregate_type: type[Order] = Order
    ) -> EventSourcedLoader[Order]:
        """Return a loader reading through ``event_store``, using the shop's snapshots."""
        return EventSourcedLoader(
            aggregate_type=aggregate_type,
            event_store=event_store,
            event_registry=self.event_types,
            snapshot_store=self.snapshots,
        )

    async def create_order(self, order_id: str = "o-1") -> None:
        await self.mediator.send(CreateOrder(customer_id="cust-1", order_id=order_id))


def snapshotting_shop(
    event_store: EventStore, snapshots: SnapshotStore, uow_factory: UnitOfWorkFactory
) -> SnapshottingShop:
    """Return the shop whose order commands save through a snapshotting repository."""
    event_types = order_event_types()
    orders = EventSourcedRepository(
        EventSourcedLoader(
            aggregate_type=Order,
            event_store=event_store,
            event_registry=event_types,
            snapshot_store=snapshots,
        )
    )
    registry = HandlerRegistry()
    registry.register_command_handler(CreateOrder, CreateOrderThroughRepositoryHandler(orders))
    registry.register_command_handler(AddItems, AddItemsHandler(orders))
    mediator = EventSourcedMediator(
        registry=registry,
        uow_factory=uow_factory,
        event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(
            default_event_store=event_store
        ),
    )
    return SnapshottingShop(
        event_store=event_store,
        snapshots=snapshots,
        orders=orders,
        mediator=mediator,
        registry=registry,
        event_types=event_types,
    )

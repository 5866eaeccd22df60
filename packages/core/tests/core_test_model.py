"""The small order domain the core's tests share."""

from __future__ import annotations

from decimal import Decimal

from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    CommandHandler,
    DomainEvent,
    EventDispatcher,
    InMemoryRepository,
    Query,
)


class OrderPlaced(DomainEvent):
    customer_id: str


class ItemAdded(DomainEvent):
    sku: str
    price: Decimal


class Order(AggregateRoot):
    customer_id: str = ""
    items: dict[str, Decimal] = {}

    @classmethod
    def place(cls, customer_id: str, order_id: str | None = None) -> Order:
        order = cls(id=order_id) if order_id else cls()
        order.customer_id = customer_id
        order.record_event(OrderPlaced(customer_id=customer_id))
        return order

    def add_item(self, sku: str, price: Decimal) -> None:
        self.items = {**self.items, sku: price}
        self.record_event(ItemAdded(sku=sku, price=price))


class PlaceOrder(Command):
    customer_id: str
    order_id: str | None = None


class AddItem(Command):
    order_id: str
    sku: str
    price: Decimal


class GetOrder(Query):
    order_id: str


class PlaceOrderHandler(CommandHandler[PlaceOrder]):
    def __init__(self, orders: InMemoryRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: PlaceOrder) -> str:
        order = Order.place(command.customer_id, command.order_id)
        await self.orders.save(order)
        return order.id


class AddItemHandler(CommandHandler[AddItem]):
    def __init__(self, orders: InMemoryRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: AddItem) -> None:
        order = await self.orders.get(command.order_id)
        order.add_item(command.sku, command.price)
        await self.orders.save(order)


class RecordingDispatcher(EventDispatcher):
    """The real dispatcher with one subscriber that remembers what it received."""

    def __init__(self) -> None:
        super().__init__(on_error="raise")
        self.received: list[DomainEvent] = []

        async def remember(event: DomainEvent) -> None:
            self.received.append(event)

        self.subscribe(DomainEvent, remember)

"""The shop's commands, queries, handlers and composition root."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.event_sourcing import (
    EventSourcedLoader,
    EventSourcedMediatorFactory,
    EventSourcedRepository,
)
from cqrs_ddd_advanced_core.projections import (
    ProjectionWorker,
    ProjectorRegistry,
    QueryOptions,
    SpecificationBuilder,
)
from cqrs_ddd_core import (
    Command,
    CommandHandler,
    EventTypeRegistry,
    HandlerRegistry,
    LoggingBehavior,
    Mediator,
    Query,
    ValidationBehavior,
)
from cqrs_ddd_core.exceptions import FieldIssue
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyReadModelStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    upgrade_schema,
)
from shop.domain import (
    CENT,
    MAX_ORDER_TOTAL,
    MAX_QUANTITY,
    Customer,
    ItemAdded,
    Money,
    Order,
    OrderConfirmed,
    OrderPlaced,
)
from shop.projections import (
    OrderSummary,
    OrderSummaryProjector,
    create_read_model_tables,
    order_summaries,
)


class PlaceOrder(Command):
    """Open an order for a customer, registering the customer on first use."""

    customer_id: str
    customer_name: str = "anonymous"
    order_id: str | None = None


class AddItem(Command):
    """Put an item into an open order."""

    order_id: str
    sku: str
    quantity: int
    unit_price: Decimal


class ConfirmOrder(Command):
    """Confirm an order."""

    order_id: str


class GetOrderSummary(Query):
    """Ask for the summary of one order, as the order-summary projection last saw it."""

    order_id: str


class PlaceOrderHandler(CommandHandler[PlaceOrder]):
    """Opens orders, and counts them on the customer, in one transaction."""

    def __init__(
        self, orders: EventSourcedRepository[Order], customers: SQLAlchemyRepository[Customer]
    ) -> None:
        self.orders = orders
        self.customers = customers

    async def handle(self, command: PlaceOrder) -> str:
        """Open the order and return its id."""
        customer = await self.customers.find(command.customer_id)
        if customer is None:
            customer = Customer.register(command.customer_id, command.customer_name)
        customer.count_order()
        await self.customers.save(customer)
        order = Order.place(command.customer_id, command.order_id)
        await self.orders.save(order)
        return order.id


class AddItemHandler(CommandHandler[AddItem]):
    """Adds items to orders."""

    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: AddItem) -> None:
        """Load the order from its events, add the item, save the new event."""
        order = await self.orders.get(command.order_id)
        order.add_item(command.sku, command.quantity, Money(amount=command.unit_price))
        await self.orders.save(order)


class ConfirmOrderHandler(CommandHandler[ConfirmOrder]):
    """Confirms orders."""

    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: ConfirmOrder) -> None:
        """Load the order, confirm it, save the new event."""
        order = await self.orders.get(command.order_id)
        order.confirm()
        await self.orders.save(order)


def valid_item(command: AddItem) -> list[FieldIssue]:
    """Refuse, before any handler runs, an item the order would refuse (see ``Order.add_item``)."""
    issues = []
    price = command.unit_price
    if not price.is_finite() or price > MAX_ORDER_TOTAL:
        issues.append(FieldIssue("unit_price", f"must be at most {MAX_ORDER_TOTAL}"))
    elif price < 0:
        issues.append(FieldIssue("unit_price", "must not be negative"))
    elif price != price.quantize(CENT):
        issues.append(FieldIssue("unit_price", "must be in whole cents"))
    if not 1 <= command.quantity <= MAX_QUANTITY:
        issues.append(FieldIssue("quantity", f"must be between 1 and {MAX_QUANTITY}"))
    return issues


@dataclass
class Shop:
    """The wired application: its mediator and what it is built from."""

    mediator: Mediator
    event_store: SQLAlchemyEventStore
    orders: EventSourcedRepository[Order]
    customers: SQLAlchemyRepository[Customer]
    summaries: SQLAlchemyReadModelStore
    projections: ProjectionWorker


async def build_shop(engine: AsyncEngine) -> Shop:
    """Build the shop on ``engine``: the composition root, where everything is made and wired.

    Brings the database schema (the library's tables and the shop's read
    models) up to date first. The projection worker is built, not started: a
    long-running service calls ``projections.start()`` and ``stop()``, a script
    ``projections.catch_up()``.
    """
    await upgrade_schema(engine)
    await create_read_model_tables(engine)
    event_store = SQLAlchemyEventStore(engine)
    events = EventTypeRegistry([OrderPlaced, ItemAdded, OrderConfirmed])
    orders = EventSourcedRepository(EventSourcedLoader(Order, event_store, events))
    customers = SQLAlchemyRepository(Customer, engine)

    summaries = SQLAlchemyReadModelStore(order_summaries, engine)
    projectors = ProjectorRegistry([OrderSummaryProjector(summaries)], event_registry=events)
    projections = ProjectionWorker(projectors, event_store)

    registry = HandlerRegistry()
    registry.register_command_handler(PlaceOrder, PlaceOrderHandler(orders, customers))
    registry.register_command_handler(AddItem, AddItemHandler(orders))
    registry.register_command_handler(ConfirmOrder, ConfirmOrderHandler(orders))

    @registry.query_handler(GetOrderSummary)
    async def get_summary(query: GetOrderSummary) -> OrderSummary | None:
        one_order = SpecificationBuilder().where("order_id", "==", query.order_id)
        rows = await summaries.query(QueryOptions().with_specification(one_order))
        return OrderSummary.from_row(rows[0]) if rows else None

    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
        handler_registry=registry,
        behaviors=[LoggingBehavior(), ValidationBehavior({AddItem: [valid_item]})],
    )
    factory.register_event_sourced_type(Order)
    return Shop(
        mediator=factory.create(),
        event_store=event_store,
        orders=orders,
        customers=customers,
        summaries=summaries,
        projections=projections,
    )

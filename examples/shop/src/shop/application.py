"""The shop's command handlers, the order-fulfilment saga and the delivery-merge handler.

The commands themselves are in :mod:`shop.commands`. The handlers receive what
they use through :class:`Stores`; ``shop.wiring`` builds the stores and
registers the handlers (:func:`register_handlers`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from cqrs_ddd_advanced_core.conflict import FieldMergeStrategy
from cqrs_ddd_advanced_core.cqrs import ConflictContext, ResilientCommandHandler
from cqrs_ddd_advanced_core.event_sourcing import EventSourcedRepository
from cqrs_ddd_advanced_core.sagas import Saga, SagaBuilder, SagaState
from cqrs_ddd_advanced_core.scheduling import (
    CommandSchedulerService,
    ScheduleNotCancellableError,
    ScheduleNotFoundError,
)
from cqrs_ddd_core import (
    AggregateNotFoundError,
    ConcurrencyError,
    HandlerRegistry,
)
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_core.exceptions import FieldIssue, ValidationError
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyReadModelStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from shop.commands import (
    AddItem,
    AddProduct,
    ChangeDelivery,
    ChargePayment,
    CheckOut,
    ConfirmOrder,
    ConfirmPayment,
    ExpireOrder,
    GenerateMonthlyReport,
    PlaceOrder,
    RefundPayment,
    RegisterCustomer,
    ReleaseStock,
    RemoveItem,
    ReserveStock,
    Restock,
    ShipOrder,
)
from shop.domain import (
    CONFIRMED_LATER_PAYMENT_METHOD,
    DECLINED_PAYMENT_METHOD,
    Customer,
    LimitExceededError,
    Money,
    Order,
    OrderCheckedOut,
    OrderError,
    OrderStockReserved,
    OutOfStockError,
    PaymentCharged,
    PaymentDeclinedError,
    Product,
)
from shop.idempotency import IdempotencyKeys
from shop.projections import orders as orders_table
from shop.projections import reports as reports_table

NAMESPACE = uuid.UUID("2f1d1e4c-4d55-4a5e-9a39-9c2f5a1f0b7e")
"""The namespace of the shop's derived ids (expiry schedules, payment references)."""


# ---------------------------------------------------------------------- saga


def fulfilment_saga(payment_timeout: timedelta) -> type[Saga[SagaState]]:
    """Return the order-fulfilment saga: reserve the stock, charge, confirm.

    A step that fails is compensated too (``cancel_failed_steps``), latest
    first: a declined charge is refunded (there is nothing to refund) and the
    reservation released, which cancels the order; a reservation that fails
    (the shelf emptied since the checkout's own check, or it kept losing the
    race for a busy product) cancels the order the same way. A charge whose
    outcome does not come within ``payment_timeout`` is compensated alike.
    """
    declared = (
        SagaBuilder("OrderFulfilment")
        .on(OrderCheckedOut,
            send=lambda event: ReserveStock(order_id=event.aggregate_id),
            step="reserving",
            compensate=lambda event: ReleaseStock(order_id=event.aggregate_id))
        .on(OrderStockReserved,
            send=lambda event: ChargePayment(order_id=event.aggregate_id),
            step="charging",
            compensate=lambda event: RefundPayment(order_id=event.aggregate_id),
            timeout=payment_timeout)
        .on(PaymentCharged,
            send=lambda event: ConfirmOrder(order_id=event.aggregate_id),
            step="confirming",
            complete=True)
        .build()
    )  # fmt: skip
    saga: type[Saga[SagaState]] = type(
        "OrderFulfilment",
        (declared,),
        {"name": "OrderFulfilment", "cancel_failed_steps": True, "__doc__": declared.__doc__},
    )
    return saga


def expiry_id(order_id: str) -> uuid.UUID:
    """Return the id of the schedule that expires ``order_id``."""
    return uuid.uuid5(NAMESPACE, f"expire:{order_id}")


# ------------------------------------------------------------------ handlers


@dataclass
class Stores:
    """What the handlers read and write, built by the composition root."""

    orders: EventSourcedRepository[Order]
    products: EventSourcedRepository[Product]
    customers: SQLAlchemyRepository[Customer]
    order_rows: SQLAlchemyReadModelStore
    requests: IdempotencyKeys
    order_ttl: timedelta
    schedules: CommandSchedulerService | None = None
    """Set once the scheduler service is built (it takes its message types from the mediator)."""

    def scheduler(self) -> CommandSchedulerService:
        """Return the scheduler service; wiring sets it before the first command."""
        if self.schedules is None:
            raise RuntimeError("the shop's scheduler service is not wired yet")
        return self.schedules


async def product_of(stores: Stores, sku: str, field: str) -> Product:
    """Return the product ``sku``; a SKU the catalogue lacks is invalid input naming ``field``."""
    product = await stores.products.find(sku)
    if product is None:
        raise ValidationError("the order", [FieldIssue(field, f"no product {sku!r}")])
    return product


class VersionMismatchError(OrderError):
    """``If-Match`` names a version the order never had."""


class UpdateDeliveryHandler(ResilientCommandHandler[ChangeDelivery]):
    """Changes delivery details; an edit made on an older version is merged field by field.

    The client sends the version it last saw (``If-Match``). When the order
    moved on since, the edit takes the conflict path: a field nobody else
    changed since that version takes the client's value; a field both changed
    must agree, else the edit is refused (``UnresolvableConflictError``, 409).
    The same holds when two edits race on one version.
    """

    max_retries = 3

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.repo = stores.orders

    async def _handle_internal(self, command: ChangeDelivery) -> int:
        order = await self.stores.orders.get(command.order_id)
        if command.base_version is not None and command.base_version > order.version:
            raise VersionMismatchError(
                f"order {order.id} is at version {order.version}, not {command.base_version}"
            )
        if command.base_version is not None and command.base_version != order.version:
            raise ConcurrencyError(
                order.id, expected_version=command.base_version, actual_version=order.version
            )
        order.change_delivery(command.changes)
        await self.stores.orders.save(order)
        await self.stores.requests.remember(command, order.version)
        return order.version

    async def load_existing(self, command: ChangeDelivery, context: ConflictContext) -> Order:
        """Return the order as now stored; remember the version the edit was made on."""
        _conflict_base.set(context.conflict.expected_version)
        return await self.stores.orders.get(command.order_id)

    def incoming_changes(self, command: ChangeDelivery) -> dict[str, Any]:
        """Return the edit, with the version it was made on (``If-Match``, else the one it lost)."""
        base = command.base_version
        return {"changes": dict(command.changes), "base_version": base or _conflict_base.get()}

    def resolve_conflict(self, existing: Order, incoming: dict[str, Any]) -> Order:
        """Merge the edit into the stored order: fields changed by both sides must agree."""
        changes: dict[str, str] = incoming["changes"]
        base: int = incoming["base_version"]
        existing.check_delivery_open()
        changed_since = {
            name for name, version in existing.delivery_versions.items() if version > base
        }
        strategy = FieldMergeStrategy(dict.fromkeys(changed_since, "refuse"), default="incoming")
        merged = strategy.merge(existing.delivery, {**existing.delivery, **changes})
        versions = dict.fromkeys(changes, existing.version + 1)
        return existing.model_copy(
            update={
                "delivery": merged,
                "delivery_versions": {**existing.delivery_versions, **versions},
            }
        )

    async def handle(self, command: ChangeDelivery) -> Any:
        """Handle ``command``; on its conflict path, :meth:`save_resolved` needs to know it."""
        token = _resolving.set(command)
        try:
            return await super().handle(command)
        finally:
            _resolving.reset(token)

    async def save_resolved(self, aggregate: Any) -> None:
        """Save the merged order and remember the request's answer."""
        await self.stores.orders.save(aggregate)
        await self.stores.requests.remember(_resolving.get(), aggregate.version)


_resolving: ContextVar[ChangeDelivery] = ContextVar("shop_resolving")
_conflict_base: ContextVar[int] = ContextVar("shop_conflict_base", default=0)


def register_handlers(registry: HandlerRegistry, stores: Stores) -> None:  # noqa: PLR0915
    """Register every command handler of the shop on ``registry``."""
    orders, products, customers = stores.orders, stores.products, stores.customers
    remember = stores.requests.remember

    @registry.command_handler(RegisterCustomer)
    async def register_customer(command: RegisterCustomer) -> str:
        if await customers.find(command.customer_id) is not None:
            raise OrderError(f"customer {command.customer_id} is registered already")
        await customers.save(Customer.register(command.customer_id, command.name))
        await remember(command, command.customer_id)
        return command.customer_id

    @registry.command_handler(AddProduct)
    async def add_product(command: AddProduct) -> str:
        if await products.find(command.sku) is not None:
            raise OrderError(f"product {command.sku} is in the catalogue already")
        await products.save(Product.add(command.sku, command.name, command.price, command.stock))
        await remember(command, command.sku)
        return command.sku

    @registry.command_handler(Restock)
    async def restock(command: Restock) -> None:
        product = await products.get(command.sku)
        with invalid_past_limits():
            product.restock(command.quantity)
        await products.save(product)
        await remember(command, None)

    @registry.command_handler(PlaceOrder)
    async def place_order(command: PlaceOrder) -> str:
        customer = await customers.find(command.customer_id)
        if customer is None:
            issue = FieldIssue("customer_id", f"no customer {command.customer_id!r}")
            raise ValidationError("the order", [issue])
        order = Order.place(command.customer_id, command.order_id)
        for index, line in enumerate(command.lines):
            product = await product_of(stores, line.sku, f"lines.{index}.sku")
            with invalid_past_limits(f"lines.{index}."):
                order.add_item(line.sku, product.name, line.quantity, product.price)
        await orders.save(order)
        ttl = (
            stores.order_ttl
            if command.pay_within is None
            else timedelta(seconds=command.pay_within)
        )
        await stores.scheduler().schedule(
            command=ExpireOrder(order_id=order.id),
            execute_at=datetime.now(UTC) + ttl,
            schedule_id=expiry_id(order.id),
        )
        await remember(command, order.id)
        return order.id

    @registry.command_handler(AddItem)
    async def add_item(command: AddItem) -> None:
        order = await orders.get(command.order_id)
        product = await product_of(stores, command.sku, "sku")
        price = product.price if command.unit_price is None else Money(amount=command.unit_price)
        with invalid_past_limits():
            order.add_item(command.sku, product.name, command.quantity, price)
        await orders.save(order)
        await remember(command, None)

    @registry.command_handler(RemoveItem)
    async def remove_item(command: RemoveItem) -> None:
        order = await orders.get(command.order_id)
        order.remove_item(command.sku, command.quantity)
        await orders.save(order)
        await remember(command, None)

    registry.register_command_handler(ChangeDelivery, UpdateDeliveryHandler(stores))

    @registry.command_handler(CheckOut)
    async def check_out(command: CheckOut) -> None:
        order = await orders.get(command.order_id)
        for sku, quantity in order.lines.items():  # the saga holds the stock; refuse early
            product = await products.get(sku)
            if product.stock < quantity:
                raise OutOfStockError(f"product {sku} has {product.stock} unit(s) left")
        order.check_out(command.payment_method)
        await orders.save(order)
        await remember(command, None)

    @registry.command_handler(ReserveStock)
    async def reserve_stock(command: ReserveStock) -> None:
        order = await orders.get(command.order_id)
        if order.status != "checked_out":  # sent again after a crash, or the order expired
            return
        for sku, quantity in sorted(order.lines.items()):
            product = await products.get(sku)
            product.hold(order.id, quantity)
            await products.save(product)
        order.stock_reserved()
        await orders.save(order)

    @registry.command_handler(ReleaseStock)
    async def release_stock(command: ReleaseStock) -> None:
        order = await orders.get(command.order_id)
        if order.status in {"confirmed", "shipped"}:
            return  # fulfilled: nothing of it is undone
        for sku in sorted(order.lines):
            product = await products.get(sku)
            product.release(order.id)
            await products.save(product)
        # a charge that came in while the saga compensated is refunded by the cancellation
        order.cancel("the order could not be fulfilled; its stock was released")
        await orders.save(order)

    @registry.command_handler(ChargePayment)
    async def charge_payment(command: ChargePayment) -> None:
        order = await orders.get(command.order_id)
        if order.status != "reserved":  # charged already (sent again), or the order expired
            if order.status in {"paid", "confirmed", "shipped"}:
                return
            raise OrderError(f"order {order.id} is {order.status}; it cannot be charged")
        if order.payment_method == DECLINED_PAYMENT_METHOD:
            raise PaymentDeclinedError(f"the card of order {order.id} was declined")
        if order.payment_method == CONFIRMED_LATER_PAYMENT_METHOD:
            return  # the provider confirms later: ConfirmPayment
        order.charge(reference=str(uuid.uuid5(NAMESPACE, f"charge:{command.command_id}")))
        await orders.save(order)
        with contextlib.suppress(ScheduleNotCancellableError, ScheduleNotFoundError):
            await stores.scheduler().cancel(expiry_id(order.id))  # paid: it no longer expires

    @registry.command_handler(ConfirmPayment)
    async def confirm_payment(command: ConfirmPayment) -> None:
        order = await orders.get(command.order_id)
        if order.payment_method != CONFIRMED_LATER_PAYMENT_METHOD:
            raise OrderError(f"order {order.id} is not waiting for a payment confirmation")
        order.charge(reference=str(uuid.uuid5(NAMESPACE, f"charge:{command.command_id}")))
        await orders.save(order)
        with contextlib.suppress(ScheduleNotCancellableError, ScheduleNotFoundError):
            await stores.scheduler().cancel(expiry_id(order.id))  # paid: it no longer expires
        await remember(command, None)

    @registry.command_handler(RefundPayment)
    async def refund_payment(command: RefundPayment) -> None:
        order = await orders.get(command.order_id)
        order.refund()
        await orders.save(order)

    @registry.command_handler(ConfirmOrder)
    async def confirm_order(command: ConfirmOrder) -> None:
        order = await orders.get(command.order_id)
        if order.status == "paid":
            order.confirm()
            await orders.save(order)

    @registry.command_handler(ExpireOrder)
    async def expire_order(command: ExpireOrder) -> None:
        try:
            order = await orders.get(command.order_id)
        except AggregateNotFoundError:
            return
        if order.status == "reserved":
            for sku in order.lines:
                product = await products.get(sku)
                product.release(order.id)
                await products.save(product)
        order.expire()
        await orders.save(order)

    @registry.command_handler(ShipOrder)
    async def ship_order(command: ShipOrder) -> None:
        order = await orders.get(command.order_id)
        order.ship(command.carrier)
        for sku in sorted(order.lines):
            product = await products.get(sku)
            product.dispatch(order.id)
            await products.save(product)
        await orders.save(order)
        await remember(command, None)

    @registry.command_handler(GenerateMonthlyReport)
    async def generate_report(command: GenerateMonthlyReport) -> str:
        month = command.month or previous_month(datetime.now(UTC))
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
        end = (start + timedelta(days=32)).replace(day=1)
        uow = current_scope().uow
        if not isinstance(uow, SQLAlchemyUnitOfWork):
            raise TypeError("the monthly report runs in a SQLAlchemy unit of work")
        fulfilled = and_(
            orders_table.c.placed_at >= start,
            orders_table.c.placed_at < end,
            orders_table.c.status.in_(("confirmed", "shipped")),
        )
        count, revenue = (
            await uow.connection.execute(
                select(func.count(), func.coalesce(func.sum(orders_table.c.total_cents), 0)).where(
                    fulfilled
                )
            )
        ).one()
        report = {"month": month, "orders": count, "revenue_cents": int(revenue)}
        await uow.connection.execute(reports_table.delete().where(reports_table.c.month == month))
        await uow.connection.execute(
            reports_table.insert().values(**report, created_at=datetime.now(UTC))
        )
        await remember(command, month)
        return month


@contextlib.contextmanager
def invalid_past_limits(prefix: str = "") -> Iterator[None]:
    """Report a quantity that would pass a limit as invalid input naming its field."""
    try:
        yield
    except LimitExceededError as error:
        raise ValidationError(
            "the request", [FieldIssue(prefix + error.field, str(error))]
        ) from None


def previous_month(now: datetime) -> str:
    """Return the month before ``now`` as ``YYYY-MM``."""
    last_of_previous = now.replace(day=1) - timedelta(days=1)
    return last_of_previous.strftime("%Y-%m")

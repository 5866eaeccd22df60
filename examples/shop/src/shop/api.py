"""The shop's HTTP API: FastAPI, with the shop started and stopped in the app's lifespan.

One resource read (``GET /orders/{id}``, ``/products/{sku}``, ``/customers/{id}``)
is built from the aggregate's events, so it always shows the last command's
effect, with the order's version as its ``ETag``. Lists (``GET /orders``,
``GET /products``) are read models the projection worker keeps: they follow
the commands within milliseconds, and are filtered, ordered and paged with
``SpecificationBuilder`` and ``QueryOptions``.

Status codes: ``201`` with a ``Location`` for a creation, ``202`` for a
checkout (the saga takes it from there), ``404`` for an unknown id in the
path, ``409`` for a command the state refuses (an order no longer open, a
concurrent edit the merge cannot resolve, an undo that would conflict),
``422`` for invalid input, naming the field, and ``503`` when the database
cannot be reached. Every command endpoint takes an ``Idempotency-Key`` header:
a request retried with the same key has one effect and gets the first answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Body, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select, text

from cqrs_ddd_advanced_core.conflict import UnresolvableConflictError
from cqrs_ddd_advanced_core.projections import QueryOptions, SpecificationBuilder
from cqrs_ddd_advanced_core.undo import UndoError, UnknownUndoTokenError
from cqrs_ddd_core import AggregateNotFoundError, Command, ConcurrencyError, ValidationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.exceptions import DatabaseUnavailableError
from shop.application import (
    AddItem,
    AddProduct,
    ChangeDelivery,
    CheckOut,
    ConfirmPayment,
    GenerateMonthlyReport,
    Line,
    PlaceOrder,
    RegisterCustomer,
    RemoveItem,
    Restock,
    ShipOrder,
    VersionMismatchError,
)
from shop.domain import (
    MAX_DELIVERY_TEXT,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_ORDER_TOTAL,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_STOCK,
    Order,
    OrderError,
    Product,
)
from shop.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyKeyReusedError,
    command_id_for,
    fingerprint_of,
)
from shop.projections import euros, reports
from shop.settings import Settings
from shop.wiring import MONTHLY_REPORT, Shop, ShopOptions, build_shop

logger = logging.getLogger("shop.api")

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9._:-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, decimal_places=2)]
DeliveryText = Annotated[str, Field(max_length=MAX_DELIVERY_TEXT)]
MAX_OFFSET = 1_000_000_000
"""The furthest a list may be paged (64-bit columns hold its arithmetic)."""
MAX_PAY_WITHIN = 7 * 24 * 3600
"""The longest an order may wait for its payment, in seconds (a week)."""
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH)
]


# ------------------------------------------------------------------ models


class NewCustomer(BaseModel):
    """A customer to register."""

    customer_id: Id
    name: Name


class CustomerOut(BaseModel):
    """A customer, and how many orders the order list (a read model) holds for them."""

    customer_id: str
    name: str
    orders_placed: int


class NewProduct(BaseModel):
    """A product to add to the catalogue."""

    sku: Id
    name: Name
    price: Price
    stock: Annotated[int, Field(ge=0, le=MAX_STOCK)]


class Delivery(BaseModel):
    """Units arriving for a product."""

    quantity: Annotated[int, Field(ge=1, le=MAX_STOCK)]


class ProductOut(BaseModel):
    """A product: its price, the units on the shelf and those held for orders."""

    sku: str
    name: str
    price: Decimal
    stock: int
    held: int


class LineIn(BaseModel):
    """Units of one SKU."""

    sku: Id
    quantity: Quantity


class NewOrder(BaseModel):
    """An order to open, with its first lines."""

    customer_id: Id
    lines: Annotated[list[LineIn], Field(max_length=100)] = []


class LineOut(BaseModel):
    """A cart line."""

    sku: str
    quantity: int
    unit_price: Decimal


class OrderOut(BaseModel):
    """An order as its events say it is now."""

    order_id: str
    customer_id: str
    status: str
    reason: str
    lines: list[LineOut]
    total: Decimal
    delivery: dict[str, str]
    version: int


class CartChange(BaseModel):
    """A cart change, with the token that undoes it."""

    undo_token: uuid.UUID
    order: OrderOut


class UndoRequest(BaseModel):
    """Which change to undo; the newest one still in effect when no token is given."""

    token: uuid.UUID | None = None


class RedoRequest(BaseModel):
    """Which undone change to apply again."""

    token: uuid.UUID


class UndoOut(BaseModel):
    """The change undone or redone, and the order after it."""

    token: uuid.UUID
    order: OrderOut


class DeliveryChange(BaseModel):
    """Delivery details to change; the fields left out stay as they are."""

    address: DeliveryText | None = None
    instructions: DeliveryText | None = None
    slot: DeliveryText | None = None


class Payment(BaseModel):
    """How to pay: the stand-in provider refuses ``card-declined``, and charges ``card-3ds``
    once the customer confirms (``POST /orders/{id}/payment-confirmation``)."""

    payment_method: Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


class Shipment(BaseModel):
    """Who carries the order."""

    carrier: Name


class OrderRow(BaseModel):
    """An order as the order list (a read model) shows it."""

    order_id: str
    customer_id: str
    items: int
    total: Decimal
    status: str
    reason: str
    placed_at: datetime


class ProductRow(BaseModel):
    """A product as the product list (a read model) shows it."""

    sku: str
    name: str
    price: Decimal
    stock: int
    held: int


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list: the items, how many match in all, and the page asked for."""

    items: list[Item]
    total: int
    limit: int
    offset: int


class StepOut(BaseModel):
    """A saga step and its outcome."""

    step: str
    command: str
    outcome: str


class FulfilmentOut(BaseModel):
    """Where the order-fulfilment saga of an order is."""

    status: str
    reason: str | None
    awaiting: str | None
    steps: list[StepOut]
    history: list[str]


class ReportRequest(BaseModel):
    """The month to report on now, as ``YYYY-MM``."""

    month: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class ReportOut(BaseModel):
    """A monthly report."""

    month: str
    orders: int
    revenue: Decimal
    created_at: datetime


class ReportsOut(BaseModel):
    """The monthly reports, and when the next one is due."""

    next_report_at: datetime | None
    reports: list[ReportOut]


class Health(BaseModel):
    """Whether the database answers, and what each worker is doing."""

    status: Literal["ok", "degraded"]
    database: dict[str, Any]
    workers: dict[str, Any]


# --------------------------------------------------------------- the app


class NotFoundError(LookupError):
    """An id in the path names nothing."""


def create_app(settings: Settings, options: ShopOptions | None = None) -> FastAPI:
    """Return the shop's FastAPI app; its lifespan builds, starts and stops the shop."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        try:
            shop = await build_shop(engine, options)
            await shop.start()
            app.state.shop = shop
            try:
                yield
            finally:
                await shop.stop()
        finally:
            await engine.dispose()

    app = FastAPI(
        title="cqrs-ddd example shop",
        description=__doc__,
        version="1.0",
        lifespan=lifespan,
    )
    add_error_handlers(app)
    add_routes(app)
    return app


def path_part(part: str) -> str | int:
    """Return a part of a field's path as pydantic writes it (list indices as numbers)."""
    return int(part) if part.isdigit() else part


def shop_of(request: Request) -> Shop:
    """Return the shop the app's lifespan built."""
    shop: Shop = request.app.state.shop
    return shop


def add_error_handlers(app: FastAPI) -> None:
    """Map the shop's errors to status codes, each with a one-line ``detail``."""

    def answer(status: int, detail: Any) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handle(request: Request, error: Exception) -> Response:
            body = detail(error) if callable(detail) else detail
            return JSONResponse({"detail": body}, status_code=status)

        return handle

    def fields(error: Exception) -> list[dict[str, Any]]:
        assert isinstance(error, ValidationError)
        return [
            {"loc": ["body", *map(path_part, issue.field.split("."))], "msg": issue.message,
             "type": "value_error"}
            for issue in error.issues
        ]  # fmt: skip

    def reused_key(error: Exception) -> list[dict[str, Any]]:
        return [{"loc": ["header", "Idempotency-Key"], "msg": str(error), "type": "value_error"}]

    def unresolvable(error: Exception) -> str:
        assert isinstance(error, UnresolvableConflictError)
        return (
            f"{error.field_path} was changed to {error.existing_value!r} since the version you"
            f" edited; yours is {error.incoming_value!r}: reload the order and edit again"
        )

    app.add_exception_handler(ValidationError, answer(422, fields))
    app.add_exception_handler(IdempotencyKeyReusedError, answer(422, reused_key))
    app.add_exception_handler(VersionMismatchError, answer(412, str))
    app.add_exception_handler(NotFoundError, answer(404, str))
    app.add_exception_handler(UnknownUndoTokenError, answer(404, str))
    app.add_exception_handler(AggregateNotFoundError, answer(404, str))
    app.add_exception_handler(OrderError, answer(409, str))
    app.add_exception_handler(UnresolvableConflictError, answer(409, unresolvable))
    app.add_exception_handler(ConcurrencyError, answer(409, str))
    app.add_exception_handler(UndoError, answer(409, str))
    app.add_exception_handler(DatabaseUnavailableError, answer(503, str))


async def send(
    request: Request,
    command: Command,
    key: str | None,
    run: Callable[[Command], Awaitable[Any]] | None = None,
) -> tuple[Command, Any]:
    """Send ``command`` (through ``run``, else the mediator), once per idempotency ``key``.

    Returns the command as sent (its id derives from the key) and its result;
    for a key seen before, the first request's result, without sending.
    """
    shop = shop_of(request)
    if run is None:

        async def run(sent: Command) -> Any:
            return (await shop.mediator.send(sent)).result

    if key is None:
        return command, await run(command)
    body = command.model_dump(mode="json", exclude={"command_id", "correlation_id"})
    fingerprint = fingerprint_of(request.method, request.url.path, body)
    command = command.model_copy(update={"command_id": command_id_for(key, fingerprint)})
    stored = await shop.stores.requests.find(key)
    if stored is None:
        with shop.stores.requests.expecting(key, fingerprint, command.command_id):
            try:
                return command, await run(command)
            except Exception:
                stored = await shop.stores.requests.find(key)  # a retry that raced the first?
                if stored is None:
                    raise
    if stored.fingerprint != fingerprint:
        raise IdempotencyKeyReusedError(key)
    return command, stored.result


async def order_out(shop: Shop, order_id: str) -> OrderOut:
    """Return the order as its events say it is now (404 when there is none)."""
    order = await shop.stores.orders.find(order_id)
    if order is None:
        raise NotFoundError(f"no order {order_id!r}")
    return present_order(order)


def present_order(order: Order) -> OrderOut:
    """Return the order's representation."""
    return OrderOut(
        order_id=order.id,
        customer_id=order.customer_id,
        status=order.status,
        reason=order.reason,
        lines=[
            LineOut(sku=sku, quantity=quantity, unit_price=order.prices[sku].amount)
            for sku, quantity in order.lines.items()
        ],
        total=order.total.amount,
        delivery=order.delivery,
        version=order.version,
    )


def present_product(product: Product) -> ProductOut:
    """Return the product's representation."""
    return ProductOut(
        sku=product.id,
        name=product.name,
        price=product.price.amount,
        stock=product.stock,
        held=sum(product.held.values()),
    )


def paged(
    specification: SpecificationBuilder, order_by: str, desc: bool, limit: int, offset: int
) -> QueryOptions:
    """Return the query options of one page of a list."""
    options = QueryOptions().with_specification(specification.build())
    return options.with_ordering(order_by, desc=desc).with_pagination(limit=limit, offset=offset)


def add_routes(app: FastAPI) -> None:  # noqa: PLR0915 - one place lists every route
    """Add the shop's endpoints to ``app``."""

    @app.post("/customers", status_code=201, response_model=CustomerOut, tags=["customers"])
    async def register_customer(
        customer: NewCustomer, request: Request, response: Response, key: IdempotencyKey = None
    ) -> CustomerOut:
        """Register a customer."""
        await send(request, RegisterCustomer(**customer.model_dump()), key)
        response.headers["Location"] = f"/customers/{customer.customer_id}"
        return await get_customer(customer.customer_id, request)

    @app.get("/customers/{customer_id}", response_model=CustomerOut, tags=["customers"])
    async def get_customer(customer_id: str, request: Request) -> CustomerOut:
        """Return a customer."""
        shop = shop_of(request)
        customer = await shop.stores.customers.find(customer_id)
        if customer is None:
            raise NotFoundError(f"no customer {customer_id!r}")
        theirs = SpecificationBuilder().where("customer_id", "==", customer_id).build()
        placed = await shop.order_rows.count(theirs)
        return CustomerOut(customer_id=customer.id, name=customer.name, orders_placed=placed)

    @app.post("/products", status_code=201, response_model=ProductOut, tags=["catalogue"])
    async def add_product(
        product: NewProduct, request: Request, response: Response, key: IdempotencyKey = None
    ) -> ProductOut:
        """Add a product to the catalogue."""
        await send(request, AddProduct(**product.model_dump()), key)
        response.headers["Location"] = f"/products/{product.sku}"
        return await get_product(product.sku, request)

    @app.get("/products/{sku}", response_model=ProductOut, tags=["catalogue"])
    async def get_product(sku: str, request: Request) -> ProductOut:
        """Return a product as its events say it is now."""
        product = await shop_of(request).stores.products.find(sku)
        if product is None:
            raise NotFoundError(f"no product {sku!r}")
        return present_product(product)

    @app.post("/products/{sku}/deliveries", response_model=ProductOut, tags=["catalogue"])
    async def restock(
        sku: str, delivery: Delivery, request: Request, key: IdempotencyKey = None
    ) -> ProductOut:
        """Put the units of a delivery on the shelf."""
        await get_product(sku, request)
        await send(request, Restock(sku=sku, quantity=delivery.quantity), key)
        return await get_product(sku, request)

    @app.get("/products", response_model=Page[ProductRow], tags=["catalogue"])
    async def list_products(
        request: Request,
        *,
        in_stock: bool | None = None,
        order_by: Literal["sku", "name", "price_cents", "stock"] = "sku",
        desc: bool = False,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Page[ProductRow]:
        """List the catalogue (a read model), filtered, ordered and paged."""
        rows_of = shop_of(request).product_rows
        where = SpecificationBuilder()
        if in_stock is not None:
            where = where.where("stock", ">" if in_stock else "<=", 0)
        rows = await rows_of.query(paged(where, order_by, desc, limit, offset))
        items = [ProductRow(**{**row, "price": euros(row["price_cents"])}) for row in rows]
        total = await rows_of.count(where.build())
        return Page[ProductRow](items=items, total=total, limit=limit, offset=offset)

    @app.post("/orders", status_code=201, response_model=OrderOut, tags=["orders"])
    async def place_order(
        order: NewOrder,
        request: Request,
        response: Response,
        *,
        pay_within: Annotated[int | None, Query(ge=1, le=MAX_PAY_WITHIN)] = None,
        key: IdempotencyKey = None,
    ) -> OrderOut:
        """Open an order; unless it is paid in time (``pay_within`` seconds), it expires."""
        lines = [Line(sku=line.sku, quantity=line.quantity) for line in order.lines]
        command = PlaceOrder(customer_id=order.customer_id, lines=lines, pay_within=pay_within)
        _, order_id = await send(request, command, key)
        response.headers["Location"] = f"/orders/{order_id}"
        return await order_out(shop_of(request), order_id)

    @app.get("/orders/{order_id}", response_model=OrderOut, tags=["orders"])
    async def get_order(order_id: str, request: Request, response: Response) -> OrderOut:
        """Return an order as its events say it is now; its version is the ``ETag``."""
        order = await order_out(shop_of(request), order_id)
        response.headers["ETag"] = f'"{order.version}"'
        return order

    @app.get("/orders", response_model=Page[OrderRow], tags=["orders"])
    async def list_orders(
        request: Request,
        *,
        status: str | None = None,
        customer_id: str | None = None,
        min_total: Annotated[Decimal | None, Query(ge=0, le=MAX_ORDER_TOTAL)] = None,
        order_by: Literal["placed_at", "total_cents", "items", "order_id"] = "placed_at",
        desc: bool = False,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Page[OrderRow]:
        """List orders (a read model), filtered, ordered and paged."""
        rows_of = shop_of(request).order_rows
        where = SpecificationBuilder()
        if status is not None:
            where = where.where("status", "==", status)
        if customer_id is not None:
            where = where.where("customer_id", "==", customer_id)
        if min_total is not None:
            where = where.where("total_cents", ">=", int(min_total * 100))
        rows = await rows_of.query(paged(where, order_by, desc, limit, offset))
        items = [
            OrderRow(
                **{**row, "total": euros(row["total_cents"]), "placed_at": aware(row["placed_at"])}
            )
            for row in rows
        ]
        total = await rows_of.count(where.build())
        return Page[OrderRow](items=items, total=total, limit=limit, offset=offset)

    async def cart_change(
        request: Request, command: AddItem | RemoveItem, key: str | None
    ) -> CartChange:
        shop = shop_of(request)
        await order_out(shop, command.order_id)

        async def execute(sent: Command) -> str:
            return str(await shop.undo.execute(sent))

        sent, token = await send(request, command, key, execute)
        if token is None:  # a retry: the first request's token, found by its command id
            history = await shop.undo.history(aggregate_id=command.order_id, limit=1000)
            token = next(
                str(entry.token)
                for entry in history
                if entry.command.payload.get("command_id") == str(sent.command_id)
            )
        order = await order_out(shop, command.order_id)
        return CartChange(undo_token=uuid.UUID(str(token)), order=order)

    @app.post("/orders/{order_id}/items", response_model=CartChange, tags=["cart"])
    async def add_item(
        order_id: str, line: LineIn, request: Request, key: IdempotencyKey = None
    ) -> CartChange:
        """Put units of a product in the cart; the answer's token undoes it."""
        command = AddItem(order_id=order_id, sku=line.sku, quantity=line.quantity)
        return await cart_change(request, command, key)

    @app.delete("/orders/{order_id}/items/{sku}", response_model=CartChange, tags=["cart"])
    async def remove_item(
        order_id: str,
        sku: str,
        request: Request,
        quantity: Annotated[int, Query(ge=1, le=MAX_QUANTITY)] = 1,
        key: IdempotencyKey = None,
    ) -> CartChange:
        """Take units of a product out of the cart; the answer's token undoes it."""
        command = RemoveItem(order_id=order_id, sku=sku, quantity=quantity)
        return await cart_change(request, command, key)

    async def token_of(shop: Shop, order_id: str, token: uuid.UUID) -> uuid.UUID:
        """Return ``token`` when it undoes a change of ``order_id``; else 404."""
        entry = await shop.undo.log.get(token)
        if entry is None or order_id not in entry.aggregates:
            raise NotFoundError(f"order {order_id!r} has no change with the undo token {token}")
        return token

    @app.post("/orders/{order_id}/undo", response_model=UndoOut, tags=["cart"])
    async def undo(
        order_id: str,
        request: Request,
        what: Annotated[UndoRequest | None, Body()] = None,
        key: IdempotencyKey = None,
    ) -> UndoOut:
        """Undo a cart change: the one of ``token``, else the newest one still in effect.

        With an ``Idempotency-Key``, a retry undoes nothing more: the key is
        the undo's operation id, which the undo log keeps with the entry.
        """
        shop = shop_of(request)
        await order_out(shop, order_id)
        operation = None if key is None else uuid.uuid5(uuid.NAMESPACE_URL, f"undo:{key}")
        token = what.token if what is not None else None
        if token is None:
            token = await shop.undo.undo_last(aggregate_id=order_id, operation_id=operation)
            if token is None:
                raise OrderError(f"order {order_id} has no change left to undo")
        else:
            await shop.undo.undo(await token_of(shop, order_id, token), operation_id=operation)
        return UndoOut(token=token, order=await order_out(shop, order_id))

    @app.post("/orders/{order_id}/redo", response_model=UndoOut, tags=["cart"])
    async def redo(
        order_id: str, what: RedoRequest, request: Request, key: IdempotencyKey = None
    ) -> UndoOut:
        """Apply an undone cart change again."""
        shop = shop_of(request)
        await order_out(shop, order_id)
        operation = None if key is None else uuid.uuid5(uuid.NAMESPACE_URL, f"redo:{key}")
        await shop.undo.redo(await token_of(shop, order_id, what.token), operation_id=operation)
        return UndoOut(token=what.token, order=await order_out(shop, order_id))

    @app.patch("/orders/{order_id}/delivery", response_model=OrderOut, tags=["orders"])
    async def change_delivery(
        order_id: str,
        change: DeliveryChange,
        request: Request,
        response: Response,
        *,
        if_match: Annotated[str | None, Header(alias="If-Match")] = None,
        key: IdempotencyKey = None,
    ) -> OrderOut:
        """Change delivery details; with ``If-Match``, an edit of an older version is merged.

        A field changed since that version by someone else must agree with
        yours, or the edit is refused (409); the other fields are merged.
        """
        shop = shop_of(request)
        await order_out(shop, order_id)
        changes = change.model_dump(exclude_none=True)
        base = None if if_match is None else version_of(if_match)
        await send(
            request, ChangeDelivery(order_id=order_id, changes=changes, base_version=base), key
        )
        order = await order_out(shop, order_id)
        response.headers["ETag"] = f'"{order.version}"'
        return order

    @app.post(
        "/orders/{order_id}/checkout", status_code=202, response_model=OrderOut, tags=["orders"]
    )
    async def check_out(
        order_id: str,
        payment: Payment,
        request: Request,
        response: Response,
        key: IdempotencyKey = None,
    ) -> OrderOut:
        """Pay: the order-fulfilment saga reserves the stock, charges and confirms."""
        shop = shop_of(request)
        await order_out(shop, order_id)
        await send(request, CheckOut(order_id=order_id, payment_method=payment.payment_method), key)
        response.headers["Location"] = f"/orders/{order_id}/fulfilment"
        return await order_out(shop, order_id)

    @app.post("/orders/{order_id}/payment-confirmation", response_model=OrderOut, tags=["orders"])
    async def payment_confirmed(
        order_id: str, request: Request, key: IdempotencyKey = None
    ) -> OrderOut:
        """The payment provider's call: the customer confirmed a ``card-3ds`` charge."""
        shop = shop_of(request)
        await order_out(shop, order_id)
        await send(request, ConfirmPayment(order_id=order_id), key)
        return await order_out(shop, order_id)

    @app.get("/orders/{order_id}/fulfilment", response_model=FulfilmentOut, tags=["orders"])
    async def fulfilment(order_id: str, request: Request) -> FulfilmentOut:
        """Return where the order-fulfilment saga of the order is."""
        state = await shop_of(request).saga_repository.find("OrderFulfilment", order_id)
        if state is None:
            raise NotFoundError(f"order {order_id!r} has not been checked out")
        return FulfilmentOut(
            status=state.status,
            reason=state.reason,
            awaiting=state.awaiting,
            steps=[
                StepOut(step=step.step, command=step.command.command_type, outcome=step.outcome)
                for step in state.steps
            ],
            history=[
                entry.what if entry.step is None else f"{entry.what} ({entry.step})"
                for entry in state.history
            ],
        )

    @app.post("/orders/{order_id}/shipment", response_model=OrderOut, tags=["orders"])
    async def ship(
        order_id: str, shipment: Shipment, request: Request, key: IdempotencyKey = None
    ) -> OrderOut:
        """Ship a confirmed order."""
        shop = shop_of(request)
        await order_out(shop, order_id)
        await send(request, ShipOrder(order_id=order_id, carrier=shipment.carrier), key)
        return await order_out(shop, order_id)

    @app.get("/reports", response_model=ReportsOut, tags=["reports"])
    async def list_reports(request: Request) -> ReportsOut:
        """Return the monthly reports, and when the schedule writes the next one."""
        shop = shop_of(request)
        schedule = await shop.schedules.recurring(MONTHLY_REPORT)
        async with shop.engine.connect() as connection:
            rows = (await connection.execute(select(reports).order_by(reports.c.month))).all()
        next_at = schedule.next_fire_at
        return ReportsOut(
            next_report_at=None if next_at is None else datetime.fromtimestamp(next_at, UTC),
            reports=[
                ReportOut(
                    month=row.month,
                    orders=row.orders,
                    revenue=euros(row.revenue_cents),
                    created_at=aware(row.created_at),
                )
                for row in rows
            ],
        )

    @app.post("/reports", status_code=201, response_model=ReportOut, tags=["reports"])
    async def write_report(
        what: ReportRequest, request: Request, response: Response, key: IdempotencyKey = None
    ) -> ReportOut:
        """Write the report of a month now (the schedule does it on the 1st of each month)."""
        await send(request, GenerateMonthlyReport(month=what.month), key)
        response.headers["Location"] = f"/reports/{what.month}"
        return await get_report(what.month, request)

    @app.get("/reports/{month}", response_model=ReportOut, tags=["reports"])
    async def get_report(month: str, request: Request) -> ReportOut:
        """Return the report of a month."""
        async with shop_of(request).engine.connect() as connection:
            row = (
                await connection.execute(select(reports).where(reports.c.month == month))
            ).first()
        if row is None:
            raise NotFoundError(f"no report for {month!r}")
        return ReportOut(
            month=row.month,
            orders=row.orders,
            revenue=euros(row.revenue_cents),
            created_at=aware(row.created_at),
        )

    @app.get("/health", response_model=Health, tags=["operations"])
    async def health(request: Request, response: Response) -> Health:
        """Say whether the database answers, and what each worker is doing."""
        shop = shop_of(request)
        database: dict[str, Any] = {"backend": shop.engine.dialect.name}
        try:
            async with shop.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            database["ok"] = True
        except Exception as error:  # noqa: BLE001 - any failure is what health reports
            database.update(ok=False, error=" ".join(str(error).split())[:300])
        workers = await worker_health(shop) if database["ok"] else {}
        healthy = database["ok"] and all(
            worker.get("running") and not worker.get("last_error") for worker in workers.values()
        )
        response.status_code = 200 if healthy else 503
        return Health(status="ok" if healthy else "degraded", database=database, workers=workers)


async def worker_health(shop: Shop) -> dict[str, Any]:
    """Return each worker's status, on the shared status shape where the worker has one."""
    projections = await shop.projections.status()
    workers: dict[str, Any] = {
        "projections": {
            "running": shop.projections.running,
            "projections": [
                {
                    "name": status.name,
                    "checkpoint": status.checkpoint,
                    "head": status.head_position,
                    "lag": status.lag_events,
                    "dead_letters": status.dead_letters,
                }
                for status in projections
            ],
        },
        "sagas": {"running": shop.sagas.worker.running},
        "saga_feed": await feed_health(shop),
        "scheduler": {
            "running": shop.scheduler_worker.running,
            "failed": len(await shop.schedules.dead_letters()),
        },
    }
    for name, worker in shop.relays.items():
        relay = await worker.status()
        workers[f"relay.{name}"] = {
            "running": relay.state not in {"halted", "stopped"},
            "state": relay.state,
            "position": relay.checkpoint,
            "lag": relay.lag_events,
            "owner": relay.owner,
            "last_error": relay.last_error,
        }
    return workers


async def feed_health(shop: Shop) -> dict[str, Any]:
    """Return where the saga feed is in the event log."""
    feed = await shop.saga_feed.status()
    return {
        "running": shop.saga_feed.running,
        "state": feed.state,
        "checkpoint": feed.checkpoint,
        "lag": feed.lag_events,
        "dead_letters": feed.dead_letters,
        "last_error": feed.last_error,
    }


def aware(moment: datetime) -> datetime:
    """Return ``moment`` in UTC (SQLite hands back stored UTC times without their zone)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def version_of(if_match: str) -> int:
    """Return the version an ``If-Match`` header names (``"7"`` or ``7``)."""
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        problem = {"loc": ("header", "If-Match"), "msg": 'must be a version, as in "7"'}
        raise RequestValidationError([{**problem, "type": "value_error", "input": if_match}])
    return int(value)

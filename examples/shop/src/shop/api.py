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

The operator's page (``cqrs_ddd_ops.web``) is mounted at ``/ops``: workers
and their lag, dead letters, sagas, schedules and the outbox; read-only
unless ``SHOP_OPS_ACTIONS=1`` and ``SHOP_OPS_TOKEN`` are set.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal

from cqrs_ddd_ops.web import OperatedSystem, operations_router
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.applications import Starlette

from cqrs_ddd_advanced_core.conflict import UnresolvableConflictError
from cqrs_ddd_advanced_core.projections import SpecificationBuilder
from cqrs_ddd_advanced_core.undo import UndoError, UnknownUndoTokenError
from cqrs_ddd_core import AggregateNotFoundError, ConcurrencyError, ValidationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.exceptions import DatabaseUnavailableError
from shop.application import (
    VersionMismatchError,
)
from shop.commands import (
    AddProduct,
    Line,
    PlaceOrder,
    RegisterCustomer,
    Restock,
)
from shop.domain import (
    MAX_ORDER_TOTAL,
    OrderError,
)
from shop.idempotency import (
    IdempotencyKeyReusedError,
)
from shop.operations import add_report_routes
from shop.order_routes import add_order_routes
from shop.projections import euros
from shop.schemas import (
    MAX_OFFSET,
    MAX_PAY_WITHIN,
    CustomerOut,
    Delivery,
    NewCustomer,
    NewOrder,
    NewProduct,
    OrderOut,
    OrderRow,
    Page,
    ProductOut,
    ProductRow,
    present_product,
)
from shop.settings import Settings
from shop.web import (
    IdempotencyKey,
    NotFoundError,
    aware,
    order_out,
    paged,
    path_part,
    send,
    shop_of,
)
from shop.wiring import ShopOptions, build_shop

logger = logging.getLogger("shop.api")

OPS_PATH = "/ops"
"""Where the operator's page is mounted."""


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
    add_order_routes(app)
    add_report_routes(app)
    add_operations_page(app, settings)
    return app


def add_operations_page(app: FastAPI, settings: Settings) -> None:
    """Mount the operator's page at ``/ops``: read-only unless the settings turn actions on.

    The engine and the projection worker only exist once the lifespan built
    the shop, so the page finds them in ``app.state`` at each request.
    """

    def operated(running: Starlette) -> OperatedSystem | None:
        shop = getattr(running.state, "shop", None)
        if shop is None:
            return None
        relays = tuple(worker for kind, worker in shop.relays.items() if kind == "events")
        return OperatedSystem(
            shop.engine, shop.projections, saga_feeds=(shop.saga_feed,), relays=relays
        )

    router = operations_router(operated, token=settings.ops_token, actions=settings.ops_actions)
    app.include_router(router, prefix=OPS_PATH)


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


def add_routes(app: FastAPI) -> None:  # noqa: PLR0915 - one place lists them
    """Add the customer, catalogue and order endpoints to ``app``.

    The routes of an order's life are in :mod:`shop.order_routes`, the
    reports and health in :mod:`shop.operations`.
    """

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

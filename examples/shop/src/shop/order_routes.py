"""The routes of an order's life once placed: cart, undo, delivery, payment, shipment."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Body, FastAPI, Header, Query, Request, Response

from cqrs_ddd_core import Command
from shop.commands import (
    AddItem,
    ChangeDelivery,
    CheckOut,
    ConfirmPayment,
    RemoveItem,
    ShipOrder,
)
from shop.domain import (
    MAX_QUANTITY,
    OrderError,
)
from shop.schemas import (
    CartChange,
    DeliveryChange,
    FulfilmentOut,
    LineIn,
    OrderOut,
    Payment,
    RedoRequest,
    Shipment,
    StepOut,
    UndoOut,
    UndoRequest,
)
from shop.web import IdempotencyKey, NotFoundError, order_out, send, shop_of, version_of
from shop.wiring import Shop


def add_order_routes(app: FastAPI) -> None:  # noqa: PLR0915 - one place lists them
    """Add the cart, undo, delivery, checkout, fulfilment and shipment endpoints to ``app``."""

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

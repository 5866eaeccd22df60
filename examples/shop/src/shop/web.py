"""What the shop's routes share: the shop of a request, sending a command once per key, 404s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.exceptions import RequestValidationError

from cqrs_ddd_advanced_core.projections import QueryOptions, SpecificationBuilder
from cqrs_ddd_core import Command
from shop.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyKeyReusedError,
    command_id_for,
    fingerprint_of,
)
from shop.schemas import (
    OrderOut,
    present_order,
)
from shop.wiring import Shop

IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH)
]


# --------------------------------------------------------------- the app


class NotFoundError(LookupError):
    """An id in the path names nothing."""


def path_part(part: str) -> str | int:
    """Return a part of a field's path as pydantic writes it (list indices as numbers)."""
    return int(part) if part.isdigit() else part


def shop_of(request: Request) -> Shop:
    """Return the shop the app's lifespan built."""
    shop: Shop = request.app.state.shop
    return shop


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


def paged(
    specification: SpecificationBuilder, order_by: str, desc: bool, limit: int, offset: int
) -> QueryOptions:
    """Return the query options of one page of a list."""
    options = QueryOptions().with_specification(specification.build())
    return options.with_ordering(order_by, desc=desc).with_pagination(limit=limit, offset=offset)


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

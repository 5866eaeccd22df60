"""The spec's ``UpdateOrderHandler`` (a ``ResilientCommandHandler``) on SQLite and PostgreSQL.

``Order`` is state-stored in ``SQLAlchemyRepository``, whose ``save`` checks the
version inside the command's transaction (``UPDATE ... WHERE version = expected``).
Concurrent updates race for real on PostgreSQL: a barrier holds the first two
loads until both happened, so both commands start from version 1. SQLite has one
writer at a time (``BEGIN IMMEDIATE``), so there a conflict is staged by handing
the handler a stale first load instead.

Choice documented in the advanced package's README: a conflict the strategy
cannot resolve (``UnresolvableConflictError``) is raised at the resolving attempt
and not retried; conflicts that keep coming (a resolution overtaken again and
again) surface as ``ConcurrencyError`` after ``max_retries`` resolutions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.conflict import (
    DeepMergeStrategy,
    FieldMergeStrategy,
    UnresolvableConflictError,
)
from cqrs_ddd_advanced_core.cqrs import ResilientCommandHandler, attempts_of
from cqrs_ddd_core import AggregateRoot, Command, DomainEvent, HandlerRegistry, Mediator
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyRepository, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.schema import outbox

pytest_plugins = ["sqlalchemy_fixtures"]


class OrderPlaced(DomainEvent):
    customer_id: str


class OrderUpdated(DomainEvent):
    changes: dict[str, Any]


class Order(AggregateRoot):
    customer_id: str
    status: str = "pending"
    shipping: dict[str, Any] = {}
    items: list[dict[str, Any]] = []

    @classmethod
    def place(cls, order_id: str, customer_id: str) -> Order:
        order = cls(id=order_id, customer_id=customer_id)
        order.record_event(OrderPlaced(customer_id=customer_id))
        return order

    def update(self, changes: Mapping[str, Any]) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        self.record_event(OrderUpdated(changes=dict(changes)))


class PlaceOrder(Command):
    order_id: str
    customer_id: str


class UpdateOrder(Command):
    order_id: str
    changes: dict[str, Any]


# ------------------------------------- the spec's handler, verbatim, plus its constructor (NOTES 8)


class UpdateOrderHandler(ResilientCommandHandler[UpdateOrder]):
    # Retry configuration
    max_retries = 3
    retry_delay = 1.0
    exponential_backoff = True

    # Conflict resolution
    conflict_strategy = DeepMergeStrategy(list_identity_key="id")

    def __init__(self, repo: Any) -> None:
        self.repo = repo

    async def _handle_internal(self, command: UpdateOrder):  # type: ignore[no-untyped-def]
        order = await self.repo.get(command.order_id)
        order.update(command.changes)
        await self.repo.save(order)

    def resolve_conflict(self, existing: Order, incoming: dict) -> Order:  # type: ignore[type-arg]
        merged = self.conflict_strategy.merge(
            existing.model_dump(),
            incoming,
        )
        return Order(**merged)


# ---------------------------------------------------------------- staging the race


class RacingOrders:
    """The order repository, whose first ``parties`` loads wait for each other after loading.

    Later loads (the resolving attempt's reload) pass straight through.
    """

    def __init__(self, inner: SQLAlchemyRepository[Order], parties: int) -> None:
        self.inner = inner
        self.parties = parties
        self.barrier = asyncio.Barrier(parties)
        self.loads = 0
        self.loaded_versions: list[int] = []

    async def get(self, order_id: str) -> Order:
        order = await self.inner.get(order_id)
        self.loaded_versions.append(order.version)
        self.loads += 1
        if self.loads <= self.parties:
            await asyncio.wait_for(self.barrier.wait(), timeout=30)
        return order

    async def find(self, order_id: str) -> Order | None:
        return await self.inner.find(order_id)

    async def save(self, order: Order) -> None:
        await self.inner.save(order)


class StaleFirstLoad:
    """The order repository, whose first load returns a copy taken before another writer."""

    def __init__(self, inner: SQLAlchemyRepository[Order], stale: Order) -> None:
        self.inner = inner
        self.stale: Order | None = stale

    async def get(self, order_id: str) -> Order:
        stale, self.stale = self.stale, None
        return stale if stale is not None else await self.inner.get(order_id)

    async def find(self, order_id: str) -> Order | None:
        return await self.inner.find(order_id)

    async def save(self, order: Order) -> None:
        await self.inner.save(order)


class Shop:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.orders = SQLAlchemyRepository(Order, engine)
        self.placing = self.mediator_for(PlaceOrder, self.place)

    def mediator_for(self, command_type: type[Command], handler: Any) -> Mediator:
        registry = HandlerRegistry()
        registry.register_command_handler(command_type, handler)
        return Mediator(registry=registry, uow_factory=lambda: SQLAlchemyUnitOfWork(self.engine))

    async def place(self, command: PlaceOrder) -> None:
        await self.orders.save(Order.place(command.order_id, command.customer_id))

    async def outbox_event_types(self) -> list[str]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(outbox.c.payload).order_by(outbox.c.id))
            return [row.payload["event_type"] for row in rows]


async def race(mediator: Mediator, *commands: Command) -> list[Any]:
    return await asyncio.wait_for(
        asyncio.gather(*(mediator.send(c) for c in commands), return_exceptions=True), timeout=60
    )


# ---------------------------------------------------------------- both backends


async def test_the_spec_s_update_order_handler_updates_a_stored_order(engine: AsyncEngine) -> None:
    # given
    shop = Shop(engine)
    await shop.placing.send(PlaceOrder(order_id="o-1", customer_id="c-1"))
    mediator = shop.mediator_for(UpdateOrder, UpdateOrderHandler(shop.orders))
    # when
    await mediator.send(UpdateOrder(order_id="o-1", changes={"status": "paid"}))
    # then
    order = await shop.orders.get("o-1")
    assert (order.status, order.version) == ("paid", 2)
    assert await shop.outbox_event_types() == ["OrderPlaced", "OrderUpdated"]


async def test_an_update_that_loaded_a_stale_order_is_merged_into_the_stored_one(
    engine: AsyncEngine,
) -> None:
    # given: the handler's first load happened before another update committed
    shop = Shop(engine)
    await shop.placing.send(PlaceOrder(order_id="o-1", customer_id="c-1"))
    stale = await shop.orders.get("o-1")
    await shop.mediator_for(UpdateOrder, UpdateOrderHandler(shop.orders)).send(
        UpdateOrder(order_id="o-1", changes={"shipping": {"city": "Lyon"}})
    )
    handler = UpdateOrderHandler(StaleFirstLoad(shop.orders, stale))
    # when
    await shop.mediator_for(UpdateOrder, handler).send(
        UpdateOrder(order_id="o-1", changes={"shipping": {"zip": "69001"}, "status": "paid"})
    )
    # then: the stale write was refused, the changes merged into version 2 and saved as 3
    order = await shop.orders.get("o-1")
    assert order.shipping == {"city": "Lyon", "zip": "69001"}
    assert (order.status, order.version) == ("paid", 3)
    assert await shop.outbox_event_types() == ["OrderPlaced", "OrderUpdated", "ConflictResolved"]


# ---------------------------------------------------------------- real races on PostgreSQL


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_concurrent_updates_of_different_fields_both_succeed_through_resolution(
    engine: AsyncEngine,
) -> None:
    # given: an order, and two updates that both load version 1 before either saves
    shop = Shop(engine)
    await shop.placing.send(PlaceOrder(order_id="o-1", customer_id="c-1"))
    racing = RacingOrders(shop.orders, parties=2)
    mediator = shop.mediator_for(UpdateOrder, UpdateOrderHandler(racing))
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"status": "paid"}),
        UpdateOrder(order_id="o-1", changes={"items": [{"id": 1, "qty": 2}]}),
    )
    # then: both succeed, and the stored order holds both changes
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert racing.loaded_versions == [1, 1, 2]
    order = await shop.orders.get("o-1")
    assert (order.status, order.items, order.version) == ("paid", [{"id": 1, "qty": 2}], 3)
    assert sorted(await shop.outbox_event_types()) == [
        "ConflictResolved",
        "OrderPlaced",
        "OrderUpdated",
    ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_three_concurrent_updates_lose_no_change(engine: AsyncEngine) -> None:
    # given: three updates of three fields, all loading version 1
    shop = Shop(engine)
    await shop.placing.send(PlaceOrder(order_id="o-1", customer_id="c-1"))
    mediator = shop.mediator_for(UpdateOrder, UpdateOrderHandler(RacingOrders(shop.orders, 3)))
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"status": "paid"}),
        UpdateOrder(order_id="o-1", changes={"items": [{"id": 1, "qty": 2}]}),
        UpdateOrder(order_id="o-1", changes={"shipping": {"city": "Lyon"}}),
    )
    # then: the resolutions themselves conflicted and were resolved again against the new version
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    order = await shop.orders.get("o-1")
    assert (order.status, order.items, order.shipping) == (
        "paid",
        [{"id": 1, "qty": 2}],
        {"city": "Lyon"},
    )
    assert order.version == 4


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_conflict_the_strategy_cannot_resolve_surfaces_the_typed_error(
    engine: AsyncEngine,
) -> None:
    # given: a strategy that refuses two different statuses
    class StrictUpdateOrderHandler(UpdateOrderHandler):
        conflict_strategy = FieldMergeStrategy({"status": "refuse"})  # type: ignore[assignment]

    shop = Shop(engine)
    await shop.placing.send(PlaceOrder(order_id="o-1", customer_id="c-1"))
    mediator = shop.mediator_for(
        UpdateOrder, StrictUpdateOrderHandler(RacingOrders(shop.orders, parties=2))
    )
    # when
    outcomes = await race(
        mediator,
        UpdateOrder(order_id="o-1", changes={"status": "paid"}),
        UpdateOrder(order_id="o-1", changes={"status": "cancelled"}),
    )
    # then: one wins; the other gets the typed error, not retried, with its attempts
    (error,) = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(error, UnresolvableConflictError)
    assert error.field_path == "status"
    assert [(a.attempt, a.error_type) for a in attempts_of(error)] == [
        (1, "ConcurrencyError"),
        (2, "UnresolvableConflictError"),
    ]
    order = await shop.orders.get("o-1")
    assert (order.status, order.version) == (error.existing_value, 2)

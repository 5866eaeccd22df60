from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from cqrs_ddd_advanced_core.projections import QueryOptions
from cqrs_ddd_core import ConcurrencyError, ValidationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_testing import PostgresDatabase
from shop.__main__ import main
from shop.application import (
    AddItem,
    ConfirmOrder,
    GetOrderSummary,
    PlaceOrder,
    Shop,
    build_shop,
)
from shop.domain import ItemAdded, OrderConfirmed, OrderError
from shop.projections import OrderSummary
from shop.settings import Settings


@pytest_asyncio.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite'}")
    yield await build_shop(engine)
    await engine.dispose()


async def place_and_fill(shop: Shop, customer_id: str = "c-1", *, confirm: bool = True) -> str:
    order_id: str = (await shop.mediator.send(PlaceOrder(customer_id=customer_id))).result
    await shop.mediator.send(
        AddItem(order_id=order_id, sku="book", quantity=2, unit_price=Decimal("12.50"))
    )
    if confirm:
        await shop.mediator.send(ConfirmOrder(order_id=order_id))
    return order_id


async def summary_of(shop: Shop, order_id: str) -> OrderSummary | None:
    summary: OrderSummary | None = await shop.mediator.query(GetOrderSummary(order_id=order_id))
    return summary


async def test_an_order_is_placed_filled_and_confirmed_and_the_summary_follows_a_catch_up(
    shop: Shop,
) -> None:
    # given
    order_id = (await shop.mediator.send(PlaceOrder(customer_id="c-1"))).result
    # when
    added = await shop.mediator.send(
        AddItem(order_id=order_id, sku="book", quantity=2, unit_price=Decimal("12.50"))
    )
    confirmed = await shop.mediator.send(ConfirmOrder(order_id=order_id))
    (status,) = await shop.projections.catch_up()
    # then
    assert [type(e) for e in added.events] == [ItemAdded]
    assert [type(e) for e in confirmed.events] == [OrderConfirmed]
    assert (status.checkpoint, status.lag_events, status.dead_letters) == (3, 0, 0)
    assert await summary_of(shop, order_id) == OrderSummary(
        order_id=order_id, customer_id="c-1", items=2, total=Decimal("25.00"), status="confirmed"
    )


async def test_the_running_projection_worker_keeps_the_summary_up_to_date(shop: Shop) -> None:
    # given
    await shop.projections.start()
    try:
        # when
        order_id = await place_and_fill(shop, confirm=False)
        await shop.projections.wait_until_caught_up(within=10)
        open_summary = await summary_of(shop, order_id)
        await shop.mediator.send(ConfirmOrder(order_id=order_id))
        await shop.projections.wait_until_caught_up(within=10)
        # then
        assert open_summary is not None
        assert (open_summary.items, open_summary.status) == (2, "open")
        confirmed = await summary_of(shop, order_id)
        assert confirmed is not None
        assert confirmed.status == "confirmed"
    finally:
        await shop.projections.stop()


async def test_after_a_restart_the_projection_applies_only_the_events_past_its_checkpoint(
    tmp_path: Path,
) -> None:
    # given: one order projected by a first process
    url = f"sqlite+aiosqlite:///{tmp_path / 'restart.sqlite'}"
    first_engine = create_engine(url)
    first = await build_shop(first_engine)
    earlier = await place_and_fill(first)
    await first.projections.catch_up()
    await first_engine.dispose()
    # when: a second process places another order and catches up
    engine = create_engine(url)
    try:
        second = await build_shop(engine)
        later = await place_and_fill(second, "c-2")
        (status,) = await second.projections.catch_up()
        # then: the first order is not counted twice
        assert (status.checkpoint, status.head_position) == (6, 6)
        earlier_summary = await summary_of(second, earlier)
        later_summary = await summary_of(second, later)
        assert earlier_summary is not None
        assert later_summary is not None
        assert (earlier_summary.items, later_summary.items) == (2, 2)
        assert await second.summaries.count() == 2
    finally:
        await engine.dispose()


async def test_a_rebuild_restores_damaged_summaries_from_the_events(shop: Shop) -> None:
    # given: two projected orders, then the read model damaged by hand
    kept = await place_and_fill(shop, "c-1")
    lost = await place_and_fill(shop, "c-2", confirm=False)
    await shop.projections.catch_up()
    by_order = QueryOptions().with_ordering("order_id")
    projected = await shop.summaries.query(by_order)
    async with shop.summaries.engine.begin() as connection:
        await shop.summaries.delete(connection, lost)
        await shop.summaries.update(connection, kept, {"items": 99})
    # when
    status = await shop.projections.rebuild("shop.order_summaries")
    # then
    assert (status.state, status.checkpoint) == ("idle", 5)
    assert await shop.summaries.query(by_order) == projected
    assert len(projected) == 2


async def test_the_order_is_rebuilt_from_the_events_stored_in_sqlite(shop: Shop) -> None:
    order_id = (await shop.mediator.send(PlaceOrder(customer_id="c-1"))).result
    await shop.mediator.send(
        AddItem(order_id=order_id, sku="pen", quantity=3, unit_price=Decimal("1.20"))
    )
    stream = await shop.event_store.load_stream(order_id)
    assert [event.event_type for event in stream] == ["OrderPlaced", "ItemAdded"]
    order = await shop.orders.get(order_id)
    assert (order.version, order.lines, order.total.amount) == (2, {"pen": 3}, Decimal("3.60"))


async def test_the_customer_is_state_stored_beside_the_event_sourced_orders(shop: Shop) -> None:
    await shop.mediator.send(PlaceOrder(customer_id="c-1", customer_name="Ada"))
    await shop.mediator.send(PlaceOrder(customer_id="c-1"))
    customer = await shop.customers.get("c-1")
    # every save of the state-stored customer advances its version, events or not
    assert (customer.name, customer.orders_placed, customer.version) == ("Ada", 2, 2)
    assert await shop.event_store.load_stream("c-1") == []


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite'}"
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.sqlalchemy_url


async def test_concurrent_orders_of_one_customer_are_all_counted_or_refused(
    database_url: str,
) -> None:
    # given: a shop, and one customer
    engine = create_engine(database_url)
    try:
        shop = await build_shop(engine)
        await shop.mediator.send(PlaceOrder(customer_id="c-1", customer_name="Ada"))
        # when: 20 orders are placed for that customer at once
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(shop.mediator.send(PlaceOrder(customer_id="c-1")) for _ in range(20)),
                return_exceptions=True,
            ),
            timeout=120,
        )
        # then: each order stored is counted on the customer; the others were refused
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert all(isinstance(failure, ConcurrencyError) for failure in failures), failures
        placed = 1 + len(outcomes) - len(failures)
        await shop.projections.catch_up()
        assert (await shop.customers.get("c-1")).orders_placed == placed
        assert await shop.summaries.count() == placed
    finally:
        await engine.dispose()


async def test_a_confirmed_order_refuses_items_and_keeps_its_total(shop: Shop) -> None:
    order_id = (await shop.mediator.send(PlaceOrder(customer_id="c-1"))).result
    await shop.mediator.send(
        AddItem(order_id=order_id, sku="pen", quantity=1, unit_price=Decimal(2))
    )
    await shop.mediator.send(ConfirmOrder(order_id=order_id))
    with pytest.raises(OrderError, match="confirmed"):
        await shop.mediator.send(
            AddItem(order_id=order_id, sku="late", quantity=1, unit_price=Decimal(1))
        )
    assert (await shop.orders.get(order_id)).total.amount == Decimal(2)


async def test_a_negative_price_is_refused_before_the_handler_runs(shop: Shop) -> None:
    order_id = (await shop.mediator.send(PlaceOrder(customer_id="c-1"))).result
    with pytest.raises(ValidationError) as raised:
        await shop.mediator.send(
            AddItem(order_id=order_id, sku="x", quantity=1, unit_price=Decimal(-1))
        )
    assert raised.value.fields == ("unit_price",)
    assert (await shop.orders.get(order_id)).version == 1


async def test_the_main_job_runs_to_the_end_on_a_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'main.sqlite'}")
    assert await main(settings) == 0
    output = capsys.readouterr().out
    assert "placed order" in output
    assert "summary before the projection caught up: None" in output
    assert "items=5, total=Decimal('28.60'), status='confirmed')" in output
    assert "order summaries: 1, of which confirmed: 1" in output
    assert "rebuilt from its events: confirmed at version 4" in output
    assert (tmp_path / "main.sqlite").exists()


async def test_the_main_job_runs_twice_on_postgresql_and_the_projection_follows(
    postgres_database: PostgresDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=postgres_database.sqlalchemy_url)
    assert await main(settings) == 0
    assert await main(settings) == 0
    second_run = capsys.readouterr().out.split("database:")[-1]
    assert "projection shop.order_summaries: checkpoint 8 of 8" in second_run
    assert "order summaries: 2, of which confirmed: 2" in second_run


@pytest.mark.parametrize(
    ("command_changes", "field"),
    [
        ({"unit_price": Decimal("0.005")}, "unit_price"),
        ({"unit_price": Decimal("1000000000.01")}, "unit_price"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 10_001}, "quantity"),
    ],
    ids=["sub-cent", "over-the-largest-total", "no-quantity", "too-many"],
)
async def test_an_item_the_summary_could_not_hold_is_refused_before_the_handler(
    shop: Shop, command_changes: dict[str, object], field: str
) -> None:
    order_id = (await shop.mediator.send(PlaceOrder(customer_id="c-1"))).result
    command = AddItem(order_id=order_id, sku="x", quantity=1, unit_price=Decimal(1))
    with pytest.raises(ValidationError) as raised:
        await shop.mediator.send(command.model_copy(update=command_changes))
    assert raised.value.fields == (field,)
    assert (await shop.orders.get(order_id)).version == 1


async def test_whatever_the_commands_accept_the_summary_holds_on_every_backend(
    database_url: str,
) -> None:
    # given: the longest order id, and an order at the largest total, in sub-euro cents
    engine = create_engine(database_url)
    try:
        shop = await build_shop(engine)
        order_id = "o" * 255
        await shop.mediator.send(PlaceOrder(customer_id="c" * 255, order_id=order_id))
        for price in (Decimal("999999999.99"), Decimal("0.01")):
            await shop.mediator.send(
                AddItem(order_id=order_id, sku="gold", quantity=1, unit_price=price)
            )
        with pytest.raises(OrderError, match="largest total"):
            await shop.mediator.send(
                AddItem(order_id=order_id, sku="gold", quantity=1, unit_price=Decimal("0.01"))
            )
        await shop.mediator.send(ConfirmOrder(order_id=order_id))
        # when
        (status,) = await shop.projections.catch_up()
        # then: projected, exactly, with nothing dead-lettered
        assert status.dead_letters == 0
        assert await summary_of(shop, order_id) == OrderSummary(
            order_id=order_id,
            customer_id="c" * 255,
            items=2,
            total=Decimal("1000000000.00"),
            status="confirmed",
        )
    finally:
        await engine.dispose()

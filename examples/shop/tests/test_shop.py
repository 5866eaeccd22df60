from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from cqrs_ddd_core import ValidationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
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
from shop.settings import Settings


@pytest_asyncio.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite'}")
    yield await build_shop(engine)
    await engine.dispose()


async def test_an_order_is_placed_filled_and_confirmed_and_the_summary_follows(
    shop: Shop,
) -> None:
    # given
    order_id = (await shop.mediator.send(PlaceOrder(customer_id="c-1"))).result
    # when
    added = await shop.mediator.send(
        AddItem(order_id=order_id, sku="book", quantity=2, unit_price=Decimal("12.50"))
    )
    confirmed = await shop.mediator.send(ConfirmOrder(order_id=order_id))
    # then
    assert [type(e) for e in added.events] == [ItemAdded]
    assert [type(e) for e in confirmed.events] == [OrderConfirmed]
    summary = await shop.mediator.query(GetOrderSummary(order_id=order_id))
    assert (summary.items, summary.total, summary.status) == (2, Decimal("25.00"), "confirmed")


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
    assert (customer.name, customer.orders_placed, customer.version) == ("Ada", 2, 1)
    assert await shop.event_store.load_stream("c-1") == []


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
    assert "rebuilt from its events: confirmed at version 4" in output
    assert (tmp_path / "main.sqlite").exists()

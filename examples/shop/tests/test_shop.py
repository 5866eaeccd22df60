from __future__ import annotations

from decimal import Decimal

import pytest

from cqrs_ddd_core import ValidationError
from shop.__main__ import main
from shop.application import AddItem, ConfirmOrder, GetOrderSummary, PlaceOrder, build_shop
from shop.domain import ItemAdded, OrderConfirmed, OrderError


async def test_an_order_is_placed_filled_and_confirmed_and_the_summary_follows() -> None:
    # given
    shop = build_shop()
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


async def test_a_confirmed_order_refuses_items_and_keeps_its_total() -> None:
    shop = build_shop()
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


async def test_a_negative_price_is_refused_before_the_handler_runs() -> None:
    shop = build_shop()
    order_id = (await shop.mediator.send(PlaceOrder(customer_id="c-1"))).result
    with pytest.raises(ValidationError) as raised:
        await shop.mediator.send(
            AddItem(order_id=order_id, sku="x", quantity=1, unit_price=Decimal(-1))
        )
    assert raised.value.fields == ("unit_price",)
    assert (await shop.orders.get(order_id)).version == 1


async def test_the_main_job_runs_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert await main() == 0
    output = capsys.readouterr().out
    assert "placed order" in output
    assert "is confirmed at version 4" in output

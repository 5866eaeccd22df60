from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from core_test_model import ItemAdded, OrderPlaced

from cqrs_ddd_core import DomainEvent, EventDispatcher
from cqrs_ddd_core.exceptions import EventDispatchError


async def test_handlers_receive_the_events_of_their_type_in_order() -> None:
    dispatcher = EventDispatcher()
    placed: list[str] = []
    everything: list[str] = []

    @dispatcher.handles(OrderPlaced)
    async def on_placed(event: OrderPlaced) -> None:
        placed.append(event.customer_id)

    @dispatcher.handles(DomainEvent)
    async def on_any(event: DomainEvent) -> None:
        everything.append(event.event_type)

    await dispatcher.dispatch(
        [
            OrderPlaced(customer_id="a"),
            ItemAdded(sku="s", price=Decimal(1)),
            OrderPlaced(customer_id="b"),
        ]
    )
    assert placed == ["a", "b"]
    assert everything == ["OrderPlaced", "ItemAdded", "OrderPlaced"]


async def test_a_failing_handler_does_not_starve_the_others_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = EventDispatcher()
    received: list[str] = []

    async def broken(event: OrderPlaced) -> None:
        raise ValueError("read model down")

    async def healthy(event: OrderPlaced) -> None:
        received.append(event.customer_id)

    dispatcher.subscribe(OrderPlaced, broken)
    dispatcher.subscribe(OrderPlaced, healthy)
    event = OrderPlaced(customer_id="a")
    with caplog.at_level(logging.ERROR, logger="cqrs_ddd_core.events"):
        await dispatcher.dispatch([event])
    assert received == ["a"]
    assert any(
        "broken" in r.getMessage() and str(event.event_id) in r.getMessage() for r in caplog.records
    )


async def test_with_on_error_raise_the_failures_surface_after_every_handler_ran() -> None:
    dispatcher = EventDispatcher(on_error="raise")
    received: list[str] = []

    async def broken(event: OrderPlaced) -> None:
        raise ValueError("read model down")

    async def healthy(event: OrderPlaced) -> None:
        received.append(event.customer_id)

    dispatcher.subscribe(OrderPlaced, broken)
    dispatcher.subscribe(OrderPlaced, healthy)
    with pytest.raises(EventDispatchError) as raised:
        await dispatcher.dispatch([OrderPlaced(customer_id="a"), OrderPlaced(customer_id="b")])
    assert received == ["a", "b"]
    assert len(raised.value.failures) == 2
    assert "read model down" in str(raised.value)

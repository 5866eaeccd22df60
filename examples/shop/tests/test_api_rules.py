"""The shop's rules at their edges, over HTTP, on SQLite and PostgreSQL.

Retried undos, tokens of other orders, stale and future versions, settled
orders, limits that only the whole order knows, huge query values, stock that
leaves with a shipment, a charge that lands while the saga compensates, an
event whose dispatch was lost, a worker that is down.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from shop_testing import Service
from sqlalchemy import update

from cqrs_ddd_persistence_sqlalchemy.schema import events
from shop.application import (
    expiry_id,
    previous_month,
)
from shop.commands import (
    ReleaseStock,
)
from shop.domain import OrderCheckedOut, PaymentCharged


async def place(service: Service, lines: list[dict[str, Any]]) -> str:
    order = await service.json("POST", "/orders", 201, json={"customer_id": "ada", "lines": lines})
    order_id: str = order["order_id"]
    return order_id


async def event_types(service: Service, order_id: str) -> list[str]:
    return [e.event_type for e in await service.shop.event_store.load_stream(order_id)]


async def test_an_undo_retried_with_its_key_undoes_one_change(service: Service) -> None:
    order_id = await place(service, [{"sku": "tea", "quantity": 1}])
    for sku in ("mug", "tea"):
        await service.json(
            "POST", f"/orders/{order_id}/items", 200, json={"sku": sku, "quantity": 1}
        )
    headers = {"Idempotency-Key": "undo-1"}
    first = await service.json("POST", f"/orders/{order_id}/undo", 200, headers=headers)
    again = await service.json("POST", f"/orders/{order_id}/undo", 200, headers=headers)
    assert first["token"] == again["token"]
    lines = {line["sku"]: line["quantity"] for line in again["order"]["lines"]}
    assert lines == {"tea": 1, "mug": 1}  # only the newest change (one tea) was undone


async def test_a_token_of_another_order_is_unknown_there(service: Service) -> None:
    mine = await place(service, [{"sku": "tea", "quantity": 1}])
    theirs = await place(service, [{"sku": "tea", "quantity": 1}])
    added = await service.json(
        "POST", f"/orders/{theirs}/items", 200, json={"sku": "mug", "quantity": 1}
    )
    response = await service.client.post(
        f"/orders/{mine}/undo", json={"token": added["undo_token"]}
    )
    assert response.status_code == 404
    assert len((await service.json("GET", f"/orders/{theirs}", 200))["lines"]) == 2


async def test_versions_the_order_never_had_and_settled_orders_refuse_edits(
    service: Service,
) -> None:
    order_id = await place(service, [{"sku": "tea", "quantity": 1}])
    future = await service.client.patch(
        f"/orders/{order_id}/delivery", json={"slot": "am"}, headers={"If-Match": '"999"'}
    )
    assert future.status_code == 412
    seen = (await service.client.get(f"/orders/{order_id}")).headers["etag"]
    await service.json("POST", f"/orders/{order_id}/checkout", 202, json={"payment_method": "c"})
    await service.json("POST", f"/orders/{order_id}/shipment", 200, json={"carrier": "Post"})
    for headers in ({}, {"If-Match": seen}):
        response = await service.client.patch(
            f"/orders/{order_id}/delivery", json={"slot": "pm"}, headers=headers
        )
        assert response.status_code == 409, headers
        assert "settled" in response.json()["detail"]
    empty = await service.client.patch(f"/orders/{order_id}/delivery", json={})
    assert (empty.status_code, empty.json()["detail"][0]["loc"]) == (422, ["body", "changes"])


async def test_blind_edits_of_fields_set_before_race_without_a_false_conflict(
    service: Service,
) -> None:
    order_id = await place(service, [{"sku": "tea", "quantity": 1}])
    both = {"address": "1 Old Road", "slot": "am"}
    await service.json("PATCH", f"/orders/{order_id}/delivery", 200, json=both)
    answers = await asyncio.gather(
        service.client.patch(f"/orders/{order_id}/delivery", json={"address": "2 New Road"}),
        service.client.patch(f"/orders/{order_id}/delivery", json={"slot": "pm"}),
    )
    assert [answer.status_code for answer in answers] == [200, 200]
    order = await service.json("GET", f"/orders/{order_id}", 200)
    assert order["delivery"] == {"address": "2 New Road", "slot": "pm"}


async def test_limits_only_the_whole_order_or_shelf_knows_are_invalid_input(
    service: Service,
) -> None:
    gold = {"sku": "gold", "name": "Gold", "price": "100000.00", "stock": 1_000_000_000}
    await service.json("POST", "/products", 201, json=gold)
    lines = [{"sku": "gold", "quantity": 10_000}, {"sku": "tea", "quantity": 1}]
    response = await service.client.post("/orders", json={"customer_id": "ada", "lines": lines})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "lines", 1, "quantity"]
    restock = await service.client.post("/products/gold/deliveries", json={"quantity": 1})
    assert (restock.status_code, restock.json()["detail"][0]["loc"]) == (422, ["body", "quantity"])
    for query in ("min_total=1e20", "offset=10000000000000000000"):
        assert (await service.client.get(f"/orders?{query}")).status_code == 422, query
    assert (await service.client.get("/products?offset=10000000000000000000")).status_code == 422


async def test_stock_held_for_an_order_leaves_with_its_shipment(service: Service) -> None:
    order_id = await place(service, [{"sku": "mug", "quantity": 2}])
    await service.json("POST", f"/orders/{order_id}/checkout", 202, json={"payment_method": "c"})
    assert (await service.json("GET", "/products/mug", 200))["held"] == 2
    await service.json("POST", f"/orders/{order_id}/shipment", 200, json={"carrier": "Post"})
    mug = await service.json("GET", "/products/mug", 200)
    assert (mug["stock"], mug["held"]) == (3, 0)
    product = await service.shop.stores.products.get("mug")
    assert product.held == {}
    await service.shop.projections.wait_until_caught_up(within=10.0)
    rows = await service.json("GET", "/products?order_by=sku", 200)
    assert {(row["sku"], row["held"]) for row in rows["items"]} == {("mug", 0), ("tea", 0)}


async def test_a_charge_that_lands_while_the_saga_compensates_is_refunded(
    service: Service,
) -> None:
    order_id = await place(service, [{"sku": "tea", "quantity": 1}])
    await service.json(
        "POST", f"/orders/{order_id}/checkout", 202, json={"payment_method": "card-3ds"}
    )
    order = await service.shop.stores.orders.get(order_id)
    charged = PaymentCharged(
        amount=order.total, reference="late", aggregate_id=order_id, aggregate_type="Order"
    )  # the provider's confirmation, committed just after the saga refunded nothing
    await service.shop.event_store.append(order_id, [charged], expected_version=order.version)
    # then the compensation of the reservation, as the saga sends it after its timeout
    await service.shop.mediator.send(ReleaseStock(order_id=order_id))
    assert (await event_types(service, order_id))[-3:] == [
        "PaymentCharged",
        "PaymentRefunded",
        "OrderCancelled",
    ]
    tea = await service.json("GET", "/products/tea", 200)
    assert (tea["stock"], tea["held"]) == (10, 0)


async def test_a_confirmed_payment_cancels_the_expiry(service: Service) -> None:
    order_id = await place(service, [{"sku": "tea", "quantity": 1}])
    await service.json(
        "POST", f"/orders/{order_id}/checkout", 202, json={"payment_method": "card-3ds"}
    )
    assert (await service.shop.schedules.get(expiry_id(order_id))).status == "pending"
    paid = await service.json("POST", f"/orders/{order_id}/payment-confirmation", 200)
    assert paid["status"] == "confirmed"
    assert (await service.shop.schedules.get(expiry_id(order_id))).status == "cancelled"


async def test_a_checkout_whose_dispatch_was_lost_is_fulfilled_from_the_event_log(
    service: Service,
) -> None:
    order_id = await place(service, [{"sku": "tea", "quantity": 2}])
    order = await service.shop.stores.orders.get(order_id)
    lost = OrderCheckedOut(
        customer_id="ada",
        total=order.total,
        payment_method="card-ok",
        aggregate_id=order_id,
        aggregate_type="Order",
    )  # committed, and the process died before dispatching it
    await service.shop.event_store.append(order_id, [lost], expected_version=order.version)
    fulfilled = await service.eventually(
        f"/orders/{order_id}", lambda o: o["status"] == "confirmed", within=20.0
    )
    assert fulfilled["status"] == "confirmed"
    saga = await service.json("GET", f"/orders/{order_id}/fulfilment", 200)
    assert saga["status"] == "completed"


async def test_the_monthly_report_when_the_schedule_fires_covers_the_month_before(
    service: Service,
) -> None:
    from shop.commands import GenerateMonthlyReport

    month = (await service.shop.mediator.send(GenerateMonthlyReport())).result
    assert month == previous_month(datetime.now(UTC))
    report = await service.json("GET", f"/reports/{month}", 200)
    assert (report["orders"], report["revenue"]) == (0, "0.00")


async def test_health_is_degraded_while_a_worker_is_down(service: Service) -> None:
    await service.shop.projections.stop()
    try:
        response = await service.client.get("/health")
        assert response.status_code == 503
        assert response.json()["status"] == "degraded"
        assert response.json()["workers"]["projections"]["running"] is False
    finally:
        await service.shop.projections.start()
    assert (await service.client.get("/health")).status_code == 200


async def test_a_product_is_loaded_from_its_snapshot(service: Service) -> None:
    for _ in range(50):
        await service.json("POST", "/products/tea/deliveries", 200, json={"quantity": 1})
    snapshot = await service.shop.snapshots.repository.latest("tea")
    assert snapshot is not None
    assert (snapshot.version, snapshot.state["stock"]) == (50, 59)
    # an early event rewritten behind the shop's back: a load from the snapshot never reads it
    async with service.shop.engine.begin() as connection:
        await connection.execute(
            update(events)
            .where(events.c.stream_id == "tea", events.c.version == 2)
            .values(payload={"quantity": 1000})
        )
    assert (await service.json("GET", "/products/tea", 200))["stock"] == 60

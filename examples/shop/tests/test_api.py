"""The shop driven over HTTP (httpx against the ASGI app), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from shop_testing import Service

from cqrs_ddd_core import DomainEvent
from shop.application import (
    expiry_id,
)
from shop.domain import Money
from shop.wiring import MONTHLY_REPORT

TEA_AND_MUG = [{"sku": "tea", "quantity": 2}, {"sku": "mug", "quantity": 1}]


async def place(service: Service, lines: list[dict[str, Any]] = TEA_AND_MUG, **params: Any) -> str:
    order = await service.json(
        "POST", "/orders", 201, json={"customer_id": "ada", "lines": lines}, params=params
    )
    order_id: str = order["order_id"]
    return order_id


async def test_a_creation_answers_201_with_the_location_of_what_it_created(
    service: Service,
) -> None:
    response = await service.client.post(
        "/orders", json={"customer_id": "ada", "lines": TEA_AND_MUG}
    )
    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['order_id']}"
    fetched = await service.client.get(response.headers["location"])
    assert fetched.json() == order
    assert fetched.headers["etag"] == f'"{order["version"]}"'
    assert (order["status"], order["total"], order["version"]) == ("open", "21.00", 3)
    assert [(line["sku"], line["quantity"]) for line in order["lines"]] == [("tea", 2), ("mug", 1)]
    await service.shop.projections.wait_until_caught_up(within=10.0)
    customer = await service.json("GET", "/customers/ada", 200)
    assert customer == {"customer_id": "ada", "name": "Ada", "orders_placed": 1}


async def test_unknown_ids_in_the_path_are_404_and_in_the_body_422_naming_the_field(
    service: Service,
) -> None:
    for path in ["/orders/nope", "/products/nope", "/customers/nope", "/orders/nope/fulfilment"]:
        response = await service.client.get(path)
        assert response.status_code == 404, path
        assert "nope" in response.json()["detail"]
    response = await service.client.post("/orders/nope/items", json={"sku": "tea", "quantity": 1})
    assert response.status_code == 404
    unknown_sku = {"customer_id": "ada", "lines": [{"sku": "tea", "quantity": 1}, {"sku": "x"}]}
    response = await service.client.post("/orders", json=unknown_sku)
    assert response.status_code == 422
    assert ["body", "lines", 1, "quantity"] in [error["loc"] for error in response.json()["detail"]]
    unknown_sku["lines"][1]["quantity"] = 1
    response = await service.client.post("/orders", json=unknown_sku)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "lines", 1, "sku"]
    assert "no product 'x'" in response.json()["detail"][0]["msg"]
    response = await service.client.post("/orders", json={"customer_id": "bob", "lines": []})
    assert (response.status_code, response.json()["detail"][0]["loc"]) == (
        422,
        ["body", "customer_id"],
    )


async def test_whatever_the_api_accepts_fits_the_read_models_and_the_rest_is_refused(
    service: Service,
) -> None:
    # the largest values every field accepts: a 64-character SKU, the highest price, the most stock
    sku = "s" * 64
    biggest = {"sku": sku, "name": "n" * 200, "price": "100000.00", "stock": 1_000_000_000}
    await service.json("POST", "/products", 201, json=biggest)
    customer = "c" * 64
    await service.json("POST", "/customers", 201, json={"customer_id": customer, "name": "C"})
    lines = [{"sku": sku, "quantity": 10_000}]
    order = await service.json(
        "POST", "/orders", 201, json={"customer_id": customer, "lines": lines}
    )
    assert order["total"] == "1000000000.00"
    # one past each limit is refused with 422, naming the field, before anything is stored
    too_much = [
        ("/products", {**biggest, "sku": "s" * 65}, ["body", "sku"]),
        ("/products", {**biggest, "sku": "p2", "price": "100000.01"}, ["body", "price"]),
        ("/products", {**biggest, "sku": "p3", "price": "0.001"}, ["body", "price"]),
        ("/products", {**biggest, "sku": "p4", "stock": 1_000_000_001}, ["body", "stock"]),
        ("/products", {**biggest, "sku": "p5", "name": "n" * 201}, ["body", "name"]),
        (
            "/orders",
            {"customer_id": customer, "lines": [{"sku": sku, "quantity": 10_001}]},
            ["body", "lines", 0, "quantity"],
        ),
        ("/customers", {"customer_id": "c" * 65, "name": "C"}, ["body", "customer_id"]),
    ]
    for path, body, location in too_much:
        response = await service.client.post(path, json=body)
        assert response.status_code == 422, (path, body)
        assert location in [error["loc"] for error in response.json()["detail"]], response.text
    # and the read models hold the largest values exactly, on this backend
    await service.shop.projections.wait_until_caught_up(within=10.0)
    rows = await service.json("GET", f"/orders?customer_id={customer}", 200)
    assert [(row["items"], row["total"]) for row in rows["items"]] == [(10_000, "1000000000.00")]
    products = await service.json("GET", "/products?order_by=price_cents&desc=true&limit=1", 200)
    assert products["items"][0] == {
        "sku": sku,
        "name": "n" * 200,
        "price": "100000.00",
        "stock": 1_000_000_000,
        "held": 0,
    }
    (status,) = [s for s in await service.shop.projections.status() if s.name == "shop.orders"]
    assert status.dead_letters == 0


async def test_a_paid_order_is_confirmed_by_the_saga_and_no_longer_expires(
    service: Service,
) -> None:
    order_id = await place(service)
    response = await service.client.post(
        f"/orders/{order_id}/checkout", json={"payment_method": "card-ok"}
    )
    assert response.status_code == 202
    assert response.headers["location"] == f"/orders/{order_id}/fulfilment"
    assert response.json()["status"] == "confirmed"
    saga = await service.json("GET", f"/orders/{order_id}/fulfilment", 200)
    assert saga["status"] == "completed"
    assert [(s["step"], s["outcome"]) for s in saga["steps"]] == [
        ("reserving", "done"),
        ("charging", "done"),
        ("confirming", "done"),
    ]
    tea = await service.json("GET", "/products/tea", 200)
    assert (tea["stock"], tea["held"]) == (8, 2)
    expiry = await service.shop.schedules.get(expiry_id(order_id))
    assert expiry.status == "cancelled"  # paid: the expiry was cancelled with the charge
    shipped = await service.json(
        "POST", f"/orders/{order_id}/shipment", 200, json={"carrier": "Post"}
    )
    assert shipped["status"] == "shipped"


async def test_a_declined_payment_is_compensated_the_stock_released_the_order_cancelled(
    service: Service,
) -> None:
    order_id = await place(service, [{"sku": "mug", "quantity": 5}])
    response = await service.client.post(
        f"/orders/{order_id}/checkout", json={"payment_method": "card-declined"}
    )
    assert response.status_code == 202
    order = await service.json("GET", f"/orders/{order_id}", 200)
    assert order["status"] == "cancelled"
    assert "stock was released" in order["reason"]
    saga = await service.json("GET", f"/orders/{order_id}/fulfilment", 200)
    assert saga["status"] == "compensated"
    assert "declined" in saga["reason"]
    assert [(s["step"], s["outcome"]) for s in saga["steps"]] == [
        ("reserving", "compensated"),
        ("charging", "compensated"),  # a failed step is compensated too: nothing to refund
    ]
    mug = await service.json("GET", "/products/mug", 200)
    assert (mug["stock"], mug["held"]) == (5, 0)  # all five back on the shelf


async def test_a_charge_confirmed_later_completes_the_saga_or_is_compensated_after_the_timeout(
    service: Service,
) -> None:
    confirmed_in_time = await place(service, [{"sku": "tea", "quantity": 1}])
    too_late = await place(service, [{"sku": "tea", "quantity": 2}])
    for order_id in (confirmed_in_time, too_late):
        waiting = await service.json(
            "POST", f"/orders/{order_id}/checkout", 202, json={"payment_method": "card-3ds"}
        )
        assert waiting["status"] == "reserved"  # charged once the customer confirms
    # the provider confirms one at once: the saga goes on and completes
    paid = await service.json("POST", f"/orders/{confirmed_in_time}/payment-confirmation", 200)
    assert paid["status"] == "confirmed"
    # the other waits past the step's timeout (1 s): the saga compensates
    saga = await service.eventually(
        f"/orders/{too_late}/fulfilment", lambda s: s["status"] == "compensated"
    )
    assert any("timed out" in entry for entry in saga["history"]), saga["history"]
    order = await service.json("GET", f"/orders/{too_late}", 200)
    assert order["status"] == "cancelled"
    late = await service.client.post(f"/orders/{too_late}/payment-confirmation")
    assert late.status_code == 409
    tea = await service.json("GET", "/products/tea", 200)
    assert (tea["stock"], tea["held"]) == (9, 1)  # only the paid order's unit is held


async def test_an_unpaid_order_expires_through_its_scheduled_command(service: Service) -> None:
    unpaid = await place(service, [{"sku": "tea", "quantity": 3}], pay_within=1)
    order = await service.eventually(f"/orders/{unpaid}", lambda o: o["status"] == "expired")
    assert order["reason"] == "not paid in time"
    expiry = await service.shop.schedules.get(expiry_id(unpaid))
    assert (expiry.status, expiry.attempts) == ("done", 1)
    response = await service.client.post(
        f"/orders/{unpaid}/checkout", json={"payment_method": "card-ok"}
    )
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]


async def test_cart_changes_are_undone_and_redone_and_refused_once_undone(
    service: Service,
) -> None:
    order_id = await place(service, [{"sku": "tea", "quantity": 1}])
    added = await service.json(
        "POST", f"/orders/{order_id}/items", 200, json={"sku": "mug", "quantity": 2}
    )
    assert added["order"]["total"] == "28.50"
    removed = await service.json("DELETE", f"/orders/{order_id}/items/tea", 200)
    assert [line["sku"] for line in removed["order"]["lines"]] == ["mug"]
    undone = await service.json("POST", f"/orders/{order_id}/undo", 200)  # the newest: the tea
    assert undone["token"] == removed["undo_token"]
    assert undone["order"]["total"] == "28.50"
    undone = await service.json(
        "POST", f"/orders/{order_id}/undo", 200, json={"token": added["undo_token"]}
    )
    assert undone["order"]["total"] == "4.50"
    again = await service.client.post(
        f"/orders/{order_id}/undo", json={"token": added["undo_token"]}
    )
    assert again.status_code == 409
    redone = await service.json(
        "POST", f"/orders/{order_id}/redo", 200, json={"token": added["undo_token"]}
    )
    assert redone["order"]["total"] == "28.50"
    unknown = await service.client.post(
        f"/orders/{order_id}/redo", json={"token": "00000000-0000-0000-0000-000000000000"}
    )
    assert unknown.status_code == 404


async def test_an_edit_of_an_older_version_is_merged_or_refused_when_both_changed_a_field(
    service: Service,
) -> None:
    order_id = await place(service)
    seen = (await service.client.get(f"/orders/{order_id}")).headers["etag"]
    address = {"address": "1 Analytical Street"}
    await service.json("PATCH", f"/orders/{order_id}/delivery", 200, json=address)
    # a second client, still on the version it read, changes another field: merged
    slot = await service.json(
        "PATCH",
        f"/orders/{order_id}/delivery",
        200,
        json={"slot": "am"},
        headers={"If-Match": seen},
    )
    assert slot["delivery"] == {"address": "1 Analytical Street", "slot": "am"}
    # a third, on that same version, changes the address too: refused, nothing changed
    response = await service.client.patch(
        f"/orders/{order_id}/delivery", json={"address": "2 Lane"}, headers={"If-Match": seen}
    )
    assert response.status_code == 409
    assert response.json()["detail"].startswith("address was changed")
    after = await service.json("GET", f"/orders/{order_id}", 200)
    assert after["delivery"] == slot["delivery"]
    assert after["version"] == slot["version"]
    # the same value as the other side is no conflict
    same = await service.client.patch(
        f"/orders/{order_id}/delivery", json=address, headers={"If-Match": seen}
    )
    assert same.status_code == 200
    bad = await service.client.patch(
        f"/orders/{order_id}/delivery", json=address, headers={"If-Match": "yesterday"}
    )
    assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["header", "If-Match"])


async def test_two_edits_racing_on_one_version_are_both_kept(service: Service) -> None:
    order_id = await place(service)
    seen = (await service.client.get(f"/orders/{order_id}")).headers["etag"]
    edits = [{"address": "1 Analytical Street"}, {"instructions": "ring twice"}, {"slot": "pm"}]
    responses = await asyncio.gather(
        *(
            service.client.patch(
                f"/orders/{order_id}/delivery", json=edit, headers={"If-Match": seen}
            )
            for edit in edits
        )
    )
    assert [response.status_code for response in responses] == [200, 200, 200]
    order = await service.json("GET", f"/orders/{order_id}", 200)
    assert order["delivery"] == {
        "address": "1 Analytical Street",
        "instructions": "ring twice",
        "slot": "pm",
    }


async def test_a_request_retried_with_its_idempotency_key_has_one_effect(
    service: Service,
) -> None:
    body = {"customer_id": "ada", "lines": TEA_AND_MUG}
    headers = {"Idempotency-Key": "place-1"}
    first, second = [await service.client.post("/orders", json=body, headers=headers) for _ in "12"]
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["order_id"] == second.json()["order_id"]
    await service.shop.projections.wait_until_caught_up(within=10.0)
    assert (await service.json("GET", "/customers/ada", 200))["orders_placed"] == 1
    racing = await asyncio.gather(
        *(
            service.client.post("/orders", json=body, headers={"Idempotency-Key": "place-2"})
            for _ in range(4)
        )
    )
    assert {response.json()["order_id"] for response in racing} == {racing[0].json()["order_id"]}
    await service.shop.projections.wait_until_caught_up(within=10.0)
    assert (await service.json("GET", "/customers/ada", 200))["orders_placed"] == 2
    order_id = first.json()["order_id"]
    item = {"sku": "tea", "quantity": 1}
    adds = [
        await service.client.post(
            f"/orders/{order_id}/items", json=item, headers={"Idempotency-Key": "add-1"}
        )
        for _ in "12"
    ]
    assert adds[0].json() == adds[1].json()  # the same token, one more tea
    assert (await service.json("GET", f"/orders/{order_id}", 200))["lines"][0]["quantity"] == 3
    other = await service.client.post("/orders", json={**body, "lines": []}, headers=headers)
    assert other.status_code == 422
    (problem,) = other.json()["detail"]
    assert problem["loc"] == ["header", "Idempotency-Key"]
    assert "different request" in problem["msg"]


async def test_the_read_models_answer_filtered_ordered_and_paged(service: Service) -> None:
    await service.json("POST", "/customers", 201, json={"customer_id": "bob", "name": "Bob"})
    totals = {}
    for quantity in (1, 2, 3):
        order_id = await place(service, [{"sku": "tea", "quantity": quantity}])
        totals[order_id] = Decimal("4.50") * quantity
    bobs = await service.json(
        "POST",
        "/orders",
        201,
        json={"customer_id": "bob", "lines": [{"sku": "mug", "quantity": 1}]},
    )
    paid = max(totals, key=totals.__getitem__)
    await service.json("POST", f"/orders/{paid}/checkout", 202, json={"payment_method": "card"})
    await service.shop.projections.wait_until_caught_up(within=10.0)

    page = await service.json(
        "GET", "/orders?customer_id=ada&order_by=total_cents&desc=true&limit=2", 200
    )
    assert page["total"] == 3
    assert [row["order_id"] for row in page["items"]] == sorted(totals, key=totals.get)[::-1][:2]
    assert page["items"][0]["status"] == "confirmed"
    rest = await service.json(
        "GET", "/orders?customer_id=ada&order_by=total_cents&desc=true&limit=2&offset=2", 200
    )
    assert [row["total"] for row in rest["items"]] == ["4.50"]
    confirmed = await service.json("GET", "/orders?status=confirmed", 200)
    assert [row["order_id"] for row in confirmed["items"]] == [paid]
    large = await service.json("GET", "/orders?min_total=12", 200)
    assert {row["order_id"] for row in large["items"]} == {paid, bobs["order_id"]}
    stocked = await service.json("GET", "/products?in_stock=true&order_by=stock", 200)
    assert [(row["sku"], row["stock"], row["held"]) for row in stocked["items"]] == [
        ("mug", 5, 0),
        ("tea", 7, 3),
    ]
    bad = await service.client.get("/orders?order_by=secret")
    assert bad.status_code == 422


async def test_the_monthly_report_is_scheduled_and_written(service: Service) -> None:
    order_id = await place(service)
    await service.json("POST", f"/orders/{order_id}/checkout", 202, json={"payment_method": "c"})
    await service.shop.projections.wait_until_caught_up(within=10.0)
    schedule = await service.shop.schedules.recurring(MONTHLY_REPORT)
    assert (schedule.cron, schedule.paused) == ("0 6 1 * *", False)
    reports = await service.json("GET", "/reports", 200)
    assert reports["next_report_at"].endswith("-01T06:00:00Z")
    month = datetime.now(UTC).strftime("%Y-%m")
    response = await service.client.post("/reports", json={"month": month})
    assert response.status_code == 201
    assert response.headers["location"] == f"/reports/{month}"
    assert (response.json()["orders"], response.json()["revenue"]) == (1, "21.00")
    assert (await service.client.post("/reports", json={"month": "2026-13"})).status_code == 422


async def test_health_reports_the_database_and_each_worker(service: Service) -> None:
    health = await service.json("GET", "/health", 200)
    assert health["status"] == "ok"
    assert health["database"]["ok"] is True
    assert set(health["workers"]) == {"projections", "sagas", "saga_feed", "scheduler"}
    assert all(worker["running"] for worker in health["workers"].values())
    names = {p["name"] for p in health["workers"]["projections"]["projections"]}
    assert names == {"shop.orders", "shop.products"}


async def test_the_api_is_described_by_openapi_at_docs(service: Service) -> None:
    schema = await service.json("GET", "/openapi.json", 200)
    assert {"/orders", "/orders/{order_id}/checkout", "/health"} <= set(schema["paths"])
    assert (await service.client.get("/docs")).status_code == 200


class ItemAddedV1(DomainEvent):
    """``ItemAdded`` as the shop's first release wrote it: no product name."""

    event_type: ClassVar[str] = "ItemAdded"
    schema_version: ClassVar[int] = 1
    sku: str
    quantity: int
    unit_price: Money


async def test_an_item_added_by_the_first_release_is_still_read_everywhere(
    service: Service,
) -> None:
    order_id = await place(service, [])
    old = ItemAddedV1(
        sku="tea",
        quantity=4,
        unit_price=Money(amount=Decimal("4.50")),
        aggregate_id=order_id,
        aggregate_type="Order",
    )
    await service.shop.event_store.append(order_id, [old], expected_version=1)

    order = await service.json("GET", f"/orders/{order_id}", 200)
    assert (order["lines"], order["total"], order["version"]) == (
        [{"sku": "tea", "quantity": 4, "unit_price": "4.50"}],
        "18.00",
        2,
    )
    loaded = await service.shop.stores.orders.get(order_id)
    assert loaded.version == 2
    await service.shop.projections.wait_until_caught_up(within=10.0)
    rows = await service.json("GET", "/orders?min_total=18", 200)
    assert [(row["order_id"], row["items"]) for row in rows["items"]] == [(order_id, 4)]
    assert all(s.dead_letters == 0 for s in await service.shop.projections.status())
    (stored,) = [e for e in await service.shop.event_store.load_stream(order_id) if e.version == 2]
    assert (stored.schema_version, "product_name" in stored.payload) == (1, False)  # untouched


async def test_concurrent_checkouts_never_sell_more_than_the_shelf_holds(
    service: Service,
) -> None:
    orders = [await place(service, [{"sku": "mug", "quantity": 1}]) for _ in range(8)]
    answers = await asyncio.gather(
        *(
            service.client.post(f"/orders/{order}/checkout", json={"payment_method": "card"})
            for order in orders
        )
    )
    assert {answer.status_code for answer in answers} <= {202, 409}
    refused = [a for a in answers if a.status_code == 409]
    assert all("unit(s) left" in answer.json()["detail"] for answer in refused)
    await service.shop.saga_feed.drain()
    statuses = [(await service.json("GET", f"/orders/{order}", 200))["status"] for order in orders]
    assert statuses.count("confirmed") == 5  # the five mugs, sold once each
    # none is left half done: refused at the checkout (still open), or cancelled by the saga
    assert set(statuses) <= {"confirmed", "open", "cancelled"}
    assert statuses.count("open") == len(refused)
    mug = await service.json("GET", "/products/mug", 200)
    assert (mug["stock"], mug["held"]) == (0, 5)

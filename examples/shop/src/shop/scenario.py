"""A short scripted scenario, run against the shop over HTTP, that prints what happens.

``python -m shop`` runs it once the service answers: orders are placed and
paid, one payment is declined and compensated, an unpaid order expires, a cart
change is undone and redone, two stale edits of one order are merged or
refused, a retried request has one effect, and the read models answer. It
only speaks HTTP, so it runs as well against a shop started elsewhere.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

Printer = Callable[[str], None]


class ScenarioError(Exception):
    """The service answered something the scenario did not expect."""


def _check(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise ScenarioError(
            f"{response.request.method} {response.request.url.path} answered"
            f" {response.status_code}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


async def ensure(client: httpx.AsyncClient, path: str, create: str, body: dict[str, Any]) -> None:
    """Create the resource at ``path`` through ``create`` unless it exists (reruns reuse it)."""
    if (await client.get(path)).status_code == 404:
        _check(await client.post(create, json=body), 201)


async def wait_for(
    client: httpx.AsyncClient, path: str, done: Callable[[dict[str, Any]], bool], within: float
) -> dict[str, Any]:
    """Poll ``path`` until ``done`` says so (``ScenarioError`` after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        body = _check(await client.get(path), 200)
        if done(body):
            return body
        if time.monotonic() > deadline:
            raise ScenarioError(f"{path} did not get there within {within:.0f} s: {body}")
        await asyncio.sleep(0.1)


def line_text(order: dict[str, Any]) -> str:
    """Return an order's lines as ``2 x tea, 1 x mug``."""
    return ", ".join(f"{line['quantity']} x {line['sku']}" for line in order["lines"]) or "empty"


async def run_scenario(base_url: str, say: Printer = print) -> None:  # noqa: PLR0915 - a script
    """Run the scenario against the shop at ``base_url``, printing each step with ``say``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        await ensure(client, "/customers/ada", "/customers", {"customer_id": "ada", "name": "Ada"})
        for sku, name, price in [("tea", "Green tea", "4.50"), ("mug", "Blue mug", "12.00")]:
            product = {"sku": sku, "name": name, "price": price, "stock": 100}
            await ensure(client, f"/products/{sku}", "/products", product)
        say("catalogue: tea at 4.50, mug at 12.00; customer: ada")

        # 1. an order placed, changed, undone, redone, edited twice at once, and paid
        lines = [{"sku": "tea", "quantity": 2}, {"sku": "mug", "quantity": 1}]
        key = f"demo-{uuid.uuid4()}"
        placed = await client.post(
            "/orders", json={"customer_id": "ada", "lines": lines}, headers={"Idempotency-Key": key}
        )
        order = _check(placed, 201)
        first = order["order_id"]
        again = await client.post(
            "/orders", json={"customer_id": "ada", "lines": lines}, headers={"Idempotency-Key": key}
        )
        say(
            f"placed order {first} ({line_text(order)}, {order['total']} EUR):"
            f" {placed.status_code}, Location {placed.headers['location']}"
        )
        say(
            f"  the same request sent again with its Idempotency-Key: {again.status_code},"
            f" the same order ({_check(again, 201)['order_id'] == first}), placed once"
        )
        added = _check(await client.post(f"/orders/{first}/items", json=lines[1]), 200)
        say(f"  added a mug: {line_text(added['order'])}, {added['order']['total']} EUR")
        undone = _check(await client.post(f"/orders/{first}/undo"), 200)
        say(f"  undo: {line_text(undone['order'])}, {undone['order']['total']} EUR")
        redone = _check(
            await client.post(f"/orders/{first}/redo", json={"token": undone["token"]}), 200
        )
        say(f"  redo: {line_text(redone['order'])}, {redone['order']['total']} EUR")
        undone = _check(await client.post(f"/orders/{first}/undo"), 200)
        say(f"  undo again: {line_text(undone['order'])}")

        seen = f'"{undone["order"]["version"]}"'
        home = {"address": "1 Analytical Street"}
        edited = _check(await client.patch(f"/orders/{first}/delivery", json=home), 200)
        slot = {"slot": "mornings"}
        merged = await client.patch(
            f"/orders/{first}/delivery", json=slot, headers={"If-Match": seen}
        )
        say(
            f"  two edits made on version {seen}: address, then slot: {merged.status_code},"
            f" merged into {_check(merged, 200)['delivery']}"
        )
        elsewhere = {"address": "2 Difference Lane"}
        refused = await client.patch(
            f"/orders/{first}/delivery", json=elsewhere, headers={"If-Match": seen}
        )
        say(f"  a third edit of the address on {seen}: {refused.status_code}, {_detail(refused)}")
        del edited

        paid = await client.post(f"/orders/{first}/checkout", json={"payment_method": "card-ok"})
        paid_order = _check(paid, 202)
        saga = _check(await client.get(f"/orders/{first}/fulfilment"), 200)
        steps = ", ".join(f"{step['step']} {step['outcome']}" for step in saga["steps"])
        say(f"  checked out: {paid.status_code}; the order is {paid_order['status']}")
        say(f"  the fulfilment saga: {saga['status']} ({steps})")

        # 2. a payment declined: the saga compensates
        placed = await client.post(
            "/orders", json={"customer_id": "ada", "lines": [{"sku": "mug", "quantity": 3}]}
        )
        second = _check(placed, 201)["order_id"]
        mugs = _check(await client.get("/products/mug"), 200)
        await client.post(f"/orders/{second}/checkout", json={"payment_method": "card-declined"})
        declined = _check(await client.get(f"/orders/{second}"), 200)
        saga = _check(await client.get(f"/orders/{second}/fulfilment"), 200)
        after = _check(await client.get("/products/mug"), 200)
        say(f"placed order {second} (3 mugs) and paid with a declined card:")
        say(f"  the saga {saga['status']}: {saga['reason']}")
        say(f"  the order is {declined['status']}: {declined['reason']}")
        say(
            f"  mugs on the shelf: {mugs['stock']} before the checkout, {after['stock']} after;"
            f" held for orders: {mugs['held']} before, {after['held']} after"
        )

        # 3. an order left unpaid expires
        placed = await client.post(
            "/orders",
            json={"customer_id": "ada", "lines": [{"sku": "tea", "quantity": 1}]},
            params={"pay_within": 2},
        )
        third = _check(placed, 201)["order_id"]
        say(f"placed order {third}, to be paid within 2 s, and left unpaid ...")
        expired = await wait_for(
            client, f"/orders/{third}", lambda order: order["status"] == "expired", 30.0
        )
        say(f"  the scheduled expiry ran: the order is {expired['status']} ({expired['reason']})")

        # 4. the read models
        await wait_for(
            client,
            "/orders?customer_id=ada&status=expired&limit=100",
            lambda page: any(row["order_id"] == third for row in page["items"]),
            10.0,
        )
        page = _check(
            await client.get("/orders?customer_id=ada&order_by=total_cents&desc=true&limit=3"), 200
        )
        say(f"ada's orders, largest first ({page['total']} in all, the first 3):")
        for row in page["items"]:
            say(f"  {row['order_id']}: {row['items']} item(s), {row['total']} EUR, {row['status']}")
        products = _check(await client.get("/products?in_stock=true&order_by=name"), 200)
        shelf = ", ".join(
            f"{row['sku']} {row['stock']} (+{row['held']} held)" for row in products["items"]
        )
        say(f"products in stock: {shelf}")
        month = datetime.now(UTC).strftime("%Y-%m")
        report = _check(await client.post("/reports", json={"month": month}), 201)
        reports = _check(await client.get("/reports"), 200)
        say(
            f"report {report['month']}: {report['orders']} order(s) fulfilled,"
            f" {report['revenue']} EUR; the next monthly report is due {reports['next_report_at']}"
        )
        health = _check(await client.get("/health"), 200)
        say(f"health: {health['status']}; workers: {', '.join(health['workers'])}")


def _detail(response: httpx.Response) -> str:
    detail = response.json().get("detail")
    return detail if isinstance(detail, str) else str(detail)

"""The shop process killed in the middle of its work and started again loses nothing.

A real uvicorn process serves the shop. Orders are placed that must expire
while it is down, orders wait for a payment confirmation, and a burst of
checkouts is under way when the process is SIGKILLed. Started again on the
same database, the shop finishes everything: the interrupted sagas resume
(the recovery worker sends their steps again, the saga feed delivers the
events whose dispatch died with the process), every due expiry runs once,
the read models catch up with the events, and the stock adds up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from shop_testing import read_until
from test_command_line import free_port

from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyCommandScheduler, create_engine
from shop.application import (
    expiry_id,
)

IN_FLIGHT = {"checked_out", "reserved", "paid"}
STOCK = 1000


def start(database_url: str, folder: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": database_url}
    for variable in ("RABBITMQ_URL", "NATS_URL", "REDIS_URL"):
        environment.pop(variable, None)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running the shop
        [sys.executable, "-m", "shop", "--no-scenario", "--port", str(port),
         "--recovery-interval", "1", "--payment-timeout", "120"],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    read_until(process, "until Ctrl-C", within=60)
    return process, f"http://127.0.0.1:{port}"


async def send(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await client.request(method, path, **kwargs)
    assert response.is_success, (path, response.status_code, response.text)
    return response.json()


async def place(client: httpx.AsyncClient, quantity: int, **params: Any) -> str:
    body = {"customer_id": "ada", "lines": [{"sku": "tea", "quantity": quantity}]}
    order: dict[str, Any] = await send(client, "POST", "/orders", json=body, params=params)
    return str(order["order_id"])


async def checkout_until_killed(client: httpx.AsyncClient, order_id: str) -> None:
    with contextlib.suppress(httpx.TransportError):  # the process may die under this request
        await client.post(f"/orders/{order_id}/checkout", json={"payment_method": "card-ok"})


async def statuses(client: httpx.AsyncClient, orders: list[str]) -> dict[str, str]:
    found = [await send(client, "GET", f"/orders/{order}") for order in orders]
    return {order["order_id"]: order["status"] for order in found}


async def test_a_killed_shop_started_again_finishes_everything_once(
    database_url: str, tmp_path: Path
) -> None:
    # given: a shop with orders to expire, orders awaiting confirmation, checkouts under way
    first, url = start(database_url, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await send(client, "POST", "/customers", json={"customer_id": "ada", "name": "Ada"})
            product = {"sku": "tea", "name": "Tea", "price": "1.00", "stock": STOCK}
            await send(client, "POST", "/products", json=product)
            expiring = [await place(client, 1, pay_within=2) for _ in range(4)]
            expires_after = time.monotonic() + 2
            waiting = [await place(client, 2) for _ in range(3)]
            for order in waiting:
                card = {"payment_method": "card-3ds"}
                await send(client, "POST", f"/orders/{order}/checkout", json=card)
            burst = [await place(client, 3) for _ in range(12)]
            # when: the process is killed while the burst of checkouts runs
            under_way = [asyncio.create_task(checkout_until_killed(client, o)) for o in burst]
            await asyncio.sleep(0.3)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            await asyncio.gather(*under_way)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=30)
    await asyncio.sleep(max(0.0, expires_after - time.monotonic()) + 0.5)  # due while down

    second, url = start(database_url, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for order in waiting:  # the provider confirms: those sagas go on
                await send(client, "POST", f"/orders/{order}/payment-confirmation")
            everything = expiring + waiting + burst
            deadline = time.monotonic() + 60
            at_restart = await statuses(client, everything)
            print("at the restart:", sorted(at_restart.values()))
            while IN_FLIGHT & set((now := await statuses(client, everything)).values()):
                assert time.monotonic() < deadline, f"still in flight: {now}"
                await asyncio.sleep(0.2)
            await check_everything_finished(client, expiring, waiting, burst, now)
    finally:
        second.send_signal(signal.SIGINT)
        _, errors = second.communicate(timeout=60)
    assert second.returncode == 0, errors

    engine = create_engine(database_url)
    try:
        schedules = SQLAlchemyCommandScheduler(engine)
        for order in expiring:
            state = await schedules.state(expiry_id(order))
            assert state is not None
            assert (state.status, state.attempts) == ("done", 1)
    finally:
        await engine.dispose()


async def check_everything_finished(
    client: httpx.AsyncClient,
    expiring: list[str],
    waiting: list[str],
    burst: list[str],
    now: dict[str, str],
) -> None:
    """Check the expiries, the sagas, the stock and the read models after the restart."""
    # then: the expiries ran, once each
    assert {now[order] for order in expiring} == {"expired"}
    # every order paid before or after the crash is confirmed; none is half done
    assert {now[order] for order in waiting} == {"confirmed"}
    assert set(now.values()) <= {"expired", "confirmed", "open", "cancelled"}
    started = [order for order in burst if now[order] != "open"]
    assert started, "the kill came before any checkout reached the shop"
    # the stock adds up: held exactly by the confirmed orders, once each
    tea = await send(client, "GET", "/products/tea")
    quantities = {order: (1 if order in expiring else 2 if order in waiting else 3)
                  for order in now}  # fmt: skip
    confirmed = sum(quantities[o] for o, status in now.items() if status == "confirmed")
    assert (tea["held"], tea["stock"]) == (confirmed, STOCK - confirmed)
    # every saga ended
    for order in waiting + started:
        saga = await send(client, "GET", f"/orders/{order}/fulfilment")
        assert saga["status"] in {"completed", "compensated"}, (order, saga)
    # the read models caught up with the events
    deadline = time.monotonic() + 30
    while True:
        rows = await send(client, "GET", "/orders", params={"limit": 100})
        listed = {row["order_id"]: row["status"] for row in rows["items"]}
        products = await send(client, "GET", "/products")
        shelf = {row["sku"]: (row["stock"], row["held"]) for row in products["items"]}
        if listed == now and shelf == {"tea": (tea["stock"], tea["held"])}:
            break
        assert time.monotonic() < deadline, (listed, now, shelf)
        await asyncio.sleep(0.2)

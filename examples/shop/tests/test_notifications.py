"""The shop's events through each broker to the notification service: one effect per event.

The shop runs in this process (over ASGI, on SQLite) with a broker configured;
the notification service runs as another process with its own SQLite
database. After the orders' three notifications arrived, every event is
published a second time (another relay over the same event log): the
service's inbox recognises each one, and the notifications stay three.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from shop_testing import TEST_OPTIONS, Service, read_until, run_service
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import select

from cqrs_ddd_infrastructure_messaging import EventLogRelay, OutboxWorker
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyOutboxStore, SQLAlchemyWorkerStorage
from cqrs_ddd_testing import NatsNamespace, RabbitMQNamespace, RedisNamespace
from shop.broker import BROKER_VARIABLES, Broker, BrokerKind
from shop.notifications import notifications


@pytest.fixture(params=["rabbitmq", "nats", "redis"])
def broker(request: pytest.FixtureRequest) -> Broker:
    """One broker, with names of this test alone (deleted after it by the namespace fixture)."""
    kind: BrokerKind = request.param
    if kind == "rabbitmq":
        rabbitmq: RabbitMQNamespace = request.getfixturevalue("rabbitmq_namespace")
        space = rabbitmq.name("shop")
        for suffix in ("notifications", "notifications.dead"):
            rabbitmq.name(f"shop.{suffix}")
        return Broker(kind, rabbitmq.url, space)
    if kind == "nats":
        jetstream: NatsNamespace = request.getfixturevalue("nats_namespace")
        return Broker(kind, jetstream.url, jetstream.stream("shop"))
    redis: RedisNamespace = request.getfixturevalue("redis_namespace")
    return Broker(kind, redis.url, redis.key("shop"))


def stored(database: Path) -> list[tuple[str, str]]:
    if not database.exists():
        return []
    engine = create_sync_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(notifications.c.order_id, notifications.c.kind).order_by(notifications.c.id)
            )
            return [(row.order_id, row.kind) for row in rows]
    except Exception:  # noqa: BLE001 - the table is not there yet
        return []
    finally:
        engine.dispose()


async def wait_for_count(database: Path, count: int, within: float) -> list[tuple[str, str]]:
    deadline = time.monotonic() + within
    while len(rows := stored(database)) < count:
        assert time.monotonic() < deadline, f"only {rows} after {within} s"
        await asyncio.sleep(0.2)
    return rows


async def test_each_event_reaches_the_notification_service_once_through_each_broker(
    broker: Broker, tmp_path: Path
) -> None:
    database = tmp_path / "notifications.sqlite"
    environment = {key: value for key, value in os.environ.items() if key not in BROKER_VARIABLES}
    environment |= {
        next(k for k, v in BROKER_VARIABLES.items() if v == broker.kind): broker.url,
        "SHOP_TOPIC": broker.space,
    }
    consumer = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter; started once
        [sys.executable, "-m", "shop.notifications", "--database-url",
         f"sqlite+aiosqlite:///{database}"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        read_until(consumer, "notifications: reading", within=60)  # its queue is bound
        async for service in run_service(
            f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite'}", replace(TEST_OPTIONS, broker=broker)
        ):
            paid, declined = await orders_to_notify(service)
            rows = await wait_for_count(database, 3, within=60.0)
            assert sorted(rows) == sorted(
                [(paid, "confirmed"), (paid, "shipped"), (declined, "cancelled")]
            )
            # the customer's event (state-stored: the outbox table) went out too
            health = await service.eventually(
                "/health", lambda h: h["workers"]["relay.outbox"]["lag"] == 0
            )
            assert health["status"] == "ok"
            backlog = await SQLAlchemyOutboxStore(service.shop.engine).backlog()
            assert backlog.count == 0
            async with broker.publisher() as publisher:
                again = EventLogRelay(
                    name="shop.events.again",
                    event_store=service.shop.event_store,
                    storage=SQLAlchemyWorkerStorage(service.shop.engine),
                    publisher=publisher,
                    topic=broker.topic,
                )
                await OutboxWorker(again, owner="again").drain()  # every event, a second time
            await asyncio.sleep(3.0)  # time for the second copies to be received
            assert sorted(stored(database)) == sorted(rows)
    finally:
        consumer.send_signal(signal.SIGTERM)
        _, errors = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, errors
    assert "Traceback" not in errors, errors


async def orders_to_notify(service: Service) -> tuple[str, str]:
    """Place a paid and shipped order and a declined one; return their ids."""
    await service.json("POST", "/customers", 201, json={"customer_id": "ada", "name": "Ada"})
    product = {"sku": "tea", "name": "Tea", "price": "4.50", "stock": 10}
    await service.json("POST", "/products", 201, json=product)
    ids = []
    for card in ("card-ok", "card-declined"):
        order = await service.json(
            "POST",
            "/orders",
            201,
            json={"customer_id": "ada", "lines": [{"sku": "tea", "quantity": 1}]},
        )
        ids.append(order["order_id"])
        await service.json(
            "POST", f"/orders/{order['order_id']}/checkout", 202, json={"payment_method": card}
        )
    await service.json("POST", f"/orders/{ids[0]}/shipment", 200, json={"carrier": "Post"})
    return ids[0], ids[1]

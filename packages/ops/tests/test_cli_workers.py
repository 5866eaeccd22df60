"""``cqrs-ddd status``, ``projections``, ``sagas``, ``schedules run-now`` and ``outbox``.

Each runs against SQLite and PostgreSQL holding a shop whose workers ran: its
projections (one with a dead letter), its sagas, its schedules and its outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cqrs_ddd_ops.cli import app
from ops_web_support import set_aside_for_the_feed
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from cqrs_ddd_core import DomainEvent
from cqrs_ddd_infrastructure_messaging import (
    EventLogRelay,
    MessageEnvelope,
    NatsJetStreamPublisher,
    OutboxTableRelay,
    OutboxWorker,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyOutboxStore,
    SQLAlchemyWorkerStorage,
    create_engine,
    write_outbox,
)
from cqrs_ddd_persistence_sqlalchemy.schema import events, sagas, scheduled_commands
from cqrs_ddd_testing import NatsNamespace, PostgresDatabase
from shop.application import expiry_id
from shop.commands import AddProduct, CheckOut, Line, PlaceOrder, RegisterCustomer, Restock
from shop.projections import orders
from shop.wiring import Shop, build_shop

runner = CliRunner()
APP = "shop.wiring:projection_worker"
SLOW_APP = "ops_slow_app:one_event_at_a_time"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend in turn, named as an operator would (no driver)."""
    if request.param == "sqlite":
        (tmp_path / "system.sqlite").touch()
        return f"sqlite:///{tmp_path / 'system.sqlite'}"
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.dsn


def async_url(url: str) -> str:
    return url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )


def cli(url: str, *arguments: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(arguments), env={"DATABASE_URL": url, "COLUMNS": "250"})
    return result.exit_code, result.stdout, result.stderr


def table_row(out: str, first: str) -> list[str]:
    """Return the cells of the table row whose first cell is ``first``."""
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{out}")


@asynccontextmanager
async def shop_on(url: str) -> AsyncIterator[tuple[Shop, AsyncEngine]]:
    engine = create_engine(async_url(url))
    try:
        yield await build_shop(engine), engine
    finally:
        await engine.dispose()


async def damage_restock(engine: AsyncEngine) -> None:
    """Drop ``quantity`` from the stored ProductRestocked: the projection cannot read it."""
    await _edit_restock(
        engine, lambda payload: {k: v for k, v in payload.items() if k != "quantity"}
    )


async def mend_restock(engine: AsyncEngine) -> None:
    """Put ``quantity`` back, as an operator's data fix would."""
    await _edit_restock(engine, lambda payload: {**payload, "quantity": 5})


async def _edit_restock(engine: AsyncEngine, change: Any) -> None:
    async with engine.begin() as connection:
        position, payload = (
            await connection.execute(
                select(events.c.position, events.c.payload).where(
                    events.c.event_type == "ProductRestocked"
                )
            )
        ).one()
        await connection.execute(
            update(events).where(events.c.position == position).values(payload=change(payload))
        )


async def fill(url: str, *, dead_letter: bool = False) -> dict[str, str]:
    """A shop whose workers ran: a paid order and an unpaid one, a restock.

    With ``dead_letter``, the restock's stored event is damaged first, so the
    products projection sets it aside (the product no longer loads until it
    is mended).
    """
    async with shop_on(url) as (shop, engine):
        send = shop.mediator.send
        await send(RegisterCustomer(customer_id="ada", name="Ada"))
        await send(AddProduct(sku="tea", name="Tea", price=Decimal("4.50"), stock=10))
        paid = await send(PlaceOrder(customer_id="ada", lines=[Line(sku="tea", quantity=2)]))
        await send(CheckOut(order_id=paid.result, payment_method="card"))
        unpaid = await send(PlaceOrder(customer_id="ada", lines=[Line(sku="tea", quantity=1)]))
        await send(Restock(sku="tea", quantity=5))
        if dead_letter:
            await damage_restock(engine)
        await shop.start()
        try:
            await shop.projections.wait_until_caught_up()
        finally:
            await shop.stop()
        return {"paid": paid.result, "unpaid": unpaid.result}


def test_status_shows_every_worker_and_queue_with_its_kind(database_url: str) -> None:
    orders_ = asyncio.run(fill(database_url, dead_letter=True))

    code, out, err = cli(database_url, "status", "--json")
    assert (code, err) == (0, "")
    rows = {row["name"]: row for row in json.loads(out)}
    assert {name: row["kind"] for name, row in rows.items()} == {
        "shop.orders": "projection",
        "shop.products": "projection",
        "shop.sagas": "saga-feed",
        "scheduled commands": "scheduler",
        "saga instances": "sagas",
        "outbox table": "outbox",
    }
    products = rows["shop.products"]
    assert (products["state"], products["owner"], products["lag_events"]) == ("idle", None, 0)
    assert products["dead_letters"] == 1
    assert products["position"] == products["head"] > 0
    scheduler = rows["scheduled commands"]
    assert scheduler["position"] >= 1  # the unpaid order's expiry waits
    assert rows["saga instances"]["position"] == 0  # the paid order's saga completed
    assert rows["outbox table"]["lag_events"] == 1  # Ada's registration: no relay ran
    assert orders_["unpaid"]

    code, out, _ = cli(database_url, "status")
    assert code == 0
    assert "saga-feed" in out
    assert "shop.products" in out
    code, out, _ = cli(database_url, "status", "--watch", "--interval", "0.2", "--for", "0.5")
    assert code == 0
    assert out.count("workers at") >= 2  # piped: each refresh is printed


def test_projections_list_dead_letters_replay_and_rebuild(database_url: str) -> None:
    asyncio.run(fill(database_url, dead_letter=True))

    code, out, _ = cli(database_url, "projections", "list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [row["name"] for row in listed] == ["shop.orders", "shop.products"]
    products = table_row(cli(database_url, "projections", "list")[1], "shop.products")
    head = str(listed[1]["head"])
    assert products[:7] == ["shop.products", "idle", "-", "-", head, head, "0"]
    assert products[8] == "1"  # its dead letter
    code, out, _ = cli(database_url, "projections", "dead-letters", "shop.products", "--json")
    (letter,) = json.loads(out)
    assert (code, letter["event_type"], letter["stream_id"]) == (0, "ProductRestocked", "tea")
    assert "quantity" in letter["error_message"]
    assert letter["attempts"] == 1  # an event that does not decode is quarantined at once
    table = cli(database_url, "projections", "dead-letters", "shop.products")[1]
    assert "ProductRestocked" in table

    # a replay of what is still broken fails again, and says so
    code, out, err = cli(database_url, "projections", "replay", "shop.products", "--app", APP)
    assert code == 1
    assert "replayed 0 dead letter(s) of shop.products; 1 failed again" in out
    assert "ProductRestocked" in err

    async def mend() -> None:
        async with shop_on(database_url) as (_, engine):
            await mend_restock(engine)

    asyncio.run(mend())
    code, out, _ = cli(database_url, "projections", "replay", "shop.products", "--app", APP)
    assert (code, out.strip()) == (0, "replayed 1 dead letter(s) of shop.products; 0 failed again")
    assert (
        json.loads(cli(database_url, "projections", "dead-letters", "shop.products", "--json")[1])
        == []
    )
    code, out, _ = cli(database_url, "projections", "status", "shop.products", "--json")
    assert (code, json.loads(out)[0]["dead_letters"]) == (0, 0)

    before = asyncio.run(read_orders(database_url))
    asyncio.run(forget_orders(database_url))  # the read model lost its rows
    assert asyncio.run(read_orders(database_url)) == []
    code, out, err = cli(database_url, "projections", "rebuild", "shop.orders", "--app", APP)
    assert code == 0, err
    assert out.startswith("rebuilt shop.orders: checkpoint ")
    assert asyncio.run(read_orders(database_url)) == before  # rebuilt from the log
    code, out, _ = cli(
        database_url, "projections", "rebuild", "shop.orders", "--resume", "--app", APP
    )
    assert (code, out.split(":")[0]) == (0, "caught up shop.orders")


async def forget_orders(url: str) -> None:
    async with shop_on(url) as (_, engine), engine.begin() as connection:
        await connection.execute(orders.delete())


async def read_orders(url: str) -> list[Any]:
    async with shop_on(url) as (_, engine), engine.connect() as connection:
        rows = await connection.execute(select(orders).order_by(orders.c.order_id))
        return [tuple(row) for row in rows]


def test_a_rebuild_while_writers_append_ends_equal_to_a_cold_rebuild(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(fill(database_url))

    async def write_while_rebuilding() -> int:
        async with shop_on(database_url) as (shop, _):
            for _ in range(120):  # a log long enough that the rebuild takes a while
                await shop.mediator.send(
                    PlaceOrder(customer_id="ada", lines=[Line(sku="tea", quantity=1)])
                )
            before = (await shop.projections.storage.record("shop.orders")).epoch
            environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
            rebuild = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cqrs_ddd_ops", "projections", "rebuild", "shop.orders",
                "--app", SLOW_APP, "--database-url", database_url,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
            )  # fmt: skip
            communicating = asyncio.ensure_future(rebuild.communicate())
            async with asyncio.timeout(60):
                for _ in range(3000):  # until the tool has taken the projection (or ended)
                    record = await shop.projections.storage.record("shop.orders")
                    if record.epoch != before or communicating.done():
                        break
                    await asyncio.sleep(0.02)
                during = 0
                for _ in range(20):  # writers append while it rebuilds (the rebuild goes on
                    if communicating.done():  # to the head, so they must leave it room)
                        break
                    await shop.mediator.send(
                        PlaceOrder(customer_id="ada", lines=[Line(sku="tea", quantity=1)])
                    )
                    during += not communicating.done()
                    await asyncio.sleep(0.05)
                out, err = await communicating
            assert rebuild.returncode == 0, err.decode()
            assert b"rebuilt shop.orders" in out
            await shop.projections.catch_up("shop.orders")  # what came after the rebuild began
            return during

    written_during = asyncio.run(write_while_rebuilding())
    assert written_during >= 1
    warm = asyncio.run(read_orders(database_url))
    assert len(warm) > 2 + 120
    code, _, err = cli(database_url, "projections", "rebuild", "shop.orders", "--app", APP)
    assert code == 0, err
    assert asyncio.run(read_orders(database_url)) == warm


def test_a_projection_another_worker_holds_is_not_rebuilt(database_url: str) -> None:
    asyncio.run(fill(database_url))
    before = asyncio.run(read_orders(database_url))

    async def held() -> tuple[int, str, str]:
        async with shop_on(database_url) as (shop, _):
            await shop.start()
            try:
                await shop.projections.wait_until_caught_up()
                return await asyncio.to_thread(
                    cli, database_url, "projections", "rebuild", "shop.orders", "--app", APP
                )
            finally:
                await shop.stop()

    code, out, err = asyncio.run(held())
    assert (code, out) == (1, "")
    assert err.startswith("cqrs-ddd: error: projection 'shop.orders' is held by worker ")
    assert err.strip().endswith("nothing was changed")
    assert len(err.strip().splitlines()) == 1
    assert asyncio.run(read_orders(database_url)) == before


def test_projection_commands_refuse_bad_input_in_one_line(database_url: str) -> None:
    asyncio.run(fill(database_url))
    code, _, err = cli(database_url, "projections", "status", "shop.nothing")
    assert (code, err.strip()) == (
        1,
        "cqrs-ddd: error: no projection 'shop.nothing' (known: shop.orders, shop.products)",
    )
    code, _, err = cli(database_url, "projections", "rebuild", "shop.orders")
    assert code == 2
    assert "pass --app module:function" in err
    code, _, err = cli(
        database_url, "projections", "rebuild", "shop.orders", "--app", "shop.wiring:nothing"
    )
    assert (code, err.strip()) == (
        2,
        "cqrs-ddd: error: --app 'shop.wiring:nothing': shop.wiring has no function nothing",
    )
    code, _, err = cli(database_url, "projections", "rebuild", "shop.nothing", "--app", APP)
    assert code == 1
    assert "the application has no projection 'shop.nothing'" in err


def test_sagas_list_show_and_retry_a_parked_saga(database_url: str) -> None:
    async def declined() -> str:
        async with shop_on(database_url) as (shop, _):
            send = shop.mediator.send
            await send(RegisterCustomer(customer_id="bob", name="Bob"))
            await send(AddProduct(sku="mug", name="Mug", price=Decimal("9"), stock=3))
            order = await send(PlaceOrder(customer_id="bob", lines=[Line(sku="mug", quantity=1)]))
            await send(CheckOut(order_id=order.result, payment_method="card-declined"))
            return str(order.result)

    order_id = asyncio.run(declined())
    code, out, _ = cli(database_url, "sagas", "list", "--status", "compensated", "--json")
    (listed,) = json.loads(out)
    assert (code, listed["correlation_key"], listed["saga_type"]) == (
        0,
        order_id,
        "OrderFulfilment",
    )
    row = table_row(cli(database_url, "sagas", "list")[1], listed["saga_id"])
    assert row[1:5] == ["OrderFulfilment", order_id, "compensated", "False"]
    saga_id = listed["saga_id"]
    code, out, _ = cli(database_url, "sagas", "show", saga_id, "--json")
    shown = json.loads(out)
    assert code == 0
    assert [step["step"] for step in shown["steps"]] == ["reserving", "charging"]
    assert any("compensat" in entry["what"] for entry in shown["history"])
    assert "reserving" in cli(database_url, "sagas", "show", saga_id)[1]

    # a compensated saga is not retried
    code, _, err = cli(database_url, "sagas", "retry", saga_id)
    assert (code, err.strip()) == (
        1,
        f"cqrs-ddd: error: saga {saga_id}: it is compensated: only a parked saga can be retried",
    )

    async def park() -> None:  # as if releasing the stock had kept failing
        async with shop_on(database_url) as (_, engine), engine.begin() as connection:
            state = await connection.scalar(select(sagas.c.state))
            steps = [
                {**step, "outcome": "done"} if step["step"] == "reserving" else step
                for step in state["steps"]
            ]
            state |= {
                "status": "parked",
                "parked_from": "compensating",
                "reason": "compensation of 'reserving' failed: the warehouse did not answer",
                "steps": steps,
            }
            await connection.execute(update(sagas).values(status="parked", state=state))

    asyncio.run(park())
    code, out, _ = cli(database_url, "status", "--json")
    row = next(row for row in json.loads(out) if row["kind"] == "sagas")
    assert (row["dead_letters"], row["last_error"]) == (
        1,
        "compensation of 'reserving' failed: the warehouse did not answer",
    )
    code, out, _ = cli(database_url, "sagas", "retry", saga_id)
    assert (code, out.strip()) == (
        0,
        f"saga {saga_id} is compensating again: the saga recovery resumes it once it has been"
        " unchanged for the recovery's interval",
    )

    async def recover() -> dict[str, Any]:
        async with shop_on(database_url) as (shop, engine):
            assert await shop.sagas.manager.recover(older_than=0.0) == 1
            async with engine.connect() as connection:
                return dict((await connection.execute(select(sagas))).one()._mapping)

    stored = asyncio.run(recover())
    assert (stored["status"], stored["in_flight"]) == ("compensated", False)
    assert "retried by an operator" in [entry["what"] for entry in stored["state"]["history"]]


def test_schedules_run_now_makes_a_command_due_and_refuses_one_that_ran(database_url: str) -> None:
    orders_ = asyncio.run(fill(database_url))
    expiry = str(expiry_id(orders_["unpaid"]))

    code, out, _ = cli(database_url, "schedules", "run-now", expiry)
    assert (code, out.strip()) == (0, f"schedule {expiry} is due now")
    code, out, _ = cli(database_url, "schedules", "list", "--due", "--json")
    assert [row["schedule_id"] for row in json.loads(out)] == [expiry]

    async def run_due() -> str:
        async with shop_on(database_url) as (shop, engine):
            assert await shop.schedules.run_due() == 1
            async with engine.connect() as connection:
                return str(
                    await connection.scalar(
                        select(scheduled_commands.c.status).where(
                            scheduled_commands.c.schedule_id == expiry_id(orders_["unpaid"])
                        )
                    )
                )

    assert asyncio.run(run_due()) == "done"
    code, _, err = cli(database_url, "schedules", "run-now", expiry)
    assert (code, err.strip()) == (
        1,
        f"cqrs-ddd: error: schedule {expiry} cannot be run now: it is done"
        " (only a pending or failed one can)",
    )


class Noted(DomainEvent):
    text: str


def test_outbox_status_dead_letters_and_replay(
    database_url: str, nats_namespace: NatsNamespace
) -> None:
    orders_ = asyncio.run(fill(database_url))

    async def relay_poison() -> int:
        """A message too large for NATS in the outbox; an order event the log's relay cannot
        route. Each relay sets its own aside and goes on. Returns the event's position."""
        async with shop_on(database_url) as (shop, engine):
            async with engine.begin() as connection:
                big = Noted(text="x" * 1_500_000, aggregate_id="ada")
                await write_outbox(connection, [big], topic="shop.customers")
            stream = nats_namespace.stream("customers")
            publisher = NatsJetStreamPublisher(
                nats_namespace.url, stream=stream, subjects=[nats_namespace.subject(">")]
            )
            storage = SQLAlchemyWorkerStorage(engine)

            def routed(envelope: MessageEnvelope) -> str:
                if envelope.event_type == "OrderConfirmed":
                    raise LookupError("no route for confirmations")
                return nats_namespace.subject("orders")

            async with publisher:
                await OutboxWorker(
                    OutboxTableRelay(
                        name="shop.outbox", outbox=SQLAlchemyOutboxStore(engine), storage=storage,
                        publisher=publisher, topic=lambda _: nats_namespace.subject("customers"),
                        max_attempts=1,
                    ),
                    owner="relay",
                ).drain()  # fmt: skip
                await OutboxWorker(
                    EventLogRelay(
                        name="shop.log", event_store=shop.event_store, storage=storage,
                        publisher=publisher, topic=routed, max_attempts=1,
                    ),
                    owner="relay",
                ).drain()  # fmt: skip
            (confirmed,) = [
                stored
                for stored in await shop.event_store.load_stream(orders_["paid"])
                if stored.event_type == "OrderConfirmed"
            ]
            return confirmed.position

    position = asyncio.run(relay_poison())
    code, out, _ = cli(database_url, "outbox", "status", "--json")
    assert code == 0
    counts = [
        (row["topic"], row["published"], row["pending"], row["failed"]) for row in json.loads(out)
    ]
    assert counts == [("Customer", 1, 0, 0), ("shop.customers", 0, 0, 1)]
    table = cli(database_url, "outbox", "status")[1]
    assert table_row(table, "shop.customers") == ["shop.customers", "0", "0", "1", "-"]
    code, out, _ = cli(database_url, "outbox", "dead-letters", "--json")
    message, event = json.loads(out)
    assert code == 0
    assert (message["source"], message["message_type"], message["attempts"]) == (
        "outbox table",
        "Noted",
        1,
    )
    assert "maximum payload exceeded" in message["error"]
    assert (event["source"], event["id"], event["message_type"], event["key"]) == (
        "shop.log",
        position,
        "OrderConfirmed",
        orders_["paid"],
    )
    assert event["error"] == "LookupError: no route for confirmations"
    table = cli(database_url, "outbox", "dead-letters")[1]
    assert table_row(table, "outbox table")[3:6] == ["Noted", "shop.customers", "ada"]
    assert table_row(table, "shop.log")[1:4] == [
        str(position),
        event["message_id"],
        "OrderConfirmed",
    ]
    code, out, _ = cli(database_url, "status", "--json")
    kinds = {row["kind"]: row for row in json.loads(out)}
    assert kinds["outbox-relay"]["name"] == "shop.outbox"
    assert kinds["outbox"]["dead_letters"] == 1
    assert (kinds["relay"]["name"], kinds["relay"]["dead_letters"]) == ("shop.log", 1)
    assert kinds["relay"]["lag_events"] == 0  # the log's relay went on past it

    code, out, err = cli(database_url, "outbox", "replay")
    assert (code, out.strip()) == (0, "put 1 message(s) back in the queue")
    assert err.startswith("1 event(s) the event-log relay set aside are published again by")
    assert [
        row["source"]
        for row in json.loads(cli(database_url, "outbox", "dead-letters", "--json")[1])
    ] == ["shop.log"]
    status = json.loads(cli(database_url, "outbox", "status", "--json")[1])
    assert (status[1]["pending"], status[1]["failed"]) == (1, 0)
    code, _, err = cli(database_url, "outbox", "replay", str(message["id"]))
    assert (code, err.splitlines()[0]) == (
        1,
        "cqrs-ddd: error: put 0 message(s) back in the queue, but 1 of the ids given are not"
        " set aside (nothing changed for them)",
    )


def test_sagas_dead_letters_lists_what_the_saga_feed_set_aside(database_url: str) -> None:
    orders_ = asyncio.run(fill(database_url))

    async def set_aside() -> int:
        async with shop_on(database_url) as (shop, _):
            feed, events_ = shop.saga_feed, shop.event_store
            return await set_aside_for_the_feed(feed, events_, orders_["paid"])

    position = asyncio.run(set_aside())
    code, out, _ = cli(database_url, "sagas", "dead-letters", "--json")
    (letter,) = json.loads(out)
    assert (code, letter["projection"], letter["position"]) == (0, "shop.sagas", position)
    assert (letter["event_type"], letter["error_class"]) == (
        "OrderCheckedOut",
        "builtins.TimeoutError",
    )
    row = table_row(cli(database_url, "sagas", "dead-letters", "shop.sagas")[1], "shop.sagas")
    assert row[1:5] == [str(position), orders_["paid"], "3", "OrderCheckedOut"]
    code, _, err = cli(database_url, "sagas", "dead-letters", "nothing")
    assert (code, err.strip()) == (
        1,
        "cqrs-ddd: error: no saga feed 'nothing' (known: shop.sagas)",
    )


def test_unknown_sagas_and_bad_ids_are_one_line_errors(database_url: str) -> None:
    asyncio.run(fill(database_url))
    unknown = "00000000-0000-4000-8000-000000000000"
    assert cli(database_url, "sagas", "show", unknown)[::2] == (
        1,
        f"cqrs-ddd: error: no saga {unknown}\n",
    )
    assert cli(database_url, "sagas", "retry", unknown)[::2] == (
        1,
        f"cqrs-ddd: error: saga {unknown}: no such saga instance\n",
    )
    code, _, err = cli(database_url, "sagas", "retry", "nope")
    assert (code, err.strip()) == (
        2,
        "cqrs-ddd: error: 'nope' is not a saga id (a UUID, as sagas list shows)",
    )
    code, _, err = cli(database_url, "sagas", "list", "--status", "lost")
    assert code == 2
    assert "'lost' is not a saga status" in err
    code, _, err = cli(database_url, "schedules", "run-now", unknown)
    assert (code, err.strip()) == (1, f"cqrs-ddd: error: no schedule {unknown}")

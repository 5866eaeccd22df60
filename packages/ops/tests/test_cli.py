"""``cqrs-ddd migrate`` and ``streams`` against SQLite and PostgreSQL holding a shop's data."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from cqrs_ddd_ops.cli import app
from typer.testing import CliRunner

from cqrs_ddd_persistence_sqlalchemy import create_engine, head_revision, migration_history
from cqrs_ddd_testing import PostgresDatabase
from shop.application import expiry_id
from shop.commands import (
    AddProduct,
    CheckOut,
    GenerateMonthlyReport,
    Line,
    PlaceOrder,
    RegisterCustomer,
    Restock,
)
from shop.wiring import build_shop

runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend in turn, as an operator would name it (no driver)."""
    if request.param == "sqlite":
        (tmp_path / "system.sqlite").touch()  # an empty database file
        return f"sqlite:///{tmp_path / 'system.sqlite'}"
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.dsn


async def fill(url: str) -> str:
    """Give the database a shop's data: a customer, a product, a paid order. Return its id."""
    engine = create_engine(url)
    try:
        shop = await build_shop(engine)
        send = shop.mediator.send
        await send(RegisterCustomer(customer_id="ada", name="Ada"))
        await send(AddProduct(sku="tea", name="Tea", price=Decimal("4.50"), stock=10))
        order_id: str = (
            await send(PlaceOrder(customer_id="ada", lines=[Line(sku="tea", quantity=2)]))
        ).result
        await send(CheckOut(order_id=order_id, payment_method="card"))
        unpaid = await send(PlaceOrder(customer_id="ada", lines=[Line(sku="tea", quantity=1)]))
        assert unpaid.result
        await shop.schedules.schedule_recurring(
            "monthly-report", GenerateMonthlyReport(), cron="0 6 1 * *"
        )
        return order_id
    finally:
        await engine.dispose()


def async_url(url: str) -> str:
    return url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )


def cli(url: str, *arguments: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(arguments), env={"DATABASE_URL": url, "COLUMNS": "250"})
    return result.exit_code, result.stdout, result.stderr


def test_migrate_upgrades_once_and_says_where_the_schema_is(database_url: str) -> None:
    head = head_revision()
    assert cli(database_url, "migrate", "current")[1].startswith("no schema (the newest is")
    code, out, _ = cli(database_url, "migrate", "upgrade")
    assert (code, out.strip()) == (0, f"upgraded the schema from nothing to {head}")
    code, out, _ = cli(database_url, "migrate", "upgrade")
    assert (code, out.strip()) == (0, f"the schema is at {head} already")
    code, out, _ = cli(database_url, "migrate", "current", "--json")
    assert (code, json.loads(out)) == (0, {"current": head, "head": head})


def test_migrate_history_lists_every_migration_newest_first() -> None:
    code, out, _ = cli("sqlite:///unused.sqlite", "migrate", "history", "--json")
    listed = json.loads(out)
    assert code == 0
    assert [entry["revision"] for entry in listed] == [m.revision for m in migration_history()]
    assert listed[-1] == {
        "revision": "0001",
        "down_revision": None,
        "description": "Create the event store, the state-stored aggregates and the outbox.",
    }
    assert "Create the inbox." in cli("sqlite:///unused.sqlite", "migrate", "history")[1]


def test_streams_list_show_and_tail_read_the_event_log(database_url: str) -> None:
    order_id = asyncio.run(fill(async_url(database_url)))

    code, out, _ = cli(database_url, "streams", "list", "--json")
    assert code == 0
    listed = {stream["stream_id"]: stream for stream in json.loads(out)}
    assert order_id in listed
    assert "tea" in listed
    assert len(listed) == 3  # the paid order, the unpaid one, the product
    assert (listed[order_id]["aggregate_type"], listed[order_id]["events"]) == ("Order", 6)
    assert listed[order_id]["last_event_type"] == "OrderConfirmed"
    assert listed["tea"]["version"] == 2  # added, then two units held for the order
    table = cli(database_url, "streams", "list", "--prefix", "te")[1]
    assert "tea" in table
    assert order_id not in table

    code, out, _ = cli(database_url, "streams", "show", order_id, "--json")
    events = json.loads(out)
    assert code == 0
    assert [event["event_type"] for event in events] == [
        "OrderPlaced",
        "ItemAdded",
        "OrderCheckedOut",
        "OrderStockReserved",
        "PaymentCharged",
        "OrderConfirmed",
    ]
    assert events[1]["payload"]["product_name"] == "Tea"

    code, out, _ = cli(database_url, "streams", "tail", "--after", "0")
    lines = out.strip().splitlines()
    assert code == 0
    assert len(lines) == 10  # every event of the log, in position order
    assert lines[0].split()[1:] == ["tea", "v1", "ProductAdded"]
    code, out, _ = cli(database_url, "streams", "tail", "--json", "--follow", "--for", "0.5")
    assert code == 0
    tail = [json.loads(line)["event_type"] for line in out.splitlines()]
    assert tail[-2:] == ["OrderPlaced", "ItemAdded"]  # the unpaid order, written last


def test_streams_tail_follow_prints_events_appended_while_it_follows(database_url: str) -> None:
    asyncio.run(fill(async_url(database_url)))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        following = pool.submit(
            cli, database_url, "streams", "tail", "--json", "--follow", "--for", "4"
        )
        time.sleep(1.5)  # it has printed the last ten and waits for more

        async def restock() -> None:
            engine = create_engine(async_url(database_url))
            try:
                await (await build_shop(engine)).mediator.send(Restock(sku="tea", quantity=3))
            finally:
                await engine.dispose()

        asyncio.run(restock())
        code, out, _ = following.result(timeout=30)
    printed = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert (printed[-1]["event_type"], printed[-1]["stream_id"]) == ("ProductRestocked", "tea")
    assert printed[-1]["payload"]["quantity"] == 3


def test_an_unknown_stream_is_one_line_and_status_1(database_url: str) -> None:
    asyncio.run(fill(async_url(database_url)))
    code, out, err = cli(database_url, "streams", "show", "order-42")
    assert (code, out) == (1, "")
    assert err == "cqrs-ddd: error: no stream 'order-42' in the event log\n"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://x/y", "names a database the tools do not read (mysql)"),
        ("nonsense", "is not a database URL"),
        ("postgresql+psycopg://x/y", "names the driver 'psycopg'; use postgresql+asyncpg"),
    ],
)
def test_a_database_url_the_tools_cannot_use_is_status_2(url: str, problem: str) -> None:
    code, _, err = cli(url, "streams", "list")
    assert code == 2
    assert err.startswith("cqrs-ddd: error: DATABASE_URL")
    assert problem in err
    assert len(err.splitlines()) == 1


def test_a_database_that_does_not_answer_is_one_line_from_the_console_script() -> None:
    command = Path(sys.executable).parent / "cqrs-ddd"
    environment = {**os.environ, "DATABASE_URL": "postgresql://ops:secret@127.0.0.1:1/system"}
    result = subprocess.run(  # noqa: S603 - the package's own console script
        [str(command), "streams", "list"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "cqrs-ddd: error: cannot reach the database postgresql+asyncpg://ops:***@127.0.0.1:1/system"
    )
    assert "secret" not in line


def test_a_database_without_the_schema_says_to_migrate(database_url: str) -> None:
    code, _, err = cli(database_url, "streams", "list")
    assert code == 1
    assert err.endswith("has no cqrs-ddd schema: run cqrs-ddd migrate upgrade\n")


def test_a_database_at_an_older_revision_says_to_upgrade_and_is_not_read(
    database_url: str,
) -> None:
    # given a database migrated by the release before (revision 0010)
    assert cli(database_url, "migrate", "upgrade", "--revision", "0010")[0] == 0
    # when a command that reads the newest schema runs
    code, out, err = cli(database_url, "status")
    # then it says what to do instead of failing on a column the database lacks
    assert (code, out) == (1, "")
    assert err.strip().endswith(
        f"is at revision 0010, older than this version's {head_revision()}:"
        " run cqrs-ddd migrate upgrade"
    )


def test_a_sqlite_file_that_does_not_exist_is_not_created_by_a_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite"
    code, _, err = cli(f"sqlite:///{missing}", "streams", "list")
    assert code == 1
    assert err == f"cqrs-ddd: error: DATABASE_URL names no SQLite file: {missing} does not exist\n"
    assert not missing.exists()
    assert cli(f"sqlite:///{missing}", "migrate", "upgrade")[0] == 0  # an upgrade creates it


def test_payloads_are_shown_as_they_are_not_as_markup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'markup.sqlite'}"
    assert cli(url, "migrate", "upgrade")[0] == 0

    async def write() -> None:
        engine = create_engine(async_url(url))
        try:
            shop = await build_shop(engine)
            await shop.mediator.send(RegisterCustomer(customer_id="ada", name="Ada"))
            await shop.mediator.send(
                AddProduct(sku="flat", name="Flat [/2] [bold]x[/bold]", price=Decimal(1), stock=1)
            )
        finally:
            await engine.dispose()

    asyncio.run(write())
    code, out, err = cli(url, "streams", "show", "flat")
    assert (code, err) == (0, "")
    assert "[/2]" in out
    assert "[bold]" in out  # shown, not taken as markup


def test_a_password_is_never_printed() -> None:
    code, _, err = cli("postgresql://ops:s3cret@127.0.0.1:notaport/db", "streams", "list")
    assert code == 2
    assert "s3cret" not in err


def test_bad_usage_is_status_2() -> None:
    result = runner.invoke(app, ["streams", "list", "--limit", "0"])
    assert result.exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_schedules_are_listed_shown_cancelled_and_paused(database_url: str) -> None:
    paid = asyncio.run(fill(async_url(database_url)))
    code, out, _ = cli(database_url, "schedules", "list", "--json")
    listed = json.loads(out)
    assert code == 0
    by_id = {row["schedule_id"]: row for row in listed}
    assert by_id[str(expiry_id(paid))]["status"] == "cancelled"  # paid: its expiry cancelled
    (pending,) = [row for row in listed if row["status"] == "pending"]
    assert pending["command_type"] == "ExpireOrder"
    assert "ExpireOrder" in cli(database_url, "schedules", "list", "--status", "pending")[1]
    assert json.loads(cli(database_url, "schedules", "list", "--due", "--json")[1]) == []

    code, out, _ = cli(database_url, "schedules", "show", pending["schedule_id"], "--json")
    (shown,) = json.loads(out)
    assert code == 0
    assert shown["payload"]["order_id"] == pending["payload"]["order_id"]
    code, out, _ = cli(database_url, "schedules", "cancel", pending["schedule_id"])
    assert (code, out.strip()) == (0, f"cancelled schedule {pending['schedule_id']}")
    code, _, err = cli(database_url, "schedules", "cancel", pending["schedule_id"])
    assert code == 1
    assert "cancelled" in err
    assert len(err.splitlines()) == 1

    code, out, _ = cli(database_url, "schedules", "list", "--recurring", "--json")
    (monthly,) = json.loads(out)
    assert (monthly["name"], monthly["rule"], monthly["paused"]) == (
        "monthly-report",
        "0 6 1 * *",
        False,
    )
    assert cli(database_url, "schedules", "pause", "monthly-report")[0] == 0
    recurring = json.loads(cli(database_url, "schedules", "list", "--recurring", "--json")[1])
    assert recurring[0]["paused"] is True
    assert cli(database_url, "schedules", "resume", "monthly-report")[0] == 0
    code, _, err = cli(database_url, "schedules", "pause", "no-such")
    assert (code, err) == (1, "cqrs-ddd: error: no recurring schedule 'no-such'\n")
    code, _, err = cli(database_url, "schedules", "show", "not-an-id")
    assert code == 2
    assert "is not a schedule id" in err
    missing = "00000000-0000-0000-0000-000000000000"
    code, _, err = cli(database_url, "schedules", "show", missing)
    assert (code, err) == (1, f"cqrs-ddd: error: no schedule {missing}\n")

"""Snapshots and upcasting on SQLite and PostgreSQL.

The spec's ``SnapshotStore(session, strategy)`` is given a real SQLAlchemy
session factory, session or engine; the other tests give the store its
``SQLAlchemySnapshotRepository`` (``repository=``), which needs no entry point.
The write path is the mediator on a ``SQLAlchemyUnitOfWork``, so a snapshot
commits with the events that crossed the threshold, or not at all.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from advanced_test_model import Order
from snapshot_test_support import (
    AddItems,
    CountingEventStore,
    OrderV2,
    PaymentDeclinedError,
    SnapshottingShop,
    StreamRead,
    lines,
    snapshotting_shop,
)
from sqlalchemy import Connection, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from upcasting_test_model import (
    Parcel,
    ParcelShippedV1ToV2,
    ParcelShippedV2ToV3,
    parcel_event_types,
    shipped_by_release_1,
)

from cqrs_ddd_advanced_core import EventSourcedLoader, EventSourcingConfigurationError
from cqrs_ddd_advanced_core.snapshots import EveryNEventsStrategy, SnapshotStore
from cqrs_ddd_advanced_core.upcasting import EventDecoder, UpcasterRegistry
from cqrs_ddd_core.exceptions import UnitOfWorkError
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemySnapshotRepository,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.schema import events, snapshots

pytest_plugins = ["sqlalchemy_fixtures"]


def sql_shop(engine: AsyncEngine, frequency: int, *, keep: int = 1) -> SnapshottingShop:
    """Return the shop on ``engine``, snapshotting every ``frequency`` events."""
    snapshot_store = SnapshotStore(
        strategy=EveryNEventsStrategy(frequency=frequency),
        repository=SQLAlchemySnapshotRepository(engine),
        keep=keep,
    )
    return snapshotting_shop(
        SQLAlchemyEventStore(engine), snapshot_store, lambda: SQLAlchemyUnitOfWork(engine)
    )


async def snapshot_rows(engine: AsyncEngine, stream_id: str) -> list[tuple[int, int]]:
    """Return (version, schema_version) of the stream's snapshot rows, oldest first."""
    query = (
        select(snapshots.c.version, snapshots.c.schema_version)
        .where(snapshots.c.stream_id == stream_id)
        .order_by(snapshots.c.version)
    )
    async with engine.connect() as connection:
        return [(row.version, row.schema_version) for row in await connection.execute(query)]


async def event_count(engine: AsyncEngine, stream_id: str) -> int:
    query = select(func.count()).select_from(events).where(events.c.stream_id == stream_id)
    async with engine.connect() as connection:
        return int(await connection.scalar(query) or 0)


# ---------------------------------------------------------------- the spec's example


@asynccontextmanager
async def session_factory(engine: AsyncEngine) -> AsyncIterator[Any]:
    yield async_sessionmaker(engine)


@asynccontextmanager
async def open_session(engine: AsyncEngine) -> AsyncIterator[Any]:
    async with AsyncSession(engine) as session:
        yield session


@asynccontextmanager
async def the_engine(engine: AsyncEngine) -> AsyncIterator[Any]:
    yield engine


@pytest.mark.parametrize(
    "sessions",
    [session_factory, open_session, the_engine],
    ids=["async_sessionmaker", "AsyncSession", "AsyncEngine"],
)
async def test_the_snapshots_example_loads_order_123_from_its_snapshot_and_later_events(
    engine: AsyncEngine, sessions: Callable[[AsyncEngine], Any]
) -> None:
    async with sessions(engine) as session:
        # given: the spec's store, on the user's database
        strategy = EveryNEventsStrategy(frequency=100)
        snapshot_store = SnapshotStore(session, strategy)
        shop = snapshotting_shop(
            SQLAlchemyEventStore(engine), snapshot_store, lambda: SQLAlchemyUnitOfWork(engine)
        )
        # and order_123 with 120 events (a snapshot at 120), then 4 more
        await shop.create_order("order_123")
        await shop.mediator.send(AddItems(order_id="order_123", lines=lines(119)))
        await shop.mediator.send(AddItems(order_id="order_123", lines=lines(4, sku="sku-2")))
        event_store = CountingEventStore(shop.event_store)
        event_registry = shop.event_types
        # when: the spec's example
        loader = EventSourcedLoader(
            aggregate_type=Order,
            event_store=event_store,
            event_registry=event_registry,
            snapshot_store=snapshot_store,
        )

        # Load - uses snapshot if available
        order = await loader.load("order_123")
        # then
        assert isinstance(snapshot_store.repository, SQLAlchemySnapshotRepository)
        assert await snapshot_rows(engine, "order_123") == [(120, 1)]
        assert event_store.reads == [StreamRead("order_123", from_version=120, count=5)]
        replayed = await shop.replaying_loader().load("order_123")
        assert order.model_dump() == replayed.model_dump()
        assert (order.version, order.items) == (124, {"sku-1": 119, "sku-2": 4})


# ---------------------------------------------------------------- one transaction


async def test_a_snapshot_commits_in_the_same_transaction_as_the_events(
    engine: AsyncEngine,
) -> None:
    # given
    shop = sql_shop(engine, frequency=5)
    await shop.create_order("o-1")
    # when: 1 -> 7
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(6)))
    # then
    assert await event_count(engine, "o-1") == 7
    assert await snapshot_rows(engine, "o-1") == [(7, 1)]
    snapshot = await shop.snapshots.repository.latest("o-1")
    assert snapshot is not None
    assert snapshot.state == (await shop.replaying_loader().load("o-1")).model_dump(mode="json")


async def test_a_failing_command_leaves_neither_its_events_nor_its_snapshot(
    engine: AsyncEngine,
) -> None:
    # given
    shop = sql_shop(engine, frequency=5)
    await shop.create_order("o-1")
    # when: the handler saves 1 -> 7, then raises
    with pytest.raises(PaymentDeclinedError):
        await shop.mediator.send(AddItems(order_id="o-1", lines=lines(6), fail_after_saving=True))
    # then
    assert await event_count(engine, "o-1") == 1
    assert await snapshot_rows(engine, "o-1") == []


async def test_keep_2_leaves_the_two_newest_snapshot_rows(engine: AsyncEngine) -> None:
    # given: snapshots at every 2 events, keeping 2
    shop = sql_shop(engine, frequency=2, keep=2)
    await shop.create_order("o-1")
    await shop.create_order("o-2")
    # when: o-1 goes 1 -> 3 -> 5 -> 7 -> 9
    for _ in range(4):
        await shop.mediator.send(AddItems(order_id="o-1", lines=lines(2)))
    await shop.mediator.send(AddItems(order_id="o-2", lines=lines(1)))
    # then
    assert await snapshot_rows(engine, "o-1") == [(7, 1), (9, 1)]
    assert await snapshot_rows(engine, "o-2") == [(2, 1)]


async def test_saving_a_snapshot_outside_a_command_lands_at_once_and_twice_is_harmless(
    engine: AsyncEngine,
) -> None:
    # given
    shop = sql_shop(engine, frequency=1000)
    await shop.create_order("o-1")
    order = await shop.orders.get("o-1")
    # when
    await shop.snapshots.save(order)
    await shop.snapshots.save(order)
    # then
    assert await snapshot_rows(engine, "o-1") == [(1, 1)]


# ---------------------------------------------------------------- snapshots that are not used


async def test_a_snapshot_taken_under_an_older_aggregate_schema_is_ignored(
    engine: AsyncEngine,
) -> None:
    # given: a snapshot at version 6 taken while Order's schema was version 1
    shop = sql_shop(engine, frequency=3)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(5)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1, sku="sku-2")))
    assert await snapshot_rows(engine, "o-1") == [(6, 1)]
    reads = CountingEventStore(shop.event_store)
    # when: the class now at schema version 2 loads it
    loaded = await shop.snapshot_loader(reads, aggregate_type=OrderV2).load("o-1")
    # then
    assert reads.reads == [StreamRead("o-1", from_version=1, count=7)]
    replayed = await shop.replaying_loader(aggregate_type=OrderV2).load("o-1")
    assert loaded.model_dump() == replayed.model_dump()


async def test_a_snapshot_row_whose_state_no_longer_validates_is_ignored(
    engine: AsyncEngine,
) -> None:
    # given: a snapshot at 4 whose state a later release can no longer read
    shop = sql_shop(engine, frequency=4)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(3)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1, sku="sku-2")))
    async with engine.begin() as connection:
        await connection.execute(
            update(snapshots).values(state={"id": "o-1", "items": ["not", "a", "mapping"]})
        )
    reads = CountingEventStore(shop.event_store)
    # when
    loaded = await shop.snapshot_loader(reads).load("o-1")
    # then
    assert reads.reads == [StreamRead("o-1", from_version=1, count=5)]
    assert loaded.model_dump() == (await shop.replaying_loader().load("o-1")).model_dump()


DAMAGE = [
    ("state = :text", "[1, 2]", "not_an_object"),
    ("state = :text", "null", "not_an_object"),
    ("state = :text", '"a string"', "not_an_object"),
    ("state = :text", "{not json at all", "not_an_object"),
    ("version = 99", None, "past_stream_end"),
]


@pytest.mark.parametrize(
    ("assignment", "text", "kind"),
    DAMAGE,
    ids=["list", "null", "string", "not-json", "past-the-stream"],
)
async def test_a_damaged_snapshot_row_is_reported_and_the_stream_replayed(
    engine: AsyncEngine,
    assignment: str,
    text: str | None,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: a snapshot at 4, then damaged in the database
    shop = sql_shop(engine, frequency=4)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(3)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1, sku="sku-2")))
    cast_text = "CAST(:text AS json)" if engine.dialect.name == "postgresql" else ":text"
    statement = f"UPDATE cqrs_snapshots SET {assignment.replace(':text', cast_text)}"  # noqa: S608 - fixed text
    if text == "{not json at all" and engine.dialect.name == "postgresql":
        # PostgreSQL's json column refuses such damage in the first place
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            async with engine.begin() as connection:
                await connection.execute(sqlalchemy.text(statement), {"text": text})
        return
    async with engine.begin() as connection:
        await connection.execute(sqlalchemy.text(statement), {"text": text} if text else {})
    # when
    with caplog.at_level("WARNING", logger="cqrs_ddd_advanced_core.snapshots"):
        loaded = await shop.snapshot_loader(shop.event_store).load("o-1")
    # then: the aggregate a full replay gives, and the damage reported
    assert loaded.model_dump() == (await shop.replaying_loader().load("o-1")).model_dump()
    assert shop.snapshots.unusable == {kind: 1}
    [warning] = [r for r in caplog.records if r.name == "cqrs_ddd_advanced_core.snapshots"]
    assert "'o-1'" in warning.getMessage()
    assert "replaying the stream" in warning.getMessage()


# ---------------------------------------------------------------- upcasting


async def raw_event_rows(engine: AsyncEngine, stream_id: str) -> list[tuple[Any, ...]]:
    query = (
        select(
            events.c.version,
            events.c.schema_version,
            events.c.payload,
            sqlalchemy.cast(events.c.payload, sqlalchemy.Text),
        )
        .where(events.c.stream_id == stream_id)
        .order_by(events.c.version)
    )
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(query)]


async def test_an_event_stored_at_version_1_is_read_as_version_3_and_its_row_is_unchanged(
    engine: AsyncEngine,
) -> None:
    # given: a parcel shipped under release 1
    store = SQLAlchemyEventStore(engine)
    await store.append("p-1", [shipped_by_release_1("p-1", 2.5)], expected_version=0)
    before = await raw_event_rows(engine, "p-1")
    registry = UpcasterRegistry([ParcelShippedV1ToV2(), ParcelShippedV2ToV3()])
    loader = EventSourcedLoader(Parcel, store, parcel_event_types(), upcaster_registry=registry)
    # when: loaded, and read through the global log
    parcel = await loader.load("p-1")
    decoder = EventDecoder(parcel_event_types(), registry)
    [event] = [decoder.decode(stored) for stored in await store.read_all()]
    # then
    assert (parcel.weight_grams, parcel.carrier) == (2500, "post")
    assert event.payload() == {"weight_grams": 2500, "carrier": "post"}
    after = await raw_event_rows(engine, "p-1")
    assert after == before
    assert [(version, schema, payload) for version, schema, payload, _ in after] == [
        (1, 1, {"weight_kg": 2.5})
    ]


# ---------------------------------------------------------------- configuration


async def test_a_snapshot_store_given_its_repository_consults_no_entry_point(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: entry points that cannot be read
    def no_entry_points(**_: object) -> object:
        raise AssertionError("entry points consulted")

    lookup = importlib.import_module("cqrs_ddd_advanced_core.snapshots.repository")
    monkeypatch.setattr(lookup, "entry_points", no_entry_points)
    with pytest.raises(AssertionError, match="entry points consulted"):
        SnapshotStore(engine, EveryNEventsStrategy(frequency=3))  # the spec's form reads them
    # when: the store is given its repository
    repository = SQLAlchemySnapshotRepository(engine)
    snapshot_store = SnapshotStore(
        strategy=EveryNEventsStrategy(frequency=3), repository=repository
    )
    shop = snapshotting_shop(
        SQLAlchemyEventStore(engine), snapshot_store, lambda: SQLAlchemyUnitOfWork(engine)
    )
    await shop.create_order()
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(2)))
    # then: it snapshots and loads through that repository
    assert snapshot_store.repository is repository
    assert await snapshot_rows(engine, "o-1") == [(3, 1)]
    event_store = CountingEventStore(shop.event_store)
    loader = EventSourcedLoader(Order, event_store, shop.event_types, snapshot_store=snapshot_store)
    assert (await loader.load("o-1")).version == 3
    assert event_store.reads == [StreamRead("o-1", from_version=3, count=1)]


def test_a_snapshot_store_given_an_unsupported_object_names_its_type() -> None:
    with pytest.raises(EventSourcingConfigurationError, match=r"\bobject\b"):
        SnapshotStore(object(), EveryNEventsStrategy(frequency=10))


def test_a_snapshot_store_given_a_synchronous_engine_names_its_type() -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        with pytest.raises(EventSourcingConfigurationError, match=r"\bEngine\b"):
            SnapshotStore(engine, EveryNEventsStrategy(frequency=10))
    finally:
        engine.dispose()


def test_a_snapshot_store_given_an_unbound_session_factory_is_a_configuration_error() -> None:
    with pytest.raises(EventSourcingConfigurationError, match="async_sessionmaker"):
        SnapshotStore(async_sessionmaker(), EveryNEventsStrategy(frequency=10))


async def test_upgrade_schema_creates_the_snapshots_table(engine: AsyncEngine) -> None:
    def columns(connection: Connection) -> dict[str, bool]:
        inspector = inspect(connection)
        return {
            column["name"]: column["nullable"] for column in inspector.get_columns(snapshots.name)
        }

    def primary_key(connection: Connection) -> list[str]:
        return list(inspect(connection).get_pk_constraint(snapshots.name)["constrained_columns"])

    async with engine.connect() as connection:
        assert await connection.run_sync(columns) == {
            "stream_id": False,
            "version": False,
            "aggregate_type": False,
            "schema_version": False,
            "state": False,
            "taken_at": False,
        }
        assert sorted(await connection.run_sync(primary_key)) == ["stream_id", "version"]


# ---------------------------------------------------------------- stores on other engines


async def test_a_snapshot_store_on_another_engine_of_the_same_database_joins_the_command(
    engine: AsyncEngine,
) -> None:
    # given: snapshots written through an engine of their own, on the same database
    snapshot_engine = create_engine(engine.url)
    try:
        shop = snapshotting_shop(
            SQLAlchemyEventStore(engine),
            SnapshotStore(
                strategy=EveryNEventsStrategy(frequency=3),
                repository=SQLAlchemySnapshotRepository(snapshot_engine),
            ),
            lambda: SQLAlchemyUnitOfWork(engine),
        )
        await shop.create_order()
        # when: a command crosses the threshold, then fails
        with pytest.raises(PaymentDeclinedError):
            await shop.mediator.send(
                AddItems(order_id="o-1", lines=lines(3), fail_after_saving=True)
            )
        # then: its snapshot went with it, and the order goes on from its real state
        assert await snapshot_rows(engine, "o-1") == []
        await shop.mediator.send(AddItems(order_id="o-1", lines=lines(2)))
        assert await snapshot_rows(engine, "o-1") == [(3, 1)]
        order = await shop.orders.get("o-1")
        assert (order.version, order.items) == (3, {"sku-1": 2})
        await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1)))
        assert (await shop.orders.get("o-1")).version == 4
    finally:
        await snapshot_engine.dispose()


async def test_concurrent_commands_snapshot_through_another_engine_with_their_own_outcome(
    engine: AsyncEngine,
) -> None:
    # given: 12 orders, and snapshots kept through an engine of their own
    snapshot_engine = create_engine(engine.url)
    try:
        shop = snapshotting_shop(
            SQLAlchemyEventStore(engine),
            SnapshotStore(
                strategy=EveryNEventsStrategy(frequency=3),
                repository=SQLAlchemySnapshotRepository(snapshot_engine),
            ),
            lambda: SQLAlchemyUnitOfWork(engine),
        )
        orders = [f"o-{n}" for n in range(12)]
        for order_id in orders:
            await shop.create_order(order_id)
        # when: 12 commands at once each cross the threshold; every other one then fails
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(
                    shop.mediator.send(
                        AddItems(order_id=order_id, lines=lines(3), fail_after_saving=n % 2 == 1)
                    )
                    for n, order_id in enumerate(orders)
                ),
                return_exceptions=True,
            ),
            timeout=120,
        )
        # then: the failures are the commands' own, and only the successes left snapshots
        failed = {
            order_id
            for order_id, outcome in zip(orders, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        }
        assert all(
            isinstance(outcome, PaymentDeclinedError)
            for outcome in outcomes
            if isinstance(outcome, BaseException)
        ), outcomes
        assert failed == set(orders[1::2])
        for order_id in orders:
            expected = [] if order_id in failed else [(4, 1)]
            assert await snapshot_rows(engine, order_id) == expected, order_id
    finally:
        await snapshot_engine.dispose()


async def test_a_snapshot_store_on_another_database_is_refused_inside_a_command(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    # given: snapshots kept in a database other than the command's
    elsewhere = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'elsewhere.sqlite'}")
    try:
        await upgrade_schema(elsewhere)
        shop = snapshotting_shop(
            SQLAlchemyEventStore(engine),
            SnapshotStore(
                strategy=EveryNEventsStrategy(frequency=3),
                repository=SQLAlchemySnapshotRepository(elsewhere),
            ),
            lambda: SQLAlchemyUnitOfWork(engine),
        )
        await shop.create_order()
        # when: a command would write its snapshot there
        with pytest.raises(UnitOfWorkError, match="snapshot") as raised:
            await shop.mediator.send(AddItems(order_id="o-1", lines=lines(3)))
        # then: it names where the snapshot would go, and the command left nothing
        assert "elsewhere.sqlite" in str(raised.value)
        assert await event_count(engine, "o-1") == 1
        assert await snapshot_rows(elsewhere, "o-1") == []
    finally:
        await elsewhere.dispose()

"""Snapshots on the in-memory adapters: when they are taken, and how loads use them.

Snapshots are taken by the real write path only (``EventSourcedMediator`` on an
``InMemoryUnitOfWork``, handlers saving through an ``EventSourcedRepository``
whose loader has the ``SnapshotStore``); the loads are checked against a loader
that replays every event.
"""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from advanced_test_model import Order
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field
from snapshot_test_support import (
    AddItems,
    CountingEventStore,
    Line,
    OrderV2,
    PaymentDeclinedError,
    SnapshottingShop,
    StreamRead,
    lines,
    snapshotting_shop,
)

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcingConfigurationError,
    aggregate_event_handler,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore, InMemorySnapshotRepository
from cqrs_ddd_advanced_core.snapshots import EveryNEventsStrategy, Snapshot, SnapshotStore
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    ConcurrencyError,
    DomainEvent,
    EventTypeRegistry,
    InMemoryUnitOfWork,
    ValidationError,
)
from cqrs_ddd_core.serialization import UnreadableJSON


def in_memory_shop(frequency: int, *, keep: int = 1) -> SnapshottingShop:
    """Return the shop on an in-memory event store, snapshotting every ``frequency`` events."""
    snapshots = SnapshotStore(None, EveryNEventsStrategy(frequency=frequency), keep=keep)
    return snapshotting_shop(InMemoryEventStore(), snapshots, InMemoryUnitOfWork)


def kept_versions(snapshots: SnapshotStore, stream_id: str) -> list[int]:
    """Return the versions of the snapshots the in-memory repository keeps for ``stream_id``.

    The repository port only answers "the newest"; what else is kept is internal state.
    """
    repository = snapshots.repository
    assert isinstance(repository, InMemorySnapshotRepository)
    return [snapshot.version for snapshot in repository._snapshots.get(stream_id, [])]


# ---------------------------------------------------------------- EveryNEventsStrategy


@pytest.mark.parametrize(
    ("previous_version", "new_version", "expected"),
    [
        (98, 103, True),
        (99, 100, True),
        (100, 150, False),
        (0, 100, True),
        (0, 99, False),
        (150, 250, True),
        (100, 199, False),
        (199, 200, True),
        (0, 250, True),
    ],
)
def test_every_n_events_snapshots_exactly_when_a_save_crosses_a_multiple_of_n(
    previous_version: int, new_version: int, expected: bool
) -> None:
    # given
    strategy = EveryNEventsStrategy(frequency=100)
    # when
    decision = strategy.should_snapshot(previous_version=previous_version, new_version=new_version)
    # then
    assert decision is expected


def test_every_event_strategy_snapshots_every_save_that_adds_events() -> None:
    strategy = EveryNEventsStrategy(frequency=1)
    assert strategy.should_snapshot(previous_version=4, new_version=5)
    assert not strategy.should_snapshot(previous_version=5, new_version=5)


@pytest.mark.parametrize("frequency", [0, -100, 1.5, True, "100", None])
def test_a_frequency_that_is_not_a_positive_integer_is_a_validation_error(
    frequency: object,
) -> None:
    with pytest.raises(ValidationError) as raised:
        EveryNEventsStrategy(frequency=frequency)  # type: ignore[arg-type]
    assert raised.value.fields == ("frequency",)


def test_a_snapshot_store_without_a_strategy_snapshots_every_hundred_events() -> None:
    store = SnapshotStore()
    assert isinstance(store.strategy, EveryNEventsStrategy)
    assert store.strategy.frequency == 100


def test_a_snapshot_store_given_only_a_strategy_keeps_its_snapshots_in_memory() -> None:
    strategy = EveryNEventsStrategy(frequency=7)
    store = SnapshotStore(strategy=strategy)
    assert isinstance(store.repository, InMemorySnapshotRepository)
    assert store.strategy is strategy


def test_a_snapshot_store_keeps_its_snapshots_in_the_repository_it_is_given() -> None:
    repository = InMemorySnapshotRepository()
    strategy = EveryNEventsStrategy(frequency=7)
    store = SnapshotStore(strategy=strategy, repository=repository, keep=3)
    assert store.repository is repository
    assert (store.strategy, store.keep) == (strategy, 3)


def test_a_session_that_is_a_snapshot_repository_is_used_as_it_is() -> None:
    repository = InMemorySnapshotRepository()
    assert SnapshotStore(repository, EveryNEventsStrategy(frequency=7)).repository is repository


def test_a_snapshot_store_given_a_session_and_a_repository_is_a_configuration_error() -> None:
    with pytest.raises(EventSourcingConfigurationError, match="not both"):
        SnapshotStore(InMemorySnapshotRepository(), repository=InMemorySnapshotRepository())


def test_a_repository_that_is_not_a_snapshot_repository_is_a_configuration_error() -> None:
    with pytest.raises(EventSourcingConfigurationError, match=r"\bobject\b.*SnapshotRepository"):
        SnapshotStore(repository=object())  # type: ignore[arg-type]


def test_a_strategy_passed_where_the_session_goes_is_a_configuration_error() -> None:
    with pytest.raises(EventSourcingConfigurationError, match="strategy=") as raised:
        SnapshotStore(EveryNEventsStrategy(frequency=7), repository=InMemorySnapshotRepository())
    assert "EveryNEventsStrategy" in str(raised.value)


async def test_a_shop_snapshots_through_the_repository_its_store_is_given() -> None:
    # given: a store with an explicit repository
    repository = InMemorySnapshotRepository()
    store = SnapshotStore(strategy=EveryNEventsStrategy(frequency=3), repository=repository)
    shop = snapshotting_shop(InMemoryEventStore(), store, InMemoryUnitOfWork)
    await shop.create_order("o-1")
    # when: a command crosses the threshold
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(2)))
    # then: the snapshot is in that repository
    snapshot = await repository.latest("o-1")
    assert snapshot is not None
    assert snapshot.version == 3


# ---------------------------------------------------------------- the write path


async def test_a_command_crossing_the_threshold_snapshots_the_aggregate_at_its_new_version() -> (
    None
):
    # given: an order at version 1, snapshots every 5 events
    shop = in_memory_shop(frequency=5)
    await shop.create_order("o-1")
    # when: one command adds 6 events (1 -> 7)
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(6)))
    # then
    snapshot = await shop.snapshots.repository.latest("o-1")
    replayed = await shop.replaying_loader().load("o-1")
    assert snapshot is not None
    assert (snapshot.stream_id, snapshot.aggregate_type, snapshot.version) == ("o-1", "Order", 7)
    assert snapshot.schema_version == 1
    assert snapshot.state == replayed.model_dump(mode="json")


async def test_a_command_staying_below_the_threshold_takes_no_snapshot() -> None:
    # given
    shop = in_memory_shop(frequency=5)
    await shop.create_order("o-1")
    # when: 1 -> 4
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(3)))
    # then
    assert await shop.snapshots.repository.latest("o-1") is None


async def test_a_command_that_adds_no_events_takes_no_snapshot_even_at_a_multiple() -> None:
    # given: an order at version 5, snapshotted there
    shop = in_memory_shop(frequency=5)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(4)))
    taken = await shop.snapshots.repository.latest("o-1")
    # when: a command saves the order unchanged
    await shop.mediator.send(AddItems(order_id="o-1", lines=()))
    # then
    assert await shop.snapshots.repository.latest("o-1") is taken


async def test_a_command_that_crosses_the_threshold_and_then_fails_leaves_no_snapshot() -> None:
    # given
    shop = in_memory_shop(frequency=5)
    await shop.create_order("o-1")
    # when: the handler saves 1 -> 7, then raises
    with pytest.raises(PaymentDeclinedError):
        await shop.mediator.send(AddItems(order_id="o-1", lines=lines(6), fail_after_saving=True))
    # then: neither the events nor the snapshot were kept
    assert await shop.snapshots.repository.latest("o-1") is None
    assert len(await shop.event_store.load_stream("o-1")) == 1


class SaveStaleOrder(Command):
    order_id: str


async def test_a_command_that_loses_a_concurrency_race_leaves_no_snapshot() -> None:
    # given: a copy of o-1 loaded at version 1, then o-1 moved on to version 2
    shop = in_memory_shop(frequency=5)
    await shop.create_order("o-1")
    stale = await shop.orders.get("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1)))

    @shop.registry.command_handler(SaveStaleOrder)
    async def save_stale(command: SaveStaleOrder) -> None:
        for _ in range(5):
            stale.add_item("sku-2", 1, Decimal(1))
        await shop.orders.save(stale)

    # when: the stale copy saves 1 -> 6, crossing the threshold
    with pytest.raises(ConcurrencyError):
        await shop.mediator.send(SaveStaleOrder(order_id="o-1"))
    # then
    assert await shop.snapshots.repository.latest("o-1") is None
    assert len(await shop.event_store.load_stream("o-1")) == 2


@pytest.mark.parametrize("keep", [1, 2, 3])
async def test_keep_n_keeps_only_the_n_newest_snapshots_of_a_stream(keep: int) -> None:
    # given: snapshots at every event
    shop = in_memory_shop(frequency=1, keep=keep)
    await shop.create_order("o-1")
    # when: four more commands, each taking a snapshot
    for _ in range(4):
        await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1)))
    # then
    assert kept_versions(shop.snapshots, "o-1") == [2, 3, 4, 5][-keep:]
    latest = await shop.snapshots.repository.latest("o-1")
    assert latest is not None
    assert latest.version == 5


async def test_keeping_the_newest_snapshots_of_one_stream_leaves_other_streams_alone() -> None:
    # given
    shop = in_memory_shop(frequency=1, keep=1)
    await shop.create_order("o-1")
    await shop.create_order("o-2")
    # when
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(3)))
    # then
    assert kept_versions(shop.snapshots, "o-1") == [4]
    assert kept_versions(shop.snapshots, "o-2") == [1]


# ---------------------------------------------------------------- loading


async def test_loading_restores_the_snapshot_and_reads_only_the_later_events() -> None:
    # given: snapshot at 11 (1 -> 11 crosses 10), then three more events
    shop = in_memory_shop(frequency=10)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(10)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(3, sku="sku-2")))
    reads = CountingEventStore(shop.event_store)
    # when
    loaded = await shop.snapshot_loader(reads).load("o-1")
    # then
    assert reads.reads == [StreamRead("o-1", from_version=11, count=4)]
    assert loaded.model_dump() == (await shop.replaying_loader().load("o-1")).model_dump()
    assert loaded.version == 14


async def test_an_aggregate_restored_from_a_snapshot_takes_new_commands() -> None:
    # given: an order whose loads start from a snapshot at its last version
    shop = in_memory_shop(frequency=3)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(2)))
    # when
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1, sku="sku-2")))
    # then
    stored = await shop.event_store.load_stream("o-1")
    assert [event.version for event in stored] == [1, 2, 3, 4]
    order = await shop.replaying_loader().load("o-1")
    assert order.items == {"sku-1": 2, "sku-2": 1}


line_batches = st.lists(
    st.lists(
        st.builds(
            Line,
            sku=st.sampled_from(["sku-a", "sku-b", "sku-c"]),
            quantity=st.integers(min_value=1, max_value=4),
            unit_price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2),
        ),
        max_size=7,
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(frequency=st.integers(min_value=1, max_value=12), batches=line_batches)
async def test_loading_with_snapshots_yields_exactly_the_aggregate_a_full_replay_yields(
    frequency: int, batches: list[list[Line]]
) -> None:
    # given: an order built by commands of random batch sizes, snapshotted by the write path
    shop = in_memory_shop(frequency=frequency)
    await shop.create_order("o-1")
    version, snapshot_version = 1, 1 if frequency == 1 else None
    for batch in batches:
        await shop.mediator.send(AddItems(order_id="o-1", lines=tuple(batch)))
        if batch and version // frequency < (version + len(batch)) // frequency:
            snapshot_version = version + len(batch)
        version += len(batch)
    reads = CountingEventStore(shop.event_store)
    # when
    with_snapshot = await shop.snapshot_loader(reads).load("o-1")
    replayed = await shop.replaying_loader().load("o-1")
    # then: the same aggregate, from only the events after the snapshot
    assert with_snapshot.model_dump() == replayed.model_dump()
    assert with_snapshot.version == replayed.version == version
    latest = await shop.snapshots.repository.latest("o-1")
    assert (latest.version if latest else None) == snapshot_version
    # (from the snapshot's own event, which shows it is within the stream)
    first_read = snapshot_version or 1
    assert reads.reads == [StreamRead("o-1", first_read, version - first_read + 1)]


async def test_a_snapshot_taken_under_an_older_aggregate_schema_is_ignored() -> None:
    # given: a snapshot at version 6, taken while Order's schema was version 1
    shop = in_memory_shop(frequency=3)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(5)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1, sku="sku-2")))
    taken = await shop.snapshots.repository.latest("o-1")
    assert taken is not None
    assert (taken.version, taken.schema_version) == (6, 1)
    reads = CountingEventStore(shop.event_store)
    # when: the class now at schema version 2 loads the order
    loaded = await shop.snapshot_loader(reads, aggregate_type=OrderV2).load("o-1")
    # then: the stream was replayed from its first event, and the order is right
    assert reads.reads == [StreamRead("o-1", from_version=1, count=7)]
    replayed = await shop.replaying_loader(aggregate_type=OrderV2).load("o-1")
    assert isinstance(loaded, OrderV2)
    assert loaded.model_dump() == replayed.model_dump()


def written_snapshot(**changes: object) -> Snapshot:
    """Return a snapshot of o-1 at version 3 whose state no replay could produce."""
    values: dict[str, object] = {
        "stream_id": "o-1",
        "aggregate_type": "Order",
        "version": 3,
        "schema_version": 1,
        "state": {
            "id": "o-1",
            "version": 3,
            "customer_id": "someone-else",
            "status": "shipped",
            "items": {},
            "prices": {},
            "total": "0",
        },
    }
    return Snapshot(**{**values, **changes})  # type: ignore[arg-type]


async def shop_with_written_snapshot(snapshot: Snapshot) -> SnapshottingShop:
    """Return a shop whose o-1 has 4 events, and ``snapshot`` written into its repository."""
    shop = in_memory_shop(frequency=1000)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(3)))
    await shop.snapshots.repository.save(snapshot, keep=1)
    return shop


async def test_a_snapshot_written_at_the_class_s_schema_version_is_used() -> None:
    # given: the control case of the tests below
    shop = await shop_with_written_snapshot(written_snapshot(schema_version=2))
    reads = CountingEventStore(shop.event_store)
    # when
    loaded = await shop.snapshot_loader(reads, aggregate_type=OrderV2).load("o-1")
    # then
    assert reads.reads == [StreamRead("o-1", from_version=3, count=2)]
    assert (loaded.status, loaded.customer_id) == ("shipped", "someone-else")


async def test_a_snapshot_written_at_schema_version_1_is_not_loaded_into_a_class_at_2() -> None:
    # given
    shop = await shop_with_written_snapshot(written_snapshot(schema_version=1))
    reads = CountingEventStore(shop.event_store)
    # when
    loaded = await shop.snapshot_loader(reads, aggregate_type=OrderV2).load("o-1")
    # then
    assert reads.reads == [StreamRead("o-1", from_version=1, count=4)]
    assert (loaded.status, loaded.customer_id) == ("pending", "cust-1")
    replayed = await shop.replaying_loader(aggregate_type=OrderV2).load("o-1")
    assert loaded.model_dump() == replayed.model_dump()


@pytest.mark.parametrize(
    "state_change",
    [
        {"items": "not a mapping"},
        {"customer_id": None},
        {"total": "a lot"},
    ],
    ids=["wrong-type", "missing-value", "unparseable-decimal"],
)
async def test_a_snapshot_whose_state_no_longer_validates_is_ignored(
    state_change: dict[str, object],
) -> None:
    # given
    state = {**written_snapshot().state, **state_change}
    shop = await shop_with_written_snapshot(written_snapshot(state=state))
    reads = CountingEventStore(shop.event_store)
    # when
    loaded = await shop.snapshot_loader(reads).load("o-1")
    # then
    assert reads.reads == [StreamRead("o-1", from_version=1, count=4)]
    assert loaded.model_dump() == (await shop.replaying_loader().load("o-1")).model_dump()


async def test_a_snapshot_of_another_aggregate_type_is_not_used() -> None:
    # given: a stream whose snapshot claims to be an Invoice
    shop = await shop_with_written_snapshot(written_snapshot(aggregate_type="Invoice"))
    reads = CountingEventStore(shop.event_store)
    # when
    loaded = await shop.snapshot_loader(reads).load("o-1")
    # then
    assert reads.reads == [StreamRead("o-1", from_version=1, count=4)]
    assert loaded.customer_id == "cust-1"


async def test_a_stream_without_events_is_not_found_even_with_a_snapshot_store() -> None:
    shop = in_memory_shop(frequency=1)
    assert await shop.orders.find("o-404") is None


class Renamed(DomainEvent):
    name: str


class Person(EventSourcedAggregateMixin, AggregateRoot):
    """An aggregate whose field has an alias, as camelCase APIs have them."""

    full_name: str = Field(default="", alias="fullName")

    @aggregate_event_handler
    def on_renamed(self, event: Renamed) -> None:
        self.full_name = event.name


async def test_an_aggregate_with_an_aliased_field_loads_from_its_snapshot_as_replay_does() -> None:
    # given: a person renamed once, snapshotted at that version
    event_store = InMemoryEventStore()
    snapshots = SnapshotStore(strategy=EveryNEventsStrategy(frequency=1))
    person = Person(id="p-1")
    person.trigger_event(Renamed(name="Ada"))
    await event_store.append("p-1", person.collect_events(), expected_version=0)
    await snapshots.save(person)
    registry = EventTypeRegistry([Renamed])
    # when
    loaded = await EventSourcedLoader(Person, event_store, registry, snapshot_store=snapshots).load(
        "p-1"
    )
    # then
    replayed = await EventSourcedLoader(Person, event_store, registry).load("p-1")
    assert replayed.full_name == "Ada"
    assert loaded.full_name == "Ada"


# ---------------------------------------------------------------- the spec's example


async def test_the_snapshots_example_loads_order_123_from_its_snapshot_and_later_events() -> None:
    # given: the user's orders, with 120 events, then 4 more, written with snapshots
    session = None  # the in-memory store; the SQL tests pass a SQLAlchemy session factory
    from cqrs_ddd_advanced_core.snapshots import (
        EveryNEventsStrategy,
        SnapshotStore,
    )

    strategy = EveryNEventsStrategy(frequency=100)
    snapshot_store = SnapshotStore(session, strategy)
    shop = snapshotting_shop(InMemoryEventStore(), snapshot_store, InMemoryUnitOfWork)
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
    assert event_store.reads == [StreamRead("order_123", from_version=120, count=5)]
    assert order.model_dump() == (await shop.replaying_loader().load("order_123")).model_dump()
    assert (order.version, order.items) == (124, {"sku-1": 119, "sku-2": 4})


@pytest.mark.parametrize(
    "name", ["SnapshotStore", "EveryNEventsStrategy", "Snapshot", "SnapshotStrategy"]
)
def test_snapshots_are_the_very_same_objects_under_both_paths_the_spec_names(name: str) -> None:
    home = importlib.import_module("cqrs_ddd_advanced_core.snapshots")
    alias = importlib.import_module("cqrs_ddd_advanced_core.event_sourcing.snapshots")
    assert getattr(alias, name) is getattr(home, name)


@pytest.mark.parametrize(
    ("damage", "kind"),
    [
        ({"state": [1, 2]}, "not_an_object"),
        ({"state": None}, "not_an_object"),
        ({"state": "text"}, "not_an_object"),
        ({"state": UnreadableJSON("{oops", "Expecting property name")}, "not_an_object"),
        ({"version": 99}, "past_stream_end"),
    ],
    ids=["list", "null", "string", "unreadable", "past-the-stream"],
)
async def test_a_damaged_snapshot_is_counted_logged_and_replaced_by_a_full_replay(
    damage: dict[str, object], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    shop = await shop_with_written_snapshot(written_snapshot(**damage))
    reads = CountingEventStore(shop.event_store)
    # when
    with caplog.at_level("WARNING", logger="cqrs_ddd_advanced_core.snapshots"):
        loaded = await shop.snapshot_loader(reads).load("o-1")
    # then
    assert loaded.model_dump() == (await shop.replaying_loader().load("o-1")).model_dump()
    assert shop.snapshots.unusable == {kind: 1}
    assert any("replaying the stream" in record.getMessage() for record in caplog.records)

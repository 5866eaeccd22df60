from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedPersistenceOrchestrator,
    EventSourcedRepository,
    aggregate_event_handler,
)
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    ConcurrencyError,
    DomainEvent,
    EventTypeRegistry,
    HandlerRegistry,
    InMemoryUnitOfWork,
    command_scope,
)
from cqrs_ddd_core.exceptions import NoActiveUnitOfWorkError, UnitOfWorkError
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    UnreadableStateError,
)
from cqrs_ddd_persistence_sqlalchemy.schema import aggregates, events, outbox

pytest_plugins = ["sqlalchemy_fixtures"]


class CustomerRegistered(DomainEvent):
    name: str


class Customer(AggregateRoot):
    name: str = ""
    orders: int = 0

    @classmethod
    def register(cls, customer_id: str, name: str) -> Customer:
        customer = cls(id=customer_id, name=name)
        customer.record_event(CustomerRegistered(name=name))
        return customer


class OrderPlaced(DomainEvent):
    customer_id: str


class ItemAdded(DomainEvent):
    sku: str


class Order(EventSourcedAggregateMixin, AggregateRoot):
    customer_id: str = ""
    items: list[str] = []

    @aggregate_event_handler
    def _placed(self, event: OrderPlaced) -> None:
        self.customer_id = event.customer_id

    @aggregate_event_handler
    def _item_added(self, event: ItemAdded) -> None:
        self.items = [*self.items, event.sku]


class RegisterAndOrder(Command):
    customer_id: str
    order_id: str
    fail_after_saving: bool = False


class AddItem(Command):
    order_id: str
    sku: str


class Shop:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.store = SQLAlchemyEventStore(engine)
        self.customers = SQLAlchemyRepository(Customer, engine)
        self.orders = EventSourcedRepository(
            EventSourcedLoader(Order, self.store, EventTypeRegistry([OrderPlaced, ItemAdded]))
        )
        self.registry = HandlerRegistry()
        self.registry.register_command_handler(RegisterAndOrder, self.register_and_order)
        self.registry.register_command_handler(AddItem, self.add_item)
        orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=self.store)
        orchestrator.register_non_event_sourced_type(Customer)
        self.mediator = EventSourcedMediator(
            registry=self.registry,
            uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
            event_persistence_orchestrator=orchestrator,
        )
        self.both_loaded: asyncio.Barrier | None = None

    async def register_and_order(self, command: RegisterAndOrder) -> None:
        await self.customers.save(Customer.register(command.customer_id, "Ada"))
        order = Order(id=command.order_id)
        order.trigger_event(OrderPlaced(customer_id=command.customer_id))
        await self.orders.save(order)
        if command.fail_after_saving:
            raise RuntimeError("the card was declined")

    async def add_item(self, command: AddItem) -> None:
        order = await self.orders.get(command.order_id)
        if self.both_loaded is not None:
            await self.both_loaded.wait()
        order.trigger_event(ItemAdded(sku=command.sku))
        await self.orders.save(order)

    async def count(self, table: object) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_state_events_and_outbox_rows_of_a_command_commit_together(
    engine: AsyncEngine,
) -> None:
    shop = Shop(engine)
    await shop.mediator.send(RegisterAndOrder(customer_id="c-1", order_id="o-1"))
    assert (await shop.customers.get("c-1")).name == "Ada"
    assert (await shop.orders.get("o-1")).customer_id == "c-1"
    assert [await shop.count(t) for t in (aggregates, events, outbox)] == [1, 1, 1]


async def test_a_failing_command_leaves_no_state_no_events_and_no_outbox_rows(
    engine: AsyncEngine,
) -> None:
    shop = Shop(engine)
    with pytest.raises(RuntimeError, match="declined"):
        await shop.mediator.send(
            RegisterAndOrder(customer_id="c-1", order_id="o-1", fail_after_saving=True)
        )
    assert [await shop.count(t) for t in (aggregates, events, outbox)] == [0, 0, 0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_commands_racing_on_one_aggregate_have_one_winner_and_no_partial_write(
    engine: AsyncEngine,
) -> None:
    # given: an order, and two commands that both load it before either saves
    shop = Shop(engine)
    await shop.mediator.send(RegisterAndOrder(customer_id="c-1", order_id="o-1"))
    shop.both_loaded = asyncio.Barrier(2)
    # when
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            shop.mediator.send(AddItem(order_id="o-1", sku="book")),
            shop.mediator.send(AddItem(order_id="o-1", sku="pen")),
            return_exceptions=True,
        ),
        timeout=60,
    )
    # then
    assert sum(isinstance(outcome, ConcurrencyError) for outcome in outcomes) == 1
    assert sum(not isinstance(outcome, BaseException) for outcome in outcomes) == 1
    order = await shop.orders.get("o-1")
    assert order.version == 2
    assert len(order.items) == 1
    stream = await shop.store.load_stream("o-1")
    assert [event.version for event in stream] == [1, 2]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_concurrent_commands_on_sqlite_run_one_after_the_other_and_both_apply(
    engine: AsyncEngine,
) -> None:
    # SQLite has one writer at a time (BEGIN IMMEDIATE): the commands cannot race
    shop = Shop(engine)
    await shop.mediator.send(RegisterAndOrder(customer_id="c-1", order_id="o-1"))
    await asyncio.wait_for(
        asyncio.gather(
            shop.mediator.send(AddItem(order_id="o-1", sku="book")),
            shop.mediator.send(AddItem(order_id="o-1", sku="pen")),
        ),
        timeout=60,
    )
    order = await shop.orders.get("o-1")
    assert sorted(order.items) == ["book", "pen"]
    assert [event.version for event in await shop.store.load_stream("o-1")] == [1, 2, 3]


async def test_a_stale_state_stored_aggregate_is_refused(engine: AsyncEngine) -> None:
    shop = Shop(engine)
    await shop.mediator.send(RegisterAndOrder(customer_id="c-1", order_id="o-1"))
    stale = await shop.customers.get("c-1")
    fresh = await shop.customers.get("c-1")
    registry = HandlerRegistry()

    class Rename(Command):
        name: str
        use_stale: bool

    @registry.command_handler(Rename)
    async def rename(command: Rename) -> None:
        customer = stale if command.use_stale else fresh
        customer.name = command.name
        customer.record_event(CustomerRegistered(name=command.name))
        await shop.customers.save(customer)

    mediator = EventSourcedMediator(
        registry=registry, uow_factory=lambda: SQLAlchemyUnitOfWork(engine)
    )
    await mediator.send(Rename(name="Ada L.", use_stale=False))
    with pytest.raises(ConcurrencyError) as raised:
        await mediator.send(Rename(name="Grace", use_stale=True))
    assert (raised.value.expected_version, raised.value.actual_version) == (1, 2)
    assert (await shop.customers.get("c-1")).name == "Ada L."


class CountOrder(Command):
    customer_id: str


def counting_mediator(
    shop: Shop, *, barrier: asyncio.Barrier | None = None
) -> EventSourcedMediator:
    """A mediator whose one command changes a customer without recording an event."""
    registry = HandlerRegistry()

    @registry.command_handler(CountOrder)
    async def count_order(command: CountOrder) -> None:
        customer = await shop.customers.get(command.customer_id)
        if barrier is not None:
            await barrier.wait()
        customer.orders += 1
        await shop.customers.save(customer)

    return EventSourcedMediator(
        registry=registry, uow_factory=lambda: SQLAlchemyUnitOfWork(shop.engine)
    )


async def test_a_state_change_without_events_is_checked_and_advances_the_version(
    engine: AsyncEngine,
) -> None:
    # given: a customer loaded twice, outside any command
    shop = Shop(engine)
    await shop.mediator.send(RegisterAndOrder(customer_id="c-1", order_id="o-1"))
    stale = await shop.customers.get("c-1")
    registry = HandlerRegistry()

    class Bump(Command):
        use_stale: bool

    @registry.command_handler(Bump)
    async def bump(command: Bump) -> None:
        customer = stale if command.use_stale else await shop.customers.get("c-1")
        customer.orders += 1
        await shop.customers.save(customer)

    mediator = EventSourcedMediator(
        registry=registry, uow_factory=lambda: SQLAlchemyUnitOfWork(engine)
    )
    # when: one change commits, then the stale copy tries to
    await mediator.send(Bump(use_stale=False))
    with pytest.raises(ConcurrencyError) as raised:
        await mediator.send(Bump(use_stale=True))
    # then
    assert (raised.value.expected_version, raised.value.actual_version) == (1, 2)
    customer = await shop.customers.get("c-1")
    assert (customer.orders, customer.version) == (1, 2)
    assert await shop.count(outbox) == 1  # only the registration recorded an event


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_changes_without_events_lose_no_update(engine: AsyncEngine) -> None:
    # given: a customer, and 12 commands that each count one more order on it
    # (at most 15 connections: the pool of 5 with its overflow of 10)
    shop = Shop(engine)
    await shop.mediator.send(RegisterAndOrder(customer_id="c-1", order_id="o-1"))
    writers = 12
    mediator = counting_mediator(shop, barrier=asyncio.Barrier(writers))
    # when: all of them have loaded the customer before any saves
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            *(mediator.send(CountOrder(customer_id="c-1")) for _ in range(writers)),
            return_exceptions=True,
        ),
        timeout=60,
    )
    # then: one wins, every other one is told, and the count is exact
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert all(isinstance(failure, ConcurrencyError) for failure in failures), failures
    succeeded = writers - len(failures)
    assert succeeded == 1
    customer = await shop.customers.get("c-1")
    assert (customer.orders, customer.version) == (succeeded, 1 + succeeded)


async def test_a_store_refuses_to_write_apart_from_a_command_it_cannot_join(
    engine: AsyncEngine,
) -> None:
    # given: a command whose unit of work is an in-memory one
    shop = Shop(engine)
    order = Order(id="o-1")
    order.trigger_event(OrderPlaced(customer_id="c-1"))
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            # when / then: the SQL writes would commit on their own, so they are refused
            with pytest.raises(UnitOfWorkError, match="append to stream 'o-1'"):
                await shop.store.append("o-1", order.pending_events, expected_version=0)
            with pytest.raises(UnitOfWorkError, match="save Customer 'c-1'"):
                await shop.customers.save(Customer.register("c-1", "Ada"))
    assert [await shop.count(t) for t in (aggregates, events, outbox)] == [0, 0, 0]


async def test_a_state_stored_save_outside_a_command_is_refused(engine: AsyncEngine) -> None:
    shop = Shop(engine)
    with pytest.raises(NoActiveUnitOfWorkError):
        await shop.customers.save(Customer.register("c-1", "Ada"))
    assert await shop.count(aggregates) == 0


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("[1, 2]", "not a JSON object"),
        ('{"name": ["not", "a", "name"]}', "no longer fits the class"),
        ("{broken", "not valid JSON"),
    ],
    ids=["list", "invalid-state", "not-json"],
)
async def test_a_damaged_state_row_is_a_typed_error_naming_the_aggregate(
    engine: AsyncEngine, state: str, reason: str
) -> None:
    # given: a customer whose row was then edited in the database
    shop = Shop(engine)
    await shop.mediator.send(RegisterAndOrder(customer_id="c-1", order_id="o-1"))
    cast = "CAST(:state AS json)" if engine.dialect.name == "postgresql" else ":state"
    statement = text(f"UPDATE cqrs_aggregates SET state = {cast}")  # noqa: S608 - fixed text
    if state == "{broken" and engine.dialect.name == "postgresql":
        # PostgreSQL's json column refuses such damage in the first place
        with pytest.raises(DBAPIError):
            async with engine.begin() as connection:
                await connection.execute(statement, {"state": state})
        return
    async with engine.begin() as connection:
        await connection.execute(statement, {"state": state})
    # when / then
    with pytest.raises(UnreadableStateError, match=reason) as raised:
        await shop.customers.get("c-1")
    assert (raised.value.aggregate_type, raised.value.aggregate_id) == ("Customer", "c-1")

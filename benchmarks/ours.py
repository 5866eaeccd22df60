"""Our side: the path a user of cqrs-ddd takes, from command to event store and back.

An ``Account`` aggregate (``EventSourcedAggregateMixin`` with
``@aggregate_event_handler`` methods) is changed by commands sent through an
``EventSourcedMediator`` whose unit of work is a ``SQLAlchemyUnitOfWork``; the
handlers load it through ``EventSourcedRepository(EventSourcedLoader(...))``.
Global reads page through ``SQLAlchemyEventStore.read_all`` and decode with
``EventTypeRegistry.from_stored``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.timing import Sample, Stopwatch
from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedPersistenceOrchestrator,
    EventSourcedRepository,
    aggregate_event_handler,
)
from cqrs_ddd_core import AggregateRoot, Command, DomainEvent, EventTypeRegistry, HandlerRegistry
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)

# ---------------------------------------------------------------- the domain


class AccountOpened(DomainEvent):
    """An account was opened."""

    owner: str
    currency: str


class MoneyDeposited(DomainEvent):
    """Money was paid into an account."""

    amount: int
    currency: str
    note: str


class Account(EventSourcedAggregateMixin, AggregateRoot):
    """A bank account whose state is rebuilt from its events."""

    owner: str = ""
    currency: str = ""
    balance: int = 0

    @classmethod
    def open(cls, owner: str, currency: str) -> Account:
        """Open an account."""
        account = cls()
        account.trigger_event(AccountOpened(owner=owner, currency=currency))
        return account

    def deposit(self, amount: int, note: str) -> None:
        """Pay ``amount`` in."""
        self.trigger_event(MoneyDeposited(amount=amount, currency=self.currency, note=note))

    @aggregate_event_handler
    def _on_opened(self, event: AccountOpened) -> None:
        self.owner = event.owner
        self.currency = event.currency

    @aggregate_event_handler
    def _on_deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount


class OpenAccount(Command):
    """Open an account, paying ``deposits`` amounts in at once (0: just open it)."""

    owner: str
    deposits: int = 0


class Deposit(Command):
    """Pay money into an existing account, ``times`` times in one command."""

    account_id: str
    amount: int
    times: int = 1


# ---------------------------------------------------------------- the application


class OurBank:
    """The wired application on one engine: mediator, repository, store and registry."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.event_store = SQLAlchemyEventStore(engine)
        self.event_registry = EventTypeRegistry([AccountOpened, MoneyDeposited])
        self.accounts = EventSourcedRepository(
            EventSourcedLoader(Account, self.event_store, self.event_registry)
        )
        registry = HandlerRegistry()
        registry.register_command_handler(OpenAccount, self._open_account)
        registry.register_command_handler(Deposit, self._deposit)
        self.mediator = EventSourcedMediator(
            registry=registry,
            uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
            event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(
                default_event_store=self.event_store
            ),
        )

    @classmethod
    async def build(cls, url: str, **engine_options: Any) -> OurBank:
        """Build the engine, bring the schema up to date, and wire the application."""
        engine = create_engine(url, **engine_options)
        await upgrade_schema(engine)
        return cls(engine)

    @classmethod
    def connect(cls, url: str, **engine_options: Any) -> OurBank:
        """Wire the application on a database whose schema is already up to date."""
        return cls(create_engine(url, **engine_options))

    async def close(self) -> None:
        """Close the engine's connections."""
        await self.engine.dispose()

    async def _open_account(self, command: OpenAccount) -> str:
        account = Account.open(command.owner, "EUR")
        for number in range(command.deposits):
            account.deposit(number, "opening")
        await self.accounts.save(account)
        return account.id

    async def _deposit(self, command: Deposit) -> None:
        account = await self.accounts.get(command.account_id)
        for _ in range(command.times):
            account.deposit(command.amount, "salary")
        await self.accounts.save(account)

    # ------------------------------------------------------------ operations

    async def open_account(self, owner: str = "ada", deposits: int = 0) -> str:
        """Send ``OpenAccount``; return the new account's id."""
        response = await self.mediator.send(OpenAccount(owner=owner, deposits=deposits))
        account_id: str = response.result
        return account_id

    async def deposit(self, account_id: str, amount: int = 1, times: int = 1) -> None:
        """Send ``Deposit``."""
        await self.mediator.send(Deposit(account_id=account_id, amount=amount, times=times))

    async def build_stream(self, length: int, batch: int) -> str:
        """Make an account with ``length`` events, ``batch`` at most per command."""
        account_id = await self.open_account(deposits=min(length, batch) - 1)
        remaining = length - min(length, batch)
        while remaining > 0:
            await self.deposit(account_id, times=min(remaining, batch))
            remaining -= min(remaining, batch)
        return account_id

    async def current_position(self) -> int:
        """Return the position of the last event in the store."""
        return await self.event_store.current_position()

    # ------------------------------------------------------------ workloads

    async def creates(self, count: int) -> Sample:
        """(a) Send ``count`` commands, each creating an account with one event."""
        with Stopwatch() as watch:
            for _ in range(count):
                await self.open_account()
        return Sample(count, watch.seconds)

    async def updates(self, account_ids: list[str], count: int) -> Sample:
        """(b) Send ``count`` commands, each loading, changing and saving an account."""
        with Stopwatch() as watch:
            for number in range(count):
                await self.deposit(account_ids[number % len(account_ids)])
        return Sample(count, watch.seconds)

    async def batch_creates(self, count: int, batch: int) -> Sample:
        """Send ``count`` commands, each creating an account with ``batch`` events."""
        with Stopwatch() as watch:
            for _ in range(count):
                await self.open_account(deposits=batch - 1)
        return Sample(count * batch, watch.seconds)

    async def loads(self, account_id: str, count: int) -> Sample:
        """(c) Load the account ``count`` times through the repository."""
        with Stopwatch() as watch:
            for _ in range(count):
                await self.accounts.get(account_id)
        return Sample(count, watch.seconds)

    async def stream_reads(self, account_id: str, count: int) -> Sample:
        """(c, rows only) Read the account's stored events ``count`` times, undecoded."""
        with Stopwatch() as watch:
            for _ in range(count):
                await self.event_store.load_stream(account_id)
        return Sample(count, watch.seconds)

    async def global_read(
        self, after_position: int, count: int, page_size: int, *, decode: bool
    ) -> Sample:
        """(d) Read ``count`` events in global order after ``after_position``, a page at a time."""
        read = 0
        position = after_position
        with Stopwatch() as watch:
            while read < count:
                page = await self.event_store.read_all(
                    after_position=position, limit=min(page_size, count - read)
                )
                if not page:
                    break
                if decode:
                    for stored in page:
                        self.event_registry.from_stored(stored)
                read += len(page)
                position = page[-1].position
        return Sample(read, watch.seconds)

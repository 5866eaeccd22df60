"""R13: retries and back-off classify errors correctly.

Commands go through the mediator with a ``RetryBehavior`` (max attempts 5, that is
``max_retries=4``; exponential back-off, capped, with jitter), its ``sleep``
injected so that nothing really waits and every pause is recorded per command:

- transient failures (k in 1..4 failures, then success) succeed with exactly
  k + 1 attempts;
- permanent domain errors and deserialization errors get exactly 1 attempt and
  go to the dead-letter store with their reason. The framework has no
  dead-letter store yet: the test's sender records each failed command, its
  error and the attempts attached to it, as a dead-letter store would;
- attempts never exceed the cap; the recorded pauses follow the schedule
  (a distribution check per retry number, generous tolerance);
- concurrency conflicts are retried by loading the aggregate again (a new
  expected version each attempt), never by re-sending the stale write: checked
  with ``RetryBehavior`` and with a ``ResilientCommandHandler``, in memory and
  on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter as Tally
from collections import defaultdict
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

import pytest
from scenario_support import failure_note
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.cqrs import ResilientCommandHandler, RetryBehavior, attempts_of
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    ConcurrencyError,
    CqrsDddError,
    DomainEvent,
    EventDeserializationError,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    Mediator,
)
from cqrs_ddd_core.exceptions import FieldIssue
from cqrs_ddd_core.ports.repository import Repository
from cqrs_ddd_core.ports.unit_of_work import UnitOfWorkFactory
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyRepository, SQLAlchemyUnitOfWork

MAX_ATTEMPTS = 5
RETRY_DELAY = 0.1
MAX_DELAY = 0.5
JITTER = 0.2


@dataclass(frozen=True)
class Load:
    """How many commands of each kind one run sends."""

    transient: int
    permanent: int
    deserialization: int


CI = Load(transient=1_000, permanent=100, deserialization=100)
SOAK = Load(transient=10_000, permanent=1_000, deserialization=1_000)


class TransientError(Exception):
    """A failure that goes away by itself."""


class OrderRejectedError(Exception):
    """A permanent domain error: the order breaks a business rule."""


class Work(Command):
    kind: Literal["transient", "permanent", "deserialization"]
    failures: int = 0


@dataclass(frozen=True)
class DeadLetter:
    """A command that failed for good, as a dead-letter store would keep it."""

    command_id: UUID
    kind: str
    error_type: str
    reason: str
    attempts: int


@dataclass
class Run:
    """What one run observed: attempts per command, pauses per command, dead letters."""

    attempts: Tally[UUID] = field(default_factory=Tally)
    pauses: dict[UUID, list[float]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    succeeded: set[UUID] = field(default_factory=set)


_pauses: ContextVar[list[float]] = ContextVar("r13_pauses")


async def record_pause(seconds: float) -> None:
    """The injected sleep: remember the pause for the command being sent, wait for nothing."""
    _pauses.get().append(seconds)


def work_mediator(run: Run, seed: int) -> Mediator:
    registry = HandlerRegistry()

    @registry.command_handler(Work)
    async def work(command: Work) -> str:
        run.attempts[command.command_id] += 1
        attempt = run.attempts[command.command_id]
        if command.kind == "permanent":
            raise OrderRejectedError(f"order {command.command_id} exceeds the credit limit")
        if command.kind == "deserialization":
            raise EventDeserializationError(
                "OrderPlaced", [FieldIssue("customer_id", "missing")], stream_id="o-1", version=3
            )
        if attempt <= command.failures:
            raise TransientError(f"connection reset (attempt {attempt})")
        return "done"

    retry = RetryBehavior(
        max_retries=MAX_ATTEMPTS - 1,
        retry_delay=RETRY_DELAY,
        max_delay=MAX_DELAY,
        jitter=JITTER,
        # deliberately broad: every framework error counts as transient here, so only the
        # classification keeps a deserialization error (a CqrsDddError) from being retried
        retry_on=(TransientError, ConcurrencyError, CqrsDddError),
        sleep=record_pause,
        rng=random.Random(seed),
    )
    return Mediator(registry=registry, uow_factory=InMemoryUnitOfWork, behaviors=[retry])


async def send_recording(mediator: Mediator, run: Run, command: Work) -> None:
    """Send ``command``; a failure goes to the dead letters with its reason and attempts."""
    pauses: list[float] = []
    _pauses.set(pauses)
    run.pauses[command.command_id] = pauses
    try:
        await mediator.send(command)
    except Exception as error:  # noqa: BLE001 - the sender's outer loop: dead-letter and go on
        run.dead_letters.append(
            DeadLetter(
                command.command_id,
                command.kind,
                type(error).__name__,
                str(error),
                len(attempts_of(error)),
            )
        )
    else:
        run.succeeded.add(command.command_id)


def commands_for(load: Load, rng: random.Random) -> list[Work]:
    commands = [Work(kind="transient", failures=rng.randint(1, 4)) for _ in range(load.transient)]
    commands += [Work(kind="permanent") for _ in range(load.permanent)]
    commands += [Work(kind="deserialization") for _ in range(load.deserialization)]
    rng.shuffle(commands)
    return commands


def nominal(retry: int) -> float:
    return min(RETRY_DELAY * 2.0 ** (retry - 1), MAX_DELAY)


@pytest.mark.parametrize(
    "load", [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)]
)
async def test_errors_are_retried_or_dead_lettered_by_their_class(seed: int, load: Load) -> None:
    # given
    note = failure_note(seed)
    run = Run()
    mediator = work_mediator(run, seed)
    commands = commands_for(load, random.Random(seed))
    # when: sent 50 at a time, each in its own task (and so with its own pause record)
    async with asyncio.timeout(120):
        for start in range(0, len(commands), 50):
            async with asyncio.TaskGroup() as group:
                for command in commands[start : start + 50]:
                    group.create_task(send_recording(mediator, run, command))
    # then: transient commands succeed with exactly k + 1 attempts
    transient = [c for c in commands if c.kind == "transient"]
    wrong = [c for c in transient if run.attempts[c.command_id] != c.failures + 1]
    assert not wrong, f"{len(wrong)} transient commands with another attempt count {note}"
    assert {c.command_id for c in transient} == run.succeeded, note
    # and permanent and deserialization errors: one attempt, dead-lettered with their reason
    failed = [c for c in commands if c.kind != "transient"]
    assert all(run.attempts[c.command_id] == 1 for c in failed), note
    assert all(run.pauses[c.command_id] == [] for c in failed), note
    letters = {letter.command_id: letter for letter in run.dead_letters}
    assert set(letters) == {c.command_id for c in failed}, note
    assert len(run.dead_letters) == load.permanent + load.deserialization, note
    for command in failed:
        letter = letters[command.command_id]
        assert letter.attempts == 1, note
        if command.kind == "permanent":
            assert letter.error_type == "OrderRejectedError", note
            assert "exceeds the credit limit" in letter.reason, note
        else:
            assert letter.error_type == "EventDeserializationError", note
            assert "customer_id" in letter.reason, note
    # and attempts never exceed the cap
    assert max(run.attempts.values()) <= MAX_ATTEMPTS, note
    # and each retry's pause follows the schedule: exponential, capped, jitter within its band
    by_retry: dict[int, list[float]] = defaultdict(list)
    for command in transient:
        pauses = run.pauses[command.command_id]
        assert len(pauses) == command.failures, note
        for retry, pause in enumerate(pauses, start=1):
            by_retry[retry].append(pause)
    check_schedule(by_retry, note)


def check_schedule(by_retry: dict[int, list[float]], note: str) -> None:
    """Check the pauses of each retry number against the configured schedule."""
    assert sorted(by_retry) == [1, 2, 3, 4], note
    for retry, pauses in by_retry.items():
        centre = nominal(retry)
        low, high = centre * (1 - JITTER), min(centre * (1 + JITTER), MAX_DELAY)
        assert all(low - 1e-9 <= pause <= high + 1e-9 for pause in pauses), (retry, note)
        if centre * (1 + JITTER) <= MAX_DELAY:
            # uncapped: centred on the nominal delay, both halves of the band used
            mean = sum(pauses) / len(pauses)
            assert abs(mean - centre) < 0.1 * centre * JITTER + 0.02 * centre, (retry, note)
            below = sum(pause < centre for pause in pauses) / len(pauses)
            assert 0.3 < below < 0.7, (retry, below, note)
        else:
            # capped: never above the cap, and the cap is reached
            assert max(pauses) == pytest.approx(MAX_DELAY), (retry, note)
    assert nominal(4) == MAX_DELAY  # the schedule reaches the cap within the attempts


# ---------------------------------------------------------------- conflicts

WRITERS = 10
"""Commands racing on one aggregate per round: a loser conflicts at most WRITERS - 1 times."""


class Reserved(DomainEvent):
    pass


class Stock(AggregateRoot):
    """A state-stored aggregate whose reservations the racing commands count."""

    reserved: int = 0

    def reserve(self) -> None:
        self.reserved += 1
        self.record_event(Reserved())


class Reserve(Command):
    stock_id: str


@dataclass
class Saves:
    """The expected version each attempt of each command saved with, in attempt order."""

    expected: dict[UUID, list[int]] = field(default_factory=lambda: defaultdict(list))


class Gate:
    """Holds the first attempt of ``parties`` commands until all loaded: a guaranteed race."""

    def __init__(self, parties: int) -> None:
        self.barrier = asyncio.Barrier(parties)
        self.passed: set[UUID] = set()

    async def wait(self, command: Command) -> None:
        if command.command_id in self.passed:
            return
        self.passed.add(command.command_id)
        await asyncio.wait_for(self.barrier.wait(), timeout=30)


async def reserve_once(
    repository: Repository[Stock], gate: Gate, saves: Saves, command: Reserve
) -> None:
    stock = await repository.get(command.stock_id)
    await gate.wait(command)
    stock.reserve()
    saves.expected[command.command_id].append(stock.persisted_version)
    await repository.save(stock)


class ReserveHandler(ResilientCommandHandler[Reserve]):
    """Reserves through the resilient handler: a conflict runs the command again."""

    max_retries = WRITERS

    def __init__(self, repo: Repository[Stock], gate: Gate, saves: Saves) -> None:
        self.repo = repo
        self.gate = gate
        self.saves = saves
        self.retry_sleep = record_pause

    async def _handle_internal(self, command: Reserve) -> None:
        await reserve_once(self.repo, self.gate, self.saves, command)


def racing_mediator(
    path: str, repository: Repository[Stock], uow_factory: UnitOfWorkFactory, saves: Saves
) -> Mediator:
    """Return a mediator whose ``Reserve`` commands race (a fresh gate) and retry per ``path``."""
    gate, registry = Gate(WRITERS), HandlerRegistry()
    if path == "resilient_handler":
        registry.register_command_handler(Reserve, ReserveHandler(repository, gate, saves))
        return Mediator(registry=registry, uow_factory=uow_factory)

    @registry.command_handler(Reserve)
    async def reserve(command: Reserve) -> None:
        await reserve_once(repository, gate, saves, command)

    retry = RetryBehavior(
        max_retries=WRITERS, retry_delay=0.01, retry_on=(ConcurrencyError,), sleep=record_pause
    )
    return Mediator(registry=registry, uow_factory=uow_factory, behaviors=[retry])


StockStore = tuple[Repository[Stock], UnitOfWorkFactory]


@pytest.fixture(params=["memory", "postgresql"])
def stock_store(request: pytest.FixtureRequest) -> StockStore:
    """The stock repository and its unit-of-work factory, in memory and on PostgreSQL."""
    if request.param == "memory":
        return InMemoryRepository(Stock), InMemoryUnitOfWork
    engine: AsyncEngine = request.getfixturevalue("pg_engine")
    return SQLAlchemyRepository(Stock, engine), lambda: SQLAlchemyUnitOfWork(engine)


@pytest.mark.parametrize("path", ["retry_behavior", "resilient_handler"])
async def test_conflicts_are_retried_by_reloading_never_by_resending_the_stale_write(
    stock_store: StockStore, seed: int, path: str
) -> None:
    # given: rounds of ten commands that all load the stock at one version before any saves
    note = failure_note(seed)
    rounds = 3
    repository, uow_factory = stock_store
    await create_stock(repository, uow_factory)
    saves = Saves()
    _pauses.set([])
    # when
    async with asyncio.timeout(120):
        for _ in range(rounds):
            mediator = racing_mediator(path, repository, uow_factory, saves)
            await asyncio.gather(*(mediator.send(Reserve(stock_id="s-1")) for _ in range(WRITERS)))
    # then: no reservation lost, and the conflicts really happened
    stock = await repository.get("s-1")
    assert stock.reserved == WRITERS * rounds, note
    assert stock.version == WRITERS * rounds + 1, note
    assert any(len(expected) > 1 for expected in saves.expected.values()), (
        f"no command ever conflicted: the race did not happen {note}"
    )
    # and each retry saved against a newer version than the refused attempt: reloaded, not resent
    for expected in saves.expected.values():
        assert all(later > earlier for earlier, later in itertools.pairwise(expected)), note
        assert len(expected) <= WRITERS, note
    # and the successful saves took each version once (one winner per version)
    winners = sorted(expected[-1] for expected in saves.expected.values())
    assert winners == list(range(1, WRITERS * rounds + 1)), note


async def create_stock(repository: Repository[Stock], uow_factory: UnitOfWorkFactory) -> None:
    """Store the stock ``s-1`` at version 1."""

    class CreateStock(Command):
        pass

    registry = HandlerRegistry()

    @registry.command_handler(CreateStock)
    async def create(command: CreateStock) -> None:
        stock = Stock(id="s-1")
        stock.record_event(Reserved())
        stock.reserved = 0
        await repository.save(stock)

    await Mediator(registry=registry, uow_factory=uow_factory).send(CreateStock())

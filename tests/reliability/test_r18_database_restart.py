"""R18: the database goes away mid-flight; nothing committed is lost, everyone reconnects.

PostgreSQL only. Writers (half appending on their own, half through commands in a
unit of work) and a projection worker run while every session of the
application is ended, 3 times at CI size with ``pg_terminate_backend`` (what a
restart or failover does to the pool), and at soak size by restarting the server
itself in immediate mode (crash recovery) 3 times. A writer whose call fails with
the typed ``DatabaseUnavailableError`` sends the same events again (same ids,
same expected version); no other error may reach it.

Pass: every event a writer sent is stored exactly once; the projection reaches
the head (liveness deadline 60 s) with every event applied once and no dead
letter; every kill actually ended sessions. A process crash and an immediate
shutdown are not a power loss: fsync and the disk's cache are not exercised here.

Before this scenario, the first ``load_stream``, ``append`` or
``current_position`` after the pool's sessions were ended raised
``PersistenceError``; the deterministic cases at the end pin that.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from harness.pg_faults import terminate_backends
from projection_support import (
    BalanceProjector,
    Deposited,
    ProjectionProbe,
    balance_table,
    create_tables,
)
from scenario_support import failure_note
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionWorker, ProjectorRegistry
from cqrs_ddd_core import Command, HandlerRegistry, Mediator
from cqrs_ddd_persistence_sqlalchemy import (
    DatabaseUnavailableError,
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_testing import PostgresDatabase

APPLICATION = "cqrs-ddd-r18"
"""The ``application_name`` of every session the scenario's engine opens."""
NAMESPACE = uuid.UUID("6f1c5d1e-0b9a-4c53-9a55-2f7d1c3e8b18")
LIVENESS_SECONDS = 60.0
MAX_SENDS = 50
"""A writer gives one batch at most this many sends before the scenario fails."""


@dataclass(frozen=True, slots=True)
class Size:
    writers: int
    batches_per_writer: int
    kills: int


CI = Size(writers=4, batches_per_writer=60, kills=3)
SOAK = Size(writers=8, batches_per_writer=600, kills=3)


@dataclass
class Tally:
    sent: set[uuid.UUID] = field(default_factory=set)
    unavailable: int = 0
    other_errors: list[BaseException] = field(default_factory=list)


class AppendDeposits(Command):
    stream_id: str
    expected_version: int
    deposits: list[Deposited]


@pytest_asyncio.fixture
async def engine(postgres_database: PostgresDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_database.sqlalchemy_url, application_name=APPLICATION)
    await upgrade_schema(engine)
    yield engine
    await engine.dispose()


def command_mediator(store: SQLAlchemyEventStore, engine: AsyncEngine) -> Mediator:
    registry = HandlerRegistry()

    @registry.command_handler(AppendDeposits)
    async def append(command: AppendDeposits) -> None:
        await store.append(
            command.stream_id, command.deposits, expected_version=command.expected_version
        )

    return Mediator(registry=registry, uow_factory=lambda: SQLAlchemyUnitOfWork(engine))


async def send_until_stored(send: Callable[[], Awaitable[object]], tally: Tally) -> None:
    """Send one batch; after a lost connection send the very same batch again."""
    for attempt in range(MAX_SENDS):
        try:
            await send()
        except DatabaseUnavailableError:
            tally.unavailable += 1
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))  # a restart takes seconds
            continue
        return
    raise AssertionError(f"a batch could not be stored in {MAX_SENDS} sends")


async def write(
    writer: int,
    *,
    size: Size,
    store: SQLAlchemyEventStore,
    mediator: Mediator,
    tally: Tally,
    rng: random.Random,
) -> None:
    """Append ``size.batches_per_writer`` batches to the writer's own streams."""
    versions: dict[str, int] = {}
    for batch_number in range(size.batches_per_writer):
        stream_id = f"w{writer}-s{rng.randrange(5)}"
        deposits = [
            Deposited(
                amount=rng.randint(1, 1_000),
                event_id=uuid.uuid5(NAMESPACE, f"{writer}/{batch_number}/{index}"),
            )
            for index in range(rng.randint(1, 3))
        ]
        expected = versions.get(stream_id, 0)
        if writer % 2:
            command = AppendDeposits(
                stream_id=stream_id, expected_version=expected, deposits=deposits
            )
            send: Callable[[], Awaitable[object]] = lambda c=command: mediator.send(c)  # noqa: E731
        else:
            send = lambda s=stream_id, d=deposits, v=expected: store.append(  # noqa: E731
                s, d, expected_version=v
            )
        try:
            await send_until_stored(send, tally)
        except Exception as error:  # noqa: BLE001 - any other error is the finding
            tally.other_errors.append(error)
            return
        versions[stream_id] = expected + len(deposits)
        tally.sent.update(deposit.event_id for deposit in deposits)
        await asyncio.sleep(rng.uniform(0, 0.01))


async def end_every_session(dsn: str) -> int:
    """End the scenario's sessions, as a failover would; return how many ended."""
    return await terminate_backends(dsn, APPLICATION)


def cluster_version() -> str:
    """Return the version of the machine's one PostgreSQL cluster (``/etc/postgresql/<v>``)."""
    return sorted(path.name for path in Path("/etc/postgresql").iterdir())[-1]


async def run_quietly(*arguments: str) -> int:
    """Run a command to its end (at most 120 s) and return its exit status."""
    process = await asyncio.create_subprocess_exec(
        *arguments, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), timeout=120)


async def restart_the_server(dsn: str) -> int:
    """Restart PostgreSQL in immediate mode (crash recovery), then wait until it answers."""
    control = shutil.which("pg_ctlcluster") or "pg_ctlcluster"
    version = await asyncio.to_thread(cluster_version)
    status = await run_quietly(
        control, "--skip-systemctl-redirect", version, "main", "restart", "-m", "immediate"
    )
    assert status == 0, f"pg_ctlcluster restart exited with {status}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await run_quietly(shutil.which("pg_isready") or "pg_isready", "-q") == 0:
            return 1
        await asyncio.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back within 60 s")


async def run_scenario(
    engine: AsyncEngine, dsn: str, size: Size, fault: Callable[[str], Awaitable[int]]
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    note = failure_note(seed)
    table = balance_table("r18_balances")
    await create_tables(engine, table)
    store = SQLAlchemyEventStore(engine)
    worker = ProjectionWorker(
        ProjectorRegistry([BalanceProjector("r18_balances", engine, table=table)]),
        store,
        batch_size=50,
        poll_interval=0.2,
        lease_ttl=5.0,
        retry_backoff=0.05,
        max_backoff=1.0,
    )
    mediator = command_mediator(store, engine)
    tally = Tally()
    ended: list[int] = []

    async def faults() -> None:
        for _ in range(size.kills):
            await asyncio.sleep(rng.uniform(0.3, 0.8))
            ended.append(await fault(dsn))

    await worker.start()
    try:
        await asyncio.wait_for(
            asyncio.gather(
                faults(),
                *(
                    write(
                        i,
                        size=size,
                        store=store,
                        mediator=mediator,
                        tally=tally,
                        rng=random.Random(rng.random()),
                    )
                    for i in range(size.writers)
                ),
            ),
            timeout=600,
        )
        assert tally.other_errors == [], f"{tally.other_errors!r} {note}"
        probe = ProjectionProbe(engine)
        head = await probe.head()
        deadline = time.monotonic() + LIVENESS_SECONDS
        while (await probe.projection("r18_balances")).position < head:
            assert time.monotonic() < deadline, f"the projection did not reach {head} {note}"
            await asyncio.sleep(0.1)
    finally:
        await worker.stop(grace=10)
    # then: the faults happened, and nothing was lost, doubled or misapplied
    assert len(ended) == size.kills, f"sessions ended: {ended} {note}"
    assert all(ended), f"sessions ended: {ended} {note}"
    stored = [event.event_id for event in await store.read_all(limit=1_000_000)]
    assert len(stored) == len(set(stored)), f"an event is stored twice {note}"
    assert set(stored) == tally.sent, f"lost or unexpected events {note}"
    assert await probe.mismatches(table) == {}, note
    assert await probe.dead_letter_count("r18_balances") == 0, note


async def test_r18_ending_every_session_under_load_loses_nothing(
    engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    await run_scenario(engine, postgres_database.dsn, CI, end_every_session)


@pytest.mark.soak
async def test_r18_restarting_the_server_under_load_loses_nothing_soak(
    engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    await run_scenario(engine, postgres_database.dsn, SOAK, restart_the_server)


# ---------------------------------------------------------------- the first call after


async def warm_pool(store: SQLAlchemyEventStore, connections: int) -> None:
    """Leave ``connections`` connections in the pool, each used once."""
    await asyncio.gather(*(store.current_position() for _ in range(connections)))


@pytest.mark.parametrize("call", ["load_stream", "append", "current_position", "read_all"])
async def test_the_first_call_after_every_pooled_session_ended_works(
    engine: AsyncEngine, postgres_database: PostgresDatabase, call: str
) -> None:
    # given: a pool of connections whose sessions the server then ends
    store = SQLAlchemyEventStore(engine)
    await store.append("s-1", [Deposited(amount=1)], expected_version=0)
    await warm_pool(store, 5)
    assert await end_every_session(postgres_database.dsn) >= 1
    # when
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "load_stream": lambda: store.load_stream("s-1"),
        "append": lambda: store.append("s-1", [Deposited(amount=2)], expected_version=1),
        "current_position": store.current_position,
        "read_all": store.read_all,
    }
    result = await calls[call]()
    # then
    assert result
    assert [event.version for event in await store.load_stream("s-1")][:1] == [1]


async def test_a_command_whose_connection_is_lost_fails_typed_and_the_next_one_works(
    engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: a command that loses its connection half-way
    store = SQLAlchemyEventStore(engine)
    mediator = command_mediator(store, engine)
    registry = mediator.registry
    dsn = postgres_database.dsn

    class Interrupted(Command):
        pass

    @registry.command_handler(Interrupted)
    async def interrupted(command: Interrupted) -> None:
        await store.append("s-1", [Deposited(amount=1)], expected_version=0)
        await end_every_session(dsn)
        await store.load_stream("s-1")

    # when / then: typed, and nothing of it committed
    with pytest.raises(DatabaseUnavailableError):
        await mediator.send(Interrupted())
    assert await store.load_stream("s-1") == []
    # and the next command, on a fresh connection, commits
    await mediator.send(
        AppendDeposits(stream_id="s-1", expected_version=0, deposits=[Deposited(amount=3)])
    )
    assert [event.version for event in await store.load_stream("s-1")] == [1]

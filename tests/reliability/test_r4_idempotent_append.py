"""R4: an append retried after an ambiguous commit is stored exactly once.

The caller of an append that committed but never heard so (a broken connection
right after COMMIT) retries the same batch: same event ids, same expected version.
The store must answer the retry with the events as first stored, original
positions included, and never store them twice. Two ways to make the commit
ambiguous: the failpoint ``event_store.after_commit_before_return`` (the store
calls it right after committing its own transaction) raising on 10% of appends,
and, as the randomized twin, a TCP proxy that resets the PostgreSQL connection
right after forwarding ``COMMIT`` on 5% of appends. A lost connection is one the
store itself answers: it sends such an append once more on a fresh connection,
so with the proxy the retry is the store's own and the caller sees success.
Crafted cases pin the edges:
a retry that overlaps a stored batch only in part is refused, and the same event
id is welcome in another stream (idempotence is per stream).

The store has no "any version" append, so RELIABILITY.md's "same with any-version
appends" case does not apply.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from harness.checker import check_delivery, outcomes_from_history
from harness.history import HistoryLog, read_history
from harness.proxy import FaultProxy
from scenario_support import Appended, failure_note, keys
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core import CqrsDddError
from cqrs_ddd_core.exceptions import DuplicateEventIdError
from cqrs_ddd_core.failpoints import (
    FAILPOINTS_SEED_VARIABLE,
    FAILPOINTS_VARIABLE,
    FailpointError,
    failpoint_hits,
    reset_failpoints,
)
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_persistence_sqlalchemy import PersistenceError, SQLAlchemyEventStore, create_engine
from cqrs_ddd_testing import PostgresDatabase

pytest_plugins = ["sqlalchemy_fixtures"]

AFTER_COMMIT = "event_store.after_commit_before_return"
MAX_ATTEMPTS = 50
"""How often one batch is retried before the test gives up on it."""


@dataclass(frozen=True, slots=True)
class Retries:
    """The size of a run: how many appends, and on what share of them the fault strikes."""

    appends: int
    fault_percent: float
    streams: int = 20
    max_batch: int = 3


FAILPOINT_CI = Retries(appends=500, fault_percent=10)
FAILPOINT_SOAK = Retries(appends=5_000, fault_percent=10)
PROXY_CI = Retries(appends=500, fault_percent=5)
PROXY_SOAK = Retries(appends=5_000, fault_percent=5)


@dataclass
class RetryTally:
    """What the caller saw: ambiguous failures, other errors, and what the retries returned."""

    ambiguous: int = 0
    leaked: list[BaseException] = field(default_factory=list)
    retried_results: list[list[StoredEvent]] = field(default_factory=list)
    first_results: list[list[StoredEvent]] = field(default_factory=list)


async def append_until_acknowledged(
    store: SQLAlchemyEventStore,
    stream: str,
    batch: list[Appended],
    expected_version: int,
    *,
    ambiguous: type[CqrsDddError],
    log: HistoryLog,
    tally: RetryTally,
) -> list[StoredEvent]:
    """Append ``batch``; on an ``ambiguous`` error, retry the very same append.

    Any other error is kept in ``tally.leaked`` (a raw driver error there is a bug)
    and retried as well, so that one finding does not hide the others.
    """
    ids = keys(batch)
    for attempt in range(MAX_ATTEMPTS):
        for key in ids:
            log.record("append", key, "invoke", attempt=attempt)
        try:
            stored = await store.append(stream, batch, expected_version=expected_version)
        except ambiguous as error:
            tally.ambiguous += 1
            for key in ids:
                log.record("append", key, "info", error=type(error).__name__)
            continue
        except Exception as error:  # noqa: BLE001 - kept and reported by the test
            tally.leaked.append(error)
            for key in ids:
                log.record("append", key, "info", error=type(error).__name__)
            continue
        for event in stored:
            log.record("append", str(event.event_id), "ok", position=event.position)
        (tally.retried_results if attempt else tally.first_results).append(stored)
        return stored
    raise AssertionError(f"append to {stream} never acknowledged in {MAX_ATTEMPTS} attempts")


async def run_appends(
    store: SQLAlchemyEventStore,
    retries: Retries,
    rng: random.Random,
    log: HistoryLog,
    *,
    ambiguous: type[CqrsDddError],
    before_each: Callable[[], None] | None = None,
) -> RetryTally:
    tally = RetryTally()
    versions = {f"stream-{n}": 0 for n in range(retries.streams)}
    for number in range(retries.appends):
        stream = rng.choice(sorted(versions))
        batch = [
            Appended(writer="caller", number=number * 10 + k)
            for k in range(rng.randint(1, retries.max_batch))
        ]
        if before_each is not None:
            before_each()
        stored = await append_until_acknowledged(
            store, stream, batch, versions[stream], ambiguous=ambiguous, log=log, tally=tally
        )
        versions[stream] += len(stored)
    return tally


async def read_everything(store: SQLAlchemyEventStore) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    for _ in range(100_000):  # bounded: each round reads up to 1,000 events
        batch = await store.read_all(after_position=events[-1].position if events else 0)
        if not batch:
            return events
        events.extend(batch)
    raise AssertionError("the store never ran out of events")


def assert_exactly_once(
    history: Path, stored: list[StoredEvent], tally: RetryTally, retries: Retries, note: str
) -> None:
    """Every acknowledged event is stored once, and retries returned the stored positions."""
    outcomes = outcomes_from_history(read_history(history), op="append")
    result = check_delivery(committed=outcomes.committed, delivered=keys(stored))
    assert result.ok, f"{result} {note}"
    assert not outcomes.indeterminate, note
    assert tally.leaked == [], f"errors other than the ambiguous one reached the caller {note}"
    as_stored = {event.event_id: event for event in stored}
    for returned in [*tally.retried_results, *tally.first_results]:
        for event in returned:
            assert event == as_stored[event.event_id], f"a retry returned {event} {note}"
    assert len(tally.first_results) + len(tally.retried_results) == retries.appends, note
    by_stream: dict[str, list[int]] = {}
    for event in stored:
        by_stream.setdefault(event.stream_id, []).append(event.version)
    for stream, versions in by_stream.items():
        assert versions == list(range(1, len(versions) + 1)), f"{stream} {note}"


@pytest.fixture
def armed_failpoints(monkeypatch: pytest.MonkeyPatch, seed: int) -> Iterator[None]:
    """Arm the after-commit failpoint to raise on 10% of hits, drawn from the run's seed."""
    reset_failpoints()
    monkeypatch.setenv(FAILPOINTS_VARIABLE, f"{AFTER_COMMIT}:raise%10")
    monkeypatch.setenv(FAILPOINTS_SEED_VARIABLE, str(seed))
    yield
    reset_failpoints()


@pytest.mark.usefixtures("armed_failpoints")
@pytest.mark.parametrize(
    "retries",
    [
        pytest.param(FAILPOINT_CI, id="ci"),
        pytest.param(FAILPOINT_SOAK, id="soak", marks=pytest.mark.soak),
    ],
)
async def test_appends_retried_after_a_commit_the_caller_never_heard_of_are_stored_once(
    pg_engine: AsyncEngine, seed: int, tmp_path: Path, retries: Retries
) -> None:
    # given: 10% of appends raise right after their transaction committed
    note = failure_note(seed)
    store = SQLAlchemyEventStore(pg_engine)
    history = tmp_path / "history.jsonl"
    # when: the caller retries each failed append with the same batch and version
    with HistoryLog(history, proc="caller") as log:
        tally = await run_appends(
            store, retries, random.Random(seed), log, ambiguous=FailpointError
        )
    # then: each event once, and every retry got the events as first stored
    stored = await read_everything(store)
    assert_exactly_once(history, stored, tally, retries, note)
    # and the fault struck, and struck only after commits
    assert tally.ambiguous > 0, f"the failpoint never raised {note}"
    assert tally.retried_results, note
    assert failpoint_hits(AFTER_COMMIT) == retries.appends + tally.ambiguous, note


@pytest.mark.parametrize(
    "retries",
    [pytest.param(PROXY_CI, id="ci"), pytest.param(PROXY_SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_appends_retried_after_the_connection_broke_during_commit_are_stored_once(
    pg_engine: AsyncEngine,
    postgres_database: PostgresDatabase,
    seed: int,
    tmp_path: Path,
    retries: Retries,
) -> None:
    # given: the store talks to PostgreSQL through a proxy that resets the connection
    # right after forwarding COMMIT, on 5% of appends
    note = failure_note(seed)
    rng = random.Random(seed)
    server = urlsplit(postgres_database.sqlalchemy_url)
    history = tmp_path / "history.jsonl"
    async with FaultProxy(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        user = server.netloc.rpartition("@")[0]
        proxied_url = urlunsplit(server._replace(netloc=f"{user}@127.0.0.1:{proxy.port}"))
        engine = create_engine(proxied_url, pool_pre_ping=True, application_name="r4_proxied")
        armed = 0

        def maybe_arm() -> None:
            nonlocal armed
            if rng.random() * 100 < retries.fault_percent:
                proxy.reset_after_match(b"COMMIT", times=1)
                armed += 1

        try:
            # when: appends whose connection broke right after COMMIT (the store
            # itself sends such an append once more, on a fresh connection)
            with HistoryLog(history, proc="caller") as log:
                tally = await run_appends(
                    SQLAlchemyEventStore(engine),
                    retries,
                    rng,
                    log,
                    ambiguous=PersistenceError,
                    before_each=maybe_arm,
                )
        finally:
            await engine.dispose()
    # then: each event once, and every retry got the events as first stored
    stored = await read_everything(SQLAlchemyEventStore(pg_engine))
    assert_exactly_once(history, stored, tally, retries, note)
    # and every reset happened, and was absorbed by the store's idempotent second send
    assert armed > 0, f"no append was chosen for a reset {note}"
    assert proxy.resets == armed, note
    assert tally.ambiguous == 0, note


async def test_a_retry_that_overlaps_a_stored_batch_only_in_part_is_refused(
    engine: AsyncEngine,
) -> None:
    # given
    store = SQLAlchemyEventStore(engine)
    a, b, c = (Appended(writer="w", number=n) for n in range(3))
    original = await store.append("s-1", [a, b], expected_version=0)
    # when / then: the same batch again is answered with the original events
    assert await store.append("s-1", [a, b], expected_version=0) == original
    # when / then: a batch sharing only some ids is refused, naming them
    with pytest.raises(DuplicateEventIdError) as head_overlap:
        await store.append("s-1", [a, c], expected_version=0)
    assert (head_overlap.value.stream_id, head_overlap.value.event_ids) == ("s-1", (a.event_id,))
    with pytest.raises(DuplicateEventIdError) as tail_overlap:
        await store.append("s-1", [b, c], expected_version=1)
    assert tail_overlap.value.event_ids == (b.event_id,)
    # and nothing of them was written
    assert await store.load_stream("s-1") == original


async def test_the_same_event_id_is_accepted_in_another_stream(engine: AsyncEngine) -> None:
    # given
    store = SQLAlchemyEventStore(engine)
    event = Appended(writer="w", number=0)
    first = await store.append("s-1", [event], expected_version=0)
    # when
    second = await store.append("s-2", [event], expected_version=0)
    # then
    assert second[0].event_id == first[0].event_id
    assert second[0].position > first[0].position
    assert [e.event_id for e in await store.load_stream("s-2")] == [event.event_id]

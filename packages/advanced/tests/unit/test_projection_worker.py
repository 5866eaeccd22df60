"""ProjectionWorker in memory: order, batches, upcasting, wake-ups, errors, rebuilds, status.

The worker runs on an ``InMemoryEventStore`` and its ``InMemoryWorkerStorage``;
projectors write to ``InMemoryReadModelStore``s through the batch's transaction,
so a rolled-back batch leaves nothing behind, as on SQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from projection_test_model import (
    EXPECTED_ORDERS,
    HandlerFailedError,
    LedgerProjector,
    Mystery,
    Noise,
    OrderPlaced,
    OrderPlacedWithTextTotal,
    OrderProjector,
    PriceProjector,
    PriceSet,
    PriceSetV1,
    TallyProjector,
    Writer,
    minutes_ago,
    place_orders,
    price_upcasters,
)

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore, InMemoryReadModelStore
from cqrs_ddd_advanced_core.projections import (
    CheckpointRegressionError,
    ProjectionContext,
    ProjectionHaltedError,
    ProjectionRebuildError,
    ProjectionWorker,
    Projector,
    ProjectorRegistry,
    QueryOptions,
    ReplayResult,
    SpecificationBuilder,
    projects,
)
from cqrs_ddd_core.adapters.memory import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_core.failpoints import FailpointError, reset_failpoints


@pytest.fixture
def arm_failpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Arm CQRS_DDD_FAILPOINTS with hit counts from zero; disarmed after the test."""

    def arm(value: str) -> None:
        reset_failpoints()
        monkeypatch.setenv("CQRS_DDD_FAILPOINTS", value)

    yield arm
    monkeypatch.delenv("CQRS_DDD_FAILPOINTS", raising=False)
    reset_failpoints()


def tally(store: InMemoryEventStore, **options: Any) -> tuple[ProjectionWorker, TallyProjector]:
    projector = TallyProjector(InMemoryReadModelStore(key="stream_id"), "tally")
    return ProjectionWorker(ProjectorRegistry([projector]), store, **options), projector


def ledger(store: InMemoryEventStore, **options: Any) -> tuple[ProjectionWorker, LedgerProjector]:
    projector = LedgerProjector(InMemoryReadModelStore(key="n"), "ledger")
    options.setdefault("retry_backoff", 0.001)
    return ProjectionWorker(ProjectorRegistry([projector]), store, **options), projector


def rows(projector: TallyProjector | LedgerProjector) -> list[dict[str, Any]]:
    read_model = projector.read_model
    assert isinstance(read_model, InMemoryReadModelStore)
    return read_model.rows()


def ledger_numbers(projector: LedgerProjector) -> list[int]:
    """The ``n`` of every applied event, after checking none was applied twice."""
    found = rows(projector)
    assert [row for row in found if row["times"] != 1] == []
    return [row["n"] for row in found]


# ---------------------------------------------------------------- order and batches


async def test_events_are_applied_in_global_order_from_the_checkpoint_in_batches(
    event_store: InMemoryEventStore,
) -> None:
    # given: 25 events interleaved over 5 streams
    writer = Writer(event_store)
    await writer.interleaved(["a", "b", "c", "d", "e"], rounds=5)
    worker, projector = tally(event_store, batch_size=10)
    # when
    [status] = await worker.catch_up()
    # then: every event once, in global order, in batches of at most 10
    assert projector.calls.positions == list(range(1, 26))
    assert projector.calls.batch_sizes() == [10, 10, 5]
    assert (status.checkpoint, status.head_position, status.lag_events) == (25, 25, 0)
    assert rows(projector) == [
        {"stream_id": s, "applied_count": 5, "last_version": 5, "total": total}
        for s, total in zip("abcde", (55, 60, 65, 70, 75), strict=True)
    ]
    # when: more events, and a catch-up from the checkpoint
    await writer.tick("b", 3)
    await worker.catch_up()
    # then: only the new ones
    assert projector.calls.positions == list(range(1, 29))
    assert projector.calls.batch_sizes() == [10, 10, 5, 3]
    # and: a new worker (a restart) starts from the stored checkpoint, not from 0
    restarted, fresh = tally(event_store, batch_size=10)
    [status] = await restarted.catch_up()
    assert fresh.calls.positions == []
    assert status.checkpoint == 28


async def test_old_events_are_upcast_before_the_projector_sees_them() -> None:
    for upcasters in (price_upcasters(), None):
        # given: a price stored by release 1 (euros), then one by the current release (cents)
        event_store = InMemoryEventStore()
        await event_store.append("price-1", [PriceSetV1(amount_eur=1.5)], expected_version=0)
        await event_store.append("price-1", [PriceSet(amount_cents=299)], expected_version=1)
        projector = PriceProjector()
        worker = ProjectionWorker(
            ProjectorRegistry([projector]), event_store, upcaster_registry=upcasters
        )
        # when
        [status] = await worker.catch_up()
        if upcasters is not None:
            # then: the handler sees the current class only
            assert [type(event) for event in projector.seen] == [PriceSet, PriceSet]
            assert [event.amount_cents for event in projector.seen] == [150, 299]
            assert (status.checkpoint, status.dead_letters) == (2, 0)
        else:
            # and: without the upcaster the release-1 event cannot be read
            [letter] = await worker.dead_letters("prices")
            assert (letter.position, letter.attempts) == (1, 1)
            assert letter.error_class == "cqrs_ddd_core.exceptions.EventSchemaVersionError"
            assert [event.amount_cents for event in projector.seen] == [299]


async def test_events_no_projector_handles_are_passed_over_and_the_checkpoint_reaches_head(
    event_store: InMemoryEventStore,
) -> None:
    # given: noise around two counted events, with whole batches of noise
    writer = Writer(event_store)
    await writer.other("noise", [Noise(note=str(i)) for i in range(7)])
    await writer.tick("a", 2)
    await writer.other("noise", [Noise(note=str(i)) for i in range(5)])
    worker, projector = tally(event_store, batch_size=3)
    # when
    [status] = await worker.catch_up()
    # then
    assert projector.calls.positions == [8, 9]
    assert (status.checkpoint, status.head_position, status.lag_events) == (14, 14, 0)
    assert status.lag_seconds == 0.0


# ---------------------------------------------------------------- the background worker


async def test_a_started_worker_is_woken_by_an_append_long_before_its_poll_interval(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    worker, projector = tally(event_store, poll_interval=30)
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        for round_ in range(1, 4):
            # when: an append while the worker waits (for 30 s unless woken)
            await writer.tick("a")
            # then
            await worker.wait_until_caught_up(within=5)
            assert rows(projector)[0]["applied_count"] == round_
    finally:
        await worker.stop(grace=5)


async def test_stop_is_prompt_when_idle_and_releases_the_lease_to_the_next_worker(
    event_store: InMemoryEventStore,
) -> None:
    # given: a started worker holding the lease (15 s), caught up and idle
    writer = Writer(event_store)
    await writer.tick("a", 4)
    first, projector = tally(event_store, poll_interval=30, lease_ttl=15)
    await first.start()
    await first.wait_until_caught_up(within=5)
    [status] = await first.status()
    assert (status.owner, status.state) == (first.worker_id, "running")
    # when
    started = time.monotonic()
    await first.stop(grace=10)
    # then: the loop ended at once and the lease is free
    assert time.monotonic() - started < 1.0
    assert not first.running
    [status] = await first.status()
    assert (status.owner, status.state, status.checkpoint) == (None, "stopped", 4)
    # and: another worker takes over at once, long before the 15 s lease would expire
    await writer.tick("a", 2)
    second = ProjectionWorker(ProjectorRegistry([projector]), event_store, worker_id="second")
    [status] = await second.catch_up()
    assert status.checkpoint == 6
    assert rows(projector)[0]["applied_count"] == 6


async def test_a_restarted_worker_can_be_waited_for(event_store: InMemoryEventStore) -> None:
    """Regression: runners stayed "stopped" after a restart, so the wait returned at once."""
    writer = Writer(event_store)
    worker, projector = tally(event_store, poll_interval=30)
    await worker.start()
    await worker.stop(grace=5)
    await writer.tick("a", 2)
    # when: started again
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        # then: the new events are applied
        assert [row["applied_count"] for row in rows(projector)] == [2]
    finally:
        await worker.stop(grace=5)


# ---------------------------------------------------------------- one transaction


async def test_a_batch_that_fails_before_commit_leaves_neither_changes_nor_checkpoint(
    event_store: InMemoryEventStore, arm_failpoints: Callable[[str], None]
) -> None:
    writer = Writer(event_store)
    await writer.interleaved(["a", "b"], rounds=5)
    worker, projector = tally(event_store)
    arm_failpoints("projection.after_apply_before_commit:raise@1")
    # when: the batch fails after its handlers ran
    with pytest.raises(FailpointError):
        await worker.catch_up()
    # then
    assert len(projector.calls.positions) == 10
    assert rows(projector) == []
    [status] = await worker.status()
    assert (status.checkpoint, status.owner) == (0, None)
    # when: tried again
    await worker.catch_up()
    # then: every event exactly once
    assert [(row["applied_count"], row["last_version"]) for row in rows(projector)] == [(5, 5)] * 2


# ---------------------------------------------------------------- failures


async def test_a_poison_event_becomes_a_dead_letter_and_is_replayed_once_fixed(
    event_store: InMemoryEventStore,
) -> None:
    # given: 1,000 events over 10 streams of 100; the one with n=500 always fails
    writer = Writer(event_store)
    for stream in range(10):
        await writer.tick(f"s-{stream}", 100)
    worker, projector = ledger(event_store, max_attempts=3)
    projector.fail_on = {500}
    # when
    [status] = await worker.catch_up()
    # then: 999 applied, once each; the poison event tried max_attempts times
    assert ledger_numbers(projector) == [n for n in range(1, 1001) if n != 500]
    assert projector.calls.per_n[500] == 3
    [letter] = await worker.dead_letters("ledger")
    [stored] = await event_store.read_all(after_position=499, limit=1)
    assert (letter.projection, letter.position, letter.stream_id, letter.version) == (
        "ledger",
        500,
        "s-4",
        100,
    )
    assert (letter.event_type, letter.event_id) == ("Ticked", stored.event_id)
    assert letter.error_class == "projection_test_model.HandlerFailedError"
    assert letter.error_message == "cannot apply n=500"
    assert letter.attempts == 3
    assert letter.first_seen_at <= letter.last_seen_at
    assert (status.checkpoint, status.head_position, status.dead_letters) == (1000, 1000, 1)
    # when: replayed before the fix, it fails again and stays, one attempt more
    again = await worker.replay_dead_letters("ledger")
    assert again.applied == []
    assert [(failed.position, failed.attempts) for failed in again.failed] == [(500, 4)]
    [letter] = await worker.dead_letters("ledger")
    assert letter.attempts == 4
    # when: the projector is fixed, then the letter replayed
    projector.fail_on.clear()
    replayed = await worker.replay_dead_letters("ledger")
    # then: applied once, gone from the dead letters; the checkpoint did not move
    assert replayed == ReplayResult(applied=[500], failed=[])
    assert ledger_numbers(projector) == list(range(1, 1001))
    assert await worker.dead_letters("ledger") == []
    [status] = await worker.status()
    assert (status.checkpoint, status.dead_letters, status.owner) == (1000, 0, None)
    assert await worker.replay_dead_letters("ledger") == ReplayResult([], [])


async def test_max_attempts_one_applies_a_failing_event_once(
    event_store: InMemoryEventStore,
) -> None:
    """Regression: the failed whole-batch try was not counted against max_attempts."""
    writer = Writer(event_store)
    await writer.tick("a", 5)
    worker, projector = ledger(event_store, max_attempts=1)
    projector.fail_on = {3}
    await worker.catch_up()
    [letter] = await worker.dead_letters("ledger")
    assert (projector.calls.per_n[3], letter.attempts) == (1, 1)


async def test_dead_letters_are_replayed_while_the_worker_runs(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    await writer.tick("a", 5)
    worker, projector = ledger(event_store, max_attempts=2, poll_interval=30)
    projector.fail_on = {3}
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        assert [letter.position for letter in await worker.dead_letters("ledger")] == [3]
        # when: fixed, then replayed under the running worker's lease
        projector.fail_on.clear()
        assert await worker.replay_dead_letters("ledger") == ReplayResult([3], [])
        await writer.tick("a", 2)
        await worker.wait_until_caught_up(within=5)
        # then
        [status] = await worker.status()
        assert (status.checkpoint, status.dead_letters, status.owner) == (7, 0, worker.worker_id)
        assert ledger_numbers(projector) == list(range(1, 8))
    finally:
        await worker.stop(grace=5)


async def test_a_transient_failure_is_retried_and_applied_without_a_dead_letter(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    await writer.tick("a", 10)
    worker, projector = ledger(event_store, max_attempts=3, batch_size=4)
    projector.transient = {6: 2}
    # when
    [status] = await worker.catch_up()
    # then: applied on the 3rd attempt, every event once
    assert projector.calls.per_n[6] == 3
    assert ledger_numbers(projector) == list(range(1, 11))
    assert (status.checkpoint, status.dead_letters) == (10, 0)


class Picky(Projector):
    """Handles ``OrderPlaced`` (by class) and ``Mystery`` (by name, class never registered)."""

    projection_name = "picky"

    def __init__(self) -> None:
        self.read_model = InMemoryReadModelStore()
        self.mysteries = 0

    @projects(OrderPlaced)
    async def placed(self, event: OrderPlaced, context: ProjectionContext) -> None:
        await self.read_model.upsert(context.connection, {"id": context.stream_id})

    @projects("Mystery")
    async def mystery(self, event: Any, context: ProjectionContext) -> None:
        self.mysteries += 1


async def test_an_event_that_cannot_be_decoded_is_quarantined_at_once(
    event_store: InMemoryEventStore,
) -> None:
    # given: a type handled by name but not registered, and a payload the class refuses
    await event_store.append("o-1", [OrderPlaced(customer_id="c", total=1)], expected_version=0)
    await event_store.append("m-1", [Mystery(clue="x")], expected_version=0)
    bad = OrderPlacedWithTextTotal(customer_id="c", total="lots")
    await event_store.append("o-2", [bad], expected_version=0)
    await event_store.append("o-3", [OrderPlaced(customer_id="c", total=3)], expected_version=0)
    projector = Picky()
    worker = ProjectionWorker(
        ProjectorRegistry([projector]), event_store, max_attempts=5, retry_backoff=10
    )
    # when: (a retry would wait 10 s)
    started = time.monotonic()
    [status] = await worker.catch_up()
    # then: both recorded after one attempt, without retrying; the rest applied
    assert time.monotonic() - started < 5
    letters = await worker.dead_letters("picky")
    assert [(x.position, x.stream_id, x.event_type, x.attempts) for x in letters] == [
        (2, "m-1", "Mystery", 1),
        (3, "o-2", "OrderPlaced", 1),
    ]
    assert [x.error_class.rsplit(".", 1)[-1] for x in letters] == [
        "UnknownEventTypeError",
        "EventDeserializationError",
    ]
    assert projector.mysteries == 0
    assert projector.read_model.rows() == [{"id": "o-1"}, {"id": "o-3"}]
    assert (status.checkpoint, status.dead_letters) == (4, 2)


async def test_on_error_halt_stops_at_the_failing_event_and_resume_goes_on_from_it(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    await writer.tick("a", 10)
    worker, projector = ledger(event_store, on_error="halt", max_attempts=2, batch_size=4)
    projector.fail_on = {6}
    # when
    with pytest.raises(ProjectionHaltedError) as halted:
        await worker.catch_up()
    # then: halted at the event, checkpoint just before it, nothing after it applied
    assert (halted.value.position, halted.value.event_type, halted.value.stream_id) == (
        6,
        "Ticked",
        "a",
    )
    [status] = await worker.status()
    assert (status.state, status.checkpoint, status.owner) == ("halted", 5, None)
    assert status.last_error is not None
    assert "'Ticked'" in status.last_error
    assert "position 6" in status.last_error
    assert "cannot apply n=6" in status.last_error
    assert ledger_numbers(projector) == [1, 2, 3, 4, 5]
    # and: a halted projection stays where it is
    await worker.catch_up()
    assert ledger_numbers(projector) == [1, 2, 3, 4, 5]
    assert projector.calls.per_n[6] == 2
    # when: the projector is fixed, then the projection resumed
    projector.fail_on.clear()
    await worker.resume("ledger")
    [status] = await worker.catch_up()
    # then: it goes on from the failing event
    assert ledger_numbers(projector) == list(range(1, 11))
    assert (status.state, status.checkpoint, status.dead_letters, status.last_error) == (
        "idle",
        10,
        0,
        None,
    )


async def test_a_started_worker_halts_and_a_resume_restarts_its_loop(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    await writer.tick("a", 6)
    worker, projector = ledger(event_store, on_error="halt", max_attempts=1, poll_interval=30)
    projector.fail_on = {3}
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)  # a halted projection is not waited for
        [status] = await worker.status()
        assert (status.state, status.checkpoint) == ("halted", 2)
        await writer.tick("a", 2)
        projector.fail_on.clear()
        # when
        await worker.resume("ledger")
        await worker.wait_until_caught_up(within=5)
        # then
        assert ledger_numbers(projector) == list(range(1, 9))
        [status] = await worker.status()
        assert (status.state, status.checkpoint, status.owner) == ("running", 8, worker.worker_id)
    finally:
        await worker.stop(grace=5)


# ---------------------------------------------------------------- rebuilds


async def test_a_rebuild_gives_the_same_read_model_from_position_zero(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    await writer.interleaved(["a", "b", "c"], rounds=5)
    await writer.other("noise", [Noise()])
    worker, projector = tally(event_store, batch_size=4)
    await worker.catch_up()
    before = rows(projector)
    # given: the read model damaged behind the projection's back
    read_model = projector.read_model
    await read_model.upsert(None, {"stream_id": "junk", "applied_count": 99})
    await read_model.update(None, "a", {"applied_count": 0})
    # when
    status = await worker.rebuild("tally")
    # then
    assert rows(projector) == before
    assert projector.calls.positions == list(range(1, 16)) * 2
    assert (status.checkpoint, status.head_position, status.state) == (16, 16, "idle")


async def test_a_started_worker_rebuilds_its_projection(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    await writer.interleaved(["a", "b"], rounds=3)
    worker, projector = tally(event_store, poll_interval=0.05, lease_ttl=0.3)
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        before = rows(projector)
        await projector.read_model.update(None, "a", {"applied_count": 0})
        # when
        status = await worker.rebuild("tally", within=5)
        # then
        assert rows(projector) == before
        assert (status.checkpoint, status.state) == (6, "running")
        assert projector.calls.positions == [1, 2, 3, 4, 5, 6] * 2
    finally:
        await worker.stop(grace=5)


async def test_a_started_worker_rebuilds_at_once_when_asked(
    event_store: InMemoryEventStore,
) -> None:
    """Regression: a live rebuild waited for the loop's next renewal (lease_ttl/3, poll)."""
    writer = Writer(event_store)
    await writer.tick("a", 3)
    worker, projector = tally(event_store, poll_interval=30)
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        status = await worker.rebuild("tally", within=2)
        assert status.checkpoint == 3
        assert rows(projector)[0]["applied_count"] == 3
    finally:
        await worker.stop(grace=5)


async def test_a_rebuild_fails_fast_on_the_first_bad_event_and_halts(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    await writer.tick("a", 10)
    await writer.tick("b", 20)
    worker, projector = ledger(event_store, batch_size=10, max_attempts=3)
    await worker.catch_up()
    # given: the projector now fails on the event with n=15 (stream b, version 5)
    projector.fail_on = {15}
    # when
    with pytest.raises(ProjectionRebuildError) as failed:
        await worker.rebuild("ledger")
    # then: the error names the event
    error = failed.value
    assert (error.event_type, error.stream_id, error.position, error.version) == (
        "Ticked",
        "b",
        15,
        5,
    )
    assert "'Ticked'" in str(error)
    assert "position 15" in str(error)
    assert "'b'" in str(error)
    assert isinstance(error.__cause__, HandlerFailedError)
    # and: no retries, nothing after it; halted just before it
    assert projector.calls.per_n[15] == 2  # once in the first run, once in the rebuild
    assert projector.calls.per_n[21] == 1
    assert ledger_numbers(projector) == list(range(1, 15))
    [status] = await worker.status()
    assert (status.state, status.checkpoint, status.dead_letters) == ("halted", 14, 0)
    assert status.last_error is not None
    assert "position 15" in status.last_error
    # when: the projector is fixed, then the projection resumed
    projector.fail_on.clear()
    await worker.resume("ledger")
    [status] = await worker.catch_up()
    assert ledger_numbers(projector) == list(range(1, 31))
    assert (status.state, status.checkpoint) == ("idle", 30)


async def test_a_rebuild_stops_at_an_event_that_cannot_be_decoded(
    event_store: InMemoryEventStore,
) -> None:
    await event_store.append("o-1", [OrderPlaced(customer_id="c", total=1)], expected_version=0)
    projector = Picky()
    worker = ProjectionWorker(ProjectorRegistry([projector]), event_store)
    await worker.catch_up()
    await event_store.append("m-1", [Mystery()], expected_version=0)
    with pytest.raises(ProjectionRebuildError) as failed:
        await worker.rebuild("picky")
    assert (failed.value.event_type, failed.value.stream_id, failed.value.position) == (
        "Mystery",
        "m-1",
        2,
    )
    [status] = await worker.status()
    assert (status.state, status.checkpoint) == ("halted", 1)
    assert projector.read_model.rows() == [{"id": "o-1"}]


# ---------------------------------------------------------------- status


async def test_status_reports_checkpoint_head_lag_owner_and_dead_letters(
    event_store: InMemoryEventStore,
) -> None:
    writer = Writer(event_store)
    await writer.tick("a", 3, occurred_at=minutes_ago(2))
    worker, projector = ledger(event_store, max_attempts=1, poll_interval=30)
    # then: nothing applied yet
    [status] = await worker.status()
    assert (status.name, status.state, status.owner, status.dead_letters) == (
        "ledger",
        "idle",
        None,
        0,
    )
    assert (status.checkpoint, status.head_position, status.lag_events) == (0, 3, 3)
    assert 119 < status.lag_seconds < 300
    # when: caught up
    [status] = await worker.catch_up()
    assert (status.checkpoint, status.lag_events, status.lag_seconds) == (3, 0, 0.0)
    # when: a rolled-back append leaves a gap in the positions, then two more events
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow):
            await event_store.append("gap", [Noise()], expected_version=0)
    await writer.tick("a", 2, occurred_at=minutes_ago(1))
    # then: the lag counts events, not positions
    [status] = await worker.status()
    assert (status.checkpoint, status.head_position, status.lag_events) == (3, 6, 2)
    assert 59 < status.lag_seconds < 119
    # when: started, with one event failing
    projector.fail_on = {5}
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        [status] = await worker.status()
        assert (status.state, status.owner, status.epoch) == ("running", worker.worker_id, 2)
        assert (status.checkpoint, status.lag_events, status.dead_letters) == (6, 0, 1)
    finally:
        await worker.stop(grace=5)
    [status] = await worker.status()
    assert (status.state, status.owner) == ("stopped", None)


# ---------------------------------------------------------------- the spec's example


async def test_the_projections_example_queries_orders_the_worker_projected(
    event_store: InMemoryEventStore,
) -> None:
    # given: orders projected from their events by the worker
    order_projection = OrderProjector(InMemoryReadModelStore(key="id"))
    worker = ProjectionWorker(ProjectorRegistry([order_projection]), event_store, batch_size=100)
    await place_orders(event_store)
    await worker.catch_up()

    # Fluent query API
    spec = (
        SpecificationBuilder()
        .where("customer_id", "==", "cust_123")
        .where("status", "in", ["pending", "confirmed"])
        .where("total", ">", 100)
    )

    options = (
        QueryOptions()
        .with_specification(spec)
        .with_ordering("created_at", desc=True)
        .with_pagination(limit=20, offset=0)
    )

    # Execute query
    orders = await order_projection.query(options)
    # then
    assert [(o["id"], o["status"], o["total"]) for o in orders] == EXPECTED_ORDERS


async def test_a_checkpoint_never_moves_back(event_store: InMemoryEventStore) -> None:
    # given: a projection checkpointed at 24
    storage = event_store.worker_storage()
    lease = await storage.acquire("tally", "me", ttl=30)
    assert lease is not None
    async with storage.batch(lease, ttl=30) as batch:
        batch.advance(24)
    # when / then
    with pytest.raises(CheckpointRegressionError) as refused:
        async with storage.batch(lease, ttl=30) as batch:
            batch.advance(22)
    # then
    assert (refused.value.checkpoint, refused.value.requested) == (24, 22)
    assert (await storage.record("tally")).position == 24

"""Recurring schedules: missed runs across a worker restart, daylight saving, intervals.

The in-memory scheduler runs on a fake clock here, so a worker can be "down"
for hours in a moment; the SQL schedulers run the same policies in the contract
suite (with occurrences that came before the test started).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cqrs_ddd_advanced_core.adapters.memory import InMemoryCommandScheduler
from cqrs_ddd_advanced_core.scheduling import (
    CommandSchedulerService,
    CommandSchedulerWorker,
    MissedRunPolicy,
    RecurringSchedule,
    ScheduleConfigurationError,
    occurrence_id,
    plan_firing,
)
from cqrs_ddd_advanced_core.scheduling.recurring import first_at_or_after, following
from cqrs_ddd_core import Command, HandlerRegistry, InMemoryUnitOfWork, Mediator

BERLIN = ZoneInfo("Europe/Berlin")


class FakeClock:
    """Unix seconds that move only when told."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta.total_seconds()


class Tick(Command):
    pass


class Shop:
    """A scheduler on a fake clock, and a mediator that records when each ``Tick`` ran."""

    def __init__(self, start: datetime) -> None:
        self.clock = FakeClock(start)
        self.scheduler = InMemoryCommandScheduler(clock=self.clock)
        self.ran_at: list[datetime] = []
        registry = HandlerRegistry()

        @registry.command_handler(Tick)
        async def tick(command: Tick) -> None:
            self.ran_at.append(datetime.fromtimestamp(self.clock(), UTC))

        self.mediator = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)

    def worker(self) -> CommandSchedulerWorker:
        """Return a fresh worker (and service): a restarted process."""
        service = CommandSchedulerService(self.scheduler, self.mediator.send)
        return CommandSchedulerWorker(service, poll_interval=1.0)

    async def settle(self, worker: CommandSchedulerWorker) -> None:
        """Let ``worker`` do every round there is work for now."""
        while await worker.run_once():
            pass


@pytest.mark.parametrize(
    ("policy", "after_restart"),
    [("skip", 0), ("run_once", 1), ("run_all", 5)],
)
async def test_runs_missed_while_no_worker_was_up_follow_the_policy(
    policy: MissedRunPolicy, after_restart: int
) -> None:
    shop = Shop(datetime(2026, 6, 1, 9, 30, tzinfo=UTC))
    first = shop.worker()
    await first.service.schedule_recurring(
        "hourly", Tick(), cron="0 * * * *", missed=policy, grace=timedelta(minutes=1)
    )
    await shop.settle(first)  # anchors the schedule at 10:00
    shop.clock.advance(timedelta(minutes=30, seconds=5))
    await shop.settle(first)
    assert [moment.hour for moment in shop.ran_at] == [10]

    # the worker is down from 10:00:05 to 15:30: 11:00 to 15:00 are missed
    shop.clock.advance(timedelta(hours=5, minutes=30))
    restarted = shop.worker()
    await shop.settle(restarted)
    assert len(shop.ran_at) == 1 + after_restart
    recurring = await restarted.service.recurring("hourly")
    assert recurring.next_fire_at == datetime(2026, 6, 1, 16, tzinfo=UTC).timestamp()

    # and it goes on as before
    shop.clock.advance(timedelta(minutes=30))
    await shop.settle(restarted)
    assert len(shop.ran_at) == 2 + after_restart
    assert shop.ran_at[-1] == datetime(2026, 6, 1, 16, 0, 5, tzinfo=UTC)


async def test_an_occurrence_runs_once_whoever_fires_it_and_has_a_derived_id() -> None:
    shop = Shop(datetime(2026, 6, 1, 9, 59, tzinfo=UTC))
    workers = [shop.worker(), shop.worker()]
    await workers[0].service.schedule_recurring(
        "hourly", Tick(), cron="0 * * * *", start_at=datetime(2026, 6, 1, 10, tzinfo=UTC)
    )
    shop.clock.advance(timedelta(minutes=1))
    for worker in workers:
        await shop.settle(worker)
    # a fired occurrence fired again (a retried transaction, a second worker) is not added
    recurring = RecurringSchedule(
        name="hourly",
        command_type="Tick",
        payload={},
        cron="0 * * * *",
        every=None,
        timezone="UTC",
        missed="run_all",
        grace=60.0,
        paused=False,
        next_fire_at=datetime(2026, 6, 1, 10, tzinfo=UTC).timestamp(),
    )
    for occurrence in plan_firing(recurring, shop.clock()).occurrences:
        assert not await shop.scheduler.add(occurrence)
    assert len(shop.ran_at) == 1
    schedule_id = occurrence_id("hourly", datetime(2026, 6, 1, 10, tzinfo=UTC).timestamp())
    state = await workers[0].service.get(schedule_id)
    assert (state.status, state.recurrence) == ("done", "hourly")


async def test_a_daily_time_stays_local_across_daylight_saving_changes() -> None:
    shop = Shop(datetime(2026, 3, 27, 12, tzinfo=BERLIN))
    worker = shop.worker()
    await worker.service.schedule_recurring(
        "morning", Tick(), cron="0 9 * * *", timezone="Europe/Berlin"
    )
    await shop.settle(worker)
    for _ in range(4 * 24):  # hour by hour to 31 March: clocks go forward on the 29th
        shop.clock.advance(timedelta(hours=1))
        await shop.settle(worker)
    local = [moment.astimezone(BERLIN) for moment in shop.ran_at]
    assert [(moment.day, moment.hour, moment.minute) for moment in local] == [
        (28, 9, 0),
        (29, 9, 0),
        (30, 9, 0),
        (31, 9, 0),
    ]
    assert [moment.hour for moment in shop.ran_at] == [8, 7, 7, 7]  # in UTC


def _recurring(cron: str) -> RecurringSchedule:
    return RecurringSchedule(
        name="dst",
        command_type="Tick",
        payload={},
        cron=cron,
        every=None,
        timezone="Europe/Berlin",
        missed="run_all",
        grace=60.0,
        paused=False,
        next_fire_at=None,
    )


def test_a_time_skipped_by_the_clock_change_runs_just_after_the_gap() -> None:
    before = datetime(2026, 3, 28, 12, tzinfo=BERLIN).timestamp()
    first = following(_recurring("30 2 * * *"), before)
    second = following(_recurring("30 2 * * *"), first)
    assert datetime.fromtimestamp(first, BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"
    assert datetime.fromtimestamp(second, BERLIN).isoformat() == "2026-03-30T02:30:00+02:00"


def test_a_time_repeated_by_the_clock_change_runs_once() -> None:
    before = datetime(2026, 10, 24, 12, tzinfo=BERLIN).timestamp()
    first = following(_recurring("30 2 * * *"), before)
    second = following(_recurring("30 2 * * *"), first)
    assert datetime.fromtimestamp(first, BERLIN).isoformat() == "2026-10-25T02:30:00+02:00"
    assert datetime.fromtimestamp(second, BERLIN).isoformat() == "2026-10-26T02:30:00+01:00"


async def test_an_interval_counts_seconds_from_its_start() -> None:
    shop = Shop(datetime(2026, 6, 1, 10, tzinfo=UTC))
    worker = shop.worker()
    await worker.service.schedule_recurring(
        "quarterly",
        Tick(),
        every=timedelta(minutes=15),
        start_at=datetime(2026, 6, 1, 10, 5, tzinfo=UTC),
    )
    for _ in range(4):
        shop.clock.advance(timedelta(minutes=10))
        await shop.settle(worker)
    assert [(moment.hour, moment.minute) for moment in shop.ran_at] == [
        (10, 10),
        (10, 20),
        (10, 40),
    ]


async def test_a_recurrence_that_cannot_work_is_refused() -> None:
    service = Shop(datetime(2026, 6, 1, tzinfo=UTC)).worker().service
    with pytest.raises(ScheduleConfigurationError, match="exactly one"):
        await service.schedule_recurring("x", Tick())
    with pytest.raises(ScheduleConfigurationError, match="not valid"):
        await service.schedule_recurring("x", Tick(), cron="61 * * * *")
    with pytest.raises(ScheduleConfigurationError, match="time zone"):
        await service.schedule_recurring("x", Tick(), cron="0 9 * * *", timezone="Mars/Olympus")
    with pytest.raises(ScheduleConfigurationError, match="positive"):
        await service.schedule_recurring("x", Tick(), every=timedelta(0))


@pytest.mark.parametrize(("policy", "fired"), [("skip", 60), ("run_once", 61), ("run_all", 1000)])
def test_a_long_outage_fires_what_the_policy_says_however_many_were_missed(
    policy: MissedRunPolicy, fired: int
) -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    recurring = RecurringSchedule(
        name="every-second",
        command_type="Tick",
        payload={},
        cron=None,
        every=1.0,
        timezone="UTC",
        missed=policy,
        grace=59.5,
        paused=False,
        next_fire_at=start,
    )
    now = start + 5_000  # 5,000 occurrences came; the last 60 within the grace
    firing = plan_firing(recurring, now)
    assert len(firing.occurrences) == fired
    if policy == "run_all":  # at most 1,000 at once; the rest on the next round
        assert firing.next_fire_at == start + 1_000
    else:
        assert firing.next_fire_at == now + 1
        assert [occurrence.due_at for occurrence in firing.occurrences][-60:] == [
            now - 59 + second for second in range(60)
        ]
    if policy == "run_once":
        assert firing.occurrences[0].due_at == now - 60  # the latest missed one


def test_occurrences_carry_their_schedule_id_as_command_id() -> None:
    anchored = dataclasses.replace(
        _recurring("0 * * * *"), next_fire_at=datetime(2026, 6, 1, 10, tzinfo=UTC).timestamp()
    )
    firing = plan_firing(anchored, datetime(2026, 6, 1, 12, 30, tzinfo=UTC).timestamp())
    assert len(firing.occurrences) == 3
    assert all(o.payload["command_id"] == str(o.schedule_id) for o in firing.occurrences)


def test_anchoring_inside_the_repeated_hour_never_goes_back_in_time() -> None:
    # 02:10 in the second 02:00-03:00 of 25 October (UTC+1): the next 02:30 is 20 minutes on
    start = datetime(2026, 10, 25, 1, 10, tzinfo=UTC).timestamp()
    anchored = first_at_or_after(_recurring("30 2 * * *"), start)
    assert anchored > start
    assert datetime.fromtimestamp(anchored, BERLIN).isoformat() == "2026-10-26T02:30:00+01:00"

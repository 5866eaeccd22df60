"""Recurring schedules: when the next occurrence is, and what to fire for those that came.

A recurring schedule is either a cron expression read in an IANA time zone
(parsed by ``cronsim``) or a fixed interval in seconds. Its occurrences become
ordinary scheduled commands whose ids are derived from the schedule's name and
the occurrence's instant (:func:`occurrence_id`), so firing the same occurrence
twice (two workers, a retried transaction) adds it once.

Daylight saving, for cron (cronsim follows Debian cron): a wall-clock time
that does not exist on the day clocks go forward runs at the first minute
after the gap ("30 2 * * *" runs at 03:00 that day); a time that exists twice
on the day they go back runs once, at its first instance, for expressions
with a fixed hour, and in both instances for expressions that run every hour.
A fixed interval ignores the time zone: it is a number of seconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from cqrs_ddd_advanced_core.domain.exceptions import ScheduleConfigurationError
from cqrs_ddd_advanced_core.scheduling.ports import Firing, NewSchedule, RecurringSchedule

OCCURRENCE_NAMESPACE = UUID("6f1d4c52-5d0b-4bb6-9a8e-6a3f3f8d2c11")
"""The uuid5 namespace of occurrence ids (never change it: ids already stored depend on it)."""

MAX_FIRED_AT_ONCE = 1000
"""At most this many occurrences are fired in one go; the rest come on the next round."""


def occurrence_id(name: str, fire_at: float) -> UUID:
    """Return the schedule id of recurring schedule ``name``'s occurrence at ``fire_at``."""
    instant = datetime.fromtimestamp(fire_at, UTC).isoformat(timespec="microseconds")
    return uuid5(OCCURRENCE_NAMESPACE, f"{name}@{instant}")


def check_recurrence(cron: str | None, every: float | None, timezone: str) -> None:
    """Raise ``ScheduleConfigurationError`` unless exactly one valid recurrence is given."""
    if (cron is None) == (every is None):
        raise ScheduleConfigurationError(
            "a recurring schedule needs exactly one of cron= or every="
        )
    zone(timezone)
    if every is not None and (not math.isfinite(every) or every <= 0):
        raise ScheduleConfigurationError(f"every={every!r}: the interval must be positive")
    if cron is not None:
        try:
            CronSim(cron, datetime.now(UTC))
        except CronSimError as error:
            raise ScheduleConfigurationError(f"cron={cron!r} is not valid: {error}") from None


def zone(timezone: str) -> ZoneInfo:
    """Return the time zone named ``timezone``; ``ScheduleConfigurationError`` when unknown."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleConfigurationError(f"unknown time zone {timezone!r}") from None


def following(recurring: RecurringSchedule, after: float) -> float:
    """Return the first occurrence of ``recurring`` strictly after ``after`` (Unix seconds).

    An interval's occurrences are ``every`` seconds apart from ``after``
    (call it with an occurrence); a cron expression's are wherever it matches.
    """
    if recurring.every is not None:
        return after + recurring.every
    assert recurring.cron is not None  # noqa: S101 - check_recurrence guarantees one of them
    start = datetime.fromtimestamp(after, zone(recurring.timezone))
    matches = CronSim(recurring.cron, start)
    moment = next(matches).timestamp()
    while moment <= after:  # in a repeated hour a wall-clock match can lie before `after`
        moment = next(matches).timestamp()
    return moment


def first_at_or_after(recurring: RecurringSchedule, start: float) -> float:
    """Return the first occurrence at ``start`` or later (an interval starts at ``start``)."""
    if recurring.every is not None:
        return start
    return following(recurring, start - 1e-6)


def _first_after(recurring: RecurringSchedule, anchor: float, moment: float) -> float:
    """Return the first occurrence after ``moment``, on an interval's grid from ``anchor``."""
    if recurring.every is None:
        return following(recurring, moment)
    if moment < anchor:
        return anchor
    steps = math.floor((moment - anchor) / recurring.every) + 1
    return anchor + steps * recurring.every


def _latest_at_or_before(recurring: RecurringSchedule, anchor: float, moment: float) -> float:
    """Return the last occurrence at ``moment`` or before it, ``anchor`` or later.

    The caller knows ``anchor`` (an occurrence) is at ``moment`` or before it.
    """
    if recurring.every is not None:
        return anchor + math.floor((moment - anchor) / recurring.every) * recurring.every
    assert recurring.cron is not None  # noqa: S101 - check_recurrence guarantees one of them
    start = datetime.fromtimestamp(moment + 1, zone(recurring.timezone))
    for match in CronSim(recurring.cron, start, reverse=True):
        instant = match.timestamp()
        if instant <= moment:
            return max(instant, anchor)
    return anchor  # pragma: no cover - a cron expression matches again and again


def plan_firing(recurring: RecurringSchedule, now: float) -> Firing:
    """Say which occurrences of a due ``recurring`` schedule to fire at ``now``, and the next one.

    Occurrences from ``next_fire_at`` up to ``now`` have come. Those older than
    ``grace`` seconds were missed (no worker got to them in time): ``"skip"``
    drops them, ``"run_once"`` fires the latest of them only, ``"run_all"``
    fires each (at most :data:`MAX_FIRED_AT_ONCE` per call; the rest on the
    next). Those within ``grace`` are merely late and always fire. An
    unanchored schedule (``next_fire_at`` None) fires nothing and starts after
    ``now``. However long the outage, ``"skip"`` and ``"run_once"`` look at the
    occurrences within ``grace`` only.
    """
    anchor = recurring.next_fire_at
    if anchor is None:
        return Firing((), following(recurring, now))
    cutoff = now - recurring.grace
    chosen: list[float] = []
    moment = anchor
    if recurring.missed != "run_all" and anchor <= cutoff:
        if recurring.missed == "run_once":
            chosen.append(_latest_at_or_before(recurring, anchor, cutoff))
        moment = _first_after(recurring, anchor, cutoff)
    while moment <= now and len(chosen) < MAX_FIRED_AT_ONCE:
        chosen.append(moment)
        moment = following(recurring, moment)
    return Firing([_occurrence(recurring, instant) for instant in chosen], moment)


def _occurrence(recurring: RecurringSchedule, instant: float) -> NewSchedule:
    schedule_id = occurrence_id(recurring.name, instant)
    return NewSchedule(
        schedule_id=schedule_id,
        command_type=recurring.command_type,
        payload={**recurring.payload, "command_id": str(schedule_id)},
        due_at=instant,
        recurrence=recurring.name,
    )

"""Failpoints: named places where a test makes the process crash, raise or pause.

Code that must survive a crash at an exact instant marks that instant::

    failpoint("importer.after_read")  # in synchronous code (a place in your own code)
    await async_failpoint("projection.after_apply_before_commit")  # in a coroutine

The framework marks these instants (all in coroutines): ``projection.after_fetch``,
``projection.mid_batch``, ``projection.after_apply_before_commit``,
``projection.after_commit_before_ack``, ``event_store.after_commit_before_return``,
``unit_of_work.before_commit``, ``unit_of_work.after_commit``, and the saga
manager's ``saga.after_command_outbox_before_ack`` (a saga's state and the
commands it decided are stored, none sent yet), ``saga.after_step_effect_before_state``
(a step's command took effect, the saga has not recorded it), ``saga.mid_compensation``
and ``saga.mid_confirmation`` (a compensation or confirmation took effect, not recorded).

Both are no-ops unless the environment variable ``CQRS_DDD_FAILPOINTS`` names the
failpoint; then the cost is one environment lookup. A test (or the process that
starts a worker) arms failpoints with entries separated by ``;``::

    CQRS_DDD_FAILPOINTS="projection.mid_batch:crash@3;unit_of_work.before_commit:sleep(50)"

Each entry is ``name:action`` followed by optional modifiers, in this order:

- actions: ``crash`` sends SIGKILL to the own process (nothing is flushed, no
  ``finally`` runs: as close to pulling the plug as one process gets); ``raise``
  raises `FailpointError`; ``sleep(ms)`` pauses for a whole number of milliseconds
  (`failpoint` with `time.sleep`, `async_failpoint` with `asyncio.sleep`, so use
  the async one inside an event loop).
- ``@N`` acts on the N-th hit only (hits count from 1, per name, per process);
  ``@N+`` acts on the N-th hit and every one after it; without ``@`` every hit acts.
- ``%P`` acts with probability P percent (``%5``, ``%0.5``). The draw is a pure
  function of ``CQRS_DDD_FAILPOINTS_SEED`` (any string, ``0`` when unset), the
  name and the hit number, so a run repeats exactly with the same seed,
  whatever the interleaving of other failpoints.

A name may have several entries; on each hit the first entry that matches acts
(``x:crash@5;x:sleep(10)`` sleeps on every hit but the fifth, which crashes).
Names hold letters, digits, ``.``, ``_`` and ``-``.

The variable is read on every call and parsed once per distinct value (and seed),
so a test may change it with ``monkeypatch.setenv``; a changed value starts the
hit counts afresh, and `reset_failpoints` clears them explicitly. A malformed
value raises `FailpointSpecError` naming the bad entry, at the first hit of any
failpoint (call `parse_failpoints` at start-up to fail earlier). Importing this
module reads nothing and starts nothing. Counting is thread-safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cqrs_ddd_core.exceptions import CqrsDddError

__all__ = [
    "FAILPOINTS_SEED_VARIABLE",
    "FAILPOINTS_VARIABLE",
    "FailpointAction",
    "FailpointError",
    "FailpointRule",
    "FailpointSpecError",
    "async_failpoint",
    "failpoint",
    "failpoint_hits",
    "parse_failpoints",
    "reset_failpoints",
]

FAILPOINTS_VARIABLE = "CQRS_DDD_FAILPOINTS"
"""The environment variable that arms failpoints."""

FAILPOINTS_SEED_VARIABLE = "CQRS_DDD_FAILPOINTS_SEED"
"""The environment variable that seeds the ``%P`` draws (``0`` when unset)."""

FailpointAction = Literal["crash", "raise", "sleep"]
"""What an armed failpoint does."""

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_ACTION = re.compile(r"(?P<verb>[A-Za-z_]+)(?:\((?P<argument>[^)]*)\))?")
_MODIFIERS = re.compile(
    r"(?:@(?P<hit>[0-9]+)(?P<onward>\+)?)?(?:%(?P<percent>[0-9]+(?:\.[0-9]+)?))?"
)
_MILLISECONDS = re.compile(r"\s*[0-9]+\s*")


class FailpointError(CqrsDddError):
    """Raised by a failpoint armed with the ``raise`` action.

    ``name`` is the failpoint and ``hit`` the 1-based hit number that raised.
    """

    def __init__(self, name: str, hit: int) -> None:
        self.name = name
        self.hit = hit
        super().__init__(f"failpoint {name!r} raised on hit {hit}")


class FailpointSpecError(CqrsDddError):
    """The ``CQRS_DDD_FAILPOINTS`` value cannot be read.

    ``part`` is the offending entry and ``reason`` says what is wrong with it.
    """

    def __init__(self, part: str, reason: str) -> None:
        self.part = part
        self.reason = reason
        super().__init__(f"bad {FAILPOINTS_VARIABLE} entry {part!r}: {reason}")


@dataclass(frozen=True, slots=True)
class FailpointRule:
    """One parsed entry: what a failpoint does and on which hits.

    ``hit`` is None for every hit; with ``onward`` the rule acts from that hit on.
    ``percent`` is None for "always", else the chance in percent that a hit the
    rule covers acts. ``sleep_ms`` is set only for the ``sleep`` action.
    """

    name: str
    action: FailpointAction
    sleep_ms: int = 0
    hit: int | None = None
    onward: bool = False
    percent: float | None = None

    def covers(self, hit: int) -> bool:
        """Tell whether the rule's ``@N`` part selects this 1-based hit."""
        if self.hit is None:
            return True
        return hit >= self.hit if self.onward else hit == self.hit


def parse_failpoints(spec: str) -> dict[str, tuple[FailpointRule, ...]]:
    """Parse a ``CQRS_DDD_FAILPOINTS`` value into each name's rules, in order.

    Blank entries (a trailing ``;``) are ignored. Raises `FailpointSpecError`
    naming the first malformed entry.
    """
    rules: dict[str, list[FailpointRule]] = {}
    for raw_entry in spec.split(";"):
        entry = raw_entry.strip()
        if entry:
            rule = _parse_entry(entry)
            rules.setdefault(rule.name, []).append(rule)
    return {name: tuple(name_rules) for name, name_rules in rules.items()}


def _parse_entry(entry: str) -> FailpointRule:
    name, separator, rest = (part.strip() for part in entry.partition(":"))
    if not separator or not name or not rest:
        raise FailpointSpecError(entry, "expected name:action, such as db.commit:crash@2")
    if not _NAME.fullmatch(name):
        raise FailpointSpecError(entry, f"name {name!r} may hold only letters, digits, . _ -")
    action_match = _ACTION.match(rest)
    if action_match is None:
        raise FailpointSpecError(entry, "expected an action: crash, raise or sleep(ms)")
    action, sleep_ms = _parse_action(entry, action_match["verb"], action_match["argument"])
    tail = rest[action_match.end() :]
    modifiers = _MODIFIERS.fullmatch(tail)
    if modifiers is None:
        reason = f"cannot read {tail!r}: expected @N, @N+ and/or %P, in that order"
        raise FailpointSpecError(entry, reason)
    hit = int(modifiers["hit"]) if modifiers["hit"] else None
    percent = float(modifiers["percent"]) if modifiers["percent"] else None
    if hit is not None and hit < 1:
        raise FailpointSpecError(entry, "hits count from 1, so @0 never happens")
    if percent is not None and not 0 < percent <= 100:
        raise FailpointSpecError(entry, f"probability {percent:g}% is not in (0, 100]")
    onward = modifiers["onward"] is not None
    return FailpointRule(name, action, sleep_ms, hit=hit, onward=onward, percent=percent)


def _parse_action(entry: str, verb: str, argument: str | None) -> tuple[FailpointAction, int]:
    """Return the action and its sleep in milliseconds (0 unless it sleeps)."""
    if verb == "sleep":
        if argument is None or not _MILLISECONDS.fullmatch(argument):
            raise FailpointSpecError(entry, "sleep needs whole milliseconds, as in sleep(250)")
        return "sleep", int(argument)
    if verb not in ("crash", "raise"):
        raise FailpointSpecError(entry, f"unknown action {verb!r}: use crash, raise or sleep(ms)")
    if argument is not None:
        raise FailpointSpecError(entry, f"{verb} takes no argument")
    return ("crash" if verb == "crash" else "raise"), 0


class _Registry:
    """The parsed variable, its seed and the hit counts, for one variable value."""

    def __init__(
        self, key: tuple[str, str], rules: Mapping[str, tuple[FailpointRule, ...]]
    ) -> None:
        self.key = key
        self.rules = rules
        self.hits: dict[str, int] = {}


_lock = threading.Lock()
_registry: _Registry | None = None


def _registry_for(spec: str) -> _Registry:
    global _registry  # noqa: PLW0603 - the per-process cache is the point of this module
    seed = os.environ.get(FAILPOINTS_SEED_VARIABLE, "0")
    key = (spec, seed)
    registry = _registry
    if registry is None or registry.key != key:
        registry = _Registry(key, parse_failpoints(spec))
        _registry = registry
    return registry


def _draw(seed: str, name: str, index: int, hit: int) -> float:
    """Return a number in [0, 100) fixed by seed, name, rule index and hit."""
    digest = hashlib.sha256(f"{seed}\x00{name}\x00{index}\x00{hit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def _decide(name: str, spec: str) -> tuple[FailpointRule, int] | None:
    """Count a hit of ``name`` and return the rule that acts on it, if any."""
    with _lock:
        registry = _registry_for(spec)
        hit = registry.hits.get(name, 0) + 1
        registry.hits[name] = hit
        seed = registry.key[1]
        for index, rule in enumerate(registry.rules.get(name, ())):
            if not rule.covers(hit):
                continue
            if rule.percent is None or _draw(seed, name, index, hit) < rule.percent:
                return rule, hit
    return None


def _act(rule: FailpointRule, hit: int) -> None:
    if rule.action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if rule.action == "raise":
        raise FailpointError(rule.name, hit)


def failpoint(name: str) -> None:
    """Crash, raise or sleep here if ``CQRS_DDD_FAILPOINTS`` arms ``name``; else nothing.

    Raises `FailpointError` for the ``raise`` action and `FailpointSpecError`
    when the variable is malformed. ``sleep`` blocks the thread with
    `time.sleep`: inside an event loop use `async_failpoint` instead.
    """
    spec = os.environ.get(FAILPOINTS_VARIABLE)
    if not spec:
        return
    decision = _decide(name, spec)
    if decision is not None:
        rule, hit = decision
        _act(rule, hit)
        if rule.action == "sleep":
            time.sleep(rule.sleep_ms / 1000)


async def async_failpoint(name: str) -> None:
    """Crash, raise or sleep here if ``CQRS_DDD_FAILPOINTS`` arms ``name``; else nothing.

    The same as `failpoint`, except that ``sleep`` awaits `asyncio.sleep` and so
    lets the event loop run other tasks meanwhile.
    """
    spec = os.environ.get(FAILPOINTS_VARIABLE)
    if not spec:
        return
    decision = _decide(name, spec)
    if decision is not None:
        rule, hit = decision
        _act(rule, hit)
        if rule.action == "sleep":
            await asyncio.sleep(rule.sleep_ms / 1000)


def failpoint_hits(name: str) -> int:
    """Return how often ``name`` was hit since the counts last started afresh.

    Counts start afresh on `reset_failpoints` and when a hit finds the variable
    (or the seed) changed. Hits are counted only while ``CQRS_DDD_FAILPOINTS`` is
    set, to any failpoint.
    """
    with _lock:
        registry = _registry
        return 0 if registry is None else registry.hits.get(name, 0)


def reset_failpoints() -> None:
    """Forget the parsed variable and every hit count; the next hit reads it afresh."""
    global _registry  # noqa: PLW0603 - see _registry_for
    with _lock:
        _registry = None

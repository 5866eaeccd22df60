from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from cqrs_ddd_core.exceptions import CqrsDddError
from cqrs_ddd_core.failpoints import (
    FAILPOINTS_SEED_VARIABLE,
    FAILPOINTS_VARIABLE,
    FailpointError,
    FailpointRule,
    FailpointSpecError,
    async_failpoint,
    failpoint,
    failpoint_hits,
    parse_failpoints,
    reset_failpoints,
)

CHILD_TIMEOUT_SECONDS = 60


@pytest.fixture(autouse=True)
def clean_failpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(FAILPOINTS_VARIABLE, raising=False)
    monkeypatch.delenv(FAILPOINTS_SEED_VARIABLE, raising=False)
    reset_failpoints()
    yield
    reset_failpoints()


def arm(monkeypatch: pytest.MonkeyPatch, spec: str, *, seed: str | None = None) -> None:
    monkeypatch.setenv(FAILPOINTS_VARIABLE, spec)
    if seed is not None:
        monkeypatch.setenv(FAILPOINTS_SEED_VARIABLE, seed)
    reset_failpoints()


def raising_hits(name: str, hits: int) -> list[int]:
    """Hit ``name`` ``hits`` times and return the hit numbers that raised."""
    raised = []
    for _ in range(hits):
        try:
            failpoint(name)
        except FailpointError as error:
            raised.append(error.hit)
    return raised


# ------------------------------------------------------------------ unarmed


def test_a_failpoint_does_nothing_while_the_variable_is_unset() -> None:
    for _ in range(100):
        failpoint("projection.after_apply")
    assert failpoint_hits("projection.after_apply") == 0


def test_a_failpoint_not_named_in_the_variable_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm(monkeypatch, "other.point:raise")
    assert raising_hits("projection.after_apply", 10) == []
    assert failpoint_hits("projection.after_apply") == 10


async def test_an_unarmed_async_failpoint_does_nothing() -> None:
    await async_failpoint("outbox.after_publish")
    assert failpoint_hits("outbox.after_publish") == 0


# ------------------------------------------------------------------ raise and hit selection


def test_raise_at_n_acts_on_the_nth_hit_only(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "store.commit:raise@3")
    assert raising_hits("store.commit", 6) == [3]


def test_raise_at_n_plus_acts_from_the_nth_hit_on(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "store.commit:raise@4+")
    assert raising_hits("store.commit", 6) == [4, 5, 6]


def test_raise_without_a_hit_number_acts_on_every_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "store.commit:raise")
    assert raising_hits("store.commit", 3) == [1, 2, 3]


def test_the_raised_error_is_typed_and_names_the_failpoint_and_hit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm(monkeypatch, "store.commit:raise@2")
    failpoint("store.commit")
    with pytest.raises(FailpointError) as caught:
        failpoint("store.commit")
    assert isinstance(caught.value, CqrsDddError)
    assert (caught.value.name, caught.value.hit) == ("store.commit", 2)
    assert "'store.commit'" in str(caught.value)
    assert "hit 2" in str(caught.value)


async def test_an_async_failpoint_raises_on_the_armed_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "relay.publish:raise@2")
    await async_failpoint("relay.publish")
    with pytest.raises(FailpointError) as caught:
        await async_failpoint("relay.publish")
    assert caught.value.hit == 2


def test_hits_are_counted_per_name(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "a:raise@2;b:raise@2")
    failpoint("a")
    failpoint("b")
    with pytest.raises(FailpointError) as caught:
        failpoint("a")
    assert caught.value.name == "a"
    assert (failpoint_hits("a"), failpoint_hits("b")) == (2, 1)


def test_the_first_matching_entry_of_a_name_acts(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "a:raise@2;a:sleep(0)")
    assert raising_hits("a", 4) == [2]


# ------------------------------------------------------------------ sleep


def test_sleep_pauses_the_calling_thread_at_least_that_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm(monkeypatch, "worker.poll:sleep(30)")
    started = time.monotonic()
    failpoint("worker.poll")
    assert time.monotonic() - started >= 0.03


async def test_an_async_sleep_lets_other_tasks_run_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm(monkeypatch, "worker.poll:sleep(50)")
    ran: list[str] = []

    async def other_task() -> None:
        ran.append("other")

    other = asyncio.create_task(other_task())
    await async_failpoint("worker.poll")
    assert ran == ["other"]
    await other


# ------------------------------------------------------------------ probability


def test_a_probability_picks_the_same_hits_for_the_same_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm(monkeypatch, "store.append:raise%30", seed="1234")
    first_run = raising_hits("store.append", 200)
    reset_failpoints()
    second_run = raising_hits("store.append", 200)
    assert first_run == second_run
    assert 0 < len(first_run) < 200


def test_a_different_seed_picks_different_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "store.append:raise%30", seed="1")
    with_seed_one = raising_hits("store.append", 200)
    arm(monkeypatch, "store.append:raise%30", seed="2")
    with_seed_two = raising_hits("store.append", 200)
    assert with_seed_one != with_seed_two


def test_a_probability_applies_only_to_the_selected_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "store.append:raise@50+%50")
    raised = raising_hits("store.append", 200)
    assert raised
    assert min(raised) >= 50


# ------------------------------------------------------------------ the cache


def test_changing_the_variable_starts_the_counts_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "a:raise@3")
    assert raising_hits("a", 2) == []
    monkeypatch.setenv(FAILPOINTS_VARIABLE, "a:raise@2")
    assert raising_hits("a", 2) == [2]


def test_reset_forgets_the_hit_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "a:raise@3")
    assert raising_hits("a", 2) == []
    reset_failpoints()
    assert failpoint_hits("a") == 0
    assert raising_hits("a", 3) == [3]


# ------------------------------------------------------------------ parsing


def test_a_spec_parses_into_rules_per_name_in_order() -> None:
    rules = parse_failpoints(" a:crash@3 ; b:sleep(250)@2+%12.5 ; a:raise ; ")
    assert rules == {
        "a": (
            FailpointRule("a", "crash", hit=3),
            FailpointRule("a", "raise"),
        ),
        "b": (FailpointRule("b", "sleep", 250, hit=2, onward=True, percent=12.5),),
    }


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        pytest.param("projection", "expected name:action", id="no-action"),
        pytest.param("projection:", "expected name:action", id="empty-action"),
        pytest.param(":crash", "expected name:action", id="no-name"),
        pytest.param("a b:crash", "may hold only", id="bad-name"),
        pytest.param("a:boom", "unknown action 'boom'", id="unknown-action"),
        pytest.param("a:@3", "expected an action", id="modifier-only"),
        pytest.param("a:crash(1)", "takes no argument", id="crash-argument"),
        pytest.param("a:sleep", "whole milliseconds", id="sleep-without-ms"),
        pytest.param("a:sleep(1.5)", "whole milliseconds", id="sleep-fraction"),
        pytest.param("a:crash@0", "count from 1", id="hit-zero"),
        pytest.param("a:crash@", "cannot read '@'", id="hit-missing"),
        pytest.param("a:crash@x", "cannot read '@x'", id="hit-not-a-number"),
        pytest.param("a:raise%0", "not in (0, 100]", id="zero-percent"),
        pytest.param("a:raise%101", "not in (0, 100]", id="over-100-percent"),
        pytest.param("a:raise%5@2", "in that order", id="modifiers-swapped"),
    ],
)
def test_a_malformed_entry_is_rejected_with_its_text_and_reason(entry: str, reason: str) -> None:
    with pytest.raises(FailpointSpecError) as caught:
        parse_failpoints(f"good.one:raise@1;{entry}")
    assert caught.value.part == entry
    assert reason in caught.value.reason
    assert repr(entry) in str(caught.value)
    assert isinstance(caught.value, CqrsDddError)


def test_a_malformed_variable_fails_the_first_hit_of_any_failpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm(monkeypatch, "a:crash;b:explode")
    with pytest.raises(FailpointSpecError, match="'b:explode'"):
        failpoint("unrelated")


# ------------------------------------------------------------------ crash, in a real process


CRASHING_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from cqrs_ddd_core.failpoints import async_failpoint, failpoint

    async def hit_async():
        await async_failpoint("child.point")

    for number in range(1, 6):
        print(f"hit {number}", flush=True)
        if sys.argv[1] == "async":
            asyncio.run(hit_async())
        else:
            failpoint("child.point")
    print("survived", flush=True)
    """
)


def run_child(code: str, *args: str, spec: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, FAILPOINTS_VARIABLE: spec}
    return subprocess.run(  # noqa: S603 - our own interpreter running our own test code
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize(
    ("spec", "dying_hit"),
    [
        pytest.param("child.point:crash@3", 3, id="at-3"),
        pytest.param("child.point:crash", 1, id="every-hit"),
        pytest.param("child.point:crash@2+", 2, id="from-2-on"),
    ],
)
def test_crash_kills_the_process_with_sigkill_at_exactly_the_armed_hit(
    spec: str, dying_hit: int, flavour: str
) -> None:
    result = run_child(CRASHING_CHILD, flavour, spec=spec)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout.splitlines() == [f"hit {n}" for n in range(1, dying_hit + 1)]


def test_a_child_whose_failpoint_is_not_armed_runs_to_the_end() -> None:
    result = run_child(CRASHING_CHILD, "sync", spec="other.point:crash")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "survived"


def test_importing_the_module_reads_no_environment() -> None:
    code = "import cqrs_ddd_core.failpoints; print('imported', flush=True)"
    result = run_child(code, spec="this is :: not a spec")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"

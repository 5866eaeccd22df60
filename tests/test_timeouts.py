"""Per-test timeouts: a test that hangs fails at its limit instead of running until CI's.

Each test runs an inner pytest in a child process, with the workspace's timeout
method (read from the root pyproject.toml) and a one-second timeout, so the
inner tests that overrun fail within seconds; the outer run's own timer is left
alone. The reliability scenarios' longer limits are checked with the real
tests/reliability/conftest.py.
"""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
RELIABILITY = ROOT / "tests" / "reliability"
WORKSPACE_PYTEST = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
    "ini_options"
]

INNER_RUN_LIMIT = 60
"""Seconds an inner run may take: far below what a hanging inner test would."""


@pytest.fixture
def timed_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose inner runs use the workspace's timeout method, at one second."""
    monkeypatch.delenv("PYTEST_TIMEOUT", raising=False)
    pytester.makeini(
        f"""\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest -p no:faker
pythonpath = {RELIABILITY}
markers = soak: long reliability runs
filterwarnings = error
timeout = 1
timeout_method = {WORKSPACE_PYTEST["timeout_method"]}
"""
    )
    return pytester


def run_inner(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, float]:
    """Run the inner tests in a child pytest; return its result and how long it took."""
    started = time.monotonic()
    result = pytester.runpytest_subprocess(*args, timeout=INNER_RUN_LIMIT)
    return result, time.monotonic() - started


def test_the_workspace_sets_a_default_timeout_for_every_test() -> None:
    assert int(WORKSPACE_PYTEST["timeout"]) > 0
    assert WORKSPACE_PYTEST["timeout_method"] in {"signal", "thread"}


def test_a_test_that_sleeps_past_its_timeout_fails_instead_of_hanging(
    timed_pytester: pytest.Pytester,
) -> None:
    # given: a test sleeping a minute, and one after it
    timed_pytester.makepyfile(
        """
        import time

        def test_sleeps():
            time.sleep(60)

        def test_after():
            pass
        """
    )
    # when
    result, took = run_inner(timed_pytester)
    # then: the sleeper failed at its timeout, and the run went on to the next test
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>1.0s) from pytest-timeout*"])
    assert took < 30


def test_an_async_test_that_awaits_past_its_timeout_fails_and_the_run_goes_on(
    timed_pytester: pytest.Pytester,
) -> None:
    # given: pytest-asyncio running a test that waits a minute, and one after it
    timed_pytester.makepyfile(
        """
        import asyncio

        async def test_waits():
            await asyncio.sleep(60)

        async def test_after():
            await asyncio.sleep(0)
        """
    )
    # when
    result, took = run_inner(timed_pytester)
    # then
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>1.0s) from pytest-timeout*"])
    assert took < 30


def test_a_test_waiting_on_a_child_process_past_its_timeout_fails_and_the_child_is_ended(
    timed_pytester: pytest.Pytester,
) -> None:
    # given: a test (five seconds allowed) waiting on a child process that sleeps a minute
    pid_file = timed_pytester.path / "child.pid"
    timed_pytester.makepyfile(
        f"""
        import subprocess
        import sys

        import pytest

        CHILD = (
            "import os, time; "
            "open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
            "time.sleep(60)"
        )

        @pytest.mark.timeout(5)  # time for the child to start and write its pid
        def test_waits_on_a_child():
            subprocess.run([sys.executable, "-c", CHILD], check=True)
        """
    )
    # when
    result, took = run_inner(timed_pytester)
    # then: the test failed, and the child did not outlive it
    result.assert_outcomes(failed=1)
    assert took < 30
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


RELIABILITY_TESTS = """
import pytest


def limit(request):
    marker = request.node.get_closest_marker("timeout")
    return None if marker is None else marker.args


def test_scenario(request):
    print("limit:", limit(request))


@pytest.mark.soak
def test_soak_size(request):
    print("limit:", limit(request))


@pytest.mark.timeout(5)
def test_with_its_own_limit(request):
    print("limit:", limit(request))
"""


def test_a_reliability_scenario_gets_ten_minutes_a_soak_size_an_hour_and_its_own_limit_wins(
    timed_pytester: pytest.Pytester,
) -> None:
    # given: the reliability scenarios' conftest, and tests of each kind beside it
    timed_pytester.makeconftest((RELIABILITY / "conftest.py").read_text())
    timed_pytester.makepyfile(RELIABILITY_TESTS)
    # when: soak sizes included
    result, _ = run_inner(timed_pytester, "-m", "soak or not soak", "-s", "-v")
    # then
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_scenario limit: (600,)*",
            "*test_soak_size limit: (3600,)*",
            "*test_with_its_own_limit limit: (5,)*",
        ]
    )


def test_an_explicit_timeout_option_wins_over_the_reliability_defaults(
    timed_pytester: pytest.Pytester,
) -> None:
    # given
    timed_pytester.makeconftest((RELIABILITY / "conftest.py").read_text())
    timed_pytester.makepyfile(RELIABILITY_TESTS)
    # when: --timeout=0, to debug a scenario without any limit
    result, _ = run_inner(timed_pytester, "--timeout=0", "-s", "-v")
    # then: no default marker was added; soak sizes stay skipped without -m soak
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(
        ["*test_scenario limit: None*", "*test_with_its_own_limit limit: (5,)*"]
    )

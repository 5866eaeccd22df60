"""The event-sourced mediator example runs as a script and shows what its three examples claim.

``examples/event_sourcing/mediator_extension.py`` checks its own claims and
exits non-zero when one fails; this test runs it as a user would, in a
subprocess with the test's interpreter, once, and reads the lines that say
where each command's events went.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "event_sourcing" / "mediator_extension.py"

EXAMPLE_1 = "Example 1: EventSourcedMediator with an EventSourcedPersistenceOrchestrator"
EXAMPLE_2 = "Example 2: EventSourcedMediatorFactory"
EXAMPLE_3 = "Example 3: @non_event_sourced"


@pytest.fixture(scope="module")
def output() -> list[str]:
    completed = subprocess.run(  # noqa: S603 (the repository's own script)
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def section(lines: list[str], title: str) -> list[str]:
    """Return the indented lines under ``title``, unindented."""
    start = lines.index(title) + 1
    end = start
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return [line.strip() for line in lines[start:end]]


def test_the_three_examples_run_in_order_and_all_succeed(output: list[str]) -> None:
    titles = [line for line in output if not line.startswith("  ")]
    assert titles == [EXAMPLE_1, EXAMPLE_2, EXAMPLE_3, "all three examples ran as described"]


def test_example_1_stores_the_orders_events_and_not_the_preferences(output: list[str]) -> None:
    assert section(output, EXAMPLE_1) == [
        "CreateOrder returned ['OrderCreated']",
        "ChangePreferences returned ['PreferencesChanged']",
        "event store: Order.OrderCreated v1",
        "stored event stamped with the command's correlation id",
        "UserPreferences events in the event store: none",
    ]


def test_example_2_the_factory_routes_each_aggregate_type(output: list[str]) -> None:
    assert section(output, EXAMPLE_2) == [
        "event store: Order.OrderCreated v1, Order.OrderConfirmed v2, Invoice.InvoiceIssued v1",
        "order rebuilt from its stream: status confirmed, version 2",
        "preferences kept as state: {'theme': 'dark'}, no events in the event store",
    ]


def test_example_3_the_mark_keeps_preferences_out_of_the_event_store(output: list[str]) -> None:
    assert section(output, EXAMPLE_3) == [
        "before registering: is_event_sourced(UserPreferences) = False (the mark)",
        "before registering: is_event_sourced('UserPreferences') = True (the default)",
        "after registering: is_event_sourced('UserPreferences') = False",
        "event store: Order.OrderCreated v1",
        "preferences kept as state: {'theme': 'light', 'language': 'el'}, version 2",
    ]

"""Fixtures wiring the shared shop domain to in-memory adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore

if TYPE_CHECKING:
    # mypy's search path does not hold pytest's `pythonpath`; it knows the file by its full path.
    from packages.advanced.tests.advanced_test_model import RecordingDispatcher, Shop, build_shop
else:
    from advanced_test_model import RecordingDispatcher, Shop, build_shop


@pytest.fixture
def event_store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def shop(event_store: InMemoryEventStore) -> Shop:
    return build_shop(event_store)


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()

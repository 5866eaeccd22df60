"""Contract test suites that every implementation of a core port must pass.

Import them in a test module of the adapter and provide the fixtures they ask
for; see each suite's docstring. They need pytest and pytest-asyncio (the
``testing`` extra of ``cqrs-ddd-core``).
"""

from __future__ import annotations

from cqrs_ddd_core.contracts.event_store_contract import EventStoreContract

__all__ = ["EventStoreContract"]

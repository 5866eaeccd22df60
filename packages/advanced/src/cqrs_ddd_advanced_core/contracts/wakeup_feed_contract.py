"""The contract every ``WakeupFeed`` implementation passes.

Subclass :class:`WakeupFeedContract` in a test module and provide:

* ``worker_storage``: a fresh :class:`~cqrs_ddd_advanced_core.workers.WorkerStorage`
  whose ``wakeups`` are the feed under test;
* ``append_event``: appends an event, in this process, through the event store
  whose workers keep their state in ``worker_storage`` (the store that notifies
  its wake-up);
* ``append_elsewhere`` (optional): appends an event to the same database from
  outside what this process shares with the feed (another engine, as another
  process would), or None when the feed hears its own process only; the
  suite's default is None, which skips the test that needs it.

What a worker relies on: the wake-up it listens on is released by a notify
and by this process's appends; where the feed reaches across processes, by
appends committed elsewhere; and the block leaves nothing running behind.
Waits are bounded by :data:`~cqrs_ddd_advanced_core.contracts.lease_store_contract.DEADLINE`;
no test measures how fast a wake-up arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from cqrs_ddd_advanced_core.contracts.lease_store_contract import DEADLINE
from cqrs_ddd_advanced_core.workers import WakeupListener, WorkerStorage

Append = Callable[[], Awaitable[None]]
"""Appends one event (how and where is the adapter's test module's business)."""


async def is_woken(listener: WakeupListener) -> bool:
    """Wait for ``listener``'s next wake-up; False when none came within the deadline."""
    try:
        async with asyncio.timeout(DEADLINE):
            await listener.wait(DEADLINE * 10)
    except TimeoutError:
        return False
    return True


class WakeupFeedContract:
    """Behaviour shared by every wake-up feed: notifies and appends reach a listening worker."""

    @pytest.fixture
    def append_elsewhere(self) -> Append | None:
        """Return None: by default a feed is not expected to hear other processes."""
        return None

    async def test_a_notify_of_the_yielded_wakeup_releases_a_waiting_listener(
        self, worker_storage: WorkerStorage
    ) -> None:
        async with worker_storage.wakeups.listening() as wakeup:
            # given a worker waiting on the wake-up the feed yields
            listener = wakeup.listener()
            waiting = asyncio.create_task(is_woken(listener))
            await asyncio.sleep(0)
            # when it is notified
            wakeup.notify()
            # then the wait ends
            assert await waiting

    async def test_an_append_in_this_process_wakes_a_listener(
        self, worker_storage: WorkerStorage, append_event: Append
    ) -> None:
        async with worker_storage.wakeups.listening() as wakeup:
            # given a worker listening
            listener = wakeup.listener()
            # when an event is appended where the worker reads
            await append_event()
            # then it is woken
            assert await is_woken(listener)

    async def test_an_append_committed_elsewhere_wakes_a_listener(
        self, worker_storage: WorkerStorage, append_elsewhere: Append | None
    ) -> None:
        if append_elsewhere is None:
            pytest.skip("this feed hears its own process only")
        async with worker_storage.wakeups.listening() as wakeup:
            # given a worker listening
            listener = wakeup.listener()
            # when another process (another engine) appends to the same database
            await append_elsewhere()
            # then the worker is woken, though nothing in this process notified it
            assert await is_woken(listener)
            # and again for the next one
            await append_elsewhere()
            assert await is_woken(listener)

    async def test_leaving_the_block_leaves_no_task_behind(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given the tasks running before a worker listens
        before = asyncio.all_tasks()
        # when it listens for a while, then stops
        async with worker_storage.wakeups.listening() as wakeup:
            await wakeup.wait(0.1)
        # then nothing the feed started is still running
        assert asyncio.all_tasks() == before

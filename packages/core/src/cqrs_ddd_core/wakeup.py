"""``Wakeup``: tells waiting background workers that there may be work for them.

A store calls :meth:`Wakeup.notify` after it commits something a worker
processes (an event store after an append); a worker waits on a
:meth:`Wakeup.listener` instead of sleeping through its whole poll interval.
A wake-up is only a hint: workers still poll, so a lost one delays work, never
loses it. It is in-process; adapters that reach further (PostgreSQL's
``LISTEN``) feed the same object from outside.

The composition root builds one and hands it to the store that notifies and to
the workers that wait; no wake-up is ever found through hidden shared state.
"""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    """An in-process wake-up: :meth:`notify` releases every current waiter.

    A notification made between two waits of a :class:`WakeupListener` is not
    lost: its next wait returns at once. Safe to share between tasks of one
    event loop; a new loop (a test's) starts afresh.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0

    @property
    def generation(self) -> int:
        """How many notifications were made so far."""
        return self._generation

    def notify(self) -> None:
        """Wake every waiter."""
        self._generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def listener(self) -> WakeupListener:
        """Return a listener that sees every notification made from now on."""
        return WakeupListener(self)

    async def wait(self, seconds: float, *, seen: int | None = None) -> int:
        """Wait for a notification after ``seen`` (default: now), for at most ``seconds``.

        Returns the generation seen on return, to pass as ``seen`` next time.
        """
        if seen is not None and seen != self._generation:
            return self._generation
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # an asyncio.Event belongs to one loop; tests run several
            self._loop, self._event = loop, asyncio.Event()
        event = self._event
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
        return self._generation


class WakeupListener:
    """One waiter's view of a :class:`Wakeup`: no notification since its last wait is lost."""

    def __init__(self, wakeup: Wakeup) -> None:
        self._wakeup = wakeup
        self._seen = wakeup.generation

    async def wait(self, seconds: float) -> None:
        """Return when the wake-up was notified since the last wait, or after ``seconds``."""
        self._seen = await self._wakeup.wait(seconds, seen=self._seen)

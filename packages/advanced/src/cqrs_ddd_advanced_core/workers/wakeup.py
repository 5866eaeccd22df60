"""Wake-ups for workers: the in-process :class:`Wakeup`, and a feed from outside the process.

A store notifies a :class:`~cqrs_ddd_core.wakeup.Wakeup` when it commits work
for workers; a :class:`WakeupFeed` keeps a wake-up notified by what other
processes commit too, for as long as a worker listens (PostgreSQL ``LISTEN``).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from cqrs_ddd_core.wakeup import Wakeup, WakeupListener


class WakeupFeed(Protocol):
    """Keeps a wake-up notified of work committed anywhere, while a block runs."""

    def listening(self) -> AbstractAsyncContextManager[Wakeup]:
        """Yield the wake-up, fed from outside the process until the block ends.

        An in-process feed yields it as it is: only this process's commits
        notify it (other processes' work is found by polling).
        """
        ...


__all__ = ["Wakeup", "WakeupFeed", "WakeupListener"]

"""Leases: which worker may do a job now, fenced by an epoch.

One worker at a time holds a job's lease, for a limited time it renews while it
works. Every takeover increments the lease's epoch, the fencing token: a worker
that lost its lease (stopped, cut off, paused past its time) finds its epoch
refused by every store it writes through, so its late writes never land.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to do the job ``name``: held by ``owner`` for ``epoch``.

    ``position`` is the job's checkpoint when the lease was taken (where its
    work resumes).
    """

    name: str
    owner: str
    epoch: int
    position: int = 0

    @property
    def projection(self) -> str:
        """The job's name, as the projection worker calls it."""
        return self.name


class LeaseStore(Protocol):
    """Hands out, renews and takes back leases of named jobs, atomically across processes."""

    async def acquire(
        self, name: str, owner: str, ttl: float, *, kind: str | None = None
    ) -> Lease | None:
        """Take the lease when it is free, expired or already ``owner``'s; else None.

        A taken lease has a new epoch and lasts ``ttl`` seconds of the store's
        clock unless renewed. A halted job's lease is never handed out.
        ``kind`` (``"projection"``, ``"relay"``...) is recorded with the job,
        so that a tool reading the store can tell its jobs apart; ``None``
        keeps the kind recorded before.
        """
        ...

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease`` by ``ttl`` seconds; False when it was lost (nothing changes)."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up at once (no-op when it was lost)."""
        ...

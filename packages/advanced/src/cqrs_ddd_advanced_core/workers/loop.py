"""``WorkerLoop``: the one loop every background worker runs, around a job of its own.

For one job (a projection, later a relay or a scheduler) the loop:

1. takes the job's lease, or waits as a standby while another worker holds it;
2. asks the job for the next piece of work (:meth:`Job.step`) under the lease;
3. when there was nothing to do, renews the lease if it is getting old and waits
   for a wake-up or the poll interval;
4. on a transient error (anything but a halt), drops the lease and backs off
   exponentially (tenacity), so a database that went away is not hammered;
5. when the job halts (``WorkHaltedError``: an item it cannot process and is
   configured to stop at), hands the error to the job, gives the lease up and
   ends.

A lease lost to another worker is not an error: the loop goes back to standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Literal, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from cqrs_ddd_advanced_core.domain.exceptions import LeaseLostError, WorkHaltedError
from cqrs_ddd_advanced_core.workers.lease import Lease, LeaseStore
from cqrs_ddd_core.wakeup import Wakeup

_logger = logging.getLogger(__name__)

WorkerState = Literal["idle", "running", "standby", "halted", "stopped"]
"""Where a job's loop is: not started, working, waiting for the lease, halted, stopped."""


class Job(Protocol):
    """The work a :class:`WorkerLoop` drives; the job keeps its own progress."""

    @property
    def name(self) -> str:
        """The job's name: the key of its lease, checkpoint and dead letters."""
        ...

    @property
    def kind(self) -> str:
        """What kind of job it is (``"projection"``), for logs and status."""
        ...

    def leased(self, lease: Lease) -> None:
        """Learn that the loop took ``lease``: resume from ``lease.position``."""
        ...

    async def step(self, lease: Lease) -> bool:
        """Do the next piece of work under ``lease``; return False when there was none.

        Work done is committed in a transaction fenced by ``lease``, which
        also extends it.
        """
        ...

    async def halted(self, error: WorkHaltedError, lease: Lease | None) -> None:
        """Record that the job stopped at ``error`` (the loop still holds ``lease``)."""
        ...


class WorkerLoop:
    """Runs one :class:`Job` under its lease, in the background or to the end of its work.

    ``nudge`` wakes the loop early: the worker notifies it when new work may
    have been committed, and to stop. ``lease_ttl`` is how long a lease lasts
    without renewal; an idle loop renews it every third of that. ``logger``
    is where the loop reports lost leases, failures and halts (the worker's
    own by default).
    """

    def __init__(
        self,
        job: Job,
        leases: LeaseStore,
        *,
        owner: str,
        nudge: Wakeup,
        lease_ttl: float,
        poll_interval: float,
        retry_backoff: float,
        max_backoff: float,
        logger: logging.Logger | None = None,
    ) -> None:
        self.job = job
        self.logger = logger or _logger
        self.leases = leases
        self.owner = owner
        self.nudge = nudge
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.lease: Lease | None = None
        self.state: WorkerState = "idle"
        self.last_error: str | None = None
        """The transient failure the loop is backing off from (``None`` once a step succeeds)."""
        self.task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._renewed_at = 0.0
        self._retrying = AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            wait=wait_exponential(multiplier=2 * retry_backoff, max=max_backoff),
            sleep=self._pause,
            before_sleep=self._report,
            reraise=True,
        )

    @property
    def name(self) -> str:
        """The job's name."""
        return self.job.name

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until ``stopping`` is set or the job halts."""
        self._stopping = stopping
        try:
            while not stopping.is_set():
                async for attempt in self._retrying:
                    with attempt:
                        await self._cycle(stopping)
        except WorkHaltedError as halted:
            self.logger.error("%s", halted)
            await self._halt(halted)

    async def drain(self) -> None:
        """Do all the work there is now, in the caller's task, then give the lease back.

        Does nothing when another worker holds the lease. A halt is recorded
        and raised.
        """
        if not await self.take_lease():
            return
        try:
            self.state = "running"
            while await self._step():
                pass
        except WorkHaltedError as halted:
            await self._halt(halted)
            raise
        finally:
            if self.state == "running":
                self.state = "idle"
            await self.give_up_lease()

    async def take_lease(self) -> bool:
        """Take the job's lease; False when another worker holds it."""
        lease = await self.leases.acquire(
            self.job.name, self.owner, self.lease_ttl, kind=self.job.kind
        )
        if lease is None:
            return False
        self.lease = lease
        self.job.leased(lease)
        self._renewed_at = time.monotonic()
        return True

    async def keep_lease(self) -> None:
        """Renew the lease when a third of its time has passed; raise ``LeaseLostError``."""
        lease = self.lease
        if lease is None or time.monotonic() - self._renewed_at < self.lease_ttl / 3:
            return
        if not await self.leases.renew(lease, self.lease_ttl):
            raise LeaseLostError(lease.name, lease.owner, lease.epoch)
        self._renewed_at = time.monotonic()

    async def give_up_lease(self) -> None:
        """Release the lease, if held (a standby takes over at once)."""
        lease, self.lease = self.lease, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await self.leases.release(lease)

    async def _cycle(self, stopping: asyncio.Event) -> None:
        if stopping.is_set():
            return
        seen = self.nudge.generation
        try:
            if self.lease is None and not await self.take_lease():
                self.state = "standby"
                self.last_error = None  # another worker does the job now
                await self.nudge.wait(min(self.lease_ttl / 4, self.poll_interval * 2))
                return
            self.state = "running"
            if await self._step():
                return
            await self.keep_lease()
            # wake often enough to renew the lease before it runs out
            await self.nudge.wait(min(self.poll_interval, self.lease_ttl / 3), seen=seen)
        except LeaseLostError as lost:
            self.logger.info("%s", lost)
            self.lease = None

    async def _step(self) -> bool:
        lease = self.lease
        if lease is None:
            raise LeaseLostError(self.job.name, "?", 0)
        worked = await self.job.step(lease)
        self.last_error = None
        if worked:  # the work's fenced transaction extended the lease
            self._renewed_at = time.monotonic()
        return worked

    async def _halt(self, halted: WorkHaltedError) -> None:
        self.state = "halted"
        await self.job.halted(halted, self.lease)
        await self.give_up_lease()

    async def _pause(self, seconds: float) -> None:
        # a back-off is not cut short by new work (a busy system would retry a failing
        # step at every append); only stopping ends it early
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _report(self, retry_state: RetryCallState) -> None:
        self.lease = None
        delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if error is not None:
            self.last_error = f"{type(error).__name__}: {error}"[:2000]
        self.logger.error(
            "%s %r failed; again in %.2fs",
            self.job.kind,
            self.job.name,
            delay,
            exc_info=error,
        )


async def lease_for_side_work(
    loop: WorkerLoop, leases: LeaseStore, lease_ttl: float
) -> tuple[Lease, bool]:
    """Return a lease of ``loop``'s job to do side work under, and whether it is borrowed.

    Side work (replaying dead letters) writes where the job writes, so it
    runs under the job's lease: the loop's own while it holds it (borrowed:
    do not release it), else one taken for the purpose under an owner of its
    own (release it after). Raises ``LeaseLostError`` when another worker
    holds the job.
    """
    if loop.lease is not None:
        return loop.lease, True
    # an owner of its own: taking the lease as the worker would bump the epoch
    # under the worker's loop if it were acquiring at this moment
    owner = f"{loop.owner}/replay"
    lease = await leases.acquire(loop.name, owner, lease_ttl, kind=loop.job.kind)
    if lease is not None:
        return lease, False
    if loop.task is not None:
        # this worker's own loop may be taking the lease right now: borrow it
        borrowed = await _lease_taken_by(loop, lease_ttl)
        if borrowed is not None:
            return borrowed, True
    raise LeaseLostError(loop.name, owner, 0)


async def _lease_taken_by(loop: WorkerLoop, lease_ttl: float) -> Lease | None:
    """Wait (up to ``lease_ttl``) for ``loop`` to take its lease; None when it does not."""
    deadline = time.monotonic() + lease_ttl
    while loop.lease is None and loop.task is not None and time.monotonic() < deadline:
        if loop.task.done() or loop.state == "standby":
            return None
        await asyncio.sleep(0.01)
    return loop.lease


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, Exception) and not isinstance(error, WorkHaltedError)

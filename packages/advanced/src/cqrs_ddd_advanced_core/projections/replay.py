"""Replaying a projection's dead letters: each one applied again, in its own transaction.

A letter that applies is deleted in the transaction that applies it; one that
fails again stays, with its attempts and error updated. The checkpoint does not
move. Letters past the checkpoint (a halted projection's) are left to the
worker, which tries them again when the projection resumes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from cqrs_ddd_advanced_core.domain.exceptions import LeaseLostError
from cqrs_ddd_advanced_core.projections.failures import dead_letter
from cqrs_ddd_advanced_core.projections.job import ProjectionJob
from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter
from cqrs_ddd_advanced_core.workers.lease import Lease
from cqrs_ddd_advanced_core.workers.loop import WorkerLoop
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying a projection's dead letters did."""

    applied: list[int]
    failed: list[DeadLetter]


async def replay_dead_letters(
    loop: WorkerLoop, storage: WorkerStorage, lease_ttl: float
) -> ReplayResult:
    """Apply the dead letters of ``loop``'s projection again (see the module docstring)."""
    job = loop.job
    assert isinstance(job, ProjectionJob)  # noqa: S101 - projection loops run these
    checkpoint = (await storage.checkpoints.record(job.name)).position
    letters = [
        letter
        for letter in await storage.letters.dead_letters(job.name)
        if letter.position <= checkpoint
    ]
    if not letters:
        return ReplayResult([], [])
    lease, borrowed = await _lease_for_replay(loop, storage, lease_ttl)
    try:
        result = ReplayResult([], [])
        for letter in letters:
            await _replay_one(job, storage, letter, result, lease=lease, lease_ttl=lease_ttl)
        return result
    finally:
        if not borrowed:
            await storage.leases.release(lease)


async def _lease_for_replay(
    loop: WorkerLoop, storage: WorkerStorage, lease_ttl: float
) -> tuple[Lease, bool]:
    """Return a lease to replay under, and whether it is the loop's own (borrowed)."""
    if loop.lease is not None:
        return loop.lease, True
    # an owner of its own: taking the lease as the worker would bump the epoch
    # under the worker's loop if it were acquiring at this moment
    owner = f"{loop.owner}/replay"
    lease = await storage.leases.acquire(loop.name, owner, lease_ttl, kind=loop.job.kind)
    if lease is not None:
        return lease, False
    if loop.task is not None:
        # this worker's own loop may be taking the lease right now: borrow it
        borrowed = await _loop_lease(loop, lease_ttl)
        if borrowed is not None:
            return borrowed, True
    raise LeaseLostError(loop.name, owner, 0)


async def _loop_lease(loop: WorkerLoop, lease_ttl: float) -> Lease | None:
    deadline = time.monotonic() + lease_ttl
    while loop.lease is None and loop.task is not None and time.monotonic() < deadline:
        if loop.task.done() or loop.state == "standby":
            return None
        await asyncio.sleep(0.01)
    return loop.lease


async def _replay_one(
    job: ProjectionJob,
    storage: WorkerStorage,
    letter: DeadLetter,
    result: ReplayResult,
    *,
    lease: Lease,
    lease_ttl: float,
) -> None:
    found = await job.event_store.read_all(after_position=letter.position - 1, limit=1)
    if not found or found[0].position != letter.position:
        return
    step = job.plan(found)[0]
    async with storage.batch(lease, lease_ttl) as transaction:
        error = step.error
        if error is None:
            try:
                async with transaction.savepoint():
                    await job.apply(step, transaction)
            except Exception as raised:  # noqa: BLE001 - any handler error is recorded
                error = raised
        if error is None:
            await storage.letters.resolve(transaction, job.name, letter.position)
            result.applied.append(letter.position)
            return
        again = dead_letter(
            job.name,
            step.stored,
            error,
            attempts=letter.attempts + 1,
            first_seen=letter.first_seen_at,
        )
        await storage.letters.quarantine(transaction, again)
        result.failed.append(again)

"""Replaying a projection's dead letters: each one applied again, in its own transaction.

A letter that applies is deleted in the transaction that applies it; one that
fails again stays, with its attempts and error updated. The checkpoint does not
move. Letters past the checkpoint (a halted projection's) are left to the
worker, which tries them again when the projection resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cqrs_ddd_advanced_core.projections.job import ProjectionJob
from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter, event_of
from cqrs_ddd_advanced_core.workers.lease import Lease
from cqrs_ddd_advanced_core.workers.loop import WorkerLoop, lease_for_side_work
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
    lease, borrowed = await lease_for_side_work(loop, storage.leases, lease_ttl)
    try:
        result = ReplayResult([], [])
        for letter in letters:
            await _replay_one(job, storage, letter, result, lease=lease, lease_ttl=lease_ttl)
        return result
    finally:
        if not borrowed:
            await storage.leases.release(lease)


async def _replay_one(
    job: ProjectionJob,
    storage: WorkerStorage,
    letter: DeadLetter,
    result: ReplayResult,
    *,
    lease: Lease,
    lease_ttl: float,
) -> None:
    stored = await event_of(job.event_store, letter)
    if stored is None:
        return
    step = job.plan([stored])[0]
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
        again = letter.failed_again(step.stored, error)
        await storage.letters.quarantine(transaction, again)
        result.failed.append(again)

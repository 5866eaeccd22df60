"""The contract every ``CheckpointStore`` (and its ``WorkTransaction``) passes.

Subclass :class:`CheckpointStoreContract` in a test module and provide a
``worker_storage`` fixture: a fresh :class:`~cqrs_ddd_advanced_core.workers.WorkerStorage`
whose ``checkpoints`` are the store under test (its lease store hands out the
leases the transactions are fenced by). Every test then runs against the adapter.

What a worker relies on: a checkpoint moves only when its transaction commits,
and only forward; a transaction under a lease that is no longer the holder's
(taken over, superseded, reset) is refused and stores nothing, the fence that
keeps a replaced worker's late writes out; a halt commits with its transaction
and keeps every lease of the job refused until it is resumed; a reset starts
the job over and fences out whoever was doing it.
"""

from __future__ import annotations

import asyncio

import pytest

from cqrs_ddd_advanced_core.contracts.lease_store_contract import (
    JOB,
    LONG_TTL,
    SHORT_TTL,
    advanced_to,
    taken_over,
)
from cqrs_ddd_advanced_core.workers import (
    CheckpointRegressionError,
    Lease,
    LeaseLostError,
    WorkerRecord,
    WorkerStorage,
    WorkTransaction,
)


class _WorkFailedError(Exception):
    """The failure the suite raises inside a transaction."""


async def held_lease(storage: WorkerStorage, owner: str = "worker-a") -> Lease:
    """Return the lease of the suites' job, taken for ``owner`` for a long time."""
    lease = await storage.leases.acquire(JOB, owner, LONG_TTL)
    assert lease is not None, f"{owner} could not take the lease of a free job"
    return lease


async def halted_at(storage: WorkerStorage, lease: Lease, position: int, reason: str) -> None:
    """Advance the job to ``position`` and halt it with ``reason``, in one transaction."""
    async with storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
        transaction.advance(position)
        transaction.halt(reason)


class CheckpointStoreContract:
    """Behaviour shared by every checkpoint store: fenced commits, no regressions, halts, resets."""

    async def test_an_advanced_checkpoint_is_stored_when_its_transaction_commits(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a worker holding the job's lease
        lease = await held_lease(worker_storage)
        # when it advances the checkpoint in a transaction that commits
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            assert transaction.name == JOB
            assert transaction.checkpoint == 0
            transaction.advance(5)
            assert transaction.checkpoint == 5
        # then the checkpoint is stored, and the next transaction starts from it
        assert (await worker_storage.checkpoints.record(JOB)).position == 5
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            assert transaction.checkpoint == 5

    async def test_a_transaction_that_raises_stores_nothing(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a worker at position 3
        lease = await held_lease(worker_storage)
        await advanced_to(worker_storage, lease, 3)

        async def failing() -> None:
            async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
                transaction.advance(9)
                transaction.halt("never committed")
                raise _WorkFailedError

        # when its next transaction advances and halts, then raises
        with pytest.raises(_WorkFailedError):
            await failing()
        # then neither the checkpoint nor the halt was stored, and the lease still holds
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.position, record.halted, record.last_error) == (3, False, None)
        assert await worker_storage.leases.renew(lease, LONG_TTL)

    async def test_a_transaction_under_a_lease_taken_over_is_refused_and_stores_nothing(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a worker whose lease ran out and was taken over at position 2
        old = await worker_storage.leases.acquire(JOB, "worker-a", SHORT_TTL)
        assert old is not None
        await advanced_to(worker_storage, old, 2, ttl=SHORT_TTL)
        new = await taken_over(worker_storage.leases, JOB, "worker-b")

        async def late() -> None:
            async with worker_storage.checkpoints.transaction(old, LONG_TTL) as transaction:
                transaction.advance(8)
                transaction.halt("a late halt")

        # when the old worker, late, commits work under its old lease
        with pytest.raises(LeaseLostError) as raised:
            await late()
        # then it is told it lost the lease, and nothing it did was stored
        assert (raised.value.projection, raised.value.epoch) == (JOB, old.epoch)
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.position, record.halted, record.owner) == (2, False, "worker-b")
        assert await worker_storage.leases.renew(new, LONG_TTL)

    async def test_a_transaction_under_a_lease_its_owner_took_again_is_refused(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given an owner that took the job's lease twice (a restarted process)
        first = await held_lease(worker_storage)
        await held_lease(worker_storage)
        # when work commits under the first lease
        # then it is refused: only the newest epoch writes
        with pytest.raises(LeaseLostError):
            async with worker_storage.checkpoints.transaction(first, LONG_TTL) as transaction:
                transaction.advance(4)
        assert (await worker_storage.checkpoints.record(JOB)).position == 0

    async def test_a_transaction_under_a_released_lease_is_refused(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a worker that gave its lease up
        lease = await held_lease(worker_storage)
        await worker_storage.leases.release(lease)
        # when it commits work under that lease anyway
        # then it is refused and nothing is stored
        with pytest.raises(LeaseLostError):
            async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
                transaction.advance(4)
        assert (await worker_storage.checkpoints.record(JOB)).position == 0

    async def test_a_transaction_extends_the_lease_it_is_fenced_by(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a short lease
        lease = await worker_storage.leases.acquire(JOB, "worker-a", SHORT_TTL)
        assert lease is not None
        # when a transaction for a long time commits under it, and the short term passes
        await advanced_to(worker_storage, lease, 1)
        await asyncio.sleep(SHORT_TTL * 3)
        # then the lease still holds
        assert await worker_storage.leases.acquire(JOB, "worker-b", LONG_TTL) is None
        assert await worker_storage.leases.renew(lease, LONG_TTL)

    async def test_a_checkpoint_never_moves_backwards(self, worker_storage: WorkerStorage) -> None:
        # given a job at position 5
        lease = await held_lease(worker_storage)
        await advanced_to(worker_storage, lease, 5)
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            # when a transaction moves it back
            with pytest.raises(CheckpointRegressionError) as raised:
                transaction.advance(4)
            # then it is refused, naming both positions; the same position again is harmless
            assert (raised.value.checkpoint, raised.value.requested) == (5, 4)
            transaction.advance(5)
            transaction.advance(7)
            with pytest.raises(CheckpointRegressionError):
                transaction.advance(6)
            transaction.advance(7)
        assert (await worker_storage.checkpoints.record(JOB)).position == 7

    async def test_a_halt_commits_with_its_transaction_and_keeps_the_lease_refused(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a worker that reached position 4
        lease = await held_lease(worker_storage)
        # when it halts the job in the transaction that advances there
        await halted_at(worker_storage, lease, 4, "event 5 cannot be applied")
        # then the job is halted at 4 with the reason
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.position, record.halted, record.last_error) == (
            4,
            True,
            "event 5 cannot be applied",
        )
        # and no more work commits, not even under the lease that halted it
        with pytest.raises(LeaseLostError):
            async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
                transaction.advance(6)
        await worker_storage.leases.release(lease)
        assert await worker_storage.leases.acquire(JOB, "worker-b", LONG_TTL) is None
        assert (await worker_storage.checkpoints.record(JOB)).position == 4

    async def test_a_reset_starts_the_job_over_and_fences_out_its_worker(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a worker at position 9
        lease = await held_lease(worker_storage)
        await advanced_to(worker_storage, lease, 9)
        seen: list[str] = []

        async def start_over(transaction: WorkTransaction) -> None:
            seen.append(transaction.name)

        # when the job is reset
        await worker_storage.checkpoints.reset(JOB, start_over)
        # then the callback ran, the job is back at 0 with no holder and a new epoch
        assert seen == [JOB]
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.position, record.owner, record.halted) == (0, None, False)
        assert record.epoch > lease.epoch
        # and the worker that was doing it can write nothing more
        with pytest.raises(LeaseLostError):
            async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
                transaction.advance(10)
        assert not await worker_storage.leases.renew(lease, LONG_TTL)
        # while the next holder starts from 0
        again = await held_lease(worker_storage, "worker-b")
        assert (again.position, again.epoch > record.epoch) == (0, True)

    async def test_a_reset_clears_a_halt(self, worker_storage: WorkerStorage) -> None:
        # given a halted job
        lease = await held_lease(worker_storage)
        await halted_at(worker_storage, lease, 3, "stuck")

        async def nothing(transaction: WorkTransaction) -> None:
            return None

        # when it is reset
        await worker_storage.checkpoints.reset(JOB, nothing)
        # then it is no longer halted, and its lease is handed out again
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.position, record.halted, record.last_error) == (0, False, None)
        assert await worker_storage.leases.acquire(JOB, "worker-b", LONG_TTL) is not None

    async def test_a_reset_whose_callback_raises_changes_nothing(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a worker at position 6
        lease = await held_lease(worker_storage)
        await advanced_to(worker_storage, lease, 6)
        before = await worker_storage.checkpoints.record(JOB)

        async def failing(transaction: WorkTransaction) -> None:
            raise _WorkFailedError

        # when a reset's callback fails
        with pytest.raises(_WorkFailedError):
            await worker_storage.checkpoints.reset(JOB, failing)
        # then the job is as it was, and its worker still holds the lease
        after = await worker_storage.checkpoints.record(JOB)
        assert (after.position, after.owner, after.epoch) == (
            before.position,
            before.owner,
            before.epoch,
        )
        assert await worker_storage.leases.renew(lease, LONG_TTL)

    async def test_a_resume_clears_the_halt_in_a_transaction_at_the_stored_checkpoint(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a job halted at position 4, its lease given up
        lease = await held_lease(worker_storage)
        await halted_at(worker_storage, lease, 4, "stuck")
        await worker_storage.leases.release(lease)
        checkpoints: list[int] = []

        async def go_on(transaction: WorkTransaction) -> None:
            checkpoints.append(transaction.checkpoint)

        # when it is resumed
        await worker_storage.checkpoints.resume(JOB, go_on)
        # then the callback saw the stored checkpoint, the halt is gone, and work goes on from 4
        assert checkpoints == [4]
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.position, record.halted, record.last_error) == (4, False, None)
        again = await held_lease(worker_storage, "worker-b")
        assert again.position == 4

    async def test_a_resume_whose_callback_raises_leaves_the_job_halted(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a halted job
        lease = await held_lease(worker_storage)
        await halted_at(worker_storage, lease, 4, "stuck")
        await worker_storage.leases.release(lease)

        async def failing(transaction: WorkTransaction) -> None:
            raise _WorkFailedError

        # when a resume's callback fails
        with pytest.raises(_WorkFailedError):
            await worker_storage.checkpoints.resume(JOB, failing)
        # then the job is still halted
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.halted, record.last_error) == (True, "stuck")
        assert await worker_storage.leases.acquire(JOB, "worker-b", LONG_TTL) is None

    async def test_the_record_of_an_unknown_job_is_a_fresh_one(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a job nobody worked on
        # when its record is read
        record = await worker_storage.checkpoints.record("never-seen")
        # then it is at the start, free, not halted
        assert record == WorkerRecord("never-seen", 0, None, 0, None, False, None)

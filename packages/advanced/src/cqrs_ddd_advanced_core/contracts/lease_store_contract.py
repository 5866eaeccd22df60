"""The contract every ``LeaseStore`` implementation passes.

Subclass :class:`LeaseStoreContract` in a test module and provide a
``worker_storage`` fixture: a fresh :class:`~cqrs_ddd_advanced_core.workers.WorkerStorage`
whose ``leases`` are the store under test (its checkpoint store is used to move
a job's checkpoint and to halt it). Every test then runs against the adapter.

What a worker relies on: one holder at a time; a new epoch at every hand-out,
which fences every older lease of the job (renew says False, release does
nothing); an expired lease is taken over, a released one at once; a halted job
is never handed out. Expiry is waited for, never faked: the suite takes leases
of :data:`SHORT_TTL` and polls until they run out, for at most :data:`DEADLINE`.
"""

from __future__ import annotations

import asyncio

from cqrs_ddd_advanced_core.workers import Lease, LeaseStore, WorkerStorage

SHORT_TTL = 0.2
"""Seconds of a lease the suite lets run out."""

LONG_TTL = 60.0
"""Seconds of a lease the suite expects to hold for the whole test."""

DEADLINE = 10.0
"""How long the suite waits, at most, for something that should happen soon."""

JOB = "contract-job"
"""The name of the job the suites work on."""


async def taken_over(leases: LeaseStore, name: str, owner: str, *, ttl: float = LONG_TTL) -> Lease:
    """Take the lease of ``name`` for ``owner`` as soon as the holder's runs out.

    Raises ``TimeoutError`` when it is still refused after :data:`DEADLINE`.
    """
    async with asyncio.timeout(DEADLINE):
        while True:
            lease = await leases.acquire(name, owner, ttl)
            if lease is not None:
                return lease
            await asyncio.sleep(SHORT_TTL / 4)


async def advanced_to(
    storage: WorkerStorage, lease: Lease, position: int, *, ttl: float = LONG_TTL
) -> None:
    """Move the job's checkpoint to ``position`` under ``lease``, extended by ``ttl``."""
    async with storage.checkpoints.transaction(lease, ttl) as transaction:
        transaction.advance(position)


class LeaseStoreContract:
    """Behaviour shared by every lease store: one holder, epochs that fence, expiry, halts."""

    async def test_a_free_lease_is_taken_with_epoch_one_at_position_zero(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a job nobody ever worked on
        leases = worker_storage.leases
        # when a worker asks for its lease
        lease = await leases.acquire(JOB, "worker-a", LONG_TTL)
        # then it gets it, first of all, at the start of the log
        assert lease == Lease(JOB, "worker-a", 1, 0)
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.owner, record.epoch) == ("worker-a", 1)

    async def test_the_kind_given_with_a_lease_is_recorded_and_kept(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a job whose first lease was taken by a relay
        leases = worker_storage.leases
        first = await leases.acquire(JOB, "worker-a", LONG_TTL, kind="relay")
        assert first is not None
        assert (await worker_storage.checkpoints.record(JOB)).kind == "relay"
        await leases.release(first)
        # when a caller that does not say the kind takes the lease again
        assert await leases.acquire(JOB, "worker-b", LONG_TTL) is not None
        # then the kind recorded before is kept, for tools that read the store
        assert (await worker_storage.checkpoints.record(JOB)).kind == "relay"

    async def test_a_lease_is_handed_out_at_the_jobs_checkpoint(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a job whose worker reached position 7 and gave its lease up
        leases = worker_storage.leases
        first = await leases.acquire(JOB, "worker-a", LONG_TTL)
        assert first is not None
        await advanced_to(worker_storage, first, 7)
        await leases.release(first)
        # when another worker takes the lease
        second = await leases.acquire(JOB, "worker-b", LONG_TTL)
        # then it resumes where the first one stopped, under a new epoch
        assert second == Lease(JOB, "worker-b", 2, 7)

    async def test_a_held_lease_is_refused_to_another_owner(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a lease held for a long time
        leases = worker_storage.leases
        held = await leases.acquire(JOB, "worker-a", LONG_TTL)
        assert held is not None
        # when another worker asks for it
        refused = await leases.acquire(JOB, "worker-b", LONG_TTL)
        # then it is refused and the holder keeps it
        assert refused is None
        assert await leases.renew(held, LONG_TTL)
        assert (await worker_storage.checkpoints.record(JOB)).owner == "worker-a"

    async def test_a_held_lease_is_handed_to_its_owner_again_under_a_new_epoch(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a lease its owner holds (a restarted process keeps its owner name)
        leases = worker_storage.leases
        first = await leases.acquire(JOB, "worker-a", LONG_TTL)
        assert first is not None
        # when the same owner asks again
        again = await leases.acquire(JOB, "worker-a", LONG_TTL)
        # then it gets a new epoch, which fences the earlier lease
        assert again is not None
        assert again.epoch > first.epoch
        assert not await leases.renew(first, LONG_TTL)
        assert await leases.renew(again, LONG_TTL)

    async def test_an_expired_lease_is_taken_over_and_fences_its_old_holder(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a lease its holder stopped renewing
        leases = worker_storage.leases
        old = await leases.acquire(JOB, "worker-a", SHORT_TTL)
        assert old is not None
        # when another worker takes it over once it ran out
        new = await taken_over(leases, JOB, "worker-b")
        # then the new holder has a new epoch, and the old lease neither renews nor releases
        assert new.epoch > old.epoch
        assert not await leases.renew(old, LONG_TTL)
        await leases.release(old)
        record = await worker_storage.checkpoints.record(JOB)
        assert (record.owner, record.epoch) == ("worker-b", new.epoch)
        assert await leases.acquire(JOB, "worker-c", LONG_TTL) is None
        assert await leases.renew(new, LONG_TTL)

    async def test_renewing_a_lease_keeps_it_past_its_first_term(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a short lease
        leases = worker_storage.leases
        lease = await leases.acquire(JOB, "worker-a", SHORT_TTL)
        assert lease is not None
        # when its holder renews it for long, and the short term passes
        assert await leases.renew(lease, LONG_TTL)
        await asyncio.sleep(SHORT_TTL * 3)
        # then nobody else can take it
        assert await leases.acquire(JOB, "worker-b", LONG_TTL) is None

    async def test_a_released_lease_is_free_at_once_and_its_old_holder_is_fenced(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a lease held for a long time
        leases = worker_storage.leases
        released = await leases.acquire(JOB, "worker-a", LONG_TTL)
        assert released is not None
        # when its holder releases it
        await leases.release(released)
        # then the job has no holder, another worker takes it at once, and the old lease is dead
        assert (await worker_storage.checkpoints.record(JOB)).owner is None
        taken = await leases.acquire(JOB, "worker-b", LONG_TTL)
        assert taken is not None
        assert taken.epoch > released.epoch
        assert not await leases.renew(released, LONG_TTL)

    async def test_a_halted_jobs_lease_is_never_handed_out(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a job whose worker halted it and gave its lease up
        leases = worker_storage.leases
        lease = await leases.acquire(JOB, "worker-a", LONG_TTL)
        assert lease is not None
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            transaction.halt("an event it cannot apply")
        await leases.release(lease)
        # when workers ask for the lease, the one that halted it included
        # then none gets it
        assert await leases.acquire(JOB, "worker-b", LONG_TTL) is None
        assert await leases.acquire(JOB, "worker-a", LONG_TTL) is None

    async def test_leases_of_two_jobs_are_held_apart(self, worker_storage: WorkerStorage) -> None:
        # given a lease of one job
        leases = worker_storage.leases
        assert await leases.acquire(JOB, "worker-a", LONG_TTL) is not None
        # when another worker asks for another job's lease
        other = await leases.acquire(f"{JOB}-other", "worker-b", LONG_TTL)
        # then it gets it, first of all
        assert other == Lease(f"{JOB}-other", "worker-b", 1, 0)

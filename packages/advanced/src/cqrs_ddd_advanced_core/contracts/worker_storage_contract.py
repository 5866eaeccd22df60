"""The contract every ``WorkerStorage`` (the projection storage) passes, with a read model.

Subclass :class:`WorkerStorageContract` in a test module and provide:

* ``worker_storage``: a fresh :class:`~cqrs_ddd_advanced_core.workers.WorkerStorage`;
* ``read_model``: a :class:`ContractReadModel` whose writes go through a work
  transaction's ``connection``, in the storage's database (an
  ``InMemoryReadModelStore`` in memory, a table of the same database in SQL).

What a projection relies on, beyond each store's own contract: the work it
writes through ``transaction.connection`` commits with the checkpoint, or not
at all (a transaction that raises, or one under a lost lease, leaves neither);
a savepoint undoes its own writes only; a reset runs its callback on the
connection with the checkpoint's return to 0 and the dead letters' removal,
atomically; a resume drops the letters the job will meet again.
"""

from __future__ import annotations

from typing import Any, Protocol

import pytest

from cqrs_ddd_advanced_core.contracts.checkpoint_store_contract import halted_at, held_lease
from cqrs_ddd_advanced_core.contracts.dead_letter_store_contract import letter, positions
from cqrs_ddd_advanced_core.contracts.lease_store_contract import (
    JOB,
    LONG_TTL,
    SHORT_TTL,
    taken_over,
)
from cqrs_ddd_advanced_core.workers import LeaseLostError, WorkerStorage, WorkTransaction


class ContractReadModel(Protocol):
    """A read model of keys only, written the way a projector writes its own."""

    async def write(self, connection: Any, key: str) -> None:
        """Write the row ``key`` through ``connection`` (a work transaction's)."""
        ...

    async def keys(self) -> list[str]:
        """Return the keys of the committed rows, sorted."""
        ...


class _WorkFailedError(Exception):
    """The failure the suite raises inside a transaction, a savepoint or a callback."""


class WorkerStorageContract:
    """Behaviour shared by every worker storage: work, checkpoint and letters commit as one."""

    async def test_work_commits_with_its_checkpoint(
        self, worker_storage: WorkerStorage, read_model: ContractReadModel
    ) -> None:
        # given a worker holding the lease
        lease = await held_lease(worker_storage)
        # when it writes two rows and advances in one batch
        async with worker_storage.batch(lease, LONG_TTL) as transaction:
            await read_model.write(transaction.connection, "a")
            await read_model.write(transaction.connection, "b")
            transaction.advance(2)
        # then the rows and the checkpoint are there together
        assert await read_model.keys() == ["a", "b"]
        assert (await worker_storage.record(JOB)).position == 2

    async def test_a_batch_that_raises_leaves_neither_its_work_nor_its_checkpoint(
        self, worker_storage: WorkerStorage, read_model: ContractReadModel
    ) -> None:
        # given a worker that committed one row at position 1
        lease = await held_lease(worker_storage)
        async with worker_storage.batch(lease, LONG_TTL) as transaction:
            await read_model.write(transaction.connection, "kept")
            transaction.advance(1)

        async def failing() -> None:
            async with worker_storage.batch(lease, LONG_TTL) as transaction:
                await read_model.write(transaction.connection, "lost")
                transaction.advance(2)
                raise _WorkFailedError

        # when its next batch writes, advances, then raises
        with pytest.raises(_WorkFailedError):
            await failing()
        # then nothing of that batch remains
        assert await read_model.keys() == ["kept"]
        assert (await worker_storage.record(JOB)).position == 1

    async def test_a_batch_under_a_lost_lease_writes_nothing(
        self, worker_storage: WorkerStorage, read_model: ContractReadModel
    ) -> None:
        # given a worker whose lease was taken over
        old = await worker_storage.acquire(JOB, "worker-a", SHORT_TTL)
        assert old is not None
        await taken_over(worker_storage.leases, JOB, "worker-b")

        async def late() -> None:
            async with worker_storage.batch(old, LONG_TTL) as transaction:
                await read_model.write(transaction.connection, "late")
                transaction.advance(3)

        # when it, late, writes a row and advances
        with pytest.raises(LeaseLostError):
            await late()
        # then neither the row nor the checkpoint landed
        assert await read_model.keys() == []
        assert (await worker_storage.record(JOB)).position == 0

    async def test_a_savepoint_undoes_its_own_writes_only(
        self, worker_storage: WorkerStorage, read_model: ContractReadModel
    ) -> None:

        async def failing_savepoint(transaction: WorkTransaction) -> None:
            async with transaction.savepoint():
                await read_model.write(transaction.connection, "undone")
                raise _WorkFailedError

        # given a batch that writes a row
        lease = await held_lease(worker_storage)
        async with worker_storage.batch(lease, LONG_TTL) as transaction:
            await read_model.write(transaction.connection, "before")
            # when a savepoint writes another, then raises, and the batch goes on
            with pytest.raises(_WorkFailedError):
                await failing_savepoint(transaction)
            async with transaction.savepoint():
                await read_model.write(transaction.connection, "after")
            transaction.advance(3)
        # then only the savepoint's row is missing
        assert await read_model.keys() == ["after", "before"]
        assert (await worker_storage.record(JOB)).position == 3

    async def test_a_reset_runs_its_callback_on_the_connection_and_starts_over(
        self, worker_storage: WorkerStorage, read_model: ContractReadModel
    ) -> None:
        # given a worker at position 5 with a row and a dead letter
        lease = await held_lease(worker_storage)
        async with worker_storage.batch(lease, LONG_TTL) as transaction:
            await read_model.write(transaction.connection, "old")
            await worker_storage.letters.quarantine(transaction, letter(4))
            transaction.advance(5)

        async def rebuild(connection: Any) -> None:
            await read_model.write(connection, "rebuilt")

        # when the job is reset
        await worker_storage.reset(JOB, rebuild)
        # then the callback's write, checkpoint 0 and no dead letters commit together
        assert await read_model.keys() == ["old", "rebuilt"]
        assert (await worker_storage.record(JOB)).position == 0
        assert await worker_storage.dead_letters(JOB) == []
        assert not await worker_storage.renew(lease, LONG_TTL)

    async def test_a_reset_whose_callback_raises_changes_nothing(
        self, worker_storage: WorkerStorage, read_model: ContractReadModel
    ) -> None:
        # given a worker at position 5 with a dead letter
        lease = await held_lease(worker_storage)
        async with worker_storage.batch(lease, LONG_TTL) as transaction:
            await worker_storage.letters.quarantine(transaction, letter(4))
            transaction.advance(5)

        async def failing(connection: Any) -> None:
            await read_model.write(connection, "half-done")
            raise _WorkFailedError

        # when a reset's callback writes, then fails
        with pytest.raises(_WorkFailedError):
            await worker_storage.reset(JOB, failing)
        # then its write is undone, and the checkpoint, the letter and the lease are as they were
        assert await read_model.keys() == []
        assert (await worker_storage.record(JOB)).position == 5
        assert await positions(worker_storage) == [4]
        assert await worker_storage.renew(lease, LONG_TTL)

    async def test_a_resume_clears_the_halt_and_drops_the_letters_past_the_checkpoint(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a job that passed a letter at 2, then halted at 4 on the event at 5
        lease = await held_lease(worker_storage)
        async with worker_storage.batch(lease, LONG_TTL) as transaction:
            await worker_storage.letters.quarantine(transaction, letter(2))
            await worker_storage.letters.quarantine(transaction, letter(5))
        await halted_at(worker_storage, lease, 4, "the event at 5 cannot be applied")
        await worker_storage.release(lease)
        # when it is resumed
        await worker_storage.resume(JOB)
        # then it is no longer halted, and only the letter it passed remains (5 is retried)
        record = await worker_storage.record(JOB)
        assert (record.position, record.halted) == (4, False)
        assert [kept.position for kept in await worker_storage.dead_letters(JOB)] == [2]
        assert await worker_storage.acquire(JOB, "worker-b", LONG_TTL) is not None

    async def test_a_resume_whose_callback_raises_undoes_its_writes(
        self, worker_storage: WorkerStorage, read_model: ContractReadModel
    ) -> None:
        # given a halted job
        lease = await held_lease(worker_storage)
        await halted_at(worker_storage, lease, 4, "stuck")
        await worker_storage.release(lease)

        async def failing(transaction: WorkTransaction) -> None:
            await read_model.write(transaction.connection, "half-done")
            raise _WorkFailedError

        # when a resume's callback writes, then fails
        with pytest.raises(_WorkFailedError):
            await worker_storage.checkpoints.resume(JOB, failing)
        # then its write is undone and the job is still halted
        assert await read_model.keys() == []
        assert (await worker_storage.record(JOB)).halted

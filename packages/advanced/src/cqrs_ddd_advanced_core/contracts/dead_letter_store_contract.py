"""The contract every ``DeadLetterStore`` implementation passes.

Subclass :class:`DeadLetterStoreContract` in a test module and provide a
``worker_storage`` fixture: a fresh :class:`~cqrs_ddd_advanced_core.workers.WorkerStorage`
whose ``letters`` are the store under test (its lease and checkpoint stores
open the transactions letters are written in). Every test then runs against
the adapter.

What a worker relies on: a letter is kept only when the transaction that
quarantined it commits, and not when the savepoint it was written in rolls
back; quarantining a position again keeps one letter, with the new attempts and
error and the first time it was seen; resolving and discarding commit with
their transaction too; letters of one job are apart from another's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from cqrs_ddd_advanced_core.contracts.lease_store_contract import JOB, LONG_TTL
from cqrs_ddd_advanced_core.workers import DeadLetter, WorkerStorage, WorkTransaction

FIRST_SEEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
"""When the suite's letters were first seen (whole seconds: every store keeps them)."""


class _WorkFailedError(Exception):
    """The failure the suite raises inside a transaction or a savepoint."""


def letter(
    position: int,
    *,
    job: str = JOB,
    attempts: int = 1,
    error: str = "cannot apply",
    first_seen: datetime = FIRST_SEEN,
    last_seen: datetime | None = None,
) -> DeadLetter:
    """Return a dead letter of ``job`` for the event at ``position``."""
    return DeadLetter(
        projection=job,
        position=position,
        stream_id=f"stream-{position}",
        version=position + 1,
        event_type="ContractEventHappened",
        event_id=UUID(int=position),
        error_class="builtins.ValueError",
        error_message=error,
        attempts=attempts,
        first_seen_at=first_seen,
        last_seen_at=last_seen or first_seen,
    )


@asynccontextmanager
async def work(storage: WorkerStorage, job: str = JOB) -> AsyncIterator[WorkTransaction]:
    """Open a fenced transaction of ``job`` under a lease taken for it (once per job)."""
    lease = await storage.leases.acquire(job, "worker-a", LONG_TTL)
    assert lease is not None, f"the lease of {job!r} is held elsewhere"
    async with storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
        yield transaction


async def positions(storage: WorkerStorage, job: str = JOB) -> list[int]:
    """Return the positions of ``job``'s dead letters, in the order the store lists them."""
    return [kept.position for kept in await storage.letters.dead_letters(job)]


class DeadLetterStoreContract:
    """Behaviour shared by every dead-letter store: letters commit, update and go with work."""

    async def test_letters_quarantined_in_a_committed_transaction_are_listed_in_position_order(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given letters quarantined out of order
        quarantined = [letter(7), letter(3, attempts=4, error="boom"), letter(5)]
        # when their transaction commits
        async with work(worker_storage) as transaction:
            for each in quarantined:
                await worker_storage.letters.quarantine(transaction, each)
        # then they are listed by position, every field kept, and counted
        assert await worker_storage.letters.dead_letters(JOB) == sorted(
            quarantined, key=lambda kept: kept.position
        )
        assert await worker_storage.letters.count(JOB) == 3

    async def test_a_letter_quarantined_in_a_rolled_back_transaction_is_not_kept(
        self, worker_storage: WorkerStorage
    ) -> None:

        # given a transaction that quarantines a letter
        async def failing() -> None:
            async with work(worker_storage) as transaction:
                await worker_storage.letters.quarantine(transaction, letter(3))
                raise _WorkFailedError

        # when it raises
        with pytest.raises(_WorkFailedError):
            await failing()
        # then the letter is not kept
        assert await worker_storage.letters.dead_letters(JOB) == []
        assert await worker_storage.letters.count(JOB) == 0

    async def test_a_letter_quarantined_in_a_savepoint_that_raises_is_not_kept(
        self, worker_storage: WorkerStorage
    ) -> None:

        # given a transaction that quarantines a letter, then another in a savepoint
        async def failing_savepoint(transaction: WorkTransaction) -> None:
            async with transaction.savepoint():
                await worker_storage.letters.quarantine(transaction, letter(5))
                raise _WorkFailedError

        async with work(worker_storage) as transaction:
            await worker_storage.letters.quarantine(transaction, letter(3))
            # when the savepoint raises and the transaction commits
            with pytest.raises(_WorkFailedError):
                await failing_savepoint(transaction)
        # then only the letter outside the savepoint is kept
        assert await positions(worker_storage) == [3]

    async def test_quarantining_a_position_again_updates_its_letter_and_keeps_when_first_seen(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a letter quarantined after one attempt
        async with work(worker_storage) as transaction:
            await worker_storage.letters.quarantine(transaction, letter(3, error="first"))
            # when the same position is quarantined again, later, by a worker that forgot when
            later = FIRST_SEEN + timedelta(hours=2)
            again = letter(3, attempts=3, error="again", first_seen=later, last_seen=later)
            await worker_storage.letters.quarantine(transaction, again)
        # then one letter remains, with the new attempts, error and last time, and the first time
        (kept,) = await worker_storage.letters.dead_letters(JOB)
        assert (kept.attempts, kept.error_message, kept.last_seen_at) == (3, "again", later)
        assert kept.first_seen_at == FIRST_SEEN
        assert await worker_storage.letters.count(JOB) == 1

    async def test_quarantining_a_position_again_in_a_later_transaction_updates_its_letter(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given a letter committed earlier
        lease = await worker_storage.leases.acquire(JOB, "worker-a", LONG_TTL)
        assert lease is not None
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            await worker_storage.letters.quarantine(transaction, letter(3, error="first"))
        # when a replay fails on it again
        later = FIRST_SEEN + timedelta(days=1)
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            await worker_storage.letters.quarantine(
                transaction, letter(3, attempts=2, error="again", first_seen=later, last_seen=later)
            )
        # then its letter is updated, still first seen when it was first seen
        (kept,) = await worker_storage.letters.dead_letters(JOB)
        assert (kept.attempts, kept.error_message) == (2, "again")
        assert (kept.first_seen_at, kept.last_seen_at) == (FIRST_SEEN, later)

    async def test_a_resolved_letter_is_deleted_when_its_transaction_commits(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given two letters
        lease = await worker_storage.leases.acquire(JOB, "worker-a", LONG_TTL)
        assert lease is not None
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            await worker_storage.letters.quarantine(transaction, letter(3))
            await worker_storage.letters.quarantine(transaction, letter(5))

        async def failing() -> None:
            async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
                await worker_storage.letters.resolve(transaction, JOB, 3)
                raise _WorkFailedError

        # when one is resolved in a transaction that raises, then in one that commits
        with pytest.raises(_WorkFailedError):
            await failing()
        assert await positions(worker_storage) == [3, 5]
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            await worker_storage.letters.resolve(transaction, JOB, 3)
        # then only the committed resolution deleted it
        assert await positions(worker_storage) == [5]

    async def test_discarding_deletes_the_letters_past_a_position_with_its_transaction(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given letters at 3, 5 and 7
        lease = await worker_storage.leases.acquire(JOB, "worker-a", LONG_TTL)
        assert lease is not None
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            for position in (3, 5, 7):
                await worker_storage.letters.quarantine(transaction, letter(position))

        async def failing() -> None:
            async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
                await worker_storage.letters.discard(transaction, JOB, after=4)
                raise _WorkFailedError

        # when those after 4 are discarded, first in a transaction that raises
        with pytest.raises(_WorkFailedError):
            await failing()
        assert await positions(worker_storage) == [3, 5, 7]
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            await worker_storage.letters.discard(transaction, JOB, after=4)
        # then the one at 3 remains, until everything is discarded
        assert await positions(worker_storage) == [3]
        async with worker_storage.checkpoints.transaction(lease, LONG_TTL) as transaction:
            await worker_storage.letters.discard(transaction, JOB)
        assert await positions(worker_storage) == []

    async def test_letters_of_one_job_are_kept_apart_from_anothers(
        self, worker_storage: WorkerStorage
    ) -> None:
        # given letters of two jobs at the same positions
        other = f"{JOB}-other"
        async with work(worker_storage) as transaction:
            await worker_storage.letters.quarantine(transaction, letter(3))
        async with work(worker_storage, other) as transaction:
            await worker_storage.letters.quarantine(transaction, letter(3, job=other))
            await worker_storage.letters.quarantine(transaction, letter(4, job=other))
            # when one job's letters are discarded
            await worker_storage.letters.discard(transaction, other)
            await worker_storage.letters.quarantine(transaction, letter(9, job=other))
        # then the other job's remain, each job listing and counting its own
        assert await positions(worker_storage) == [3]
        assert await positions(worker_storage, other) == [9]
        assert await worker_storage.letters.count(JOB) == 1
        assert await worker_storage.letters.count("never-seen") == 0

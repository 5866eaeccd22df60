"""``SagaFeed``: the event log delivered to the saga manager, at least once, from a checkpoint.

The mediator dispatches a command's events to the saga manager in process,
after the commit. A process that dies in between loses that delivery: a saga
that should have started never does, or a step's reply never reaches it. The
feed closes that window the way a projection does: it reads the event log
after its checkpoint (``EventStore.read_all``, which never skips an event
committed late), hands every event a saga listens to to
:meth:`SagaManager.handle`, and then advances its checkpoint in a transaction
fenced by its lease. An event the in-process dispatch delivered already is
recognised by its id and changes nothing, so the two run side by side: the
dispatch for speed, the feed for certainty.

With ``grace`` (seconds), the feed leaves an event alone until it is that
old: the in-process dispatch, which runs the saga inside the request that
committed the event, then does the work first, and the feed only makes up for
the deliveries it lost.

A stored event that no longer decodes (its type is unknown, its payload
refused, an upcaster failed) is set aside as a dead letter of the feed, with
the error, and the feed goes on. A failure while the manager handles an event
(the database, a saga's store) is retried with back-off from that event (the
checkpoint first advances past the events before it); an event that fails
``max_attempts`` times in a row in this process is set aside as a dead letter
too. Transient failures (``TransientError``: the database is down, a lock
timed out; ``ConcurrencyError``) are never counted: they are retried until
they pass. ``drain()`` raises at a failing event (the background loop is
what retries).

:meth:`SagaFeed.replay_dead_letters` delivers the dead letters again, once
their cause is mended (an upcaster added, a saga fixed): each one that goes
through is deleted, one that fails again stays with its attempts counted.

A feed that starts with no checkpoint reads the log from its beginning:
starting events of sagas that never ran then start them. Give a new feed
on an existing log a checkpoint first (``start_at_head()``) when that is not
wanted. A page that outlasts ``lease_ttl`` may be delivered again by another
process that took the lease over: the sagas handle each event once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import takewhile

from cqrs_ddd_advanced_core.domain.exceptions import UpcastingError, WorkHaltedError
from cqrs_ddd_advanced_core.sagas.manager import SagaManager
from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter, dead_letter_of, event_of
from cqrs_ddd_advanced_core.workers.lease import Lease
from cqrs_ddd_advanced_core.workers.loop import WorkerLoop, lease_for_side_work
from cqrs_ddd_advanced_core.workers.status import WorkerStatus
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_advanced_core.workers.wakeup import Wakeup
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import (
    ConcurrencyError,
    EventTypeError,
    TransientError,
    ValidationError,
)
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent
from cqrs_ddd_core.serialization.registry import EventTypeRegistry

logger = logging.getLogger("cqrs_ddd_advanced_core.sagas")

UNDECODABLE = (EventTypeError, UpcastingError, ValidationError)
"""What a stored event that can never be decoded raises: it becomes a dead letter."""


@dataclass(frozen=True, slots=True)
class FeedReplay:
    """What replaying a saga feed's dead letters did: positions delivered, letters that failed."""

    delivered: list[int]
    failed: list[DeadLetter]


class SagaFeed:
    """Feeds the event log to ``manager`` in the background (see the module docs).

    ``decoder`` reads the stored events (give it the upcasters of the sagas'
    events); by default it knows exactly the event types the sagas listen to.
    ``storage`` keeps the feed's lease, checkpoint and dead letters under
    ``name``; processes running the same feed share it through the lease,
    one delivering at a time. ``owner`` names this process in the lease.
    """

    def __init__(
        self,
        manager: SagaManager,
        event_store: EventStore,
        storage: WorkerStorage,
        *,
        owner: str,
        name: str = "sagas",
        decoder: EventDecoder | None = None,
        batch_size: int = 100,
        grace: float = 0.0,
        max_attempts: int = 3,
        lease_ttl: float = 15.0,
        poll_interval: float = 1.0,
        retry_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self.manager = manager
        self.event_store = event_store
        self.storage = storage
        self.decoder = decoder or EventDecoder(EventTypeRegistry(list(manager.event_types)))
        self.batch_size = batch_size
        self.grace = grace
        self.max_attempts = max_attempts
        self.lease_ttl = lease_ttl
        self._failures: dict[int, int] = {}
        self._name = name
        self._wanted = {event_type.event_type for event_type in manager.event_types}
        self.position = 0
        self.loop = WorkerLoop(
            self,
            storage.leases,
            owner=owner,
            nudge=Wakeup(),
            lease_ttl=lease_ttl,
            poll_interval=poll_interval,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            logger=logger,
        )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the job the loop runs --------------------------------------------------------

    @property
    def name(self) -> str:
        """The feed's lease, checkpoint and dead-letter key."""
        return self._name

    @property
    def kind(self) -> str:
        """Always ``"saga-feed"``."""
        return "saga-feed"

    def leased(self, lease: Lease) -> None:
        """Resume from the checkpoint the lease was taken at."""
        self.position = lease.position

    async def step(self, lease: Lease) -> bool:
        """Deliver the next page of the log, then advance the checkpoint past it."""
        page = await self.event_store.read_all(after_position=self.position, limit=self.batch_size)
        if self.grace:
            settled = datetime.now(UTC) - timedelta(seconds=self.grace)
            page = list(takewhile(lambda stored: stored.occurred_at <= settled, page))
        if not page:
            return False
        set_aside: list[tuple[StoredEvent, Exception, int]] = []
        done = self.position
        for stored in page:
            if stored.event_type in self._wanted:
                try:
                    event: DomainEvent = self.decoder.decode(stored)
                except UNDECODABLE as refused:  # it never will: set aside at once
                    set_aside.append((stored, refused, 1))
                    done = stored.position or done
                    continue
                try:
                    await self.manager.handle(event)
                except Exception as failure:
                    attempts = self._count(stored, failure)
                    if attempts < self.max_attempts:
                        await self._advance(lease, done, set_aside)
                        raise
                    set_aside.append((stored, failure, attempts))
                self._failures.pop(stored.position or 0, None)
            done = stored.position or done
        await self._advance(lease, done, set_aside)
        return True

    def _count(self, stored: StoredEvent, failure: Exception) -> int:
        """Count a failed delivery of ``stored``; a transient failure is never counted."""
        position = stored.position or 0
        if isinstance(failure, TransientError | ConcurrencyError):
            logger.warning(
                "saga feed %r: %s at position %s failed (transient, retried): %s",
                self.name, stored.event_type, position, failure,
            )  # fmt: skip
            return 0
        attempts = self._failures.get(position, 0) + 1
        self._failures[position] = attempts
        logger.warning(
            "saga feed %r: %s at position %s failed (attempt %s of %s): %s",
            self.name, stored.event_type, position, attempts, self.max_attempts, failure,
        )  # fmt: skip
        return attempts

    async def _advance(
        self, lease: Lease, position: int, set_aside: list[tuple[StoredEvent, Exception, int]]
    ) -> None:
        if position == self.position and not set_aside:
            return
        async with self.storage.batch(lease, self.lease_ttl) as transaction:
            for stored, problem, attempts in set_aside:
                letter = dead_letter_of(self.name, stored, problem, attempts=attempts)
                await self.storage.letters.quarantine(transaction, letter)
            transaction.advance(position)
        for stored, problem, _ in set_aside:
            logger.error(
                "saga feed %r set aside %s at position %s (stream %r, version %s): %s",
                self.name,
                stored.event_type,
                stored.position,
                stored.stream_id,
                stored.version,
                problem,
            )
        self.position = position

    async def start_at_head(self) -> bool:
        """Give a feed that never delivered anything the log's current end as its checkpoint.

        Call it before :meth:`start`. Returns False, changing nothing, when
        the feed has a checkpoint already, or another process holds its lease.
        """
        if self.running:
            raise RuntimeError(f"saga feed {self.name!r} runs: call start_at_head() before start()")
        lease = await self.storage.acquire(
            self.name, self.loop.owner, self.lease_ttl, kind=self.kind
        )
        if lease is None:
            return False
        try:
            if lease.position != 0:
                return False
            head = await self.event_store.current_position()
            async with self.storage.batch(lease, self.lease_ttl) as transaction:
                transaction.advance(head)
            return True
        finally:
            await self.storage.release(lease)

    async def halted(self, error: WorkHaltedError, lease: Lease | None) -> None:
        """Log why the feed stopped."""
        logger.error("saga feed %r halted: %s", self.name, error)

    async def dead_letters(self) -> list[DeadLetter]:
        """Return the events the feed set aside, in position order."""
        return await self.storage.letters.dead_letters(self.name)

    async def replay_dead_letters(self) -> FeedReplay:
        """Deliver the dead letters to the saga manager again, in position order.

        Each one the manager handles is deleted; one that fails again (or
        still does not decode) stays, with its attempts and error updated.
        Runs under the feed's lease: its own loop's while it holds it,
        else one taken for the purpose (``LeaseLostError`` while another
        process holds the feed). The checkpoint does not move. The sagas
        handle each event once, so an event delivered meanwhile by the
        in-process dispatch changes nothing the second time.
        """
        letters = await self.dead_letters()
        result = FeedReplay([], [])
        if not letters:
            return result
        lease, borrowed = await lease_for_side_work(self.loop, self.storage.leases, self.lease_ttl)
        try:
            for letter in letters:
                stored = await event_of(self.event_store, letter)
                if stored is None:  # the event is gone: nothing to deliver
                    await self.storage.drop_letter(lease, self.lease_ttl, letter.position)
                    continue
                try:
                    await self.manager.handle(self.decoder.decode(stored))
                except Exception as failure:  # noqa: BLE001 - kept with its error
                    again = letter.failed_again(stored, failure)
                    await self.storage.keep_letter(lease, self.lease_ttl, again)
                    result.failed.append(again)
                    continue
                await self.storage.drop_letter(lease, self.lease_ttl, letter.position)
                result.delivered.append(letter.position)
        finally:
            if not borrowed:
                await self.storage.release(lease)
        return result

    # -- running it ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the feed runs in the background."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start feeding in the background; starting a running feed does nothing."""
        if self.running:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(
            self.loop.run(self._stopping), name=f"saga-feed-{self.name}"
        )
        self.loop.task = self._task

    async def stop(self) -> None:
        """Stop after the page under way, and give the lease back (another process goes on)."""
        self._stopping.set()
        self.loop.nudge.notify()  # an idle loop stops now, not at its next poll
        task, self._task = self._task, None
        if task is not None:
            await task
        self.loop.task = None
        await self.loop.give_up_lease()
        if self.loop.state != "halted":
            self.loop.state = "stopped"

    async def drain(self) -> None:
        """Deliver everything committed so far, then return (for scripts and tests)."""
        await self.loop.drain()

    async def status(self) -> WorkerStatus:
        """Return where the feed is: checkpoint, head, lag, lease and dead letters."""
        record = await self.storage.record(self.name)
        head = await self.event_store.current_position()
        lag = max(0, head - record.position)
        letters = await self.storage.letters.count(self.name)
        return WorkerStatus(
            name=self.name,
            state=self.loop.state,
            checkpoint=record.position,
            head_position=head,
            lag_events=lag,
            lag_seconds=0.0,
            owner=record.owner,
            epoch=record.epoch,
            dead_letters=letters,
            last_error=self.loop.last_error,
            kind=self.kind,
        )

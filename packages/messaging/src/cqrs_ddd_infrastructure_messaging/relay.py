"""The relays: publish every committed event to a broker, in order per aggregate.

:class:`EventLogRelay` (event-sourced aggregates' events, from the event log)
and :class:`OutboxTableRelay` (state-stored aggregates' events, from the
outbox table) are split into partitions by aggregate id (one by default);
:class:`OutboxWorker` runs each partition as a job of the workers machinery
(:mod:`cqrs_ddd_advanced_core.workers`) under a lease of its own. Each step
reads the partition's next page after its checkpoint (the log through
``read_all``: committed events in the store's global order, never skipping one
that commits later at a lower position; the outbox by the oldest rows not yet
published), publishes each as a :class:`~.envelope.MessageEnvelope`, waiting
for the broker's confirmation, then advances the checkpoint (and marks the
outbox rows published) in a transaction fenced by the lease. So:

* nothing is marked published before the broker confirmed it;
* a relay that dies between a confirmation and its checkpoint publishes the
  page again when it (or another) resumes: the same message ids, which
  JetStream drops within its duplicate window and consumers' inboxes drop;
* one relay at a time holds a partition's lease (several processes may run
  ``OutboxWorker``; a standby takes a partition over when its holder's lease
  runs out), so one aggregate's events go out one at a time, in order;
  events of different partitions may interleave in any order. The holder
  extends its lease before a publish once a third of ``lease_ttl`` has
  passed, so a long page keeps it, and a holder that lost it stops before
  publishing more. Keep the publishers' confirmation timeouts well below
  ``lease_ttl``. Should a stalled holder still publish after its successor
  began (a process frozen longer than the lease), both publish the same
  messages in the same order, so after dropping repeats each aggregate's
  order holds.

While a page is published, the next one is read (the log after the page's
last position; the outbox's unpublished rows but the page's and the page
before's), and the page's checkpoint (and outbox marks) commits while the
next page is published, so the database's round trips overlap the broker's.
A page read ahead is used only under the lease it was read under; a commit
that fails (the lease was lost) leaves its messages to be published again.
Each page's commit waits for the one before, so checkpoints only move
forward, and a step that finds nothing more waits for the last commit.

An aggregate's events are in the log or in the outbox, never both, so each
reaches the broker through one relay. A publish that fails because the broker
is away (``BrokerUnavailableError``, a lost connection, a timeout) fails the
step: the partition's worker backs off (capped) and resumes from its
checkpoint, never skipping ahead. A relay blames any other failure (an
envelope that does not decode, a topic function that raises, a message the
broker refuses) on the message, so one poison message does not hold up the
rest: at ``max_attempts`` the outbox relay sets the message aside on its row
(``failed_at``, with its error; ``cqrs-ddd outbox replay`` puts it back in
the queue), and the event-log relay makes the event a dead letter of its
partition (``OutboxWorker.replay_dead_letters`` publishes it again). The
attempts before that are retried after the worker's back-off, the
checkpoint first moved past what went out. The same aggregate's later
messages wait behind the one set aside (the outbox relay leaves them
pending; the event-log relay sets them aside behind it), so an aggregate's
order holds through a replay too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from cqrs_ddd_advanced_core.domain.exceptions import LeaseLostError, WorkHaltedError
from cqrs_ddd_advanced_core.outbox import OutboxMessage, OutboxStore, Partition
from cqrs_ddd_advanced_core.workers import (
    Lease,
    WorkerLoop,
    WorkerState,
    WorkerStatus,
    read_status,
)
from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter, dead_letter_of, event_of
from cqrs_ddd_advanced_core.workers.loop import lease_for_side_work
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_core.exceptions import TransientError
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent
from cqrs_ddd_core.wakeup import Wakeup
from cqrs_ddd_infrastructure_messaging.envelope import MessageEnvelope
from cqrs_ddd_infrastructure_messaging.errors import (
    BrokerUnavailableError,
    PublishNotConfirmedError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH_SIZE = 5_000
"""The largest page: a read ahead leaves out two pages' ids, as query parameters."""

_STATES_BY_WEIGHT: tuple[WorkerState, ...] = ("halted", "running", "standby", "idle", "stopped")
"""The state a relay with several partitions reports: the first any partition is in."""

TopicOf = Callable[[MessageEnvelope], str]
"""Names the topic (routing key, subject, stream key) an envelope goes to."""


class EnvelopePublisher(Protocol):
    """What the relay publishes through: any of the package's publishers."""

    async def publish_envelope(self, envelope: MessageEnvelope, *, topic: str) -> None:
        """Publish ``envelope`` under ``topic``; return once the broker confirmed it."""
        ...


@dataclass(frozen=True, slots=True)
class RelayReplay:
    """What replaying a relay's dead letters did.

    ``published``: the positions published; ``failed``: the letters that failed
    again; ``held_elsewhere``: the partitions another process holds (replay
    them there).
    """

    published: list[int]
    failed: list[DeadLetter]
    held_elsewhere: list[str] = field(default_factory=list)


class RelayPartition:
    """One partition of a relay: the job a :class:`~cqrs_ddd_advanced_core.workers.WorkerLoop` runs.

    Its name keys its lease and checkpoint: the relay's name when the relay
    has one partition, ``"<name>:<index>of<count>"`` when it has several
    (changing the count starts new checkpoints: the event-log relay then
    publishes the log again, the same message ids, which consumers drop).
    """

    def __init__(self, relay: _Relay, partition: Partition) -> None:
        self.relay = relay
        self.partition = partition
        self.position = 0
        self.renewed_at = 0.0
        """When this process last extended the partition's lease (monotonic seconds)."""
        self._ahead: tuple[int, asyncio.Task[Any]] | None = None
        self._committing: asyncio.Task[None] | None = None
        self.committing_ids: list[int] = []
        """The outbox ids of the page whose commit runs in the background."""
        self.held_streams: set[str] | None = None
        """The streams with an event set aside (event-log relay): their later events are set
        aside behind it, so that a replay keeps their order. Read again at each lease."""
        single = partition.count == 1
        self._name = relay.name if single else f"{relay.name}:{partition.index}of{partition.count}"

    @property
    def name(self) -> str:
        """The partition's lease and checkpoint key."""
        return self._name

    @property
    def kind(self) -> str:
        """``"relay"`` for the event log's relay, ``"outbox-relay"`` for the outbox table's."""
        return "outbox-relay" if isinstance(self.relay, OutboxTableRelay) else "relay"

    def leased(self, lease: Lease) -> None:
        """Resume from the checkpoint the lease was taken at."""
        self.drop_read_ahead()
        self.held_streams = None
        self.position = lease.position
        self.renewed_at = time.monotonic()

    def read_ahead(self, lease: Lease, read: Coroutine[Any, Any, Any]) -> None:
        """Start reading the next page while this one is published (under ``lease`` only)."""
        self.drop_read_ahead()
        self._ahead = (lease.epoch, asyncio.ensure_future(read))

    async def next_page(self, lease: Lease, read: Callable[[], Awaitable[list[T]]]) -> list[T]:
        """Return the page read ahead under ``lease``, else what ``read()`` reads now.

        Before reading now, waits for the page committing in the background (so
        the read sees it published); when there is nothing more, waits for it
        too. An empty page read ahead is read again now: something may have
        been committed since.
        """
        page: list[T] | None = await self.page_read_ahead(lease)
        if not page:  # none read ahead, or an empty page read before the last wake-up
            await self.committed(quietly=page is None)
            page = await read()
        if not page:
            await self.committed()
        return page

    async def page_read_ahead(self, lease: Lease) -> Any:
        """Return the page read ahead under ``lease``, or None when there is none."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        epoch, task = ahead
        if epoch != lease.epoch:  # read for an earlier lease: read again
            _cancel(task)
            return None
        return await task

    def drop_read_ahead(self) -> None:
        """Forget the page read ahead (the lease changed, or the worker stops)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            _cancel(ahead[1])

    async def settle(self) -> None:
        """Let the page in flight commit, and end the read ahead: nothing runs afterwards."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            _cancel(ahead[1])
            await asyncio.wait([ahead[1]])
        await self.committed(quietly=True)

    def commit_later(self, ids: list[int], commit: Coroutine[Any, Any, None]) -> None:
        """Commit a published page in the background, while the next one is published."""
        self.committing_ids = ids
        self._committing = asyncio.ensure_future(commit)

    async def committed(self, *, quietly: bool = False) -> None:
        """Wait for the page committed in the background; raise what it raised unless ``quietly``.

        A commit that failed leaves its messages unpublished: read again, they
        are published again (the same ids).
        """
        task, self._committing = self._committing, None
        try:
            if task is not None:
                await task
        except Exception:
            if not quietly:
                raise
            logger.info("relay %r: a page's commit failed; it is published again", self.name)
        finally:
            if self._committing is None:
                self.committing_ids = []

    async def keep_lease(self, lease: Lease) -> None:
        """Extend ``lease`` once a third of its time has passed; ``LeaseLostError`` if lost.

        Called before each publish, so that a long page (a slow broker) keeps
        its lease, and a relay that lost it stops before publishing more; it
        also stops when the page before failed to commit in the background.
        """
        relay = self.relay
        committing = self._committing
        if committing is not None and committing.done() and committing.exception():
            await self.committed()  # the page before could not commit: stop here
        if time.monotonic() - self.renewed_at < relay.lease_ttl / 3:
            return
        asked_at = time.monotonic()
        if not await relay.storage.leases.renew(lease, relay.lease_ttl):
            raise LeaseLostError(lease.name, lease.owner, lease.epoch)
        self.renewed_at = asked_at

    async def step(self, lease: Lease) -> bool:
        """Publish the partition's next page under ``lease``; False when there was none."""
        return await self.relay.publish_page(self, lease)

    async def halted(self, error: WorkHaltedError, lease: Lease | None) -> None:
        """Log why the partition stopped."""
        logger.error("relay %r halted: %s", self.name, error)


class HeldBehindError(Exception):
    """An event set aside because an earlier event of its stream was: it keeps its order."""

    def __init__(self, stored: StoredEvent) -> None:
        super().__init__(
            f"held behind an earlier event of stream {stored.stream_id!r} that was set aside"
        )


def _is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the broker or the database is away (no message is to blame)."""
    if isinstance(error, PublishNotConfirmedError):
        return not error.refused  # no answer: the broker is away, not the message's fault
    away = BrokerUnavailableError | TransientError | LeaseLostError | OSError | TimeoutError
    return isinstance(error, away)


def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


class _Relay(ABC):
    """What both relays share: their name, settings, partitions and count of publishes."""

    def __init__(
        self,
        *,
        name: str,
        storage: WorkerStorage,
        publisher: EnvelopePublisher,
        batch_size: int,
        lease_ttl: float,
        partitions: int,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"a relay needs at least one partition, not {partitions}")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE:,}, not {batch_size}")
        self._name = name
        self.storage = storage
        self.publisher = publisher
        self.batch_size = batch_size
        self.lease_ttl = lease_ttl
        self.published = 0
        """How many messages this relay published (repeats after a takeover included)."""
        self.partitions = [
            RelayPartition(self, Partition(index, partitions)) for index in range(partitions)
        ]
        """The relay's partitions, each run by a loop of its own (one by default)."""

    @property
    def name(self) -> str:
        """The relay's name (its partitions' lease and checkpoint keys start with it)."""
        return self._name

    @abstractmethod
    async def publish_page(self, job: RelayPartition, lease: Lease) -> bool:
        """Publish ``job``'s next page under ``lease``; False when there was none."""


class EventLogRelay(_Relay):
    """Publishes the event log from its checkpoint (see the module docs).

    With ``partitions`` above 1, each partition reads the whole log from its
    own checkpoint and publishes the events of the aggregates it holds
    (``Partition.holds(aggregate id)``), under a lease of its own.
    """

    def __init__(
        self,
        *,
        name: str,
        event_store: EventStore,
        storage: WorkerStorage,
        publisher: EnvelopePublisher,
        topic: TopicOf,
        batch_size: int = 100,
        lease_ttl: float = 15.0,
        partitions: int = 1,
        max_attempts: int = 5,
    ) -> None:
        super().__init__(
            name=name,
            storage=storage,
            publisher=publisher,
            batch_size=batch_size,
            lease_ttl=lease_ttl,
            partitions=partitions,
        )
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self.event_store = event_store
        self.topic = topic
        self.max_attempts = max_attempts
        self._failures: dict[tuple[str, int], int] = {}
        """Failed attempts in a row at an event, by partition and position (this process's)."""

    async def publish_page(self, job: RelayPartition, lease: Lease) -> bool:
        """Publish ``job``'s events of the next page of the log, then advance its checkpoint.

        An event it fails on for a reason of its own (not an outage) is
        tried again after the worker's back-off, the checkpoint first moved
        past the events published before it; at ``max_attempts`` it is set
        aside as a dead letter of the partition, and the page goes on.
        """
        page = await job.next_page(
            lease,
            lambda: self.event_store.read_all(after_position=job.position, limit=self.batch_size),
        )
        if not page:
            return False
        read = self.event_store.read_all(after_position=page[-1].position, limit=self.batch_size)
        job.read_ahead(lease, read)
        whole_log = job.partition.count == 1
        done: int | None = None  # the newest position this page dealt with
        try:
            for stored in page:
                if stored.stream_id in await self._held_streams(job):  # behind an earlier one
                    await job.committed()
                    if done is not None and done > job.position:
                        await self._advance(job, lease, done)
                    await self._set_aside(job, lease, stored, HeldBehindError(stored), 0)
                elif whole_log or job.partition.holds(stored.stream_id):
                    await job.keep_lease(lease)
                    try:
                        await self._publish(stored)
                    except Exception as error:
                        if _is_outage(error):
                            raise
                        await job.committed()  # the page before, then what this one sent
                        if done is not None and done > job.position:
                            await self._advance(job, lease, done)
                        if not await self._failed(job, lease, stored, error):
                            raise  # tried again after the worker's back-off
                    else:
                        self.published += 1
                        self._failures.pop((job.name, stored.position), None)
                done = stored.position
        except Exception:
            await job.committed(quietly=True)
            raise
        await job.committed()
        job.commit_later([], self._advance(job, lease, page[-1].position))
        return True

    async def _publish(self, stored: StoredEvent) -> None:
        envelope = MessageEnvelope.of_stored(stored)
        await self.publisher.publish_envelope(envelope, topic=self.topic(envelope))

    async def _held_streams(self, job: RelayPartition) -> set[str]:
        """Return the streams of ``job`` with an event set aside (read again after a replay)."""
        if job.held_streams is None:
            letters = await self.storage.letters.dead_letters(job.name)
            job.held_streams = {letter.stream_id for letter in letters}
        return job.held_streams

    async def _failed(
        self, job: RelayPartition, lease: Lease, stored: StoredEvent, error: Exception
    ) -> bool:
        """Count a failure at ``stored``; at ``max_attempts`` set it aside: True."""
        key = (job.name, stored.position)
        attempts = self._failures[key] = self._failures.get(key, 0) + 1
        if attempts < self.max_attempts:
            logger.warning(
                "relay %s: %s at position %s failed (attempt %s of %s): %s",
                job.name, stored.event_type, stored.position, attempts, self.max_attempts, error,
            )  # fmt: skip
            return False
        await self._set_aside(job, lease, stored, error, attempts)
        del self._failures[key]  # once set aside: a failure to write it keeps the count
        return True

    async def _set_aside(
        self, job: RelayPartition, lease: Lease, stored: StoredEvent, error: Exception, tries: int
    ) -> None:
        """Make ``stored`` a dead letter of ``job`` with the checkpoint that passes it."""
        letter = dead_letter_of(job.name, stored, error, attempts=tries)
        async with self.storage.batch(lease, self.lease_ttl) as transaction:
            await self.storage.letters.quarantine(transaction, letter)
            transaction.advance(stored.position)
        job.position = stored.position
        (await self._held_streams(job)).add(stored.stream_id)
        logger.error(
            "relay %s set %s aside at position %s (stream %r, version %s) after %s attempts: %s",
            job.name, stored.event_type, stored.position, stored.stream_id, stored.version,
            tries, error,
        )  # fmt: skip

    async def replay_dead_letters(self, job: RelayPartition, lease: Lease) -> RelayReplay:
        """Publish ``job``'s dead letters again under ``lease``; delete those the broker took."""
        result = RelayReplay([], [])
        stuck: set[str] = set()  # streams whose earlier letter failed again: the rest wait
        for letter in await self.storage.letters.dead_letters(job.name):
            if letter.stream_id in stuck:
                continue
            stored = await event_of(self.event_store, letter)
            if stored is None:  # the event is gone: nothing to publish, nothing to hold
                await self.storage.drop_letter(lease, self.lease_ttl, letter.position)
                continue
            try:
                await self._publish(stored)
            except Exception as error:
                if _is_outage(error):
                    raise
                again = letter.failed_again(stored, error)
                await self.storage.keep_letter(lease, self.lease_ttl, again)
                result.failed.append(again)
                stuck.add(letter.stream_id)
                continue
            await self.storage.drop_letter(lease, self.lease_ttl, letter.position)
            self.published += 1
            result.published.append(letter.position)
        job.held_streams = None  # read again: the streams replayed go on
        return result

    async def _advance(self, job: RelayPartition, lease: Lease, position: int) -> None:
        started = time.monotonic()
        async with self.storage.batch(lease, self.lease_ttl) as transaction:
            transaction.advance(position)
        job.position = position
        job.renewed_at = max(job.renewed_at, started)  # the fenced commit extended the lease


class OutboxTableRelay(_Relay):
    """Publishes the outbox table's unpublished messages (state-stored aggregates' events).

    Each step takes the oldest unpublished messages (``OutboxStore.pending``:
    by the order they were written, never "after the last id seen"),
    publishes each as an envelope to its row's topic (or ``topic(envelope)``)
    and waits for the broker's confirmation, then marks them published in the
    transaction fenced by the lease. One relay at a time holds a partition's
    lease, so an aggregate's messages go out in the order they were written.
    With ``partitions`` above 1, each partition takes only the rows whose
    stored hash it holds.
    """

    def __init__(
        self,
        *,
        name: str,
        outbox: OutboxStore,
        storage: WorkerStorage,
        publisher: EnvelopePublisher,
        topic: TopicOf | None = None,
        batch_size: int = 100,
        lease_ttl: float = 15.0,
        partitions: int = 1,
        max_attempts: int = 5,
    ) -> None:
        super().__init__(
            name=name,
            storage=storage,
            publisher=publisher,
            batch_size=batch_size,
            lease_ttl=lease_ttl,
            partitions=partitions,
        )
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self.outbox = outbox
        self.topic = topic
        self.max_attempts = max_attempts

    async def publish_page(self, job: RelayPartition, lease: Lease) -> bool:
        """Publish ``job``'s oldest unpublished messages, then mark them; False when none."""
        messages = await job.next_page(
            lease, lambda: self.outbox.pending(limit=self.batch_size, partition=job.partition)
        )
        if not messages:
            return False
        ids = [message.id for message in messages]
        read = self.outbox.pending(
            limit=self.batch_size, partition=job.partition, excluding=[*job.committing_ids, *ids]
        )
        job.read_ahead(lease, read)

        sent: list[int] = []
        held: set[str] = set()  # keys whose message was set aside: their later ones wait
        try:
            for message in messages:
                if message.partition_key is not None and message.partition_key in held:
                    continue  # stays pending, behind the one set aside (pending() skips it too)
                await job.keep_lease(lease)
                try:
                    envelope = MessageEnvelope.of_document(message.document)
                    topic = message.topic if self.topic is None else self.topic(envelope)
                    await self.publisher.publish_envelope(envelope, topic=topic)
                except Exception as error:
                    if _is_outage(error):
                        raise
                    await job.committed()  # the page before, then what this one sent
                    if sent:
                        await self._mark(job, lease, sent)
                        sent = []
                    if not await self._failed(lease, message, error):
                        raise  # tried again after the worker's back-off
                    if message.partition_key is not None:
                        held.add(message.partition_key)
                        job.drop_read_ahead()  # read before: it may hold the key's next ones
                    continue
                self.published += 1
                sent.append(message.id)
        except Exception:
            await job.committed(quietly=True)
            raise
        await job.committed()
        if sent:
            job.commit_later(sent, self._mark(job, lease, sent))
        return True

    async def _failed(self, lease: Lease, message: OutboxMessage, error: Exception) -> bool:
        """Count a failure of ``message``; True when it was set aside (the relay goes on)."""
        reason = f"{type(error).__qualname__}: {error}"
        async with self.storage.batch(lease, self.lease_ttl) as transaction:
            set_aside = await self.outbox.record_failure(
                transaction, message.id, reason, max_attempts=self.max_attempts
            )
        if set_aside:
            logger.error(
                "relay %s set outbox message %s (id %s, to %r) aside after %d attempts: %s",
                self.name,
                message.message_id,
                message.id,
                message.topic,
                self.max_attempts,
                reason,
            )
        return set_aside

    async def _mark(self, job: RelayPartition, lease: Lease, ids: list[int]) -> None:
        newest = max(ids)
        started = time.monotonic()
        async with self.storage.batch(lease, self.lease_ttl) as transaction:
            await self.outbox.mark_published(transaction, ids)
            if newest > job.position:
                transaction.advance(newest)
        job.position = max(job.position, newest)
        job.renewed_at = max(job.renewed_at, started)  # the fenced commit extended the lease


class OutboxWorker:
    """Runs a relay (:class:`EventLogRelay` or :class:`OutboxTableRelay`) under its leases.

    In the background (:meth:`start`, :meth:`stop`) or on demand (:meth:`drain`).
    One :class:`~cqrs_ddd_advanced_core.workers.WorkerLoop` per partition
    (``loops``): each takes its partition's lease when it is free and waits as
    a standby while another process holds it, so several processes running
    the same relay share its partitions, and take over a dead one's when its
    lease runs out.

    ``owner`` names this process in the leases (any unique string);
    ``poll_interval`` is how often an idle relay looks for new events (the
    event store's wake-up shortens the wait in this process).
    """

    def __init__(
        self,
        relay: EventLogRelay | OutboxTableRelay,
        *,
        owner: str,
        poll_interval: float = 1.0,
        retry_backoff: float = 0.5,
        max_backoff: float = 30.0,
        wakeup: Wakeup | None = None,
    ) -> None:
        self.relay = relay
        nudge = wakeup or Wakeup()
        self.loops = [
            WorkerLoop(
                job,
                relay.storage.leases,
                owner=owner,
                nudge=nudge,
                lease_ttl=relay.lease_ttl,
                poll_interval=poll_interval,
                retry_backoff=retry_backoff,
                max_backoff=max_backoff,
                logger=logger,
            )
            for job in relay.partitions
        ]
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start relaying in the background; starting a running worker does nothing."""
        if any(not task.done() for task in self._tasks):
            return
        self._stopping = asyncio.Event()
        self._tasks = []
        for loop in self.loops:
            loop.task = asyncio.create_task(
                loop.run(self._stopping), name=f"outbox-relay-{loop.name}"
            )
            self._tasks.append(loop.task)

    async def stop(self) -> None:
        """Stop after the pages under way, and give the leases back."""
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        self._stopping.set()
        for loop in self.loops:
            loop.nudge.notify()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job in self.relay.partitions:
            await job.settle()
        for loop in self.loops:
            loop.task = None
            await loop.give_up_lease()
            if loop.state != "halted":
                loop.state = "stopped"

    async def dead_letters(self) -> list[DeadLetter]:
        """Return the events the event-log relay set aside, by partition and position."""
        letters = self.relay.storage.letters
        return [
            letter
            for job in self.relay.partitions
            for letter in await letters.dead_letters(job.name)
        ]

    async def replay_dead_letters(self) -> RelayReplay:
        """Publish the event-log relay's dead letters again; delete those the broker took.

        Each partition's under its lease: its running loop's, else one taken
        for the purpose; a partition another process holds is left to it
        (listed in ``held_elsewhere``).
        One that fails again stays, its attempts counted. The outbox table's
        messages set aside are put back in its queue instead
        (``SQLAlchemyOutboxStore.retry_failed``, ``cqrs-ddd outbox replay``).
        """
        relay = self.relay
        if not isinstance(relay, EventLogRelay):
            raise TypeError(
                "an outbox-table relay's messages set aside are put back in the queue with"
                " SQLAlchemyOutboxStore.retry_failed (cqrs-ddd outbox replay)"
            )
        result = RelayReplay([], [])
        for loop in self.loops:
            job = loop.job
            assert isinstance(job, RelayPartition)  # noqa: S101 - the loops run partitions
            if not await relay.storage.letters.count(job.name):
                continue
            try:
                lease, borrowed = await lease_for_side_work(
                    loop, relay.storage.leases, relay.lease_ttl
                )
            except LeaseLostError:
                result.held_elsewhere.append(job.name)
                continue
            try:
                done = await relay.replay_dead_letters(job, lease)
            finally:
                if not borrowed:
                    await relay.storage.release(lease)
            result.published.extend(done.published)
            result.failed.extend(done.failed)
        return result

    async def statuses(self) -> list[WorkerStatus]:
        """Return each partition's status on the workers' shape (owner, epoch, checkpoint, lag).

        For an :class:`EventLogRelay` the head and lag are the event log's
        (every partition reads the whole log). For an :class:`OutboxTableRelay`
        the checkpoint is the newest message id marked published, and the lag
        the partition's messages still unpublished, the oldest's age its lag
        in seconds (a page published and still committing counts until it
        commits). ``last_error`` is the halt's reason, or the failure this
        process's loop is backing off from (a broker that is down), cleared by
        the next step that succeeds.
        """
        return [await self._status(loop) for loop in self.loops]

    async def status(self) -> WorkerStatus:
        """Return the relay's status: its one partition's, or all of them summed up.

        With several partitions: for the event log, the lowest checkpoint and
        the slowest partition's lag (each reads the whole log); for the outbox
        table, the newest id published and the lag of all partitions together
        (each has its own rows); and the highest head, every owner, the
        highest epoch, the first error.
        """
        statuses = await self.statuses()
        if len(statuses) == 1:
            return statuses[0]
        states = {status.state for status in statuses}
        state = next(s for s in _STATES_BY_WEIGHT if s in states)
        lags = [status.lag_events for status in statuses]
        checkpoints = [status.checkpoint for status in statuses]
        from_outbox = isinstance(self.relay, OutboxTableRelay)
        owners = sorted({status.owner for status in statuses if status.owner})
        expiries = [s.lease_expires_at for s in statuses if s.lease_expires_at is not None]
        return replace(
            statuses[0],
            name=self.relay.name,
            state=state,
            checkpoint=max(checkpoints) if from_outbox else min(checkpoints),
            head_position=max(status.head_position for status in statuses),
            lag_events=sum(lags) if from_outbox else max(lags),
            lag_seconds=max(status.lag_seconds for status in statuses),
            owner=", ".join(owners) or None,
            epoch=max(status.epoch for status in statuses),
            dead_letters=sum(status.dead_letters for status in statuses),
            last_error=next((s.last_error for s in statuses if s.last_error), None),
            lease_expires_at=min(expiries, default=None),
        )

    async def _status(self, loop: WorkerLoop) -> WorkerStatus:
        relay, job = self.relay, loop.job
        assert isinstance(job, RelayPartition)  # noqa: S101 - the loops run partitions
        if isinstance(relay, EventLogRelay):
            status = await read_status(
                relay.storage, relay.event_store, job.name, kind="relay", state=loop.state
            )
            return replace(status, last_error=status.last_error or loop.last_error)
        record = await relay.storage.checkpoints.record(job.name)
        backlog = await relay.outbox.backlog(partition=job.partition)
        waited = 0.0
        if backlog.oldest_created_at is not None:
            age = datetime.now(UTC) - backlog.oldest_created_at
            waited = max(age.total_seconds(), 0.0)
        return WorkerStatus(
            name=job.name,
            state="halted" if record.halted else loop.state,
            checkpoint=record.position,
            head_position=max(record.position, backlog.newest_id or 0),
            lag_events=backlog.count,
            lag_seconds=waited,
            owner=record.owner,
            epoch=record.epoch,
            # an operator's to see: what was set aside, and the messages waiting behind it
            dead_letters=await relay.storage.letters.count(job.name)
            + backlog.set_aside
            + backlog.held,
            last_error=record.last_error or loop.last_error,
            kind=job.kind,
            lease_expires_at=record.lease_expires_at,
        )

    async def drain(self) -> None:
        """Publish everything there is now, in the caller's task.

        Partitions another worker holds are left to it.
        """
        try:
            for loop in self.loops:
                await loop.drain()
        finally:
            for job in self.relay.partitions:
                await job.settle()

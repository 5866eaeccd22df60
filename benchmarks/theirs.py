"""Their side: the same application written with the ``eventsourcing`` library (9.5.6).

An ``Aggregate`` subclass with ``@event`` methods, an ``Application`` whose
command methods load with ``repository.get`` and store with ``save``, and, for
the global read, ``recorder.select_notifications`` (decoded through the
application's ``mapper``). The library is synchronous, so its workloads are
plain functions; :mod:`benchmarks.run` calls them from the benchmark's event
loop, which has nothing else to do meanwhile.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from benchmarks.timing import Sample, Stopwatch


class Account(Aggregate):
    """A bank account whose state is rebuilt from its events."""

    @event("Opened")
    def __init__(self, owner: str, currency: str) -> None:
        self.owner = owner
        self.currency = currency
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int, currency: str, note: str) -> None:
        """Pay ``amount`` in."""
        self.balance += amount


class TheirBank(Application[UUID]):
    """The application: one method per command, as the library's docs write them."""

    def open_account(self, owner: str = "ada", deposits: int = 0) -> UUID:
        """Open an account, paying ``deposits`` amounts in at once; return its id."""
        account = Account(owner=owner, currency="EUR")
        for number in range(deposits):
            account.deposit(number, account.currency, "opening")
        self.save(account)
        return account.id

    def deposit(self, account_id: UUID, amount: int = 1, times: int = 1) -> None:
        """Load the account, pay ``amount`` in ``times`` times, save it."""
        account: Account = self.repository.get(account_id)
        for _ in range(times):
            account.deposit(amount, account.currency, "salary")
        self.save(account)

    def build_stream(self, length: int, batch: int) -> UUID:
        """Make an account with ``length`` events, ``batch`` at most per command."""
        account_id = self.open_account(deposits=min(length, batch) - 1)
        remaining = length - min(length, batch)
        while remaining > 0:
            self.deposit(account_id, times=min(remaining, batch))
            remaining -= min(remaining, batch)
        return account_id

    def current_position(self) -> int:
        """Return the notification id of the last event in the store."""
        return self.recorder.max_notification_id() or 0

    # ------------------------------------------------------------ workloads

    def creates(self, count: int) -> Sample:
        """(a) Run ``count`` commands, each creating an account with one event."""
        with Stopwatch() as watch:
            for _ in range(count):
                self.open_account()
        return Sample(count, watch.seconds)

    def updates(self, account_ids: list[UUID], count: int) -> Sample:
        """(b) Run ``count`` commands, each loading, changing and saving an account."""
        with Stopwatch() as watch:
            for number in range(count):
                self.deposit(account_ids[number % len(account_ids)])
        return Sample(count, watch.seconds)

    def batch_creates(self, count: int, batch: int) -> Sample:
        """Run ``count`` commands, each creating an account with ``batch`` events."""
        with Stopwatch() as watch:
            for _ in range(count):
                self.open_account(deposits=batch - 1)
        return Sample(count * batch, watch.seconds)

    def loads(self, account_id: UUID, count: int) -> Sample:
        """(c) Load the account ``count`` times through the repository (no cache)."""
        with Stopwatch() as watch:
            for _ in range(count):
                self.repository.get(account_id)
        return Sample(count, watch.seconds)

    def stream_reads(self, account_id: UUID, count: int) -> Sample:
        """(c, rows only) Read the account's stored events ``count`` times, undecoded."""
        with Stopwatch() as watch:
            for _ in range(count):
                self.recorder.select_events(account_id)
        return Sample(count, watch.seconds)

    def global_read(
        self, after_position: int, count: int, page_size: int, *, decode: bool
    ) -> Sample:
        """(d) Read ``count`` notifications after ``after_position``, a page at a time."""
        read = 0
        start = after_position + 1
        with Stopwatch() as watch:
            while read < count:
                page = self.recorder.select_notifications(
                    start=start, limit=min(page_size, count - read)
                )
                if not page:
                    break
                if decode:
                    for notification in page:
                        self.mapper.to_domain_event(notification)
                read += len(page)
                start = page[-1].id + 1
        return Sample(read, watch.seconds)

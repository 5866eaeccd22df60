"""The ambient command scope: the unit of work and ids of the command being handled.

The mediator opens a scope around each command; repositories and stores read
the unit of work from it (:func:`current_uow`) so they join the command's
transaction without being handed a session. The scope lives in a
``contextvars.ContextVar``: each asyncio task sees its own, and reading it
outside a command raises :class:`~cqrs_ddd_core.exceptions.NoActiveUnitOfWorkError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from uuid import UUID

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import NoActiveUnitOfWorkError
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork


@dataclass
class CommandScope:
    """What repositories need to know about the command being handled.

    ``record`` gathers the events that repositories saved with their aggregates;
    the mediator takes them (:meth:`take_events`) when the handler returns.
    A repository records them with ``stored=True``: saving an aggregate, it
    has already put its events where that kind of aggregate keeps them (its
    stream for an event-sourced one; the outbox, or nowhere, beside a
    state-stored one's state), and :meth:`is_stored` tells a mediator that
    persists events (the advanced package's ``EventSourcedMediator``) to leave
    them alone. Events recorded without it are the mediator's to persist.

    :meth:`before_commit` registers work that must commit with the command
    (the command scheduler marks the scheduled run done this way); the
    mediator runs it after the handler, inside the transaction. By then
    ``produced`` holds every event the command produced (the undo service
    logs them this way).
    """

    uow: UnitOfWork
    correlation_id: str | None = None
    causation_id: str | None = None
    produced: tuple[DomainEvent, ...] = ()
    _events: list[DomainEvent] = field(default_factory=list)
    _stored: set[UUID] = field(default_factory=set)
    _before_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` in the unit of work after the handler returns, before the commit.

        An error it raises fails the command, which rolls back; actions run
        in the order registered. Only a mediator's command runs them (see
        :meth:`run_before_commit`).
        """
        self._before_commit.append(action)

    async def run_before_commit(self) -> None:
        """Run the actions registered with :meth:`before_commit`, once each, in order."""
        while self._before_commit:
            action = self._before_commit.pop(0)
            await action()

    def stamp(self, event: DomainEvent) -> DomainEvent:
        """Return ``event`` with this command's correlation and causation ids."""
        return stamp_ids(event, self.correlation_id, self.causation_id)

    def record(self, events: Iterable[DomainEvent], *, stored: bool = False) -> list[DomainEvent]:
        """Stamp ``events``, remember them for the mediator and return them stamped.

        ``stored=True`` says the caller stores them itself, in this command's
        unit of work: they are still returned and dispatched after the commit,
        and :meth:`is_stored` answers True for them.
        """
        stamped = [self.stamp(event) for event in events]
        self._events.extend(stamped)
        if stored:
            self._stored.update(event.event_id for event in stamped)
        return stamped

    def is_stored(self, event: DomainEvent) -> bool:
        """Return whether a repository recorded ``event`` as stored in this command."""
        return event.event_id in self._stored

    def take_events(self) -> list[DomainEvent]:
        """Return the recorded events once, in order, and forget them.

        Which of them were stored is remembered for the rest of the command.
        """
        events, self._events = self._events, []
        return events


def stamp_ids(
    event: DomainEvent, correlation_id: str | None, causation_id: str | None
) -> DomainEvent:
    """Return ``event`` carrying the given correlation and causation ids where it has none.

    Ids the event already carries are kept, so stamping twice changes nothing.
    """
    update: dict[str, str] = {}
    if event.correlation_id is None and correlation_id is not None:
        update["correlation_id"] = correlation_id
    if event.causation_id is None and causation_id is not None:
        update["causation_id"] = causation_id
    return event.model_copy(update=update) if update else event


_current: ContextVar[CommandScope | None] = ContextVar("cqrs_ddd_command_scope", default=None)
_joiners: ContextVar[tuple[Callable[[CommandScope], None], ...]] = ContextVar(
    "cqrs_ddd_command_joiners", default=()
)


@contextmanager
def joining_commands(
    join: Callable[[CommandScope], None], *, causation_id: str | None = None
) -> Iterator[None]:
    """Call ``join`` with the scope of the commands the enclosed block opens at the top level.

    For work that must commit with a command someone else runs: the command
    scheduler wraps ``mediator.send(command)`` in this, with ``causation_id``
    the command's id, and registers, in ``join``, a
    :meth:`CommandScope.before_commit` action that marks the scheduled run
    done in that command's own transaction. With ``causation_id``, only a
    scope of that command is joined (the mediator gives a command's scope its
    id as causation id): not a command an event handler sends after it
    committed, nor one a behaviour sends first. Commands nested inside a
    joined command are not joined (their scope is the inner one); a command
    sent again (a retry behaviour) is joined again.
    """

    def joining(scope: CommandScope) -> None:
        if causation_id is None or scope.causation_id == causation_id:
            join(scope)

    token = _joiners.set((*_joiners.get(), joining))
    try:
        yield
    finally:
        _joiners.reset(token)


@contextmanager
def command_scope(
    uow: UnitOfWork,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Iterator[CommandScope]:
    """Make ``uow`` the ambient unit of work for the enclosed block.

    The mediator does this for every command; tests and scripts that use
    repositories outside the mediator do it themselves. Scopes nest: the outer
    one is restored on exit.
    """
    scope = CommandScope(uow, correlation_id=correlation_id, causation_id=causation_id)
    joiners = _joiners.get()
    joined = _joiners.set(()) if joiners else None  # nested commands are not joined
    token = _current.set(scope)
    try:
        for join in joiners:
            join(scope)
        yield scope
    finally:
        _current.reset(token)
        if joined is not None:
            _joiners.reset(joined)


def current_scope() -> CommandScope:
    """Return the scope of the command being handled, or raise ``NoActiveUnitOfWorkError``."""
    scope = _current.get()
    if scope is None:
        raise NoActiveUnitOfWorkError
    return scope


def current_scope_or_none() -> CommandScope | None:
    """Return the scope of the command being handled, or None outside of a command.

    For adapters that join the command's transaction when there is one and run
    on their own otherwise.
    """
    return _current.get()


def current_uow() -> UnitOfWork:
    """Return the ambient unit of work, or raise ``NoActiveUnitOfWorkError``."""
    return current_scope().uow

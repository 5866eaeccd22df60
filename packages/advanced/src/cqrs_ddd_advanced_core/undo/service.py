"""``UndoService``: execute commands with an undo token; undo and redo them, durably and safely.

::

    undo_token = await undo_service.execute(AddItemToOrder(order_id="order_123", ...))
    await undo_service.undo(undo_token)
    await undo_service.redo(undo_token)

``execute`` sends the command through the mediator (full pipeline, unit of
work) and, in the command's own transaction, writes an undo log entry: the
command, the inverse its executor computes from the events it produced, the
aggregate versions it reached, who ran it. ``undo`` sends the inverse through
the mediator and, in that command's transaction, marks the entry undone;
``redo`` sends the original command again (with a new id) and marks it
redone. History is never rewritten: undo and redo append events.

The rules, each with a typed error naming what was wrong (nothing is written
when one is raised):

* an unknown token: ``UnknownUndoTokenError``; a token of another user's stack
  (``per_user=True``): ``ForeignUndoTokenError``; a command type without an
  executor: ``NoUndoExecutorError``, before anything runs;
* undo of an entry undone already: ``AlreadyUndoneError``; redo of one not
  undone, or whose redo a later command superseded: ``NotUndoneError``;
* a new command executed through the service on an aggregate empties its
  redo stack (its undone entries become ``superseded``);
* when an aggregate changed since the entry (another writer, or another
  entry's net change: undos and redos that cancel out are left out), the undo
  (or redo) applies only if the executor says it commutes with the events
  since; else ``UndoConflictError`` names them. The check runs before the
  inverse is sent and again in its transaction;
* two clients undoing one entry at once: one succeeds, the other gets
  ``ConcurrencyError`` (the entry's save is version-checked in the inverse
  command's transaction; an inverse that fails because the other client's
  went first is reported the same way);
* an undo or redo retried with the same ``operation_id`` (for that token and
  action) takes effect once;
* when the inverse (or redone) command fails, its transaction rolls back
  with the entry's change: ``UndoFailedError`` says why, the entry is as it
  was (a failure after the commit, an event handler's, is raised as it is).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID, uuid4, uuid5

from cqrs_ddd_advanced_core.undo.errors import (
    AlreadyUndoneError,
    ForeignUndoTokenError,
    NotUndoneError,
    UndoConflictError,
    UndoError,
    UndoFailedError,
    UnknownUndoTokenError,
)
from cqrs_ddd_advanced_core.undo.executors import UndoExecutor, UndoExecutorRegistry
from cqrs_ddd_advanced_core.undo.log import (
    LoggedCommand,
    LoggedEvent,
    UndoEntry,
    UndoLog,
    UndoStatus,
)
from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.cqrs.outcome import CommandPhase, phase_of
from cqrs_ddd_core.cqrs.scope import CommandScope, joining_commands
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import ConcurrencyError, CqrsDddError
from cqrs_ddd_core.ports.event_store import EventStore


class CommandSender(Protocol):
    """What the undo service sends commands through: the mediator."""

    async def send(self, command: Command) -> Any:
        """Handle ``command`` in its own transaction."""
        ...


class UndoService:
    """Executes commands with undo tokens and undoes and redoes them (see the module docs).

    ``mediator`` runs every command; ``executors`` say how to reverse each
    command type; ``log`` keeps the entries (on the mediator's database);
    ``event_store`` is where the service looks for events recorded on an
    entry's aggregates since the entry, to refuse (or, when the executor says
    the inverse commutes, allow) an undo after another writer's command;
    without one (aggregates that are not event-sourced) there is no such check. With
    ``per_user`` an undo token is only honoured for the user who ran it.
    ``message_registry`` names the command types the log stores (by default
    the mediator's handled command types).
    """

    def __init__(
        self,
        mediator: CommandSender,
        executors: UndoExecutorRegistry,
        log: UndoLog,
        *,
        event_store: EventStore | None = None,
        message_registry: MessageTypeRegistry | None = None,
        per_user: bool = False,
    ) -> None:
        registry = message_registry or MessageTypeRegistry.of_mediator(mediator)
        if registry is None:
            raise CqrsDddError(
                "UndoService needs message_registry=MessageTypeRegistry([...]) naming the "
                "commands it logs: the mediator given has no handler registry to take them from"
            )
        self.mediator = mediator
        self.executors = executors
        self.log = log
        self.event_store = event_store
        self.message_registry = registry
        self.per_user = per_user

    # -- the three operations ------------------------------------------------------------

    async def execute(self, command: Command, *, user: str | None = None) -> UUID:
        """Run ``command`` and log it for undo, in its transaction; return its undo token."""
        undo = self.executors.executor_for(command)
        logged_command = self._logged(command)  # an unloggable command fails before it runs
        token = uuid4()
        logged: list[bool] = []

        async def record(scope: CommandScope) -> None:
            events = _logged_events(scope.produced)
            entry = UndoEntry(
                token=token,
                command=logged_command,
                inverse=self._logged(undo.inverse(command, list(scope.produced))),
                events=events,
                applied=events,
                aggregates=_versions(scope.produced),
                user=user,
                created_at=datetime.now(UTC),
            )
            await self.log.supersede(sorted(entry.aggregates))
            await self.log.add(entry)
            logged.append(True)

        await self._send(command, record)
        if not logged:
            raise UndoError(
                f"{type(command).__name__} ran, but outside the unit of work the undo log joins "
                "(a command sender that runs no before-commit work, or a behaviour that sent it "
                "again under another id): it was not logged and cannot be undone"
            )
        return token

    async def undo(
        self, token: UUID, *, operation_id: UUID | None = None, user: str | None = None
    ) -> None:
        """Reverse the command of ``token`` by sending its inverse (see the module docs)."""
        entry = await self._entry(token, user)
        key = _operation_key(operation_id, token, "undo")
        if key in entry.operations:
            return  # this very undo took effect already: a retry
        if not entry.undoable:
            raise AlreadyUndoneError(token, entry.status)
        inverse = self._decoded(entry.inverse).model_copy(update={"command_id": key})
        await self._apply(entry, "undo", key, inverse, "undone")

    async def redo(
        self, token: UUID, *, operation_id: UUID | None = None, user: str | None = None
    ) -> None:
        """Apply the command of ``token`` again after an undo (see the module docs)."""
        entry = await self._entry(token, user)
        key = _operation_key(operation_id, token, "redo")
        if key in entry.operations:
            return  # this very redo took effect already: a retry
        if entry.status != "undone":
            raise NotUndoneError(token, entry.status)
        again = self._decoded(entry.command).model_copy(update={"command_id": key})
        await self._apply(entry, "redo", key, again, "redone")

    # -- stacks ------------------------------------------------------------------------------

    async def history(
        self, *, aggregate_id: str | None = None, user: str | None = None, limit: int = 50
    ) -> list[UndoEntry]:
        """Return the entries of one aggregate and/or one user, newest first."""
        return await self.log.history(aggregate_id=aggregate_id, user=user, limit=limit)

    async def undo_last(
        self,
        *,
        aggregate_id: str,
        user: str | None = None,
        operation_id: UUID | None = None,
        search: int = 50,
    ) -> UUID | None:
        """Undo the newest entry in effect on ``aggregate_id`` (of ``user``); return its token.

        With ``operation_id``, a retry (the client never saw the answer) undoes
        nothing more: when one of the aggregate's ``search`` newest entries was
        undone by that operation already, its token is returned as it is.
        """
        if operation_id is not None:
            for entry in await self.log.history(aggregate_id=aggregate_id, user=user, limit=search):
                if _operation_key(operation_id, entry.token, "undo") in entry.operations:
                    return entry.token
        (newest,) = await self.log.history(
            aggregate_id=aggregate_id, user=user, limit=1, statuses=("done", "redone")
        ) or (None,)
        if newest is None:
            return None
        await self.undo(newest.token, operation_id=operation_id, user=user)
        return newest.token

    # -- inside -----------------------------------------------------------------------------------

    async def _entry(self, token: UUID, user: str | None) -> UndoEntry:
        entry = await self.log.get(token)
        if entry is None:
            raise UnknownUndoTokenError(token)
        if self.per_user and entry.user != user:
            raise ForeignUndoTokenError(token, user, entry.user)
        return entry

    async def _apply(
        self, entry: UndoEntry, action: str, key: UUID, command: Command, status: UndoStatus
    ) -> None:
        """Send ``command`` (the inverse, or the command again) and record it on the entry.

        The conflict check runs before sending (a clear refusal instead of a
        failing command) and again in the command's transaction, against the
        versions its events start at, when another writer committed after the
        first check (the command's handler saw that state).
        """
        original = self._decoded(entry.command)
        undo = self.executors.executor_for(original)
        checked = await self._check(entry, undo, original, action, None)

        async def record(scope: CommandScope) -> None:
            starts = _first_versions(scope.produced)
            if any(starts.get(stream, head + 1) != head + 1 for stream, head in checked.items()):
                await self._check(entry, undo, original, action, starts)
            events = _logged_events(scope.produced, application=len(entry.operations) + 1)
            change: dict[str, Any] = {
                "status": status,
                "applied": (*entry.applied, *events),
                "aggregates": entry.aggregates | _versions(scope.produced),
                "operations": (*entry.operations, key),
            }
            if action == "redo":  # the command ran again: its inverse is read from these events
                change["inverse"] = self._logged(undo.inverse(command, list(scope.produced)))
            await self.log.save(entry.model_copy(update=change))

        try:
            await self._send(command, record)
        except UndoError:
            raise
        except Exception as error:
            if phase_of(error) is CommandPhase.AFTER_COMMIT:
                raise  # it took effect; what followed the commit failed, and says so
            current = await self.log.get(entry.token)
            if current is not None and current.version != entry.version:
                if key in current.operations:
                    raise  # ours committed after all (the outcome of the commit was unknown)
                raise ConcurrencyError(
                    f"undo entry {entry.token}",
                    expected_version=entry.version,
                    actual_version=current.version,
                ) from error
            if isinstance(error, ConcurrencyError):
                raise
            reason = f"{type(error).__qualname__}: {error}"
            raise UndoFailedError(entry.token, action, reason) from error

    async def _check(
        self,
        entry: UndoEntry,
        undo: UndoExecutor[Any],
        command: Command,
        action: str,
        until: dict[str, int] | None,
    ) -> dict[str, int]:
        """Refuse (``UndoConflictError``) unless the events since the entry commute with it.

        Returns the version each of the entry's streams had reached when checked.
        """
        intervening, heads = await self._since(entry, until)
        if intervening and not undo.commutes(command, intervening):
            raise UndoConflictError(entry.token, action, intervening)
        return heads

    async def _since(
        self, entry: UndoEntry, until: dict[str, int] | None
    ) -> tuple[list[LoggedEvent], dict[str, int]]:
        """Return the events recorded on the entry's aggregates since the versions it reached.

        ``until`` bounds each stream (versions below it). Another entry's
        applications in that window that cancel out (an even number of them:
        done and undone, or undone and redone) are left out, so undoing an
        aggregate's entries newest first, and redoing them oldest first, meets
        no conflict. Every other change counts: another entry's net change,
        and every other writer's events. Also returns the version each stream
        had reached (the entry's own when nothing followed it).
        """
        heads = dict(entry.aggregates)
        if self.event_store is None:
            return [], heads
        since: list[LoggedEvent] = []
        for stream, version in sorted(entry.aggregates.items()):
            limit = None if until is None else until.get(stream)
            if limit is not None and limit <= version + 1:
                continue  # the command's first event follows the entry's: nothing between
            stored = await self.event_store.load_stream(stream, from_version=version + 1)
            found = [event for event in stored if limit is None or event.version < limit]
            if not found:
                continue
            heads[stream] = found[-1].version
            window = {event.event_id for event in found}
            cancelled: set[UUID] = set()
            for other in await self.log.history(aggregate_id=stream, limit=10_000):
                if other.token == entry.token:
                    continue
                inside = [event for event in other.applied if event.event_id in window]
                if len({event.application for event in inside}) % 2 == 0:
                    cancelled.update(event.event_id for event in inside)
            since.extend(
                LoggedEvent(
                    event_id=event.event_id,
                    event_type=event.event_type,
                    aggregate_id=event.stream_id,
                    version=event.version,
                    payload=event.payload,
                )
                for event in found
                if event.event_id not in cancelled
            )
        return since, heads

    async def _send(self, command: Command, record: Callable[[CommandScope], Any]) -> None:
        def join(scope: CommandScope) -> None:
            async def write() -> None:
                await record(scope)

            scope.before_commit(write)

        with joining_commands(join, causation_id=str(command.command_id)):
            await self.mediator.send(command)

    def _logged(self, command: Command) -> LoggedCommand:
        command_type, payload = self.message_registry.encode(command)
        return LoggedCommand(command_type=command_type, payload=payload)

    def _decoded(self, logged: LoggedCommand) -> Command:
        return self.message_registry.decode(
            logged.command_type, logged.payload, where="undo log entry"
        )


_ENVELOPE = set(DomainEvent.model_fields)


def _operation_key(operation_id: UUID | None, token: UUID, action: str) -> UUID:
    """Return the id of one undo or redo of one entry: the command's id, and the retry's key."""
    return uuid5(operation_id or uuid4(), f"{token}:{action}")


def _first_versions(events: Sequence[DomainEvent]) -> dict[str, int]:
    """Return the version each aggregate's first event in ``events`` has."""
    first: dict[str, int] = {}
    for event in events:
        if event.aggregate_id is not None and event.version is not None:
            first[event.aggregate_id] = min(
                first.get(event.aggregate_id, event.version), event.version
            )
    return first


def _logged_events(
    events: Sequence[DomainEvent], *, application: int = 0
) -> tuple[LoggedEvent, ...]:
    return tuple(
        LoggedEvent(
            event_id=event.event_id,
            event_type=event.event_type,
            aggregate_id=event.aggregate_id,
            version=event.version,
            payload=event.model_dump(mode="json", exclude=_ENVELOPE),
            application=application,
        )
        for event in events
    )


def _versions(events: Sequence[DomainEvent]) -> dict[str, int]:
    """Return the version each aggregate reached with ``events``."""
    reached: dict[str, int] = {}
    for event in events:
        if event.aggregate_id is not None and event.version is not None:
            reached[event.aggregate_id] = max(reached.get(event.aggregate_id, 0), event.version)
    return reached

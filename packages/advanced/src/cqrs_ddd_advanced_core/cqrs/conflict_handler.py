"""``ConflictCommandHandler``: a command handler that merges its changes after a conflict."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cqrs_ddd_advanced_core.cqrs.conflict_behavior import ConflictBehavior, ConflictContext
from cqrs_ddd_advanced_core.domain.aggregate_mixin import EventSourcedAggregateMixin
from cqrs_ddd_advanced_core.domain.conflict_events import ConflictResolved, apply_resolved_state
from cqrs_ddd_advanced_core.domain.exceptions import ConflictHandlerError
from cqrs_ddd_core.cqrs.behaviors import PipelineBehavior
from cqrs_ddd_core.cqrs.handlers import CommandHandler, TCommand
from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.ports.repository import Repository

_NOT_CHANGES = frozenset({"command_id", "correlation_id"})


class ConflictCommandHandler(CommandHandler[TCommand]):
    """A command handler that resolves optimistic-concurrency conflicts on its aggregate.

    Implement :meth:`_handle_internal` as an ordinary handler body. The handler
    contributes a :class:`ConflictBehavior` (``max_retries`` attempts after the
    first) around its command; when an attempt fails with ``ConcurrencyError``,
    the command runs again in a fresh unit of work and :meth:`handle` takes the
    conflict path:

    - if the class overrides :meth:`resolve_conflict`: ``existing`` =
      :meth:`load_existing` (by default ``self.repo.get(stream_id)``: the fresh
      aggregate), ``incoming`` = :meth:`incoming_changes`, ``resolved =
      resolve_conflict(existing, incoming)``; the resolved state is recorded on
      ``existing`` as a :class:`ConflictResolved` event and ``existing`` is saved
      with :meth:`save_resolved` (by default ``self.repo.save``), against the
      version just loaded, so a third writer still conflicts (no lost update);
      the conflict path returns None;
    - otherwise the command is simply handled again (:meth:`_handle_internal`
      on the fresh state), as Axon re-executes a command.

    Errors of ``resolve_conflict`` (a merge strategy's
    ``UnresolvableConflictError``) are raised as they are, never retried.
    Repositories arrive through the constructor; the defaults use ``self.repo``.
    """

    max_retries: ClassVar[int] = 3
    repo: Repository[Any]
    _conflicts: ConflictBehavior | None = None

    @abstractmethod
    async def _handle_internal(self, command: TCommand) -> Any:
        """Carry out ``command``: load, change and save its aggregate, as in any handler."""

    async def handle(self, command: TCommand) -> Any:
        """Handle ``command``, resolving its conflict when this attempt follows one."""
        context = self.conflict_behavior.conflict_for(command)
        if context is None or not self._merges_conflicts():
            return await self._handle_internal(command)
        await self._resolve(command, context)
        return None

    @property
    def conflict_behavior(self) -> ConflictBehavior:
        """The :class:`ConflictBehavior` running this handler's command again (one per handler)."""
        if self._conflicts is None:
            self._conflicts = ConflictBehavior(max_retries=self.max_retries)
        return self._conflicts

    def pipeline_behaviors(self) -> Sequence[PipelineBehavior]:
        """Return the :class:`ConflictBehavior` that runs this handler's command again."""
        return (self.conflict_behavior,)

    async def load_existing(self, command: TCommand, context: ConflictContext) -> AggregateRoot:
        """Return the aggregate in conflict as now stored (``self.repo.get(stream_id)``)."""
        stream_id = context.conflict.stream_id
        aggregate: AggregateRoot = await self._repository(stream_id).get(stream_id)
        return aggregate

    def incoming_changes(self, command: TCommand) -> dict[str, Any]:
        """Return the changes ``command`` makes, to merge into the stored state.

        ``command.changes`` when the command has such a mapping, else the
        command's fields (without ``command_id`` and ``correlation_id``).
        """
        changes = getattr(command, "changes", None)
        if isinstance(changes, Mapping):
            return dict(changes)
        return command.model_dump(exclude=set(_NOT_CHANGES))

    def resolve_conflict(self, existing: Any, incoming: dict[str, Any]) -> Any:
        """Return ``existing`` (just loaded) with ``incoming`` merged in; override to merge.

        Not overriding it means "handle the command again on the fresh state".
        The result must be an aggregate of ``existing``'s class and id; its
        state (not its events) is what gets saved.
        """
        return existing

    async def save_resolved(self, aggregate: AggregateRoot) -> None:
        """Save the aggregate carrying the resolution (``self.repo.save``)."""
        await self._repository(aggregate.id).save(aggregate)

    def _merges_conflicts(self) -> bool:
        return type(self).resolve_conflict is not ConflictCommandHandler.resolve_conflict

    async def _resolve(self, command: TCommand, context: ConflictContext) -> None:
        existing = await self.load_existing(command, context)
        incoming = self.incoming_changes(command)
        resolved = self._check_resolved(
            existing, self.resolve_conflict(existing, incoming), context
        )
        record_resolution(existing, resolved, incoming)
        await self.save_resolved(existing)

    def _repository(self, stream_id: str) -> Repository[Any]:
        repository: Repository[Any] | None = getattr(self, "repo", None)
        if repository is None:
            raise ConflictHandlerError(type(self).__name__, stream_id, _NO_REPOSITORY_REASON)
        return repository

    def _check_resolved(
        self, existing: AggregateRoot, resolved: object, context: ConflictContext
    ) -> AggregateRoot:
        if (
            isinstance(resolved, AggregateRoot)
            and type(resolved) is type(existing)
            and resolved.id == existing.id
        ):
            return resolved
        raise ConflictHandlerError(
            type(self).__name__,
            context.conflict.stream_id,
            f"resolve_conflict returned {_describe(resolved)}, not the "
            f"{type(existing).__name__} {existing.id!r} it was given",
        )


_NO_REPOSITORY_REASON = (
    "it has no `repo` attribute: set self.repo in __init__, or override "
    "load_existing and save_resolved"
)


def record_resolution(
    existing: AggregateRoot, resolved: AggregateRoot, changes: Mapping[str, Any]
) -> ConflictResolved:
    """Give ``existing`` the state of ``resolved`` through a recorded ``ConflictResolved`` event.

    An event-sourced aggregate applies the event through its handler
    (``trigger_event``); a state-stored one gets the fields set and the event
    recorded. Returns the recorded event.
    """
    event = ConflictResolved.of(resolved, changes)
    if isinstance(existing, EventSourcedAggregateMixin):
        recorded: ConflictResolved = existing.trigger_event(event)
        return recorded
    apply_resolved_state(existing, event.state)
    return existing.record_event(event)


def _describe(value: object) -> str:
    if isinstance(value, AggregateRoot):
        return f"the {type(value).__name__} {value.id!r}"
    return f"a {type(value).__name__}"

"""``InMemorySagaRepository`` and ``InMemoryBranchBarrier``: saga instances and barrier rows.

Writes are staged in the ambient ``InMemoryUnitOfWork`` (the repository's
:meth:`~InMemorySagaRepository.unit_of_work`) and applied when it commits,
after checking that the instance's version did not move on and that no other
instance took the same (saga type, correlation key) meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from cqrs_ddd_advanced_core.adapters.memory.staging import stage_with_command
from cqrs_ddd_advanced_core.sagas.barrier import (
    BarrierError,
    BarrierOutcome,
    BranchOperation,
    branch_operation,
    decide,
)
from cqrs_ddd_advanced_core.sagas.orchestration import (
    BranchCommand,
    SagaDefinitionError,
    SagaState,
)
from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import current_scope_or_none
from cqrs_ddd_core.exceptions import ConcurrencyError


class InMemorySagaRepository:
    """Saga instances in memory; ``clock`` (Unix seconds) dates their last change."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._states: dict[UUID, SagaState] = {}
        self._keys: dict[tuple[str, str], UUID] = {}
        self._changed_at: dict[UUID, float] = {}
        self._state_types: dict[str, type[SagaState]] = {}

    def unit_of_work(self) -> InMemoryUnitOfWork:
        """Return a fresh in-memory unit of work, which this repository's writes join."""
        return InMemoryUnitOfWork()

    async def find(self, saga_type: str, correlation_key: str) -> SagaState | None:
        """Return a copy of the instance of ``saga_type`` named ``correlation_key``, or None."""
        saga_id = self._keys.get((saga_type, correlation_key))
        return None if saga_id is None else await self.get(saga_id)

    async def get(self, saga_id: UUID) -> SagaState | None:
        """Return a copy of the instance ``saga_id``, or None."""
        state = self._states.get(saga_id)
        return None if state is None else state.model_copy(deep=True)

    async def add(self, state: SagaState) -> bool:
        """Stage a new instance; False when its type and key are taken already."""
        expected = self._state_types.get(state.saga_type, SagaState)
        if not isinstance(state, expected):
            raise SagaDefinitionError(
                state.saga_type,
                f"its state is a {expected.__qualname__}, not a {type(state).__qualname__}",
            )
        key = (state.saga_type, state.correlation_key)
        if key in self._keys:
            return False
        stored = state.model_copy(deep=True, update={"version": 1})

        def check() -> None:
            if key in self._keys:
                raise ConcurrencyError(
                    f"saga {state.saga_type}:{state.correlation_key}",
                    expected_version=0,
                    actual_version=1,
                )

        def apply() -> None:
            self._keys[key] = stored.saga_id
            self._put(stored)

        stage_with_command("saga repository", ("saga", stored.saga_id), check, apply)
        return True

    async def save(self, state: SagaState) -> None:
        """Stage ``state`` as the next version; ``ConcurrencyError`` at commit if it moved on."""
        expected = state.version
        stored = state.model_copy(deep=True, update={"version": expected + 1})

        def check() -> None:
            current = self._states.get(state.saga_id)
            actual = 0 if current is None else current.version
            if actual != expected:
                raise ConcurrencyError(
                    f"saga {state.saga_id}", expected_version=expected, actual_version=actual
                )

        stage_with_command(
            "saga repository", ("saga", state.saga_id), check, lambda: self._put(stored)
        )

    async def all(self) -> list[SagaState]:
        """Return copies of every instance, in the order they were added (for tests and tools)."""
        return [state.model_copy(deep=True) for state in self._states.values()]

    async def stalled(self, older_than: float, *, limit: int = 100) -> list[SagaState]:
        """Claim copies of up to ``limit`` instances in flight, unchanged for ``older_than`` s."""
        now = self.clock()
        claimed = [
            saga_id
            for saga_id, state in self._states.items()
            if state.in_flight and self._changed_at[saga_id] <= now - older_than
        ][:limit]
        for saga_id in claimed:
            self._changed_at[saga_id] = now
        return [self._states[saga_id].model_copy(deep=True) for saga_id in claimed]

    def register_state_type(self, saga_type: str, state_type: type[SagaState]) -> None:
        """Check that instances of ``saga_type`` are added as ``state_type`` from now on."""
        self._state_types[saga_type] = state_type

    async def park(self, saga_id: UUID, reason: str) -> None:
        """Mark the instance ``saga_id`` parked, with ``reason``."""
        state = self._states.get(saga_id)
        if state is not None:
            parked = state.model_copy(
                update={"status": "parked", "reason": reason, "version": state.version + 1}
            )
            self._put(parked)

    def _put(self, state: SagaState) -> None:
        self._states[state.saga_id] = state
        self._changed_at[state.saga_id] = self.clock()


class InMemoryBranchBarrier:
    """The TCC branch barrier in memory; its rows join the handler's ``InMemoryUnitOfWork``.

    A row is taken when the handler enters the barrier (a second handler of
    the same operation, even before the first commits, finds it taken) and
    given back if the unit of work rolls back.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[UUID, str, str], BranchOperation] = {}
        """Committed rows: (saga id, branch, operation) → the operation that inserted it."""
        self._taken: dict[tuple[UUID, str, str], BranchOperation] = {}

    async def enter(self, command: BranchCommand) -> BarrierOutcome:
        """Record ``command``'s operation in the current unit of work; say whether to run it."""
        saga_id, branch, operation = branch_operation(command)
        scope = current_scope_or_none()
        if scope is None or not isinstance(scope.uow, InMemoryUnitOfWork):
            raise BarrierError(
                f"{type(command).__name__} must pass the barrier inside its handler's "
                "InMemoryUnitOfWork, so the barrier's row commits or rolls back with its effect"
            )
        uow = scope.uow

        async def insert(
            row_operation: BranchOperation, origin: BranchOperation
        ) -> BranchOperation | None:
            key = (saga_id, branch, row_operation)
            found = self.rows.get(key) or self._taken.get(key)
            if found is not None:
                return found
            self._taken[key] = origin

            def apply() -> None:
                self.rows[key] = self._taken.pop(key)

            def release() -> None:
                self._taken.pop(key, None)

            uow.stage(("barrier", key), check=lambda: None, apply=apply, discard=release)
            return None

        return await decide(operation, insert)

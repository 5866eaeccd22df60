"""The branch barrier: each TCC operation takes effect once, in an order that makes sense.

A TCC branch's handlers (try, confirm, cancel) can be called twice (a saga
resumed after a crash sends again), and out of order (a cancel sent because
the try's outcome is unknown can arrive before a try that was delayed). The
barrier answers, inside the handler's own transaction, whether the business
code should run, by inserting a row keyed by (saga id, branch, operation):

- a try or confirm runs when its row is new; when the row is there it is a
  duplicate, or, for a try, *hanging*: its cancel came first and took its place;
- a cancel first inserts the try's row on the try's behalf: when that row is
  new, the try never ran, so there is nothing to undo (*null compensation*),
  and the late try will find its row taken and do nothing (*anti-hanging*);
  otherwise the cancel runs when its own row is new.

The rows are written in the handler's transaction: when the business code
fails and the transaction rolls back, the row goes too, and the operation can
run again. On PostgreSQL a second transaction inserting the same row waits
for the first to end, so a cancel racing an uncommitted try sees its outcome.

::

    async def handle(self, command: HoldStock) -> None:
        if not (await barrier.enter(command)).proceed:
            return  # a duplicate, or cancelled before it came
        ...  # hold the stock, in the same unit of work

``InMemoryBranchBarrier`` (``cqrs_ddd_advanced_core.adapters.memory``) and
``SQLAlchemyBranchBarrier`` (``cqrs_ddd_persistence_sqlalchemy``) implement it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Literal, Protocol, TypeVar
from uuid import UUID

from cqrs_ddd_advanced_core.sagas.orchestration import (
    BranchCommand,
    CommandKind,
    SagaError,
    command_id_for,
)

BranchOperation = Literal["try", "confirm", "cancel"]
"""The three operations of a TCC branch."""

TBranch = TypeVar("TBranch", bound=BranchCommand)

_KINDS: dict[CommandKind, BranchOperation] = {
    "forward": "try",
    "confirm": "confirm",
    "compensate": "cancel",
}


class BarrierOutcome(StrEnum):
    """What the barrier decided about one operation."""

    PROCEED = "proceed"
    """The operation is new: run the business code."""
    DUPLICATE = "duplicate"
    """It ran already: do nothing."""
    NULL_COMPENSATION = "null_compensation"
    """A cancel whose try never ran: nothing to undo (and the try is now barred)."""
    HANGING = "hanging"
    """A try that came after its cancel: do nothing, the transaction is over."""

    @property
    def proceed(self) -> bool:
        """Whether the business code should run."""
        return self is BarrierOutcome.PROCEED


class BarrierError(SagaError):
    """A command cannot pass the barrier: it is not a saga's branch operation, or no transaction."""


def branch_operation(command: BranchCommand) -> tuple[UUID, str, BranchOperation]:
    """Return the saga id, branch and operation of ``command``, from what the saga set on it.

    The operation is read from the command's deterministic id; a command
    that a saga did not send as a branch operation raises ``BarrierError``
    naming its type and id.
    """
    saga_id, branch = command.saga_id, command.branch
    if saga_id is not None and branch is not None:
        for kind, operation in _KINDS.items():
            if command.command_id == command_id_for(saga_id, branch, kind):
                return saga_id, branch, operation
    raise BarrierError(
        f"{type(command).__name__} {command.command_id} is not an operation of a TCC branch "
        f"(saga_id={saga_id}, branch={branch!r}): send it from a TccSaga"
    )


def as_branch_operation(
    command: TBranch, *, saga_id: UUID, branch: str, operation: BranchOperation
) -> TBranch:
    """Return ``command`` as a TCC saga sends it: for ``operation`` of ``branch`` of ``saga_id``.

    For tests of branch handlers, and for sending an operation by hand.
    """
    kind = next(kind for kind, named in _KINDS.items() if named == operation)
    return command.model_copy(
        update={
            "saga_id": saga_id,
            "branch": branch,
            "command_id": command_id_for(saga_id, branch, kind),
        }
    )


Insert = Callable[[BranchOperation, BranchOperation], Awaitable[BranchOperation | None]]
"""Insert the row of an operation, recording which operation put it there; return None when
it is new, else the operation that put the existing row there."""


async def decide(operation: BranchOperation, insert: Insert) -> BarrierOutcome:
    """Decide about ``operation`` with ``insert``, the store's one primitive."""
    if operation == "cancel":
        if await insert("try", "cancel") is None:
            await insert("cancel", "cancel")
            return BarrierOutcome.NULL_COMPENSATION
        if await insert("cancel", "cancel") is None:
            return BarrierOutcome.PROCEED
        return BarrierOutcome.DUPLICATE
    found = await insert(operation, operation)
    if found is None:
        return BarrierOutcome.PROCEED
    return BarrierOutcome.HANGING if found == "cancel" else BarrierOutcome.DUPLICATE


class BranchBarrier(Protocol):
    """Decides, in a branch handler's transaction, whether its business code runs."""

    async def enter(self, command: BranchCommand) -> BarrierOutcome:
        """Record ``command``'s operation in the current unit of work; say whether to run it."""
        ...

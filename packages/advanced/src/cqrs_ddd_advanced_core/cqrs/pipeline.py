"""``BehaviorPipeline``: pipeline behaviours composed into one, the spec's "behavior pipeline".

The mediator already runs its behaviours, and those a handler contributes, with
``cqrs_ddd_core.cqrs.run_pipeline``. A ``BehaviorPipeline`` names such a list so
that it can be built once, extended (``then``), run around any terminal step
(a worker that is not a mediator, a test), or handed to a mediator as a single
behaviour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cqrs_ddd_core.cqrs.behaviors import Message, NextStep, PipelineBehavior, run_pipeline


class BehaviorPipeline:
    """An ordered, immutable list of pipeline behaviours (first outermost), itself a behaviour.

    ``run(message, terminal)`` runs ``message`` through the behaviours and ends
    at ``terminal(message)``; ``handle(message, next_step)`` does the same
    ending at ``next_step()``, so a pipeline can sit wherever one behaviour can.
    """

    def __init__(self, behaviors: Iterable[PipelineBehavior] = ()) -> None:
        self.behaviors: tuple[PipelineBehavior, ...] = tuple(behaviors)

    def then(self, *behaviors: PipelineBehavior) -> BehaviorPipeline:
        """Return a new pipeline with ``behaviors`` added inside the present ones."""
        return BehaviorPipeline((*self.behaviors, *behaviors))

    async def run(self, message: Message, terminal: Callable[[Message], Awaitable[Any]]) -> Any:
        """Run ``message`` through the behaviours, ending at ``terminal``; return its result."""
        return await run_pipeline(self.behaviors, message, terminal)

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        """Run the behaviours around ``next_step`` (the pipeline as one behaviour)."""

        async def terminal(_: Message) -> Any:
            return await next_step()

        return await self.run(message, terminal)

    def __len__(self) -> int:
        return len(self.behaviors)

    def __repr__(self) -> str:
        names = ", ".join(type(behavior).__name__ for behavior in self.behaviors)
        return f"BehaviorPipeline([{names}])"

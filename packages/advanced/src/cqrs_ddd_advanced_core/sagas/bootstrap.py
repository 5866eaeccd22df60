"""``bootstrap_sagas``: the one call that wires sagas to the events and commands of an application.

::

    result = bootstrap_sagas(
        sagas=[OrderSaga],
        repository=saga_repo,
        command_bus=mediator,
        message_registry=msg_registry,
        event_dispatcher=event_dispatcher,
        recovery_interval=60,
    )
    await result.worker.start()

It builds the :class:`~.manager.SagaManager`, subscribes it to
``event_dispatcher`` for every event type a saga listens to (so the events a
command commits reach the sagas after the commit), and builds the
:class:`SagaRecoveryWorker`, which every ``recovery_interval`` seconds resumes
the instances that a crash left mid-step (unchanged for that long).
``message_registry`` names the commands the sagas send and undo; by default,
when ``command_bus`` is a mediator, every command type it has a handler for.

``scheduler`` (the command scheduler's store, on the saga repository's
database) keeps the step timeouts and deadlines the sagas declare; with it,
``bootstrap_sagas`` registers the handler of ``SagaTimeout`` on the mediator
and subscribes the manager to ``SagaTimedOut``. Build the
``CommandSchedulerService`` after ``bootstrap_sagas`` (as the spec's lifespan
does), so its message registry, taken from the mediator, knows ``SagaTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cqrs_ddd_advanced_core.sagas.manager import CommandBus, SagaManager, SagaType
from cqrs_ddd_advanced_core.sagas.orchestration import SagaDefinitionError
from cqrs_ddd_advanced_core.sagas.repository import SagaRepository
from cqrs_ddd_advanced_core.sagas.timeouts import SagaTimedOut, SagaTimeout
from cqrs_ddd_advanced_core.scheduling.ports import CommandScheduler
from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.registry import HandlerRegistry

logger = logging.getLogger(__name__)


class SagaRecoveryWorker:
    """Resumes stalled saga instances every ``interval`` seconds, in the background."""

    def __init__(self, manager: SagaManager, *, interval: float) -> None:
        self.manager = manager
        self.interval = interval
        self.resumed = 0
        """How many instances this worker resumed."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        """Whether the worker's task is alive."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start resuming in the background; starting a running worker does nothing."""
        if self.running:
            return
        self._stopping = stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(stopping), name="saga-recovery")

    async def stop(self) -> None:
        """Stop after the round under way."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        await task

    async def run_once(self) -> int:
        """Resume the instances stalled for ``interval`` seconds now; return how many."""
        resumed = await self.manager.recover(older_than=self.interval)
        self.resumed += resumed
        return resumed

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                logger.exception("saga recovery round failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await stopping.wait()


@dataclass(frozen=True)
class SagaBootstrap:
    """What :func:`bootstrap_sagas` built: the manager and its recovery worker."""

    manager: SagaManager
    worker: SagaRecoveryWorker


def bootstrap_sagas(
    *,
    sagas: Sequence[SagaType],
    repository: SagaRepository,
    command_bus: CommandBus,
    message_registry: MessageTypeRegistry | None = None,
    event_dispatcher: Any = None,
    recovery_interval: float = 60.0,
    scheduler: CommandScheduler | None = None,
    clock: Callable[[], float] = time.time,
) -> SagaBootstrap:
    """Build the saga manager and recovery worker, and subscribe the manager to the events."""
    names = [saga.name for saga in sagas]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise SagaDefinitionError(duplicated[0], "two sagas share this name")
    timed = [saga.name for saga in sagas if saga.declares_timers()]
    if timed and scheduler is None:
        raise SagaDefinitionError(
            timed[0], "it declares timeouts or a deadline: pass scheduler= to bootstrap_sagas"
        )
    registry = message_registry or _registry_of(command_bus)
    manager = SagaManager(
        sagas=sagas,
        repository=repository,
        command_bus=command_bus,
        message_registry=registry,
        scheduler=scheduler,
        clock=clock,
    )
    if scheduler is not None:
        handlers = getattr(command_bus, "registry", None)
        if not isinstance(handlers, HandlerRegistry):
            raise SagaDefinitionError(
                "?", "timeouts need command_bus to be a mediator, to handle SagaTimeout"
            )
        handlers.register_command_handler(SagaTimeout, manager.time_out)
    if event_dispatcher is not None:
        for event_type in manager.event_types:
            event_dispatcher.subscribe(event_type, manager.handle)
        if scheduler is not None:
            event_dispatcher.subscribe(SagaTimedOut, manager.after_time_out)
    return SagaBootstrap(manager, SagaRecoveryWorker(manager, interval=recovery_interval))


def _registry_of(command_bus: CommandBus) -> MessageTypeRegistry:
    registry = MessageTypeRegistry.of_mediator(command_bus)
    if registry is not None:
        return registry
    raise SagaDefinitionError(
        "?",
        "pass message_registry=MessageTypeRegistry([...]) naming the commands the sagas "
        "send: command_bus is not a mediator, so they cannot be taken from its handlers",
    )

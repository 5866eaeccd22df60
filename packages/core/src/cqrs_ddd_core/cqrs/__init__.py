"""Commands, queries, their handlers and registry, the mediator, its pipeline and error phases."""

from __future__ import annotations

from cqrs_ddd_core.cqrs.behaviors import (
    LoggingBehavior,
    NextStep,
    PipelineBehavior,
    ValidationBehavior,
    Validator,
    run_pipeline,
)
from cqrs_ddd_core.cqrs.event_dispatcher import EventDispatcher
from cqrs_ddd_core.cqrs.handlers import CommandHandler, QueryHandler
from cqrs_ddd_core.cqrs.mediator import Mediator
from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.messages import Command, Query
from cqrs_ddd_core.cqrs.outcome import CommandPhase, mark_phase, phase_of
from cqrs_ddd_core.cqrs.registry import HandlerRegistry
from cqrs_ddd_core.cqrs.response import CommandResponse
from cqrs_ddd_core.cqrs.scope import (
    CommandScope,
    command_scope,
    current_scope,
    current_scope_or_none,
    current_uow,
    joining_commands,
    stamp_ids,
)

__all__ = [
    "Command",
    "CommandHandler",
    "CommandPhase",
    "CommandResponse",
    "CommandScope",
    "EventDispatcher",
    "HandlerRegistry",
    "LoggingBehavior",
    "Mediator",
    "MessageTypeRegistry",
    "NextStep",
    "PipelineBehavior",
    "Query",
    "QueryHandler",
    "ValidationBehavior",
    "Validator",
    "command_scope",
    "current_scope",
    "current_scope_or_none",
    "current_uow",
    "joining_commands",
    "mark_phase",
    "phase_of",
    "run_pipeline",
    "stamp_ids",
]

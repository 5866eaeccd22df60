"""Undo and redo of commands: durable tokens, inverse commands, typed refusals.

``UndoService`` (:mod:`~.service`) executes commands with an undo token and
undoes and redoes them through the mediator; ``UndoExecutorRegistry`` and
``executor`` (:mod:`~.executors`) say how each command type is reversed; the
undo log port and its entries are in :mod:`~.log` (``InMemoryUndoLog`` in
``cqrs_ddd_advanced_core.adapters.memory``, ``SQLAlchemyUndoLog`` in
``cqrs_ddd_persistence_sqlalchemy``). The guide is the ``README.md`` beside
this module.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.undo.errors import (
    AlreadyUndoneError,
    ForeignUndoTokenError,
    NotUndoneError,
    NoUndoExecutorError,
    UndoConflictError,
    UndoError,
    UndoFailedError,
    UnknownUndoTokenError,
)
from cqrs_ddd_advanced_core.undo.executors import (
    FunctionExecutor,
    UndoExecutor,
    UndoExecutorRegistry,
    executor,
)
from cqrs_ddd_advanced_core.undo.log import (
    LoggedCommand,
    LoggedEvent,
    UndoEntry,
    UndoLog,
    UndoStatus,
)
from cqrs_ddd_advanced_core.undo.service import UndoService

__all__ = [
    "AlreadyUndoneError",
    "ForeignUndoTokenError",
    "FunctionExecutor",
    "LoggedCommand",
    "LoggedEvent",
    "NoUndoExecutorError",
    "NotUndoneError",
    "UndoConflictError",
    "UndoEntry",
    "UndoError",
    "UndoExecutor",
    "UndoExecutorRegistry",
    "UndoFailedError",
    "UndoLog",
    "UndoService",
    "UndoStatus",
    "UnknownUndoTokenError",
    "executor",
]

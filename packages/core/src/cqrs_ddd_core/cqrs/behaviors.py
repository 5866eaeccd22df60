"""Pipeline behaviours: ordered middleware around every command and query.

A behaviour receives the message and ``next_step``, an awaitable that runs the
rest of the pipeline (the following behaviours, then the handler inside its
unit of work). It may act before and after, retry ``next_step`` (each call runs a
fresh unit of work), or return without calling it to short-circuit. The first
behaviour in the list is the outermost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from cqrs_ddd_core.cqrs.messages import Command, Query
from cqrs_ddd_core.exceptions import FieldIssue, ValidationError

Message = Command | Query
NextStep = Callable[[], Awaitable[Any]]
"""Runs the rest of the pipeline and returns its result."""


class PipelineBehavior(Protocol):
    """Middleware around the handling of a command or query."""

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        """Handle ``message``, usually by awaiting ``next_step()`` once."""
        ...


async def run_pipeline(
    behaviors: Sequence[PipelineBehavior],
    message: Message,
    terminal: Callable[[Message], Awaitable[Any]],
) -> Any:
    """Run ``message`` through ``behaviors`` (first outermost), ending at ``terminal``."""

    async def step(index: int) -> Any:
        if index == len(behaviors):
            return await terminal(message)
        return await behaviors[index].handle(message, lambda: step(index + 1))

    return await step(0)


class LoggingBehavior:
    """Logs each message's start, outcome and duration at the given levels."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        level: int = logging.DEBUG,
        failure_level: int = logging.WARNING,
    ) -> None:
        self._logger = logger or logging.getLogger("cqrs_ddd_core.pipeline")
        self._level = level
        self._failure_level = failure_level

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        """Log around ``next_step`` and return its result (errors are logged and re-raised)."""
        name = type(message).__qualname__
        started = time.perf_counter()
        self._logger.log(self._level, "handling %s", name, extra={"message_type": name})
        try:
            result = await next_step()
        except Exception as error:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._logger.log(
                self._failure_level,
                "%s failed after %.1f ms: %s: %s",
                name,
                elapsed_ms,
                type(error).__qualname__,
                error,
                extra={"message_type": name},
            )
            raise
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._logger.log(
            self._level, "handled %s in %.1f ms", name, elapsed_ms, extra={"message_type": name}
        )
        return result


Validator = Callable[[Any], Iterable[FieldIssue]]
"""Checks a message and yields one :class:`FieldIssue` per problem (none when valid)."""


class ValidationBehavior:
    """Runs the validators registered for a message's type before its handler.

    Validators complement the field validation pydantic already performs when a
    message is built: they check rules that need more than one field, or
    configuration known only at the composition root. Any issue short-circuits
    the pipeline with :class:`~cqrs_ddd_core.exceptions.ValidationError` naming
    every failing field; the handler never runs and no unit of work is opened.
    """

    def __init__(
        self, validators: Mapping[type[Message], Sequence[Validator]] | None = None
    ) -> None:
        self._validators: dict[type[Message], list[Validator]] = {
            message_type: list(checks) for message_type, checks in (validators or {}).items()
        }

    def add(self, message_type: type[Message], validator: Validator) -> None:
        """Run ``validator`` on every message of ``message_type`` (and its subclasses)."""
        self._validators.setdefault(message_type, []).append(validator)

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        """Raise ``ValidationError`` if a validator objects, otherwise continue."""
        issues = [
            issue
            for message_type in type(message).__mro__
            for validator in self._validators.get(message_type, ())
            for issue in validator(message)
        ]
        if issues:
            raise ValidationError(type(message).__qualname__, issues)
        return await next_step()

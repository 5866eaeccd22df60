"""Where in a command's life an error was raised: while handling, committing, or after the commit.

The mediator tags every exception that leaves a command with its
:class:`CommandPhase`, keeping the exception's own type; :func:`phase_of` reads
the tag. What the phase tells a caller deciding whether to send the command
again:

- ``HANDLE``: raised before the commit was attempted; everything was rolled
  back and nothing of the command is stored.
- ``COMMIT``: raised by the unit of work's commit. The outcome is unknown (the
  commit may have reached the database), except for a ``ConcurrencyError``,
  which means nothing was written.
- ``AFTER_COMMIT``: raised after the commit returned (by event dispatch): the
  command's changes are stored, so sending it again would apply them twice.

An exception that never passed through a mediator reads as ``HANDLE``.
"""

from __future__ import annotations

from enum import StrEnum

from cqrs_ddd_core.cqrs.messages import Command


class CommandPhase(StrEnum):
    """The phase of a command in which an error was raised (compares equal to its name)."""

    HANDLE = "handle"
    COMMIT = "commit"
    AFTER_COMMIT = "after_commit"


_PHASE_ATTRIBUTE = "_cqrs_ddd_command_phase"

_NOTES = {
    CommandPhase.COMMIT: "raised while committing {command}: its outcome is unknown",
    CommandPhase.AFTER_COMMIT: "raised after {command} committed: do not send it again",
}


def phase_of(error: BaseException) -> CommandPhase:
    """Return the phase ``error`` was raised in (``HANDLE`` when the mediator did not tag it)."""
    phase = getattr(error, _PHASE_ATTRIBUTE, None)
    return phase if isinstance(phase, CommandPhase) else CommandPhase.HANDLE


def mark_phase(error: BaseException, phase: CommandPhase, command: Command | None = None) -> None:
    """Tag ``error`` as raised in ``phase`` (of ``command``, named in a note for tracebacks).

    The mediator calls this for every exception leaving a command; a later tag
    replaces an earlier one, so an error of a command sent from inside another
    command's handler carries the outer command's phase when it leaves that one.
    """
    setattr(error, _PHASE_ATTRIBUTE, phase)
    template = _NOTES.get(phase)
    if template is not None:
        name = (
            f"{type(command).__qualname__} {command.command_id}"
            if command is not None
            else "the command"
        )
        error.add_note(template.format(command=name))

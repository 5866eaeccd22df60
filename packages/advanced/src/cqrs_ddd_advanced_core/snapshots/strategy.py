"""When to take a snapshot: the strategy protocol and ``EveryNEventsStrategy``."""

from __future__ import annotations

from typing import Protocol

from cqrs_ddd_core.exceptions import FieldIssue, ValidationError


class SnapshotStrategy(Protocol):
    """Decides, when a command saves an aggregate, whether to snapshot it."""

    def should_snapshot(self, *, previous_version: int, new_version: int) -> bool:
        """Return whether saving the aggregate from ``previous_version`` to ``new_version`` warrants a snapshot."""  # noqa: E501
        ...


class EveryNEventsStrategy:
    """Snapshot whenever a save crosses a multiple of ``frequency`` events.

    With ``frequency=100``, saving from version 98 to 103 takes a snapshot (at
    103), and so does saving from 99 to 100; saving from 100 to 150 does not.
    """

    def __init__(self, frequency: int) -> None:
        if not isinstance(frequency, int) or isinstance(frequency, bool) or frequency < 1:
            raise ValidationError(
                "EveryNEventsStrategy", [FieldIssue("frequency", "must be a positive integer")]
            )
        self.frequency = frequency

    def should_snapshot(self, *, previous_version: int, new_version: int) -> bool:
        """Return whether a multiple of ``frequency`` lies in ``(previous, new]``."""
        return previous_version // self.frequency < new_version // self.frequency

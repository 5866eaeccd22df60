"""Convenience decorators for aggregates."""

from __future__ import annotations

from cqrs_ddd_advanced_core.decorators.event_sourcing import (
    is_marked_non_event_sourced,
    non_event_sourced,
)

__all__ = ["is_marked_non_event_sourced", "non_event_sourced"]

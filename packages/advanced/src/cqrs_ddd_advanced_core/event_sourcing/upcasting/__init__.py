"""Upcasting under its ``event_sourcing`` path (home: ``cqrs_ddd_advanced_core.upcasting``)."""

from __future__ import annotations

from cqrs_ddd_advanced_core.upcasting import EventDecoder, EventUpcaster, UpcasterRegistry

__all__ = ["EventDecoder", "EventUpcaster", "UpcasterRegistry"]

"""Upcasting: read events stored under an older schema as their current version."""

from __future__ import annotations

from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_advanced_core.upcasting.registry import UpcasterRegistry
from cqrs_ddd_advanced_core.upcasting.upcaster import EventUpcaster

__all__ = ["EventDecoder", "EventUpcaster", "UpcasterRegistry"]

"""Serialisation of domain events to portable JSON and back, through a type registry."""

from __future__ import annotations

from cqrs_ddd_core.serialization.append import (
    MAX_STREAM_ID_LENGTH,
    prepare_append,
    stream_id_issue,
)
from cqrs_ddd_core.serialization.codec import ENVELOPE_KEYS, UnreadableJSON, encode_event
from cqrs_ddd_core.serialization.json_safety import json_safety_issues
from cqrs_ddd_core.serialization.registry import EventTypeRegistry

__all__ = [
    "ENVELOPE_KEYS",
    "MAX_STREAM_ID_LENGTH",
    "EventTypeRegistry",
    "UnreadableJSON",
    "encode_event",
    "json_safety_issues",
    "prepare_append",
    "stream_id_issue",
]

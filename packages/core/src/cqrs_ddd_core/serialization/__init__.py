"""Serialisation of domain events to portable JSON and back, through a type registry."""

from __future__ import annotations

from cqrs_ddd_core.serialization.append import prepare_append
from cqrs_ddd_core.serialization.codec import (
    ENVELOPE_KEYS,
    UnreadableJSON,
    encode_event,
    encode_state,
)
from cqrs_ddd_core.serialization.json_safety import json_safety_issues, portable_dump
from cqrs_ddd_core.serialization.registry import EventTypeRegistry
from cqrs_ddd_core.serialization.stream_ids import MAX_STREAM_ID_LENGTH, stream_id_issue

__all__ = [
    "ENVELOPE_KEYS",
    "MAX_STREAM_ID_LENGTH",
    "EventTypeRegistry",
    "UnreadableJSON",
    "encode_event",
    "encode_state",
    "json_safety_issues",
    "portable_dump",
    "prepare_append",
    "stream_id_issue",
]

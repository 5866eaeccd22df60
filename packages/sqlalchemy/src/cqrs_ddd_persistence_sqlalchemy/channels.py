"""The PostgreSQL notification channel appends announce themselves on."""

from __future__ import annotations

NOTIFY_CHANNEL = "cqrs_events"
"""Appends ``NOTIFY`` this channel when they commit; workers' wake-up feeds ``LISTEN`` on it."""

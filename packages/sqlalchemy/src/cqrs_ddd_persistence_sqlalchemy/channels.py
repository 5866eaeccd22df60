"""The PostgreSQL notification channels: appends and schedules announce themselves there."""

from __future__ import annotations

NOTIFY_CHANNEL = "cqrs_events"
"""Appends ``NOTIFY`` this channel when they commit; workers' wake-up feeds ``LISTEN`` on it."""

SCHEDULE_CHANNEL = "cqrs_schedules"
"""Scheduling a command (or changing a recurring schedule) ``NOTIFY``s this channel at commit;
scheduler workers ``LISTEN`` on it to wake before their next poll."""

"""The tables of the package, as SQLAlchemy Core metadata.

The migrations in ``cqrs_ddd_persistence_sqlalchemy.migrations`` create and
upgrade exactly this schema; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)

from cqrs_ddd_persistence_sqlalchemy.types import JSONDocument, UTCDateTime

metadata = MetaData()
"""Every table of the package."""

# SQLite only gives an auto-incrementing key to a column declared INTEGER PRIMARY KEY.
Position = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "cqrs_events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("stream_id", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", Uuid(), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("aggregate_type", String(255), nullable=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("correlation_id", String(255), nullable=True),
    Column("causation_id", String(255), nullable=True),
    Column("payload", JSONDocument, nullable=False),
    Column("metadata", JSONDocument, nullable=False),
    UniqueConstraint("stream_id", "version", name="uq_cqrs_events_stream_version"),
    UniqueConstraint("stream_id", "event_id", name="uq_cqrs_events_stream_event_id"),
)
"""Every event of every stream; ``position`` is the global order."""

aggregates = Table(
    "cqrs_aggregates",
    metadata,
    Column("aggregate_type", String(255), primary_key=True),
    Column("aggregate_id", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("state", JSONDocument, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
"""The current state of state-stored aggregates, one JSON document each."""

snapshots = Table(
    "cqrs_snapshots",
    metadata,
    Column("stream_id", String(255), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("aggregate_type", String(255), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("state", JSONDocument, nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
)
"""The newest snapshots of event-sourced aggregates, by stream and version."""

outbox = Table(
    "cqrs_outbox",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("message_id", Uuid(), nullable=False, unique=True),
    Column("topic", String(255), nullable=False),
    Column("partition_key", String(255), nullable=True),
    Column("partition_hash", Integer, nullable=False),
    Column("payload", JSONDocument, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("published_at", UTCDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(2000), nullable=True),
    Column("failed_at", UTCDateTime(), nullable=True),
    Index(
        "ix_cqrs_outbox_pending",
        "id",
        postgresql_where=text("published_at IS NULL AND failed_at IS NULL"),
        sqlite_where=text("published_at IS NULL AND failed_at IS NULL"),
    ),
    Index(
        "ix_cqrs_outbox_failed",
        "partition_key",
        "id",
        postgresql_where=text("failed_at IS NOT NULL AND published_at IS NULL"),
        sqlite_where=text("failed_at IS NOT NULL AND published_at IS NULL"),
    ),
)
"""Messages to publish, written in the transaction that produced them. A message the relay
failed on too often is set aside (``failed_at``, with ``last_error`` and ``attempts``)."""

projections = Table(
    "cqrs_projections",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("owner", String(255), nullable=True),
    Column("epoch", BigInteger, nullable=False),
    Column("lease_expires_at", Float, nullable=True),
    Column("halted", Boolean, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("kind", String(64), nullable=True),
)
"""One row per worker job (projection, relay, saga feed...): its kind, checkpoint, lease (owner,
epoch, expiry in Unix seconds) and halt."""

projection_dead_letters = Table(
    "cqrs_projection_dead_letters",
    metadata,
    Column("projection", String(255), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("stream_id", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("event_id", Uuid(), nullable=False),
    Column("error_class", String(255), nullable=False),
    Column("error_message", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
)
"""Events a projection could not apply, with the error and the attempts made."""

_CLAIMABLE = text("status IN ('pending', 'running')")

scheduled_commands = Table(
    "cqrs_scheduled_commands",
    metadata,
    Column("schedule_id", Uuid(), primary_key=True),
    Column("command_type", String(255), nullable=False),
    Column("payload", JSONDocument, nullable=False),
    Column("status", String(16), nullable=False),
    Column("due_at", Float, nullable=False),
    Column("available_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("lease_token", BigInteger, nullable=False),
    Column("owner", String(255), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("error_class", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("recurrence", String(255), nullable=True),
    Index(
        "ix_cqrs_scheduled_commands_claimable",
        "available_at",
        postgresql_where=_CLAIMABLE,
        sqlite_where=_CLAIMABLE,
    ),
    Index("ix_cqrs_scheduled_commands_status", "status", "finished_at"),
)
"""Commands to run later: due time, status, attempts, lease (owner, fencing token). Times are
Unix seconds of the database's clock; ``available_at`` is when a worker may claim the row next
(its due or retry time while pending, its lease expiry while running)."""

recurring_schedules = Table(
    "cqrs_recurring_schedules",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("command_type", String(255), nullable=False),
    Column("payload", JSONDocument, nullable=False),
    Column("cron", String(255), nullable=True),
    Column("every", Float, nullable=True),
    Column("timezone", String(64), nullable=False),
    Column("missed", String(16), nullable=False),
    Column("grace", Float, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("next_fire_at", Float, nullable=True),
)
"""Recurring schedules: a cron expression (in a time zone) or an interval, and the next
occurrence not yet turned into a scheduled command (NULL: anchor at the database's clock)."""

sagas = Table(
    "cqrs_sagas",
    metadata,
    Column("saga_id", Uuid(), primary_key=True),
    Column("saga_type", String(255), nullable=False),
    Column("correlation_key", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("state", JSONDocument, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("in_flight", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("saga_type", "correlation_key", name="uq_cqrs_sagas_type_key"),
    Index("ix_cqrs_sagas_status", "status", "updated_at"),
    Index("ix_cqrs_sagas_in_flight", "in_flight", "updated_at"),
)
"""Saga instances: one per (saga type, correlation key), the whole state as JSON, its version,
when it last changed (Unix seconds of the database's clock) and whether it waits on its own
commands (``SagaState.in_flight``: what recovery looks for)."""

inbox = Table(
    "cqrs_inbox",
    metadata,
    Column("consumer", String(255), primary_key=True),
    Column("message_id", Uuid(), primary_key=True),
    Column("received_at", Float, nullable=False),
    Index("ix_cqrs_inbox_received", "received_at"),
)
"""The messages each consumer handled, claimed in the handler's transaction (Unix seconds of
the database's clock)."""

undo_log = Table(
    "cqrs_undo_log",
    metadata,
    Column("seq", Position, primary_key=True, autoincrement=True),
    Column("token", Uuid(), nullable=False, unique=True),
    Column("user_id", String(255), nullable=True),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("entry", JSONDocument, nullable=False),
    Index("ix_cqrs_undo_log_user", "user_id", "seq"),
)
"""Commands executed with undo: one entry each, in the order they were logged (``seq``)."""

undo_aggregates = Table(
    "cqrs_undo_aggregates",
    metadata,
    Column("token", Uuid(), primary_key=True),
    Column("aggregate_id", String(255), primary_key=True),
    Index("ix_cqrs_undo_aggregates_aggregate", "aggregate_id", "token"),
)
"""The aggregates each undo log entry touched, for the per-aggregate undo stacks."""

saga_barrier = Table(
    "cqrs_saga_barrier",
    metadata,
    Column("saga_id", Uuid(), primary_key=True),
    Column("branch", String(255), primary_key=True),
    Column("operation", String(16), primary_key=True),
    Column("origin", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)
"""The TCC branch barrier: one row per (saga, branch, operation) that took place, and which
operation inserted it (a cancel inserts its try's row when the try never ran)."""

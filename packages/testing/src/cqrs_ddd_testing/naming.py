"""Unique names for the databases, key prefixes and broker names of one test."""

from __future__ import annotations

import secrets

__all__ = ["NAME_PREFIX", "unique_name"]

NAME_PREFIX = "cqrs_ddd_t_"
"""What every generated name starts with, so leftovers are easy to find and remove."""


def unique_name() -> str:
    """Return a fresh name such as `cqrs_ddd_t_1f3a9c0b5e7d`.

    The name uses only lowercase letters, digits and underscores, so it is valid
    unquoted as a PostgreSQL identifier, a Redis key prefix, an AMQP name, a NATS
    subject token and a JetStream stream name. All names have the same length, so
    one name is never the prefix of another.
    """
    return f"{NAME_PREFIX}{secrets.token_hex(6)}"

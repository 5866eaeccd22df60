"""Commands and queries: the messages the mediator routes to their handlers."""

from __future__ import annotations

from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field


class Command(BaseModel):
    """An intention to change the system, named in the imperative (``CreateOrder``).

    Commands are immutable and carry data only. ``command_id`` identifies this
    one instance (it becomes the causation id of the events it produces);
    ``correlation_id`` ties it to the conversation it belongs to and defaults to
    the command id when absent.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: UUID = Field(default_factory=uuid4)
    correlation_id: str | None = None


class Query(BaseModel):
    """A question about the system's state (``GetOrder``); answering it changes nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

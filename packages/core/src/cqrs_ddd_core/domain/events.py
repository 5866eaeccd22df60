"""Domain events: immutable facts recorded by aggregates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DomainEvent(BaseModel):
    """Base class of every domain event: an immutable, past-tense fact.

    Subclasses add their own fields. The envelope fields below are filled in by
    the framework: ``aggregate_id``, ``aggregate_type`` and ``version`` when an
    aggregate records the event, ``correlation_id`` and ``causation_id`` when the
    mediator collects it for a command.

    Two class-level attributes identify the event's schema: ``event_type`` (the
    stable name it is stored under, the class name unless the class sets it) and
    ``schema_version`` (1 unless the class sets it; raise it when the payload's
    shape changes and register an upcaster for the old version).
    """

    # NaN and infinities stay visible in JSON mode, so serialisation can refuse them
    # instead of silently turning them into null.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    event_type: ClassVar[str] = "DomainEvent"
    schema_version: ClassVar[int] = 1

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: AwareDatetime = Field(default_factory=_utc_now)
    aggregate_id: str | None = None
    aggregate_type: str | None = None
    version: int | None = Field(default=None, ge=1)
    correlation_id: str | None = None
    causation_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__

    @field_validator("occurred_at")
    @classmethod
    def _normalise_to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def envelope_fields(cls) -> frozenset[str]:
        """Return the names of the fields every event carries (its envelope)."""
        return _ENVELOPE_FIELDS

    def payload(self) -> dict[str, Any]:
        """Return the event's own fields (everything but the envelope) as Python values."""
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name not in _ENVELOPE_FIELDS
        }


_ENVELOPE_FIELDS = frozenset(DomainEvent.model_fields)

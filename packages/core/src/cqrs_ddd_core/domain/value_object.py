"""Value objects: immutable descriptions compared by value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ValueObject(BaseModel):
    """An immutable domain value: equal to another of its class with equal fields.

    Subclasses declare fields and validators; instances cannot be changed after
    construction (use ``model_copy(update=...)`` to derive a new value).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

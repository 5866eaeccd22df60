"""Entities: objects with an identity that outlives changes to their attributes."""

from __future__ import annotations

from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field


def new_id() -> str:
    """Return a fresh random identifier (a UUID4 in its canonical text form)."""
    return str(uuid4())


class Entity(BaseModel):
    """A mutable domain object identified by ``id``.

    Two entities are equal when they are of the same class and have the same id,
    whatever their other attributes; this is the DDD meaning of identity. Compare
    ``model_dump()`` results to compare state.
    """

    model_config = ConfigDict(validate_assignment=True)

    id: str = Field(default_factory=new_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return type(self) is type(other) and self.id == other.id

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self.id))

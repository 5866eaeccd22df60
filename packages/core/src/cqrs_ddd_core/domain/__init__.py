"""The domain building blocks: pure, synchronous, free of I/O."""

from __future__ import annotations

from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.domain.entity import Entity, new_id
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.domain.specification import (
    AndSpecification,
    FieldSpecification,
    NotSpecification,
    Operator,
    OrSpecification,
    PredicateSpecification,
    Specification,
    resolve_field,
)
from cqrs_ddd_core.domain.value_object import ValueObject

__all__ = [
    "AggregateRoot",
    "AndSpecification",
    "DomainEvent",
    "Entity",
    "FieldSpecification",
    "NotSpecification",
    "Operator",
    "OrSpecification",
    "PredicateSpecification",
    "Specification",
    "ValueObject",
    "new_id",
    "resolve_field",
]

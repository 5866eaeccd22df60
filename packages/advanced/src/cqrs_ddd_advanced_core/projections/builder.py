"""``SpecificationBuilder``: a fluent way to write field specifications for read-model queries."""

from __future__ import annotations

from typing import Any

from cqrs_ddd_core.domain.specification import (
    AndSpecification,
    FieldSpecification,
    NotSpecification,
    Operator,
    OrSpecification,
    Specification,
)


class SpecificationBuilder(Specification[Any]):
    """Builds a specification one condition at a time; is itself a specification.

    Each call returns a new builder and leaves the receiver unchanged, so a
    partial query can be shared and extended. Chained :meth:`where` calls combine
    with AND. :meth:`and_` and :meth:`or_` group the builder with other builders
    or specifications. An empty builder holds no condition: on its own it is met
    by every candidate, and in a group it contributes nothing
    (``SpecificationBuilder().or_(a, b)`` is ``a OR b``). :meth:`build` returns
    the plain tree of core specifications that adapters translate. Unknown
    operators raise :class:`~cqrs_ddd_core.exceptions.ValidationError` at once.
    """

    def __init__(self, *parts: Specification[Any]) -> None:
        self._parts = tuple(parts)
        self._tree: Specification[Any] | None = None

    def where(
        self, field: str, operator: str | Operator, value: Any = None
    ) -> SpecificationBuilder:
        """Return a builder that also requires ``field <operator> value``."""
        return SpecificationBuilder(*self._parts, FieldSpecification(field, operator, value))

    def and_(self, other: Specification[Any], *others: Specification[Any]) -> SpecificationBuilder:
        """Return a builder met when this one and every one of the others are."""
        return SpecificationBuilder(*self._parts, other, *others)

    def or_(self, other: Specification[Any], *others: Specification[Any]) -> SpecificationBuilder:
        """Return a builder met when this one or any of the others is.

        An empty builder is left out of the group, so the result is met when
        any of the others is.
        """
        alternatives = (other, *others) if not self._parts else (self, other, *others)
        return SpecificationBuilder(OrSpecification(*alternatives))

    def not_(self) -> SpecificationBuilder:
        """Return a builder met exactly when this one is not."""
        return SpecificationBuilder(NotSpecification(self))

    def build(self) -> Specification[Any]:
        """Return the conditions as a tree of field, and, or and not specifications.

        Nested builders are built too, so the tree holds only core specification
        types (plus whatever other specifications were passed in). An empty
        builder builds an empty conjunction, which every candidate meets.
        """
        if self._tree is None:
            parts = [_resolved(part) for part in self._parts]
            self._tree = parts[0] if len(parts) == 1 else AndSpecification(*parts)
        return self._tree

    def is_satisfied_by(self, candidate: Any) -> bool:
        """Return whether ``candidate`` meets every condition of the builder."""
        return self.build().is_satisfied_by(candidate)

    def __repr__(self) -> str:
        return f"SpecificationBuilder({self.build()!r})"


def _resolved(specification: Specification[Any]) -> Specification[Any]:
    if isinstance(specification, SpecificationBuilder):
        return specification.build()
    if isinstance(specification, AndSpecification):
        return AndSpecification(*(_resolved(part) for part in specification.parts))
    if isinstance(specification, OrSpecification):
        return OrSpecification(*(_resolved(part) for part in specification.parts))
    if isinstance(specification, NotSpecification):
        return NotSpecification(_resolved(specification.inner))
    return specification

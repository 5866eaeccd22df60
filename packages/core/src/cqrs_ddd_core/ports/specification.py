"""The specification port: what a query by specification needs of its argument."""

from __future__ import annotations

from typing import Protocol, TypeVar

T_contra = TypeVar("T_contra", contravariant=True)


class Satisfiable(Protocol[T_contra]):
    """Anything that says whether a candidate meets it.

    :class:`cqrs_ddd_core.domain.Specification` is the composable implementation;
    adapters that translate specifications to a query language accept its
    field-comparison tree and reject other kinds with a typed error.
    """

    def is_satisfied_by(self, candidate: T_contra) -> bool:
        """Return whether ``candidate`` meets this specification."""
        ...

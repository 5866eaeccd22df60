"""Projections: read models queried with specifications, in memory or in a database."""

from __future__ import annotations

from cqrs_ddd_advanced_core.projections.builder import SpecificationBuilder
from cqrs_ddd_advanced_core.projections.query import Ordering, QueryOptions

__all__ = ["Ordering", "QueryOptions", "SpecificationBuilder"]

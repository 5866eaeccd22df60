"""Adapters of the advanced package's ports that need nothing outside the standard library.

They live in subpackages: :mod:`cqrs_ddd_advanced_core.adapters.memory`.
"""

from __future__ import annotations

__all__: list[str] = []

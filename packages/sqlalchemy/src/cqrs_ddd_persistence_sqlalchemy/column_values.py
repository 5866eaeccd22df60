"""Checking a value against its column's type before SQL, the same on every backend.

SQLite stores whatever it is given: a 300-character string in ``String(64)``,
an integer past 32 bits in ``Integer``, any number of decimals in ``Numeric``.
PostgreSQL refuses the first two and rounds the third. Checking first makes
both backends refuse the same values, with an error that names the column,
instead of a read model that works on one database and loses data on the other.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, Numeric, SmallInteger, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from cqrs_ddd_core.serialization.json_safety import json_safety_issues, text_issue

ValueCheck = Callable[[Any], str | None]
"""Returns why a value does not fit its column, or None when it does."""


def value_check(column_type: TypeEngine[Any]) -> ValueCheck | None:
    """Return the check for values of ``column_type``, or None when anything it takes fits."""
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, Boolean):
        return None
    if isinstance(column_type, Integer):
        return _integer_check(column_type)
    if isinstance(column_type, String):
        return _text_check(column_type.length)
    if isinstance(column_type, Numeric) and not isinstance(column_type, Float):
        return _decimal_check(column_type.precision, column_type.scale)
    if isinstance(column_type, JSON):
        return _json_check
    return None


def _integer_check(column_type: Integer) -> ValueCheck:
    bits = (
        64
        if isinstance(column_type, BigInteger)
        else 16
        if isinstance(column_type, SmallInteger)
        else 32
    )
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(value: Any) -> str | None:
        if type(value) is int and low <= value <= high:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            return f"is {value}, outside the column's {bits}-bit range"
        return None

    return check


def _text_check(length: int | None) -> ValueCheck:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        if length is not None and len(value) > length:
            return f"is {len(value)} characters long, more than the column's {length}"
        return text_issue(value)

    return check


def _decimal_check(precision: int | None, scale: int | None) -> ValueCheck:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            return None
        number = Decimal(value)
        if not number.is_finite():
            return f"is {number}, which the column cannot hold"
        exponent = int(number.as_tuple().exponent)
        decimals = max(-exponent, 0)
        if scale is not None and decimals > scale:
            return f"has {decimals} decimal places, more than the column's {scale}"
        if precision is not None:
            whole_digits = max(len(number.as_tuple().digits) + exponent, 0)
            if whole_digits > precision - (scale or 0):
                return (
                    f"has {whole_digits} digits before the point, more than the column's "
                    f"{precision - (scale or 0)}"
                )
        return None

    return check


def _json_check(value: Any) -> str | None:
    return next((f"{where}: {reason}" for where, reason in json_safety_issues(value)), None)

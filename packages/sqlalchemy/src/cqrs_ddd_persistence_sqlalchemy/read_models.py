"""``SQLAlchemyReadModelStore``: specification queries on a read-model table.

Specification trees (field, and, or, not; builders included) become SQLAlchemy
expressions with bound parameters, written so that SQL answers exactly as the
in-memory evaluation does: every condition is true or false, never NULL (a
comparison with a missing value is false, ``!=`` a value is true for NULL), so
``NOT`` flips it as Python's ``not`` does. ``contains`` and ``startswith`` are
case-sensitive substring tests on text columns on both backends; ``contains``
on a JSON list column is not supported. On PostgreSQL, text comparisons and
orderings use the ``"C"`` collation (code-point order, as Python compares
strings) rather than the database's locale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    bindparam,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy import delete as sa_delete
from sqlalchemy import update as sa_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_advanced_core.projections import QueryOptions, SpecificationBuilder
from cqrs_ddd_core.domain.specification import (
    AndSpecification,
    FieldSpecification,
    NotSpecification,
    Operator,
    OrSpecification,
    Specification,
)
from cqrs_ddd_core.exceptions import FieldIssue, ValidationError
from cqrs_ddd_persistence_sqlalchemy.column_values import ValueCheck, value_check
from cqrs_ddd_persistence_sqlalchemy.connections import EngineSource, Reads, engine_of
from cqrs_ddd_persistence_sqlalchemy.exceptions import UnsupportedSpecificationError
from cqrs_ddd_persistence_sqlalchemy.pending_writes import pending_writes

Condition = ColumnElement[bool]
_Checks = tuple[tuple[str, ValueCheck], ...]


class SQLAlchemyReadModelStore:
    """Writes and queries one read-model table.

    Projectors write through the batch's connection (``context.connection``),
    so their changes commit with the projection's checkpoint:
    :meth:`upsert`, :meth:`update`, :meth:`delete`, :meth:`get` and
    :meth:`clear` take it as their first argument. Rows are keyed by the
    table's primary key (a value for a one-column key, a mapping otherwise).
    Queries take :class:`QueryOptions`.

    The table belongs to the application (its projection writes it). Fields of
    specifications and orderings must be columns of the table, and values must
    suit the column's type. Written values are checked against their columns
    before any SQL, so that SQLite (which stores anything) refuses what
    PostgreSQL refuses: text longer than a ``String(n)`` or holding NUL or a
    lone surrogate, integers outside an ``Integer``/``BigInteger``/
    ``SmallInteger``'s range, numbers with more digits than a ``Numeric``'s
    precision or scale (PostgreSQL would round them), JSON that is not
    portable; each raises :class:`~cqrs_ddd_core.exceptions.ValidationError`
    naming the table and column. Unknown fields, ``contains``/``startswith`` on a
    non-text column raise :class:`~cqrs_ddd_core.exceptions.ValidationError`, and
    specifications that cannot be translated (a ``PredicateSpecification``)
    raise :class:`UnsupportedSpecificationError`, both before any SQL runs.
    Reads join the running command's connection when there is one.
    """

    def __init__(self, table: Table, source: EngineSource) -> None:
        self.table = table
        self.engine: AsyncEngine = engine_of(source)
        self._reads = Reads(self.engine)
        self._is_postgresql = self.engine.dialect.name == "postgresql"
        self._key = list(table.primary_key.columns)
        if not self._key:
            raise ValidationError(
                "read model", [FieldIssue(table.name, "needs a primary key to be written")]
            )
        self._dialect = postgresql if self._is_postgresql else sqlite
        self._key_names = frozenset(column.name for column in self._key)
        self._upserts: dict[frozenset[str], tuple[Any, _Checks]] = {}
        self._checks = {
            column.name: check
            for column in table.columns
            if (check := value_check(column.type)) is not None
        }

    async def get(self, connection: AsyncConnection, key: Any) -> dict[str, Any] | None:
        """Return the row with ``key`` as a dictionary, or None."""
        row = (
            (await connection.execute(select(self.table).where(self._matches(key))))
            .mappings()
            .first()
        )
        return None if row is None else dict(row)

    async def upsert(self, connection: AsyncConnection, row: Mapping[str, Any]) -> None:
        """Insert ``row``, or overwrite the columns it gives of the row with its key.

        Inside a projection batch the row is queued and sent with the batch's
        other upserts (see ``pending_writes``); anything else run on the
        connection, and the batch's end, sends the queue first.
        """
        values = dict(row)
        statement, checks = self._upsert_for(values)
        self._check_values(values, checks)
        pending = pending_writes(connection)
        if pending is None:
            await connection.execute(statement, [values])
        else:
            pending.add(statement, values)

    def _upsert_for(self, values: dict[str, Any]) -> tuple[Any, _Checks]:
        """Return the upsert statement and the value checks for a row with these columns."""
        columns = frozenset(values)
        prepared = self._upserts.get(columns)
        if prepared is None:
            if not self._key_names <= columns:
                names = ", ".join(sorted(self._key_names - columns))
                raise ValidationError(
                    "read model row", [FieldIssue(self.table.name, f"misses its key ({names})")]
                )
            self._check_columns(values)
            insert = self._dialect.insert(self.table)
            given = sorted(columns - self._key_names)
            statement = (
                insert.on_conflict_do_update(
                    index_elements=self._key,
                    set_={name: insert.excluded[name] for name in given},
                )
                if given
                else insert.on_conflict_do_nothing()
            )
            prepared = self._upserts[columns] = (statement, self._checks_of(values))
        return prepared

    async def update(
        self, connection: AsyncConnection, key: Any, changes: Mapping[str, Any]
    ) -> bool:
        """Change columns of the row with ``key``; False when there is none."""
        values = dict(changes)
        self._check_columns(values)
        self._check_values(values, self._checks_of(values))
        result = await connection.execute(
            sa_update(self.table).where(self._matches(key)).values(values)
        )
        return bool(result.rowcount)

    def _check_columns(self, values: Mapping[str, Any]) -> None:
        unknown = set(values) - set(self.table.columns.keys())
        if unknown:
            raise ValidationError(
                "read model row",
                [
                    FieldIssue(name, f"is not a column of {self.table.name!r}")
                    for name in sorted(unknown)
                ],
            )

    def _checks_of(self, values: Mapping[str, Any]) -> _Checks:
        return tuple(
            (name, check) for name in values if (check := self._checks.get(name)) is not None
        )

    def _check_values(self, values: Mapping[str, Any], checks: _Checks) -> None:
        issues: list[FieldIssue] = []
        for name, check in checks:
            value = values[name]
            if value is not None and (reason := check(value)) is not None:
                issues.append(FieldIssue(name, reason))
        if issues:
            raise ValidationError(f"read model row of {self.table.name!r}", issues)

    async def delete(self, connection: AsyncConnection, key: Any) -> bool:
        """Delete the row with ``key``; False when there was none."""
        result = await connection.execute(sa_delete(self.table).where(self._matches(key)))
        return bool(result.rowcount)

    async def clear(self, connection: AsyncConnection) -> None:
        """Delete every row (a projection's reset, inside its transaction)."""
        await connection.execute(sa_delete(self.table))

    def _matches(self, key: Any) -> Condition:
        if len(self._key) == 1 and not isinstance(key, Mapping):
            return cast("Condition", self._key[0] == key)
        if not isinstance(key, Mapping) or set(key) != {column.name for column in self._key}:
            names = ", ".join(column.name for column in self._key)
            raise ValidationError(
                "read model key", [FieldIssue(self.table.name, f"the key is ({names})")]
            )
        return and_(*(column == key[column.name] for column in self._key))

    async def query(self, options: QueryOptions) -> list[dict[str, Any]]:
        """Return the rows ``options`` select, ordered and paged, as dictionaries."""
        statement: Select[Any] = select(self.table)
        if options.specification is not None:
            statement = statement.where(self._condition(options.specification))
        for ordering in options.orderings:
            column = self._comparable(self._column(ordering.field))
            if ordering.descending:
                statement = statement.order_by(column.desc().nulls_last())
            else:
                statement = statement.order_by(column.asc().nulls_first())
        if options.limit is not None:
            statement = statement.limit(options.limit)
        if options.offset:
            statement = statement.offset(options.offset)

        async def read(connection: AsyncConnection) -> list[dict[str, Any]]:
            result = await connection.execute(statement)
            return [dict(row) for row in result.mappings()]

        operation = f"query the read model {self.table.name!r}"
        return await self._reads.run(operation, read)

    async def count(self, specification: Specification[Any] | None = None) -> int:
        """Return how many rows meet ``specification`` (all rows without one)."""
        statement = select(func.count()).select_from(self.table)
        if specification is not None:
            statement = statement.where(self._condition(specification))

        async def read(connection: AsyncConnection) -> int:
            return int((await connection.execute(statement)).scalar_one())

        operation = f"count the read model {self.table.name!r}"
        return await self._reads.run(operation, read)

    def _condition(self, specification: Specification[Any]) -> Condition:
        if isinstance(specification, SpecificationBuilder):
            return self._condition(specification.build())
        if isinstance(specification, AndSpecification):
            parts = [self._condition(part) for part in specification.parts]
            return and_(*parts) if parts else true()
        if isinstance(specification, OrSpecification):
            parts = [self._condition(part) for part in specification.parts]
            return or_(*parts) if parts else false()
        if isinstance(specification, NotSpecification):
            return not_(self._condition(specification.inner))
        if isinstance(specification, FieldSpecification):
            return self._field_condition(specification)
        raise UnsupportedSpecificationError(type(specification).__name__, self.table.name)

    def _field_condition(self, specification: FieldSpecification) -> Condition:
        column = self._column(specification.field)
        operator, value = specification.operator, specification.value
        if operator in (Operator.CONTAINS, Operator.STARTSWITH):
            if not isinstance(column.type, String):
                raise ValidationError(
                    "specification",
                    [FieldIssue(column.name, f"{operator.value!r} needs a text column")],
                )
            if not isinstance(value, str):
                return false()
            return self._text_condition(column, operator, value)
        return _CONDITIONS[operator](self._comparable(column), value)

    def _text_condition(self, column: Column[Any], operator: Operator, value: str) -> Condition:
        if operator is Operator.STARTSWITH:
            found: Condition = func.substr(column, 1, len(value)) == value
        elif self._is_postgresql:
            found = func.strpos(column, value) > 0
        else:
            found = func.instr(column, value) > 0
        return and_(column.is_not(None), found)

    def _column(self, field: str) -> Column[Any]:
        column = self.table.columns.get(field)
        if column is None:
            raise ValidationError(
                "specification",
                [FieldIssue(field, f"is not a column of the read model {self.table.name!r}")],
            )
        return column

    def _comparable(self, column: Column[Any]) -> ColumnElement[Any]:
        if self._is_postgresql and isinstance(column.type, String):
            return column.collate("C")
        return column


def _equal(column: ColumnElement[Any], value: Any) -> Condition:
    if value is None:
        return column.is_(None)
    return and_(column.is_not(None), column == _bound(column, value))


def _ordered(
    compare: Callable[[ColumnElement[Any], Any], Condition],
) -> Callable[[ColumnElement[Any], Any], Condition]:
    def condition(column: ColumnElement[Any], value: Any) -> Condition:
        if value is None:
            return false()
        return and_(column.is_not(None), compare(column, _bound(column, value)))

    return condition


def _bound(column: ColumnElement[Any], value: Any) -> ColumnElement[Any]:
    # an explicit parameter: SQLAlchemy refuses `column > False` as a comparison with a constant
    return bindparam(None, value, type_=column.type)


def _member(column: ColumnElement[Any], values: Any) -> Condition:
    present = [value for value in values if value is not None]
    alternatives: list[Condition] = []
    if present:
        alternatives.append(and_(column.is_not(None), column.in_(present)))
    if len(present) < len(values):
        alternatives.append(column.is_(None))
    return or_(*alternatives) if alternatives else false()


def _is_null(column: ColumnElement[Any], value: Any) -> Condition:
    return column.is_(None) if value else column.is_not(None)


_CONDITIONS: Mapping[Operator, Callable[[ColumnElement[Any], Any], Condition]] = {
    Operator.EQ: _equal,
    Operator.NE: lambda column, value: not_(_equal(column, value)),
    Operator.GT: _ordered(lambda column, value: column > value),
    Operator.GE: _ordered(lambda column, value: column >= value),
    Operator.LT: _ordered(lambda column, value: column < value),
    Operator.LE: _ordered(lambda column, value: column <= value),
    Operator.IN: _member,
    Operator.NOT_IN: lambda column, values: not_(_member(column, values)),
    Operator.IS_NULL: _is_null,
}

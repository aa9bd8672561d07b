"""The INSERT of notification rows, written once per process from the model (issue 15).

`bulk_create` rebuilds and recompiles the same INSERT for every call: on a wallet transfer (two balance alerts)
that was most of what was left of its CPU (~0.8 ms of ~2 ms, profile in docs/architecture.md). Here the
statement is derived from `Notification._meta.concrete_fields` once per database connection alias, so no column
list is kept by hand and a new field is picked up by the next process: fields the caller gives are bound per
row, every other field takes its model default (a callable default, such as `created_at`'s clock, is called per
row as `bulk_create` would; a constant one is prepared once). Values go through each field's
`get_db_prep_save`, so an encrypted field is still encrypted and JSON is still adapted for the database.

What callers get back is what `bulk_create` gave them on PostgreSQL and SQLite: saved model instances (not
`adding`, bound to the database) with their ids, from `RETURNING`, in the order given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import models

from backend.core.compiled import prepared_cursor

# Statements of at most this many rows are prepared on their connection when the RowInsert asks for it (a
# transfer's two alerts); a big fan-out is one statement of its own size, not worth a slot in the cache.
PREPARED_MAX_ROWS = 4


_SHORT_TYPES = {"timestamp with time zone": "timestamptz"}


class _Compiled(NamedTuple):
    head: str  # INSERT INTO t (columns) VALUES
    row: str  # (%s, …) for one row
    tail: str  # RETURNING pk
    plan: list[tuple[models.Field, int | None, bool, Any, Any]]  # field, given index, call default?, constant, db
    batch: int  # rows per statement (the database's parameter limit)
    pk_at: int  # where the primary key goes among the concrete fields (the model's positional arguments)
    constants: frozenset[int]  # plan positions of constant defaults (the same prepared value in every row)


class RowInsert:
    """`RowInsert(Model, given=("a_id", "b"))`: `.create(connection, [(a, b), …])` inserts one row per tuple
    (values in `given` order, the rest defaulted) in as few statements as the database allows.

    `prepared=True`: on PostgreSQL a statement of up to PREPARED_MAX_ROWS rows is bound server-side and
    prepared once per connection (`core.compiled.prepared_cursor`), for inserts on a hot path."""

    def __init__(self, model: type[models.Model], *, given: Sequence[str], prepared: bool = False) -> None:
        self.model = model
        self.given = tuple(given)
        self.prepared = prepared
        self._compiled: dict[str, _Compiled] = {}  # connection alias → statement
        self._embedded_sql: dict[tuple, str] = {}  # (alias, rows, prefix, gate) → embeddable INSERT

    def _compile(self, connection) -> _Compiled:
        opts = self.model._meta
        fields = [f for f in opts.concrete_fields if not f.primary_key]
        names = {f.attname for f in fields}
        unknown = [name for name in self.given if name not in names]
        if unknown:
            raise ValueError(f"{opts.label} has no concrete fields {unknown}")
        plan = []
        for field in fields:
            # bulk_create would ask pre_save (auto_now) and may use a custom placeholder: refuse both rather
            # than write something bulk_create would not have written.
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False) or hasattr(
                    field, "get_placeholder"):
                raise ValueError(f"{opts.label}.{field.name}: not supported by RowInsert")
            if field.attname in self.given:
                plan.append((field, self.given.index(field.attname), False, None, None))
            elif field.has_default() and callable(field.default):
                plan.append((field, None, True, None, None))
            else:
                constant = field.get_default()
                plan.append((field, None, False, constant, field.get_db_prep_save(constant, connection)))
        q = connection.ops.quote_name
        head = f"INSERT INTO {q(opts.db_table)} ({', '.join(q(f.column) for f in fields)}) VALUES "
        row = f"({', '.join(['%s'] * len(fields))})"
        tail = f" RETURNING {q(opts.pk.column)}"
        batch = max(1, connection.ops.bulk_batch_size(fields, [None] * 10_000))
        pk_at = [f.primary_key for f in opts.concrete_fields].index(True)
        constants = frozenset(n for n, (_, index, call, _, _) in enumerate(plan) if index is None and not call)
        return _Compiled(head, row, tail, plan, min(batch, 1000), pk_at, constants)

    def supported(self, connection) -> bool:
        """Databases that return the ids of a multi-row INSERT (PostgreSQL; SQLite ≥ 3.35)."""
        return connection.features.can_return_rows_from_bulk_insert

    def _compiled_for(self, connection) -> _Compiled:
        compiled = self._compiled.get(connection.alias)
        if compiled is None:
            compiled = self._compiled[connection.alias] = self._compile(connection)
        return compiled

    @staticmethod
    def _bind(connection, compiled: _Compiled, chunk: Sequence[Sequence[Any]]) -> tuple[list[list[Any]], list[Any]]:
        """Each row's model values and the statement's parameters (prepared for the database), row by row."""
        values: list[list[Any]] = []
        params: list[Any] = []
        for given in chunk:
            row_values: list[Any] = []
            for field, index, call, constant, prepared in compiled.plan:
                if index is not None:
                    value = given[index]
                    prepared = field.get_db_prep_save(value, connection)
                elif call:
                    value = field.get_default()
                    prepared = field.get_db_prep_save(value, connection)
                else:
                    value = constant
                row_values.append(value)
                params.append(prepared)
            values.append(row_values)
        return values, params

    def _instances(self, connection, compiled: _Compiled, values: list[list[Any]], ids: Sequence[int],
                   ) -> list[models.Model]:
        if len(ids) != len(values):
            raise AssertionError(f"{len(ids)} ids returned for {len(values)} rows")
        instances = []
        for pk, row_values in zip(ids, values, strict=True):
            row_values.insert(compiled.pk_at, pk)
            instance = self.model(*row_values)
            instance._state.adding, instance._state.db = False, connection.alias
            instances.append(instance)
        return instances

    def create(self, connection, rows: Sequence[Sequence[Any]]) -> list[models.Model]:
        """Insert the rows; returns saved instances with their ids, in order."""
        compiled = self._compiled_for(connection)
        instances: list[models.Model] = []
        for start in range(0, len(rows), compiled.batch):
            chunk = rows[start:start + compiled.batch]
            values, params = self._bind(connection, compiled, chunk)
            sql = compiled.head + ", ".join([compiled.row] * len(chunk)) + compiled.tail
            small = self.prepared and len(chunk) <= PREPARED_MAX_ROWS
            with prepared_cursor(connection) if small else connection.cursor() as cursor:
                cursor.execute(sql, params)
                ids = [row[0] for row in cursor.fetchall()]
            instances += self._instances(connection, compiled, values, ids)
        return instances

    def embedded(self, connection, rows: Sequence[Sequence[Any]], *, prefix: str, gate: str) -> Embedded:
        """PostgreSQL: the same rows as an INSERT to run inside a statement of the caller's (a data-modifying
        CTE), so they cost no round trip of their own. Named parameters `%(<prefix><n>)s`, each cast to its
        column's type; rows are inserted only `WHERE <gate>` (SQL of the caller's, e.g. "EXISTS (SELECT 1 FROM
        entry)"), in the order given, returning their ids. `finish(ids)` turns the ids the statement returned,
        in that order, into saved instances as `create` returns them."""
        compiled = self._compiled_for(connection)
        values, flat = self._bind(connection, compiled, rows)
        key = (connection.alias, len(rows), prefix, gate)
        sql = self._embedded_sql.get(key)
        if sql is None:
            sql = self._embedded_sql[key] = self._embedded(connection, compiled, len(rows), prefix, gate)
        width = len(compiled.plan)
        params = {f"{prefix}{c}": flat[c] for c in compiled.constants}  # a constant default: once for all rows
        params.update((f"{prefix}{n}", flat[n]) for n in range(len(flat)) if n % width not in compiled.constants)
        return Embedded(sql, params, lambda ids: self._instances(connection, compiled, values, ids))

    def _embedded(self, connection, compiled: _Compiled, count: int, prefix: str, gate: str) -> str:
        # Short: psycopg converts a statement's placeholders once (and caches it) only while it is at most 4 KiB
        # with at most 50 parameters; otherwise on every execution.
        q = connection.ops.quote_name
        fields = [field for field, *_ in compiled.plan]
        types = [_SHORT_TYPES.get(t, t) for t in (re.sub(r"^(varchar|character varying)\(\d+\)$", "text",
                                                         field.db_type(connection)) for field in fields)]
        rows = []
        for r in range(count):
            cells = [f"%({prefix}{c if c in compiled.constants else r * len(fields) + c})s::{types[c]}"
                     for c in range(len(fields))]
            rows.append(f"({', '.join(cells)}, {r})")
        columns = ", ".join(q(field.column) for field in fields)
        return (f"{compiled.head.removesuffix(' VALUES ')} SELECT {columns} FROM (VALUES {', '.join(rows)}) "
                f"AS r ({columns}, row_number) WHERE {gate} ORDER BY row_number{compiled.tail}")


class Embedded(NamedTuple):
    sql: str
    params: dict[str, Any]
    finish: Any  # Callable[[Sequence[int]], list[models.Model]]

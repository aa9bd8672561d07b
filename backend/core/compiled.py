"""A queryset compiled to SQL once per process and re-run with new values, for the few queries on a hot path
(a chat send reads its conversation's members every time).

Building and compiling a Django queryset costs more CPU than PostgreSQL spends answering a small indexed
query (~0.5 ms against ~0.05 ms; profiles in docs/architecture.md, "The send path's cost"). The queryset is
still written once, with the ORM, where its rules live (e.g. notifications' "muted right now"); this only
remembers the SQL it compiled to and where each value went.

    members = CompiledQuery(lambda conversation_id, at: Membership.objects.filter(...), conversation_id=0, at=T)
    sql, params = members.sql(connection, conversation_id=5, at=clock.now())
    rows = members.rows(connection, ...)        # a values_list queryset's rows
    seats = members.objects(connection, ...)    # a model queryset's instances (with select_related, annotations)

The keyword arguments of the constructor are sentinels: values the builder receives once, to find their
positions in the compiled parameters. Each must reach the SQL as a parameter of its own (an int or a
datetime that nothing else in the query equals, inside the column's range: Django turns a lookup that no
row can match, such as a negative value on a positive-integer column, into no SQL at all); a sentinel that is missing or ambiguous is refused at the
first compile, so a queryset that changes shape fails loudly in the tests instead of binding wrong values.
Compiled per database connection alias (PostgreSQL and SQLite compile differently).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, NamedTuple

from django.db.models import QuerySet
from django.db.models.query import get_related_populators


class Slot(NamedTuple):
    """One parameter of the compiled SQL: a sentinel's value (adapted as the compiler adapted the sentinel)
    or a constant of the queryset."""

    name: str | None
    adapt: Callable[[Any], Any] | None
    constant: Any


def _adapter(connection, sentinel: Any) -> Callable[[Any], Any] | None:
    """How the compiler turns such a value into a parameter when it does not pass it through as it is
    (SQLite gets datetimes as text)."""
    if isinstance(sentinel, dt.datetime):
        return connection.ops.adapt_datetimefield_value
    return None


class CompiledQuery:
    def __init__(self, build: Callable[..., QuerySet], *, prepared: bool = False, **sentinels: Any) -> None:
        """`prepared=True`: `rows()` runs it on a `prepared_cursor` (PostgreSQL: prepared once per connection);
        only for a queryset whose parameters all sit where PostgreSQL can infer their type (compared with a
        column), not in a SELECT list."""
        self.build = build
        self.prepared = prepared
        self.sentinels = sentinels
        self._compiled: dict[str, tuple[str, list[Slot], Any]] = {}  # connection alias → (sql, slots, compiler)
        self._builders: dict[str, tuple] = {}  # connection alias → how `objects()` builds instances from a row
        self._converters: dict[str, list] = {}  # connection alias → [(column, (converters, expression))]

    def _compile(self, connection) -> tuple[str, list[Slot], Any]:
        queryset = self.build(**self.sentinels)
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        slots: list[Slot] = []
        found: dict[str, int] = dict.fromkeys(self.sentinels, 0)
        for value in params:
            matches = []
            for name, sentinel in self.sentinels.items():
                adapt = _adapter(connection, sentinel)
                if isinstance(value, type(sentinel)) and value == sentinel:  # psycopg may wrap (Int4)
                    matches.append(Slot(name, None, None))
                elif adapt is not None and value == adapt(sentinel):
                    matches.append(Slot(name, adapt, None))
            if len(matches) > 1:
                raise ValueError(f"CompiledQuery: sentinels {[m.name for m in matches]} are equal; give each "
                                 "a distinct value")
            if matches:
                found[matches[0].name] += 1
            slots.append(matches[0] if matches else Slot(None, None, value))
        missing = [name for name, count in found.items() if count == 0]
        if missing:
            raise ValueError(f"CompiledQuery: {missing} did not reach the SQL as parameters")
        return sql, slots, compiler

    def _compiled_for(self, connection) -> tuple[str, list[Slot], Any]:
        compiled = self._compiled.get(connection.alias)
        if compiled is None:
            compiled = self._compiled[connection.alias] = self._compile(connection)
        return compiled

    def sql(self, connection, **values: Any) -> tuple[str, list]:
        """The SQL and its parameters for these values (the sentinels' names)."""
        sql, slots, _ = self._compiled_for(connection)
        return sql, [slot.constant if slot.name is None else slot.adapt(values[slot.name]) if slot.adapt
                     else values[slot.name] for slot in slots]

    def rows(self, connection, **values: Any) -> list[tuple]:
        """The rows, converted as the queryset would convert them (`from_db_value`, booleans on SQLite).
        Only for querysets of `values_list` rows."""
        sql, params = self.sql(connection, **values)
        with prepared_cursor(connection) if self.prepared else connection.cursor() as cursor:
            cursor.execute(sql, params)
            return self.convert(connection, cursor.fetchall())

    def convert(self, connection, rows: list[tuple]) -> list[tuple]:
        """Rows fetched with `sql()` (e.g. as one statement of several sent together), converted."""
        _, _, compiler = self._compiled_for(connection)
        if compiler.has_extra_select:  # columns the SQL needed (e.g. a DISTINCT's ordering), not the caller
            rows = [row[:compiler.col_count] for row in rows]
        converters = self._converters_for(connection, compiler)
        if not converters:  # PostgreSQL hands back ints, text, booleans and datetimes as they are
            return rows
        return [tuple(row) for row in _apply(connection, rows, converters)]

    def _converters_for(self, connection, compiler) -> list:
        """The selected columns' converters (`from_db_value`, the backend's), looked up once per alias: the
        look-up cost as much as a small query's rows."""
        converters = self._converters.get(connection.alias)
        if converters is None:
            found = compiler.get_converters([expression for expression, _, _ in compiler.select[:compiler.col_count]])
            converters = self._converters[connection.alias] = list(found.items())
        return converters

    def objects(self, connection, **values: Any) -> list:
        """The model instances the queryset would return for these values, with their `select_related`
        objects and annotations (as Django's ModelIterable builds them; no prefetch_related, no deferred
        fields). Only for querysets of model instances."""
        sql, params = self.sql(connection, **values)
        _, _, compiler = self._compiled_for(connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        builder = self._builders.get(connection.alias)
        if builder is None:
            klass_info, select = compiler.klass_info, compiler.select
            first, last = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
            builder = self._builders[connection.alias] = (
                klass_info["model"], first, last, [f[0].target.attname for f in select[first:last]],
                get_related_populators(klass_info, select, connection.alias), compiler.annotation_col_map)
        model, first, last, names, populators, annotations = builder
        out = []
        converters = self._converters_for(connection, compiler)
        for row in _apply(connection, fetched, converters) if converters else fetched:
            obj = model.from_db(connection.alias, names, row[first:last])
            for populator in populators:
                populator.populate(row, obj)
            for name, position in (annotations or {}).items():
                setattr(obj, name, row[position])
            out.append(obj)
        return out


def _apply(connection, rows, converters: list):
    """Django's SQLCompiler.apply_converters, with the calling thread's connection."""
    for row in map(list, rows):
        for position, (functions, expression) in converters:
            value = row[position]
            for function in functions:
                value = function(value, expression, connection)
            row[position] = value
        yield row


# --- statements prepared once per connection (PostgreSQL) ----------------------------------------------------
#
# Django's psycopg cursors bind parameters on the client: every execution quotes each value into the SQL text
# in Python, and PostgreSQL parses and plans the whole statement again. For the few statements every payment
# runs (the account lock, the entry statement, the balance alerts' INSERT) that cost more than the statements'
# work (profile in docs/architecture.md, "CPU per transfer"). `prepared_cursor` binds on the server instead
# and prepares each statement on its connection the first time it runs there: later executions send only the
# values (dumped by psycopg's C code). Only for SQL written for it: a value whose type PostgreSQL cannot infer
# from the statement (a bare parameter in a SELECT list) must be cast in the SQL.
#
# Django opens its connections with psycopg's `prepare_threshold` None (for transaction-mode poolers), and
# then psycopg ignores even an explicit `prepare=True`: until 2026-11 these statements were bound on the server
# but parsed and planned anew every time (planning alone was ~0.5 ms of PostgreSQL CPU per transfer).
# `prepared_cursor` sets a threshold only while it executes (so high that only its statements are prepared);
# Django's own cursors bind on the client and are never prepared, nor counted. A transaction-mode pooler in
# front of PostgreSQL must therefore support protocol-level prepared statements (PgBouncer >= 1.21 with
# max_prepared_statements).
# psycopg forgets its prepared statements after a ROLLBACK (they are prepared again on next use).


def _prepared_cursor_class():
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        def execute(self, query, params=None, *, prepare=None, binary=None):  # noqa: ANN001, ANN201
            # Preparing is switched on for this statement only: with a threshold set, psycopg would also keep
            # count of every query Django's cursors run on the connection (their text is new every time).
            previous, self.connection.prepare_threshold = self.connection.prepare_threshold, _ONLY_WHEN_ASKED
            try:
                result = super().execute(query, params, prepare=True, binary=binary)
            finally:
                self.connection.prepare_threshold = previous
            if self._query is None:  # psycopg keeps no query text for a prepared execution; Django's query
                self._query = _StatementText(query)  # capture and debug log read it (`last_executed_query`)
            return result

    return PreparedCursor


class _StatementText:
    """What Django's `last_executed_query` reads of psycopg's last query: its text (with %s placeholders)."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    @property
    def query(self) -> bytes:
        return self._text.encode()


_PREPARED_CURSOR: list = []
_ONLY_WHEN_ASKED = 2**31 - 1


def prepared_cursor(connection):  # noqa: ANN001, ANN201 - a Django cursor wrapper
    """A cursor (Django's wrapper: query capture, execute wrappers and error translation as usual) whose
    statements are bound server-side and prepared once per connection on PostgreSQL; elsewhere the ordinary
    cursor. Use it as `connection.cursor()`."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    if not _PREPARED_CURSOR:
        _PREPARED_CURSOR.append(_prepared_cursor_class())
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = _PREPARED_CURSOR[0](connection.connection)
        connection.validate_thread_sharing()
        return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)

"""Prepared statements for the hot path on PostgreSQL."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection


@cache
def _preparing_cursor_class() -> type:
    import psycopg

    class PreparingCursor(psycopg.Cursor):
        """Server-side binding, and a named prepared statement from the first execution."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

        def _send_query_prepared(self, name, pgq, *, binary=None):
            self._query = pgq  # what Django's query log shows (last_executed_query)
            return super()._send_query_prepared(name, pgq, binary=binary)

    return PreparingCursor


@contextmanager
def _prepared_cursor() -> Iterator[Any]:
    connection.ensure_connection()
    with connection._prepare_cursor(_preparing_cursor_class()(connection.connection)) as cursor:
        yield cursor


def fetchone_prepared(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> tuple | None:
    """Run `sql` as a named prepared statement of this connection and return its first row.

    Django's cursors bind parameters on the client, so PostgreSQL plans every execution;
    and psycopg prepares nothing while the connection's prepare_threshold is None
    (Django's default; config.settings sets it). For the report's joined read and the
    one-statement postings, planning cost more than running (pgbench, the report's two
    statements, 8 clients: 818 tps planned each time, 2,937 prepared). psycopg keeps the
    statement per connection (persistent with CONN_MAX_AGE). Django's cursor wrapper
    keeps its error mapping and query logging.
    """
    with _prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def execute_prepared(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> int:
    """Like fetchone_prepared, for a statement that returns no rows; returns its row count."""
    with _prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def fetchall_prepared(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[tuple]:
    """Like fetchone_prepared, every row."""
    with _prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def pg_array(values: Iterable[int | str | datetime | None]) -> str:
    """`values` as one PostgreSQL array literal, for a parameter the SQL casts (`%s::bigint[]`).

    psycopg dumps a Python list element by element in Python: for the batch path's id,
    key and timestamp arrays (about a thousand elements per batch of 100) that was the
    largest single cost of a batch's Python time (py-spy, 9 %). The server parses the text.
    """
    return "{" + ",".join(_array_element(value) for value in values) + "}"


def _array_element(value: int | str | datetime | None) -> str:
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    text = value.isoformat() if isinstance(value, datetime) else value
    if not isinstance(text, str):
        raise TypeError(f"pg_array takes ints, strings, datetimes and None, not {type(value).__name__}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

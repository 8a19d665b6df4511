"""The dialect fast paths of `storage.bulk_insert` for PostgreSQL and SQLite, one chunk per call.

- PostgreSQL: ``COPY ... FROM STDIN`` in text format through psycopg's ``write_row`` (C-accelerated;
  formatting the text in Python column by column measured slower).
- SQLite: one ``executemany`` of a positional ``INSERT`` on the driver connection, each column's values
  converted by the bind processor SQLAlchemy would apply (once per distinct value when they repeat),
  instead of a dict per row through the Core ``executemany``: about a third of the time per 50,000
  device snapshot rows, the same stored values.

Both run on the driver connection inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection


def copy_chunk(conn: Connection, table: Table, cols: list[str], values: list[tuple]) -> None:
    """``COPY`` one chunk in text format; psycopg writes ``None`` as NULL and escapes text values."""
    from psycopg import sql

    name = (table.schema, table.name) if table.schema else (table.name,)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(*name), sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    )
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for value in values:
            copy.write_row(value)


def sqlite_chunk(conn: Connection, table: Table, cols: list[str], values: list[tuple]) -> None:
    """One positional ``executemany`` of the chunk, each column bound as SQLAlchemy binds it."""
    dialect = conn.dialect
    processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
    if any(processors):
        columns = [
            column if process is None else _bound(process, column)
            for process, column in zip(processors, zip(*values, strict=True), strict=True)
        ]
        values = list(zip(*columns, strict=True))
    quoted = ", ".join(dialect.identifier_preparer.quote(c) for c in cols)
    name = dialect.identifier_preparer.format_table(table)
    statement = f"INSERT INTO {name} ({quoted}) VALUES ({', '.join('?' * len(cols))})"
    conn.connection.driver_connection.executemany(statement, values)


def _bound(process: Callable[[Any], Any], column: tuple) -> list[Any]:
    """``process`` applied to every value; once per distinct value when they repeat.

    The run's time stamps and the flags repeat; SQLite's datetime binding formats a string per call.
    """
    try:
        distinct = dict.fromkeys(column)
    except TypeError:  # unhashable values
        return [process(v) for v in column]
    if 2 * len(distinct) > len(column):
        return [process(v) for v in column]
    bound = {v: process(v) for v in distinct}
    return [bound[v] for v in column]

"""Database engines and chunked bulk inserts (PostgreSQL ``COPY``, ``executemany`` elsewhere)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, event
from sqlalchemy.engine import Connection, Engine

LOG = logging.getLogger(__name__)

DEFAULT_CHUNK = 10_000


def sqlite_url(path: str | Path) -> str:
    """SQLAlchemy URL of an embedded SQLite database file."""
    return f"sqlite:///{Path(path).resolve()}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Build an engine; SQLite gets foreign keys on and a busy timeout so tasks can share the file."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 60})
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split an iterable into lists of at most ``size`` items."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> int:
    """Insert ``rows`` (dicts) into ``table`` inside the caller's transaction; return the row count.

    PostgreSQL streams each chunk through ``COPY ... FROM STDIN`` (psycopg 3); other dialects use one
    ``executemany`` per chunk. On failure the table and the first row keys of the failing chunk are
    logged before the error is re-raised.
    """
    total = 0
    for chunk in chunks(rows, chunk_size):
        cols = list(columns or chunk[0].keys())
        try:
            if conn.dialect.name == "postgresql":
                _copy_chunk(conn, table, cols, chunk)
            else:
                conn.execute(table.insert(), [{c: row.get(c) for c in cols} for row in chunk])
        except Exception:
            LOG.error("Bulk insert into %s failed; first rows of the chunk: %s", table.name, chunk[:3])
            raise
        total += len(chunk)
        LOG.debug("Loaded %d rows into %s so far", total, table.name)
    return total


def _copy_chunk(conn: Connection, table: Table, cols: list[str], chunk: list[Mapping[str, Any]]) -> None:
    quoted = ", ".join(f'"{c}"' for c in cols)
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
            for row in chunk:
                copy.write_row([row.get(c) for c in cols])

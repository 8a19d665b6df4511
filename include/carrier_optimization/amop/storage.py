"""Database engines, chunked bulk inserts (SQL Server BCP, PostgreSQL ``COPY``, ``executemany``), frames.

Also the dialect switch of the upserts (:func:`native_upsert`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import DateTime, Table, UniqueConstraint, create_engine, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

from include.carrier_optimization.amop import fast_rows

LOG = logging.getLogger(__name__)

DEFAULT_CHUNK = 10_000
#: Rows of a failing chunk whose keys are logged.
LOGGED_ROWS = 3
#: Dialects with a native single-statement upsert (``INSERT ... ON CONFLICT DO UPDATE``).
NATIVE_UPSERT: dict[str, Callable[..., Any]] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


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


def frame_of(rows: Iterable[Sequence[Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame of result rows, built column by column.

    ``pd.DataFrame(rows)`` on SQLAlchemy ``Row`` objects probes each row for named-tuple attributes
    (an exception per row inside SQLAlchemy): about 1 s per 100,000 rows of a report; this is ~20x less.
    """
    data = list(zip(*rows, strict=True))
    if not data:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    if len(data) != len(columns):
        raise ValueError(f"`columns`: {len(columns)} names for rows of {len(data)} values")
    return pd.DataFrame({name: list(values) for name, values in zip(columns, data, strict=True)})


def chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split an iterable into lists of at most ``size`` items."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def native_upsert(conn: Connection) -> Callable[..., Any] | None:
    """The ``insert`` of ``conn``'s dialect that offers ``on_conflict_do_update``, or ``None`` (others)."""
    return NATIVE_UPSERT.get(conn.dialect.name)


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Iterable[Mapping[str, Any]] | Iterable[Sequence[Any]],
    *,
    columns: Sequence[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> int:
    """Insert ``rows`` (dicts) into ``table`` inside the caller's transaction, chunk by chunk.

    Columns left out that have a scalar Python-side ``default`` in the schema get it, on every dialect.
    Each chunk of ``chunk_size`` rows goes to the database in one call of the dialect's fast path:

    - SQL Server (``mssql``): pymssql ``bulk_copy`` into the session temp table ``#stage_<table>``
      (created empty with exactly the columns written, in order), then one set-based
      ``INSERT INTO <table> (...) SELECT ... FROM #stage_<table>``, then ``TRUNCATE``; the staging
      table is dropped at the end;
    - PostgreSQL: ``COPY <table> (...) FROM STDIN`` through psycopg 3;
    - any other dialect (SQLite): one ``executemany`` of the table's ``INSERT``.

    Nothing is committed here: the rows become visible when the caller's transaction commits, and a
    failing chunk rolls back with it (earlier chunks included). A missing key of a row is written as
    ``NULL``; keys outside ``columns`` are ignored.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
        A connection inside the caller's transaction (``engine.begin()``).
    table : sqlalchemy.Table
        Target table of the schema; only its name and column names reach the SQL text.
    rows : iterable of mapping, or of tuples with ``columns``
        Rows as ``{column: value}``, or as tuples of values in the order of ``columns`` (cheaper to
        build column by column); consumed lazily, one chunk at a time.
    columns : sequence of str, optional
        Columns to write, in order; default the keys of the first row.
    chunk_size : int, optional
        Rows per database call (default 10 000).

    Returns
    -------
    int
        Number of rows inserted (0 for no rows).

    Raises
    ------
    ValueError
        If ``columns`` (or the first row's keys) name columns ``table`` does not have, or
        ``chunk_size`` < 1.
    sqlalchemy.exc.DBAPIError
        A failing chunk (e.g. ``IntegrityError``), raised after the table, the chunk's row range and
        the key values of its first rows are logged; driver errors of ``COPY`` are wrapped as
        SQLAlchemy wraps those of ``executemany``, with the driver's error as ``orig``.
    Exception
        Anything else a failing chunk raises, e.g. pymssql's ``MSSQLDatabaseException`` from
        ``bulk_copy``, re-raised unchanged after the same log line.

    Examples
    --------
    >>> with engine.begin() as conn:  # doctest: +SKIP
    ...     bulk_insert(conn, schema.queue_rate_plan, rows, chunk_size=5_000)
    200000
    """
    if chunk_size < 1:
        raise ValueError(f"`chunk_size`: must be >= 1; got {chunk_size}")
    total = 0
    cols: list[str] = []
    given: list[str] = []
    defaults: tuple = ()
    naive: list[int] = []
    stage: str | None = None
    if columns is not None:
        given = list(columns)
        cols, defaults = _bulk_insert_iv(table, given)
    for number, chunk in enumerate(chunks(rows, chunk_size), start=1):
        if number == 1:
            if not cols:
                if not isinstance(chunk[0], Mapping):
                    raise ValueError("`columns`: required when the rows are tuples")
                given = list(chunk[0].keys())
                cols, defaults = _bulk_insert_iv(table, given)
            naive = [i for i, c in enumerate(cols) if _is_naive_timestamp(table, c)]
        try:
            stage = _write_chunk(conn, table, cols, _chunk_values(given, defaults, naive, chunk), stage)
        except Exception as error:
            keys = _key_columns(table, cols)
            LOG.error(
                "Bulk insert into %s failed in chunk %d (rows %d to %d); keys of its first rows: %s",
                table.name,
                number,
                total,
                total + len(chunk) - 1,
                [{k: _as_mapping(given, row).get(k) for k in keys} for row in chunk[:LOGGED_ROWS]],
            )
            dbapi = getattr(conn.dialect, "loaded_dbapi", None)
            if dbapi is not None and isinstance(error, dbapi.Error):
                # COPY and BCP run on the driver connection: raise what SQLAlchemy would have raised.
                raise DBAPIError.instance(
                    f"bulk insert into {table.name}", None, error, dbapi.Error
                ) from error
            raise
        total += len(chunk)
        LOG.debug("Loaded %d rows into %s so far", total, table.name)
    if stage is not None:
        _mssql_execute(conn.connection.driver_connection, f"DROP TABLE {_mssql_quote(stage)}")
    LOG.debug("Bulk insert into %s done: %d rows (%s)", table.name, total, conn.dialect.name)
    return total


def _write_chunk(
    conn: Connection, table: Table, cols: list[str], values: list[tuple], stage: str | None
) -> str | None:
    """Write one chunk by the dialect's fast path; return the SQL Server staging table (made on first use)."""
    dialect = conn.dialect.name
    if dialect in ("mssql", "postgresql"):  # no bound parameters: apply the column types' binding
        values = _bind_decorated(table, cols, values, conn.dialect)
    if dialect == "mssql":
        raw = conn.connection.driver_connection
        if stage is None:
            stage = _bcp_stage(raw, table, cols)
        _bcp_chunk(raw, table, stage, cols, values)
    elif dialect == "postgresql":
        fast_rows.copy_chunk(conn, table, cols, values)
    elif dialect == "sqlite":
        fast_rows.sqlite_chunk(conn, table, cols, values)
    else:
        conn.execute(table.insert(), [dict(zip(cols, v, strict=True)) for v in values])
    return stage


def _bulk_insert_iv(table: Table, columns: Sequence[str]) -> tuple[list[str], tuple]:
    """Check the column names (they go into SQL text as identifiers); add the Python-side defaults.

    Returns the columns to write, the given ones first, then those of ``table`` left out that have a
    scalar ``default``, and the values of those defaults: ``executemany`` would apply them, ``COPY``
    and BCP would not.
    """
    cols = list(columns)
    unknown = [c for c in cols if c not in table.c]
    if unknown:
        raise ValueError(
            f"`columns`: must be columns of {table.name}; {', '.join(map(repr, unknown[:10]))} "
            f"({len(unknown)} of {len(cols)}) are not"
        )
    if len(set(cols)) != len(cols):
        raise ValueError(f"`columns`: must be distinct; got {cols}")
    defaults = {
        c.name: c.default.arg
        for c in table.columns
        if c.name not in cols and c.default is not None and c.default.is_scalar
    }
    return cols + list(defaults), tuple(defaults.values())


def _as_mapping(given: list[str], row: Mapping[str, Any] | Sequence[Any]) -> Mapping[str, Any]:
    return row if isinstance(row, Mapping) else dict(zip(given, row, strict=False))


def _is_naive_timestamp(table: Table, column: str) -> bool:
    kind = table.c[column].type
    return isinstance(kind, DateTime) and not kind.timezone


def _chunk_values(
    given: list[str], defaults: tuple, naive: list[int], chunk: list[Mapping[str, Any]]
) -> list[tuple]:
    """Row tuples: the ``given`` columns, then the ``defaults``; aware datetimes of naive columns → UTC.

    Without this the dialects disagree: ``COPY`` text drops the offset, bound parameters convert to
    the session time zone, SQLite and BCP keep the wall time.
    """
    if chunk and not isinstance(chunk[0], Mapping):  # tuples in the order of `given`
        values = [tuple(row) + defaults for row in chunk]
        return _utc_naive(values, naive)
    try:  # the common case, every key present: itemgetter is about twice as fast as row.get
        get = itemgetter(*given)
        values = (
            [get(row) + defaults for row in chunk]
            if len(given) > 1
            else [(get(row), *defaults) for row in chunk]
        )
    except KeyError:
        values = [tuple(map(row.get, given)) + defaults for row in chunk]
    return _utc_naive(values, naive)


def _utc_naive(values: list[tuple], naive: list[int]) -> list[tuple]:
    """Aware datetimes of the ``naive`` column positions converted to naive UTC, in place."""
    for i in naive:
        for n, value in enumerate(values):
            stamp = value[i]
            if isinstance(stamp, dt.datetime) and stamp.tzinfo is not None:
                values[n] = (*value[:i], stamp.astimezone(dt.UTC).replace(tzinfo=None), *value[i + 1 :])
    return values


def _bind_decorated(table: Table, cols: list[str], values: list[tuple], dialect: Any) -> list[tuple]:
    """Values of ``TypeDecorator`` columns (status ids) as a bound parameter would carry them."""
    decorated = [
        (i, table.c[c].type) for i, c in enumerate(cols) if isinstance(table.c[c].type, TypeDecorator)
    ]
    if not decorated:
        return values
    rows = [list(value) for value in values]
    for i, kind in decorated:
        for row in rows:
            row[i] = kind.process_bind_param(row[i], dialect)
    return [tuple(row) for row in rows]


def _key_columns(table: Table, cols: list[str]) -> list[str]:
    """Columns identifying a row for the failure log: primary key, else a unique key, else all given."""
    candidates = [[c.name for c in table.primary_key.columns]]
    candidates += [
        [c.name for c in con.columns] for con in table.constraints if isinstance(con, UniqueConstraint)
    ]
    for key in candidates:
        if key and all(k in cols for k in key):
            return key
    return cols


# -- SQL Server ---------------------------------------------------------------------------------------


def _mssql_quote(name: str) -> str:
    """Bracket-quote a SQL Server identifier."""
    return "[" + name.replace("]", "]]") + "]"


def _mssql_table(table: Table) -> str:
    name = _mssql_quote(table.name)
    return f"{_mssql_quote(table.schema)}.{name}" if table.schema else name


def _stage_name(table: Table) -> str:
    """``#stage_<table>``, word characters only (pymssql resolves it in tempdb by its leading ``#``)."""
    return "#stage_" + re.sub(r"\W", "_", table.name)


def _mssql_execute(raw: Any, statement: str) -> None:
    """Run one parameter-free statement on the pymssql connection (inside its open transaction)."""
    cursor = raw.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def _bcp_stage(raw: Any, table: Table, cols: list[str]) -> str:
    """(Re)create the empty session staging table with exactly ``cols``, in order; return its name."""
    stage = _stage_name(table)
    quoted = ", ".join(_mssql_quote(c) for c in cols)
    _mssql_execute(raw, f"IF OBJECT_ID('tempdb..{stage}') IS NOT NULL DROP TABLE {_mssql_quote(stage)}")
    _mssql_execute(raw, f"SELECT TOP 0 {quoted} INTO {_mssql_quote(stage)} FROM {_mssql_table(table)}")
    return stage


def _bcp_chunk(raw: Any, table: Table, stage: str, cols: list[str], values: list[tuple]) -> None:
    """Bulk-copy one chunk into the staging table, move it to ``table`` in one insert, empty the stage.

    The staging table was created with exactly ``cols`` in order, so its column ordinals
    (``tempdb.sys.columns.column_id``) are ``1..len(cols)``.
    """
    quoted = ", ".join(_mssql_quote(c) for c in cols)
    raw.bulk_copy(
        stage,
        values,
        column_ids=list(range(1, len(cols) + 1)),
        batch_size=len(values),
        tablock=True,
    )
    _mssql_execute(
        raw, f"INSERT INTO {_mssql_table(table)} ({quoted}) SELECT {quoted} FROM {_mssql_quote(stage)}"
    )
    _mssql_execute(raw, f"TRUNCATE TABLE {_mssql_quote(stage)}")

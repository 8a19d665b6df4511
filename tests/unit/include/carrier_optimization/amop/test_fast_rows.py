from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    select,
)

from include.carrier_optimization.amop import fast_rows
from include.carrier_optimization.amop.schema import BigId
from include.carrier_optimization.amop.storage import bulk_insert, make_engine

metadata = MetaData()
rows_table = Table(
    "FastRowsProbe",
    metadata,
    Column("Id", BigId, primary_key=True, autoincrement=False),
    Column("Flag", Boolean, nullable=True),
    Column("Amount", Numeric(18, 4), nullable=True),
    Column("Usage", Float, nullable=True),
    Column("At", DateTime, nullable=True),
    Column("Label", String(100), nullable=True),
)
bytes_table = Table(
    "FastRowsBytes",
    metadata,
    Column("Id", Integer, primary_key=True, autoincrement=False),
    Column("Doc", LargeBinary, nullable=True),
)
STAMP = dt.datetime(2026, 11, 30, 23, 59, 58, 123456)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    engine = make_engine(url)
    metadata.create_all(engine)
    yield engine
    metadata.drop_all(engine)
    engine.dispose()


def _probe_rows(n: int) -> list[tuple]:
    return [
        (
            i,
            None if i % 3 == 0 else i % 2 == 0,
            None if i % 5 == 0 else round(i * 1.2345, 4),
            i * 0.001 + 1e-9,
            None if i % 4 == 0 else STAMP + dt.timedelta(seconds=i),
            None if i % 7 == 0 else f"a\tb\\c\nd {i}",
        )
        for i in range(n)
    ]


def test_the_fast_paths_store_what_the_core_insert_stores_on_both_dialects(engine):
    cols = [c.name for c in rows_table.columns]
    rows = _probe_rows(50)
    with engine.begin() as conn:
        bulk_insert(conn, rows_table, rows, columns=cols, chunk_size=20)
    with engine.begin() as conn:
        stored = [tuple(r) for r in conn.execute(select(rows_table).order_by(rows_table.c.Id))]
        conn.execute(rows_table.delete())
        conn.execute(rows_table.insert(), [dict(zip(cols, row, strict=True)) for row in rows])
        expected = [tuple(r) for r in conn.execute(select(rows_table).order_by(rows_table.c.Id))]
    assert stored == expected
    assert stored[1][1] is False and stored[2][1] is True and stored[0][1] is None
    assert stored[1][4] == STAMP + dt.timedelta(seconds=1)
    assert stored[1][5] == "a\tb\\c\nd 1"


def test_binary_values_are_written_on_both_dialects(engine):
    with engine.begin() as conn:
        bulk_insert(conn, bytes_table, [(1, b"\x00\t\\N"), (2, None)], columns=["Id", "Doc"])
    with engine.connect() as conn:
        stored = conn.execute(select(bytes_table.c.Doc).order_by(bytes_table.c.Id)).scalars().all()
    assert [None if v is None else bytes(v) for v in stored] == [b"\x00\t\\N", None]


def test_repeated_values_are_bound_once_each_and_keep_their_order():
    calls: list = []

    def process(value):
        calls.append(value)
        return f"<{value}>"

    column = (STAMP, None, STAMP, STAMP, None, STAMP)
    assert fast_rows._bound(process, column) == [f"<{v}>" for v in column]
    assert calls == [STAMP, None]
    calls.clear()
    assert fast_rows._bound(process, (1, 2, 3)) == ["<1>", "<2>", "<3>"] and calls == [1, 2, 3]
    calls.clear()
    assert fast_rows._bound(process, ([1], [1])) == ["<[1]>", "<[1]>"] and len(calls) == 2  # unhashable

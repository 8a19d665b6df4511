"""Tests of the storage module: engines, chunking, transactions, COPY vs executemany, the SQL Server path."""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import math
import re
from decimal import Decimal
from types import SimpleNamespace

import pymssql
import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from include.carrier_optimization.amop import fast_rows, storage
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.storage import bulk_insert, chunks, make_engine, sqlite_url

# -- a probe table covering the value kinds of the AMOP tables ------------------------------------------

probe_metadata = MetaData()
probe = Table(
    "BulkProbe",
    probe_metadata,
    Column("Id", Integer, primary_key=True, autoincrement=False),
    Column("Big", BigInteger, nullable=True),
    Column("Flag", Boolean, nullable=True),
    Column("Amount", Numeric(18, 4), nullable=True),
    Column("Usage", Float, nullable=True),
    Column("At", DateTime, nullable=True),
    Column("Label", String(100), nullable=True),
    Column("Note", Text, nullable=True),
    Column("Required", String(20), nullable=False),
)
PROBE_COLUMNS = [c.name for c in probe.columns]


def probe_rows(n: int, start: int = 0) -> list[dict]:
    """Rows with NULLs, booleans, 4-place decimals, microsecond datetimes and COPY-hostile text."""
    base = dt.datetime(2024, 2, 29, 23, 59, 58, 123456)
    rows = []
    for i in range(start, start + n):
        rows.append(
            {
                "Id": i,
                "Big": None if i % 7 == 0 else 2**40 + i,
                "Flag": None if i % 5 == 0 else i % 2 == 0,
                "Amount": None if i % 6 == 0 else Decimal(i) / Decimal("10000") - Decimal("12.3456"),
                "Usage": None if i % 4 == 0 else i * 0.001 + 1e-9,
                "At": None if i % 3 == 0 else base + dt.timedelta(seconds=i, microseconds=i),
                "Label": None if i % 8 == 0 else f"tab\there\nnewline \\back 'q' \"dq\" é {i}",
                "Note": "" if i % 2 else f"\\N literal {i}",
                "Required": f"r{i}",
            }
        )
    return rows


def _probe_engine(url: str):
    engine = make_engine(url)
    probe_metadata.drop_all(engine)
    probe_metadata.create_all(engine)
    return engine


@pytest.fixture(params=["sqlite", "postgres"])
def probe_engine(request):
    """An engine with an empty probe table, once on SQLite and once on the real PostgreSQL."""
    engine = _probe_engine(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    yield engine
    probe_metadata.drop_all(engine)
    engine.dispose()


def _table_rows(engine, table: Table, order_by: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(table.c[order_by]))]


def _count(engine, table: Table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- make_engine, sqlite_url, chunks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://postgres@127.0.0.1:5432/amop", "postgresql+psycopg"),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/amop", "postgresql+psycopg"),
        ("sqlite:////tmp/amop.db", "sqlite"),
    ],
)
def test_make_engine_url_normalisation(url, driver):
    engine = make_engine(url)
    try:
        assert engine.url.drivername == driver
        assert engine.url.render_as_string(hide_password=False) == driver + ":" + url.split(":", 1)[1]
        assert engine.dialect.driver == ("psycopg" if driver.startswith("postgresql") else "pysqlite")
    finally:
        engine.dispose()


def test_make_engine_sqlite_pragmas_and_timeout(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "a.db"))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000
        s.metadata.create_all(engine, tables=[s.metadata.tables[n] for n in _fk_chain()])
        with pytest.raises(IntegrityError, match="FOREIGN KEY"), engine.begin() as conn:
            bulk_insert(conn, s.queue_rate_plan, [_qrp_row(queue_id=404, plan_id=405)])
        assert _count(engine, s.queue_rate_plan) == 0
    finally:
        engine.dispose()


def _fk_chain() -> list[str]:
    return [
        "OptimizationStatus",
        "OptimizationSession",
        "OptimizationInstance",
        "OptimizationCommGroup",
        "OptimizationCommGroup_RatePlan",
        "OptimizationQueue",
        "OptimizationQueue_RatePlan",
    ]


def _qrp_row(*, queue_id: int, plan_id: int, order: int = 0) -> dict:
    return {
        "QueueId": queue_id,
        "SequenceOrder": order,
        "CommGroup_RatePlanId": plan_id,
        "CreatedBy": s.CREATED_BY,
        "CreatedDate": dt.datetime(2024, 5, 1, 8, 30),
    }


def test_sqlite_url_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sqlite_url("x/amop.sqlite") == f"sqlite:///{tmp_path}/x/amop.sqlite"


def test_chunks_splits_lazily():
    consumed = []

    def source():
        for i in range(7):
            consumed.append(i)
            yield i

    parts = chunks(source(), 3)
    assert next(parts) == [0, 1, 2]
    assert consumed == [0, 1, 2]
    assert list(parts) == [[3, 4, 5], [6]]
    assert list(chunks([], 3)) == []


# -- bulk_insert on SQLite and PostgreSQL --------------------------------------------------------------


@pytest.mark.parametrize(("n", "chunk_size", "calls"), [(0, 4, 0), (1, 4, 1), (8, 4, 2), (9, 4, 3)])
def test_bulk_insert_one_call_per_chunk(probe_engine, monkeypatch, n, chunk_size, calls):
    seen: list[int] = []

    def spy(real):
        def spied(conn, table, cols, values):
            seen.append(len(values))
            real(conn, table, cols, values)

        return spied

    monkeypatch.setattr(fast_rows, "copy_chunk", spy(fast_rows.copy_chunk))
    monkeypatch.setattr(fast_rows, "sqlite_chunk", spy(fast_rows.sqlite_chunk))
    with probe_engine.begin() as conn:
        assert bulk_insert(conn, probe, iter(probe_rows(n)), chunk_size=chunk_size) == n
    assert len(seen) == calls
    assert sum(seen) == n
    assert all(size == chunk_size for size in seen[:-1])
    assert [r[0] for r in _table_rows(probe_engine, probe, "Id")] == list(range(n))


def test_bulk_insert_commits_only_with_the_callers_transaction(probe_engine):
    with probe_engine.begin() as conn:
        bulk_insert(conn, probe, probe_rows(25), chunk_size=10)
        assert _count(probe_engine, probe) == 0  # another connection sees nothing before the commit
    assert _count(probe_engine, probe) == 25


def test_bulk_insert_failed_chunk_rolls_back_with_the_caller(probe_engine, caplog):
    rows = probe_rows(30)
    rows[24]["Id"] = 3  # duplicate key in the third chunk of ten
    with caplog.at_level(logging.ERROR, logger=storage.__name__):
        with pytest.raises(IntegrityError) as raised, probe_engine.begin() as conn:
            conn.execute(insert(probe), {"Id": 1000, "Required": "before"})
            bulk_insert(conn, probe, rows, chunk_size=10)
    assert _count(probe_engine, probe) == 0  # chunks 1 and 2 and the caller's own row are gone
    assert raised.value.orig is not None
    (record,) = [r for r in caplog.records if r.name == storage.__name__]
    assert record.getMessage() == (
        "Bulk insert into BulkProbe failed in chunk 3 (rows 20 to 29); "
        "keys of its first rows: [{'Id': 20}, {'Id': 21}, {'Id': 22}]"
    )


def test_bulk_insert_missing_keys_are_null_and_extra_keys_ignored(probe_engine):
    rows = [{"Id": 1, "Required": "a", "Label": "x"}, {"Id": 2, "Required": "b", "Unrelated": 9}]
    with probe_engine.begin() as conn:
        assert bulk_insert(conn, probe, rows, columns=["Id", "Required", "Label"]) == 2
    got = _table_rows(probe_engine, probe, "Id")
    assert [(r[0], r[6], r[8]) for r in got] == [(1, "x", "a"), (2, None, "b")]


def test_bulk_insert_iv(probe_engine):
    with probe_engine.begin() as conn:
        with pytest.raises(ValueError, match=r"must be columns of BulkProbe; 'Nope', 'Id;--' \(2 of 3\)"):
            bulk_insert(conn, probe, [{"Id": 1}], columns=["Id", "Nope", "Id;--"])
        with pytest.raises(ValueError, match=r"must be columns of BulkProbe; 'Bad' \(1 of 2\)"):
            bulk_insert(conn, probe, [{"Id": 1, "Bad": 2}])
        with pytest.raises(ValueError, match="must be distinct"):
            bulk_insert(conn, probe, [{"Id": 1}], columns=["Id", "Id"])
        with pytest.raises(ValueError, match="chunk_size"):
            bulk_insert(conn, probe, [{"Id": 1}], chunk_size=0)
    assert _count(probe_engine, probe) == 0


def test_copy_round_trips_none_datetimes_booleans_decimals(postgres_url):
    engine = _probe_engine(postgres_url)
    try:
        rows = probe_rows(60)
        rows[1]["At"] = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
        with engine.begin() as conn:
            bulk_insert(conn, probe, rows, chunk_size=16)
        got = _table_rows(engine, probe, "Id")
    finally:
        probe_metadata.drop_all(engine)
        engine.dispose()
    assert len(got) == 60
    for row, back in zip(rows, got, strict=True):
        expected = dict(row)
        if row["Id"] == 1:
            expected["At"] = dt.datetime(2024, 1, 1, 7, 0)  # aware → naive UTC, as bound parameters
        assert dict(zip(PROBE_COLUMNS, back, strict=True)) == expected
    assert {type(r[2]) for r in got} == {bool, type(None)}
    assert {type(r[3]) for r in got} == {Decimal, type(None)}
    assert {type(r[5]) for r in got} == {dt.datetime, type(None)}


def test_copy_and_executemany_store_identical_tables(sqlite_url, postgres_url):
    rows = probe_rows(500)
    rows[7]["At"] = dt.datetime(2024, 6, 30, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    contents = {}
    for name, url in {"sqlite": sqlite_url, "postgres": postgres_url}.items():
        engine = _probe_engine(url)
        try:
            with engine.begin() as conn:
                assert bulk_insert(conn, probe, rows, chunk_size=128) == 500
            contents[name] = _table_rows(engine, probe, "Id")
        finally:
            probe_metadata.drop_all(engine)
            engine.dispose()
    assert contents["sqlite"] == contents["postgres"]
    assert contents["postgres"][7][5] == dt.datetime(2024, 7, 1, 1, 30)


def test_copy_and_executemany_identical_on_the_amop_schema(sqlite_url, postgres_url):
    """Device result rows as `pipeline._record` writes them, with the default `Id`, on both databases."""
    table = s.device_result_staging
    rows = [
        {
            "QueueId": 11,
            "AmopDeviceId": 1000 + i,
            "BillingPeriodId": None if i % 3 else 7,
            "UsageMB": round(i * 0.137, 3),
            "SmsUsage": i % 4,
            "AssignedCarrierRatePlanId": 100 + i % 5,
            "ChargeAmt": round(i * 0.0731, 4),
            "BaseRateAmt": 0.0,
            "RateChargeAmt": round(i * 0.05, 4),
            "OverageChargeAmt": round(i * 0.0231, 4),
            "SmsChargeAmount": 0.0,
            "CreatedBy": s.CREATED_BY,
            "CreatedDate": dt.datetime(2024, 5, 1, 8, 30, 0, 250000),
        }
        for i in range(300)
    ]
    contents = {}
    for name, url in {"sqlite": sqlite_url, "postgres": postgres_url}.items():
        engine = make_engine(url)
        try:
            s.metadata.drop_all(engine, tables=[table])
            s.metadata.create_all(engine, tables=[table])
            with engine.begin() as conn:
                assert bulk_insert(conn, table, rows, chunk_size=100) == 300
            contents[name] = _table_rows(engine, table, "Id")
            s.metadata.drop_all(engine, tables=[table])
        finally:
            engine.dispose()
    assert contents["sqlite"] == contents["postgres"]
    assert [r[0] for r in contents["postgres"]] == list(range(1, 301))
    assert math.isclose(sum(float(r[10]) for r in contents["postgres"]), sum(r["ChargeAmt"] for r in rows))


def test_schema_defaults_of_left_out_columns_on_every_dialect(probe_engine):
    """COPY does not apply Python-side defaults by itself; `bulk_insert` adds them as executemany does."""
    table = s.device_result_staging
    s.metadata.create_all(probe_engine, tables=[table])
    try:
        with probe_engine.begin() as conn:
            bulk_insert(
                conn,
                table,
                [
                    {"QueueId": 1, "AmopDeviceId": 10 + i, "CreatedDate": dt.datetime(2024, 1, 2)}
                    for i in range(3)
                ],
            )
        with probe_engine.connect() as conn:
            got = conn.execute(
                select(
                    table.c.UsageMB, table.c.SmsUsage, table.c.ChargeAmt, table.c.CreatedBy, table.c.DeviceId
                )
            ).all()
    finally:
        s.metadata.drop_all(probe_engine, tables=[table])
    assert [tuple(r) for r in got] == [(0.0, 0, Decimal(0), s.CREATED_BY, None)] * 3


def test_foreign_key_error_is_the_same_on_every_dialect(db_engine):
    """A FK violation is SQLAlchemy's IntegrityError from COPY (wrapped) as from executemany."""
    with pytest.raises(IntegrityError, match="(?i)foreign key") as raised, db_engine.begin() as conn:
        bulk_insert(conn, s.queue_rate_plan, [_qrp_row(queue_id=404, plan_id=405)])
    driver = {"postgresql": "psycopg", "sqlite": "sqlite3"}[db_engine.dialect.name]
    assert type(raised.value.orig).__module__.startswith(driver)
    assert _count(db_engine, s.queue_rate_plan) == 0


# -- SQL Server: pymssql bulk_copy into a staging table, then one set-based insert ----------------------

BULK_COPY = inspect.signature(pymssql._pymssql.Connection.bulk_copy)


class FakePymssqlConnection:
    """Records what `bulk_insert` sends to a pymssql connection; `bulk_copy` calls bind like the real one."""

    def __init__(self, fail_on_copy: int | None = None, error: Exception | None = None):
        self.calls: list[tuple] = []
        self.fail_on_copy = fail_on_copy
        self.error = error or pymssql._mssql.MSSQLDatabaseException("Bulk copy failed")

    def cursor(self):
        return FakeCursor(self.calls)

    def bulk_copy(self, *args, **kwargs):
        bound = BULK_COPY.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("self")
        arguments["elements"] = list(arguments["elements"])
        self.calls.append(("bulk_copy", arguments))
        if sum(c[0] == "bulk_copy" for c in self.calls) == self.fail_on_copy:
            raise self.error


class FakeCursor:
    def __init__(self, calls):
        self.calls = calls
        self.closed = False

    def execute(self, operation, *params):
        assert not self.closed
        self.calls.append(("execute", operation, params))

    def close(self):
        self.closed = True


def mssql_conn(raw: FakePymssqlConnection):
    """The surface of a SQLAlchemy ``mssql+pymssql`` Connection that `bulk_insert` uses."""
    return SimpleNamespace(
        dialect=SimpleNamespace(name="mssql", loaded_dbapi=pymssql),
        connection=SimpleNamespace(driver_connection=raw),
    )


QRP_COLS = ["QueueId", "SequenceOrder", "CommGroup_RatePlanId", "CreatedBy", "CreatedDate"]
QRP_QUOTED = "[QueueId], [SequenceOrder], [CommGroup_RatePlanId], [CreatedBy], [CreatedDate]"
STAGE = "#stage_OptimizationQueue_RatePlan"


def qrp_rows(n: int) -> list[dict]:
    return [_qrp_row(queue_id=987_650 + i // 3, plan_id=555_000 + i, order=i % 3) for i in range(n)]


def test_mssql_stages_bulk_copies_and_inserts_set_based():
    raw = FakePymssqlConnection()
    rows = qrp_rows(5)
    assert bulk_insert(mssql_conn(raw), s.queue_rate_plan, iter(rows), chunk_size=2) == 5
    per_chunk = [
        f"INSERT INTO [OptimizationQueue_RatePlan] ({QRP_QUOTED}) SELECT {QRP_QUOTED} FROM [{STAGE}]",
        f"TRUNCATE TABLE [{STAGE}]",
    ]
    expected = [
        ("execute", f"IF OBJECT_ID('tempdb..{STAGE}') IS NOT NULL DROP TABLE [{STAGE}]", ()),
        ("execute", f"SELECT TOP 0 {QRP_QUOTED} INTO [{STAGE}] FROM [OptimizationQueue_RatePlan]", ()),
    ]
    for part in (rows[0:2], rows[2:4], rows[4:5]):
        elements = [tuple(r[c] for c in QRP_COLS) for r in part]
        expected.append(
            (
                "bulk_copy",
                {
                    "table_name": STAGE,
                    "elements": elements,
                    "column_ids": [1, 2, 3, 4, 5],
                    "batch_size": len(part),
                    "tablock": True,
                    "check_constraints": False,
                    "fire_triggers": False,
                },
            )
        )
        expected += [("execute", sql, ()) for sql in per_chunk]
    expected.append(("execute", f"DROP TABLE [{STAGE}]", ()))
    assert raw.calls == expected


def test_mssql_sql_text_holds_identifiers_of_the_schema_only():
    raw = FakePymssqlConnection()
    hostile = "x'); DROP TABLE [Device]; --"
    rows = [
        {
            "InstanceId": 424_242,
            "CommPlanGroupId": 313_131,
            "RunStatusId": 1,
            "QueueKind": hostile,
            "SequenceIndex": 271_828,
            "UsesProration": True,
            "TotalCost": Decimal("1234.5678"),
            "CreatedBy": hostile,
            "CreatedDate": dt.datetime(2031, 7, 9, 10, 11, 12, tzinfo=dt.UTC),
        }
    ]
    bulk_insert(mssql_conn(raw), s.optimization_queue, rows)
    statements = [c[1] for c in raw.calls if c[0] == "execute"]
    assert all(c[2] == () for c in raw.calls if c[0] == "execute")  # no parameters at all
    defaulted = ["IsBillInAdvance", "IsDeleted"]  # left out of the rows; scalar defaults False
    allowed = {"OptimizationQueue", "#stage_OptimizationQueue", *rows[0], *defaulted}
    for statement in statements:
        assert set(re.findall(r"\[([^\]]*)\]", statement)) <= allowed
        skeleton = re.sub(r"\[[^\]]*\]", "?", statement).replace("tempdb..#stage_OptimizationQueue", "?")
        assert re.fullmatch(r"[A-Z_ ()?,'0-9]*", skeleton), skeleton
        for value in ("424242", "313131", "271828", "1234.5678", "2031", "DROP TABLE [Device]"):
            assert value not in statement
    (copy,) = [c[1] for c in raw.calls if c[0] == "bulk_copy"]
    assert copy["column_ids"] == list(range(1, 12))
    assert copy["elements"] == [
        (
            424_242,
            313_131,
            1,
            hostile,
            271_828,
            True,
            Decimal("1234.5678"),
            hostile,
            dt.datetime(2031, 7, 9, 10, 11, 12),
            False,
            False,
        )
    ]
    quoted = ", ".join(f"[{c}]" for c in [*rows[0], *defaulted])
    assert f"SELECT TOP 0 {quoted} INTO [#stage_OptimizationQueue] FROM [OptimizationQueue]" in statements


def test_mssql_quotes_odd_and_schema_qualified_names():
    odd = Table("Queue]Rate Plan", MetaData(schema="amop"), Column("A]b", Integer), Column("C", Integer))
    raw = FakePymssqlConnection()
    bulk_insert(mssql_conn(raw), odd, [{"A]b": 1, "C": 2}])
    statements = [c[1] for c in raw.calls if c[0] == "execute"]
    assert statements == [
        "IF OBJECT_ID('tempdb..#stage_Queue_Rate_Plan') IS NOT NULL DROP TABLE [#stage_Queue_Rate_Plan]",
        "SELECT TOP 0 [A]]b], [C] INTO [#stage_Queue_Rate_Plan] FROM [amop].[Queue]]Rate Plan]",
        "INSERT INTO [amop].[Queue]]Rate Plan] ([A]]b], [C]) "
        "SELECT [A]]b], [C] FROM [#stage_Queue_Rate_Plan]",
        "TRUNCATE TABLE [#stage_Queue_Rate_Plan]",
        "DROP TABLE [#stage_Queue_Rate_Plan]",
    ]
    assert [c[1]["table_name"] for c in raw.calls if c[0] == "bulk_copy"] == ["#stage_Queue_Rate_Plan"]


def test_mssql_failing_bulk_copy_logs_table_and_row_keys_then_reraises(caplog):
    raw = FakePymssqlConnection(fail_on_copy=2)
    rows = qrp_rows(7)
    with caplog.at_level(logging.ERROR, logger=storage.__name__):
        with pytest.raises(pymssql._mssql.MSSQLDatabaseException) as raised:
            bulk_insert(mssql_conn(raw), s.queue_rate_plan, rows, chunk_size=3)
    assert raised.value is raw.error
    (record,) = [r for r in caplog.records if r.name == storage.__name__]
    assert record.getMessage() == (
        "Bulk insert into OptimizationQueue_RatePlan failed in chunk 2 (rows 3 to 5); "
        "keys of its first rows: [{'QueueId': 987651, 'SequenceOrder': 0}, "
        "{'QueueId': 987651, 'SequenceOrder': 1}, {'QueueId': 987651, 'SequenceOrder': 2}]"
    )
    kinds = [c[0] if c[0] == "bulk_copy" else c[1].split()[0] for c in raw.calls]
    # chunk 1 moved; chunk 2 stops at its bulk copy: no insert, no drop (the caller's rollback undoes it)
    assert kinds == ["IF", "SELECT", "bulk_copy", "INSERT", "TRUNCATE", "bulk_copy"]


def test_mssql_dbapi_error_is_wrapped_with_the_original(caplog):
    error = pymssql.OperationalError("conversion failed")
    raw = FakePymssqlConnection(fail_on_copy=1, error=error)
    with pytest.raises(OperationalError, match="conversion failed") as raised:
        bulk_insert(mssql_conn(raw), s.queue_rate_plan, qrp_rows(2))
    assert raised.value.orig is error
    assert "OptimizationQueue_RatePlan" in caplog.text


def test_mssql_no_rows_no_sql():
    raw = FakePymssqlConnection()
    assert bulk_insert(mssql_conn(raw), s.queue_rate_plan, iter([])) == 0
    assert raw.calls == []
    with pytest.raises(ValueError, match="must be columns of OptimizationQueue_RatePlan"):
        bulk_insert(mssql_conn(raw), s.queue_rate_plan, [{"QueueId": 1, "Evil]": 2}])
    assert raw.calls == []


def test_key_columns_for_the_failure_log():
    assert storage._key_columns(s.queue_rate_plan, QRP_COLS) == ["QueueId", "SequenceOrder"]
    queue_cols = ["InstanceId", "CommPlanGroupId", "QueueKind", "SequenceIndex", "RunStatusId"]
    assert storage._key_columns(s.optimization_queue, queue_cols) == [
        "CommPlanGroupId",
        "QueueKind",
        "SequenceIndex",
    ]
    assert storage._key_columns(s.optimization_queue, ["InstanceId"]) == ["InstanceId"]


def test_chunk_values_orders_fills_and_converts():
    aware = dt.datetime(2026, 1, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive = dt.datetime(2026, 1, 1)
    assert storage._chunk_values(["A"], (False, "x"), [], [{"A": 3, "Z": 9}]) == [(3, False, "x")]
    assert storage._chunk_values(
        ["A", "B", "C"], (), [0, 2], [{"A": aware, "C": aware}, {"C": naive, "B": 2}]
    ) == [
        (dt.datetime(2026, 1, 1, 3), None, dt.datetime(2026, 1, 1, 3)),
        (None, 2, naive),
    ]


def test_bulk_insert_checks_given_columns_before_any_row():
    raw = FakePymssqlConnection()
    with pytest.raises(ValueError, match=r"'Nope' \(1 of 1\)"):
        bulk_insert(mssql_conn(raw), s.queue_rate_plan, iter([]), columns=["Nope"])
    assert raw.calls == []

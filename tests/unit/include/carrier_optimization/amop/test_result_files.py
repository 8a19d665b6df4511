"""Stored report files (SQLite and PostgreSQL): one row per file, replaced as a whole, read by name."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.result_files import (
    CSV_NAME,
    XLSX_NAME,
    latest_result_file,
    store_result_file,
)

NOW = dt.datetime(2026, 11, 30, 10, 0)


def instance(engine) -> int:
    with engine.begin() as conn:
        session_id = conn.execute(
            insert(s.optimization_session)
            .values(SessionGuid="g-1", TenantId=1)
            .returning(s.optimization_session.c.Id)
        ).scalar_one()
        return conn.execute(
            insert(s.optimization_instance)
            .values(
                RunStatusId=1,
                BillingPeriodStartDate=NOW - dt.timedelta(days=30),
                BillingPeriodEndDate=NOW,
                TenantId=1,
                OptimizationSessionId=session_id,
            )
            .returning(s.optimization_instance.c.Id)
        ).scalar_one()


def names(engine, instance_id: int) -> list[str | None]:
    files = s.instance_result_file
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(files.c.FileName).where(files.c.InstanceId == instance_id).order_by(files.c.Id)
            ).scalars()
        )


def test_files_are_stored_by_name_and_replaced_as_a_whole(db_engine):
    instance_id = instance(db_engine)
    store_result_file(db_engine, instance_id, b"xlsx 1", assignments_csv=b"csv 1", now=NOW)
    assert names(db_engine, instance_id) == [XLSX_NAME, CSV_NAME]
    assert latest_result_file(db_engine, instance_id) == b"xlsx 1"
    assert latest_result_file(db_engine, instance_id, CSV_NAME) == b"csv 1"

    xlsx_id = store_result_file(db_engine, instance_id, b"xlsx 2", now=NOW)
    assert isinstance(xlsx_id, int)
    assert names(db_engine, instance_id) == [XLSX_NAME]
    assert latest_result_file(db_engine, instance_id) == b"xlsx 2"
    assert latest_result_file(db_engine, instance_id, CSV_NAME) is None
    assert latest_result_file(db_engine, instance_id + 1) is None


def test_a_row_without_a_file_name_is_the_xlsx(db_engine):
    instance_id = instance(db_engine)
    with db_engine.begin() as conn:
        conn.execute(
            insert(s.instance_result_file).values(
                InstanceId=instance_id,
                AssignmentXlsxBytes=b"legacy",
                IsDeleted=False,
                CreatedBy="System",
                CreatedDate=NOW,
            )
        )
    assert latest_result_file(db_engine, instance_id) == b"legacy"
    assert latest_result_file(db_engine, instance_id, CSV_NAME) is None


def test_empty_workbook_is_refused():
    with pytest.raises(ValueError, match="`xlsx` must be the workbook's bytes"):
        store_result_file(None, 1, b"")

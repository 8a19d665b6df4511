"""The report's files without a database: the streamed device sheet and the gzip CSV."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io

import pandas as pd
from openpyxl import load_workbook

from include.carrier_optimization.amop.storage import frame_of
from include.carrier_optimization.reporting.report_files import (
    ASSIGNMENT_HEADERS,
    ASSIGNMENTS_SHEET,
    render_assignments_csv,
    render_workbook,
)

HEADER = {
    "Id": 7,
    "SessionGuid": "guid-7",
    "DisplayName": "Jasper & Co",
    "ServiceProviderId": 101,
    "BillingPeriodStartDate": dt.datetime(2026, 11, 1),
    "BillingPeriodEndDate": dt.datetime(2026, 12, 1),
}
FIGURES = {
    "devices": 3,
    "comm_plans": 2,
    "current_cost": 30.0,
    "optimized_cost": 20.5,
    "savings": 9.5,
    "lower_bound": 20.0,
    "gap": 0.025,
    "changes": 2,
}
ASSIGNMENTS = pd.DataFrame(
    {
        "iccid": ["8901", "8902", "8903"],
        "msisdn": ["555-1", None, "555<3>"],
        "comm_plan": ["A & B", "A & B", "C"],
        "usage_mb": [1.23456, 0.0, 2048.5],
        "current": ["P1", "", "P2"],
        "recommended": ["P2", "P1", "P<2>"],
        "cost": [10.123456, 0.0, 10.5],
    }
)


def test_device_rows_are_streamed_into_the_sheet_with_escaped_text_and_rounded_numbers():
    xlsx = render_workbook(HEADER, FIGURES, (), ASSIGNMENTS, generated=dt.datetime(2026, 11, 30, 10))
    book = load_workbook(io.BytesIO(xlsx))
    sheet = book[ASSIGNMENTS_SHEET]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows == [
        ASSIGNMENT_HEADERS,
        ("8901", "555-1", "A & B", 1.235, "P1", "P2", 10.1235),
        ("8902", None, "A & B", 0, None, "P1", 0),
        ("8903", "555<3>", "C", 2048.5, "P2", "P<2>", 10.5),
    ]
    assert sheet.freeze_panes == "A2"
    assert sheet["D2"].number_format == "#,##0.000" and sheet["G2"].number_format == "#,##0.00"
    assert sheet.max_row == 4
    assert book["Summary"]["B16"].value == "Device Assignments sheet"


def test_csv_holds_the_same_rows_as_the_sheet():
    table = list(csv.reader(io.StringIO(gzip.decompress(render_assignments_csv(ASSIGNMENTS)).decode())))
    assert tuple(table[0]) == ASSIGNMENT_HEADERS
    assert table[1] == ["8901", "555-1", "A & B", "1.235", "P1", "P2", "10.1235"]
    assert table[2][1] == "" and table[3][5] == "P<2>"
    assert len(table) == 4


def test_frame_of_builds_columns_from_row_tuples():
    frame = frame_of([(1, "a", None), (2, "b", 3.5)], ["id", "name", "value"])
    assert frame["id"].tolist() == [1, 2]
    assert frame["name"].tolist() == ["a", "b"]
    assert frame["value"].isna().tolist() == [True, False]
    empty = frame_of([], ["id", "name"])
    assert list(empty.columns) == ["id", "name"] and empty.empty


def test_the_device_sheet_stops_at_200k_sims_well_inside_excels_limit():
    from include.carrier_optimization.reporting.report_files import DEVICE_SHEET_MAX_ROWS, XLSX_MAX_ROWS

    assert DEVICE_SHEET_MAX_ROWS == 200_001  # 200,000 SIMs and the header: a workbook under 10 MiB
    assert DEVICE_SHEET_MAX_ROWS < XLSX_MAX_ROWS


def test_the_chart_modules_are_imported_by_a_background_thread():
    import sys

    from include.carrier_optimization.reporting.report_files import import_chart_modules_in_background

    thread = import_chart_modules_in_background()
    thread.join(timeout=60)
    assert not thread.is_alive() and thread.daemon
    assert {"matplotlib.figure", "matplotlib.backends.backend_agg"} <= set(sys.modules)

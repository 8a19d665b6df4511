"""The files of the result report: the xlsx workbook, the gzip CSV of device assignments, the chart.

The workbook is written by XlsxWriter; the rows of the device sheet are streamed into its XML in
chunks (no cell objects, no sheet-sized string). The device sheet holds at most
`DEVICE_SHEET_MAX_ROWS` rows (200,000 SIMs, so that the workbook can still be attached to the e-mail; Excel's
own limit is `XLSX_MAX_ROWS`); above it the device assignments go only to the CSV
(`render_assignments_csv`) and the workbook's summary names that file instead (see ``report.build_report``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from include.carrier_optimization.reporting.device_sheet import (
    assignment_rows,
    stream_device_rows,
)
from include.carrier_optimization.reporting.summary import money

LOG = logging.getLogger(__name__)

#: Rows of one Excel sheet, header included.
XLSX_MAX_ROWS = 1_048_576
#: Rows of the device sheet, header included: 200,000 SIMs make a workbook of about 9.6 MB, just under the
#: 10 MiB e-mail attachment limit; above, the assignments go to the gzip CSV (about 10 MB at a million).
DEVICE_SHEET_MAX_ROWS = 200_001

SUMMARY_SHEET = "Summary"
STATISTICS_SHEET = "Statistics"
ASSIGNMENTS_SHEET = "Device Assignments"
STATISTICS_HEADERS = (
    "Communication Plan",
    "SIMs",
    "Plans Used",
    "Recommended Plans",
    "Usage MB",
    "Cost Before",
    "Cost After",
    "Savings",
    "Savings %",
)
ASSIGNMENT_HEADERS = (
    "ICCID",
    "MSISDN",
    "Communication Plan",
    "Usage MB",
    "Current Rate Plan",
    "Recommended Rate Plan",
    "Cost",
)
TOTAL_LABEL = "Total"
#: Plans drawn one by one in the chart; the rest are summed into one "other plans" bar.
CHART_MAX_PLANS = 15

_MONEY = "#,##0.00"
_USAGE = "#,##0.000"
_PERCENT = "0.0%"


def share(part: float, whole: float) -> float | None:
    """``part / whole``, or None when ``whole`` is 0."""
    return part / whole if whole else None


def render_assignments_csv(assignments: pd.DataFrame) -> bytes:
    """Gzip CSV of all device assignments, `ASSIGNMENT_HEADERS` as header (UTF-8, no time stamp)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as packed:
        with io.TextIOWrapper(packed, encoding="utf-8", newline="") as text:
            frame = assignment_rows(assignments)
            frame.columns = list(ASSIGNMENT_HEADERS)
            frame.to_csv(text, index=False, lineterminator="\n")
    return out.getvalue()


def render_workbook(
    header: dict[str, Any],
    figures: dict[str, Any],
    statistics: Sequence[Any],
    assignments: pd.DataFrame | None,
    *,
    generated: dt.datetime,
    elsewhere: str | None = None,
) -> bytes:
    """The xlsx: ``Summary``, ``Statistics`` (rows per comm plan + total) and ``Device Assignments``.

    XlsxWriter writes the workbook (styles, summary, statistics, the device sheet's columns, frozen
    header and header row); the device rows are then streamed into that sheet's XML in chunks
    (`device_sheet.stream_device_rows`): XlsxWriter's per-cell path, even in constant-memory mode,
    takes about 10 s for 100,000 SIMs. With ``assignments`` None there is no device sheet and the
    summary names ``elsewhere``, the file holding the device assignments.
    """
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "remove_timezone": True})
    strong = book.add_format({"bold": True, "bg_color": "#DDE5F0"})
    formats = {fmt: book.add_format({"num_format": fmt}) for fmt in (_MONEY, _USAGE, _PERCENT)}
    _summary_sheet(book, strong, header, figures, generated, elsewhere, assignments is not None)
    _statistics_sheet(book, strong, formats, statistics)
    if assignments is None:
        book.close()
        return out.getvalue()
    sheet = book.add_worksheet(ASSIGNMENTS_SHEET)
    kinds = (None, None, None, _USAGE, None, None, _MONEY)
    for col, (width, kind) in enumerate(zip((24, 16, 28, 12, 24, 24, 12), kinds, strict=True)):
        sheet.set_column(col, col, width, formats.get(kind) if kind else None)
    sheet.freeze_panes(1, 0)
    sheet.write_row(0, 0, ASSIGNMENT_HEADERS, strong)
    book.close()
    styles = (formats[_USAGE]._get_xf_index(), formats[_MONEY]._get_xf_index())  # ids in styles.xml
    return stream_device_rows(
        out.getvalue(), f"xl/worksheets/sheet{sheet.index + 1}.xml", assignments, styles
    )


def _summary_sheet(book, strong, header, figures, generated, elsewhere, with_sheet: bool) -> None:
    sheet = book.add_worksheet(SUMMARY_SHEET)
    sheet.set_column(0, 0, 22)
    sheet.set_column(1, 1, 44)
    kinds = ("yyyy-mm-dd", "yyyy-mm-dd hh:mm", "#,##0", "0.0000%", _MONEY, _PERCENT)
    fmt = {kind: book.add_format({"num_format": kind}) for kind in kinds}
    where = ASSIGNMENTS_SHEET + " sheet" if with_sheet else f"{elsewhere} (too many SIMs for one sheet)"
    rows = (
        ("Instance", header["Id"], None),
        ("Session", header["SessionGuid"], None),
        ("Service provider", f"{header.get('DisplayName') or ''} ({header['ServiceProviderId']})", None),
        ("Billing period start", header["BillingPeriodStartDate"], "yyyy-mm-dd"),
        ("Billing period end", header["BillingPeriodEndDate"], "yyyy-mm-dd"),
        ("SIMs", figures["devices"], "#,##0"),
        ("Communication plans", figures["comm_plans"], "#,##0"),
        ("Cost before", figures["current_cost"], _MONEY),
        ("Cost after", figures["optimized_cost"], _MONEY),
        ("Savings", figures["savings"], _MONEY),
        ("Savings %", share(figures["savings"], figures["current_cost"]), _PERCENT),
        ("Lower bound", figures.get("lower_bound"), _MONEY),
        ("Gap to lower bound", figures.get("gap"), "0.0000%"),
        ("Plan changes", figures["changes"], "#,##0"),
        ("Generated (UTC)", generated, "yyyy-mm-dd hh:mm"),
        ("Device assignments", where, None),
    )
    for number, (label, value, kind) in enumerate(rows):
        sheet.write_string(number, 0, label, strong)
        if value is not None:
            sheet.write(number, 1, value, fmt.get(kind))


def _statistics_sheet(book, strong, formats, statistics: Sequence[Any]) -> None:
    sheet = book.add_worksheet(STATISTICS_SHEET)
    kinds = (None, "#,##0", "#,##0", None, _USAGE, _MONEY, _MONEY, _MONEY, _PERCENT)
    cell = [None if k is None else formats.get(k) or book.add_format({"num_format": k}) for k in kinds]
    bold = [
        book.add_format({"bold": True, "bg_color": "#DDE5F0", **({"num_format": k} if k else {})})
        for k in kinds
    ]
    for col, width in enumerate((28, 9, 11, 48, 14, 14, 14, 14, 10)):
        sheet.set_column(col, col, width)
    sheet.freeze_panes(1, 0)
    sheet.write_row(0, 0, STATISTICS_HEADERS, strong)
    for number, st in enumerate(statistics, start=1):
        values = (
            st.comm_plan,
            st.sims,
            len(st.plans),
            ", ".join(f"{code} ({n})" for code, n in st.plans.items()),
            round(st.usage_mb, 3),
            round(st.cost_before, 4),
            round(st.cost_after, 4),
            round(st.savings, 4),
            share(st.savings, st.cost_before),
        )
        for col, value in enumerate(values):
            sheet.write(number, col, value, cell[col])
    before = sum(st.cost_before for st in statistics)
    after = sum(st.cost_after for st in statistics)
    totals = (
        TOTAL_LABEL,
        sum(st.sims for st in statistics),
        len({code for st in statistics for code in st.plans}),
        "",
        round(sum(st.usage_mb for st in statistics), 3),
        round(before, 4),
        round(after, 4),
        round(before - after, 4),
        share(before - after, before),
    )
    for col, value in enumerate(totals):
        sheet.write(len(statistics) + 1, col, value, bold[col])


def import_chart_modules_in_background() -> threading.Thread:
    """Start importing matplotlib (what `render_chart` needs) in a daemon thread; return the thread.

    The import takes 1 to 1.5 s on this machine and is done lazily, not at module level, so that parsing
    the DAG file does not pay it. Started when the report starts, it runs while the report waits for
    the database; `render_chart`'s own import then finds the modules loaded (or waits for them).
    """

    def load() -> None:
        try:
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.figure  # noqa: F401
        except Exception:  # render_chart imports them again and raises there
            LOG.debug("Background import of matplotlib failed", exc_info=True)

    thread = threading.Thread(target=load, name="report-chart-import", daemon=True)
    thread.start()
    return thread


def render_chart(before: dict[str, float], after: dict[str, float], figures: dict[str, Any]) -> bytes:
    """PNG: cost by rate plan before and after (left) and the totals with the lower bound (right).

    Drawn on a bare `matplotlib.figure.Figure` with the Agg canvas: no pyplot state, safe in threads.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    codes = sorted(set(before) | set(after), key=lambda c: -max(before.get(c, 0.0), after.get(c, 0.0)))
    if len(codes) > CHART_MAX_PLANS:
        shown, rest = codes[: CHART_MAX_PLANS - 1], codes[CHART_MAX_PLANS - 1 :]
        before = {
            **{c: before.get(c, 0.0) for c in shown},
            "other plans": sum(before.get(c, 0.0) for c in rest),
        }
        after = {**{c: after.get(c, 0.0) for c in shown}, "other plans": sum(after.get(c, 0.0) for c in rest)}
        codes = [*shown, "other plans"]
    fig = Figure(figsize=(11, 0.9 + 0.42 * max(len(codes), 6)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=(3, 1))
    y = np.arange(len(codes))
    left.barh(y - 0.2, [before.get(c, 0.0) for c in codes], 0.4, label="before", color="#9aa5b1")
    left.barh(y + 0.2, [after.get(c, 0.0) for c in codes], 0.4, label="after", color="#1f77b4")
    left.set_yticks(y, codes)
    left.invert_yaxis()
    left.set_xlabel("cost ($)")
    left.set_title("Cost by rate plan")
    left.legend(loc="lower right")
    left.grid(axis="x", alpha=0.3)

    current, optimized = figures["current_cost"], figures["optimized_cost"]
    bars = right.bar(["before", "after"], [current, optimized], color=["#9aa5b1", "#1f77b4"])
    right.bar_label(bars, labels=[f"${current:,.0f}", f"${optimized:,.0f}"], padding=2)
    bound = figures.get("lower_bound")
    if bound is not None:
        gap = figures.get("gap")
        label = f"lower bound ${bound:,.0f}" + ("" if gap is None else f" (gap {gap:.2%})")
        right.axhline(bound, color="#d62728", linestyle="--", linewidth=1.5, label=label)
        right.legend(loc="upper right", fontsize=8)
    right.set_ylim(0, max(current, optimized, bound or 0.0) * 1.15 or 1.0)
    right.set_title("Total")
    right.grid(axis="y", alpha=0.3)
    savings = figures["savings"]
    part = share(savings, current)
    fig.suptitle(
        f"Savings {money(savings)}"
        + ("" if part is None else f" ({part:.1%})")
        + f" on {figures['devices']:,} SIMs",
        fontweight="bold",
    )
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()

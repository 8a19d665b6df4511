"""The result report of an optimization instance: xlsx workbook, savings chart and e-mail summary.

The report reads only the AMOP tables the run wrote: the winners' rows of ``OptimizationDeviceResult``
joined with the instance's device snapshot (``OptimizationDevice``) and the carrier rate plans, plus the
per comm group figures of ``OptimizationCommGroupSummary``. The cost before optimization is recomputed
with the one cost model (`cost.evaluate` on each SIM's current plan; SIMs without a known plan of their
group priced on the legacy base plan, as ``pipeline.current_cost`` does), so every figure of the report
follows docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop.instance_results import instance_header
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.result_files import (
    CSV_NAME,
    XLSX_NAME,
)

# The reads under their former names here too (bench/kept_run.py times them one by one).
from include.carrier_optimization.reporting.report_data import assignments as _assignments  # noqa: F401
from include.carrier_optimization.reporting.report_data import costs_before as _costs_before  # noqa: F401
from include.carrier_optimization.reporting.report_data import read_assignments_and_costs
from include.carrier_optimization.reporting.report_files import (
    DEVICE_SHEET_MAX_ROWS,
    import_chart_modules_in_background,
    render_assignments_csv,
    render_chart,
    render_workbook,
    share,
)
from include.carrier_optimization.reporting.summary import instance_groups, money, savings_summary

LOG = logging.getLogger(__name__)

CHART_NAME = "savings_chart.png"
#: `DEVICE_FRAME_COLUMNS` as named in `instance_results.SNAPSHOT_COLUMNS`.
DEVICE_FRAME_COLUMNS_IN_SNAPSHOT = (
    "device_id",
    "comm_plan",
    "usage",
    "sms",
    "activated",
    "days",
    "current_id",
)


class ReportError(ValueError):
    """The instance cannot be reported: it does not exist or its winners are not selected yet."""


@dataclass(frozen=True)
class CommPlanStats:
    """Statistics of one communication plan: SIMs, plans used, usage and cost before and after."""

    comm_plan: str
    sims: int
    plans: dict[str, int]
    usage_mb: float
    cost_before: float
    cost_after: float

    @property
    def savings(self) -> float:
        """Cost before minus cost after."""
        return self.cost_before - self.cost_after


@dataclass(frozen=True)
class Report:
    """The report of one instance, ready to store, attach and upload.

    Attributes
    ----------
    instance_id : int
        The reported instance.
    xlsx : bytes
        Workbook with the sheets ``Summary``, ``Statistics`` (one row per communication plan and a
        total row) and ``Device Assignments`` (one row per SIM) when the SIMs fit in one sheet.
    assignments_csv : bytes or None
        Gzip CSV of all device assignments when they do not fit in the device sheet
        (`DEVICE_SHEET_MAX_ROWS`); the workbook then has no device sheet and its summary names this file.
    chart_png : bytes
        Savings chart: cost by rate plan before and after, totals with the lower bound.
    summary_text : str
        Plain-text e-mail body with the figures.
    figures : dict
        `summary.savings_summary` of the winners (``devices, current_cost, optimized_cost, savings,
        lower_bound, gap, changes``) plus ``comm_plans``.
    statistics : tuple of CommPlanStats
        One entry per communication plan, sorted by name.
    """

    instance_id: int
    xlsx: bytes
    chart_png: bytes
    summary_text: str
    figures: dict[str, Any]
    statistics: tuple[CommPlanStats, ...] = field(default=())
    xlsx_name: str = XLSX_NAME
    chart_name: str = CHART_NAME
    assignments_csv: bytes | None = None
    csv_name: str = CSV_NAME

    @property
    def attachments(self) -> tuple[tuple[str, bytes], ...]:
        """``(name, bytes)`` pairs for an `notify.Email`: the xlsx, the CSV when there is one, the chart."""
        csv = ((self.csv_name, self.assignments_csv),) if self.assignments_csv else ()
        return ((self.xlsx_name, self.xlsx), *csv, (self.chart_name, self.chart_png))


# -- reading ----------------------------------------------------------------------------------------


def _build_report_iv(instance_id: Any) -> int:
    try:
        value = int(instance_id)
    except (TypeError, ValueError):
        value = 0
    if value <= 0 or str(value) != str(instance_id).strip():
        raise ValueError(f"`instance_id` must be a positive integer; got {instance_id!r}")
    return value


def _groups(engine: Engine, instance_id: int) -> list[dict[str, Any]]:
    groups = instance_groups(engine, instance_id)
    if not groups:
        raise ReportError(f"instance {instance_id} has no comm groups; nothing to report")
    pending = [g["comm_group_id"] for g in groups if g["winner_queue_id"] is None]
    if pending:
        raise ReportError(
            f"instance {instance_id}: comm groups {', '.join(map(str, pending))} have no winner yet; "
            "run the winners step first"
        )
    return groups


def _statistics(assignments: pd.DataFrame, before: pd.Series) -> tuple[CommPlanStats, ...]:
    frame = assignments.assign(before=assignments["device_id"].map(before).fillna(0.0).to_numpy())
    sums = frame.groupby("comm_plan", sort=True)[["usage_mb", "before", "cost"]].sum()
    counts = frame.groupby(["comm_plan", "recommended"]).size()
    stats = []
    for name, row in sums.iterrows():
        plans = counts.loc[name]
        stats.append(
            CommPlanStats(
                comm_plan=str(name),
                sims=int(plans.sum()),
                plans={
                    str(k): int(v) for k, v in sorted(plans.items(), key=lambda item: (-item[1], item[0]))
                },
                usage_mb=float(row["usage_mb"]),
                cost_before=float(row["before"]),
                cost_after=float(row["cost"]),
            )
        )
    return tuple(stats)


def build_report(
    engine: Engine, instance_id: int, *, now: dt.datetime | None = None, max_rows: int | None = None
) -> Report:
    """Build the result report of a finished instance from the AMOP tables.

    Per communication plan ``c``: SIMs ``n_c``, cost after ``Σ_{s∈c} (ChargeAmt_s + SmsChargeAmount_s)``
    over the winners' device rows, cost before ``Σ_{s∈c} cost_s(current plan)`` by the cost model, and
    savings = before − after. Instance figures (cost, lower bound, gap) are `summary.savings_summary`
    of the comm group summaries, the same numbers the winners step returned.

    Parameters
    ----------
    engine : Engine
        The AMOP database.
    instance_id : int
        An instance whose winners were selected (``pipeline.select_winners``).
    now : datetime, optional
        Time stamped on the report (default: now, UTC).
    max_rows : int, optional
        Rows of the device sheet, header included (default `DEVICE_SHEET_MAX_ROWS`: 200,000 SIMs, a
        workbook that can still be attached). More SIMs than fit go to a gzip CSV beside the workbook
        (`Report.assignments_csv`) instead of a sheet.

    Returns
    -------
    Report
        The workbook, the chart, the e-mail text and the figures.

    Raises
    ------
    ValueError
        When `instance_id` is not a positive integer.
    ReportError
        When the instance does not exist, has no comm groups, or a comm group has no winner yet.

    Examples
    --------
    >>> report = build_report(engine, 42)                    # doctest: +SKIP
    >>> store_result_file(engine, report.instance_id, report.xlsx)  # doctest: +SKIP
    """
    instance_id = _build_report_iv(instance_id)
    import_chart_modules_in_background()
    header = instance_header(engine, instance_id)
    if header is None:
        raise ReportError(f"optimization instance {instance_id} does not exist")
    groups = _groups(engine, instance_id)
    assignments, (before_device, before_plan) = read_assignments_and_costs(engine, instance_id, groups)
    statistics = _statistics(assignments, before_device)
    figures = savings_summary(instance_id, groups)
    figures.pop("groups")
    figures["comm_plans"] = len(statistics)
    after_plan = assignments.groupby("recommended")["cost"].sum()
    fits = len(assignments) + 1 <= (max_rows or DEVICE_SHEET_MAX_ROWS)
    stamp = now or utcnow()
    report = Report(
        instance_id=instance_id,
        xlsx=render_workbook(
            header,
            figures,
            statistics,
            assignments if fits else None,
            generated=stamp,
            elsewhere=None if fits else CSV_NAME,
        ),
        chart_png=render_chart(before_plan, {str(k): float(v) for k, v in after_plan.items()}, figures),
        summary_text=format_report_summary(
            header, figures, statistics, csv_rows=None if fits else len(assignments)
        ),
        figures=figures,
        statistics=statistics,
        assignments_csv=None if fits else render_assignments_csv(assignments),
    )
    LOG.info(
        "Instance %s report: %d SIMs in %d comm plans, xlsx %d bytes, CSV %d bytes, chart %d bytes",
        instance_id,
        len(assignments),
        len(statistics),
        len(report.xlsx),
        len(report.assignments_csv or b""),
        len(report.chart_png),
    )
    return report


# -- rendering (the files: report_files) -------------------------------------------------------


def _date(value: Any) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, dt.datetime) else str(value)


def format_report_summary(
    header: dict[str, Any],
    figures: dict[str, Any],
    statistics: tuple[CommPlanStats, ...],
    *,
    csv_rows: int | None = None,
) -> str:
    """Plain-text e-mail body: who and when, the figures, one line per communication plan, the files.

    ``csv_rows`` set: the device assignments (that many) are in the CSV, not in the workbook.
    """
    gap = figures.get("gap")
    share_of_cost = share(figures["savings"], figures["current_cost"])
    provider = header.get("DisplayName") or "service provider"
    lines = [
        "Carrier plan optimization results",
        "",
        f"Service provider:  {provider} ({header['ServiceProviderId']})",
        f"Billing period:    {_date(header['BillingPeriodStartDate'])[:10]} to "
        f"{_date(header['BillingPeriodEndDate'])[:10]}",
        f"Session:           {header['SessionGuid']} (id {header['OptimizationSessionId']}), "
        f"instance {header['Id']}",
        f"Run (UTC):         {_date(header['RunStartTime'])} to {_date(header['RunEndTime'])}",
        f"SIMs:              {figures['devices']:,} in {figures['comm_plans']} communication plans",
        f"Cost before:       {money(figures['current_cost'])}",
        f"Cost after:        {money(figures['optimized_cost'])}",
        f"Savings:           {money(figures['savings'])}"
        + ("" if share_of_cost is None else f" ({share_of_cost:.1%})"),
        f"Lower bound:       {money(figures.get('lower_bound'))}",
        "Gap to bound:      "
        + ("n/a" if gap is None else f"{gap:.4%} (the cost is at most this far above the optimum)"),
        f"Plan changes:      {figures['changes']:,}",
        "",
        "By communication plan (SIMs, cost before -> after, savings):",
    ]
    width = max((len(st.comm_plan) for st in statistics), default=10)
    for st in statistics:
        lines.append(
            f"  {st.comm_plan:<{width}}  {st.sims:>7,}  {money(st.cost_before):>12} -> "
            f"{money(st.cost_after):>12}  {money(st.savings):>12}"
        )
    lines.append("")
    if csv_rows is None:
        lines.append(
            f"Attached: {XLSX_NAME} (statistics and device assignments) and {CHART_NAME} (savings chart)."
        )
    else:
        lines.append(
            f"Attached: {XLSX_NAME} (summary and statistics), {CSV_NAME} (all {csv_rows:,} device "
            f"assignments: too many for one sheet) and {CHART_NAME} (savings chart)."
        )
    return "\n".join(lines)

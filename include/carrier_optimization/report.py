"""The result report of an optimization instance: xlsx workbook, savings chart and e-mail summary.

The report reads only the AMOP tables the run wrote: the winners' rows of ``OptimizationDeviceResult``
joined with the instance's device snapshot (``OptimizationDevice``) and the carrier rate plans, plus the
per comm group figures of ``OptimizationCommGroupSummary``. The cost before optimization is recomputed
with the one cost model (`cost.evaluate` on each SIM's current plan; SIMs without a known plan of their
group priced on the legacy base plan, as ``pipeline.current_cost`` does), so every figure of the report
follows DESIGN §4.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, insert, select
from sqlalchemy.engine import Engine

from include.carrier_optimization import schema as s
from include.carrier_optimization.cost import evaluate
from include.carrier_optimization.engines import legacy
from include.carrier_optimization.engines.result import proven_from_stored
from include.carrier_optimization.pipeline import load_group, savings_summary
from include.carrier_optimization.repository import utcnow

LOG = logging.getLogger(__name__)

XLSX_NAME = "device_assignments.xlsx"
CHART_NAME = "savings_chart.png"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

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
        total row) and ``Device Assignments`` (one row per SIM).
    chart_png : bytes
        Savings chart: cost by rate plan before and after, totals with the lower bound.
    summary_text : str
        Plain-text e-mail body with the figures.
    figures : dict
        ``pipeline.savings_summary`` of the winners (``devices, current_cost, optimized_cost, savings,
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

    @property
    def attachments(self) -> tuple[tuple[str, bytes], ...]:
        """``(name, bytes)`` pairs for an `notify.Email`."""
        return ((self.xlsx_name, self.xlsx), (self.chart_name, self.chart_png))


# -- reading ----------------------------------------------------------------------------------------


def _build_report_iv(instance_id: Any) -> int:
    try:
        value = int(instance_id)
    except (TypeError, ValueError):
        value = 0
    if value <= 0 or str(value) != str(instance_id).strip():
        raise ValueError(f"`instance_id` must be a positive integer; got {instance_id!r}")
    return value


def _header(engine: Engine, instance_id: int) -> dict[str, Any]:
    ins, ses, sp = s.optimization_instance, s.optimization_session, s.service_provider
    with engine.connect() as conn:
        row = conn.execute(
            select(
                ins.c.Id,
                ins.c.TenantId,
                ins.c.ServiceProviderId,
                ins.c.BillingPeriodStartDate,
                ins.c.BillingPeriodEndDate,
                ins.c.RunStartTime,
                ins.c.RunEndTime,
                ins.c.OptimizationSessionId,
                ses.c.SessionGuid,
                sp.c.DisplayName,
            )
            .join(ses, ses.c.Id == ins.c.OptimizationSessionId)
            .outerjoin(sp, sp.c.id == ins.c.ServiceProviderId)
            .where(ins.c.Id == instance_id)
        ).first()
    if row is None:
        raise ReportError(f"optimization instance {instance_id} does not exist")
    return dict(row._mapping)


def _groups(engine: Engine, instance_id: int) -> list[dict[str, Any]]:
    summary = s.comm_group_summary
    with engine.connect() as conn:
        rows = conn.execute(
            select(summary).where(summary.c.InstanceId == instance_id).order_by(summary.c.CommGroupId)
        ).all()
    if not rows:
        raise ReportError(f"instance {instance_id} has no comm groups; nothing to report")
    pending = [int(r.CommGroupId) for r in rows if r.WinnerQueueId is None]
    if pending:
        raise ReportError(
            f"instance {instance_id}: comm groups {', '.join(map(str, pending))} have no winner yet; "
            "run the winners step first"
        )
    return [
        {
            "comm_group_id": int(r.CommGroupId),
            "winner_queue_id": int(r.WinnerQueueId),
            "winner_kind": r.WinnerKind,
            "cost": float(r.WinnerCost),
            "current_cost": None if r.CurrentCost is None else float(r.CurrentCost),
            "lower_bound": None if r.LowerBound is None else float(r.LowerBound),
            "proven_optimal": proven_from_stored(
                float(r.WinnerCost), None if r.LowerBound is None else float(r.LowerBound)
            ),
            "devices": int(r.DeviceCount),
            "changes": int(r.PlanChanges or 0),
        }
        for r in rows
    ]


def _assignments(engine: Engine, instance_id: int, winner_ids: list[int]) -> list[dict[str, Any]]:
    """One dict per SIM: snapshot fields, current and recommended plan codes, cost (winner rows)."""
    r, d, plan = s.device_result, s.optimization_device, s.carrier_rate_plan
    current = plan.alias("current_plan")
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                d.c.AmopDeviceId,
                d.c.ICCID,
                d.c.MSISDN,
                d.c.CommunicationPlan,
                d.c.OptimizationCommGroupId,
                d.c.RatePlanCode,
                r.c.UsageMB,
                r.c.ChargeAmt,
                r.c.SmsChargeAmount,
                r.c.AssignedCarrierRatePlanId,
                plan.c.RatePlanCode.label("recommended"),
                current.c.RatePlanCode.label("current"),
            )
            .join(d, and_(d.c.AmopDeviceId == r.c.AmopDeviceId, d.c.InstanceId == instance_id))
            .outerjoin(plan, plan.c.Id == r.c.AssignedCarrierRatePlanId)
            .outerjoin(current, current.c.Id == d.c.CurrentCarrierRatePlanId)
            .where(r.c.QueueId.in_(winner_ids))
            .order_by(d.c.CommunicationPlan, d.c.ICCID)
        ).all()
    return [
        {
            "device_id": int(row.AmopDeviceId),
            "iccid": row.ICCID,
            "msisdn": row.MSISDN,
            "comm_plan": row.CommunicationPlan or "",
            "comm_group_id": int(row.OptimizationCommGroupId),
            "usage_mb": float(row.UsageMB),
            "current": row.current or row.RatePlanCode or "",
            "recommended": row.recommended or str(row.AssignedCarrierRatePlanId),
            "cost": float(row.ChargeAmt) + float(row.SmsChargeAmount),
        }
        for row in rows
    ]


def _costs_before(engine: Engine, group_ids: list[int]) -> tuple[dict[int, float], dict[str, float]]:
    """Per SIM and per plan code: the invoice as the SIMs are now (`cost.evaluate`)."""
    per_device: dict[int, float] = {}
    per_plan: dict[str, float] = defaultdict(float)
    for group_id in group_ids:
        group = load_group(engine, group_id)
        if group.n_devices == 0:
            continue
        now = np.where(group.current_plan >= 0, group.current_plan, legacy.base_assignment(group))
        breakdown = evaluate(group, now)
        device_cost = breakdown.fixed + breakdown.overage + breakdown.sms
        per_device.update(zip((int(i) for i in group.device_ids), device_cost.tolist(), strict=True))
        for line in breakdown.plans:
            if line.devices:
                per_plan[line.code] += line.total
    return per_device, dict(per_plan)


def _statistics(assignments: list[dict[str, Any]], before: dict[int, float]) -> tuple[CommPlanStats, ...]:
    by_plan: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in assignments:
        by_plan[row["comm_plan"]].append(row)
    stats = []
    for name in sorted(by_plan):
        rows = by_plan[name]
        plans: dict[str, int] = defaultdict(int)
        for row in rows:
            plans[row["recommended"]] += 1
        stats.append(
            CommPlanStats(
                comm_plan=name,
                sims=len(rows),
                plans=dict(sorted(plans.items(), key=lambda item: (-item[1], item[0]))),
                usage_mb=sum(row["usage_mb"] for row in rows),
                cost_before=sum(before.get(row["device_id"], 0.0) for row in rows),
                cost_after=sum(row["cost"] for row in rows),
            )
        )
    return tuple(stats)


def build_report(engine: Engine, instance_id: int, *, now: dt.datetime | None = None) -> Report:
    """Build the result report of a finished instance from the AMOP tables.

    Per communication plan ``c``: SIMs ``n_c``, cost after ``Σ_{s∈c} (ChargeAmt_s + SmsChargeAmount_s)``
    over the winners' device rows, cost before ``Σ_{s∈c} cost_s(current plan)`` by the cost model, and
    savings = before − after. Instance figures (cost, lower bound, gap) are `pipeline.savings_summary`
    of the comm group summaries, the same numbers the winners step returned.

    Parameters
    ----------
    engine : Engine
        The AMOP database.
    instance_id : int
        An instance whose winners were selected (``pipeline.select_winners``).
    now : datetime, optional
        Time stamped on the report (default: now, UTC).

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
    header = _header(engine, instance_id)
    groups = _groups(engine, instance_id)
    assignments = _assignments(engine, instance_id, [g["winner_queue_id"] for g in groups])
    before_device, before_plan = _costs_before(engine, [g["comm_group_id"] for g in groups])
    statistics = _statistics(assignments, before_device)
    figures = savings_summary(instance_id, groups)
    figures.pop("groups")
    figures["comm_plans"] = len(statistics)
    after_plan: dict[str, float] = defaultdict(float)
    for row in assignments:
        after_plan[row["recommended"]] += row["cost"]
    stamp = now or utcnow()
    report = Report(
        instance_id=instance_id,
        xlsx=render_workbook(header, figures, statistics, assignments, generated=stamp),
        chart_png=render_chart(before_plan, dict(after_plan), figures),
        summary_text=format_report_summary(header, figures, statistics),
        figures=figures,
        statistics=statistics,
    )
    LOG.info(
        "Instance %s report: %d SIMs in %d comm plans, xlsx %d bytes, chart %d bytes",
        instance_id,
        len(assignments),
        len(statistics),
        len(report.xlsx),
        len(report.chart_png),
    )
    return report


# -- rendering --------------------------------------------------------------------------------------


def _date(value: Any) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, dt.datetime) else str(value)


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def format_report_summary(
    header: dict[str, Any], figures: dict[str, Any], statistics: tuple[CommPlanStats, ...]
) -> str:
    """Plain-text e-mail body: who and when, the figures, and one line per communication plan."""
    gap = figures.get("gap")
    share = _share(figures["savings"], figures["current_cost"])
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
        f"Cost before:       {_money(figures['current_cost'])}",
        f"Cost after:        {_money(figures['optimized_cost'])}",
        f"Savings:           {_money(figures['savings'])}" + ("" if share is None else f" ({share:.1%})"),
        f"Lower bound:       {_money(figures.get('lower_bound'))}",
        "Gap to bound:      "
        + ("n/a" if gap is None else f"{gap:.4%} (the cost is at most this far above the optimum)"),
        f"Plan changes:      {figures['changes']:,}",
        "",
        "By communication plan (SIMs, cost before -> after, savings):",
    ]
    width = max((len(st.comm_plan) for st in statistics), default=10)
    for st in statistics:
        lines.append(
            f"  {st.comm_plan:<{width}}  {st.sims:>7,}  {_money(st.cost_before):>12} -> "
            f"{_money(st.cost_after):>12}  {_money(st.savings):>12}"
        )
    lines += [
        "",
        f"Attached: {XLSX_NAME} (statistics and device assignments) and {CHART_NAME} (savings chart).",
    ]
    return "\n".join(lines)


def render_workbook(
    header: dict[str, Any],
    figures: dict[str, Any],
    statistics: tuple[CommPlanStats, ...],
    assignments: list[dict[str, Any]],
    *,
    generated: dt.datetime,
) -> bytes:
    """The xlsx: ``Summary``, ``Statistics`` (rows per comm plan + total) and ``Device Assignments``.

    Written in openpyxl's write-only mode, so a 500,000-SIM fleet streams without holding cell objects.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDE5F0")

    def cell(sheet, value, *, fmt=None, strong=False):
        c = WriteOnlyCell(sheet, value=value)
        if fmt:
            c.number_format = fmt
        if strong:
            c.font = bold
            c.fill = fill
        return c

    def headers(sheet, names, widths):
        for i, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(i)].width = width
        sheet.freeze_panes = "A2"
        sheet.append([cell(sheet, name, strong=True) for name in names])

    summary = book.create_sheet(SUMMARY_SHEET)
    summary.column_dimensions["A"].width = 22
    summary.column_dimensions["B"].width = 44
    share = _share(figures["savings"], figures["current_cost"])
    for label, value, fmt in (
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
        ("Savings %", share, _PERCENT),
        ("Lower bound", figures.get("lower_bound"), _MONEY),
        ("Gap to lower bound", figures.get("gap"), "0.0000%"),
        ("Plan changes", figures["changes"], "#,##0"),
        ("Generated (UTC)", generated, "yyyy-mm-dd hh:mm"),
    ):
        summary.append([cell(summary, label, strong=True), cell(summary, value, fmt=fmt)])

    stats = book.create_sheet(STATISTICS_SHEET)
    headers(stats, STATISTICS_HEADERS, (28, 9, 11, 48, 14, 14, 14, 14, 10))
    formats = (None, "#,##0", "#,##0", None, _USAGE, _MONEY, _MONEY, _MONEY, _PERCENT)
    for st in statistics:
        values = (
            st.comm_plan,
            st.sims,
            len(st.plans),
            ", ".join(f"{code} ({n})" for code, n in st.plans.items()),
            round(st.usage_mb, 3),
            round(st.cost_before, 4),
            round(st.cost_after, 4),
            round(st.savings, 4),
            _share(st.savings, st.cost_before),
        )
        stats.append([cell(stats, v, fmt=f) for v, f in zip(values, formats, strict=True)])
    before = sum(st.cost_before for st in statistics)
    after = sum(st.cost_after for st in statistics)
    used = {code for st in statistics for code in st.plans}
    totals = (
        TOTAL_LABEL,
        sum(st.sims for st in statistics),
        len(used),
        "",
        round(sum(st.usage_mb for st in statistics), 3),
        round(before, 4),
        round(after, 4),
        round(before - after, 4),
        _share(before - after, before),
    )
    stats.append([cell(stats, v, fmt=f, strong=True) for v, f in zip(totals, formats, strict=True)])

    devices = book.create_sheet(ASSIGNMENTS_SHEET)
    headers(devices, ASSIGNMENT_HEADERS, (24, 16, 28, 12, 24, 24, 12))
    for row in assignments:
        devices.append(
            [
                row["iccid"],
                row["msisdn"],
                row["comm_plan"],
                cell(devices, round(row["usage_mb"], 3), fmt=_USAGE),
                row["current"],
                row["recommended"],
                cell(devices, round(row["cost"], 4), fmt=_MONEY),
            ]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


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
    share = _share(figures["savings"], current)
    fig.suptitle(
        f"Savings {_money(figures['savings'])}"
        + ("" if share is None else f" ({share:.1%})")
        + f" on {figures['devices']:,} SIMs",
        fontweight="bold",
    )
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


# -- storing ----------------------------------------------------------------------------------------


def store_result_file(
    engine: Engine, instance_id: int, xlsx: bytes, *, now: dt.datetime | None = None
) -> int:
    """Store the instance's xlsx in ``OptimizationInstanceResultFile``, replacing its previous row.

    Delete and insert run in one transaction, so a retried report leaves exactly one row.
    Returns the id of the new row.
    """
    if not xlsx:
        raise ValueError("`xlsx` must be the workbook's bytes; got an empty value")
    files = s.instance_result_file
    with engine.begin() as conn:
        conn.execute(delete(files).where(files.c.InstanceId == instance_id))
        file_id = conn.execute(
            insert(files).values(
                InstanceId=instance_id,
                AssignmentXlsxBytes=xlsx,
                IsDeleted=False,
                CreatedBy="System",
                CreatedDate=now or utcnow(),
            )
        ).inserted_primary_key[0]
    LOG.info("Instance %s: result file %s stored (%d bytes)", instance_id, file_id, len(xlsx))
    return int(file_id)


def latest_result_file(engine: Engine, instance_id: int) -> bytes | None:
    """The instance's stored xlsx (newest row not deleted), or None."""
    files = s.instance_result_file
    with engine.connect() as conn:
        return conn.execute(
            select(files.c.AssignmentXlsxBytes)
            .where(files.c.InstanceId == instance_id, files.c.IsDeleted.is_(False))
            .order_by(files.c.Id.desc())
            .limit(1)
        ).scalar()

"""The optimization sessions page of the UI plugin: its rows and their HTML (no Airflow, no web framework).

One row per instance of a tenant's sessions (a session still syncing, without an instance yet, has one
row of its own): status, progress, SIMs, cost before and after, savings, lower bound, gap, and a link to
the stored result workbook. The rows are read by `amop.sessions` and `amop.summaries`; money and gap
follow `summary.savings_summary`, the figures the winners step and the report use.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import Engine

from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.amop.sessions import newest_sessions, reported_instances, session_instances
from include.carrier_optimization.amop.summaries import comm_group_summaries
from include.carrier_optimization.reporting.summary import group_figures, money, savings_summary

DEFAULT_LIMIT = 50
STATUS_LABELS = {
    OptimizationStatus.NotStarted: ("Not started", "pending"),
    OptimizationStatus.CommGroupSetup: ("Setting up", "running"),
    OptimizationStatus.RunningPermutations: ("Optimizing", "running"),
    OptimizationStatus.CleaningUp: ("Selecting winners", "running"),
    OptimizationStatus.CompleteWithSuccess: ("Complete", "ok"),
    OptimizationStatus.CompleteWithErrors: ("Failed", "error"),
}
NO_INSTANCE_LABEL = ("Waiting (sync)", "pending")
TABLE_HEADERS = (
    "Session",
    "Started (UTC)",
    "Service provider",
    "Status",
    "Progress",
    "SIMs",
    "Cost before",
    "Cost after",
    "Savings",
    "Lower bound",
    "Gap",
    "Report",
)
REPORT_LINK = "reports/{instance_id}.xlsx"
#: A cell without a value.
DASH = "—"


@dataclass(frozen=True)
class SessionRow:
    """One row of the page: a session and (when started) one of its instances, with its figures."""

    session_id: int
    session_guid: str
    tenant_id: int
    created: dt.datetime | None
    progress: int
    service_provider_id: int | None
    service_provider: str | None
    instance_id: int | None = None
    status: str = NO_INSTANCE_LABEL[0]
    status_class: str = NO_INSTANCE_LABEL[1]
    sims: int | None = None
    cost_before: float | None = None
    cost_after: float | None = None
    savings: float | None = None
    lower_bound: float | None = None
    gap: float | None = None
    proven_groups: int | None = None  # comm groups whose result is proven optimal (bound = cost)
    groups: int | None = None
    has_report: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO strings)."""
        data = asdict(self)
        data["created"] = self.created.isoformat() if self.created else None
        return data


def _tenants_iv(tenant_id: Any, limit: Any) -> tuple[int, int]:
    try:
        tenant, count = int(tenant_id), int(limit)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`tenant_id` and `limit` must be integers; got {tenant_id!r}, {limit!r}") from error
    if count <= 0:
        raise ValueError(f"`limit` must be > 0; got {limit!r}")
    return tenant, count


def readable_tenants(tenant_dags: Mapping[int, str], readable_dag_ids: Iterable[str]) -> set[int]:
    """Tenants whose optimization DAG is among ``readable_dag_ids`` (a tenant without a DAG: none)."""
    readable = set(readable_dag_ids)
    return {tenant for tenant, dag_id in tenant_dags.items() if dag_id in readable}


def list_sessions(engine: Engine, tenant_id: int, *, limit: int = DEFAULT_LIMIT) -> list[SessionRow]:
    """The tenant's newest sessions (at most ``limit``) with their instances' figures, newest first.

    Parameters
    ----------
    engine : Engine
        The AMOP database.
    tenant_id : int
        The tenant.
    limit : int, optional
        Most sessions listed (default 50).

    Returns
    -------
    list of SessionRow
        One row per instance (a session without an instance: one row). Cost after, savings and gap are
        ``None`` until every comm group of the instance has a winner; the lower bound is ``None`` unless
        every comm group has one (the legacy engine alone gives none).

    Raises
    ------
    ValueError
        When ``tenant_id`` or ``limit`` is not an integer, or ``limit`` is not positive.
    """
    tenant_id, limit = _tenants_iv(tenant_id, limit)
    sessions = newest_sessions(engine, tenant_id, limit)
    instances = session_instances(engine, [int(r.Id) for r in sessions])
    instance_ids = [int(r.Id) for r in instances]
    groups = comm_group_summaries(engine, instance_ids)
    reported = reported_instances(engine, instance_ids)
    by_session: dict[int, list[Any]] = defaultdict(list)
    for row in instances:
        by_session[int(row.OptimizationSessionId)].append(row)
    rows = []
    for r in sessions:
        base = {
            "session_id": int(r.Id),
            "session_guid": r.SessionGuid,
            "tenant_id": int(r.TenantId),
            "created": r.CreatedDate,
            "progress": int(r.Progress or 0),
            "service_provider_id": r.ServiceProviderId,
            "service_provider": r.DisplayName,
        }
        if not by_session[int(r.Id)]:
            rows.append(SessionRow(**base, error=r.ErrorMessage))
            continue
        for instance in by_session[int(r.Id)]:
            figures = [group_figures(g) for g in groups.get(int(instance.Id), [])]
            rows.append(_instance_row(base, instance, figures, int(instance.Id) in reported))
    return rows


def _instance_row(
    base: dict[str, Any], instance: Any, groups: list[dict[str, Any]], has_report: bool
) -> SessionRow:
    """The row of one instance; ``groups``: `summary.group_figures` of its comm groups."""
    label, css = STATUS_LABELS.get(int(instance.RunStatusId), (str(instance.RunStatusId), "pending"))
    before = [g["current_cost"] for g in groups]
    bounds = [g["lower_bound"] for g in groups]
    figures: dict[str, Any] = {
        "current_cost": round(sum(before), 2) if groups and None not in before else None,
        "optimized_cost": None,
        "savings": None,
        "lower_bound": round(sum(bounds), 2) if groups and None not in bounds else None,
        "gap": None,
    }
    if groups and all(g["winner_queue_id"] is not None for g in groups):
        figures = savings_summary(int(instance.Id), groups)
    return SessionRow(
        **{
            **base,
            "service_provider_id": instance.ServiceProviderId or base["service_provider_id"],
            "service_provider": instance.DisplayName or base["service_provider"],
        },
        instance_id=int(instance.Id),
        status=label,
        status_class=css,
        sims=int(instance.DeviceCount or 0),
        cost_before=figures["current_cost"],
        cost_after=figures["optimized_cost"],
        savings=figures["savings"],
        lower_bound=figures["lower_bound"],
        gap=figures["gap"],
        proven_groups=sum(g["proven_optimal"] for g in groups),
        groups=len(groups),
        has_report=has_report,
        error=instance.ErrorMessage,
    )


# -- HTML -------------------------------------------------------------------------------------------

_CSS = """
body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px;
       color: #1f2933; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.lead { color: #52606d; margin: 0 0 16px; }
form { margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 6px 8px; border-bottom: 1px solid #e4e7eb; text-align: left; white-space: nowrap; }
th { background: #f5f7fa; font-weight: 600; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.savings { color: #0b7a3e; font-weight: 600; }
.badge { padding: 2px 8px; border-radius: 10px; font-size: 12px; }
.badge.ok { background: #d8f3e3; color: #0b7a3e; } .badge.error { background: #fde2e1; color: #b42318; }
.badge.running { background: #dbeafe; color: #1d4ed8; }
.badge.pending { background: #eef0f3; color: #52606d; }
.bar { display: inline-block; width: 56px; height: 8px; background: #e4e7eb; border-radius: 4px; }
.bar span { display: block; height: 8px; background: #1f77b4; border-radius: 4px; }
.guid { color: #7b8794; font-size: 12px; }
.error { color: #b42318; font-size: 12px; white-space: normal; }
p.note { color: #7b8794; font-size: 12px; margin-top: 16px; }
div.wrap { overflow-x: auto; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(text: str, *, num: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", css) if c)
    return f'<td class="{classes}">{text}</td>' if classes else f"<td>{text}</td>"


def _row_html(row: SessionRow, report_link: str) -> str:
    share = (
        ""
        if row.savings is None or not row.cost_before
        else f" <small>({row.savings / row.cost_before:.1%})</small>"
    )
    error = f'<div class="error">{_e(row.error)}</div>' if row.error else ""
    report = (
        f'<a href="{_e(report_link.format(instance_id=row.instance_id))}" download>xlsx</a>'
        if row.has_report and row.instance_id is not None
        else DASH
    )
    progress = max(0, min(100, row.progress))
    guid = row.session_guid[:8] + "…" if len(row.session_guid) > 8 else row.session_guid
    cells = [
        _cell(f'#{row.session_id} <span class="guid" title="{_e(row.session_guid)}">{_e(guid)}</span>'),
        _cell(_e(row.created.strftime("%Y-%m-%d %H:%M") if row.created else "")),
        _cell(_e(row.service_provider or row.service_provider_id or "")),
        _cell(f'<span class="badge {_e(row.status_class)}">{_e(row.status)}</span>{error}'),
        _cell(f'<span class="bar"><span style="width:{progress}%"></span></span> {progress}%'),
        _cell(DASH if row.sims is None else f"{row.sims:,}", num=True),
        _cell(money(row.cost_before, DASH), num=True),
        _cell(money(row.cost_after, DASH), num=True),
        _cell(money(row.savings, DASH) + share, num=True, css="savings" if row.savings else ""),
        _cell(money(row.lower_bound, DASH), num=True),
        _cell(_gap_text(row), num=True),
        _cell(report),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _gap_text(row: SessionRow) -> str:
    """The gap cell: the gap, then "proven optimal" when every comm group is, else how many are."""
    if row.gap is None:
        return DASH
    if not row.groups:
        return f"{row.gap:.3%}"
    if row.proven_groups == row.groups:
        return f'{row.gap:.3%} <span title="every comm group is proven optimal">proven optimal</span>'
    return f"{row.gap:.3%} ({row.proven_groups}/{row.groups} groups proven)"


def render_sessions_page(
    rows: Sequence[SessionRow],
    *,
    tenant_id: int | None,
    tenants: Sequence[tuple[int, str]] = (),
    report_link: str = REPORT_LINK,
    title: str = "Carrier optimization sessions",
) -> str:
    """The whole HTML page: tenant selector, sessions table, definitions. Every value is escaped.

    Links are relative (``report_link``, default ``reports/{instance_id}.xlsx``), so the page works
    under any URL prefix, as long as it is served at a path ending in ``/``.
    """
    options = "".join(
        f'<option value="{tid}"{" selected" if tid == tenant_id else ""}>{_e(name)} ({tid})</option>'
        for tid, name in tenants
    )
    selector = (
        f'<form method="get"><label>Tenant <select name="tenant_id" onchange="this.form.submit()">{options}'
        "</select></label> <noscript><button>Show</button></noscript></form>"
        if tenants
        else ""
    )
    head = "".join(f'<th class="num">{h}</th>' if _is_num(h) else f"<th>{h}</th>" for h in TABLE_HEADERS)
    body = "".join(_row_html(row, report_link) for row in rows) or (
        f'<tr><td colspan="{len(TABLE_HEADERS)}">No optimization sessions for this tenant yet.</td></tr>'
    )
    tenant_name = dict(tenants).get(tenant_id, f"tenant {tenant_id}") if tenant_id is not None else DASH
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="lead">{_e(tenant_name)}: the newest {len(rows)} optimization runs.</p>'
        f'{selector}<div class="wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
        '<p class="note">Cost before: the invoice with every SIM on its current plan. Lower bound: no '
        "assignment can cost less. Gap = (cost after − lower bound) / lower bound: the result is at most "
        "this far above the optimum.</p></body></html>"
    )


def _is_num(header: str) -> bool:
    return header in {"SIMs", "Cost before", "Cost after", "Savings", "Lower bound", "Gap"}

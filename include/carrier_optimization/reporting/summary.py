"""The savings summary of an instance: totals of its comm groups, and money as people read it.

One reading of a comm group summary row (`group_figures`, including whether the group is proven optimal)
serves the winners step's totals, the report, the sessions view, the CLI and the demo (docs/architecture.md).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.engine import Engine

from include.carrier_optimization.amop.summaries import comm_group_summaries, newest_finished_instance
from include.carrier_optimization.core.engines.result import proven_from_stored


def savings_summary(instance_id: int, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of the run: current cost, optimized cost, savings, lower bound and gap."""
    cost = sum(g["cost"] for g in groups)
    current = sum(g["current_cost"] or 0.0 for g in groups)
    bounds = [g["lower_bound"] for g in groups]
    lower = sum(bounds) if groups and all(b is not None for b in bounds) else None
    return {
        "instance_id": instance_id,
        "groups": groups,
        "devices": sum(g["devices"] for g in groups),
        "current_cost": round(current, 2),
        "optimized_cost": round(cost, 2),
        "savings": round(current - cost, 2),
        "lower_bound": None if lower is None else round(lower, 2),
        "gap": None if lower is None or lower <= 0 else round((cost - lower) / lower, 6),
        "changes": sum(g["changes"] for g in groups),
    }


def optional_float(value: Any) -> float | None:
    """``value`` as a float, ``None`` kept (nullable money columns)."""
    return None if value is None else float(value)


def group_figures(row: Any) -> dict[str, Any]:
    """The figures of one ``OptimizationCommGroupSummary`` row (`amop.summaries.comm_group_summaries`).

    ``winner_queue_id`` is None until the winners step chose one, and ``cost`` (the winner's) is then 0;
    ``proven_optimal``: the stored bound reaches the winner's cost (`proven_from_stored`).
    """
    winner_cost, bound = optional_float(row.WinnerCost), optional_float(row.LowerBound)
    return {
        "comm_group_id": int(row.CommGroupId),
        "winner_queue_id": None if row.WinnerQueueId is None else int(row.WinnerQueueId),
        "winner_kind": row.WinnerKind,
        "cost": winner_cost or 0.0,
        "current_cost": optional_float(row.CurrentCost),
        "lower_bound": bound,
        "proven_optimal": proven_from_stored(winner_cost, bound),
        "devices": int(row.DeviceCount),
        "changes": int(row.PlanChanges or 0),
    }


def instance_groups(engine: Engine, instance_id: int) -> list[dict[str, Any]]:
    """`group_figures` of each comm group of the instance, by comm group id."""
    return [group_figures(row) for row in comm_group_summaries(engine, [instance_id]).get(instance_id, [])]


def summary_of_instance(engine: Engine, *, tenant_id: int, instance_id: int | None = None) -> dict[str, Any]:
    """The savings summary of an instance (default: the tenant's newest finished one) from its tables."""
    if instance_id is None:
        instance_id = newest_finished_instance(engine, tenant_id)
    return savings_summary(int(instance_id), instance_groups(engine, int(instance_id)))


def money(value: float | None, missing: str = "n/a") -> str:
    """Dollars with thousands separators and cents (``$1,234.50``); ``missing`` for None."""
    return missing if value is None else f"${value:,.2f}"


def format_summary(summary: dict[str, Any]) -> str:
    """Plain-text savings summary: current cost, optimized cost, savings, lower bound, gap."""
    gap = summary.get("gap")
    lines = [
        f"Instance:        {summary.get('instance_id')}",
        f"SIMs:            {summary.get('devices', 0):,}",
        f"Current cost:    {money(summary.get('current_cost', 0))}",
        f"Optimized cost:  {money(summary.get('optimized_cost', 0))}",
        f"Savings:         {money(summary.get('savings', 0))}",
        f"Lower bound:     {money(summary.get('lower_bound'))}",
        f"Gap to bound:    {'n/a' if gap is None or not math.isfinite(gap) else f'{gap:.4%}'}",
        f"Plan changes:    {summary.get('changes', 0):,}",
    ]
    return "\n".join(lines)

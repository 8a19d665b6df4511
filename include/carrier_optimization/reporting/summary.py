"""The savings summary of an instance: totals of its comm groups (winners step, report, CLI, demo)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.schema import OptimizationStatus


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


def summary_of_instance(engine: Engine, *, tenant_id: int, instance_id: int | None = None) -> dict[str, Any]:
    """The savings summary of an instance (default: the tenant's newest finished one) from its tables."""
    ins, summary = s.optimization_instance, s.comm_group_summary
    with engine.connect() as conn:
        if instance_id is None:
            instance_id = conn.execute(
                select(ins.c.Id)
                .where(
                    ins.c.TenantId == tenant_id,
                    ins.c.RunStatusId == int(OptimizationStatus.CompleteWithSuccess),
                )
                .order_by(ins.c.Id.desc())
                .limit(1)
            ).scalar_one()
        rows = conn.execute(
            select(summary).where(summary.c.InstanceId == instance_id).order_by(summary.c.CommGroupId)
        ).all()
    groups = [
        {
            "comm_group_id": int(r.CommGroupId),
            "winner_queue_id": r.WinnerQueueId,
            "winner_kind": r.WinnerKind,
            "cost": optional_float(r.WinnerCost) or 0.0,
            "current_cost": optional_float(r.CurrentCost),
            "lower_bound": optional_float(r.LowerBound),
            "devices": int(r.DeviceCount),
            "changes": int(r.PlanChanges or 0),
        }
        for r in rows
    ]
    return savings_summary(int(instance_id), groups)

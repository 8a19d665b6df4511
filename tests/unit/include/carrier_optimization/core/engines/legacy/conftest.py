"""Plans and a comm group builder shared by the legacy engine tests (imported by the test modules)."""

from __future__ import annotations

from include.carrier_optimization.core.domain import GroupProblem, RatePlan

SMALL = RatePlan(1, "S", 10.0, 100.0, 1.0, 10.0, pooled=False)  # 0.1 $/MB
MEDIUM = RatePlan(2, "M", 20.0, 500.0, 2.0, 10.0, pooled=True)  # 0.2 $/MB
LARGE = RatePlan(3, "L", 15.0, 1000.0, 1.0, 1.0, pooled=False)  # cheaper than M


def legacy_group(usage, plans=(SMALL, MEDIUM, LARGE), comm=None, current=None) -> GroupProblem:
    """A comm group of two comm plans with these usages (no SMS, no proration)."""
    n = len(usage)
    return GroupProblem(
        key=",".join(str(p.plan_id) for p in plans),
        comm_plans=("cp0", "cp1"),
        plans=tuple(plans),
        device_ids=[f"d{i}" for i in range(n)],
        usage_mb=usage,
        sms=[0] * n,
        proration=[1.0] * n,
        comm_plan_index=comm if comm is not None else [0] * n,
        current_plan=current if current is not None else [-1] * n,
    )

"""The one query of the comm group summaries (savings summary, report, sessions view).

``OptimizationCommGroupSummary`` holds per comm group the figures of an instance: SIMs, cost before,
lower bound, winner and its cost. `reporting.summary.group_figures` turns a row into the figures of one
comm group (docs/architecture.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.schema import OptimizationStatus


def comm_group_summaries(engine: Engine, instance_ids: Iterable[int]) -> dict[int, list[Any]]:
    """Instance id → its summary rows ordered by comm group id; an instance without rows is absent."""
    ids = [int(i) for i in instance_ids]
    if not ids:
        return {}
    summary = s.comm_group_summary
    with engine.connect() as conn:
        rows = conn.execute(
            select(summary)
            .where(summary.c.InstanceId.in_(ids))
            .order_by(summary.c.InstanceId, summary.c.CommGroupId)
        ).all()
    by_instance: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_instance[int(row.InstanceId)].append(row)
    return dict(by_instance)


def newest_finished_instance(engine: Engine, tenant_id: int) -> int:
    """The tenant's newest instance that ended ``CompleteWithSuccess`` (`NoResultFound` when none)."""
    ins = s.optimization_instance
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(ins.c.Id)
                .where(
                    ins.c.TenantId == tenant_id,
                    ins.c.RunStatusId == int(OptimizationStatus.CompleteWithSuccess),
                )
                .order_by(ins.c.Id.desc())
                .limit(1)
            ).scalar_one()
        )

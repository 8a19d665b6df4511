"""The device result rows of queues: write a queue's result, read a group's best, keep the winner's.

Each function runs in the caller's transaction (a ``Connection``); see docs/architecture.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Connection, Row

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.bulk_rows import RESULT_COLUMNS, result_rows
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.storage import bulk_insert
from include.carrier_optimization.core.cost import CostBreakdown
from include.carrier_optimization.core.domain import GroupProblem


def lowest_cost(conn: Connection, comm_group_id: int) -> Any:
    """The lowest ``TotalCost`` recorded among the group's queues, or None."""
    q = s.optimization_queue
    return conn.execute(
        select(func.min(q.c.TotalCost)).where(
            q.c.CommPlanGroupId == comm_group_id, q.c.TotalCost.is_not(None)
        )
    ).scalar()


def write_result(
    conn: Connection,
    queue_id: int,
    group: GroupProblem,
    assignment: Any,
    breakdown: CostBreakdown,
    *,
    period_id: int | None,
) -> None:
    """Replace the queue's staged device result rows and store its totals."""
    staging = s.device_result_staging
    conn.execute(delete(staging).where(staging.c.QueueId == queue_id))
    bulk_insert(
        conn,
        staging,
        result_rows(queue_id, group, assignment, breakdown, period_id=period_id, now=utcnow()),
        columns=RESULT_COLUMNS,
    )
    write_totals(conn, queue_id, breakdown)


def write_totals(conn: Connection, queue_id: int, breakdown: CostBreakdown) -> None:
    """Store a queue's totals (alone: the base queue's rows are written only if it wins)."""
    conn.execute(
        update(s.optimization_queue)
        .where(s.optimization_queue.c.Id == queue_id)
        .values(
            TotalCost=round(breakdown.total, 4),
            TotalBaseRateAmt=0.0,
            TotalRateChargeAmt=round(breakdown.total_fixed, 4),
            TotalOverageChargeAmt=round(breakdown.total_overage, 4),
        )
    )


def has_rows(conn: Connection, queue_id: int) -> bool:
    """Whether the queue has staged device result rows."""
    staging = s.device_result_staging
    found = conn.execute(select(staging.c.QueueId).where(staging.c.QueueId == queue_id).limit(1)).first()
    return found is not None


def winning_queue(conn: Connection, comm_group_id: int) -> Row:
    """``(Id, QueueKind, TotalCost)`` of the group's cheapest finished queue (ties: lowest id)."""
    q = s.optimization_queue
    return conn.execute(
        select(q.c.Id, q.c.QueueKind, q.c.TotalCost)
        .where(q.c.CommPlanGroupId == comm_group_id, q.c.TotalCost.is_not(None), q.c.RunEndTime.is_not(None))
        .order_by(q.c.TotalCost, q.c.Id)
        .limit(1)
    ).one()


def keep_winner(conn: Connection, comm_group_id: int, winner_id: int) -> None:
    """Drop the losers' staged rows and queue rate plans; copy the winner's rows to the final table."""
    q, staging, final = s.optimization_queue, s.device_result_staging, s.device_result
    losers = select(q.c.Id).where(q.c.CommPlanGroupId == comm_group_id, q.c.Id != winner_id).scalar_subquery()
    conn.execute(delete(staging).where(staging.c.QueueId.in_(losers)))
    conn.execute(delete(s.queue_rate_plan).where(s.queue_rate_plan.c.QueueId.in_(losers)))
    conn.execute(delete(final).where(final.c.QueueId == winner_id))
    columns = [c.name for c in final.columns if c.name != "Id"]
    conn.execute(
        final.insert().from_select(
            columns, select(*[staging.c[c] for c in columns]).where(staging.c.QueueId == winner_id)
        )
    )


def plan_changes(conn: Connection, instance_id: int, winner_id: int) -> int:
    """How many of the winner's SIMs are assigned a plan other than their current one."""
    final, device = s.device_result, s.optimization_device
    return conn.execute(
        select(func.count())
        .select_from(final)
        .join(device, and_(device.c.AmopDeviceId == final.c.AmopDeviceId, device.c.InstanceId == instance_id))
        .where(
            final.c.QueueId == winner_id,
            device.c.CurrentCarrierRatePlanId != final.c.AssignedCarrierRatePlanId,
        )
    ).scalar_one()

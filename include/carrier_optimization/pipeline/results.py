"""A queue's result: price an assignment and record it, always or only if the group's best so far."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from include.carrier_optimization.amop import results
from include.carrier_optimization.core.cost import evaluate
from include.carrier_optimization.core.domain import GroupProblem


def record_if_better(
    conn: Connection,
    comm_group_id: int,
    queue_id: int,
    group: GroupProblem,
    assignment: Any,
    *,
    period_id: int | None,
) -> bool:
    """Record ``assignment`` against ``queue_id`` only if strictly cheaper than the group's best so far."""
    lowest = results.lowest_cost(conn, comm_group_id)
    total = evaluate(group, assignment).total
    if lowest is not None and not round(total, 4) < float(lowest):
        return False
    record(conn, queue_id, group, assignment, period_id=period_id)
    return True


def record(
    conn: Connection, queue_id: int, group: GroupProblem, assignment: Any, *, period_id: int | None
) -> float:
    """Write a queue's device result rows (replacing any) and its totals; returns the total."""
    breakdown = evaluate(group, assignment)
    results.write_result(conn, queue_id, group, assignment, breakdown, period_id=period_id)
    return breakdown.total

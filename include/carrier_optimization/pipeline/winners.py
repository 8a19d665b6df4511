"""The winners step: per comm group the cheapest finished queue wins; its rows become the results."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine, Row

from include.carrier_optimization.amop import comm_groups, instances, queues, results
from include.carrier_optimization.reporting.summary import optional_float, savings_summary


def select_winners(engine: Engine, *, instance_id: int) -> dict[str, Any]:
    """Per comm group: the cheapest finished queue wins (ties: lowest id); close stragglers, drop losers.

    The winners' rows move from staging to ``OptimizationDeviceResult``; the losers' staging rows and
    queue rate plans are removed (the legacy cleanup procedure); the instance ends ``CompleteWithSuccess``.
    Returns a small summary: per group the winner and the figures of the report.
    """
    with engine.begin() as conn:
        groups = [_select_winner(conn, instance_id, row) for row in comm_groups.summaries(conn, instance_id)]
        # a run resumed after a failure (a cleared task) ends without the error of its failed try
        instances.finish(conn, instance_id)
    return savings_summary(instance_id, groups)


def _select_winner(conn: Connection, instance_id: int, row: Row) -> dict[str, Any]:
    """Close the group's stragglers, keep its winner's rows; the group's line of the summary."""
    group_id = int(row.CommGroupId)
    queues.close_open_queues(conn, group_id)
    winner = results.winning_queue(conn, group_id)
    results.keep_winner(conn, group_id, winner.Id)
    changes = results.plan_changes(conn, instance_id, winner.Id)
    comm_groups.set_summary(
        conn,
        group_id,
        WinnerQueueId=winner.Id,
        WinnerKind=winner.QueueKind,
        WinnerCost=winner.TotalCost,
        PlanChanges=int(changes),
    )
    return {
        "comm_group_id": group_id,
        "winner_queue_id": int(winner.Id),
        "winner_kind": winner.QueueKind,
        "cost": float(winner.TotalCost),
        "current_cost": optional_float(row.CurrentCost),
        "lower_bound": optional_float(row.LowerBound),
        "devices": int(row.DeviceCount),
        "changes": int(changes),
    }

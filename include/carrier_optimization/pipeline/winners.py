"""The winners step: per comm group the cheapest finished queue wins; its rows become the results."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine, Row

from include.carrier_optimization.amop import comm_groups, instances, queues, results
from include.carrier_optimization.core.domain import GroupProblem
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.pipeline.optimizer import load_group
from include.carrier_optimization.pipeline.results import record
from include.carrier_optimization.reporting.summary import optional_float, savings_summary


def select_winners(engine: Engine, *, instance_id: int) -> dict[str, Any]:
    """Per comm group: the cheapest finished queue wins (ties: lowest id); close stragglers, drop losers.

    The winners' rows move from staging to ``OptimizationDeviceResult``; the losers' staging rows and
    queue rate plans are removed (the legacy cleanup procedure); the instance ends ``CompleteWithSuccess``.
    Returns a small summary: per group the winner and the figures of the report.
    """
    bases = _winning_bases(engine, instance_id)
    with engine.begin() as conn:
        period_id = instances.instance_row(conn, instance_id).OptimizationBillingPeriodId
        for queue_id, group in bases.items():  # SIMs best left on their base plans: their rows now
            record(conn, queue_id, group, legacy.base_assignment(group), period_id=period_id)
        groups = [_select_winner(conn, instance_id, row) for row in comm_groups.summaries(conn, instance_id)]
        # a run resumed after a failure (a cleared task) ends without the error of its failed try
        instances.finish(conn, instance_id)
    return savings_summary(instance_id, groups)


def _winning_bases(engine: Engine, instance_id: int) -> dict[int, GroupProblem]:
    """The winning base queues still without device rows, with their groups (loaded before writing).

    The count step stores a base queue's totals only; most groups are won by an optimizer, so its
    one row per SIM is written here, only for the groups it wins. Closing the stragglers cannot
    change a winner: they have no end time, and get no cost.
    """
    with engine.connect() as conn:
        group_ids = [int(row.CommGroupId) for row in comm_groups.summaries(conn, instance_id)]
        winners = {gid: results.winning_queue(conn, gid) for gid in group_ids}
        bare = {
            gid: int(w.Id)
            for gid, w in winners.items()
            if w.QueueKind == queues.KIND_BASE and not results.has_rows(conn, w.Id)
        }
    return {queue_id: load_group(engine, gid) for gid, queue_id in bare.items()}


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

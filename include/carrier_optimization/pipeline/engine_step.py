"""The engine step: solve one comm group with an engine and record it as the group's engine queue."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import comm_groups, instances, queues
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.domain import Problem
from include.carrier_optimization.pipeline.optimizer import load_group
from include.carrier_optimization.pipeline.results import record

LOG = logging.getLogger(__name__)


def run_engine_for_group(
    engine: Engine,
    *,
    comm_group_id: int,
    solve: Callable[..., Any],
    time_limit: float | None = None,
    cache: Any = None,
) -> dict[str, Any]:
    """Solve a comm group with an engine (default: optimal) and record it as the group's engine queue.

    ``cache`` (a ``DeviceCache``): the group's device list is read through it, as the optimize step
    reads it; the engine tasks start first, so the legacy batches of the group then find it in Redis.
    """
    with engine.connect() as conn:
        instance = instances.instance_of_group(conn, comm_group_id)
        existing = queues.engine_queue(conn, comm_group_id)
    if existing is not None and existing.RunEndTime is not None:
        return {
            "comm_group_id": comm_group_id,
            "queue_id": int(existing.Id),
            "cost": float(existing.TotalCost),
            "skipped": True,
        }
    group = load_group(engine, comm_group_id, cache=cache)
    result = solve(Problem((group,), days_in_period=30), time_limit=time_limit)
    if result.assignment is None:
        raise RuntimeError(f"comm group {comm_group_id}: engine failed: {result.message}")
    (group_result,) = result.groups
    with engine.begin() as conn:
        queue_id = queues.insert_queue(
            conn, instance._mapping, instance.ServiceProviderId, comm_group_id, queues.KIND_ENGINE, 0
        )
        total = record(
            conn, queue_id, group, group_result.assignment, period_id=instance.OptimizationBillingPeriodId
        )
        queues.finish_queues(conn, [queue_id], OptimizationStatus.CompleteWithSuccess)
        comm_groups.set_summary(
            conn,
            comm_group_id,
            EngineCost=round(total, 4),
            LowerBound=None if group_result.lower_bound is None else round(group_result.lower_bound, 4),
            EngineSeconds=round(result.seconds, 3),
            PoolPrices=json.dumps({str(k): round(v, 6) for k, v in group_result.pool_prices.items()}),
        )
    LOG.info(
        "Comm group %s: engine %s cost %.2f, lower bound %s, gap %s",
        comm_group_id,
        result.engine,
        total,
        group_result.lower_bound,
        group_result.gap,
    )
    return {
        "comm_group_id": comm_group_id,
        "queue_id": queue_id,
        "cost": round(total, 4),
        "lower_bound": group_result.lower_bound,
        "gap": group_result.gap,
        "skipped": False,
    }

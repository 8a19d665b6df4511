"""The write-queues step: the sequence queues of a batch, and whether all of an instance's are written."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Connection, Engine

from include.carrier_optimization.amop import comm_groups, instances, queues
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.core.domain import GroupProblem, RatePlan
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.pipeline.instance import SEQUENCE_CAP, rate_plans_from_records

LOG = logging.getLogger(__name__)


def group_plans(conn: Connection, comm_group_id: int) -> tuple[tuple[RatePlan, ...], list[int]]:
    """The group's plans in stored order and the ids of their ``OptimizationCommGroup_RatePlan`` rows."""
    rows = comm_groups.plan_rows(conn, comm_group_id)
    return rate_plans_from_records(rows), [int(r.group_plan_id) for r in rows]


def _plans_only(plans: tuple[RatePlan, ...]) -> GroupProblem:
    """A device-less group: what the sequence order of a group depends on."""
    return GroupProblem(",".join(str(p.plan_id) for p in plans), (), plans, [], [], [], [], [], [])


def write_queue_batch(engine: Engine, *, comm_group_id: int, start: int, stop: int) -> dict[str, int]:
    """Write the queue and queue-rate-plan rows of sequences ``[start, stop)`` of a comm group.

    One transaction per batch; rows already present are kept, so a retried or cleared batch writes no
    duplicates. Returns the number of rows written by this call.
    """
    with engine.begin() as conn:
        instance = instances.instance_of_group(conn, comm_group_id)
        plans, group_plan_ids = group_plans(conn, comm_group_id)
        present = queues.sequence_indices(conn, comm_group_id, start, stop)
        now = utcnow()
        written = queues.insert_sequence_queues(
            conn, instance, comm_group_id, (i for i in range(start, stop) if i not in present), now=now
        )
        ids = queues.sequence_queue_ids(conn, comm_group_id, start, stop)
        with_plans = queues.queues_with_plans(conn, ids.values())
        order = legacy.canonical_plan_order(_plans_only(plans))
        rate_plans = queues.insert_queue_rate_plans(
            conn,
            (
                (ids[i], position, group_plan_ids[local])
                for i in range(start, stop)
                if ids[i] not in with_plans
                for position, local in enumerate(legacy.sequence_at(order, i, SEQUENCE_CAP))
            ),
            now=now,
        )
    LOG.info(
        "Comm group %s sequences [%d, %d): %d queues and %d queue rate plans written",
        comm_group_id,
        start,
        stop,
        written,
        rate_plans,
    )
    return {"queues": written, "queue_rate_plans": rate_plans}


def queues_written(engine: Engine, *, comm_group_id: int) -> dict[str, Any]:
    """Whether every sequence queue of the comm group's instance is written (the moment of progress 40).

    Compares the instance's sequence queue rows with the sequence counts of its comm groups (queue
    rows and their rate plans are written in one transaction per batch).

    Returns
    -------
    dict
        ``{instance_id, written, expected, complete, devices}``; ``devices`` is the instance's SIM count.
    """
    with engine.connect() as conn:
        instance_id = comm_groups.instance_id_of(conn, comm_group_id)
        expected = comm_groups.expected_sequences(conn, instance_id)
        written = queues.count_sequence_queues(conn, instance_id)
        devices = instances.device_count(conn, instance_id)
    return {
        "instance_id": int(instance_id),
        "written": int(written),
        "expected": int(expected),
        "complete": int(written) >= int(expected),
        "devices": int(devices),
    }

"""The optimize step: evaluate a batch's sequence queues in chunks, checkpointing record-if-better.

At most every ``CHECKPOINT_SECONDS`` one transaction finishes the queues evaluated since the last
checkpoint and records their best if better, so a killed batch repeats little (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import comm_groups, instances, queues
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.billing_period import proration_factor
from include.carrier_optimization.core.commgroups import DEFAULT_PLAN_LIMIT, build_problem
from include.carrier_optimization.core.domain import GroupProblem
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.pipeline.queues import group_plans
from include.carrier_optimization.pipeline.results import record_if_better

LOG = logging.getLogger(__name__)

#: Longest optimizer work between two checkpoints (finished queues + record-if-better, one commit).
CHECKPOINT_SECONDS = 2.0


def load_group(engine: Engine, comm_group_id: int, *, cache: Any = None) -> GroupProblem:
    """Rebuild a comm group's problem from the instance's device snapshot and the group's plans.

    With ``cache`` (a ``checkpoints.DeviceCache``) the device list is read through it: Redis first,
    the ``OptimizationDevice`` rows on a miss or when Redis is down.
    """
    with engine.connect() as conn:
        plans, _ = group_plans(conn, comm_group_id)
        ins = instances.instance_of_group(conn, comm_group_id)
        instance_id = int(ins.Id)
        sp = instances.provider_uses_proration(conn, ins.ServiceProviderId)

    def devices() -> pd.DataFrame:
        with engine.connect() as conn:
            return comm_groups.devices(conn, instance_id, comm_group_id)

    frame = devices() if cache is None else cache.get_or_load(instance_id, comm_group_id, devices)
    days = int((ins.BillingPeriodEndDate - ins.BillingPeriodStartDate).days) or 30
    proration = proration_factor(
        frame.days.to_numpy(dtype=float),
        days,
        uses_proration=bool(sp),
        activated_in_period=frame.activated.to_numpy(dtype=bool),
    )
    key = ",".join(str(p.plan_id) for p in plans)
    # unique(), not set(Series): iterating a pandas string column costs a Python call per SIM
    comm = {name: [p.plan_id for p in plans] for name in sorted(frame.comm_plan.unique())}
    problem = build_problem(
        plans,
        comm,
        device_ids=frame.device_id.astype(str).to_numpy(),
        comm_plan=frame.comm_plan.to_numpy(),
        usage_mb=frame.usage.to_numpy(dtype=float),
        sms=frame.sms.to_numpy(dtype=float),
        proration=proration,
        current_plan_id=frame.current.fillna(-1).to_numpy(dtype=np.int64),
        days_in_period=days,
        plan_limit=max(len(plans), DEFAULT_PLAN_LIMIT),
    )
    (group,) = problem.groups
    LOG.debug("Loaded comm group %s (%s): %d SIMs", comm_group_id, key, group.n_devices)
    return group


@dataclass(frozen=True)
class BatchProgress:
    """Where an optimizer batch stands: done or not, and what this call did."""

    done: bool
    cursor: int
    evaluated: int
    recorded: int


def run_optimizer_batch(
    engine: Engine,
    *,
    comm_group_id: int,
    start: int,
    stop: int,
    queues_per_instance: int,
    deadline: float | None = None,
    load: Callable[[], GroupProblem] | None = None,
    on_chunk: Callable[[int], None] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> BatchProgress:
    """Evaluate the batch's sequence queues ``queues_per_instance`` at a time, recording if better.

    The group is loaded once. Each chunk (the legacy optimizer message) is evaluated in memory and its
    best candidate kept when cheaper than the best so far. At most every ``checkpoint_seconds`` (and at
    the end, at the deadline) one transaction is the checkpoint: the queues evaluated since the last one
    are finished, and the best candidate among them is recorded if strictly cheaper than the group's best
    in the database (`record_if_better`). Finished queues are skipped on a rerun, so a killed call repeats
    at most the work since its last checkpoint. Stops early, ``done=False``, when ``time.monotonic()``
    passes ``deadline``; ``on_chunk`` receives the number of queues finished so far (the cursor) after
    each checkpoint.
    """
    if queues_per_instance <= 0:
        raise ValueError(f"`queues_per_instance` must be > 0; got {queues_per_instance}")
    finished, pending, sequences, period_id = _pending_queues(engine, comm_group_id, start, stop)
    if not pending:
        return BatchProgress(True, finished, 0, 0)
    group = (load or (lambda: load_group(engine, comm_group_id)))()
    tables = legacy.prepare_tables(group)
    evaluated = recorded = 0
    done: list[int] = []
    # (cost, queue id, candidate) since the last checkpoint; the candidate's assignment is only built when
    # the checkpoint records it, not for every chunk that was briefly the best
    best: tuple[float, int, legacy.Candidate] | None = None
    began = last = time.monotonic()
    stopped = False
    for chunk_start in range(0, len(pending), queues_per_instance):
        if deadline is not None and time.monotonic() > deadline:
            stopped = True
            break
        chunk = pending[chunk_start : chunk_start + queues_per_instance]
        rows = sequences[chunk_start : chunk_start + queues_per_instance]
        candidate = legacy.evaluate_sequences(group, rows, tables=tables)
        # Strictly cheaper at the stored precision, as record-if-better decides: ties keep the earliest.
        if best is None or round(candidate.cost, 4) < round(best[0], 4):
            best = (candidate.cost, chunk[candidate.index], candidate)
        done += chunk
        if time.monotonic() - last >= checkpoint_seconds or chunk_start + len(chunk) >= len(pending):
            whole = (start, stop) if len(done) == len(pending) else None  # one update on the range
            recorded += _checkpoint(engine, comm_group_id, group, done, best, began, period_id, whole)
            evaluated, finished = evaluated + len(done), finished + len(done)
            done, best, began = [], None, time.monotonic()
            last = began
            if on_chunk is not None:
                on_chunk(finished)
    if done:
        recorded += _checkpoint(engine, comm_group_id, group, done, best, began, period_id)
        evaluated, finished = evaluated + len(done), finished + len(done)
        if on_chunk is not None:
            on_chunk(finished)
    return BatchProgress(not stopped, finished, evaluated, recorded)


def _pending_queues(
    engine: Engine, comm_group_id: int, start: int, stop: int
) -> tuple[int, list[int], np.ndarray, int | None]:
    """Finished count, pending queue ids, their sequences (local plan indices), the billing period id.

    The sequences are an ``(len(pending), P)`` array in the order of ``pending``: each queue's rate plans
    are a permutation of the group's ``P`` plans.
    """
    with engine.connect() as conn:
        batch = queues.batch_queues(conn, comm_group_id, start, stop)
        pending = [int(r.Id) for r in batch if r.RunEndTime is None]
        _, group_plan_ids = group_plans(conn, comm_group_id)
        plan_rows = queues.pending_queue_plans(conn, comm_group_id, start, stop)
        period_id = instances.instance_of_group(conn, comm_group_id).OptimizationBillingPeriodId
    if len(batch) != stop - start:
        raise RuntimeError(
            f"comm group {comm_group_id}: {len(batch)} queues for sequences [{start}, {stop}); "
            "the queue batch was not written"
        )
    return len(batch) - len(pending), pending, _sequences(plan_rows, pending, group_plan_ids), period_id


def _sequences(plan_rows: np.ndarray, pending: list[int], group_plan_ids: list[int]) -> np.ndarray:
    """The ``(QueueId, CommGroup_RatePlanId)`` rows as one row of local plan indices per pending queue."""
    n, p = len(pending), len(group_plan_ids)
    if n == 0:
        return np.zeros((0, p), dtype=np.int64)
    malformed = RuntimeError(
        f"{len(plan_rows)} queue rate plans for {n} pending queues of {p} plans: every sequence queue "
        "must hold each of its comm group's rate plans once"
    )
    ids = np.asarray(group_plan_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    local = order[np.searchsorted(ids, plan_rows[:, 1], sorter=order).clip(max=max(p - 1, 0))]
    if len(plan_rows) != n * p or not (ids[local] == plan_rows[:, 1]).all():
        raise malformed
    queue_of = plan_rows[:, 0].reshape(n, p)  # one queue per row, rows by queue id as fetched
    rows = np.searchsorted(queue_of[:, 0], pending).clip(max=n - 1)
    if not ((queue_of == queue_of[:, :1]).all() and (queue_of[rows, 0] == pending).all()):
        raise malformed
    return local.reshape(n, p)[rows]


def _checkpoint(
    engine: Engine,
    comm_group_id: int,
    group: GroupProblem,
    queue_ids: list[int],
    best: tuple[float, int, legacy.Candidate] | None,
    began: float,
    period_id: int | None,
    whole_batch: tuple[int, int] | None = None,
) -> int:
    """One transaction: record ``best`` if better, finish ``queue_ids``; returns 1 if recorded, else 0.

    ``whole_batch``: ``queue_ids`` are all the unfinished queues of that sequence range, finished by the
    range instead of a list of up to thousands of ids.
    """
    started = utcnow() - dt.timedelta(seconds=time.monotonic() - began)
    success = OptimizationStatus.CompleteWithSuccess
    with engine.begin() as conn:
        recorded = best is not None and record_if_better(
            conn, comm_group_id, best[1], group, best[2].assignment, period_id=period_id
        )
        if whole_batch is None:
            queues.finish_queues(conn, queue_ids, success, started=started)
        else:
            queues.finish_batch(conn, comm_group_id, *whole_batch, success, started=started)
    return int(recorded)

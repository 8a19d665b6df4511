"""The count step: start (or reopen) the instance, set up its comm groups and plan the batches.

The set-up writes the comm groups, the device snapshot and each group's base assignment queue; the
plan fans out the sequence batches (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection, Engine

from include.carrier_optimization.amop import comm_groups, instances, queues, results
from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore
from include.carrier_optimization.amop.repository import AmopRepository, utcnow
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.billing_period import (
    days_active_in_period,
    project_usage,
    proration_factor,
)
from include.carrier_optimization.core.commgroups import (
    DEFAULT_PLAN_LIMIT,
    build_problem,
    describe_skipped,
    parse_plan_list,
)
from include.carrier_optimization.core.cost import evaluate
from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.core.validation import plan_errors
from include.carrier_optimization.messaging.request import Request
from include.carrier_optimization.pipeline.session import billing_period

LOG = logging.getLogger(__name__)

BYTES_PER_MB = 1024 * 1024
SEQUENCE_CAP = 5040
MAX_BATCHES = 128
SETUP_FACTS_TTL = 62 * 24 * 3600  # skipped groups and SIM counts of an instance, for its count step reruns
NO_PLANS_MESSAGE = "No Comm Groups and/or Rate Plans for this Instance"
INVALID_PLANS_MESSAGE = "One or more Rate Plans have invalid Data per Overage Charge or Overage Rate"


@dataclass(frozen=True)
class InstancePlan:
    """What the count step found: the instance, its groups and the work to fan out."""

    instance_id: int
    device_count: int
    groups: list[dict[str, Any]]
    batches: list[dict[str, int]]
    skipped: list[str]
    error: str | None = None
    sim_counts: dict[str, int] | None = None  # {"expected", "actual"} when fewer SIMs were set up

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (small: ids, counts, ranges)."""
        return asdict(self)


def prepare_instance(
    engine: Engine,
    *,
    session_id: int,
    request: Request,
    batch_size: int,
    engine_name: str = "best",
    now: dt.datetime | None = None,
    max_batches: int = MAX_BATCHES,
    sequence_cap: int = SEQUENCE_CAP,
    plan_limit: int = DEFAULT_PLAN_LIMIT,
) -> InstancePlan:
    """Start the instance and set up its comm groups, device snapshot and base assignment queues.

    Invalid plans end the instance ``CompleteWithErrors`` with the legacy message plus the plan ids and
    write nothing else. Run again, it rebuilds the descriptors from what was written; an instance a
    failed step ended ``CompleteWithErrors`` is reopened first (`reopen_instance`), so a cleared run
    resumes (and plans fixed since are validated again).
    """
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be > 0; got {batch_size}")
    repo = AmopRepository(engine)
    period = billing_period(repo, request, now or utcnow())
    instance_id = repo.start_instance(
        session_id=session_id,
        tenant_id=request.tenant_id,
        service_provider_id=request.service_provider_id,
        billing_period=period,
        portal_type_id=request.portal_type_id,
        sqs_message_id=request.message_id,
    )
    reopen_instance(engine, instance_id)
    instance = repo.instance(instance_id)
    if instance["RunStatusId"] == OptimizationStatus.NotStarted:
        error = _set_up_instance(engine, repo, instance, request, period, now or utcnow(), plan_limit)
        if error:
            return InstancePlan(instance_id, 0, [], [], [], error=error)
    return _instance_plan(engine, instance_id, batch_size, engine_name, max_batches, sequence_cap)


def reopen_instance(engine: Engine, instance_id: int) -> bool:
    """Reopen an instance that a failed step ended ``CompleteWithErrors``, to resume its run.

    It goes back to ``RunningPermutations`` when its set-up was written (comm groups present), else to
    ``NotStarted`` so the set-up, validation included, runs again; its error text and end time are
    cleared. Any other status is left as it is.

    Returns
    -------
    bool
        Whether the instance was reopened.
    """
    with engine.begin() as conn:
        row = instances.status_and_error(conn, instance_id)
        if row.RunStatusId != OptimizationStatus.CompleteWithErrors:
            return False
        set_up = instances.has_comm_groups(conn, instance_id)
        status = OptimizationStatus.RunningPermutations if set_up else OptimizationStatus.NotStarted
        instances.reopen(conn, instance_id, status)
    LOG.warning(
        "Instance %s reopened as %s to resume; it had ended with: %s",
        instance_id,
        status.name,
        row.ErrorMessage,
    )
    return True


def _valid_plans(repo: AmopRepository, request: Request, instance_id: int) -> tuple[Any, pd.DataFrame] | str:
    """The provider's plans and comm plans, or the error that ended the instance (no or invalid plans)."""
    plans_df = repo.rate_plans(request.service_provider_id)
    comm_df = repo.comm_plans(request.service_provider_id)
    if plans_df.empty or comm_df.empty:
        repo.set_instance_status(instance_id, OptimizationStatus.CompleteWithErrors, error=NO_PLANS_MESSAGE)
        return NO_PLANS_MESSAGE
    plans = rate_plans_from_frame(plans_df)
    errors = plan_errors(plans)
    if errors:
        message = f"{INVALID_PLANS_MESSAGE}: " + "; ".join(errors)
        repo.set_instance_status(instance_id, OptimizationStatus.CompleteWithErrors, error=message)
        LOG.error("Instance %s: %s", instance_id, message)
        return message
    return plans, comm_df


def _set_up_instance(
    engine: Engine,
    repo: AmopRepository,
    instance: dict[str, Any],
    request: Request,
    period: dict[str, Any],
    now: dt.datetime,
    plan_limit: int,
) -> str | None:
    sp = repo.service_provider(request.service_provider_id)
    instance_id = int(instance["Id"])
    found = _valid_plans(repo, request, instance_id)
    if isinstance(found, str):
        return found
    plans, comm_df = found
    devices = repo.devices(request.service_provider_id, request.tenant_id)
    snapshot = device_snapshot(devices, period, now=now, uses_proration=bool(sp["UsesProration"]))
    comm_plans = {r.comm_plan: parse_plan_list(r.allowed_plan_ids) for r in comm_df.itertuples()}
    known = snapshot.comm_plan.isin(list(comm_plans))
    if not known.all():
        LOG.warning(
            "Instance %s: %d SIMs have a comm plan without allowed plans; left out",
            instance_id,
            int((~known).sum()),
        )
    snapshot = snapshot[known].reset_index(drop=True)
    problem = _problem(plans, comm_plans, snapshot, period, plan_limit)
    comm_ids = dict(zip(comm_df.comm_plan, comm_df.comm_plan_id, strict=True))
    by_id = snapshot.set_index(snapshot.device_id.astype(str))
    with engine.begin() as conn:
        instances.set_status(conn, instance_id, OptimizationStatus.CommGroupSetup)
        for group in problem.groups:
            _write_group(conn, instance, request, group, comm_ids, by_id.loc[list(group.device_ids)])
        instances.set_up_done(conn, instance_id, problem.n_devices)
    for skipped in problem.skipped:
        LOG.warning("Instance %s: comm group %s skipped: %s", instance_id, skipped.key, skipped.reason)
    DatabaseCheckpointStore(engine).put(
        _setup_key(instance_id),
        {"skipped": describe_skipped(problem), "expected": len(devices), "actual": problem.n_devices},
        ttl_seconds=SETUP_FACTS_TTL,
    )
    return None


def _problem(
    plans: tuple[RatePlan, ...],
    comm_plans: dict[str, Any],
    snapshot: pd.DataFrame,
    period: dict[str, Any],
    plan_limit: int,
) -> Problem:
    """The instance's problem: its SIMs grouped by the plans their comm plans allow."""
    days = int((period["BillingCycleEndDate"] - period["BillingCycleStartDate"]).days) or 30
    return build_problem(
        plans,
        comm_plans,
        device_ids=snapshot.device_id.astype(str).to_numpy(),
        comm_plan=snapshot.comm_plan.to_numpy(),
        usage_mb=snapshot.projected_mb.to_numpy(),
        sms=snapshot.sms.to_numpy(dtype=float),
        proration=snapshot.proration.to_numpy(),
        current_plan_id=snapshot.current_plan_id.fillna(-1).to_numpy(dtype=np.int64),
        days_in_period=days,
        plan_limit=plan_limit,
    )


def _setup_key(instance_id: int) -> str:
    return f"carrier_opt:setup:{instance_id}"


def forget_setup_facts(engine: Engine, instance_id: int) -> None:
    """Drop the set-up facts kept for the count step's reruns (the winners step is past them)."""
    DatabaseCheckpointStore(engine).delete(_setup_key(instance_id))


def _setup_facts(engine: Engine, instance_id: int) -> tuple[list[str], dict[str, int] | None]:
    """The skipped groups and, when fewer SIMs were set up than expected, the SIM counts."""
    facts = DatabaseCheckpointStore(engine).get(_setup_key(instance_id)) or {}
    counts = {"expected": int(facts.get("expected", 0)), "actual": int(facts.get("actual", 0))}
    return list(facts.get("skipped", [])), counts if counts["actual"] < counts["expected"] else None


def rate_plans_from_frame(frame: pd.DataFrame) -> tuple[RatePlan, ...]:
    """Plans from a frame in the CLI plan columns."""
    return rate_plans_from_records(frame.itertuples())


def rate_plans_from_records(records: Iterable[Any]) -> tuple[RatePlan, ...]:
    """Plans from records (rows, named tuples) with the CLI plan columns as attributes."""
    return tuple(
        RatePlan(
            int(r.plan_id),
            str(r.code),
            float(r.monthly_charge),
            float(r.included_mb),
            float(r.overage_rate),
            float(r.overage_block_mb),
            bool(r.pooled),
            float(getattr(r, "sms_rate", 0.0) or 0.0),
        )
        for r in records
    )


def device_snapshot(
    devices: pd.DataFrame, period: dict[str, Any], *, now: dt.datetime, uses_proration: bool
) -> pd.DataFrame:
    """Cycle usage in MB, its projection and the proration of each SIM (legacy §3.1-3.2)."""
    start, end = period["BillingCycleStartDate"], period["BillingCycleEndDate"]
    days = int((end - start).days) or 30
    cycle_mb = np.round(devices.ctd_bytes.to_numpy(dtype=float) / BYTES_PER_MB, 3)
    usage_date = pd.to_datetime(devices.usage_date).to_numpy(dtype="datetime64[ms]")
    projected = project_usage(
        cycle_mb,
        period_start=start,
        period_end=end,
        now=now,
        status=devices.status.to_numpy(dtype=object),
        usage_date=usage_date,
    )
    activated, days_active = days_active_in_period(
        pd.to_datetime(devices.date_activated).to_numpy(dtype="datetime64[ms]"),
        period_start=start,
        period_end=end,
        days_in_period=days,
    )
    snapshot = devices.copy()
    snapshot["cycle_mb"] = cycle_mb
    snapshot["projected_mb"] = projected
    snapshot["activated_in_period"] = activated
    snapshot["days_active"] = days_active
    snapshot["proration"] = proration_factor(
        days_active, days, uses_proration=uses_proration, activated_in_period=activated
    )
    return snapshot


def _write_group(
    conn: Connection,
    instance: dict[str, Any],
    request: Request,
    group: GroupProblem,
    comm_ids: dict[str, Any],
    devices: pd.DataFrame,
) -> None:
    """Write one comm group's set-up: its rows, its SIMs' snapshot, its base queue and its summary."""
    instance_id = int(instance["Id"])
    thresholds = legacy.max_avg_usage(group.plans)
    group_id = comm_groups.insert_group(
        conn,
        instance_id=instance_id,
        key=group.key,
        comm_plan_ids=[int(comm_ids[name]) for name in group.comm_plans],
        plan_thresholds=[
            (plan.plan_id, float(t) if math.isfinite(t) else None)
            for plan, t in zip(group.plans, thresholds, strict=True)
        ],
    )
    comm_groups.insert_devices(
        conn,
        devices,
        instance_id=instance_id,
        service_provider_id=request.service_provider_id,
        comm_group_id=group_id,
        plan_codes={p.plan_id: p.code for p in group.plans},
        now=utcnow(),
    )
    # the base queue's totals only: its 1 row per SIM is written by the winners step if it wins
    base = evaluate(group, legacy.base_assignment(group))
    queue_id = queues.insert_queue(conn, instance, request.service_provider_id, group_id, queues.KIND_BASE, 0)
    results.write_totals(conn, queue_id, base)
    queues.finish_queues(conn, [queue_id], OptimizationStatus.CompleteWithSuccess)
    n_sequences = legacy.sequence_count(group.n_plans) if group.n_devices > 1 else 0
    comm_groups.insert_summary(
        conn,
        CommGroupId=group_id,
        InstanceId=instance_id,
        DeviceCount=group.n_devices,
        PlanCount=group.n_plans,
        SequenceCount=min(n_sequences, SEQUENCE_CAP),
        CurrentCost=current_cost(group),
        BaseCost=base.total,
    )


def current_cost(group: GroupProblem) -> float:
    """Invoice of the group as the SIMs are now (SIMs without a known plan priced on their base plan)."""
    current = np.where(group.current_plan >= 0, group.current_plan, legacy.base_assignment(group))
    return float(evaluate(group, current).total)


def _instance_plan(
    engine: Engine, instance_id: int, batch_size: int, engine_name: str, max_batches: int, sequence_cap: int
) -> InstancePlan:
    """The instance's groups from their summaries and, for the legacy optimizer, its sequence batches."""
    with engine.connect() as conn:
        rows = comm_groups.summaries(conn, instance_id)
        device_count = instances.device_count(conn, instance_id)
    groups = [
        {
            "comm_group_id": int(r.CommGroupId),
            "devices": int(r.DeviceCount),
            "plans": int(r.PlanCount),
            "sequences": int(r.SequenceCount),
        }
        for r in rows
    ]
    batches: list[dict[str, int]] = []
    if engine_name in ("best", "legacy"):
        total = sum(min(g["sequences"], sequence_cap) for g in groups)
        size = max(batch_size, math.ceil(total / max_batches)) if total else batch_size
        for g in groups:
            n = min(g["sequences"], sequence_cap)
            batches += [
                {"comm_group_id": g["comm_group_id"], "start": a, "stop": min(a + size, n)}
                for a in range(0, n, size)
            ]
    skipped, sim_counts = _setup_facts(engine, instance_id)
    return InstancePlan(instance_id, int(device_count), groups, batches, skipped, sim_counts=sim_counts)

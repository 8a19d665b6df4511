"""The optimization run on the AMOP tables, one function per DAG step (no Airflow).

Every step is idempotent: run again after a retry, a clear or a kill, it first reads what is already
written and continues from there, so a run ends with the same result as an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.bulk_rows import (
    RESULT_COLUMNS,
    SNAPSHOT_COLUMNS,
    result_rows,
    snapshot_rows,
)
from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore
from include.carrier_optimization.amop.repository import AmopRepository, utcnow
from include.carrier_optimization.amop.run_records import RunRecords
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.amop.storage import bulk_insert, frame_of
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
from include.carrier_optimization.core.domain import GroupProblem, RatePlan
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.core.validation import plan_errors
from include.carrier_optimization.messaging.request import Request
from include.carrier_optimization.reporting.summary import optional_float, savings_summary

LOG = logging.getLogger(__name__)

BYTES_PER_MB = 1024 * 1024
SEQUENCE_CAP = 5040
MAX_BATCHES = 128
SETUP_FACTS_TTL = 62 * 24 * 3600  # skipped groups and SIM counts of an instance, for its count step reruns
KIND_BASE, KIND_SEQUENCE, KIND_ENGINE = "base", "sequence", "engine"
#: Longest optimizer work between two checkpoints (finished queues + record-if-better, one commit).
CHECKPOINT_SECONDS = 2.0
NO_PLANS_MESSAGE = "No Comm Groups and/or Rate Plans for this Instance"
INVALID_PLANS_MESSAGE = "One or more Rate Plans have invalid Data per Overage Charge or Overage Rate"


class RunRefused(Exception):
    """Another optimization of the tenant is running; this request is refused without side effects."""


class RequestError(ValueError):
    """The request names something that does not exist (billing period, session, provider)."""


class SessionFinished(Exception):
    """The request continues a session whose instance already ended ``CompleteWithSuccess``: nothing to do.

    A duplicated continuation message (SQS delivers at least once) must not optimize the session again.
    """


# -- session ----------------------------------------------------------------------------------------


def open_session(
    engine: Engine, request: Request, *, run_key: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Resume the request's session or start one, with the legacy guard (:func:`check_guard`).

    ``run_key`` identifies the Airflow run: a retried step finds the session it opened before.
    Returns ``{session_id, session_guid, billing_period_id, resumed}``. Another run's request naming a
    session whose instance ended ``CompleteWithSuccess`` raises `SessionFinished`; a refused request
    raises `RunRefused` before anything is written.
    """
    repo = AmopRepository(engine)
    if repo.service_provider(request.service_provider_id) is None:
        raise RequestError(f"service provider {request.service_provider_id} does not exist")
    now = now or utcnow()
    period = _billing_period(repo, request, now)
    ses = s.optimization_session
    with engine.connect() as conn:
        mine = conn.execute(select(ses.c.Id, ses.c.SessionGuid).where(ses.c.AirflowRunId == run_key)).first()
    if mine is not None:
        return {
            "session_id": int(mine.Id),
            "session_guid": mine.SessionGuid,
            "billing_period_id": period["id"],
            "resumed": True,
        }
    if request.session_id is not None:
        found = repo.session(request.session_id)
        if found is None:
            raise RequestError(f"optimization session {request.session_id} does not exist or is deleted")
        ins = s.optimization_instance
        with engine.connect() as conn:
            done = conn.execute(
                select(ins.c.Id).where(
                    ins.c.OptimizationSessionId == request.session_id,
                    ins.c.ServiceProviderId == request.service_provider_id,
                    ins.c.PortalTypeId == request.portal_type_id,
                    ins.c.RunStatusId == int(OptimizationStatus.CompleteWithSuccess),
                )
            ).first()
        if done is not None:
            raise SessionFinished(
                f"optimization session {request.session_id} already finished (instance {done.Id} "
                f"CompleteWithSuccess); request {request.message_id or '(form)'} not run again"
            )
        check_guard(engine, request, billing_period_id=period["id"], now=now)
        return {
            "session_id": int(found["Id"]),
            "session_guid": found["SessionGuid"],
            "billing_period_id": period["id"],
            "resumed": True,
        }
    check_guard(engine, request, billing_period_id=period["id"], now=now)
    created = repo.create_session(request.tenant_id, request.service_provider_id, period["id"])
    with engine.begin() as conn:
        conn.execute(update(ses).where(ses.c.Id == created["session_id"]).values(AirflowRunId=run_key))
    return {**created, "billing_period_id": period["id"], "resumed": False}


def check_guard(engine: Engine, request: Request, *, billing_period_id: int, now: dt.datetime) -> None:
    """The legacy ``IsOptimizationRunning`` guard; raises `RunRefused` when the request must not start.

    - Every request: refused while an optimization of the tenant is in progress (another session
      with an unfinished instance).
    - A request without a session id that no person made (the scheduled window, the legacy scheduler):
      also refused while a session of the tenant is syncing, or when a session already optimized this
      provider's billing period without errors. One scheduled optimization per provider and period;
      after ``CompleteWithErrors`` the next one runs.
    - Explicit requests (the form, a portal request with its ``OptimizationSessionId``) start or resume
      their session otherwise: a person can always re-run after a finished optimization.
    """
    records = RunRecords(engine)
    tenant, own = request.tenant_id, request.session_id
    optimizing = AmopRepository(engine).running_session_id(tenant, exclude_session_id=own)
    if optimizing is not None:
        raise RunRefused(f"Optimization Is Already Running for tenant {tenant} (session {optimizing})")
    if request.explicit:
        return
    syncing = records.syncing_session(tenant, now=now, exclude_session_id=own)
    if syncing is not None:
        raise RunRefused(
            f"Optimization Is Already Running for tenant {tenant} (session {syncing} is syncing devices)"
        )
    done = records.finished_well_session(tenant, request.service_provider_id, billing_period_id)
    if done is not None:
        raise RunRefused(
            f"Optimization Is Already Running for tenant {tenant}: session {done} already optimized "
            f"service provider {request.service_provider_id} in billing period {billing_period_id}"
        )


def _billing_period(repo: AmopRepository, request: Request, now: dt.datetime) -> dict[str, Any]:
    if request.bill_period_id is not None:
        period = repo.billing_period(request.bill_period_id)
        if period is None or period["ServiceProviderId"] != request.service_provider_id:
            raise RequestError(
                f"billing period {request.bill_period_id} does not exist for service provider "
                f"{request.service_provider_id}"
            )
        return period
    period = repo.current_billing_period(request.service_provider_id, now)
    if period is None:
        raise RequestError(f"service provider {request.service_provider_id} has no current billing period")
    return period


def set_progress(engine: Engine, session_id: int, progress: int, *, error: str | None = None) -> None:
    """Store the session's progress (0-100) and error text, as the portal reads them."""
    values: dict[str, Any] = {"Progress": progress}
    if error is not None:
        values["ErrorMessage"] = error
    with engine.begin() as conn:
        conn.execute(
            update(s.optimization_session).where(s.optimization_session.c.Id == session_id).values(**values)
        )


# -- count: instance, comm groups, device snapshot, base assignment, batch descriptors -----------------


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
    period = _billing_period(repo, request, now or utcnow())
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
    ins = s.optimization_instance
    with engine.begin() as conn:
        row = conn.execute(select(ins.c.RunStatusId, ins.c.ErrorMessage).where(ins.c.Id == instance_id)).one()
        if row.RunStatusId != OptimizationStatus.CompleteWithErrors:
            return False
        set_up = conn.execute(
            select(s.comm_group.c.Id).where(s.comm_group.c.InstanceId == instance_id).limit(1)
        ).first()
        status = OptimizationStatus.RunningPermutations if set_up else OptimizationStatus.NotStarted
        conn.execute(
            update(ins)
            .where(ins.c.Id == instance_id)
            .values(RunStatusId=int(status), ErrorMessage=None, RunEndTime=None)
        )
    LOG.warning(
        "Instance %s reopened as %s to resume; it had ended with: %s",
        instance_id,
        status.name,
        row.ErrorMessage,
    )
    return True


def _set_up_instance(engine, repo, instance, request, period, now, plan_limit) -> str | None:
    sp = repo.service_provider(request.service_provider_id)
    plans_df = repo.rate_plans(request.service_provider_id)
    comm_df = repo.comm_plans(request.service_provider_id)
    instance_id = int(instance["Id"])
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
    days = int((period["BillingCycleEndDate"] - period["BillingCycleStartDate"]).days) or 30
    problem = build_problem(
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
    comm_ids = dict(zip(comm_df.comm_plan, comm_df.comm_plan_id, strict=True))
    by_id = snapshot.set_index(snapshot.device_id.astype(str))
    with engine.begin() as conn:
        conn.execute(
            update(s.optimization_instance)
            .where(s.optimization_instance.c.Id == instance_id)
            .values(RunStatusId=int(OptimizationStatus.CommGroupSetup))
        )
        for group in problem.groups:
            _write_group(conn, instance, request, group, comm_ids, by_id.loc[list(group.device_ids)])
        conn.execute(
            update(s.optimization_instance)
            .where(s.optimization_instance.c.Id == instance_id)
            .values(DeviceCount=problem.n_devices, RunStatusId=int(OptimizationStatus.RunningPermutations))
        )
    for skipped in problem.skipped:
        LOG.warning("Instance %s: comm group %s skipped: %s", instance_id, skipped.key, skipped.reason)
    DatabaseCheckpointStore(engine).put(
        _setup_key(instance_id),
        {"skipped": describe_skipped(problem), "expected": len(devices), "actual": problem.n_devices},
        ttl_seconds=SETUP_FACTS_TTL,
    )
    return None


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
        for r in frame.itertuples()
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
    conn: Connection, instance, request: Request, group: GroupProblem, comm_ids, devices: pd.DataFrame
):
    instance_id = int(instance["Id"])
    group_id = conn.execute(
        insert(s.comm_group).values(InstanceId=instance_id, RatePlanIds=group.key)
    ).inserted_primary_key[0]
    conn.execute(
        insert(s.comm_group_comm_plan),
        [
            {"InstanceId": instance_id, "CommGroupId": group_id, "CommPlanId": int(comm_ids[name])}
            for name in group.comm_plans
        ],
    )
    thresholds = legacy.max_avg_usage(group.plans)
    conn.execute(
        insert(s.comm_group_rate_plan),
        [
            {
                "InstanceId": instance_id,
                "CommGroupId": group_id,
                "CarrierRatePlanId": plan.plan_id,
                "MaxAvgUsage": float(t) if math.isfinite(t) else None,
            }
            for plan, t in zip(group.plans, thresholds, strict=True)
        ],
    )
    bulk_insert(
        conn,
        s.optimization_device,
        snapshot_rows(
            devices,
            instance_id=instance_id,
            service_provider_id=request.service_provider_id,
            comm_group_id=group_id,
            plan_codes={p.plan_id: p.code for p in group.plans},
            now=utcnow(),
        ),
        columns=SNAPSHOT_COLUMNS,
    )
    base = legacy.base_assignment(group)
    queue_id = _insert_queue(conn, instance, request, group_id, KIND_BASE, 0)
    _record(conn, queue_id, group, base, period_id=instance["OptimizationBillingPeriodId"])
    _finish_queues(conn, [queue_id], OptimizationStatus.CompleteWithSuccess)
    n_sequences = legacy.sequence_count(group.n_plans) if group.n_devices > 1 else 0
    conn.execute(
        insert(s.comm_group_summary).values(
            CommGroupId=group_id,
            InstanceId=instance_id,
            DeviceCount=group.n_devices,
            PlanCount=group.n_plans,
            SequenceCount=min(n_sequences, SEQUENCE_CAP),
            CurrentCost=current_cost(group),
            BaseCost=evaluate(group, base).total,
        )
    )


def current_cost(group: GroupProblem) -> float:
    """Invoice of the group as the SIMs are now (SIMs without a known plan priced on their base plan)."""
    current = np.where(group.current_plan >= 0, group.current_plan, legacy.base_assignment(group))
    return float(evaluate(group, current).total)


def _instance_plan(engine, instance_id, batch_size, engine_name, max_batches, sequence_cap) -> InstancePlan:
    summary = s.comm_group_summary
    with engine.connect() as conn:
        rows = conn.execute(
            select(summary).where(summary.c.InstanceId == instance_id).order_by(summary.c.CommGroupId)
        ).all()
        device_count = conn.execute(
            select(s.optimization_instance.c.DeviceCount).where(s.optimization_instance.c.Id == instance_id)
        ).scalar_one()
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


# -- queues -----------------------------------------------------------------------------------------


def _insert_queue(conn: Connection, instance, request: Request, group_id: int, kind: str, index: int) -> int:
    q = s.optimization_queue
    existing = conn.execute(
        select(q.c.Id).where(
            q.c.CommPlanGroupId == group_id, q.c.QueueKind == kind, q.c.SequenceIndex == index
        )
    ).first()
    if existing:
        return int(existing[0])
    return int(
        conn.execute(
            insert(q).values(
                InstanceId=int(instance["Id"]),
                CommPlanGroupId=group_id,
                RunStatusId=int(OptimizationStatus.NotStarted),
                ServiceProviderId=request.service_provider_id,
                QueueKind=kind,
                SequenceIndex=index,
                RunStartTime=utcnow(),
                CreatedDate=utcnow(),
                **_queue_source(conn, instance),
            )
        ).inserted_primary_key[0]
    )


def _queue_source(conn: Connection, instance: Any) -> dict[str, Any]:
    """Queue columns taken as the legacy does: the provider's ``UsesProration``, the ``SqsMessageId``."""
    sp = s.service_provider
    prorates = conn.execute(
        select(sp.c.UsesProration).where(sp.c.id == instance["ServiceProviderId"])
    ).scalar_one_or_none()
    return {"UsesProration": bool(prorates), "SqsMessageId": instance["SqsMessageId"]}


def group_plans(conn: Connection, comm_group_id: int) -> tuple[tuple[RatePlan, ...], list[int]]:
    """The group's plans in stored order and the ids of their ``OptimizationCommGroup_RatePlan`` rows."""
    grp, plan = s.comm_group_rate_plan, s.carrier_rate_plan
    rows = conn.execute(
        select(
            grp.c.Id.label("group_plan_id"),
            plan.c.Id.label("plan_id"),
            plan.c.RatePlanCode.label("code"),
            plan.c.DisplayRate.label("monthly_charge"),
            plan.c.PlanMB.label("included_mb"),
            plan.c.OverageRateCost.label("overage_rate"),
            plan.c.DataPerOverageCharge.label("overage_block_mb"),
            plan.c.AllowsSimPooling.label("pooled"),
        )
        .join(plan, plan.c.Id == grp.c.CarrierRatePlanId)
        .where(grp.c.CommGroupId == comm_group_id)
        .order_by(grp.c.Id)
    ).all()
    frame = pd.DataFrame([r._mapping for r in rows])
    return rate_plans_from_frame(frame), [int(r.group_plan_id) for r in rows]


def _plans_only(plans: tuple[RatePlan, ...]) -> GroupProblem:
    """A device-less group: what the sequence order of a group depends on."""
    return GroupProblem(",".join(str(p.plan_id) for p in plans), (), plans, [], [], [], [], [], [])


def write_queue_batch(engine: Engine, *, comm_group_id: int, start: int, stop: int) -> dict[str, int]:
    """Write the queue and queue-rate-plan rows of sequences ``[start, stop)`` of a comm group.

    One transaction per batch; rows already present are kept, so a retried or cleared batch writes no
    duplicates. Returns the number of rows written by this call.
    """
    q, qrp = s.optimization_queue, s.queue_rate_plan
    with engine.begin() as conn:
        grp = conn.execute(
            select(s.comm_group.c.InstanceId).where(s.comm_group.c.Id == comm_group_id)
        ).scalar_one()
        instance = conn.execute(
            select(s.optimization_instance).where(s.optimization_instance.c.Id == grp)
        ).one()
        plans, group_plan_ids = group_plans(conn, comm_group_id)
        source = _queue_source(conn, instance._mapping)
        in_range = and_(
            q.c.CommPlanGroupId == comm_group_id,
            q.c.QueueKind == KIND_SEQUENCE,
            q.c.SequenceIndex >= start,
            q.c.SequenceIndex < stop,
        )
        present = {int(i) for i in conn.execute(select(q.c.SequenceIndex).where(in_range)).scalars()}
        now = utcnow()
        queues = bulk_insert(
            conn,
            q,
            (
                {
                    "InstanceId": instance.Id,
                    "CommPlanGroupId": comm_group_id,
                    "RunStatusId": int(OptimizationStatus.NotStarted),
                    "ServiceProviderId": instance.ServiceProviderId,
                    "IsBillInAdvance": False,
                    "QueueKind": KIND_SEQUENCE,
                    "SequenceIndex": i,
                    "IsDeleted": False,
                    "CreatedBy": s.CREATED_BY,
                    "CreatedDate": now,
                    **source,
                }
                for i in range(start, stop)
                if i not in present
            ),
        )
        ids = dict(conn.execute(select(q.c.SequenceIndex, q.c.Id).where(in_range)).all())
        with_plans = set(
            conn.execute(
                select(qrp.c.QueueId).where(qrp.c.QueueId.in_(list(ids.values()))).distinct()
            ).scalars()
        )
        order = legacy.canonical_plan_order(_plans_only(plans))
        rate_plans = bulk_insert(
            conn,
            qrp,
            (
                {
                    "QueueId": ids[i],
                    "SequenceOrder": position,
                    "CommGroup_RatePlanId": group_plan_ids[local],
                    "CreatedBy": s.CREATED_BY,
                    "CreatedDate": now,
                }
                for i in range(start, stop)
                if ids[i] not in with_plans
                for position, local in enumerate(legacy.sequence_at(order, i, SEQUENCE_CAP))
            ),
        )
    LOG.info(
        "Comm group %s sequences [%d, %d): %d queues and %d queue rate plans written",
        comm_group_id,
        start,
        stop,
        queues,
        rate_plans,
    )
    return {"queues": queues, "queue_rate_plans": rate_plans}


def queues_written(engine: Engine, *, comm_group_id: int) -> dict[str, Any]:
    """Whether every sequence queue of the comm group's instance is written (the moment of progress 40).

    Compares the instance's sequence queue rows with the sequence counts of its comm groups (queue
    rows and their rate plans are written in one transaction per batch).

    Returns
    -------
    dict
        ``{instance_id, written, expected, complete, devices}``; ``devices`` is the instance's SIM count.
    """
    q, summary, ins = s.optimization_queue, s.comm_group_summary, s.optimization_instance
    with engine.connect() as conn:
        instance_id = conn.execute(
            select(s.comm_group.c.InstanceId).where(s.comm_group.c.Id == comm_group_id)
        ).scalar_one()
        expected = conn.execute(
            select(func.coalesce(func.sum(summary.c.SequenceCount), 0)).where(
                summary.c.InstanceId == instance_id
            )
        ).scalar_one()
        written = conn.execute(
            select(func.count())
            .select_from(q)
            .where(q.c.InstanceId == instance_id, q.c.QueueKind == KIND_SEQUENCE)
        ).scalar_one()
        devices = conn.execute(select(ins.c.DeviceCount).where(ins.c.Id == instance_id)).scalar_one()
    return {
        "instance_id": int(instance_id),
        "written": int(written),
        "expected": int(expected),
        "complete": int(written) >= int(expected),
        "devices": int(devices),
    }


# -- optimizer --------------------------------------------------------------------------------------


def load_group(engine: Engine, comm_group_id: int, *, cache: Any = None) -> GroupProblem:
    """Rebuild a comm group's problem from the instance's device snapshot and the group's plans.

    With ``cache`` (a ``checkpoints.DeviceCache``) the device list is read through it: Redis first,
    the ``OptimizationDevice`` rows on a miss or when Redis is down.
    """
    d = s.optimization_device
    with engine.connect() as conn:
        plans, _ = group_plans(conn, comm_group_id)
        instance_id = conn.execute(
            select(s.comm_group.c.InstanceId).where(s.comm_group.c.Id == comm_group_id)
        ).scalar_one()
        ins = conn.execute(
            select(s.optimization_instance).where(s.optimization_instance.c.Id == instance_id)
        ).one()
        sp = conn.execute(
            select(s.service_provider.c.UsesProration).where(s.service_provider.c.id == ins.ServiceProviderId)
        ).scalar_one()

    def devices() -> pd.DataFrame:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    d.c.AmopDeviceId,
                    d.c.CommunicationPlan,
                    d.c.ProjectedDataUsageMB,
                    d.c.SmsUsage,
                    d.c.WasActivatedInThisBillingPeriod,
                    d.c.DaysActivatedInBillingPeriod,
                    d.c.CurrentCarrierRatePlanId,
                )
                .where(d.c.InstanceId == instance_id, d.c.OptimizationCommGroupId == comm_group_id)
                .order_by(d.c.AmopDeviceId)
            ).all()
        return frame_of(rows, ["device_id", "comm_plan", "usage", "sms", "activated", "days", "current"])

    frame = devices() if cache is None else cache.get_or_load(instance_id, comm_group_id, devices)
    days = int((ins.BillingPeriodEndDate - ins.BillingPeriodStartDate).days) or 30
    proration = proration_factor(
        frame.days.to_numpy(dtype=float),
        days,
        uses_proration=bool(sp),
        activated_in_period=frame.activated.to_numpy(dtype=bool),
    )
    key = ",".join(str(p.plan_id) for p in plans)
    comm = {name: [p.plan_id for p in plans] for name in sorted(set(frame.comm_plan))}
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
    best: tuple[float, int, Any] | None = None  # (cost, queue id, assignment) since the last checkpoint
    began = last = time.monotonic()
    stopped = False
    for chunk_start in range(0, len(pending), queues_per_instance):
        if deadline is not None and time.monotonic() > deadline:
            stopped = True
            break
        chunk = pending[chunk_start : chunk_start + queues_per_instance]
        candidate = legacy.evaluate_sequences(group, [sequences[qid] for qid in chunk], tables=tables)
        # Strictly cheaper at the stored precision, as record-if-better decides: ties keep the earliest.
        if best is None or round(candidate.cost, 4) < round(best[0], 4):
            best = (candidate.cost, chunk[candidate.index], candidate.assignment)
        done += chunk
        if time.monotonic() - last >= checkpoint_seconds or chunk_start + len(chunk) >= len(pending):
            recorded += _checkpoint(engine, comm_group_id, group, done, best, began, period_id)
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
) -> tuple[int, list[int], dict[int, list[int]], int | None]:
    """Finished count, pending queue ids, their sequences (local plan indices), the billing period id."""
    q, qrp = s.optimization_queue, s.queue_rate_plan
    with engine.connect() as conn:
        queues = conn.execute(
            select(q.c.Id, q.c.RunEndTime)
            .where(
                q.c.CommPlanGroupId == comm_group_id,
                q.c.QueueKind == KIND_SEQUENCE,
                q.c.SequenceIndex >= start,
                q.c.SequenceIndex < stop,
            )
            .order_by(q.c.SequenceIndex)
        ).all()
        pending = [int(r.Id) for r in queues if r.RunEndTime is None]
        _, group_plan_ids = group_plans(conn, comm_group_id)
        plan_rows = (
            conn.execute(
                select(qrp.c.QueueId, qrp.c.CommGroup_RatePlanId)
                .where(qrp.c.QueueId.in_(pending))
                .order_by(qrp.c.QueueId, qrp.c.SequenceOrder)
            ).all()
            if pending
            else []
        )
        period_id = conn.execute(
            select(s.optimization_instance.c.OptimizationBillingPeriodId)
            .join(s.comm_group, s.comm_group.c.InstanceId == s.optimization_instance.c.Id)
            .where(s.comm_group.c.Id == comm_group_id)
        ).scalar_one()
    if len(queues) != stop - start:
        raise RuntimeError(
            f"comm group {comm_group_id}: {len(queues)} queues for sequences [{start}, {stop}); "
            "the queue batch was not written"
        )
    local = {gp: i for i, gp in enumerate(group_plan_ids)}
    sequences: dict[int, list[int]] = {}
    for row in plan_rows:
        sequences.setdefault(int(row.QueueId), []).append(local[int(row.CommGroup_RatePlanId)])
    return len(queues) - len(pending), pending, sequences, period_id


def _checkpoint(
    engine: Engine,
    comm_group_id: int,
    group: GroupProblem,
    queue_ids: list[int],
    best: tuple[float, int, Any] | None,
    began: float,
    period_id: int | None,
) -> int:
    """One transaction: record ``best`` if better, finish ``queue_ids``; returns 1 if recorded, else 0."""
    started = utcnow() - dt.timedelta(seconds=time.monotonic() - began)
    with engine.begin() as conn:
        recorded = best is not None and record_if_better(
            conn, comm_group_id, best[1], group, best[2], period_id=period_id
        )
        conn.execute(
            update(s.optimization_queue)
            .where(s.optimization_queue.c.Id.in_(queue_ids))
            .values(
                RunStatusId=int(OptimizationStatus.CompleteWithSuccess),
                RunStartTime=started,
                RunEndTime=utcnow(),
            )
        )
    return int(recorded)


def record_if_better(
    conn: Connection,
    comm_group_id: int,
    queue_id: int,
    group: GroupProblem,
    assignment,
    *,
    period_id: int | None,
) -> bool:
    """Record ``assignment`` against ``queue_id`` only if strictly cheaper than the group's best so far."""
    q = s.optimization_queue
    lowest = conn.execute(
        select(func.min(q.c.TotalCost)).where(
            q.c.CommPlanGroupId == comm_group_id, q.c.TotalCost.is_not(None)
        )
    ).scalar()
    total = evaluate(group, assignment).total
    if lowest is not None and not round(total, 4) < float(lowest):
        return False
    _record(conn, queue_id, group, assignment, period_id=period_id)
    return True


def _record(
    conn: Connection, queue_id: int, group: GroupProblem, assignment, *, period_id: int | None
) -> float:
    """Write a queue's device result rows (replacing any) and its totals; returns the total."""
    breakdown = evaluate(group, assignment)
    staging = s.device_result_staging
    conn.execute(delete(staging).where(staging.c.QueueId == queue_id))
    bulk_insert(
        conn,
        staging,
        result_rows(queue_id, group, assignment, breakdown, period_id=period_id, now=utcnow()),
        columns=RESULT_COLUMNS,
    )
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
    return breakdown.total


def _finish_queues(conn: Connection, queue_ids: Sequence[int], status: OptimizationStatus) -> None:
    conn.execute(
        update(s.optimization_queue)
        .where(s.optimization_queue.c.Id.in_(list(queue_ids)))
        .values(RunStatusId=int(status), RunEndTime=utcnow())
    )


def run_engine_for_group(
    engine: Engine, *, comm_group_id: int, solve: Callable[..., Any], time_limit: float | None = None
) -> dict[str, Any]:
    """Solve a comm group with an engine (default: optimal) and record it as the group's engine queue."""
    with engine.connect() as conn:
        instance = conn.execute(
            select(s.optimization_instance)
            .join(s.comm_group, s.comm_group.c.InstanceId == s.optimization_instance.c.Id)
            .where(s.comm_group.c.Id == comm_group_id)
        ).one()
        existing = conn.execute(
            select(
                s.optimization_queue.c.Id, s.optimization_queue.c.RunEndTime, s.optimization_queue.c.TotalCost
            ).where(
                s.optimization_queue.c.CommPlanGroupId == comm_group_id,
                s.optimization_queue.c.QueueKind == KIND_ENGINE,
            )
        ).first()
    if existing is not None and existing.RunEndTime is not None:
        return {
            "comm_group_id": comm_group_id,
            "queue_id": int(existing.Id),
            "cost": float(existing.TotalCost),
            "skipped": True,
        }
    group = load_group(engine, comm_group_id)
    from include.carrier_optimization.core.domain import Problem

    result = solve(Problem((group,), days_in_period=30), time_limit=time_limit)
    if result.assignment is None:
        raise RuntimeError(f"comm group {comm_group_id}: engine failed: {result.message}")
    (group_result,) = result.groups
    request = Request(tenant_id=instance.TenantId, service_provider_id=instance.ServiceProviderId)
    with engine.begin() as conn:
        queue_id = _insert_queue(conn, instance._mapping, request, comm_group_id, KIND_ENGINE, 0)
        total = _record(
            conn, queue_id, group, group_result.assignment, period_id=instance.OptimizationBillingPeriodId
        )
        _finish_queues(conn, [queue_id], OptimizationStatus.CompleteWithSuccess)
        conn.execute(
            update(s.comm_group_summary)
            .where(s.comm_group_summary.c.CommGroupId == comm_group_id)
            .values(
                EngineCost=round(total, 4),
                LowerBound=None if group_result.lower_bound is None else round(group_result.lower_bound, 4),
                EngineSeconds=round(result.seconds, 3),
                PoolPrices=json.dumps({str(k): round(v, 6) for k, v in group_result.pool_prices.items()}),
            )
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


# -- winners ----------------------------------------------------------------------------------------


def select_winners(engine: Engine, *, instance_id: int) -> dict[str, Any]:
    """Per comm group: the cheapest finished queue wins (ties: lowest id); close stragglers, drop losers.

    The winners' rows move from staging to ``OptimizationDeviceResult``; the losers' staging rows and
    queue rate plans are removed (the legacy cleanup procedure); the instance ends ``CompleteWithSuccess``.
    Returns a small summary: per group the winner and the figures of the report.
    """
    q, staging, final = s.optimization_queue, s.device_result_staging, s.device_result
    summary = s.comm_group_summary
    groups = []
    with engine.begin() as conn:
        for row in conn.execute(
            select(summary).where(summary.c.InstanceId == instance_id).order_by(summary.c.CommGroupId)
        ).all():
            group_id = int(row.CommGroupId)
            conn.execute(
                update(q)
                .where(q.c.CommPlanGroupId == group_id, q.c.RunEndTime.is_(None))
                .values(
                    RunEndTime=utcnow(),
                    RunStatusId=int(OptimizationStatus.CompleteWithErrors),
                    TotalCost=None,
                )
            )
            winner = conn.execute(
                select(q.c.Id, q.c.QueueKind, q.c.TotalCost)
                .where(
                    q.c.CommPlanGroupId == group_id, q.c.TotalCost.is_not(None), q.c.RunEndTime.is_not(None)
                )
                .order_by(q.c.TotalCost, q.c.Id)
                .limit(1)
            ).one()
            losers = (
                select(q.c.Id).where(q.c.CommPlanGroupId == group_id, q.c.Id != winner.Id).scalar_subquery()
            )
            conn.execute(delete(staging).where(staging.c.QueueId.in_(losers)))
            conn.execute(delete(s.queue_rate_plan).where(s.queue_rate_plan.c.QueueId.in_(losers)))
            conn.execute(delete(final).where(final.c.QueueId == winner.Id))
            columns = [c.name for c in final.columns if c.name != "Id"]
            conn.execute(
                final.insert().from_select(
                    columns, select(*[staging.c[c] for c in columns]).where(staging.c.QueueId == winner.Id)
                )
            )
            changes = conn.execute(
                select(func.count())
                .select_from(final)
                .join(
                    s.optimization_device,
                    and_(
                        s.optimization_device.c.AmopDeviceId == final.c.AmopDeviceId,
                        s.optimization_device.c.InstanceId == instance_id,
                    ),
                )
                .where(
                    final.c.QueueId == winner.Id,
                    s.optimization_device.c.CurrentCarrierRatePlanId != final.c.AssignedCarrierRatePlanId,
                )
            ).scalar_one()
            conn.execute(
                update(summary)
                .where(summary.c.CommGroupId == group_id)
                .values(
                    WinnerQueueId=winner.Id,
                    WinnerKind=winner.QueueKind,
                    WinnerCost=winner.TotalCost,
                    PlanChanges=int(changes),
                )
            )
            groups.append(
                {
                    "comm_group_id": group_id,
                    "winner_queue_id": int(winner.Id),
                    "winner_kind": winner.QueueKind,
                    "cost": float(winner.TotalCost),
                    "current_cost": optional_float(row.CurrentCost),
                    "lower_bound": optional_float(row.LowerBound),
                    "devices": int(row.DeviceCount),
                    "changes": int(changes),
                }
            )
        conn.execute(
            update(s.optimization_instance)
            .where(s.optimization_instance.c.Id == instance_id)
            # a run resumed after a failure (a cleared task) ends without the error of its failed try
            .values(
                RunStatusId=int(OptimizationStatus.CompleteWithSuccess),
                RunEndTime=utcnow(),
                ErrorMessage=None,
            )
        )
    return savings_summary(instance_id, groups)

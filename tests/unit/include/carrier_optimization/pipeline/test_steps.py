"""The pipeline steps on the AMOP tables (SQLite and PostgreSQL): idempotency, record-if-better, winners."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import func, select, update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet

TENANT = TenantSpec(tenant_id=3, name="unit", service_provider_id=301)
REQUEST = pipeline.Request(tenant_id=3, service_provider_id=301)
SUCCESS = int(OptimizationStatus.CompleteWithSuccess)
COUNTED = (
    s.optimization_session,
    s.optimization_instance,
    s.comm_group,
    s.comm_group_comm_plan,
    s.comm_group_rate_plan,
    s.comm_group_summary,
    s.optimization_device,
    s.optimization_queue,
    s.queue_rate_plan,
    s.device_result_staging,
    s.device_result,
)


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in COUNTED}


@pytest.fixture
def fleet(db_engine):
    end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=3)).replace(microsecond=0)
    fleet = generate_fleet(60, seed=11, tenant=TENANT, period_end=end)
    AmopRepository(db_engine).write_fleet(fleet)
    return fleet


@pytest.fixture
def session(db_engine, fleet):
    return pipeline.open_session(db_engine, REQUEST, run_key="dag/run-1")


def prepare(engine, session, **kwargs):
    return pipeline.prepare_instance(
        engine, session_id=session["session_id"], request=REQUEST, **({"batch_size": 50} | kwargs)
    )


def stub_solver(problem, *, time_limit=None):
    """An engine stand-in (no HiGHS): every device on its base plan."""
    (group,) = problem.groups
    assignment = legacy.base_assignment(group)
    result = SimpleNamespace(assignment=assignment, lower_bound=None, gap=None, pool_prices={})
    return SimpleNamespace(assignment=assignment, groups=(result,), seconds=0.01, engine="stub", message="ok")


# -- session -------------------------------------------------------------------------------------------


def test_open_session_is_idempotent_per_run(db_engine, fleet):
    first = pipeline.open_session(db_engine, REQUEST, run_key="dag/run-1")
    again = pipeline.open_session(db_engine, REQUEST, run_key="dag/run-1")
    assert again == {**first, "resumed": True}
    assert first["resumed"] is False
    assert counts(db_engine)["OptimizationSession"] == 1


def test_open_session_refuses_while_another_runs(db_engine, session):
    prepare(db_engine, session)
    before = counts(db_engine)
    with pytest.raises(pipeline.RunRefused, match=f"session {session['session_id']}"):
        pipeline.open_session(db_engine, REQUEST, run_key="dag/run-2")
    assert counts(db_engine) == before


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (pipeline.Request(tenant_id=3, service_provider_id=999), "service provider 999 does not exist"),
        (pipeline.Request(tenant_id=3, service_provider_id=301, bill_period_id=999), "billing period 999"),
        (pipeline.Request(tenant_id=3, service_provider_id=301, session_id=999), "session 999"),
    ],
    ids=["unknown-provider", "unknown-period", "unknown-session"],
)
def test_open_session_names_what_is_missing(db_engine, fleet, request_, match):
    with pytest.raises(pipeline.RequestError, match=match):
        pipeline.open_session(db_engine, request_, run_key="dag/run-1")
    assert counts(db_engine)["OptimizationSession"] == 0


def test_a_finished_session_is_not_optimized_again_from_another_run(db_engine, session):
    plan = prepare(db_engine, session, engine_name="optimal")
    for group in plan.groups:
        pipeline.run_engine_for_group(db_engine, comm_group_id=group["comm_group_id"], solve=stub_solver)
    pipeline.select_winners(db_engine, instance_id=plan.instance_id)
    before = counts(db_engine)
    duplicate = pipeline.Request(
        tenant_id=3, service_provider_id=301, session_id=session["session_id"], message_id="m-2"
    )
    with pytest.raises(
        pipeline.SessionFinished, match=f"session {session['session_id']} already finished.*m-2"
    ):
        pipeline.open_session(db_engine, duplicate, run_key="dag/run-2")
    assert counts(db_engine) == before
    # The run that finished it still finds its session (a cleared or retried step of that run).
    assert (
        pipeline.open_session(db_engine, REQUEST, run_key="dag/run-1")["session_id"] == session["session_id"]
    )


# -- count: prepare_instance ---------------------------------------------------------------------------


def test_prepare_instance_twice_writes_once(db_engine, session, fleet):
    first = prepare(db_engine, session)
    written = counts(db_engine)
    second = prepare(db_engine, session)
    assert second == first
    assert counts(db_engine) == written
    assert first.device_count == len(fleet.devices) == written["OptimizationDevice"]
    assert written["OptimizationQueue"] == written["OptimizationCommGroup"] == len(first.groups)
    instance = AmopRepository(db_engine).instance(first.instance_id)
    assert instance["RunStatusId"] == int(OptimizationStatus.RunningPermutations)


def test_batches_cover_each_group_s_sequences_once(db_engine, session):
    plan = prepare(db_engine, session)
    for group in plan.groups:
        ranges = sorted(
            (b["start"], b["stop"]) for b in plan.batches if b["comm_group_id"] == group["comm_group_id"]
        )
        covered = [i for a, b in ranges for i in range(a, b)]
        assert covered == list(range(group["sequences"])), group
    assert json.loads(json.dumps(plan.to_dict())) == plan.to_dict()


def test_engine_optimal_yields_no_batches(db_engine, session):
    plan = prepare(db_engine, session, engine_name="optimal")
    assert plan.batches == [] and plan.groups


def test_batches_stay_within_max_batches(db_engine, session):
    plan = prepare(db_engine, session, batch_size=1, max_batches=7)
    assert len(plan.batches) <= 7 + len(plan.groups)  # one partial batch per group at most


def test_invalid_plans_end_the_instance_and_name_the_plans(db_engine, session, fleet):
    bad = sorted(int(i) for i in fleet.plans.plan_id.iloc[[1, 4]])
    with db_engine.begin() as conn:
        conn.execute(
            update(s.carrier_rate_plan).where(s.carrier_rate_plan.c.Id == bad[0]).values(OverageRateCost=0)
        )
        conn.execute(
            update(s.carrier_rate_plan)
            .where(s.carrier_rate_plan.c.Id == bad[1])
            .values(DataPerOverageCharge=-5)
        )
    plan = prepare(db_engine, session)
    assert plan.error.startswith(pipeline.INVALID_PLANS_MESSAGE)
    assert f"plan_id {bad[0]}" in plan.error and f"plan_id {bad[1]}" in plan.error
    instance = AmopRepository(db_engine).instance(plan.instance_id)
    assert instance["RunStatusId"] == int(OptimizationStatus.CompleteWithErrors)
    assert instance["ErrorMessage"] == plan.error
    written = counts(db_engine)
    assert (
        written["OptimizationCommGroup"] == written["OptimizationDevice"] == written["OptimizationQueue"] == 0
    )
    assert prepare(db_engine, session).error == plan.error, "a rerun reports the same error"


def test_no_plans_ends_the_instance(db_engine, session):
    with db_engine.begin() as conn:
        conn.execute(update(s.communication_plan).values(IsDeleted=True))
    plan = prepare(db_engine, session)
    assert plan.error == pipeline.NO_PLANS_MESSAGE


# -- queues --------------------------------------------------------------------------------------------


def test_write_queue_batch_twice_writes_no_duplicates(db_engine, session):
    plan = prepare(db_engine, session)
    batch = plan.batches[0]
    first = pipeline.write_queue_batch(db_engine, **batch)
    written = counts(db_engine)
    assert first["queues"] == batch["stop"] - batch["start"] > 0
    assert pipeline.write_queue_batch(db_engine, **batch) == {"queues": 0, "queue_rate_plans": 0}
    assert counts(db_engine) == written


def test_queues_written_completes_with_the_last_batch(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.batches[0]["comm_group_id"]
    for batch in plan.batches[:-1]:
        pipeline.write_queue_batch(db_engine, **batch)
    before = pipeline.queues_written(db_engine, comm_group_id=group_id)
    pipeline.write_queue_batch(db_engine, **plan.batches[-1])
    after = pipeline.queues_written(db_engine, comm_group_id=group_id)
    assert not before["complete"] and after["complete"]
    assert after["expected"] == after["written"] == sum(g["sequences"] for g in plan.groups)
    assert after["devices"] == plan.device_count


# -- optimizer, record-if-better, engine ---------------------------------------------------------------


def test_optimizer_batch_twice_evaluates_once(db_engine, session):
    plan = prepare(db_engine, session)
    batch = plan.batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    cursors = []
    first = pipeline.run_optimizer_batch(db_engine, queues_per_instance=7, on_chunk=cursors.append, **batch)
    written = counts(db_engine)
    second = pipeline.run_optimizer_batch(db_engine, queues_per_instance=7, **batch)
    assert first.done and first.evaluated == batch["stop"] - batch["start"]
    assert cursors[-1] == first.cursor == first.evaluated
    assert second.done and second.evaluated == second.recorded == 0
    assert counts(db_engine) == written


def test_optimizer_batch_stops_at_the_deadline_and_resumes(db_engine, session):
    plan = prepare(db_engine, session)
    batch = plan.batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    stopped = pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, deadline=0.0, **batch)
    assert not stopped.done and stopped.evaluated == 0
    resumed = pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, **batch)
    assert resumed.done and resumed.evaluated == batch["stop"] - batch["start"]


def test_optimizer_batch_without_its_queues_fails(db_engine, session):
    batch = prepare(db_engine, session).batches[0]
    with pytest.raises(RuntimeError, match="the queue batch was not written"):
        pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, **batch)


def test_record_if_better_is_strict(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.groups[0]["comm_group_id"]
    pipeline.write_queue_batch(db_engine, **plan.batches[0])
    group = pipeline.load_group(db_engine, group_id)
    base = legacy.base_assignment(group)
    q = s.optimization_queue
    with db_engine.connect() as conn:
        queue_id = conn.execute(
            select(q.c.Id).where(q.c.CommPlanGroupId == group_id, q.c.QueueKind == "sequence").limit(1)
        ).scalar_one()
    with db_engine.begin() as conn:  # the same cost as the base queue: not recorded
        assert not pipeline.record_if_better(conn, group_id, queue_id, group, base, period_id=None)
    with db_engine.begin() as conn:  # the group's best made one cent worse: now strictly better
        conn.execute(
            update(q)
            .where(q.c.CommPlanGroupId == group_id, q.c.QueueKind == "base")
            .values(TotalCost=q.c.TotalCost + 0.01)
        )
        assert pipeline.record_if_better(conn, group_id, queue_id, group, base, period_id=None)
    with db_engine.connect() as conn:
        rows = conn.execute(
            select(func.count())
            .select_from(s.device_result_staging)
            .where(s.device_result_staging.c.QueueId == queue_id)
        ).scalar_one()
    assert rows == group.n_devices


def test_engine_for_group_twice_records_once(db_engine, session):
    plan = prepare(db_engine, session, engine_name="optimal")
    group_id = plan.groups[0]["comm_group_id"]
    first = pipeline.run_engine_for_group(db_engine, comm_group_id=group_id, solve=stub_solver)
    written = counts(db_engine)
    second = pipeline.run_engine_for_group(db_engine, comm_group_id=group_id, solve=stub_solver)
    assert second == {
        "comm_group_id": group_id,
        "queue_id": first["queue_id"],
        "cost": first["cost"],
        "skipped": True,
    }
    assert counts(db_engine) == written


# -- winners -------------------------------------------------------------------------------------------


def test_winner_ties_go_to_the_lowest_queue_id(db_engine, session):
    plan = prepare(db_engine, session, engine_name="optimal")
    engines = {
        g["comm_group_id"]: pipeline.run_engine_for_group(
            db_engine, comm_group_id=g["comm_group_id"], solve=stub_solver
        )
        for g in plan.groups
    }
    q = s.optimization_queue
    with db_engine.begin() as conn:  # the engine queue (higher id) is made to tie with the base queue
        for group_id in engines:
            base_cost = conn.execute(
                select(q.c.TotalCost).where(q.c.CommPlanGroupId == group_id, q.c.QueueKind == "base")
            ).scalar_one()
            conn.execute(update(q).where(q.c.CommPlanGroupId == group_id).values(TotalCost=base_cost))
    summary = pipeline.select_winners(db_engine, instance_id=plan.instance_id)
    with db_engine.connect() as conn:
        base_ids = dict(
            conn.execute(select(q.c.CommPlanGroupId, q.c.Id).where(q.c.QueueKind == "base")).all()
        )
    assert {g["comm_group_id"]: g["winner_queue_id"] for g in summary["groups"]} == base_ids
    assert all(base_ids[g] < e["queue_id"] for g, e in engines.items())


def test_select_winners_twice_keeps_one_result_per_device(db_engine, session):
    plan = prepare(db_engine, session)
    for batch in plan.batches[:2]:
        pipeline.write_queue_batch(db_engine, **batch)
        pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, **batch)
    pipeline.write_queue_batch(db_engine, **plan.batches[2])  # never evaluated: stragglers
    first = pipeline.select_winners(db_engine, instance_id=plan.instance_id)
    written = counts(db_engine)
    second = pipeline.select_winners(db_engine, instance_id=plan.instance_id)
    assert second == first
    assert counts(db_engine) == written
    assert written["OptimizationDeviceResult"] == plan.device_count
    instance = AmopRepository(db_engine).instance(plan.instance_id)
    assert instance["RunStatusId"] == SUCCESS
    q = s.optimization_queue
    with db_engine.connect() as conn:
        open_queues = conn.execute(
            select(func.count()).select_from(q).where(q.c.RunEndTime.is_(None))
        ).scalar_one()
        closed = conn.execute(
            select(q.c.RunStatusId, q.c.TotalCost).where(
                q.c.RunStatusId == int(OptimizationStatus.CompleteWithErrors)
            )
        ).all()
    assert open_queues == 0
    assert closed and all(cost is None for _, cost in closed), "stragglers closed with errors and no cost"
    assert first["optimized_cost"] <= first["current_cost"] + 0.01
    assert np.isclose(first["savings"], first["current_cost"] - first["optimized_cost"], atol=0.011)


def test_prepare_instance_reopens_an_instance_a_failed_step_ended(db_engine, session):
    first = prepare(db_engine, session)
    repo = AmopRepository(db_engine)
    repo.set_instance_status(
        first.instance_id, OptimizationStatus.CompleteWithErrors, error="Task optimize failed"
    )
    written = counts(db_engine)
    again = prepare(db_engine, session)
    assert again == first and again.error is None
    instance = repo.instance(first.instance_id)
    assert instance["RunStatusId"] == int(OptimizationStatus.RunningPermutations)
    assert instance["ErrorMessage"] is None and instance["RunEndTime"] is None
    assert counts(db_engine) == written
    assert not pipeline.reopen_instance(db_engine, first.instance_id), "only an ended instance is reopened"


def test_fixed_plans_are_validated_again_on_a_rerun(db_engine, session, fleet):
    plan_id = int(fleet.plans.plan_id.iloc[0])
    rate = s.carrier_rate_plan.c
    with db_engine.begin() as conn:
        conn.execute(update(s.carrier_rate_plan).where(rate.Id == plan_id).values(OverageRateCost=0))
    assert f"plan_id {plan_id}" in prepare(db_engine, session).error
    with db_engine.begin() as conn:
        conn.execute(update(s.carrier_rate_plan).where(rate.Id == plan_id).values(OverageRateCost=0.5))
    rerun = prepare(db_engine, session)
    assert rerun.error is None and rerun.device_count == len(fleet.devices)
    assert counts(db_engine)["OptimizationInstance"] == 1


def test_winners_of_a_run_resumed_after_a_failure_clear_its_error(db_engine, session):
    plan = prepare(db_engine, session)
    repo = AmopRepository(db_engine)
    repo.set_instance_status(plan.instance_id, OptimizationStatus.CompleteWithErrors, error="optimize killed")
    for batch in plan.batches:  # the cleared tasks run again
        pipeline.write_queue_batch(db_engine, **batch)
        pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, **batch)
    pipeline.select_winners(db_engine, instance_id=plan.instance_id)
    instance = repo.instance(plan.instance_id)
    assert (instance["RunStatusId"], instance["ErrorMessage"]) == (SUCCESS, None)

"""The count step (SQLite and PostgreSQL): set-up written once, batches, plan errors, reopening."""

from __future__ import annotations

import json

from sqlalchemy import update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from tests.unit.include.carrier_optimization.pipeline.conftest import counts, prepare


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

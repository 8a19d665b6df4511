"""The winners step (SQLite and PostgreSQL): ties, idempotency, stragglers, a resumed run."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select, update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from tests.unit.include.carrier_optimization.pipeline.conftest import counts, prepare, stub_solver

SUCCESS = int(OptimizationStatus.CompleteWithSuccess)


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


def test_the_base_queue_s_rows_are_written_only_for_the_groups_it_wins(db_engine, session):
    plan = prepare(db_engine, session, engine_name="optimal")
    q, staging, final = s.optimization_queue, s.device_result_staging, s.device_result
    groups = [g["comm_group_id"] for g in plan.groups]
    for group_id in groups:
        pipeline.run_engine_for_group(db_engine, comm_group_id=group_id, solve=stub_solver)
    base_won, engine_won = groups[0], groups[1:]
    assert engine_won, "the fleet has several comm groups"
    with db_engine.begin() as conn:
        bases = dict(conn.execute(select(q.c.CommPlanGroupId, q.c.Id).where(q.c.QueueKind == "base")).all())
        staged = conn.execute(select(func.count()).where(staging.c.QueueId.in_(bases.values()))).scalar_one()
        assert staged == 0, "the count step stores the base queues' totals only"
        for group_id in engine_won:  # their engine queue is made cheaper than the base
            conn.execute(
                update(q)
                .where(q.c.CommPlanGroupId == group_id, q.c.QueueKind == "engine")
                .values(TotalCost=q.c.TotalCost - 1)
            )
    summary = pipeline.select_winners(db_engine, instance_id=plan.instance_id)
    winners = {g["comm_group_id"]: g["winner_kind"] for g in summary["groups"]}
    assert winners == {base_won: "base"} | dict.fromkeys(engine_won, "engine")
    device = s.optimization_device
    with db_engine.connect() as conn:
        per_queue = select(final.c.QueueId, func.count(), func.sum(final.c.ChargeAmt)).group_by(
            final.c.QueueId
        )
        kept = {queue_id: (n, charged) for queue_id, n, charged in conn.execute(per_queue)}
        base_cost = conn.execute(select(q.c.TotalCost).where(q.c.Id == bases[base_won])).scalar_one()
        sims = conn.execute(
            select(func.count()).where(device.c.OptimizationCommGroupId == base_won)
        ).scalar_one()
    n_rows, charged = kept[bases[base_won]]
    assert n_rows == sims
    assert round(float(charged), 2) == round(float(base_cost), 2), "the rows add up to the base total"
    assert not any(bases[g] in kept for g in engine_won), "a base queue that lost never got rows"

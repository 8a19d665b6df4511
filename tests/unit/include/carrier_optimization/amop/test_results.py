"""The device result rows of queues (SQLite and PostgreSQL): write, best cost, winner, plan changes."""

from __future__ import annotations

from sqlalchemy import func, select, update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import results
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.core.cost import evaluate
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.pipeline.results import record
from tests.unit.include.carrier_optimization.pipeline import conftest as pipeline_setup

# The pipeline tests' 60-SIM fleet, its session and the count step.
fleet, session, prepare = pipeline_setup.fleet, pipeline_setup.session, pipeline_setup.prepare
q = s.optimization_queue


def rows_of(conn, table, queue_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(table).where(table.c.QueueId == queue_id)
    ).scalar_one()


def base_queue(conn, group_id: int):
    return conn.execute(
        select(q.c.Id, q.c.TotalCost).where(q.c.CommPlanGroupId == group_id, q.c.QueueKind == "base")
    ).one()


def test_write_result_replaces_the_queue_s_rows_and_totals(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.groups[0]["comm_group_id"]
    group = pipeline.load_group(db_engine, group_id)
    assignment = legacy.base_assignment(group)
    breakdown = evaluate(group, assignment)
    with db_engine.begin() as conn:
        base = base_queue(conn, group_id)
        assert float(results.lowest_cost(conn, group_id)) == float(base.TotalCost)
        results.write_result(conn, base.Id, group, assignment, breakdown, period_id=None)
        assert rows_of(conn, s.device_result_staging, base.Id) == group.n_devices, "replaced, not added"
        totals = conn.execute(
            select(q.c.TotalCost, q.c.TotalRateChargeAmt, q.c.TotalOverageChargeAmt).where(q.c.Id == base.Id)
        ).one()
    assert tuple(float(v) for v in totals) == (
        round(breakdown.total, 4),
        round(breakdown.total_fixed, 4),
        round(breakdown.total_overage, 4),
    )


def test_lowest_cost_of_a_group_without_costs_is_none(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.groups[0]["comm_group_id"]
    with db_engine.begin() as conn:
        conn.execute(update(q).where(q.c.CommPlanGroupId == group_id).values(TotalCost=None))
        assert results.lowest_cost(conn, group_id) is None


def test_the_winner_s_rows_become_the_results(db_engine, session):
    plan = prepare(db_engine, session, engine_name="optimal")
    group_id = plan.groups[0]["comm_group_id"]
    engine_run = pipeline.run_engine_for_group(
        db_engine, comm_group_id=group_id, solve=pipeline_setup.stub_solver
    )
    group = pipeline.load_group(db_engine, group_id)
    with db_engine.begin() as conn:
        base = base_queue(conn, group_id)
        winner = results.winning_queue(conn, group_id)
        assert (winner.Id, winner.QueueKind) == (base.Id, "base"), "a tie goes to the lowest queue id"
        assert not results.has_rows(conn, base.Id), "the count step stores the base queue's totals only"
        record(conn, base.Id, group, legacy.base_assignment(group), period_id=None)  # as winners do
        assert results.has_rows(conn, base.Id)
        results.keep_winner(conn, group_id, winner.Id)
        results.keep_winner(conn, group_id, winner.Id)  # again: still one row per SIM
        kept = rows_of(conn, s.device_result, winner.Id)
        dropped = rows_of(conn, s.device_result_staging, engine_run["queue_id"])
        changes = results.plan_changes(conn, plan.instance_id, winner.Id)
    base_plans = legacy.base_assignment(group)
    moved = (group.current_plan >= 0) & (group.current_plan != base_plans)  # SIMs without a plan: not counted
    assert kept == group.n_devices and dropped == 0
    assert changes == int(moved.sum())

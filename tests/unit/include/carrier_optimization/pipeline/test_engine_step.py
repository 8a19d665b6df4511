"""The engine step (SQLite and PostgreSQL): one engine queue per comm group, recorded once."""

from __future__ import annotations

from include.carrier_optimization import pipeline
from tests.unit.include.carrier_optimization.pipeline.conftest import counts, prepare, stub_solver


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

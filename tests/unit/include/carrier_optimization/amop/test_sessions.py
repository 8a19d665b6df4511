"""Reads of the sessions page (SQLite and PostgreSQL): tenants, sessions, instances, reported instances."""

from __future__ import annotations

from sqlalchemy import update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.sessions import (
    instance_tenant_id,
    newest_sessions,
    reported_instances,
    session_instances,
    tenant_ids,
)
from include.carrier_optimization.core.fleet import generate_fleet
from tests.conftest import finish_instance, start_instance


def populate(engine) -> dict:
    """Tenant 1: a finished, reported instance, a running one, a session without instance; tenant 2: one."""
    fleet = generate_fleet(40, seed=3)
    repo = AmopRepository(engine)
    period_id = repo.write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True, manual=True
    )
    done_session, done = start_instance(engine, request, run_key="dag/done", now=fleet.as_of)
    finish_instance(engine, done_session, done)
    running_session, running = start_instance(engine, request, run_key="dag/running", now=fleet.as_of)
    waiting = repo.create_session(1, 101, period_id)
    other = repo.create_session(2, 101, period_id)
    return {
        "done": (done_session["session_id"], done.instance_id),
        "running": (running_session["session_id"], running.instance_id),
        "waiting": waiting["session_id"],
        "other": other["session_id"],
    }


def test_tenants_with_sessions_and_the_tenant_of_an_instance(db_engine):
    data = populate(db_engine)
    assert tenant_ids(db_engine) == [1, 2]
    assert instance_tenant_id(db_engine, data["done"][1]) == 1
    assert instance_tenant_id(db_engine, 999) is None
    # Deleted sessions disappear.
    with db_engine.begin() as conn:
        conn.execute(
            update(s.optimization_session)
            .where(s.optimization_session.c.Id == data["other"])
            .values(IsDeleted=True)
        )
    assert tenant_ids(db_engine) == [1]


def test_newest_sessions_first_with_their_instances_and_reports(db_engine):
    data = populate(db_engine)
    sessions = newest_sessions(db_engine, 1, 10)
    assert [r.Id for r in sessions] == [data["waiting"], data["running"][0], data["done"][0]]
    assert {r.DisplayName for r in sessions} == {"Jasper AT&T"}
    assert [r.Id for r in newest_sessions(db_engine, 1, 1)] == [data["waiting"]]
    assert newest_sessions(db_engine, 99, 10) == []

    instances = session_instances(db_engine, [r.Id for r in sessions])
    assert [(r.OptimizationSessionId, r.Id) for r in instances] == [data["done"], data["running"]]
    assert session_instances(db_engine, []) == []

    ids = [r.Id for r in instances]
    assert reported_instances(db_engine, ids) == {data["done"][1]}
    assert reported_instances(db_engine, []) == set()

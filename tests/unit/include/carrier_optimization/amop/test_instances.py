"""The session and instance rows of a run (SQLite and PostgreSQL): run key, progress, status, end."""

from __future__ import annotations

from sqlalchemy import select

from include.carrier_optimization.amop import instances
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from tests.unit.include.carrier_optimization.pipeline import conftest as pipeline_setup

# The pipeline tests' 60-SIM fleet, its session and the count step.
fleet, session, prepare = pipeline_setup.fleet, pipeline_setup.session, pipeline_setup.prepare
REQUEST = pipeline_setup.REQUEST


def session_row(engine, session_id: int):
    ses = s.optimization_session
    with engine.connect() as conn:
        return conn.execute(select(ses).where(ses.c.Id == session_id)).one()


def test_run_key_and_progress_are_stored_on_the_session(db_engine, fleet):
    created = AmopRepository(db_engine).create_session(3, 301, 1)
    with db_engine.begin() as conn:
        instances.set_run_key(conn, created["session_id"], "dag/run-9")
        instances.set_session_progress(conn, created["session_id"], 40, error="boom")
    with db_engine.begin() as conn:
        instances.set_session_progress(conn, created["session_id"], 60, error=None)
    assert AmopRepository(db_engine).session_for_run("dag/run-9") == created
    row = session_row(db_engine, created["session_id"])
    assert (row.Progress, row.ErrorMessage) == (60, "boom"), "no error given: the stored one stays"


def test_finished_instance_is_found_only_once_it_ended_well(db_engine, session):
    plan = prepare(db_engine, session)
    key = {"session_id": session["session_id"], "service_provider_id": 301, "portal_type_id": 0}
    with db_engine.begin() as conn:
        assert instances.finished_instance_id(conn, **key) is None
        instances.finish(conn, plan.instance_id)
        assert instances.finished_instance_id(conn, **key) == plan.instance_id
        assert instances.finished_instance_id(conn, **(key | {"portal_type_id": 1})) is None
        row = instances.instance_row(conn, plan.instance_id)
    assert row.RunStatusId == int(OptimizationStatus.CompleteWithSuccess)
    assert row.RunEndTime is not None and row.ErrorMessage is None


def test_reopen_clears_the_error_and_the_end(db_engine, session):
    plan = prepare(db_engine, session)
    repo = AmopRepository(db_engine)
    repo.set_instance_status(plan.instance_id, OptimizationStatus.CompleteWithErrors, error="killed")
    with db_engine.begin() as conn:
        state = instances.status_and_error(conn, plan.instance_id)
        assert (state.RunStatusId, state.ErrorMessage) == (
            int(OptimizationStatus.CompleteWithErrors),
            "killed",
        )
        assert instances.has_comm_groups(conn, plan.instance_id)
        instances.reopen(conn, plan.instance_id, OptimizationStatus.RunningPermutations)
    row = repo.instance(plan.instance_id)
    assert row["RunStatusId"] == int(OptimizationStatus.RunningPermutations)
    assert row["ErrorMessage"] is None and row["RunEndTime"] is None


def test_set_up_status_and_device_count(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.groups[0]["comm_group_id"]
    with db_engine.begin() as conn:
        instances.set_status(conn, plan.instance_id, OptimizationStatus.CommGroupSetup)
        assert instances.status_and_error(conn, plan.instance_id).RunStatusId == int(
            OptimizationStatus.CommGroupSetup
        )
        instances.set_up_done(conn, plan.instance_id, 7)
        assert instances.device_count(conn, plan.instance_id) == 7
        assert instances.instance_of_group(conn, group_id).Id == plan.instance_id
        assert instances.status_and_error(conn, plan.instance_id).RunStatusId == int(
            OptimizationStatus.RunningPermutations
        )


def test_provider_uses_proration(db_engine, fleet):
    with db_engine.connect() as conn:
        assert instances.provider_uses_proration(conn, 301) is fleet.tenant.uses_proration
        assert instances.provider_uses_proration(conn, 999) is None

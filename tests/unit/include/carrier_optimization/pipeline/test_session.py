"""The session step on SQLite and PostgreSQL: one session per run, what is missing, the legacy guard."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository, utcnow
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet
from tests.unit.include.carrier_optimization.pipeline.conftest import REQUEST, counts, prepare, stub_solver

TENANT, P1, P2 = 4, 401, 402
SCHEDULED = pipeline.Request(tenant_id=TENANT, service_provider_id=P1)
FORM = pipeline.Request(tenant_id=TENANT, service_provider_id=P1, manual=True)


@pytest.fixture
def amop(db_engine):
    end = (utcnow() + dt.timedelta(days=3)).replace(microsecond=0)
    repo = AmopRepository(db_engine)
    for provider in (P1, P2):
        spec = TenantSpec(tenant_id=TENANT, name="guard", service_provider_id=provider)
        repo.write_fleet(generate_fleet(10, seed=provider, tenant=spec, period_end=end))
    return db_engine


def opened(engine, request: pipeline.Request, run: str) -> dict:
    return pipeline.open_session(engine, request, run_key=run)


def with_instance(engine, session: dict, provider: int, status: OptimizationStatus) -> int:
    repo = AmopRepository(engine)
    instance = repo.start_instance(
        session_id=session["session_id"],
        tenant_id=TENANT,
        service_provider_id=provider,
        billing_period=repo.billing_period(session["billing_period_id"]),
    )
    repo.set_instance_status(instance, status)
    return instance


def sessions(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(s.optimization_session)).scalar_one()


def test_a_syncing_session_refuses_scheduled_requests_but_not_explicit_ones(amop):
    first = opened(amop, SCHEDULED, "r1")
    pipeline.set_progress(amop, first["session_id"], 20)  # its device sync runs
    with pytest.raises(pipeline.RunRefused, match="is syncing"):
        opened(amop, SCHEDULED, "r2")
    assert sessions(amop) == 1  # a refused request writes nothing
    assert opened(amop, FORM, "r3")["resumed"] is False


def test_one_scheduled_optimization_per_provider_and_period_again_after_errors(amop):
    first = opened(amop, SCHEDULED, "r1")
    failed = with_instance(amop, first, P1, OptimizationStatus.CompleteWithErrors)
    second = opened(amop, SCHEDULED, "r2")  # the errors do not block
    assert second["session_id"] != first["session_id"] and failed
    with_instance(amop, second, P1, OptimizationStatus.CompleteWithSuccess)
    with pytest.raises(pipeline.RunRefused, match="already optimized service provider 401"):
        opened(amop, SCHEDULED, "r3")
    other = opened(amop, pipeline.Request(tenant_id=TENANT, service_provider_id=P2), "r4")
    assert other["resumed"] is False  # the other provider's period is its own


def test_a_person_can_always_re_run_after_a_finished_optimization(amop):
    done = opened(amop, SCHEDULED, "r1")
    with_instance(amop, done, P1, OptimizationStatus.CompleteWithSuccess)
    assert opened(amop, FORM, "r2")["session_id"] != done["session_id"]


@pytest.mark.parametrize(
    "request_",
    [SCHEDULED, FORM, pipeline.Request(tenant_id=TENANT, service_provider_id=P2)],
    ids=["scheduled", "form", "other-provider"],
)
def test_nothing_starts_while_an_optimization_of_the_tenant_runs(amop, request_):
    running = opened(amop, FORM, "r1")
    with_instance(amop, running, P1, OptimizationStatus.RunningPermutations)
    with pytest.raises(pipeline.RunRefused, match="Already Running"):
        opened(amop, request_, "r2")
    assert sessions(amop) == 1


def test_a_portal_session_is_resumed_unless_another_optimizes(amop):
    portal = AmopRepository(amop).create_session(TENANT, P2, opened(amop, FORM, "r0")["billing_period_id"])
    explicit = pipeline.Request(tenant_id=TENANT, service_provider_id=P2, session_id=portal["session_id"])
    running = opened(amop, FORM, "r1")
    instance = with_instance(amop, running, P1, OptimizationStatus.RunningPermutations)
    with pytest.raises(pipeline.RunRefused):
        opened(amop, explicit, "r2")
    with amop.begin() as conn:
        conn.execute(
            update(s.optimization_instance)
            .where(s.optimization_instance.c.Id == instance)
            .values(RunStatusId=int(OptimizationStatus.CompleteWithSuccess))
        )
    resumed = opened(amop, explicit, "r3")
    assert resumed["session_id"] == portal["session_id"] and resumed["resumed"] is True


# -- one session per run, what is missing ---------------------------------------------------------------


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

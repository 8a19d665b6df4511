"""Shared set-up of the pipeline step tests: a 60-SIM fleet, its session, the count step, row counts."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet

TENANT = TenantSpec(tenant_id=3, name="unit", service_provider_id=301)
REQUEST = pipeline.Request(tenant_id=3, service_provider_id=301)
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

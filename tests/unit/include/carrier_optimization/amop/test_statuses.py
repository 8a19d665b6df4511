"""Run status ids read by name from the OptimizationStatus lookup at run time (docs/architecture.md)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, select, update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.statuses import OptimizationStatus, bind_status_ids
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet
from tests.conftest import finish_instance

TENANT = TenantSpec(tenant_id=9, name="status", service_provider_id=901)
OFFSET = 40  # the lookup of this database numbers the statuses 41..46


def _renumber(engine, offset: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(s.optimization_status).values(Id=s.optimization_status.c.Id + offset))


def test_a_seeded_database_keeps_the_product_ids(db_engine):
    assert bind_status_ids(db_engine) == {status.name: int(status) for status in OptimizationStatus}


def test_a_lookup_without_a_status_is_refused_naming_it(db_engine):
    with db_engine.begin() as conn:
        conn.execute(delete(s.optimization_status).where(s.optimization_status.c.Name == "CleaningUp"))
    with pytest.raises(LookupError, match=r"^The OptimizationStatus lookup lacks CleaningUp \(it has "):
        bind_status_ids(db_engine)


def test_a_whole_run_writes_the_lookup_s_ids_and_reads_the_product_s(db_engine):
    _renumber(db_engine, OFFSET)
    assert bind_status_ids(db_engine)["CompleteWithErrors"] == 6 + OFFSET
    end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=3)).replace(microsecond=0)
    AmopRepository(db_engine).write_fleet(generate_fleet(40, seed=9, tenant=TENANT, period_end=end))
    request = pipeline.Request(tenant_id=9, service_provider_id=901)
    session = pipeline.open_session(db_engine, request, run_key="dag/status")
    plan = pipeline.prepare_instance(
        db_engine, session_id=session["session_id"], request=request, batch_size=20, engine_name="best"
    )
    assert plan.batches
    for batch in plan.batches:
        pipeline.write_queue_batch(db_engine, **batch)  # the bulk path (COPY on PostgreSQL)
        pipeline.run_optimizer_batch(db_engine, **batch, queues_per_instance=5)
    finish_instance(db_engine, session, plan)

    with db_engine.connect() as conn:  # raw values, as the portal and the AMOP views see them
        instance_raw = conn.exec_driver_sql('SELECT "RunStatusId" FROM "OptimizationInstance"').scalar_one()
        queue_raw = set(conn.exec_driver_sql('SELECT "RunStatusId" FROM "OptimizationQueue"').scalars())
    assert instance_raw == int(OptimizationStatus.CompleteWithSuccess) + OFFSET
    assert queue_raw and queue_raw <= {int(status) + OFFSET for status in OptimizationStatus}
    instance = AmopRepository(db_engine).instance(plan.instance_id)
    assert instance["RunStatusId"] == OptimizationStatus.CompleteWithSuccess
    with db_engine.connect() as conn:
        q = s.optimization_queue
        read = set(conn.execute(select(q.c.RunStatusId)).scalars())
    assert read == {raw - OFFSET for raw in queue_raw}

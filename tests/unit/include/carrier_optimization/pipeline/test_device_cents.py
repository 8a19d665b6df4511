"""Issue 12 §6: the device result rows of a queue add up to its invoice to the cent."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.engines.optimal import solve_optimal
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet

TENANT = TenantSpec(tenant_id=4, name="cents", service_provider_id=401)
REQUEST = pipeline.Request(tenant_id=4, service_provider_id=401)


@pytest.fixture
def plan(db_engine):
    end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=3)).replace(microsecond=0)
    AmopRepository(db_engine).write_fleet(generate_fleet(400, seed=5, tenant=TENANT, period_end=end))
    session = pipeline.open_session(db_engine, REQUEST, run_key="dag/cents")
    return pipeline.prepare_instance(
        db_engine, session_id=session["session_id"], request=REQUEST, batch_size=50, engine_name="optimal"
    )


def test_device_results_add_up_to_the_queue_total_to_the_cent(db_engine, plan):
    rows, q = s.device_result_staging, s.optimization_queue
    checked = 0
    for group in plan.groups:
        done = pipeline.run_engine_for_group(
            db_engine, comm_group_id=group["comm_group_id"], solve=solve_optimal
        )
        with db_engine.connect() as conn:
            total = conn.execute(select(q.c.TotalCost).where(q.c.Id == done["queue_id"])).scalar_one()
            devices = conn.execute(
                select(
                    rows.c.ChargeAmt, rows.c.SmsChargeAmount, rows.c.RateChargeAmt, rows.c.OverageChargeAmt
                ).where(rows.c.QueueId == done["queue_id"])
            ).all()
        cents = [round(float(r.ChargeAmt) * 100) + round(float(r.SmsChargeAmount) * 100) for r in devices]
        assert sum(cents) == round(float(total) * 100)
        for r in devices:  # whole cents, and the charge is its rate plus overage parts
            assert round(float(r.ChargeAmt), 2) == float(r.ChargeAmt)
            assert float(r.ChargeAmt) == pytest.approx(float(r.RateChargeAmt) + float(r.OverageChargeAmt))
        checked += len(devices)
    assert checked > 0

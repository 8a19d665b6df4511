"""Reads of a finished instance for its report (SQLite and PostgreSQL): header and winners' assignments."""

from __future__ import annotations

import pandas as pd

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.instance_results import (
    ASSIGNMENT_ROW_COLUMNS,
    instance_header,
    winner_assignments,
)
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.fleet import generate_fleet
from tests.conftest import finish_instance, start_instance

N_SIMS = 40


def finished(engine):
    fleet = generate_fleet(N_SIMS, seed=6)
    period_id = AmopRepository(engine).write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True, manual=True
    )
    session, plan = start_instance(engine, request, run_key="dag/report", now=fleet.as_of)
    return session, plan, finish_instance(engine, session, plan)


def test_header_names_the_instance_its_session_and_provider(db_engine):
    session, plan, _ = finished(db_engine)
    header = instance_header(db_engine, plan.instance_id)
    assert header["Id"] == plan.instance_id and header["TenantId"] == 1
    assert header["SessionGuid"] == session["session_guid"]
    assert header["OptimizationSessionId"] == session["session_id"]
    assert (header["ServiceProviderId"], header["DisplayName"]) == (101, "Jasper AT&T")
    assert header["BillingPeriodStartDate"] < header["BillingPeriodEndDate"]
    assert instance_header(db_engine, 999) is None


def test_one_assignment_row_per_sim_of_the_winners_by_comm_plan_and_iccid(db_engine):
    _, plan, winners = finished(db_engine)
    frame = winner_assignments(db_engine, plan.instance_id, [g["winner_queue_id"] for g in winners["groups"]])
    assert list(frame.columns) == list(ASSIGNMENT_ROW_COLUMNS)
    assert len(frame) == N_SIMS and frame["device_id"].is_unique
    keys = list(zip(frame["comm_plan"], frame["iccid"], strict=True))
    assert keys == sorted(keys)
    cost = (frame["charge"] + frame["sms_charge"]).sum()
    assert round(float(cost), 2) == winners["optimized_cost"]
    assert winner_assignments(db_engine, plan.instance_id, []).empty


def test_the_reads_give_the_frames_sqlalchemys_rows_would(db_engine):
    from sqlalchemy import select

    from include.carrier_optimization.amop import schema as s
    from include.carrier_optimization.amop.instance_results import SNAPSHOT_COLUMNS, _frame, instance_devices
    from include.carrier_optimization.amop.storage import frame_of

    _, plan, _ = finished(db_engine)
    devices = instance_devices(db_engine, plan.instance_id)
    d = s.optimization_device
    statement = select(
        d.c.AmopDeviceId, d.c.ICCID, d.c.WasActivatedInThisBillingPeriod, d.c.CommunicationPlan
    )
    with db_engine.connect() as conn:
        rows = conn.execute(statement.order_by(d.c.AmopDeviceId)).all()
        fast = _frame(conn, statement.order_by(d.c.AmopDeviceId), ("id", "iccid", "activated", "comm_plan"))
        empty = _frame(conn, statement.where(d.c.InstanceId == -1), ("id", "iccid", "activated", "comm_plan"))
    pd.testing.assert_frame_equal(fast, frame_of(rows, ["id", "iccid", "activated", "comm_plan"]))
    assert fast["activated"].dtype == bool and empty.empty and list(empty.columns)[0] == "id"
    assert list(devices.columns) == list(SNAPSHOT_COLUMNS) and len(devices) == N_SIMS
    assert list(zip(devices["comm_plan"], devices["iccid"], strict=True)) == sorted(
        zip(devices["comm_plan"], devices["iccid"], strict=True)
    )

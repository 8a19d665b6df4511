"""The report's reads (SQLite and PostgreSQL): one snapshot read serves the assignments and costs before."""

from __future__ import annotations

import pandas as pd

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import comm_groups
from include.carrier_optimization.amop.instance_results import instance_devices
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.reporting.report_data import (
    SnapshotDevices,
    assignments,
    costs_before,
    read_assignments_and_costs,
)
from include.carrier_optimization.reporting.summary import instance_groups
from tests.conftest import finish_instance, start_instance

N_SIMS = 60


def finished(engine) -> tuple[int, list[dict]]:
    fleet = generate_fleet(N_SIMS, seed=8)
    period_id = AmopRepository(engine).write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True, manual=True
    )
    session, plan = start_instance(engine, request, run_key="dag/report-data", now=fleet.as_of)
    finish_instance(engine, session, plan)
    return plan.instance_id, instance_groups(engine, plan.instance_id)


def test_the_snapshot_serves_each_group_as_the_database_read_does(db_engine):
    instance_id, groups = finished(db_engine)
    snapshot = SnapshotDevices(instance_id, instance_devices(db_engine, instance_id))
    assert len(groups) > 1

    def refuse():
        raise AssertionError("read from the database")

    for group in groups:
        served = snapshot.get_or_load(instance_id, group["comm_group_id"], refuse)
        with db_engine.connect() as conn:
            read = comm_groups.devices(conn, instance_id, group["comm_group_id"])
        pd.testing.assert_frame_equal(served, read, check_dtype=False)
        assert served["device_id"].is_monotonic_increasing and len(served) == group["devices"]


def test_a_group_or_instance_the_snapshot_lacks_goes_to_the_loader(db_engine):
    instance_id, _ = finished(db_engine)
    snapshot = SnapshotDevices(instance_id, instance_devices(db_engine, instance_id))
    empty = SnapshotDevices(instance_id, instance_devices(db_engine, instance_id + 1))
    loaded = pd.DataFrame({"device_id": [7]})
    assert snapshot.get_or_load(instance_id, 999, lambda: loaded) is loaded
    assert snapshot.get_or_load(instance_id + 1, 1, lambda: loaded) is loaded
    assert empty.rows == {} and empty.get_or_load(instance_id, 1, lambda: loaded) is loaded


def test_one_read_gives_the_same_assignments_and_costs_as_the_reads_per_group(db_engine):
    instance_id, groups = finished(db_engine)
    frame, (before, per_plan) = read_assignments_and_costs(db_engine, instance_id, groups)
    alone = assignments(db_engine, instance_id, [g["winner_queue_id"] for g in groups])
    pd.testing.assert_frame_equal(frame, alone)
    by_group, per_plan_by_group = costs_before(db_engine, [g["comm_group_id"] for g in groups])
    pd.testing.assert_series_equal(before, by_group)
    assert per_plan == per_plan_by_group and per_plan
    assert round(float(before.sum()), 2) == round(sum(g["current_cost"] for g in groups), 2)

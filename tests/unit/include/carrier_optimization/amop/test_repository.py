"""Repository reads and writes against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import pytest

from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.fleet import generate_fleet


@pytest.mark.integration("postgres")
class TestAmopRepository:
    def test_fleet_round_trips_through_the_amop_tables(self, db_engine):
        fleet = generate_fleet(1500, seed=11)
        repo = AmopRepository(db_engine)
        period_id = repo.write_fleet(fleet)
        plans = repo.rate_plans(fleet.tenant.service_provider_id)
        assert plans.plan_id.tolist() == fleet.plans.plan_id.tolist()
        assert plans.monthly_charge.sum() == pytest.approx(fleet.plans.monthly_charge.sum())
        assert plans.pooled.tolist() == fleet.plans.pooled.tolist()
        devices = repo.devices(fleet.tenant.service_provider_id, fleet.tenant.tenant_id)
        assert len(devices) == 1500
        assert devices.ctd_bytes.sum() == fleet.devices.ctd_bytes.sum()
        assert (
            repo.comm_plans(fleet.tenant.service_provider_id).comm_plan.tolist()
            == fleet.comm_plans.comm_plan.tolist()
        )
        period = repo.billing_period(period_id)
        assert period["BillingCycleEndDate"] == fleet.period_end

    def test_writing_the_fleet_again_replaces_it(self, db_engine):
        repo = AmopRepository(db_engine)
        repo.write_fleet(generate_fleet(300, seed=1))
        repo.write_fleet(generate_fleet(200, seed=2))
        assert repo.count_rows("Device") == 200
        assert repo.count_rows("BillingPeriod") == 1

    def test_running_session_guard_sees_unfinished_instances_only(self, db_engine):
        repo = AmopRepository(db_engine)
        fleet = generate_fleet(10, seed=1)
        period_id = repo.write_fleet(fleet)
        session = repo.create_session(1, 101, period_id)
        assert repo.running_session_id(1) is None  # no instance yet
        instance_id = repo.start_instance(
            session_id=session["session_id"],
            tenant_id=1,
            service_provider_id=101,
            billing_period=repo.billing_period(period_id),
        )
        assert repo.running_session_id(1) == session["session_id"]
        assert repo.running_session_id(1, exclude_session_id=session["session_id"]) is None
        assert (
            repo.start_instance(
                session_id=session["session_id"],
                tenant_id=1,
                service_provider_id=101,
                billing_period=repo.billing_period(period_id),
            )
            == instance_id
        )
        repo.set_instance_status(instance_id, OptimizationStatus.CompleteWithSuccess)
        assert repo.running_session_id(1) is None
        assert repo.instance(instance_id)["RunEndTime"] is not None


def test_plan_columns_carry_the_command_line_plan_names():
    from include.carrier_optimization.amop import schema as s
    from include.carrier_optimization.amop.repository import plan_columns
    from include.carrier_optimization.core.fleet import CLI_PLAN_COLUMNS

    names = [column.name for column in plan_columns(s.carrier_rate_plan)]
    assert names == list(CLI_PLAN_COLUMNS[:-1])  # every column but sms_rate, which carrier plans lack

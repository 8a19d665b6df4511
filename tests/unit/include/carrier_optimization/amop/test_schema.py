"""The AMOP schema round-trips on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.schema import OptimizationStatus, create_schema


@pytest.mark.integration("postgres")
class TestSchema:
    def test_every_table_is_created_with_legacy_names(self, db_engine):
        names = set(inspect(db_engine).get_table_names())
        for legacy in (
            "OptimizationSession",
            "OptimizationInstance",
            "OptimizationCommGroup",
            "OptimizationCommGroup_CommPlan",
            "OptimizationCommGroup_RatePlan",
            "OptimizationQueue",
            "OptimizationQueue_RatePlan",
            "OptimizationDevice",
            "OptimizationDeviceResultStaging",
            "OptimizationDeviceResult",
            "JasperCarrierRatePlan",
            "JasperCommunicationPlan",
            "BillingPeriod",
            "ServiceProvider",
            "JasperDeviceStaging",
            "JasperDeviceUsageICCICDsToProcess",
            "OptimizationInstanceResultFile",
        ):
            assert legacy in names, legacy

    def test_status_lookup_is_seeded_once(self, db_engine):
        create_schema(db_engine)  # a second run must not duplicate the seed
        with db_engine.connect() as conn:
            rows = conn.execute(select(s.optimization_status).order_by(s.optimization_status.c.Id)).all()
        assert [(r.Id, r.Name) for r in rows] == [(int(x), x.name) for x in OptimizationStatus]

    def test_queue_row_round_trips_with_money_and_dates(self, db_engine):
        start = dt.datetime(2026, 10, 30, 23, 59, 59)
        with db_engine.begin() as conn:
            conn.execute(insert(s.integration).values(id=1, Name="Jasper"))
            conn.execute(
                insert(s.service_provider).values(
                    id=5, IntegrationId=1, TenantId=9, Name="sp", DisplayName="SP"
                )
            )
            session_id = conn.execute(
                insert(s.optimization_session).values(SessionGuid="g-1", TenantId=9)
            ).inserted_primary_key[0]
            instance_id = conn.execute(
                insert(s.optimization_instance).values(
                    RunStatusId=1,
                    BillingPeriodStartDate=start,
                    BillingPeriodEndDate=start + dt.timedelta(days=31),
                    TenantId=9,
                    OptimizationSessionId=session_id,
                    ServiceProviderId=5,
                )
            ).inserted_primary_key[0]
            group_id = conn.execute(
                insert(s.comm_group).values(InstanceId=instance_id, RatePlanIds="1,2")
            ).inserted_primary_key[0]
            conn.execute(
                insert(s.optimization_queue).values(
                    InstanceId=instance_id,
                    CommPlanGroupId=group_id,
                    RunStatusId=1,
                    QueueKind="sequence",
                    SequenceIndex=0,
                    TotalCost=1234.5678,
                )
            )
        with db_engine.connect() as conn:
            row = conn.execute(select(s.optimization_queue)).one()
            inst = conn.execute(select(s.optimization_instance)).one()
        assert float(row.TotalCost) == pytest.approx(1234.5678)
        assert row.SequenceIndex == 0 and row.QueueKind == "sequence"
        assert inst.BillingPeriodStartDate == start

    def test_a_candidate_queue_cannot_be_written_twice(self, db_engine):
        start = dt.datetime(2026, 10, 30)
        with db_engine.begin() as conn:
            session_id = conn.execute(
                insert(s.optimization_session).values(SessionGuid="g-2", TenantId=1)
            ).inserted_primary_key[0]
            instance_id = conn.execute(
                insert(s.optimization_instance).values(
                    RunStatusId=1,
                    BillingPeriodStartDate=start,
                    BillingPeriodEndDate=start,
                    TenantId=1,
                    OptimizationSessionId=session_id,
                )
            ).inserted_primary_key[0]
            group_id = conn.execute(
                insert(s.comm_group).values(InstanceId=instance_id, RatePlanIds="1")
            ).inserted_primary_key[0]
        row = {"InstanceId": instance_id, "CommPlanGroupId": group_id, "RunStatusId": 1, "SequenceIndex": 7}
        with db_engine.begin() as conn:
            conn.execute(insert(s.optimization_queue).values(**row))
        with pytest.raises(IntegrityError), db_engine.begin() as conn:
            conn.execute(insert(s.optimization_queue).values(**row))

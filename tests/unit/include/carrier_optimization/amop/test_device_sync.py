"""SQL of the device sync (SQLite, PostgreSQL): staging writes, a provider's staging cleared, session stop."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from include.carrier_optimization.amop import device_sync, storage
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.sync.carriers.jasper_payloads import DevicePage
from include.carrier_optimization.sync.staging import stage_page
from tests.unit.include.carrier_optimization.sync.conftest import FLEET, SP, TENANT, count, device, usage


@pytest.fixture
def engine(db_engine):
    AmopRepository(db_engine).write_fleet(FLEET)
    return db_engine


class TestStaging:
    def test_clear_staging_only_touches_the_provider(self, engine):
        stage_page(engine, SP, DevicePage(1, (device("a"),), True), [usage("a")])
        stage_page(engine, 999, DevicePage(1, (device("a"),), True), [usage("a")])
        deleted = device_sync.clear_staging(engine, SP)
        assert deleted["JasperDeviceStaging"] == deleted["JasperDeviceUsageStaging"] == 1
        assert count(engine, s.jasper_device_staging, ServiceProviderId=999) == 1

    @pytest.mark.parametrize("native", [True, False], ids=["upsert", "delete-insert"])
    def test_write_replaces_rows_and_drops_stale_usage(self, engine, monkeypatch, native):
        if not native:
            monkeypatch.setattr(storage, "NATIVE_UPSERT", {})
        row = {"ServiceProviderId": SP, "CreatedBy": "test", "CreatedDate": FLEET.as_of}
        devices = [
            {"ICCID": i, "Status": "A", "RatePlan": None, "CommunicationPlan": None, **row} for i in "ab"
        ]
        usages = [
            {"ICCID": i, "CtdDataUsage": 5, "CtdSmsUsage": 0, "UsageDate": None, "DateActivated": None, **row}
            for i in "ab"
        ]
        device_sync.write_staging(engine, SP, devices, usages, without_usage=[])
        devices[1]["Status"] = "D"
        device_sync.write_staging(engine, SP, devices, usages[:1], without_usage=["b"])

        assert count(engine, s.jasper_device_staging) == 2
        assert count(engine, s.jasper_device_staging, ICCID="b", Status="D") == 1
        usage_rows = s.jasper_device_usage_staging
        assert (
            count(engine, usage_rows) == count(engine, usage_rows, ICCID="a") == 1
        )  # b: listed without usage


class TestStopSession:
    def test_stop_session_deletes_it_and_ends_unfinished_instances(self, engine):
        repo = AmopRepository(engine)
        period = repo.current_billing_period(SP, FLEET.as_of)
        session = repo.create_session(TENANT, SP, period["id"])
        instance = repo.start_instance(
            session_id=session["session_id"], tenant_id=TENANT, service_provider_id=SP, billing_period=period
        )

        assert device_sync.stop_session(engine, session["session_id"], error="page 3 malformed") is True
        assert device_sync.stop_session(engine, 999_999, error="x") is False

        with engine.connect() as conn:
            row = conn.execute(select(s.optimization_session)).one()
        assert (row.IsDeleted, row.IsActive, row.ErrorMessage) == (True, False, "page 3 malformed")
        assert repo.session(session["session_id"]) is None
        assert repo.instance(instance)["RunStatusId"] == OptimizationStatus.CompleteWithErrors

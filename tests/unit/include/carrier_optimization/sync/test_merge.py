"""Staging merged into ``Device`` (SQLite, PostgreSQL): inserts, updates, idempotence, all or nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from include.carrier_optimization.amop import device_sync
from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore
from include.carrier_optimization.sync import merge
from include.carrier_optimization.sync.carriers.jasper_payloads import DevicePage
from include.carrier_optimization.sync.staging import stage_page, sync_pages
from tests.unit.include.carrier_optimization.sync.conftest import (
    CARRIER,
    FLEET,
    KEY,
    SP,
    TENANT,
    client_of,
    device,
    devices,
    request_of,
)


class TestMerge:
    def synced(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        return merge.merge_staging(
            engine, service_provider_id=SP, tenant_id=TENANT, now=dt.datetime(2026, 11, 28)
        )

    def test_inserts_new_updates_changed_and_is_idempotent(self, engine, sim):
        before = devices(engine)
        result = self.synced(engine, sim)

        after = devices(engine)
        assert (result.staged, result.inserted) == (650, 50)
        assert result.updated + result.unchanged == 600 and result.updated > 500
        codes = dict(zip(CARRIER.plans.code, CARRIER.plans.plan_id, strict=True))
        for iccid, carrier in sim.by_iccid.items():
            row = after[iccid]
            assert (row["Status"], row["CommunicationPlan"], row["CarrierRatePlanCode"]) == (
                carrier.status,
                carrier.communication_plan,
                carrier.rate_plan,
            )
            assert (row["CtdDataUsage"], row["SmsUsage"]) == (carrier.ctd_bytes, carrier.ctd_sms)
            assert row["CarrierRatePlanId"] == codes[carrier.rate_plan]
        untouched = [i for i in before if after[i]["ModifiedDate"] == before[i]["ModifiedDate"]]
        assert len(untouched) == result.unchanged
        assert {after[i]["TenantId"] for i in set(after) - set(before)} == {TENANT}

        again = merge.merge_staging(engine, service_provider_id=SP, tenant_id=TENANT)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 650)
        assert devices(engine) == after

    def test_device_without_usage_keeps_its_usage_and_unknown_plans_are_reported(self, engine):
        iccid = FLEET.devices.iccid[0]
        kept = devices(engine)[iccid]
        page = DevicePage(1, (device(iccid, plan="NEW-PLAN"), device("new-1", plan=None)), True)
        stage_page(engine, SP, page, [])

        result = merge.merge_staging(engine, service_provider_id=SP, tenant_id=TENANT)

        row = devices(engine)[iccid]
        assert (result.without_usage, result.unknown_rate_plans) == (2, ("NEW-PLAN",))
        assert (row["CtdDataUsage"], row["UsageDate"]) == (kept["CtdDataUsage"], kept["UsageDate"])
        assert (row["CarrierRatePlanCode"], row["CarrierRatePlanId"]) == ("NEW-PLAN", None)
        assert devices(engine)["new-1"]["CtdDataUsage"] == 0

    def test_a_failing_merge_changes_nothing(self, engine, sim, monkeypatch):
        store = DatabaseCheckpointStore(engine)
        sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        before = devices(engine)
        real = device_sync.bulk_insert

        def insert_then_fail(*args, **kwargs):
            real(*args, **kwargs)
            raise RuntimeError("connection lost mid-merge")

        monkeypatch.setattr(device_sync, "bulk_insert", insert_then_fail)
        with pytest.raises(RuntimeError, match="connection lost mid-merge"):
            merge.merge_staging(engine, service_provider_id=SP, tenant_id=TENANT)
        assert devices(engine) == before

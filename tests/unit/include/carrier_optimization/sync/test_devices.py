"""Device sync on the AMOP tables (SQLite, PostgreSQL): staging, checkpointed paging, merge, session stop."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from sqlalchemy import func, select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore, checkpoint_key
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet
from include.carrier_optimization.messaging.sync_messages import (
    build_sync_request_attributes,
    parse_sync_request,
)
from include.carrier_optimization.sync import devices as sync
from include.carrier_optimization.sync.carriers.jasper import (
    DevicePage,
    DeviceUsage,
    JasperClient,
    JasperDevice,
    MalformedPageError,
    RetryPolicy,
)
from include.carrier_optimization.sync.carriers.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    CarrierSimulator,
)

SPEC = TenantSpec()
SP, TENANT = SPEC.service_provider_id, SPEC.tenant_id
FLEET = generate_fleet(600, seed=11, tenant=SPEC)
CARRIER = generate_fleet(650, seed=12, tenant=SPEC)  # 50 more SIMs, other usage and plans
KEY = checkpoint_key("device_sync__acme", "manual__1", "sync_devices", name="pages")
PAGE = 40


@pytest.fixture
def engine(db_engine):
    AmopRepository(db_engine).write_fleet(FLEET)
    return db_engine


@pytest.fixture
def sim():
    with CarrierSimulator.from_fleet(CARRIER, page_size=PAGE) as server:
        yield server


def client_of(sim) -> JasperClient:
    session = requests.Session()
    session.auth = (DEFAULT_USER, DEFAULT_PASSWORD)
    return JasperClient(session, sim.url, retry=RetryPolicy(backoff_seconds=0.0), bulk_usage=True)


def request_of(message_id="m-1", **fields):
    attributes = build_sync_request_attributes(
        **({"service_provider_id": SP, "last_sync_date": "2026-01-01T00:00:00Z", "session_id": 3} | fields)
    )
    return parse_sync_request({"MessageId": message_id, "MessageAttributes": attributes})


def count(engine, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def devices(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r["ICCID"]: dict(r) for r in conn.execute(select(s.device)).mappings()}


def device(iccid, status="ACTIVATED", plan="IND-1MB", comm="acme-mixed-a"):
    return JasperDevice(iccid, status, plan, comm)


def usage(iccid, ctd=1000, sms=2):
    return DeviceUsage(iccid, ctd, sms, dt.datetime(2026, 11, 20), dt.datetime(2025, 1, 1))


class TestStaging:
    def test_a_restaged_page_replaces_its_rows(self, engine):
        page = DevicePage(1, (device("a"), device("b")), False)
        sync.stage_page(engine, SP, page, [usage("a"), usage("b")])
        sync.stage_page(
            engine, SP, DevicePage(2, (device("b", status="DEACTIVATED"),), True), [usage("b", 9)]
        )
        sync.stage_page(engine, SP, page, [usage("a"), usage("b")])

        assert count(engine, s.jasper_device_staging) == 2
        assert count(engine, s.jasper_device_usage_staging) == 2
        assert count(engine, s.jasper_device_staging, ICCID="b", Status="ACTIVATED") == 1

    def test_a_batch_keeps_the_last_listing_of_an_iccid_listed_on_two_pages(self, engine):
        batch = [
            (DevicePage(1, (device("a"), device("b")), False), [usage("a"), usage("b", 1)]),
            (DevicePage(2, (device("b", status="DEACTIVATED"),), True), [usage("b", 7)]),
        ]
        assert sync.stage_pages(engine, SP, batch) == 2
        assert count(engine, s.jasper_device_staging, ICCID="b", Status="DEACTIVATED") == 1
        assert count(engine, s.jasper_device_usage_staging, ICCID="b", CtdDataUsage=7) == 1

    def test_clear_staging_only_touches_the_provider(self, engine):
        sync.stage_page(engine, SP, DevicePage(1, (device("a"),), True), [usage("a")])
        sync.stage_page(engine, 999, DevicePage(1, (device("a"),), True), [usage("a")])
        deleted = sync.clear_staging(engine, SP)
        assert deleted["JasperDeviceStaging"] == deleted["JasperDeviceUsageStaging"] == 1
        assert count(engine, s.jasper_device_staging, ServiceProviderId=999) == 1


class TestSyncPages:
    def test_all_pages_staged_with_usage_and_checkpointed(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        sync.stage_page(engine, SP, DevicePage(1, (device("stale"),), True), [])

        result = sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)

        pages = sim.page_count()
        assert (result.done, result.pages, result.devices, result.next_page) == (True, pages, 650, pages + 1)
        assert count(engine, s.jasper_device_staging, ICCID="stale") == 0  # page 1 of a new request clears
        assert count(engine, s.jasper_device_staging) == count(engine, s.jasper_device_usage_staging) == 650
        assert store.get(KEY) == {
            "message_id": "m-1",
            "next_page": pages + 1,
            "pages": pages,
            "devices": 650,
            "done": True,
        }

    def test_a_failed_page_resumes_from_the_checkpoint(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        sim.faults.malformed_page(5, "missing_iccid", times=1)
        with pytest.raises(MalformedPageError, match="Jasper device page 5"):
            sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        assert store.get(KEY)["next_page"] == 5
        assert count(engine, s.jasper_device_staging) == 4 * PAGE

        result = sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)

        assert (result.resumed_from, result.done, result.devices) == (5, True, 650)
        assert [sim.count(f"page:{n}") for n in range(1, 7)] == [1, 1, 1, 1, 2, 1]
        assert count(engine, s.jasper_device_staging) == 650

    def test_pages_are_committed_in_batches_with_one_checkpoint_each(self, engine, sim, monkeypatch):
        store = DatabaseCheckpointStore(engine)
        puts = []
        real_put = store.put
        monkeypatch.setattr(
            store,
            "put",
            lambda key, value, **kw: (puts.append(value["next_page"]), real_put(key, value, **kw)),
        )
        result = sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY, commit_every=200)
        assert result.done and puts == [1, 6, 11, 16, 18]  # 5 pages of 40 per commit, then pages 16-17

    def test_page_limit_then_continue(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        first = sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY, max_pages=3)
        second = sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        assert (first.done, first.pages_this_call, first.next_page) == (False, 3, 4)
        assert (second.done, second.resumed_from, second.devices) == (True, 4, 650)

    def test_a_new_request_does_not_reuse_the_checkpoint_of_another(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        store.put(KEY, {"message_id": "older", "next_page": 99, "pages": 98, "devices": 1, "done": False})
        result = sync.sync_pages(engine, client_of(sim), request_of("m-2"), store=store, key=KEY)
        assert (result.resumed_from, result.pages, result.done) == (None, sim.page_count(), True)

    def test_a_finished_request_pages_nothing(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        again = sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        assert (again.pages_this_call, again.done) == (0, True)
        assert sim.count("page:1") == 1


class TestMerge:
    def synced(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        return sync.merge_staging(
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

        again = sync.merge_staging(engine, service_provider_id=SP, tenant_id=TENANT)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 650)
        assert devices(engine) == after

    def test_device_without_usage_keeps_its_usage_and_unknown_plans_are_reported(self, engine):
        iccid = FLEET.devices.iccid[0]
        kept = devices(engine)[iccid]
        page = DevicePage(1, (device(iccid, plan="NEW-PLAN"), device("new-1", plan=None)), True)
        sync.stage_page(engine, SP, page, [])

        result = sync.merge_staging(engine, service_provider_id=SP, tenant_id=TENANT)

        row = devices(engine)[iccid]
        assert (result.without_usage, result.unknown_rate_plans) == (2, ("NEW-PLAN",))
        assert (row["CtdDataUsage"], row["UsageDate"]) == (kept["CtdDataUsage"], kept["UsageDate"])
        assert (row["CarrierRatePlanCode"], row["CarrierRatePlanId"]) == ("NEW-PLAN", None)
        assert devices(engine)["new-1"]["CtdDataUsage"] == 0

    def test_a_failing_merge_changes_nothing(self, engine, sim, monkeypatch):
        store = DatabaseCheckpointStore(engine)
        sync.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        before = devices(engine)
        real = sync.bulk_insert

        def insert_then_fail(*args, **kwargs):
            real(*args, **kwargs)
            raise RuntimeError("connection lost mid-merge")

        monkeypatch.setattr(sync, "bulk_insert", insert_then_fail)
        with pytest.raises(RuntimeError, match="connection lost mid-merge"):
            sync.merge_staging(engine, service_provider_id=SP, tenant_id=TENANT)
        assert devices(engine) == before


class TestCompletionAndStop:
    def test_completion_carries_the_request_period(self, engine):
        period_id = AmopRepository(engine).current_billing_period(SP, FLEET.period_start)["id"]
        target = sync.completion_target(engine, request_of(bill_period_id=period_id, tenant_id=TENANT))
        assert target == {
            "tenant_id": TENANT,
            "bill_period_id": period_id,
            "bill_year": FLEET.period_end.year,
            "bill_month": FLEET.period_end.month,
        }

    def test_legacy_request_gets_the_current_period_and_the_provider_tenant(self, engine):
        target = sync.completion_target(engine, request_of(), now=FLEET.as_of)
        assert (target["tenant_id"], target["bill_month"]) == (TENANT, FLEET.period_end.month)

    def test_unknown_period_is_named(self, engine):
        with pytest.raises(ValueError, match=f"billing period 4242 does not exist for service provider {SP}"):
            sync.completion_target(engine, request_of(bill_period_id=4242))

    def test_stop_session_deletes_it_and_ends_unfinished_instances(self, engine):
        repo = AmopRepository(engine)
        period = repo.current_billing_period(SP, FLEET.as_of)
        session = repo.create_session(TENANT, SP, period["id"])
        instance = repo.start_instance(
            session_id=session["session_id"], tenant_id=TENANT, service_provider_id=SP, billing_period=period
        )

        assert sync.stop_session(engine, session["session_id"], error="page 3 malformed") is True
        assert sync.stop_session(engine, 999_999, error="x") is False

        with engine.connect() as conn:
            row = conn.execute(select(s.optimization_session)).one()
        assert (row.IsDeleted, row.IsActive, row.ErrorMessage) == (True, False, "page 3 malformed")
        assert repo.session(session["session_id"]) is None
        assert repo.instance(instance)["RunStatusId"] == OptimizationStatus.CompleteWithErrors

    def test_sync_error_emails(self):
        with_session = sync.sync_error_email(
            recipients=["a@x"], provider_name="AT&T", error="boom", session_id=4
        )
        plain = sync.sync_error_email(
            recipients=["a@x"], provider_name="AT&T", error="boom", environment="dev"
        )
        assert with_session.subject == sync.SYNC_ERROR_SUBJECT.format(provider="AT&T")
        assert "session 4" in with_session.body and "boom" in with_session.body
        assert plain.subject == "Error in Device Sync for AT&T (dev)"

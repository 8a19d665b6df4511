"""The run model's repository on SQLite and PostgreSQL: taken messages, window decisions, guard reads."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import insert

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.run_records import SYNC_HORIZON, SYNC_PROGRESS, RunRecords
from include.carrier_optimization.amop.schema import OptimizationStatus

TENANT, OTHER_TENANT, PROVIDER, PERIOD = 4, 5, 401, 77
REQUEST = {"tenant_id": TENANT, "service_provider_id": PROVIDER, "bill_period_id": PERIOD, "session_id": 9}
_guids = itertools.count()


@pytest.fixture
def records(db_engine) -> RunRecords:
    return RunRecords(db_engine)


def add_session(records: RunRecords, *, tenant=TENANT, created=None, **values) -> int:
    row = {
        "SessionGuid": f"guid-{next(_guids)}",
        "TenantId": tenant,
        "CreatedDate": created or utcnow(),
        **values,
    }
    with records.engine.begin() as conn:
        return int(conn.execute(insert(s.optimization_session).values(**row)).inserted_primary_key[0])


def add_instance(records: RunRecords, session_id: int, status=OptimizationStatus.NotStarted, **values) -> int:
    now = utcnow()
    row = {
        "RunStatusId": int(status),
        "BillingPeriodStartDate": now - dt.timedelta(days=30),
        "BillingPeriodEndDate": now,
        "OptimizationBillingPeriodId": PERIOD,
        "ServiceProviderId": PROVIDER,
        "TenantId": TENANT,
        "OptimizationSessionId": session_id,
        "CreatedDate": now,
        **values,
    }
    with records.engine.begin() as conn:
        return int(conn.execute(insert(s.optimization_instance).values(**row)).inserted_primary_key[0])


def test_a_message_is_claimed_once_and_a_retry_of_the_same_run_keeps_it(records):
    assert records.message_run("m-1") is None
    assert records.claim_message("m-1", queue="q", request=REQUEST, run_id="run_a") is True
    assert records.claim_message("m-1", queue="q", request=REQUEST, run_id="run_a") is True
    assert records.claim_message("m-1", queue="q", request=REQUEST, run_id="run_b") is False
    assert records.message_run("m-1") == "run_a"


def test_a_claim_needs_only_the_tenant(records):
    assert records.claim_message("m-2", queue="q", request={"tenant_id": "4"}, run_id="r") is True
    assert records.message_run("m-2") == "r"


def test_last_decision_is_the_newest_of_the_provider_and_period(records):
    at = dt.datetime(2026, 11, 30, 8)
    assert records.last_decision(PROVIDER, PERIOD) is None
    decisions = [(PERIOD, "first", "m-1"), (PERIOD, "again after errors", "m-2"), (PERIOD + 1, "x", None)]
    for period, reason, message_id in decisions:
        records.record_decision(
            tenant_id=TENANT,
            service_provider_id=PROVIDER,
            billing_period_id=period,
            reason=reason,
            message_id=message_id,
            at=at,
        )
    last = records.last_decision(PROVIDER, PERIOD)
    assert (last["Reason"], last["MessageId"], last["DecidedAt"]) == ("again after errors", "m-2", at)


def test_newest_instance_of_the_provider_and_period_since_a_time(records):
    session = add_session(records)
    old = add_instance(records, session, CreatedDate=utcnow() - dt.timedelta(days=2))
    new = add_instance(records, session, PortalTypeId=1)
    add_instance(records, session, ServiceProviderId=PROVIDER + 1)
    assert records.newest_instance(PROVIDER, PERIOD)["Id"] == new
    since = utcnow() - dt.timedelta(days=1)
    assert records.newest_instance(PROVIDER, PERIOD, since=since)["Id"] == new
    assert records.newest_instance(PROVIDER, PERIOD, since=utcnow() + dt.timedelta(hours=1)) is None
    assert old != new and records.newest_instance(PROVIDER, PERIOD + 1) is None


def test_a_syncing_session_is_live_at_sync_progress_without_an_instance(records):
    now = utcnow()
    syncing = add_session(records, Progress=SYNC_PROGRESS)
    assert records.syncing_session(TENANT, now=now) == syncing
    assert records.syncing_session(TENANT, now=now, exclude_session_id=syncing) is None
    assert records.syncing_session(OTHER_TENANT, now=now) is None
    assert records.syncing_session(TENANT, now=now + SYNC_HORIZON + dt.timedelta(minutes=1)) is None
    add_instance(records, syncing)
    assert records.syncing_session(TENANT, now=now) is None


def test_deleted_or_other_progress_sessions_are_not_syncing(records):
    add_session(records, Progress=SYNC_PROGRESS, IsDeleted=True)
    add_session(records, Progress=SYNC_PROGRESS, IsActive=False)
    add_session(records, Progress=50)
    assert records.syncing_session(TENANT, now=utcnow()) is None


def test_finished_well_session_needs_a_complete_with_success_instance(records):
    failed = add_session(records)
    add_instance(records, failed, OptimizationStatus.CompleteWithErrors)
    assert records.finished_well_session(TENANT, PROVIDER, PERIOD) is None
    good = add_session(records)
    add_instance(records, good, OptimizationStatus.CompleteWithSuccess)
    assert records.finished_well_session(TENANT, PROVIDER, PERIOD) == good
    assert records.finished_well_session(TENANT, PROVIDER, PERIOD + 1) is None
    assert records.finished_well_session(OTHER_TENANT, PROVIDER, PERIOD) is None


def test_awaiting_sync_in_a_run_only_for_sessions_our_runs_opened(records):
    now = utcnow()
    ours = add_session(records, Progress=SYNC_PROGRESS, AirflowRunId="run_1")
    portal = add_session(records, Progress=SYNC_PROGRESS)
    assert records.awaiting_sync_in_a_run(ours, now=now) is True
    assert records.awaiting_sync_in_a_run(portal, now=now) is False
    assert records.awaiting_sync_in_a_run(ours, now=now + SYNC_HORIZON + dt.timedelta(seconds=1)) is False
    add_instance(records, ours)
    assert records.awaiting_sync_in_a_run(ours, now=now) is False


def test_sync_error_only_of_a_session_stopped_with_an_error(records):
    stopped = add_session(records, IsDeleted=True, IsActive=False, ErrorMessage="carrier API 401")
    deleted_silently = add_session(records, IsDeleted=True)
    live_with_error = add_session(records, ErrorMessage="stale")
    assert records.sync_error(stopped) == "carrier API 401"
    assert records.sync_error(deleted_silently) is None
    assert records.sync_error(live_with_error) is None
    assert records.sync_error(999_999) is None

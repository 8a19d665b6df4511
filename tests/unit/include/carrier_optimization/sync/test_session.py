"""What a sync tells its session (SQLite, PostgreSQL): the completion's billing period, the error e-mails."""

from __future__ import annotations

import pytest

from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.sync import session
from tests.unit.include.carrier_optimization.sync.conftest import FLEET, SP, TENANT, request_of


class TestCompletionAndEmails:
    def test_completion_carries_the_request_period(self, engine):
        period_id = AmopRepository(engine).current_billing_period(SP, FLEET.period_start)["id"]
        target = session.completion_target(engine, request_of(bill_period_id=period_id, tenant_id=TENANT))
        assert target == {
            "tenant_id": TENANT,
            "bill_period_id": period_id,
            "bill_year": FLEET.period_end.year,
            "bill_month": FLEET.period_end.month,
        }

    def test_legacy_request_gets_the_current_period_and_the_provider_tenant(self, engine):
        target = session.completion_target(engine, request_of(), now=FLEET.as_of)
        assert (target["tenant_id"], target["bill_month"]) == (TENANT, FLEET.period_end.month)

    def test_unknown_period_is_named(self, engine):
        with pytest.raises(ValueError, match=f"billing period 4242 does not exist for service provider {SP}"):
            session.completion_target(engine, request_of(bill_period_id=4242))

    def test_sync_error_emails(self):
        with_session = session.sync_error_email(
            recipients=["a@x"], provider_name="AT&T", error="boom", session_id=4
        )
        plain = session.sync_error_email(
            recipients=["a@x"], provider_name="AT&T", error="boom", environment="dev"
        )
        assert with_session.subject == session.SYNC_ERROR_SUBJECT.format(provider="AT&T")
        assert "session 4" in with_session.body and "boom" in with_session.body
        assert plain.subject == "Error in Device Sync for AT&T (dev)"

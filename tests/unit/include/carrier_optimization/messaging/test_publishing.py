"""Building the attributes of a request message as the legacy producers send them."""

from __future__ import annotations

import pytest

from include.carrier_optimization.messaging.attributes import (
    BILL_MONTH,
    BILL_PERIOD_ID,
    BILL_YEAR,
    HAS_SYNCED,
    PORTAL_TYPE_ID,
    SERVICE_PROVIDER_ID,
    TENANT_ID,
)
from include.carrier_optimization.messaging.parsing import parse_request
from include.carrier_optimization.messaging.publishing import build_request_attributes
from tests.unit.include.carrier_optimization.messaging.conftest import (
    PERIOD,
    PROVIDER,
    SESSION,
    TENANT,
    s,
)


class TestBuildRequestAttributes:
    def test_scheduled_request_like_legacy(self):
        attributes = build_request_attributes(
            tenant_id=TENANT,
            service_provider_id=PROVIDER,
            bill_period_id=PERIOD,
            has_synced=False,
            bill_year=2024,
            bill_month=5,
        )
        assert attributes == {
            SERVICE_PROVIDER_ID: s("3"),
            TENANT_ID: s("7"),
            BILL_PERIOD_ID: s("55"),
            BILL_YEAR: s("2024"),
            BILL_MONTH: s("5"),
            HAS_SYNCED: s("False"),
        }

    def test_continuation_round_trip(self):
        attributes = build_request_attributes(
            tenant_id=TENANT,
            service_provider_id=PROVIDER,
            bill_period_id=PERIOD,
            session_id=SESSION,
            has_synced=True,
            portal_type_id=0,
        )
        assert attributes[HAS_SYNCED] == s("True") and attributes[PORTAL_TYPE_ID] == s("0")
        request = parse_request({"MessageId": "c", "MessageAttributes": attributes})
        assert request.to_dict() == {
            "tenant_id": TENANT,
            "service_provider_id": PROVIDER,
            "bill_period_id": PERIOD,
            "session_id": SESSION,
            "has_synced": True,
            "portal_type_id": 0,
            "message_id": "c",
            "manual": False,
        }

    def test_unset_optionals_left_out(self):
        attributes = build_request_attributes(tenant_id=1, service_provider_id=2, bill_period_id=3)
        assert set(attributes) == {SERVICE_PROVIDER_ID, TENANT_ID, BILL_PERIOD_ID}

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"tenant_id": 0}, r"`tenant_id` must be a positive integer, got 0"),
            ({"service_provider_id": "3"}, r"`service_provider_id` must be a positive integer, got '3'"),
            ({"bill_period_id": None}, r"`bill_period_id` must be a positive integer, got None"),
            ({"session_id": -2}, r"`session_id` must be a positive integer, got -2"),
            ({"portal_type_id": True}, r"`portal_type_id` must be one of \[0, 1, 2\], got True"),
            ({"bill_year": 0}, r"`bill_year` must be a positive integer, got 0"),
            ({"bill_month": 13}, r"`bill_month` must be between 1 and 12, got 13"),
            ({"bill_month": 0}, r"`bill_month` must be a positive integer, got 0"),
            ({"has_synced": "True"}, r"`has_synced` must be True, False or None, got 'True'"),
        ],
        ids=[
            "tenant-zero",
            "provider-text",
            "period-none",
            "session-negative",
            "portal-bool",
            "year-zero",
            "month-13",
            "month-zero",
            "has-synced-text",
        ],
    )
    def test_iv(self, kwargs, match):
        fields = {"tenant_id": TENANT, "service_provider_id": PROVIDER, "bill_period_id": PERIOD} | kwargs
        with pytest.raises(ValueError, match=match):
            build_request_attributes(**fields)

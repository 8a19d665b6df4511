"""Device-sync request messages: parsing rules, building them, completion attributes."""

from __future__ import annotations

import datetime as dt

import pytest

from include.carrier_optimization.messaging.attributes import MalformedMessageError
from include.carrier_optimization.messaging.parsing import parse_request
from include.carrier_optimization.messaging.sync_messages import (
    DeviceSyncRequest,
    build_completion_attributes,
    build_sync_request_attributes,
    parse_sync_request,
)

SINCE = "2026-10-27T17:42:07Z"


def message(message_id="m-1", **fields) -> dict:
    attributes = build_sync_request_attributes(
        **({"service_provider_id": 101, "last_sync_date": SINCE} | fields)
    )
    return {"MessageId": message_id, "ReceiptHandle": f"rh-{message_id}", "MessageAttributes": attributes}


def raw(message_id="m-1", **texts) -> dict:
    return {
        "MessageId": message_id,
        "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in texts.items()},
    }


class TestParse:
    def test_round_trip_of_every_attribute(self):
        parsed = parse_sync_request(
            message(
                page_number=3, session_id=9, tenant_id=1, bill_period_id=55, next_step="UpdateDeviceRatePlan"
            )
        )
        assert parsed == DeviceSyncRequest(
            service_provider_id=101,
            page_number=3,
            last_sync_date=SINCE,
            next_step="UpdateDeviceRatePlan",
            session_id=9,
            tenant_id=1,
            bill_period_id=55,
            instance_id=None,
            message_id="m-1",
        )
        assert DeviceSyncRequest.from_dict(parsed.to_dict()) == parsed

    def test_defaults_of_a_minimal_legacy_request(self):
        parsed = parse_sync_request(raw(ServiceProviderId="7", LastSyncDate="2026-10-27T12:00:00+02:00"))
        assert (parsed.page_number, parsed.next_step, parsed.session_id) == (1, "DeviceUsageByRatePlan", None)
        assert parsed.last_sync_date == "2026-10-27T10:00:00Z"  # normalized to UTC

    @pytest.mark.parametrize(
        ("text", "step"),
        [
            ("0", "DeviceUsageByRatePlan"),
            ("DEVICE_USAGE_BY_RATE_PLAN", "DeviceUsageByRatePlan"),
            ("2", "UpdateDeviceRatePlan"),
        ],
    )
    def test_next_step_legacy_forms(self, text, step):
        assert (
            parse_sync_request(raw(ServiceProviderId="7", LastSyncDate=SINCE, NextStep=text)).next_step
            == step
        )

    @pytest.mark.parametrize(
        ("attributes", "match"),
        [
            ({"LastSyncDate": SINCE}, "SQS message m-1: `ServiceProviderId` is missing"),
            ({"ServiceProviderId": "7"}, "`LastSyncDate` is missing"),
            (
                {"ServiceProviderId": "7", "LastSyncDate": "11/28/2026 5:30:00 PM"},
                "`LastSyncDate` must be an ISO 8601",
            ),
            (
                {"ServiceProviderId": "x", "LastSyncDate": SINCE},
                "`ServiceProviderId` must be an integer > 0, got 'x'",
            ),
            (
                {"ServiceProviderId": "7", "LastSyncDate": SINCE, "PageNumber": "0"},
                "`PageNumber` must be an integer > 0",
            ),
            (
                {"ServiceProviderId": "7", "LastSyncDate": SINCE, "NextStep": "Dance"},
                "`NextStep` must be one of",
            ),
            (
                {"ServiceProviderId": "7", "LastSyncDate": SINCE, "OptimizationSessionId": "-3"},
                "`OptimizationSessionId`",
            ),
        ],
        ids=[
            "no-provider",
            "no-date",
            "dotnet-date",
            "bad-provider",
            "page-zero",
            "unknown-step",
            "negative-session",
        ],
    )
    def test_malformed_names_message_and_attribute(self, attributes, match):
        with pytest.raises(MalformedMessageError, match=match):
            parse_sync_request(raw(**attributes))

    def test_binary_attribute_is_malformed(self):
        msg = message()
        msg["MessageAttributes"]["PageNumber"] = {"DataType": "Binary", "BinaryValue": b"1"}
        with pytest.raises(MalformedMessageError, match="`PageNumber` must have DataType String or Number"):
            parse_sync_request(msg)

    def test_message_without_id(self):
        with pytest.raises(MalformedMessageError, match="`MessageId` is missing"):
            parse_sync_request({"MessageAttributes": message()["MessageAttributes"]})


class TestBuild:
    def test_completion_is_an_optimization_continuation(self):
        request = parse_sync_request(message(session_id=9, tenant_id=1, bill_period_id=55))
        attributes = build_completion_attributes(
            request, tenant_id=1, bill_period_id=55, bill_year=2026, bill_month=11
        )
        parsed = parse_request({"MessageId": "c-1", "MessageAttributes": attributes})
        assert (parsed.tenant_id, parsed.service_provider_id, parsed.bill_period_id) == (1, 101, 55)
        assert (parsed.session_id, parsed.has_synced) == (9, True)
        assert (
            attributes["BillYear"]["StringValue"] == "2026" and attributes["BillMonth"]["StringValue"] == "11"
        )

    def test_completion_needs_a_session(self):
        with pytest.raises(ValueError, match="device-sync request m-1 has no OptimizationSessionId"):
            build_completion_attributes(parse_sync_request(message()), tenant_id=1, bill_period_id=55)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"service_provider_id": 0}, "`service_provider_id` must be a positive integer"),
            ({"page_number": -1}, "`page_number` must be a positive integer"),
            ({"next_step": "Jump"}, "`next_step` must be one of"),
        ],
        ids=["provider-zero", "negative-page", "unknown-step"],
    )
    def test_build_request_iv(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            build_sync_request_attributes(**({"service_provider_id": 1, "last_sync_date": SINCE} | kwargs))

    def test_from_dict_rejects_other_keys(self):
        with pytest.raises(ValueError, match=r"missing \[.*'message_id'.*\], unknown \['x'\]"):
            DeviceSyncRequest.from_dict({"x": 1})


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (dt.datetime(2026, 11, 30, 10, 5, 7), dt.datetime(2026, 10, 29, 10, 5, 7)),
        (dt.datetime(2026, 3, 31, 23, 0), dt.datetime(2026, 2, 27, 23, 0)),  # AddMonths clamps to 28 Feb
        (dt.datetime(2028, 3, 31), dt.datetime(2028, 2, 28)),  # leap year: 29 Feb, minus a day
        (dt.datetime(2026, 1, 15, 1, 2, 3), dt.datetime(2025, 12, 14, 1, 2, 3)),  # across the year
        (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 31, tzinfo=dt.UTC)),
    ],
)
def test_legacy_last_sync_date_is_one_month_and_one_day_back(now, expected):
    from include.carrier_optimization.messaging.sync_messages import legacy_last_sync_date

    assert legacy_last_sync_date(now) == expected

"""Parsing request messages into the one Request: legacy rules, errors naming the attribute."""

from __future__ import annotations

import json

import pytest

from include.carrier_optimization.messaging.attributes import (
    BILL_PERIOD_ID,
    HAS_SYNCED,
    OPTIMIZATION_SESSION_ID,
    PORTAL_TYPE_ID,
    SERVICE_PROVIDER_ID,
    TENANT_ID,
    MalformedMessageError,
)
from include.carrier_optimization.messaging.parsing import parse_request
from include.carrier_optimization.messaging.request import Request
from tests.unit.include.carrier_optimization.messaging.conftest import (
    PERIOD,
    PROVIDER,
    SESSION,
    TENANT,
    make_message,
    request_message,
    s,
)


class TestParseRequest:
    def test_minimal_legacy_scheduled_message(self):
        request = parse_request(make_message(HasSynced=s("False"), BillYear=s("2024"), BillMonth=s("5")))
        assert request == Request(
            tenant_id=TENANT,
            service_provider_id=PROVIDER,
            bill_period_id=PERIOD,
            session_id=None,
            has_synced=False,
            portal_type_id=0,
            message_id="m-1",
            manual=False,
        )

    def test_full_continuation_message(self):
        request = parse_request(
            make_message(OptimizationSessionId=s(str(SESSION)), HasSynced=s("True"), PortalTypeId=s("0"))
        )
        assert (request.session_id, request.has_synced, request.portal_type_id) == (SESSION, True, 0)

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("1", "is 1 (Mobility): not supported yet, only 0 (M2M) is"),
            ("2", "is 2 (CrossProvider): not supported yet, only 0 (M2M) is"),
            ("7", "is 7, not a known portal type (0 M2M, 1 Mobility, 2 CrossProvider)"),
            ("-1", "is -1, not a known portal type (0 M2M, 1 Mobility, 2 CrossProvider)"),
        ],
    )
    def test_unsupported_portal_types_are_refused_by_name(self, text, reason):
        with pytest.raises(MalformedMessageError) as info:
            parse_request(make_message(PortalTypeId=s(text)))
        assert (info.value.attribute, info.value.reason) == (PORTAL_TYPE_ID, reason)

    def test_has_synced_missing_means_false(self):
        assert parse_request(make_message()).has_synced is False

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("True", True), ("true", True), (" TRUE ", True), ("False", False), ("false", False)],
        ids=["dotnet-true", "lower-true", "blanks-upper", "dotnet-false", "lower-false"],
    )
    def test_has_synced_values(self, text, expected):
        assert parse_request(make_message(HasSynced=s(text))).has_synced is expected

    def test_number_datatype_and_blanks_accepted(self):
        message = make_message(TenantId={"DataType": "Number", "StringValue": f" {TENANT} "})
        assert parse_request(message).tenant_id == TENANT

    @pytest.mark.parametrize(
        ("attributes", "match"),
        [
            ({SERVICE_PROVIDER_ID: None}, r"SQS message m-1: `ServiceProviderId` is missing \(required\)"),
            ({BILL_PERIOD_ID: None}, r"SQS message m-1: `BillPeriodId` is missing"),
            ({TENANT_ID: None}, r"SQS message m-1: `TenantId` is missing"),
            ({BILL_PERIOD_ID: s("abc")}, r"`BillPeriodId` must be an integer, got 'abc'"),
            ({TENANT_ID: s("1_000")}, r"`TenantId` must be an integer, got '1_000'"),
            ({SERVICE_PROVIDER_ID: s("3.0")}, r"`ServiceProviderId` must be an integer, got '3.0'"),
            ({SERVICE_PROVIDER_ID: s("")}, r"`ServiceProviderId` must be an integer, got ''"),
            ({TENANT_ID: s("0")}, r"`TenantId` must be > 0, got 0"),
            ({BILL_PERIOD_ID: s("-4")}, r"`BillPeriodId` must be > 0, got -4"),
            ({OPTIMIZATION_SESSION_ID: s("x1")}, r"`OptimizationSessionId` must be an integer, got 'x1'"),
            ({OPTIMIZATION_SESSION_ID: s("0")}, r"`OptimizationSessionId` must be > 0, got 0"),
            ({PORTAL_TYPE_ID: s("M2M")}, r"`PortalTypeId` must be an integer, got 'M2M'"),
            ({HAS_SYNCED: s("yes")}, r"`HasSynced` must be 'True' or 'False', got 'yes'"),
            (
                {TENANT_ID: {"DataType": "Binary", "BinaryValue": b"7"}},
                r"`TenantId` must have DataType String or Number with a StringValue, got DataType 'Binary'",
            ),
            ({TENANT_ID: {"DataType": "String"}}, r"`TenantId` must have DataType String or Number"),
        ],
        ids=[
            "missing-provider",
            "missing-period",
            "missing-tenant",
            "period-not-integer",
            "tenant-underscore",
            "provider-decimal",
            "provider-empty",
            "tenant-zero",
            "period-negative",
            "session-not-integer",
            "session-zero",
            "portal-type-name",
            "has-synced-yes",
            "binary-datatype",
            "no-string-value",
        ],
    )
    def test_malformed(self, attributes, match):
        with pytest.raises(MalformedMessageError, match=match):
            parse_request(make_message(**attributes))

    def test_long_value_is_cut_in_message(self):
        with pytest.raises(MalformedMessageError, match=r"got '" + "x" * 61 + r"\.\.\.'$"):
            parse_request(make_message(TenantId=s("x" * 100)))

    def test_missing_message_id(self):
        message = make_message()
        del message["MessageId"]
        with pytest.raises(
            MalformedMessageError, match=r"SQS message <no MessageId>: `MessageId` is missing"
        ):
            parse_request(message)

    def test_no_attributes_at_all(self):
        message = make_message()
        message.pop("MessageAttributes")
        with pytest.raises(MalformedMessageError, match="`ServiceProviderId` is missing") as info:
            parse_request(message)
        assert (info.value.message_id, info.value.attribute) == ("m-1", SERVICE_PROVIDER_ID)

    def test_error_is_value_error_with_fields(self):
        with pytest.raises(ValueError) as info:
            parse_request(make_message(message_id="abc-123", BillPeriodId=s("p")))
        error = info.value
        assert isinstance(error, MalformedMessageError)
        assert (error.message_id, error.attribute) == ("abc-123", BILL_PERIOD_ID)
        assert error.reason == "must be an integer, got 'p'"


class TestTheParsedRequest:
    def test_is_the_one_request_and_its_dict_is_small_json(self):
        request = parse_request(request_message("m-9", session_id=SESSION, has_synced=True, portal_type_id=0))
        data = request.to_dict()
        assert list(data) == [
            "tenant_id",
            "service_provider_id",
            "bill_period_id",
            "session_id",
            "has_synced",
            "portal_type_id",
            "message_id",
            "manual",
        ]
        assert json.loads(json.dumps(data)) == data
        assert Request.from_dict(data) == request

    def test_an_absent_portal_type_is_m2m(self):
        assert parse_request(make_message()).portal_type_id == 0

    def test_frozen(self):
        request = parse_request(make_message())
        with pytest.raises(AttributeError):
            request.tenant_id = 1  # type: ignore[misc]

"""Legacy message attributes: reading values, writing them, and the error naming a bad one."""

from __future__ import annotations

import pytest

from include.carrier_optimization.messaging.attributes import (
    BILL_PERIOD_ID,
    ERROR_REASON,
    REQUEST_ATTRIBUTE_NAMES,
    TENANT_ID,
    UNKNOWN_MESSAGE_ID,
    Malformed,
    MalformedMessageError,
    attribute_text,
    message_id_of,
    optional_attribute,
    shown,
    string_attribute,
)
from tests.unit.include.carrier_optimization.messaging.conftest import make_message, s


def test_the_error_is_a_value_error_naming_message_attribute_and_rule():
    error = MalformedMessageError("abc-123", BILL_PERIOD_ID, "must be an integer, got 'p'")
    assert isinstance(error, ValueError)
    assert (error.message_id, error.attribute, error.reason) == ("abc-123", BILL_PERIOD_ID, error.reason)
    assert str(error) == "SQS message abc-123: `BillPeriodId` must be an integer, got 'p'"
    assert Malformed({"MessageId": "abc-123"}, error).message_id == "abc-123"


def test_long_values_are_cut_to_64_characters():
    assert shown("x" * 64) == "x" * 64
    assert shown("x" * 100) == "x" * 61 + "..."


@pytest.mark.parametrize(
    ("message", "expected"),
    [({"MessageId": "m-1"}, "m-1"), ({"MessageId": ""}, UNKNOWN_MESSAGE_ID), ({}, UNKNOWN_MESSAGE_ID)],
    ids=["present", "empty", "absent"],
)
def test_message_id_of(message, expected):
    assert message_id_of(message) == expected


def test_attribute_text_reads_string_and_number_values_and_none_when_absent():
    message = make_message(TenantId={"DataType": "Number", "StringValue": " 7 "})
    assert attribute_text(message, TENANT_ID) == " 7 "
    assert attribute_text(message, BILL_PERIOD_ID) == "55"
    assert attribute_text(message, "HasSynced") is None
    assert attribute_text({"MessageId": "m"}, TENANT_ID) is None


@pytest.mark.parametrize(
    "value",
    [{"DataType": "Binary", "BinaryValue": b"7"}, {"DataType": "String"}],
    ids=["binary", "no-string-value"],
)
def test_attribute_text_refuses_other_data_types(value):
    with pytest.raises(MalformedMessageError, match="`TenantId` must have DataType String or Number") as info:
        attribute_text(make_message("m-2", TenantId=value), TENANT_ID)
    assert info.value.message_id == "m-2"


def test_optional_attribute_parses_when_present():
    message = make_message()
    assert optional_attribute(message, "m-1", TENANT_ID, lambda mid, name, text: (mid, name, int(text))) == (
        "m-1",
        TENANT_ID,
        7,
    )
    assert optional_attribute(message, "m-1", "HasSynced", lambda *_: 1 / 0) is None


def test_string_attribute_and_names():
    assert string_attribute(55) == s("55") == {"DataType": "String", "StringValue": "55"}
    assert TENANT_ID in REQUEST_ATTRIBUTE_NAMES and ERROR_REASON not in REQUEST_ATTRIBUTE_NAMES

"""Jasper payloads: ``modifiedSince`` format, device page checks naming page and field, de-duplication."""

from __future__ import annotations

import datetime as dt

import pytest

from include.carrier_optimization.sync.carriers.jasper_payloads import (
    DevicePage,
    DeviceUsage,
    JasperDevice,
    MalformedPageError,
    dedupe_by_iccid,
    format_modified_since,
    parse_device_page,
    parse_usage,
)


def test_modified_since_is_sent_as_iso_utc():
    assert format_modified_since(dt.datetime(2026, 10, 27, 12, 0, tzinfo=dt.UTC)) == "2026-10-27T12:00:00Z"
    assert format_modified_since("2026-10-27T14:00:00+02:00") == "2026-10-27T12:00:00Z"
    with pytest.raises(ValueError, match="`modified_since` must be an ISO 8601 date-time; got '27/10/2026'"):
        format_modified_since("27/10/2026")


class TestDevicePage:
    @pytest.mark.parametrize(
        ("device", "match"),
        [
            (
                {"iccid": "1" * 31, "status": "A"},
                r"`devices\[0\].iccid` must be a non-empty string of at most 30",
            ),
            ({"iccid": "1", "status": ""}, r"`devices\[0\].status` must be a non-empty string"),
            (
                {"iccid": "1", "status": "A", "ratePlan": 5},
                r"`devices\[0\].ratePlan` must be null or a non-empty",
            ),
            ("1", r"`devices\[0\]` must be an object; got '1'"),
        ],
        ids=["iccid-too-long", "empty-status", "rate-plan-not-text", "device-not-object"],
    )
    def test_field_rules(self, device, match):
        with pytest.raises(MalformedPageError, match=match):
            parse_device_page({"pageNumber": 1, "devices": [device], "lastPage": True}, 1, "u")

    def test_last_page_must_be_boolean(self):
        with pytest.raises(MalformedPageError, match="`lastPage` must be true or false; got 'yes'"):
            parse_device_page({"pageNumber": 1, "devices": [], "lastPage": "yes"}, 1, "u")


class TestDedupe:
    def test_first_occurrence_kept_and_duplicates_counted(self):
        a, b = JasperDevice("1", "A", None, None), JasperDevice("2", "A", None, None)
        again = JasperDevice("1", "DEACTIVATED", None, None)
        assert dedupe_by_iccid([a, b, again]) == ([a, b], 1)

    def test_page_with_repeated_iccid_is_deduplicated(self):
        raw = [{"iccid": "1", "status": "A"}, {"iccid": "1", "status": "B"}, {"iccid": "2", "status": "A"}]
        page = parse_device_page({"pageNumber": 3, "devices": raw, "lastPage": False}, 3, "u")
        assert page == DevicePage(
            3, (JasperDevice("1", "A", None, None), JasperDevice("2", "A", None, None)), False, duplicates=1
        )


class TestUsage:
    def test_record_is_converted_with_utc_dates(self):
        payload = {
            "iccid": "89",
            "ctdDataUsage": 2048.0,
            "ctdSMSUsage": None,
            "usageDate": "2026-11-20T02:00:00+02:00",
            "dateActivated": None,
        }
        assert parse_usage(payload, "89", "u") == DeviceUsage("89", 2048, 0, dt.datetime(2026, 11, 20), None)

    @pytest.mark.parametrize(
        ("payload", "match"),
        [
            (
                {"iccid": "other", "ctdDataUsage": 1},
                r"usage of ICCID 89: `iccid` must be the requested ICCID",
            ),
            ({"iccid": "89", "ctdDataUsage": -1}, r"`ctdDataUsage` must be an integer >= 0; got -1"),
            ({"iccid": "89", "ctdDataUsage": 1, "usageDate": "soon"}, r"`usageDate` must be null or an ISO"),
        ],
        ids=["other-iccid", "negative-usage", "bad-date"],
    )
    def test_rules_name_the_iccid_and_field(self, payload, match):
        with pytest.raises(MalformedPageError, match=match):
            parse_usage(payload, "89", "u")

"""Sorting a received batch: the filter, the request taken, the messages released, the malformed."""

from __future__ import annotations

import json

import pytest

from include.carrier_optimization.messaging.attributes import BILL_PERIOD_ID, MalformedMessageError
from include.carrier_optimization.messaging.filtering import matches, split_batch, validate_filter
from include.carrier_optimization.messaging.parsing import parse_request
from tests.unit.include.carrier_optimization.messaging.conftest import (
    OTHER_TENANT,
    SESSION,
    TENANT,
    make_message,
    request_message,
)


class TestFilter:
    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({"tenant_id": 7}, (7, None, None)),
            ({"tenant_id": "7", "session_id": "901"}, (7, 901, None)),
            ({"tenant_id": " 7 ", "session_id": ""}, (7, None, None)),
            ({"tenant_id": 7, "session_id": "None"}, (7, None, None)),
            ({"tenant_id": 7, "session_id": "null", "require_synced": True}, (7, None, True)),
            ({"tenant_id": 7, "session_id": 901, "require_synced": False}, (7, 901, False)),
        ],
        ids=["int", "rendered-text", "empty-session", "none-text-session", "null-text-session", "all-set"],
    )
    def test_validate_filter(self, kwargs, expected):
        flt = validate_filter(**kwargs)
        assert (flt.tenant_id, flt.session_id, flt.require_synced) == expected

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"tenant_id": None}, r"`tenant_id` must be a positive integer, got None"),
            ({"tenant_id": ""}, r"`tenant_id` must be a positive integer, got ''"),
            ({"tenant_id": "acme"}, r"`tenant_id` must be a positive integer, got 'acme'"),
            ({"tenant_id": True}, r"`tenant_id` must be a positive integer, got True"),
            ({"tenant_id": 0}, r"`tenant_id` must be a positive integer, got 0"),
            ({"tenant_id": 7.0}, r"`tenant_id` must be a positive integer, got 7.0"),
            ({"tenant_id": 7, "session_id": "abc"}, r"`session_id` must be a positive integer, got 'abc'"),
            ({"tenant_id": 7, "session_id": -1}, r"`session_id` must be a positive integer, got -1"),
            ({"tenant_id": 7, "require_synced": "True"}, r"`require_synced` must be True, False or None"),
        ],
        ids=[
            "tenant-none",
            "tenant-empty",
            "tenant-name",
            "tenant-bool",
            "tenant-zero",
            "tenant-float",
            "session-text",
            "session-negative",
            "require-synced-text",
        ],
    )
    def test_validate_filter_iv(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            validate_filter(**kwargs)

    @pytest.mark.parametrize(
        ("message_kwargs", "filter_kwargs", "expected"),
        [
            ({}, {"tenant_id": TENANT}, True),
            ({"tenant_id": OTHER_TENANT}, {"tenant_id": TENANT}, False),
            ({"session_id": SESSION}, {"tenant_id": TENANT}, True),
            ({"session_id": SESSION}, {"tenant_id": TENANT, "session_id": SESSION}, True),
            ({"session_id": SESSION + 1}, {"tenant_id": TENANT, "session_id": SESSION}, False),
            ({}, {"tenant_id": TENANT, "session_id": SESSION}, False),
            ({"has_synced": True}, {"tenant_id": TENANT, "require_synced": True}, True),
            ({"has_synced": False}, {"tenant_id": TENANT, "require_synced": True}, False),
            ({}, {"tenant_id": TENANT, "require_synced": True}, False),
            ({}, {"tenant_id": TENANT, "require_synced": False}, True),
        ],
        ids=[
            "same-tenant",
            "other-tenant",
            "any-session",
            "same-session",
            "other-session",
            "session-required-none-given",
            "synced-required-true",
            "synced-required-false",
            "synced-required-missing",
            "unsynced-required-missing",
        ],
    )
    def test_matches(self, message_kwargs, filter_kwargs, expected):
        request = parse_request(request_message("m", **message_kwargs))
        assert matches(request, **filter_kwargs) is expected


class TestSplitBatch:
    def test_empty(self):
        assert split_batch([], tenant_id=TENANT) == (None, [], [])

    def test_takes_first_match_and_releases_the_rest(self):
        batch = [
            request_message("other", tenant_id=OTHER_TENANT),
            request_message("first"),
            make_message("broken", BillPeriodId=None),
            request_message("second"),
        ]
        accepted, others, malformed = split_batch(batch, tenant_id=TENANT)
        assert accepted.request.message_id == "first"
        assert accepted.message["ReceiptHandle"] == "rh-first"
        assert [m["MessageId"] for m in others] == ["other", "second"]
        assert [(m.message_id, m.error.attribute) for m in malformed] == [("broken", BILL_PERIOD_ID)]

    def test_continuation_filter(self):
        batch = [
            request_message("new-request"),
            request_message("other-session", session_id=SESSION + 1, has_synced=True),
            request_message("not-synced", session_id=SESSION, has_synced=False),
            request_message("continuation", session_id=SESSION, has_synced=True),
        ]
        accepted, others, malformed = split_batch(
            batch, tenant_id=TENANT, session_id=str(SESSION), require_synced=True
        )
        assert accepted.request.message_id == "continuation"
        assert accepted.request.has_synced is True
        assert [m["MessageId"] for m in others] == ["new-request", "other-session", "not-synced"]
        assert malformed == []

    def test_other_tenants_only(self):
        accepted, others, malformed = split_batch(
            [request_message("a", tenant_id=OTHER_TENANT)], tenant_id=TENANT
        )
        assert accepted is None
        assert [m["MessageId"] for m in others] == ["a"]
        assert malformed == []

    def test_duplicate_message_id_is_malformed_once_with_the_last_copy(self):
        first = request_message("dup")
        second = request_message("dup") | {"ReceiptHandle": "rh-dup-newest"}
        accepted, others, malformed = split_batch([first, request_message("ok"), second], tenant_id=TENANT)
        assert accepted.request.message_id == "ok"
        assert others == []
        assert len(malformed) == 1
        assert malformed[0].message["ReceiptHandle"] == "rh-dup-newest"
        with pytest.raises(MalformedMessageError, match=r"SQS message dup: `MessageId` occurs 2 times"):
            raise malformed[0].error

    def test_message_without_id_is_malformed(self):
        message = request_message("x")
        del message["MessageId"]
        _, _, malformed = split_batch([message, dict(message)], tenant_id=TENANT)
        assert [m.message_id for m in malformed] == ["<no MessageId>", "<no MessageId>"]

    def test_invalid_filter_raises(self):
        with pytest.raises(ValueError, match="`tenant_id` must be a positive integer"):
            split_batch([request_message("a")], tenant_id="acme")

    def test_does_not_mutate_input(self):
        batch = [request_message("a"), request_message("b", tenant_id=OTHER_TENANT)]
        snapshot = json.dumps(batch, sort_keys=True)
        split_batch(batch, tenant_id=TENANT)
        assert json.dumps(batch, sort_keys=True) == snapshot

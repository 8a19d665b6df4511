"""Request message parsing, filtering, batch sorting and attribute building (no Airflow, no SQS)."""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial

import pytest

from include.carrier_optimization.messaging import messages
from include.carrier_optimization.messaging.messages import (
    BILL_MONTH,
    BILL_PERIOD_ID,
    BILL_YEAR,
    ERROR_REASON,
    HAS_SYNCED,
    OPTIMIZATION_SESSION_ID,
    PORTAL_TYPE_ID,
    SERVICE_PROVIDER_ID,
    TENANT_ID,
    Malformed,
    MalformedMessageError,
    OptimizationRequest,
    SqsCall,
    arun_steps,
    build_request_attributes,
    dead_letter_params,
    matches,
    parse_request,
    poke_steps,
    receive_params,
    release_entries,
    run_steps,
    split_batch,
    validate_filter,
)

TENANT = 7
OTHER_TENANT = 8
PROVIDER = 3
PERIOD = 55
SESSION = 901


def s(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def make_message(message_id: str = "m-1", body: str = "Carrier to optimize", **attributes) -> dict:
    """A received message; attribute keyword ``None`` removes a default attribute."""
    base = {SERVICE_PROVIDER_ID: s(str(PROVIDER)), BILL_PERIOD_ID: s(str(PERIOD)), TENANT_ID: s(str(TENANT))}
    base.update(attributes)
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "MD5OfBody": "x",
        "Body": body,
        "MessageAttributes": {name: value for name, value in base.items() if value is not None},
    }


def request_message(message_id: str, **kwargs) -> dict:
    """A received message whose attributes come from build_request_attributes."""
    fields = {"tenant_id": TENANT, "service_provider_id": PROVIDER, "bill_period_id": PERIOD} | kwargs
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "Body": "b",
        "MessageAttributes": build_request_attributes(**fields),
    }


class TestParseRequest:
    def test_minimal_legacy_scheduled_message(self):
        request = parse_request(make_message(HasSynced=s("False"), BillYear=s("2024"), BillMonth=s("5")))
        assert request == OptimizationRequest(
            tenant_id=TENANT,
            service_provider_id=PROVIDER,
            bill_period_id=PERIOD,
            session_id=None,
            has_synced=False,
            portal_type_id=None,
            message_id="m-1",
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


class TestOptimizationRequest:
    def test_to_dict_is_small_json_with_the_documented_keys(self):
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
        ]
        assert json.loads(json.dumps(data)) == data
        assert OptimizationRequest.from_dict(data) == request

    def test_frozen(self):
        request = parse_request(make_message())
        with pytest.raises(AttributeError):
            request.tenant_id = 1  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            (lambda d: d.pop("message_id"), r"missing \['message_id'\], unknown \[\]"),
            (lambda d: d.update(extra=1), r"missing \[\], unknown \['extra'\]"),
        ],
        ids=["missing-key", "unknown-key"],
    )
    def test_from_dict_rejects_other_keys(self, change, match):
        data = parse_request(make_message()).to_dict()
        change(data)
        with pytest.raises(ValueError, match=match):
            OptimizationRequest.from_dict(data)


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


class TestReleaseEntries:
    def test_entries_and_chunks(self):
        batch = [request_message(f"m{i}") for i in range(12)]
        chunks = release_entries(batch)
        assert [len(chunk) for chunk in chunks] == [10, 2]
        assert chunks[0][0] == {"Id": "m0", "ReceiptHandle": "rh-m0", "VisibilityTimeout": 0}
        assert chunks[1][-1] == {"Id": "m11", "ReceiptHandle": "rh-m11", "VisibilityTimeout": 0}

    def test_none(self):
        assert release_entries([]) == []


class TestDeadLetterParams:
    def malformed(self, message: dict) -> Malformed:
        _, _, malformed = split_batch([message], tenant_id=TENANT)
        return malformed[0]

    def test_keeps_body_and_attributes_and_adds_reason(self):
        message = make_message("bad", body="original body", BillPeriodId=s("abc"))
        message["MessageAttributes"][TENANT_ID]["StringListValues"] = []  # as some endpoints return
        params = dead_letter_params(self.malformed(message), queue_url="http://dlq")
        assert params["QueueUrl"] == "http://dlq"
        assert params["MessageBody"] == "original body"
        attributes = params["MessageAttributes"]
        assert attributes[TENANT_ID] == s(str(TENANT))
        assert attributes[BILL_PERIOD_ID] == s("abc")
        assert attributes[ERROR_REASON] == s("SQS message bad: `BillPeriodId` must be an integer, got 'abc'")

    def test_attribute_limit(self):
        extra = {f"Extra{i}": s(str(i)) for i in range(8)}
        message = make_message("bad", TenantId=s("x"), **extra)  # 11 attributes
        attributes = dead_letter_params(self.malformed(message), queue_url="q")["MessageAttributes"]
        assert len(attributes) == messages.SQS_MAX_ATTRIBUTES
        assert {SERVICE_PROVIDER_ID, BILL_PERIOD_ID, TENANT_ID} <= set(attributes)
        assert attributes[ERROR_REASON]["StringValue"].endswith(
            "(attributes dropped for the dead-letter copy: Extra6, Extra7)"
        )

    def test_empty_body_gets_placeholder(self):
        params = dead_letter_params(
            self.malformed(make_message("bad", body="", TenantId=None)), queue_url="q"
        )
        assert params["MessageBody"] == "(empty body)"


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


QUEUE = "https://sqs.example/requests"
DLQ = "https://sqs.example/requests-dlq"


class FakeSqs:
    """Records each call; answers ``receive_message`` with ``batch``; ``fail`` maps a method to an error."""

    def __init__(self, batch: list[dict], fail: dict[str, Exception] | None = None, failed_ids=()) -> None:
        self.batch, self.fail, self.failed_ids, self.calls = batch, fail or {}, failed_ids, []

    def __getattr__(self, method: str):
        def call(**kwargs):
            self.calls.append(SqsCall(method, kwargs))
            if method in self.fail:
                raise self.fail[method]
            if method == "receive_message":
                return {"Messages": self.batch}
            if method == "change_message_visibility_batch":
                return {"Failed": [{"Id": entry_id, "Code": "x"} for entry_id in self.failed_ids]}
            return {}

        return call


class AsyncFakeSqs(FakeSqs):
    def __getattr__(self, method: str):
        sync_call = super().__getattr__(method)

        async def call(**kwargs):
            return sync_call(**kwargs)

        return call


def steps(dead_letter_queue=DLQ):
    receive = receive_params(queue_url=QUEUE, max_messages=10, wait_time_seconds=0, visibility_timeout=None)
    return poke_steps(
        receive, partial(split_batch, tenant_id=TENANT), dead_letter_queue=dead_letter_queue, label="request"
    )


class TestPokeSteps:
    BATCH = [
        request_message("other", tenant_id=OTHER_TENANT),
        request_message("mine"),
        make_message("bad", TenantId=None),
    ]

    def test_receive_params(self):
        assert receive_params(
            queue_url=QUEUE, max_messages=5, wait_time_seconds=2, visibility_timeout=30
        ) == {
            "QueueUrl": QUEUE,
            "MaxNumberOfMessages": 5,
            "WaitTimeSeconds": 2,
            "MessageAttributeNames": ["All"],
            "VisibilityTimeout": 30,
        }

    def test_receive_release_dead_letter_delete_in_order(self):
        client = FakeSqs(self.BATCH)
        accepted = run_steps(client, steps())
        assert accepted.request.message_id == "mine"
        assert [call.method for call in client.calls] == [
            "receive_message",
            "change_message_visibility_batch",
            "send_message",
            "delete_message",
            "delete_message",
        ]
        assert client.calls[1].kwargs["Entries"] == [
            {"Id": "m0", "ReceiptHandle": "rh-other", "VisibilityTimeout": 0}
        ]
        assert client.calls[2].kwargs["QueueUrl"] == DLQ
        assert [call.kwargs for call in client.calls[3:]] == [
            {"QueueUrl": QUEUE, "ReceiptHandle": "rh-bad"},
            {"QueueUrl": QUEUE, "ReceiptHandle": "rh-mine"},
        ]

    def test_async_driver_makes_the_same_calls(self):
        sync_client, async_client = FakeSqs(self.BATCH), AsyncFakeSqs(self.BATCH)
        sync_result = run_steps(sync_client, steps())
        async_result = asyncio.run(arun_steps(async_client, steps()))
        assert async_result == sync_result
        assert async_client.calls == sync_client.calls

    def test_failed_dead_letter_send_leaves_the_message(self, caplog):
        client = FakeSqs(self.BATCH[2:], fail={"send_message": RuntimeError("dlq down")})
        with caplog.at_level(logging.ERROR):
            assert run_steps(client, steps()) is None
        assert [call.method for call in client.calls] == ["receive_message", "send_message"]
        assert f"Could not move message bad to dead-letter queue {DLQ}; left on the queue" in caplog.text

    def test_without_dead_letter_queue_logs_and_deletes(self, caplog):
        client = FakeSqs(self.BATCH[2:], fail={"delete_message": RuntimeError("gone")})
        with caplog.at_level(logging.ERROR):
            assert run_steps(client, steps(dead_letter_queue=None)) is None
        assert [call.method for call in client.calls] == ["receive_message", "delete_message"]
        assert "No dead-letter queue set: deleting message bad" in caplog.text
        assert "Could not delete malformed message bad" in caplog.text

    def test_failed_release_is_logged(self, caplog):
        client = FakeSqs(self.BATCH[:1], failed_ids=["m0"])
        with caplog.at_level(logging.WARNING):
            assert run_steps(client, steps()) is None
        assert f"Could not release message other on {QUEUE}" in caplog.text

    @pytest.mark.parametrize(
        "method", ["receive_message", "delete_message"], ids=["receive", "delete-accepted"]
    )
    def test_receive_and_accepted_delete_failures_propagate(self, method):
        client = FakeSqs(self.BATCH[1:2], fail={method: RuntimeError("boom")})
        with pytest.raises(RuntimeError, match="boom"):
            run_steps(client, steps())


def test_module_imports_no_airflow():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(messages.__file__).read_text())
    imported = [
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "airflow"]

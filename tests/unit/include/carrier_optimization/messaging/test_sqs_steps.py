"""The SQS protocol sans I/O: receive, release, dead-letter and delete steps, and their drivers."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import pytest

from include.carrier_optimization.messaging import sqs_steps
from include.carrier_optimization.messaging.attributes import (
    BILL_PERIOD_ID,
    ERROR_REASON,
    SERVICE_PROVIDER_ID,
    TENANT_ID,
    Malformed,
)
from include.carrier_optimization.messaging.filtering import split_batch
from include.carrier_optimization.messaging.sqs_steps import (
    SqsCall,
    arun_steps,
    dead_letter_params,
    poke_steps,
    receive_params,
    release_entries,
    run_steps,
)
from tests.unit.include.carrier_optimization.messaging.conftest import (
    OTHER_TENANT,
    TENANT,
    make_message,
    request_message,
    s,
)


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
        assert len(attributes) == sqs_steps.SQS_MAX_ATTRIBUTES
        assert {SERVICE_PROVIDER_ID, BILL_PERIOD_ID, TENANT_ID} <= set(attributes)
        assert attributes[ERROR_REASON]["StringValue"].endswith(
            "(attributes dropped for the dead-letter copy: Extra6, Extra7)"
        )

    def test_empty_body_gets_placeholder(self):
        params = dead_letter_params(
            self.malformed(make_message("bad", body="", TenantId=None)), queue_url="q"
        )
        assert params["MessageBody"] == "(empty body)"


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
    return poke_steps(receive, partial(split_batch, tenant_id=TENANT), dead_letter_queue=dead_letter_queue)


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

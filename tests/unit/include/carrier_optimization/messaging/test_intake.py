"""Event-driven intake, sans I/O: watcher rounds as SQS calls, verdicts, event payloads, claim plans."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import pytest

from include.carrier_optimization.messaging.attributes import ERROR_REASON
from include.carrier_optimization.messaging.intake import (
    LEAVE,
    TAKE,
    Taken,
    event_payload,
    event_payloads,
    plan_claims,
    provider_verdict,
    tenant_verdict,
    watch_steps,
)
from include.carrier_optimization.messaging.parsing import parse_request
from include.carrier_optimization.messaging.publishing import build_request_attributes
from include.carrier_optimization.messaging.sqs_steps import run_steps

TENANT, OTHER_TENANT, PROVIDER, PERIOD = 7, 8, 3, 55
QUEUE, DLQ = "https://sqs/requests", "https://sqs/dead"


def message(message_id: str, **fields) -> dict:
    attributes = build_request_attributes(
        **({"tenant_id": TENANT, "service_provider_id": PROVIDER, "bill_period_id": PERIOD} | fields)
    )
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "Body": "Carrier to optimize",
        "MessageAttributes": attributes,
    }


class FakeSqs:
    """Records the calls; ``receive_message`` answers ``messages``; ``fail`` names methods that raise."""

    def __init__(self, messages: list[dict], fail: tuple[str, ...] = ()) -> None:
        self.messages, self.fail, self.calls = messages, fail, []

    def __getattr__(self, method: str):
        def call(**kwargs):
            self.calls.append((method, kwargs))
            if method in self.fail:
                raise RuntimeError(f"{method} failed")
            return {"Messages": self.messages} if method == "receive_message" else {}

        return call

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


def one_round(client: FakeSqs, decide, dead_letter_queue: str | None = DLQ) -> list[Taken]:
    steps = watch_steps(
        {"QueueUrl": QUEUE, "VisibilityTimeout": 300},
        parse_request,
        decide,
        dead_letter_queue=dead_letter_queue,
        logger=logging.getLogger("test"),
    )
    return run_steps(client, steps)


def this_tenant(request) -> str:
    return tenant_verdict(request, tenant_id=TENANT, awaiting_sync=lambda _: False)


def test_taken_messages_are_returned_in_order_and_never_deleted():
    client = FakeSqs([message("a"), message("b")])
    taken = one_round(client, lambda request: TAKE)
    assert [t.request.message_id for t in taken] == ["a", "b"]
    assert client.methods() == ["receive_message"]
    assert client.calls[0][1] == {"QueueUrl": QUEUE, "VisibilityTimeout": 300}


def test_left_messages_are_made_visible_again_at_once():
    client = FakeSqs([message("a"), message("b")])
    taken = one_round(client, lambda request: LEAVE if request.message_id == "b" else TAKE)
    assert [t.request.message_id for t in taken] == ["a"]
    method, kwargs = client.calls[1]
    assert method == "change_message_visibility_batch"
    assert kwargs == {
        "QueueUrl": QUEUE,
        "Entries": [{"Id": "m0", "ReceiptHandle": "rh-b", "VisibilityTimeout": 0}],
    }


def test_refused_and_malformed_messages_are_dead_lettered_with_their_reason_then_deleted():
    broken = message("bad")
    del broken["MessageAttributes"]["TenantId"]
    client = FakeSqs([message("other", tenant_id=OTHER_TENANT), broken])
    assert one_round(client, this_tenant) == []
    sends = [kwargs for method, kwargs in client.calls if method == "send_message"]
    deletes = [kwargs["ReceiptHandle"] for method, kwargs in client.calls if method == "delete_message"]
    assert sorted(deletes) == ["rh-bad", "rh-other"]
    reasons = {s["MessageAttributes"][ERROR_REASON]["StringValue"] for s in sends}
    assert all(s["QueueUrl"] == DLQ for s in sends) and len(reasons) == 2
    assert any("TenantId" in r and f"not {TENANT}" in r for r in reasons)


def test_a_failed_dead_letter_send_leaves_the_message_on_the_queue():
    client = FakeSqs([message("other", tenant_id=OTHER_TENANT)], fail=("send_message",))
    assert one_round(client, this_tenant) == []
    assert client.methods() == ["receive_message", "send_message"]


def test_without_a_dead_letter_queue_refused_messages_are_deleted():
    client = FakeSqs([message("other", tenant_id=OTHER_TENANT)])
    one_round(client, this_tenant, dead_letter_queue=None)
    assert client.methods() == ["receive_message", "delete_message"]


def test_tenant_verdict():
    request = parse_request(message("a"))
    assert tenant_verdict(request, tenant_id=TENANT, awaiting_sync=lambda _: True) == TAKE
    other = parse_request(message("b", tenant_id=OTHER_TENANT))
    assert tenant_verdict(other, tenant_id=TENANT, awaiting_sync=lambda _: False).startswith("TenantId is 8")
    synced = parse_request(message("c", session_id=901, has_synced=True))
    assert tenant_verdict(synced, tenant_id=TENANT, awaiting_sync={901}.__contains__) == LEAVE
    assert tenant_verdict(synced, tenant_id=TENANT, awaiting_sync=set().__contains__) == TAKE
    not_synced = parse_request(message("d", session_id=901, has_synced=False))
    assert tenant_verdict(not_synced, tenant_id=TENANT, awaiting_sync={901}.__contains__) == TAKE


def test_provider_verdict():
    request = SimpleNamespace(service_provider_id=PROVIDER)
    assert provider_verdict(request, service_provider_ids=[PROVIDER, 4]) == TAKE
    assert provider_verdict(request, service_provider_ids=[4]).startswith("ServiceProviderId 3 ")


def test_event_payload_carries_the_message_and_its_request():
    request = parse_request(message("a"))
    payload = event_payload(Taken(message("a"), request), queue_url=QUEUE)
    assert payload == {
        "status": "success",
        "queue_url": QUEUE,
        "message_id": "a",
        "receipt_handle": "rh-a",
        "request": request.to_dict(),
    }


def _payload(message_id: str, handle: str = "") -> dict:
    return {"message_id": message_id, "receipt_handle": handle or f"rh-{message_id}", "request": {"x": 1}}


def test_plan_claims_sorts_duplicates_the_claim_and_releases():
    owners = {"old": "another_run"}
    plan = plan_claims(
        [_payload("old"), _payload("a"), _payload("b")], taken_by=owners.get, run_id="this_run"
    )
    assert [p["message_id"] for p in plan.duplicates] == ["old"]
    assert plan.claim["message_id"] == "a"
    assert [p["message_id"] for p in plan.release] == ["b"]


def test_plan_claims_counts_a_repeated_message_once_with_its_newest_receipt_handle():
    plan = plan_claims([_payload("a", "h1"), _payload("a", "h2")], taken_by=lambda _: None, run_id="r")
    assert plan.claim["receipt_handle"] == "h2" and plan.release == [] and plan.duplicates == []


def test_a_retried_run_claims_its_own_message_again():
    plan = plan_claims([_payload("a")], taken_by={"a": "r"}.get, run_id="r")
    assert plan.claim["message_id"] == "a" and plan.duplicates == []


def test_nothing_new_means_no_claim():
    plan = plan_claims([_payload("a")], taken_by={"a": "other"}.get, run_id="r")
    assert plan.claim is None and len(plan.duplicates) == 1


def test_event_payloads_keep_sqs_payloads_oldest_first():
    t0 = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    event = lambda payload, seconds: SimpleNamespace(  # noqa: E731
        extra={"payload": payload}, timestamp=t0 + dt.timedelta(seconds=seconds)
    )
    events = {
        "asset": [event(_payload("late"), 5), event(_payload("early"), 1)],
        "alias": [
            SimpleNamespace(extra={}, timestamp=t0),  # a manual asset event: no payload
            SimpleNamespace(extra={"payload": {"message_id": "m"}}, timestamp=t0),  # no request
            event(_payload("middle"), 3),
        ],
    }
    assert [p["message_id"] for p in event_payloads(events)] == ["early", "middle", "late"]
    assert event_payloads({}) == []


@pytest.mark.parametrize("extra", [None, "text", {"payload": "text"}])
def test_event_payloads_ignore_events_without_a_mapping_payload(extra):
    assert event_payloads({"a": [SimpleNamespace(extra=extra, timestamp=None)]}) == []

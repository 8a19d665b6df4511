"""Event-driven intake on a real local SQS endpoint and an AMOP database: nothing lost, nothing doubled.

The watcher trigger takes a request without deleting it; the run's intake task records its MessageId,
then deletes it. These tests drive both halves and the crash windows between them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from types import SimpleNamespace

import pytest

from include.carrier_optimization.amop.run_records import RunRecords
from include.carrier_optimization.messaging.attributes import ERROR_REASON
from include.carrier_optimization.messaging.intake import event_payloads
from include.carrier_optimization.messaging.publishing import build_request_attributes
from plugins.compat import AirflowSkipException
from plugins.operators.intake import DeviceSyncIntakeOperator, OptimizationIntakeOperator
from plugins.triggers.intake import SqsRequestWatcherTrigger

pytestmark = pytest.mark.integration("sqs")

TENANT, OTHER_TENANT, PROVIDER, PERIOD = 7, 8, 3, 55


@pytest.fixture
def queues(fresh_queue):
    return fresh_queue


def send(client, queue: str, **fields) -> str:
    attributes = build_request_attributes(
        **({"tenant_id": TENANT, "service_provider_id": PROVIDER, "bill_period_id": PERIOD} | fields)
    )
    return client.send_message(
        QueueUrl=queue, MessageBody="Carrier to optimize", MessageAttributes=attributes
    )["MessageId"]


def all_ids(client, queue: str) -> list[str]:
    """Every message id still on the queue (visible or not), from the queue's attributes and a peek."""
    response = client.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return sorted(m["MessageId"] for m in response.get("Messages", []))


def in_flight(client, queue: str) -> int:
    attrs = client.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def watcher(queue: str, dlq: str | None = None, **kwargs) -> SqsRequestWatcherTrigger:
    fields = {"sqs_queue": queue, "tenant_id": TENANT, "dead_letter_queue": dlq, "wait_time_seconds": 0}
    return SqsRequestWatcherTrigger(**(fields | kwargs))


def one_round(trigger: SqsRequestWatcherTrigger, client) -> list[dict]:
    return trigger._round(client)


def context(payloads: list[dict], run_id: str = "asset_triggered__1", params: dict | None = None) -> dict:
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    events = [
        SimpleNamespace(extra={"from_trigger": True, "payload": p}, timestamp=now + dt.timedelta(seconds=i))
        for i, p in enumerate(payloads)
    ]
    return {
        "triggering_asset_events": {"asset": events} if events else {},
        "run_id": run_id,
        "params": params or {},
    }


def intake(**kwargs) -> OptimizationIntakeOperator:
    return OptimizationIntakeOperator(
        task_id="request", tenant_id=TENANT, aws_conn_id="aws_default", **kwargs
    )


class TestWatcherRound:
    def test_takes_the_tenant_s_request_and_keeps_it_on_the_queue(self, sqs_client, queues, amop):
        queue, _ = queues
        message_id = send(sqs_client, queue)
        (payload,) = one_round(watcher(queue), sqs_client)
        assert payload["message_id"] == message_id and payload["queue_url"] == queue
        assert payload["request"]["tenant_id"] == TENANT and payload["request"]["bill_period_id"] == PERIOD
        assert payload["receipt_handle"]
        assert in_flight(sqs_client, queue) == 1  # not deleted: only a run's record lets it go

    def test_other_tenant_and_malformed_messages_go_to_the_dead_letter_queue(self, sqs_client, queues, amop):
        queue, dlq = queues
        other = send(sqs_client, queue, tenant_id=OTHER_TENANT)
        sqs_client.send_message(
            QueueUrl=queue,
            MessageBody="broken",
            MessageAttributes={"TenantId": {"DataType": "String", "StringValue": str(TENANT)}},
        )
        assert one_round(watcher(queue, dlq), sqs_client) == []
        assert in_flight(sqs_client, queue) == 0
        dead = sqs_client.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        reasons = sorted(m["MessageAttributes"][ERROR_REASON]["StringValue"] for m in dead["Messages"])
        assert len(reasons) == 2
        assert any(other in r and "`TenantId` is 8, not 7" in r for r in reasons)
        assert any("ServiceProviderId" in r and "missing" in r for r in reasons)

    def test_a_sync_completion_awaited_by_a_run_is_left_to_its_sync_wait(self, sqs_client, queues, amop):
        from include.carrier_optimization.amop.repository import AmopRepository
        from include.carrier_optimization.amop.schema import optimization_session

        queue, _ = queues
        session = AmopRepository(amop).create_session(TENANT, PROVIDER, PERIOD)["session_id"]
        with amop.begin() as conn:
            conn.execute(
                optimization_session.update()
                .where(optimization_session.c.Id == session)
                .values(AirflowRunId="manual__x", Progress=20)
            )
        completion = send(sqs_client, queue, session_id=session, has_synced=True)
        assert one_round(watcher(queue), sqs_client) == []
        assert all_ids(sqs_client, queue) == [completion]  # visible again at once for sync_wait

    def test_run_yields_an_event_within_seconds(self, sqs_client, queues, amop):
        queue, _ = queues
        message_id = send(sqs_client, queue)

        async def first_event():
            async for event in watcher(queue, poll_interval=0.1).run():
                return event

        start = time.monotonic()
        event = asyncio.run(asyncio.wait_for(first_event(), 10))
        assert event.payload["message_id"] == message_id
        assert time.monotonic() - start < 5


class TestCrashWindows:
    def test_triggerer_dies_after_taking_a_message_nothing_is_lost(self, sqs_client, queues, amop):
        """The event is yielded but never stored (the triggerer died): the message comes back."""
        queue, _ = queues
        message_id = send(sqs_client, queue)
        (lost,) = one_round(watcher(queue, hold_seconds=1), sqs_client)  # event lost with the process
        assert one_round(watcher(queue, hold_seconds=1), sqs_client) == []  # still held
        time.sleep(1.5)
        (again,) = one_round(watcher(queue, hold_seconds=60), sqs_client)  # a restarted triggerer
        assert again["message_id"] == lost["message_id"] == message_id
        request = intake().execute(context([again]))
        assert request["service_provider_id"] == PROVIDER and in_flight(sqs_client, queue) == 0

    def test_run_dies_between_record_and_delete_the_redelivery_is_dropped(self, sqs_client, queues, amop):
        queue, _ = queues
        message_id = send(sqs_client, queue)
        (first,) = one_round(watcher(queue, hold_seconds=1), sqs_client)
        op = intake()
        op._sqs_call = lambda *args, **kwargs: None  # the worker dies before its delete
        assert op.execute(context([first], run_id="run_1"))["tenant_id"] == TENANT
        time.sleep(1.5)
        (copy,) = one_round(watcher(queue), sqs_client)
        assert copy["message_id"] == message_id
        with pytest.raises(AirflowSkipException, match="taken by another run"):
            intake().execute(context([copy], run_id="run_2"))
        assert in_flight(sqs_client, queue) == 0
        assert RunRecords(amop).message_run(message_id) == "run_1"

    def test_retried_intake_task_of_the_same_run_keeps_its_request(self, sqs_client, queues, amop):
        queue, _ = queues
        send(sqs_client, queue)
        (payload,) = one_round(watcher(queue), sqs_client)
        first = intake().execute(context([payload], run_id="run_1"))
        assert intake().execute(context([payload], run_id="run_1")) == first


class TestIntakeTask:
    def test_one_request_per_run_further_messages_get_their_own_run(self, sqs_client, queues, amop):
        queue, _ = queues
        first, second = send(sqs_client, queue), send(sqs_client, queue, service_provider_id=4)
        payloads = one_round(watcher(queue), sqs_client)
        request = intake().execute(context(payloads + [payloads[0]]))  # plus a duplicated event
        assert request["message_id"] == first and request["manual"] is False
        assert all_ids(sqs_client, queue) == [second]  # released at once, the watcher takes it next

    def test_a_manual_run_s_form_is_the_request(self, amop):
        params = {"service_provider_id": PROVIDER, "billing_period_id": None, "has_synced": True}
        request = intake().execute(context([], run_id="manual__1", params=params))
        assert request["manual"] is True and request["has_synced"] is True and request["message_id"] is None

    def test_device_sync_runs_take_their_request_and_skip_without_one(self, sqs_client, queues, amop):
        from include.carrier_optimization.messaging.sync_messages import build_sync_request_attributes

        queue, _ = queues
        attributes = build_sync_request_attributes(
            service_provider_id=PROVIDER, last_sync_date=dt.datetime(2026, 10, 1, tzinfo=dt.UTC), session_id=5
        )
        sqs_client.send_message(QueueUrl=queue, MessageBody="sync", MessageAttributes=attributes)
        trigger = watcher(queue, kind="device_sync", service_provider_ids=[PROVIDER])
        (payload,) = one_round(trigger, sqs_client)
        op = DeviceSyncIntakeOperator(task_id="request", tenant_id=TENANT)
        assert op.execute(context([payload]))["session_id"] == 5
        with pytest.raises(AirflowSkipException):
            op.execute(context([], run_id="manual__2"))

    def test_payloads_are_read_in_event_order_and_other_events_ignored(self):
        ctx = context([{"message_id": "b", "request": {"x": 1}}, {"message_id": "a", "request": {"x": 2}}])
        ctx["triggering_asset_events"]["asset"].append(SimpleNamespace(extra={"from_trigger": False}))
        assert [p["message_id"] for p in event_payloads(ctx["triggering_asset_events"])] == ["b", "a"]


def test_a_repeated_event_of_a_released_message_never_deletes_it():
    from include.carrier_optimization.messaging.intake import plan_claims

    first = {"message_id": "a", "receipt_handle": "h1"}
    second, second_again = (
        {"message_id": "b", "receipt_handle": "h2"},
        {"message_id": "b", "receipt_handle": "h3"},
    )
    plan = plan_claims([first, second, second_again], taken_by=lambda _: None, run_id="r")
    assert plan.claim == first and plan.duplicates == []
    assert plan.release == [second_again]  # the newest receipt handle


def test_an_asset_event_without_a_message_runs_nothing(amop):
    ctx = context([], run_id="asset_triggered__9") | {"dag_run": SimpleNamespace(run_type="asset_triggered")}
    with pytest.raises(AirflowSkipException, match="without an SQS request"):
        intake().execute(ctx)

"""Device-sync intake on a real local SQS endpoint: sensor and trigger take this tenant's providers."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from airflow.sdk.exceptions import TaskDeferred

from include.carrier_optimization.messaging.messages import ERROR_REASON
from include.carrier_optimization.messaging.sync_messages import build_sync_request_attributes
from plugins.compat import AirflowException, AirflowFailException
from plugins.sensors.sqs import DeviceSyncRequestSqsSensor
from plugins.triggers.sqs import DeviceSyncRequestSqsTrigger

pytestmark = pytest.mark.integration("sqs")

PROVIDERS = [201, 202]
SINCE = "2026-10-27T00:00:00Z"


@pytest.fixture
def queues(fresh_queue):
    return fresh_queue


def send(client, queue, provider, **fields) -> str:
    attributes = build_sync_request_attributes(service_provider_id=provider, last_sync_date=SINCE, **fields)
    return client.send_message(
        QueueUrl=queue, MessageBody="Next page number is 1", MessageAttributes=attributes
    )["MessageId"]


def visible_ids(client, queue) -> list[str]:
    response = client.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0
    )
    return sorted(m["MessageId"] for m in response.get("Messages", []))


def make_sensor(queue, **kwargs) -> DeviceSyncRequestSqsSensor:
    fields = {
        "task_id": "request",
        "sqs_queue": queue,
        "service_provider_ids": PROVIDERS,
        "tenant_id": 2,
        "wait_time_seconds": 0,
        "visibility_timeout": 300,
        "poke_interval": 0.1,
        "timeout": 30,
        "deferrable": False,
    } | kwargs
    return DeviceSyncRequestSqsSensor(**fields)


class TestSensor:
    def test_builds_without_connections_and_templates_are_verbatim(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
        sensor = make_sensor("device-sync-globex", service_provider_ids="{{ params.providers }}")
        assert "hook" not in sensor.__dict__
        assert tuple(sensor.template_fields) == ("dead_letter_queue", "service_provider_ids", "sqs_queue")
        assert sensor.service_provider_ids == "{{ params.providers }}"

    def test_takes_its_providers_request_and_leaves_others_visible(self, sqs_client, queues):
        queue, _ = queues
        other = send(sqs_client, queue, 101, session_id=4)
        mine = send(sqs_client, queue, 202, session_id=9, tenant_id=2, bill_period_id=55)

        result = make_sensor(queue).execute({})

        assert result == {
            "service_provider_id": 202,
            "page_number": 1,
            "last_sync_date": SINCE,
            "next_step": "DeviceUsageByRatePlan",
            "session_id": 9,
            "tenant_id": 2,
            "bill_period_id": 55,
            "instance_id": None,
            "message_id": mine,
        }
        assert json.dumps(result) and visible_ids(sqs_client, queue) == [other]

    def test_malformed_request_is_dead_lettered(self, sqs_client, queues):
        queue, dlq = queues
        broken = sqs_client.send_message(
            QueueUrl=queue,
            MessageBody="bad date",
            MessageAttributes={
                "ServiceProviderId": {"DataType": "String", "StringValue": "201"},
                "LastSyncDate": {"DataType": "String", "StringValue": "11/28/2026 5:30:00 PM"},
            },
        )["MessageId"]

        assert make_sensor(queue, dead_letter_queue=dlq).poke({}) is False

        assert visible_ids(sqs_client, queue) == []
        (dead,) = sqs_client.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
        assert dead["MessageAttributes"][ERROR_REASON]["StringValue"].startswith(
            f"SQS message {broken}: `LastSyncDate` must be an ISO 8601 date-time"
        )

    def test_invalid_rendered_providers_fail_without_retry(self, queues):
        with pytest.raises(
            AirflowFailException, match="request: `service_provider_ids` must be a non-empty list"
        ):
            make_sensor(queues[0], service_provider_ids=["x"]).execute({})

    def test_deferrable_execute_defers_to_the_trigger(self, sqs_client, queues):
        queue, _ = queues
        with pytest.raises(TaskDeferred) as deferred:
            make_sensor(queue, deferrable=True, timeout=120).execute({})
        trigger = deferred.value.trigger
        assert isinstance(trigger, DeviceSyncRequestSqsTrigger)
        assert (trigger.service_provider_ids, trigger.tenant_id) == (PROVIDERS, 2)
        assert deferred.value.timeout == timedelta(seconds=120)
        assert deferred.value.method_name == "execute_complete"

    @pytest.mark.parametrize(
        ("event", "match"),
        [
            (None, "Trigger error: event is None"),
            ({"status": "error", "message": "boom"}, "Waiting for a device-sync request failed: .*boom"),
            ({"status": "success", "request": {"x": 1}}, "Trigger event has no valid device-sync request"),
        ],
        ids=["none", "error", "bad-request"],
    )
    def test_execute_complete_rejects_bad_events(self, event, match):
        with pytest.raises(AirflowException, match=match):
            make_sensor("q").execute_complete({}, event)


class TestTrigger:
    def test_serialize_round_trip(self):
        trigger = DeviceSyncRequestSqsTrigger(sqs_queue="u", service_provider_ids=[201], tenant_id=2)
        classpath, kwargs = trigger.serialize()
        assert classpath == "plugins.triggers.sqs.DeviceSyncRequestSqsTrigger"
        assert json.dumps(kwargs) and DeviceSyncRequestSqsTrigger(**kwargs).serialize() == (classpath, kwargs)
        assert "session_id" not in kwargs and kwargs["service_provider_ids"] == [201]

    def test_run_yields_one_event_with_the_request(self, sqs_client, queues):
        queue, _ = queues
        other = send(sqs_client, queue, 999)
        mine = send(sqs_client, queue, 201, session_id=3)
        trigger = DeviceSyncRequestSqsTrigger(
            sqs_queue=queue,
            service_provider_ids=PROVIDERS,
            wait_time_seconds=0,
            visibility_timeout=300,
            poll_interval=0.2,
        )

        async def collect():
            return [event async for event in trigger.run()]

        events = asyncio.run(asyncio.wait_for(collect(), 30))

        assert len(events) == 1 and events[0].payload["status"] == "success"
        assert events[0].payload["request"]["message_id"] == mine
        assert events[0].payload["message"] == f"Accepted device-sync request {mine} for service provider 201"
        assert visible_ids(sqs_client, queue) == [other]

"""Request intake on a real local SQS endpoint: the sensor and its trigger take only this tenant's message."""

from __future__ import annotations

import asyncio

import pytest

from include.carrier_optimization.messaging.attributes import ERROR_REASON
from include.carrier_optimization.messaging.publishing import build_request_attributes
from plugins.sensors.sqs import OptimizationRequestSqsSensor
from plugins.triggers.sqs import OptimizationRequestSqsTrigger

pytestmark = pytest.mark.integration("sqs")

TENANT = 7
OTHER_TENANT = 8
PROVIDER = 3
PERIOD = 55
SESSION = 901
#: Received messages stay invisible this long unless the sensor releases them: "visible at once" is ours.
LONG_VISIBILITY = 300


@pytest.fixture
def queues(fresh_queue):
    """A fresh request queue and dead-letter queue on the local endpoint."""
    return fresh_queue


def send(client, queue: str, body: str = "Carrier to optimize", **fields) -> str:
    attributes = build_request_attributes(
        **({"tenant_id": TENANT, "service_provider_id": PROVIDER, "bill_period_id": PERIOD} | fields)
    )
    return client.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attributes)["MessageId"]


def send_raw(client, queue: str, attributes: dict, body: str) -> str:
    return client.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attributes)["MessageId"]


def visible_ids(client, queue: str) -> list[str]:
    """Ids of the messages visible right now (received with a 0 s timeout, then released again)."""
    response = client.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0
    )
    return sorted(message["MessageId"] for message in response.get("Messages", []))


def make_sensor(queue: str, **kwargs) -> OptimizationRequestSqsSensor:
    fields = {
        "task_id": "request",
        "sqs_queue": queue,
        "tenant_id": str(TENANT),
        "wait_time_seconds": 0,
        "visibility_timeout": LONG_VISIBILITY,
        "poke_interval": 0.1,
        "timeout": 30,
    } | kwargs
    return OptimizationRequestSqsSensor(**fields)


def make_trigger(queue: str, **kwargs) -> OptimizationRequestSqsTrigger:
    fields = {
        "sqs_queue": queue,
        "tenant_id": TENANT,
        "wait_time_seconds": 0,
        "visibility_timeout": LONG_VISIBILITY,
        "poll_interval": 0.2,
    } | kwargs
    return OptimizationRequestSqsTrigger(**fields)


async def run_trigger(trigger: OptimizationRequestSqsTrigger, timeout: float = 30) -> list:
    async def collect():
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout)


class TestSensorPoke:
    def test_other_tenant_message_stays_and_is_visible_again_at_once(self, sqs_client, queues):
        queue, _ = queues
        other = send(sqs_client, queue, tenant_id=OTHER_TENANT)

        assert make_sensor(queue).poke({}) is False

        assert visible_ids(sqs_client, queue) == [other]

    def test_accepted_message_is_deleted_and_returned(self, sqs_client, queues):
        queue, _ = queues
        other = send(sqs_client, queue, tenant_id=OTHER_TENANT)
        mine = send(sqs_client, queue, has_synced=False, portal_type_id=0)

        result = make_sensor(queue, deferrable=False).execute({})

        assert result == {
            "tenant_id": TENANT,
            "service_provider_id": PROVIDER,
            "bill_period_id": PERIOD,
            "session_id": None,
            "has_synced": False,
            "portal_type_id": 0,
            "message_id": mine,
            "manual": False,
        }
        assert visible_ids(sqs_client, queue) == [other]

    def test_one_message_per_poke_further_matches_stay_visible(self, sqs_client, queues):
        queue, _ = queues
        sent = {send(sqs_client, queue, bill_period_id=PERIOD + index) for index in range(3)}

        taken = make_sensor(queue).execute({})["message_id"]

        assert taken in sent
        assert visible_ids(sqs_client, queue) == sorted(sent - {taken})

    def test_malformed_message_goes_to_dead_letter_queue_and_leaves_the_queue(self, sqs_client, queues):
        queue, dlq = queues
        attributes = build_request_attributes(
            tenant_id=TENANT, service_provider_id=PROVIDER, bill_period_id=1
        )
        attributes["BillPeriodId"] = {"DataType": "String", "StringValue": "May"}
        broken = send_raw(sqs_client, queue, attributes, "original body")
        other = send(sqs_client, queue, tenant_id=OTHER_TENANT)

        assert make_sensor(queue, dead_letter_queue=dlq).poke({}) is False

        assert visible_ids(sqs_client, queue) == [other]
        dead = sqs_client.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )["Messages"]
        assert len(dead) == 1
        assert dead[0]["Body"] == "original body"
        moved = dead[0]["MessageAttributes"]
        assert moved[ERROR_REASON]["StringValue"] == (
            f"SQS message {broken}: `BillPeriodId` must be an integer, got 'May'"
        )
        assert {name: value["StringValue"] for name, value in moved.items() if name != ERROR_REASON} == {
            name: value["StringValue"] for name, value in attributes.items()
        }

    def test_mobility_request_is_dead_lettered_naming_the_portal_type(self, sqs_client, queues):
        queue, dlq = queues
        mobility = send(sqs_client, queue, portal_type_id=1)

        assert make_sensor(queue, dead_letter_queue=dlq).poke({}) is False

        assert visible_ids(sqs_client, queue) == []
        [dead] = sqs_client.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )["Messages"]
        assert dead["MessageAttributes"][ERROR_REASON]["StringValue"] == (
            f"SQS message {mobility}: `PortalTypeId` is 1 (Mobility): not supported yet, only 0 (M2M) is"
        )

    def test_malformed_message_without_dead_letter_queue_is_logged_and_deleted(
        self, sqs_client, queues, caplog, capsys
    ):
        queue, dlq = queues
        broken = send_raw(sqs_client, queue, {"TenantId": {"DataType": "String", "StringValue": "7"}}, "x")

        assert make_sensor(queue).poke({}) is False

        assert visible_ids(sqs_client, queue) == []
        assert visible_ids(sqs_client, dlq) == []
        captured = capsys.readouterr()
        logged = caplog.text + captured.out + captured.err  # Airflow's structlog may write to stdout
        assert f"No dead-letter queue set: deleting message {broken}" in logged

    def test_continuation_filter_on_session_and_has_synced(self, sqs_client, queues):
        queue, _ = queues
        new_request = send(sqs_client, queue)
        other_session = send(sqs_client, queue, session_id=SESSION + 1, has_synced=True)
        not_synced = send(sqs_client, queue, session_id=SESSION, has_synced=False)
        continuation = send(sqs_client, queue, session_id=SESSION, has_synced=True)
        sensor = make_sensor(queue, session_id=str(SESSION), require_synced=True, max_messages=10)

        result = sensor.execute({})

        assert (result["message_id"], result["session_id"], result["has_synced"]) == (
            continuation,
            SESSION,
            True,
        )
        assert visible_ids(sqs_client, queue) == sorted([new_request, other_session, not_synced])


class TestTriggerRun:
    def test_run_yields_one_success_event_and_handles_the_batch(self, sqs_client, queues):
        queue, dlq = queues
        other = send(sqs_client, queue, tenant_id=OTHER_TENANT)
        broken = send_raw(sqs_client, queue, {"TenantId": {"DataType": "String", "StringValue": "7"}}, "bad")
        mine = send(sqs_client, queue, session_id=SESSION, has_synced=True)

        events = asyncio.run(run_trigger(make_trigger(queue, dead_letter_queue=dlq)))

        assert len(events) == 1
        payload = events[0].payload
        assert payload["status"] == "success"
        assert payload["message"] == f"Accepted message {mine} for tenant {TENANT}"
        assert payload["request"] == {
            "tenant_id": TENANT,
            "service_provider_id": PROVIDER,
            "bill_period_id": PERIOD,
            "session_id": SESSION,
            "has_synced": True,
            "portal_type_id": 0,
            "message_id": mine,
            "manual": False,
        }
        assert visible_ids(sqs_client, queue) == [other]
        dead = sqs_client.receive_message(QueueUrl=dlq, WaitTimeSeconds=0, MessageAttributeNames=["All"])
        [moved] = dead["Messages"]
        assert moved["MessageAttributes"][ERROR_REASON]["StringValue"].startswith(f"SQS message {broken}:")

    def test_run_keeps_polling_until_a_match_arrives(self, sqs_client, queues):
        queue, _ = queues
        other = send(sqs_client, queue, tenant_id=OTHER_TENANT)

        async def scenario():
            task = asyncio.create_task(
                run_trigger(make_trigger(queue, session_id=SESSION, require_synced=True))
            )
            await asyncio.sleep(1.0)
            assert not task.done()
            mine = await asyncio.to_thread(send, sqs_client, queue, session_id=SESSION, has_synced=True)
            return mine, await task

        mine, events = asyncio.run(scenario())

        assert [event.payload["request"]["message_id"] for event in events] == [mine]
        assert visible_ids(sqs_client, queue) == [other]

    def test_serialized_trigger_runs_the_same(self, sqs_client, queues):
        queue, _ = queues
        mine = send(sqs_client, queue)
        classpath, kwargs = make_trigger(queue).serialize()
        assert classpath == "plugins.triggers.sqs.OptimizationRequestSqsTrigger"

        events = asyncio.run(run_trigger(OptimizationRequestSqsTrigger(**kwargs)))

        assert events[0].payload["request"]["message_id"] == mine

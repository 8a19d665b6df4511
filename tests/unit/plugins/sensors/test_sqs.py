"""OptimizationRequestSqsSensor: construction, templating, deferral, events, one poke on in-process SQS."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from airflow.sdk.exceptions import TaskDeferred
from moto import mock_aws

from include.carrier_optimization.messaging.attributes import ERROR_REASON
from include.carrier_optimization.messaging.publishing import build_request_attributes
from plugins.compat import AirflowException, AirflowFailException
from plugins.sensors.sqs import OptimizationRequestSqsSensor
from plugins.triggers.sqs import OptimizationRequestSqsTrigger

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/requests"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/requests-dlq"
TENANT = 7
OTHER_TENANT = 8
SESSION = 901
REQUEST = {
    "tenant_id": TENANT,
    "service_provider_id": 3,
    "bill_period_id": 55,
    "session_id": None,
    "has_synced": False,
    "portal_type_id": 0,
    "message_id": "m-1",
    "manual": False,
}


@pytest.fixture(autouse=True)
def no_connections(monkeypatch):
    """No Airflow connection is defined: constructing must not need one."""
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)


def make_sensor(**kwargs) -> OptimizationRequestSqsSensor:
    fields = {"task_id": "request", "sqs_queue": QUEUE_URL, "tenant_id": TENANT} | kwargs
    return OptimizationRequestSqsSensor(**fields)


class TestConstruction:
    def test_builds_without_connections_and_without_hook(self):
        sensor = make_sensor()
        assert "hook" not in sensor.__dict__
        assert sensor.aws_conn_id == "aws_default"
        assert sensor.max_messages == 10

    def test_template_fields_sorted_and_assigned_verbatim(self):
        sensor = make_sensor(
            tenant_id="{{ params.tenant_id }}",
            session_id="{{ params.session_id }}",
            dead_letter_queue="{{ var.value.dlq }}",
        )
        assert list(sensor.template_fields) == sorted(sensor.template_fields)
        assert set(sensor.template_fields) == {"dead_letter_queue", "session_id", "sqs_queue", "tenant_id"}
        for name in sensor.template_fields:
            assert name in sensor.__dict__
        assert sensor.tenant_id == "{{ params.tenant_id }}"
        assert sensor.session_id == "{{ params.session_id }}"

    def test_templates_render(self):
        sensor = make_sensor(tenant_id="{{ params.tenant_id }}", session_id="{{ params.session_id }}")
        sensor.render_template_fields({"params": {"tenant_id": 7, "session_id": 901}})
        assert (sensor.tenant_id, sensor.session_id) == ("7", "901")

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"max_messages": 11}, r"`max_messages` must be from 1 to 10 \(SQS limit\), got 11"),
            ({"max_messages": 0}, r"`max_messages` must be from 1 to 10 \(SQS limit\), got 0"),
            ({"max_messages": "5"}, r"`max_messages` must be an integer from 1 to 10, got '5'"),
            ({"wait_time_seconds": 21}, r"`wait_time_seconds` must be from 0 to 20 \(SQS limit\), got 21"),
            ({"visibility_timeout": -1}, r"`visibility_timeout` must be None or from 0 to 43200"),
            ({"require_synced": "True"}, r"`require_synced` must be True, False or None, got 'True'"),
        ],
        ids=[
            "max-messages-above-10",
            "max-messages-zero",
            "max-messages-text",
            "wait-above-20",
            "visibility-negative",
            "require-synced-text",
        ],
    )
    def test_invalid_plain_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            make_sensor(**kwargs)

    def test_deferrable_defaults_from_config(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
        assert make_sensor().deferrable is True
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
        assert make_sensor().deferrable is False
        assert make_sensor(deferrable=True).deferrable is True

    def test_hook_is_cached_and_uses_connection_arguments(self):
        sensor = make_sensor(aws_conn_id="aws_other", region_name="eu-west-1")
        hook = sensor.hook
        assert hook is sensor.hook
        assert (hook.aws_conn_id, hook.region_name) == ("aws_other", "eu-west-1")
        assert hook.client_type == "sqs"


class TestDeferral:
    def test_execute_defers_to_trigger_with_explicit_timeout(self):
        sensor = make_sensor(
            deferrable=True,
            tenant_id="7",
            session_id="901",
            require_synced=True,
            dead_letter_queue=DLQ_URL,
            timeout=3600,
            poke_interval=30,
            wait_time_seconds=5,
        )
        with pytest.raises(TaskDeferred) as info:
            sensor.execute({})
        deferred = info.value
        assert deferred.method_name == "execute_complete"
        assert deferred.timeout == timedelta(seconds=3600)
        assert isinstance(deferred.trigger, OptimizationRequestSqsTrigger)
        classpath, kwargs = deferred.trigger.serialize()
        assert classpath == "plugins.triggers.sqs.OptimizationRequestSqsTrigger"
        assert kwargs == {
            "sqs_queue": QUEUE_URL,
            "tenant_id": 7,
            "session_id": 901,
            "require_synced": True,
            "dead_letter_queue": DLQ_URL,
            "aws_conn_id": "aws_default",
            "region_name": None,
            "wait_time_seconds": 5,
            "visibility_timeout": None,
            "max_messages": 10,
            "poll_interval": 30.0,
            "stop_on_sync_error": False,
            "amop_conn_id": "amop_db",
        }

    def test_rendered_empty_values_become_none(self):
        sensor = make_sensor(deferrable=True, session_id="None", dead_letter_queue="")
        with pytest.raises(TaskDeferred) as info:
            sensor.execute({})
        _, kwargs = info.value.trigger.serialize()
        assert (kwargs["session_id"], kwargs["dead_letter_queue"]) == (None, None)

    @pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "poking"])
    def test_invalid_rendered_tenant_fails_without_retry(self, deferrable):
        sensor = make_sensor(deferrable=deferrable, tenant_id="acme")
        with pytest.raises(AirflowFailException, match=r"request: `tenant_id` must be a positive integer"):
            sensor.execute({})


class TestExecuteComplete:
    def test_success_returns_the_request(self):
        event = {"status": "success", "message": "Accepted message m-1 for tenant 7", "request": REQUEST}
        result = make_sensor().execute_complete({}, event)
        assert result == REQUEST
        assert len(json.dumps(result)) < 16 * 1024

    def test_none_event(self):
        with pytest.raises(AirflowException, match="Trigger error: event is None"):
            make_sensor().execute_complete({}, None)

    @pytest.mark.parametrize(
        "event",
        [
            {"status": "error", "message": "Waiting for a request on q failed: boom"},
            {"status": "timeout", "message": "no request within 3600 s"},
            {"status": "surprise", "message": "?"},
            {"message": "no status"},
        ],
        ids=["error", "timeout", "unknown-status", "missing-status"],
    )
    def test_non_success_event_raises_with_the_event(self, event):
        with pytest.raises(AirflowException, match="Waiting for an optimization request failed") as info:
            make_sensor().execute_complete({}, event)
        assert str(event) in str(info.value)

    @pytest.mark.parametrize(
        "event",
        [
            {"status": "success", "message": "ok"},
            {"status": "success", "message": "ok", "request": {"tenant_id": 7}},
            {"status": "success", "message": "ok", "request": None},
        ],
        ids=["no-request", "partial-request", "null-request"],
    )
    def test_success_without_valid_request_raises(self, event):
        with pytest.raises(AirflowException, match="Trigger event has no valid request"):
            make_sensor().execute_complete({}, event)


@pytest.fixture
def sqs():
    """In-process SQS (moto) with a request queue and a dead-letter queue."""
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        queue = client.create_queue(QueueName="requests")["QueueUrl"]
        dlq = client.create_queue(QueueName="requests-dlq")["QueueUrl"]
        yield client, queue, dlq


def send(client, queue: str, attributes: dict, body: str = "request") -> str:
    return client.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attributes)["MessageId"]


def receive_all(client, queue: str) -> list[dict]:
    response = client.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    )
    return response.get("Messages", [])


class TestPoke:
    def test_execute_in_poke_mode_returns_the_request_and_handles_the_batch(self, sqs):
        client, queue, dlq = sqs
        other = send(
            client,
            queue,
            build_request_attributes(tenant_id=OTHER_TENANT, service_provider_id=3, bill_period_id=55),
        )
        mine = send(
            client,
            queue,
            build_request_attributes(tenant_id=TENANT, service_provider_id=3, bill_period_id=55),
        )
        broken = send(client, queue, {"TenantId": {"DataType": "String", "StringValue": str(TENANT)}}, "bad")
        sensor = make_sensor(
            sqs_queue=queue,
            dead_letter_queue=dlq,
            aws_conn_id=None,
            region_name="us-east-1",
            wait_time_seconds=0,
        )

        result = sensor.execute({})

        assert result == REQUEST | {"message_id": mine}
        assert [m["MessageId"] for m in receive_all(client, queue)] == [other]
        [dead] = receive_all(client, dlq)
        assert dead["Body"] == "bad"
        assert dead["MessageAttributes"][ERROR_REASON]["StringValue"] == (
            f"SQS message {broken}: `ServiceProviderId` is missing (required)"
        )

    def test_poke_without_match_returns_false(self, sqs):
        client, queue, _ = sqs
        other = send(
            client,
            queue,
            build_request_attributes(tenant_id=OTHER_TENANT, service_provider_id=3, bill_period_id=55),
        )
        sensor = make_sensor(sqs_queue=queue, aws_conn_id=None, region_name="us-east-1", wait_time_seconds=0)
        assert sensor.poke({}) is False
        assert [m["MessageId"] for m in receive_all(client, queue)] == [other]

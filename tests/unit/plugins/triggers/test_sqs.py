"""OptimizationRequestSqsTrigger: primitives only, serialization, one event per run."""

from __future__ import annotations

import asyncio
import json

import pytest

from include.carrier_optimization.amop.run_records import SyncFailedError
from plugins.compat import TriggerEvent
from plugins.triggers import sqs as sqs_triggers
from plugins.triggers.sqs import OptimizationRequestSqsTrigger
from tests.conftest import free_port

CLASSPATH = "plugins.triggers.sqs.OptimizationRequestSqsTrigger"
QUEUE_URL = "http://127.0.0.1:1/123456789012/requests"
DLQ_URL = "http://127.0.0.1:1/123456789012/requests-dlq"
KWARGS = {
    "sqs_queue": QUEUE_URL,
    "tenant_id": 7,
    "session_id": 901,
    "require_synced": True,
    "dead_letter_queue": DLQ_URL,
    "aws_conn_id": "aws_default",
    "region_name": "us-east-1",
    "wait_time_seconds": 0,
    "visibility_timeout": 30,
    "max_messages": 10,
    "poll_interval": 5.0,
    "stop_on_sync_error": False,
    "amop_conn_id": "amop_db",
}
PRIMITIVES = (str, int, float, bool, type(None))


async def collect(trigger: OptimizationRequestSqsTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


class TestOptimizationRequestSqsTrigger:
    @pytest.fixture(autouse=True)
    def setup_trigger(self):
        self.trigger = OptimizationRequestSqsTrigger(**KWARGS)

    def test_serialize_literal_classpath_and_exact_kwargs(self):
        classpath, kwargs = self.trigger.serialize()
        assert classpath == CLASSPATH
        assert kwargs == KWARGS

    def test_serialize_round_trip(self):
        classpath, kwargs = self.trigger.serialize()
        assert OptimizationRequestSqsTrigger(**kwargs).serialize() == (classpath, kwargs)

    def test_kwargs_are_json_primitives(self):
        _, kwargs = self.trigger.serialize()
        assert json.loads(json.dumps(kwargs)) == kwargs
        assert all(isinstance(value, PRIMITIVES) for value in kwargs.values())

    def test_defaults_serialize(self):
        _, kwargs = OptimizationRequestSqsTrigger(sqs_queue=QUEUE_URL, tenant_id=7).serialize()
        assert kwargs == {
            "sqs_queue": QUEUE_URL,
            "tenant_id": 7,
            "session_id": None,
            "require_synced": None,
            "dead_letter_queue": None,
            "aws_conn_id": "aws_default",
            "region_name": None,
            "wait_time_seconds": 1,
            "visibility_timeout": None,
            "max_messages": 10,
            "poll_interval": 60.0,
            "stop_on_sync_error": False,
            "amop_conn_id": "amop_db",
        }

    def test_constructor_builds_no_client(self):
        assert not any("hook" in name or "client" in name for name in vars(self.trigger))

    def test_receive_requests_all_message_attributes(self):
        assert self.trigger._receive_kwargs() == {
            "QueueUrl": QUEUE_URL,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 0,
            "MessageAttributeNames": ["All"],
            "VisibilityTimeout": 30,
        }

    def test_unreachable_endpoint_yields_one_error_event(self, monkeypatch):
        endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_UNREACHABLE",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {
                        "region_name": "us-east-1",
                        "endpoint_url": endpoint,
                        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
                    },
                }
            ),
        )
        trigger = OptimizationRequestSqsTrigger(
            sqs_queue=f"{endpoint}/123456789012/requests",
            tenant_id=7,
            aws_conn_id="aws_unreachable",
            wait_time_seconds=0,
            poll_interval=0.1,
        )
        events = asyncio.run(collect(trigger))
        assert len(events) == 1
        payload = events[0].payload
        assert payload["status"] == "error"
        assert payload["message"].startswith(
            f"Waiting for a request on {endpoint}/123456789012/requests failed"
        )
        assert "Could not connect to the endpoint URL" in payload["message"]
        assert "request" not in payload


class TestSyncFailure:
    """``stop_on_sync_error``: a failed sync of the awaited session ends the wait with ``sync_failed``."""

    @pytest.fixture(autouse=True)
    def failed_sync(self, monkeypatch):
        errors = {901: "carrier API 401"}
        monkeypatch.setattr(
            sqs_triggers, "session_sync_error", lambda conn_id, session_id: errors.get(session_id)
        )

    def trigger(self, session_id: int) -> OptimizationRequestSqsTrigger:
        return OptimizationRequestSqsTrigger(
            **(KWARGS | {"stop_on_sync_error": True, "session_id": session_id})
        )

    def test_poke_raises_sync_failed_error_before_any_sqs_call(self):
        with pytest.raises(SyncFailedError, match="Device sync of session 901 failed: carrier API 401"):
            asyncio.run(self.trigger(901).poke(client=None))

    def test_run_yields_one_sync_failed_event(self):
        events = asyncio.run(collect(self.trigger(901)))
        assert [event.payload for event in events] == [
            {"status": "sync_failed", "message": "Device sync of session 901 failed: carrier API 401"}
        ]

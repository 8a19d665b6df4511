"""Queue names to URLs against the real local SQS endpoint (moto server from tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from include.carrier_optimization.messaging.queues import resolve_queue_url


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _queue_names(client) -> set[str]:
    return {url.rsplit("/", 1)[-1] for url in client.list_queues().get("QueueUrls", [])}


class TestResolveQueueUrl:
    def test_name_creates_the_queue_and_returns_its_url(self, sqs_client):
        name = _name("carrier-optimization-acme")
        assert name not in _queue_names(sqs_client)
        url = resolve_queue_url(sqs_client, name)
        assert url.endswith(f"/{name}")
        assert name in _queue_names(sqs_client)
        assert sqs_client.get_queue_url(QueueName=name)["QueueUrl"] == url

    def test_the_returned_url_is_usable(self, sqs_client):
        url = resolve_queue_url(sqs_client, _name("roundtrip"))
        sqs_client.send_message(QueueUrl=url, MessageBody="hello")
        messages = sqs_client.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
        assert [m["Body"] for m in messages] == ["hello"]

    def test_resolving_twice_is_idempotent(self, sqs_client):
        name = _name("twice")
        first = resolve_queue_url(sqs_client, name)
        second = resolve_queue_url(sqs_client, name)
        assert first == second
        assert sorted(_queue_names(sqs_client)).count(name) == 1

    def test_existing_queue_without_create(self, sqs_client):
        name = _name("existing")
        url = sqs_client.create_queue(QueueName=name)["QueueUrl"]
        assert resolve_queue_url(sqs_client, name, create=False) == url

    def test_missing_queue_without_create_raises_and_creates_nothing(self, sqs_client):
        name = _name("missing")
        with pytest.raises(ClientError, match="NonExistentQueue"):
            resolve_queue_url(sqs_client, name, create=False)
        assert name not in _queue_names(sqs_client)

    @pytest.mark.parametrize("create", [True, False], ids=["create", "no-create"])
    def test_url_passes_through_without_a_call(self, sqs_client, create):
        before = _queue_names(sqs_client)
        url = "https://sqs.us-east-1.amazonaws.com/123456789012/not-on-this-endpoint"
        assert resolve_queue_url(sqs_client, url, create=create) == url
        assert _queue_names(sqs_client) == before

    def test_url_passthrough_needs_no_client(self):
        url = "http://127.0.0.1:1/000000000000/q"
        assert resolve_queue_url(None, url) == url

    @pytest.mark.parametrize("create", [True, False], ids=["create", "no-create"])
    def test_empty_name_is_rejected(self, sqs_client, create):
        with pytest.raises(ValueError, match="^`name_or_url` must name an SQS queue; got an empty string$"):
            resolve_queue_url(sqs_client, "", create=create)

"""Fixtures of the run-model tests: fresh SQS queues (the AMOP database is ``amop`` of tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def fresh_queue(sqs_client):
    """A new request queue and its dead-letter queue on the local endpoint: ``(url, dlq_url)``."""
    name = f"requests-{uuid.uuid4().hex[:8]}"
    queue = sqs_client.create_queue(QueueName=name)["QueueUrl"]
    dlq = sqs_client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    yield queue, dlq
    sqs_client.delete_queue(QueueUrl=queue)
    sqs_client.delete_queue(QueueUrl=dlq)

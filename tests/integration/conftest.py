"""Fixtures of the run-model tests: the embedded AMOP database the operators find, fresh SQS queues."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def amop(monkeypatch, tmp_path):
    """An AMOP SQLite database with the schema; the hooks' embedded default (no ``amop_db`` connection)."""
    from include.carrier_optimization.schema import create_schema
    from include.carrier_optimization.storage import make_engine

    url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
    monkeypatch.setenv("CARRIER_OPT_DB_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_AMOP_DB", raising=False)
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_queue(sqs_client):
    """A new request queue and its dead-letter queue on the local endpoint: ``(url, dlq_url)``."""
    name = f"requests-{uuid.uuid4().hex[:8]}"
    queue = sqs_client.create_queue(QueueName=name)["QueueUrl"]
    dlq = sqs_client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    yield queue, dlq
    sqs_client.delete_queue(QueueUrl=queue)
    sqs_client.delete_queue(QueueUrl=dlq)

"""SqsRequestWatcherTrigger: primitives only, kinds, one round on a local SQS endpoint, events of run()."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import insert

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.run_records import SYNC_PROGRESS
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.messaging.attributes import ERROR_REASON
from include.carrier_optimization.messaging.publishing import build_request_attributes
from include.carrier_optimization.messaging.sync_messages import build_sync_request_attributes
from plugins.triggers.intake import SqsRequestWatcherTrigger

TENANT, PROVIDER, OTHER_PROVIDER = 7, 3, 4


@pytest.fixture
def queues(sqs_client):
    name = f"watch-{uuid.uuid4().hex[:8]}"
    urls = [sqs_client.create_queue(QueueName=n)["QueueUrl"] for n in (name, f"{name}-dlq")]
    yield urls
    for url in urls:
        sqs_client.delete_queue(QueueUrl=url)


def watcher(queue: str, **kwargs) -> SqsRequestWatcherTrigger:
    return SqsRequestWatcherTrigger(
        **({"sqs_queue": queue, "tenant_id": TENANT, "wait_time_seconds": 0} | kwargs)
    )


def visible(client, queue: str) -> list[dict]:
    return client.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    ).get("Messages", [])


def test_serialize_round_trips_with_json_primitives():
    trigger = watcher("q", kind="device_sync", service_provider_ids=[PROVIDER], dead_letter_queue="dlq")
    classpath, kwargs = trigger.serialize()
    assert classpath == "plugins.triggers.intake.SqsRequestWatcherTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["service_provider_ids"] == [PROVIDER] and kwargs["hold_seconds"] == 300
    assert SqsRequestWatcherTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_an_unknown_kind_is_refused_and_no_client_is_built():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        watcher("q", kind="billing")
    assert watcher("q")._records is None


def test_a_device_sync_round_takes_its_providers_requests_and_dead_letters_others(sqs_client, queues):
    queue, dlq = queues
    for provider in (PROVIDER, OTHER_PROVIDER):
        sqs_client.send_message(
            QueueUrl=queue,
            MessageBody="sync",
            MessageAttributes=build_sync_request_attributes(
                service_provider_id=provider, last_sync_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
            ),
        )
    trigger = watcher(queue, kind="device_sync", service_provider_ids=[PROVIDER], dead_letter_queue=dlq)
    (payload,) = trigger._round(sqs_client)
    assert payload["status"] == "success" and payload["queue_url"] == queue
    assert payload["request"]["service_provider_id"] == PROVIDER
    counts = sqs_client.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    # the taken request stays on the queue, held invisible; the refused one was deleted
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "1",
    )
    (dead,) = visible(sqs_client, dlq)
    assert "`ServiceProviderId` 4 is not a provider" in dead["MessageAttributes"][ERROR_REASON]["StringValue"]


def test_run_yields_one_event_per_taken_request(monkeypatch, sqs_client, queues):
    queue, _ = queues
    sqs_client.send_message(
        QueueUrl=queue,
        MessageBody="Carrier to optimize",
        MessageAttributes=build_request_attributes(
            tenant_id=TENANT, service_provider_id=PROVIDER, bill_period_id=5
        ),
    )
    trigger = watcher(queue, poll_interval=0.05)
    monkeypatch.setattr(trigger, "_client", lambda: sqs_client)

    async def first_event():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(asyncio.wait_for(first_event(), timeout=30))
    assert payload["request"]["tenant_id"] == TENANT and payload["request"]["bill_period_id"] == 5


def test_awaiting_sync_reads_the_amop_database_once_connected(monkeypatch, sqlite_url):
    monkeypatch.setenv("CARRIER_OPT_DB_URL", sqlite_url)
    monkeypatch.delenv("AIRFLOW_CONN_AMOP_DB", raising=False)
    engine = make_engine(sqlite_url)
    s.create_schema(engine)
    with engine.begin() as conn:
        waiting = conn.execute(
            insert(s.optimization_session).values(
                SessionGuid="g",
                TenantId=TENANT,
                Progress=SYNC_PROGRESS,
                AirflowRunId="r",
                CreatedDate=utcnow(),
            )
        ).inserted_primary_key[0]
    trigger = watcher("q")
    assert trigger._awaiting_sync(int(waiting)) is True
    records = trigger._records
    assert trigger._awaiting_sync(int(waiting) + 1) is False and trigger._records is records
    engine.dispose()

"""OptimizationWindowOperator: built without connections, hands the tick to the library, returns its list."""

from __future__ import annotations

import datetime as dt

import pytest

from include.carrier_optimization.pipeline import schedule
from plugins.operators.window import OptimizationWindowOperator

TENANT, PROVIDER = 9, 901


@pytest.fixture
def queue(sqs_client):
    url = sqs_client.create_queue(QueueName="window-unit")["QueueUrl"]
    yield url
    sqs_client.delete_queue(QueueUrl=url)


def window(**kwargs) -> OptimizationWindowOperator:
    fields = {"task_id": "window", "tenant_id": TENANT, "request_queue": "window-unit"}
    return OptimizationWindowOperator(**(fields | kwargs))


def test_defaults_and_templated_queue():
    op = window(request_queue="{{ var.value.queue }}", start_hours={PROVIDER: 2})
    assert op.template_fields == ("request_queue",) and op.request_queue == "{{ var.value.queue }}"
    assert (op.billing_time_zone, op.aws_conn_id, op.amop_conn_id) == ("UTC", "aws_default", "amop_db")


def test_execute_passes_the_tick_to_the_library_with_integer_provider_ids(monkeypatch, amop, queue):
    seen = {}
    published = [{"message_id": "m-1", "reason": "first request of the period"}]

    def publish(engine, client, **kwargs):
        seen.update(kwargs, engine=engine, client=client)
        return published

    monkeypatch.setattr(schedule, "publish_due_requests", publish)
    # start hours from a JSON-ish config arrive with text keys
    op = window(start_hours={str(PROVIDER): 6, "902": None}, billing_time_zone="America/Chicago")
    assert op.execute({}) == published
    assert seen["start_hours"] == {PROVIDER: 6, 902: None}
    assert (seen["tenant_id"], seen["request_queue"], seen["billing_time_zone"]) == (
        TENANT,
        "window-unit",
        "America/Chicago",
    )
    assert abs(seen["now_utc"] - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(minutes=1)
    assert seen["engine"].url.database == amop.url.database
    assert seen["client"].get_queue_url(QueueName="window-unit")["QueueUrl"] == queue


def test_a_tick_with_nothing_due_publishes_nothing(amop, queue, sqs_client):
    assert window(start_hours={PROVIDER: 0}).execute({}) == []
    attributes = sqs_client.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"

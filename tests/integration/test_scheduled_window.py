"""The scheduled window: the legacy request once per provider and period, again after errors; quick."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.run_records import RunRecords
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet
from plugins.operators.window import OptimizationWindowOperator

pytestmark = pytest.mark.integration("sqs")

TENANT = TenantSpec(tenant_id=9, name="sched", service_provider_id=901)
QUEUE = "carrier-optimization-window-test"


@pytest.fixture
def queue(sqs_client):
    url = sqs_client.create_queue(QueueName=QUEUE)["QueueUrl"]
    drain(sqs_client, url)
    yield url
    drain(sqs_client, url)


def write_period(engine, days_to_end: int) -> int:
    end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=days_to_end)).replace(
        microsecond=0
    )
    return AmopRepository(engine).write_fleet(generate_fleet(20, seed=1, tenant=TENANT, period_end=end))


def tick(start_hour: int | None = 0) -> list[dict]:
    op = OptimizationWindowOperator(
        task_id="window__sched",
        tenant_id=TENANT.tenant_id,
        request_queue=QUEUE,
        start_hours={TENANT.service_provider_id: start_hour},
    )
    return op.execute({})


def drain(client, url: str) -> list[dict]:
    messages = []
    while batch := client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", []):
        messages += batch
        for m in batch:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return messages


def test_open_window_publishes_the_exact_legacy_request_once_and_writes_it_down(amop, queue, sqs_client):
    period_id = write_period(amop, days_to_end=3)
    (published,) = tick()
    (message,) = drain(sqs_client, queue)
    attributes = {k: (v["DataType"], v["StringValue"]) for k, v in message["MessageAttributes"].items()}
    end = AmopRepository(amop).billing_period(period_id)["BillingCycleEndDate"]
    assert attributes == {
        "BillYear": ("String", str(end.year)),
        "BillMonth": ("String", str(end.month)),
        "ServiceProviderId": ("String", str(TENANT.service_provider_id)),
        "TenantId": ("String", str(TENANT.tenant_id)),
        "BillPeriodId": ("String", str(period_id)),
        "HasSynced": ("String", "False"),
    }
    assert message["Body"] == f"Carrier to optimize is for Billing Period {end.year}/{end.month}"
    decision = RunRecords(amop).last_decision(TENANT.service_provider_id, period_id)
    assert decision["MessageId"] == message["MessageId"] == published["message_id"]
    assert "first request" in decision["Reason"]
    assert tick() == [] and drain(sqs_client, queue) == []  # once per provider and period


def test_after_complete_with_errors_the_next_tick_retries(amop, queue, sqs_client):
    period_id = write_period(amop, days_to_end=3)
    tick()
    repo = AmopRepository(amop)
    session = repo.create_session(TENANT.tenant_id, TENANT.service_provider_id, period_id)
    instance = repo.start_instance(
        session_id=session["session_id"],
        tenant_id=TENANT.tenant_id,
        service_provider_id=TENANT.service_provider_id,
        billing_period=repo.billing_period(period_id),
    )
    repo.set_instance_status(instance, OptimizationStatus.CompleteWithErrors, error="boom")
    (retry,) = tick()
    assert "CompleteWithErrors" in retry["reason"]
    assert len(drain(sqs_client, queue)) == 2


@pytest.mark.parametrize(
    ("days_to_end", "start_hour"),
    [(20, 0), (3, None), (3, 24)],
    ids=["outside-the-8-day-window", "provider-without-start-hour", "before-the-start-hour"],
)
def test_closed_window_ends_in_seconds_and_publishes_nothing(
    amop, queue, sqs_client, days_to_end, start_hour
):
    write_period(amop, days_to_end=days_to_end)
    start = time.monotonic()
    assert tick(start_hour) == []
    assert time.monotonic() - start < 5
    assert drain(sqs_client, queue) == []


def test_a_request_that_started_nothing_is_published_again_but_not_one_still_queued(amop, queue, sqs_client):
    period_id = write_period(amop, days_to_end=3)
    (first,) = tick()
    assert tick() == []  # its run has not taken it yet: nothing more
    request = {"tenant_id": TENANT.tenant_id, "service_provider_id": TENANT.service_provider_id}
    RunRecords(amop).claim_message(first["message_id"], queue=QUEUE, request=request, run_id="run_1")
    (again,) = tick()  # taken, refused by the guard: no session, no instance, nothing running
    assert "started no optimization" in again["reason"] and again["billing_period_id"] == period_id
    assert len(drain(sqs_client, queue)) == 2

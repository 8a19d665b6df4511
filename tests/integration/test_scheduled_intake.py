"""Scheduled runs apply the legacy "is it time to run" window, publish the request, then take it from SQS."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from include.carrier_optimization.fleet import TenantSpec, generate_fleet
from include.carrier_optimization.repository import AmopRepository
from include.carrier_optimization.schema import create_schema
from include.carrier_optimization.storage import make_engine
from plugins.sensors.sqs import TenantRequestSqsSensor

TENANT = TenantSpec(tenant_id=9, name="sched", service_provider_id=901)
QUEUE = "carrier-optimization-sched-test"


@pytest.fixture
def amop(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
    monkeypatch.setenv("CARRIER_OPT_DB_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_AMOP_DB", raising=False)
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()


def write_period(engine, days_to_end: int) -> int:
    """The tenant with a billing period ending ``days_to_end`` days from now (UTC billing time)."""
    end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=days_to_end)).replace(
        microsecond=0
    )
    return AmopRepository(engine).write_fleet(generate_fleet(20, seed=1, tenant=TENANT, period_end=end))


def sensor(start_hour: int | None) -> TenantRequestSqsSensor:
    return TenantRequestSqsSensor(
        task_id="request",
        sqs_queue=QUEUE,
        tenant_id=TENANT.tenant_id,
        billing_time_zone="UTC",
        start_hours={TENANT.service_provider_id: start_hour},
        deferrable=False,
        poke_interval=0.1,
        timeout=3,
    )


def scheduled_context() -> dict:
    return {"params": {}, "dag_run": SimpleNamespace(run_type="scheduled")}


def drain(client, url: str) -> list[dict]:
    messages = []
    while batch := client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", []):
        messages += batch
        for m in batch:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return messages


@pytest.mark.integration("sqs")
class TestScheduledIntake:
    @pytest.fixture(autouse=True)
    def _queue(self, sqs_client):
        self.client = sqs_client
        self.url = sqs_client.create_queue(QueueName=QUEUE)["QueueUrl"]
        drain(sqs_client, self.url)
        yield
        drain(sqs_client, self.url)

    def test_open_window_publishes_the_legacy_request(self, amop):
        period_id = write_period(amop, days_to_end=3)
        op = sensor(start_hour=0)
        op._publish_due_requests()
        (message,) = drain(self.client, self.url)
        attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert attributes["TenantId"] == str(TENANT.tenant_id)
        assert attributes["ServiceProviderId"] == str(TENANT.service_provider_id)
        assert attributes["BillPeriodId"] == str(period_id)
        assert attributes["HasSynced"] == "False" and "OptimizationSessionId" not in attributes
        assert message["Body"].startswith("Carrier to optimize is for Billing Period")

    @pytest.mark.parametrize(
        ("days_to_end", "start_hour"),
        [(20, 0), (3, None)],
        ids=["outside-the-8-day-window", "provider-without-start-hour"],
    )
    def test_closed_window_publishes_nothing(self, amop, days_to_end, start_hour):
        write_period(amop, days_to_end=days_to_end)
        sensor(start_hour=start_hour)._publish_due_requests()
        assert drain(self.client, self.url) == []

    def test_a_scheduled_run_takes_the_request_it_published(self, amop):
        period_id = write_period(amop, days_to_end=3)
        request = sensor(start_hour=0).execute(scheduled_context())
        assert request["tenant_id"] == TENANT.tenant_id
        assert (request["service_provider_id"], request["bill_period_id"]) == (
            TENANT.service_provider_id,
            period_id,
        )
        assert request["has_synced"] is False and request["session_id"] is None
        assert drain(self.client, self.url) == []  # taken and deleted
        assert json.dumps(request)

    def test_a_manual_run_s_form_is_the_request_without_waiting(self, amop):
        params = {
            "service_provider_id": TENANT.service_provider_id,
            "has_synced": True,
            "billing_period_id": None,
        }
        request = sensor(start_hour=0).execute(
            {"params": params, "dag_run": SimpleNamespace(run_type="manual")}
        )
        assert request["service_provider_id"] == TENANT.service_provider_id and request["has_synced"] is True
        assert drain(self.client, self.url) == []  # nothing published, nothing taken

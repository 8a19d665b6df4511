"""What starts a run, on a real Airflow: SQS requests as the legacy portal sends them, the device-sync
round trip, a triggerer restarted with work in flight, and manual runs that never wait.

Scenarios b, c and f of issue "The product on a running Airflow" and the real-Airflow checks of the
run-model issue. Messages are sent with boto3 to the local SQS endpoint, attributes all strings as the
legacy scheduler and portal send them; the tests only read the REST API, the queues and the AMOP tables.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import boto3
import pytest
from sqlalchemy import func, select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.reporting.notify import RESULTS_SUBJECT
from scripts.airflow_api import wait_until
from tests.dags.test_optimization_dag import assert_optimized
from tests.e2e.conftest import FORM, PROVIDER_ID, RUN_TIMEOUT, SIMS, record_figure

pytestmark = pytest.mark.e2e

TENANT_ID = 1
REQUEST_QUEUE = "carrier-optimization-acme"
#: Seconds from sending a request to its run running (printed, and kept for the notes).
LATENCY_LIMIT = 30


def sqs(deployment):
    endpoint = f"http://127.0.0.1:{deployment.airflow.ports['sqs']}"
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def bill_period_id(deployment) -> int:
    bp = s.billing_period
    with deployment.engine().connect() as conn:
        return int(conn.execute(select(bp.c.id).where(bp.c.ServiceProviderId == PROVIDER_ID)).scalar_one())


def send_legacy_request(deployment, **extra: str) -> str:
    """The legacy request, every attribute a String; returns the MessageId."""
    attributes = {
        "TenantId": str(TENANT_ID),
        "ServiceProviderId": str(PROVIDER_ID),
        "BillPeriodId": str(bill_period_id(deployment)),
        **extra,
    }
    client = sqs(deployment)
    url = client.get_queue_url(QueueName=REQUEST_QUEUE)["QueueUrl"]
    answer = client.send_message(
        QueueUrl=url,
        MessageBody="Carrier to optimize",
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )
    return answer["MessageId"]


def queue_counts(deployment, name: str = REQUEST_QUEUE) -> tuple[int, int]:
    client = sqs(deployment)
    url = client.get_queue_url(QueueName=name)["QueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attrs[names[0]]), int(attrs[names[1]])


def new_runs(deployment, dag_id: str, before: set[str]) -> list[dict]:
    return [r for r in deployment.api.runs(dag_id) if r["dag_run_id"] not in before]


def run_ids(deployment, dag_id: str) -> set[str]:
    return {r["dag_run_id"] for r in deployment.api.runs(dag_id)}


def started_at(run: dict) -> dt.datetime | None:
    return (
        dt.datetime.fromisoformat(run["start_date"].replace("Z", "+00:00")) if run.get("start_date") else None
    )


def wait_for_new_run(deployment, dag_id: str, before: set[str]) -> dict:
    return wait_until(
        lambda: next((r for r in new_runs(deployment, dag_id, before) if started_at(r)), None),
        timeout=RUN_TIMEOUT,
        what=f"a new running run of {dag_id}",
        interval=0.2,
    )


def count_rows(deployment, table) -> int:
    with deployment.engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def results_emails(deployment) -> int:
    name = next(t.name for t in deployment.tenants if t.slug == "acme")
    return [m["subject"] for m in deployment.emails()].count(RESULTS_SUBJECT.format(tenant=name))


def test_a_legacy_request_on_the_queue_starts_a_run_within_seconds_and_once(deployment):
    deployment.reset_amop()
    dag_id = deployment.dag_id
    before = run_ids(deployment, dag_id)
    sent = dt.datetime.now(dt.UTC)
    message_id = send_legacy_request(deployment, HasSynced="True")
    run = wait_for_new_run(deployment, dag_id, before)
    latency = (started_at(run) - sent).total_seconds()
    record_figure(f"[{deployment.executor}] legacy request sent -> its run running: {latency:.1f} s")
    assert run["run_type"] == "asset_triggered" and latency < LATENCY_LIMIT
    run = deployment.api.wait_for_run(dag_id, run["dag_run_id"], timeout=RUN_TIMEOUT)
    assert run["state"] == "success"
    state = assert_optimized(deployment.engine(), devices=SIMS)
    assert state["instance"].RunStatusId == int(OptimizationStatus.CompleteWithSuccess)
    assert results_emails(deployment) == 1
    assert wait_until(
        lambda: queue_counts(deployment) == (0, 0), timeout=30, what="the request to be deleted"
    )
    with deployment.engine().connect() as conn:
        recorded = conn.execute(select(s.processed_message.c.MessageId)).scalars().all()
    assert message_id in recorded

    # The same request again (the legacy scheduler repeating itself): the period is optimized, no new one.
    before = run_ids(deployment, dag_id)
    send_legacy_request(deployment)
    again = deployment.api.wait_for_run(
        dag_id, wait_for_new_run(deployment, dag_id, before)["dag_run_id"], timeout=RUN_TIMEOUT
    )
    assert again["state"] == "success"  # the run ends; its optimization steps are skipped
    assert count_rows(deployment, s.optimization_instance) == 1 and results_emails(deployment) == 1
    assert wait_until(lambda: queue_counts(deployment) == (0, 0), timeout=30, what="the repeat to be deleted")


def task_state(deployment, run_id: str, task_id: str) -> str | None:
    for ti in deployment.api.task_instances(deployment.dag_id, run_id):
        if ti["task_id"] == task_id:
            return ti["state"]
    return None


def restart_triggerer(deployment) -> None:
    airflow = deployment.airflow
    airflow.stop(["triggerer"])
    airflow.start(["triggerer"])
    wait_until(
        lambda: (
            deployment.api.health().get("triggerer", {}).get("status") == "healthy"
            and deployment.api.health()["triggerer"].get("latest_triggerer_heartbeat")
        ),
        timeout=120,
        what="the restarted triggerer to report healthy",
    )


def test_a_sync_round_trip_survives_a_triggerer_restart_while_its_wait_is_deferred(deployment):
    deployment.reset_amop()
    api, dag_id = deployment.api, deployment.dag_id
    sync_dag = "device_sync__acme"
    run_id = api.trigger(dag_id, {**FORM, "has_synced": False})["dag_run_id"]
    wait_until(
        lambda: task_state(deployment, run_id, "sync_wait") == "deferred",
        timeout=RUN_TIMEOUT,
        what="sync_wait to defer",
    )
    restart_triggerer(deployment)  # the sync request or its answer is in flight meanwhile
    run = api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", deployment.process_log("triggerer")
    (sync_run,) = api.runs(sync_dag)[-1:]
    assert sync_run["state"] == "success"
    assert_optimized(deployment.engine(), devices=SIMS)
    dev = s.device
    with deployment.engine().connect() as conn:
        oldest = conn.execute(
            select(func.min(dev.c.UsageDate)).where(dev.c.ServiceProviderId == PROVIDER_ID)
        ).scalar()
    assert oldest is not None and oldest > dt.datetime.now() - dt.timedelta(days=1), "usage was not synced"
    assert results_emails(deployment) == 1


def test_a_request_sent_while_the_triggerer_is_down_is_taken_when_it_is_back(deployment):
    deployment.reset_amop()
    airflow, dag_id = deployment.airflow, deployment.dag_id
    before = run_ids(deployment, dag_id)
    airflow.stop(["triggerer"])
    try:
        send_legacy_request(deployment, HasSynced="True")
        time.sleep(5)
        assert not new_runs(deployment, dag_id, before), "a run started without a triggerer"
    finally:
        airflow.start(["triggerer"])
    run = wait_for_new_run(deployment, dag_id, before)
    run = deployment.api.wait_for_run(dag_id, run["dag_run_id"], timeout=RUN_TIMEOUT)
    assert run["state"] == "success"
    assert count_rows(deployment, s.optimization_instance) == 1 and results_emails(deployment) == 1


def test_a_manual_run_never_waits_behind_a_scheduled_one(deployment):
    deployment.reset_amop()
    api, dag_id = deployment.api, deployment.dag_id
    api.set_paused(dag_id, True)
    api.set_paused(dag_id, False)  # unpausing creates no run: the DAG runs on its queue or by hand
    time.sleep(3)
    waiting = [r for r in api.runs(dag_id) if r["state"] in ("queued", "running")]
    assert not waiting, f"runs appeared on unpause: {json.dumps(waiting)[:500]}"
    triggered = dt.datetime.now(dt.UTC)
    run_id = api.trigger(dag_id, FORM)["dag_run_id"]
    running = wait_until(
        lambda: started_at(run := api.run(dag_id, run_id)) and run, timeout=60, what="the manual run to start"
    )
    waited = (started_at(running) - triggered).total_seconds()
    record_figure(f"[{deployment.executor}] manual trigger -> its run running: {waited:.1f} s")
    assert api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)["state"] == "success"

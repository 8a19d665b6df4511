"""Whole runs of the device-sync DAG against the carrier simulator and a local SQS endpoint (issue 6).

Each case generates the tenant's fleet into the AMOP database, serves a changed copy of it from the
carrier simulator, publishes a device-sync request as the optimization DAG does, runs
``device_sync__acme`` with ``dag.test()`` and reads back the ``Device`` table, the queues and the
outbox. The last case runs the optimization DAG, which publishes the request and waits, while the
device-sync DAG answers from a separate process: the whole round trip of docs/architecture.md.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.messaging.parsing import parse_request
from include.carrier_optimization.messaging.sync_messages import build_sync_request_attributes
from include.carrier_optimization.sync.carriers.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    CarrierSimulator,
)
from include.carrier_optimization.sync.carriers.simulator_faults import Faults
from include.carrier_optimization.sync.session import SYNC_ERROR_SUBJECT
from tests.dags.conftest import ACME, ACME_SPEC, FLEET_SEED, FLEET_SIZE, take_from_queue

pytestmark = [pytest.mark.dags, pytest.mark.integration("sqs")]

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "device_sync.py"
DAG_ID = "device_sync__acme"
PROVIDER = ACME.service_providers[0]
SP = PROVIDER.id
PAGE_SIZE = 40
NEW_SIMS = 60  # the carrier lists SIMs the AMOP database does not have yet


def load_sync_dag(*, retries: int = 0, poke_interval: float = 0.2):
    """The acme device-sync DAG, loaded freshly; no retry delay so ``dag.test()`` does not wait 30 s."""
    from datetime import timedelta

    dag = runpy.run_path(str(DAG_FILE))[DAG_ID]
    take_from_queue(
        dag,
        timeout=60,
        sqs_queue=ACME.device_sync_queue,
        tenant_id=ACME.tenant_id,
        kind="device_sync",
        service_provider_ids=[sp.id for sp in ACME.service_providers],
        dead_letter_queue=ACME.dead_letter_queue,
    )
    for task in dag.tasks:
        task.retries = retries
        task.retry_delay = timedelta(seconds=0)
        if hasattr(task, "poke_interval"):
            task.poke_interval = poke_interval
            task.timeout = 60
    return dag


def states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def carrier_fleet(amop):
    """The carrier's view: the AMOP fleet's SIMs plus new ones, with fresh usage (another seed)."""
    return generate_fleet(
        FLEET_SIZE + NEW_SIMS, seed=FLEET_SEED + 1, tenant=ACME_SPEC, period_end=amop.fleet.period_end
    )


@pytest.fixture
def simulator(amop, monkeypatch):
    """The carrier simulator serving the changed fleet; ``jasper_acme`` points at it."""
    sim = CarrierSimulator.from_fleet(carrier_fleet(amop), page_size=PAGE_SIZE, faults=Faults())
    sim.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_" + PROVIDER.carrier_api_conn_id.upper(),
        json.dumps(
            {
                "conn_type": "http",
                "host": sim.url,
                "login": DEFAULT_USER,
                "password": DEFAULT_PASSWORD,
                "extra": {"bulk_usage": True, "backoff_seconds": 0.01},
            }
        ),
    )
    yield sim
    sim.stop()


@pytest.fixture
def sync_queues(sqs_client):
    """Acme's request, device-sync and dead-letter queues, emptied (drained: moto purges once a minute)."""
    urls = {}
    for role, name in (
        ("request", ACME.request_queue),
        ("device_sync", ACME.device_sync_queue),
        ("dead_letter", ACME.dead_letter_queue),
    ):
        urls[role] = sqs_client.create_queue(QueueName=name)["QueueUrl"]
        drain(sqs_client, urls[role])
    return urls


@pytest.fixture
def session(amop):
    """An optimization session of acme waiting for its sync (as the optimization DAG leaves it)."""
    return AmopRepository(amop.engine).create_session(ACME.tenant_id, SP, amop.billing_period_id)


def publish_sync_request(sqs_client, queues, amop, session_id) -> str:
    attributes = build_sync_request_attributes(
        service_provider_id=SP,
        last_sync_date="2026-01-01T00:00:00Z",
        session_id=session_id,
        tenant_id=ACME.tenant_id,
        bill_period_id=amop.billing_period_id,
    )
    return sqs_client.send_message(
        QueueUrl=queues["device_sync"], MessageBody="Next page number is 1", MessageAttributes=attributes
    )["MessageId"]


def drain(client, url: str) -> list[dict]:
    found = []
    while True:
        response = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )
        messages = response.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found += messages


def devices_by_iccid(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(s.device).where(s.device.c.ServiceProviderId == SP)).mappings().all()
    return {row["ICCID"]: dict(row) for row in rows}


def assert_devices_match_carrier(engine, sim) -> None:
    """Every SIM the carrier lists is in ``Device`` with the carrier's status, plans and usage."""
    devices = devices_by_iccid(engine)
    assert set(sim.by_iccid) <= set(devices)
    wrong = [
        iccid
        for iccid, carrier in sim.by_iccid.items()
        if (
            devices[iccid]["Status"],
            devices[iccid]["CommunicationPlan"],
            devices[iccid]["CarrierRatePlanCode"],
            devices[iccid]["CtdDataUsage"],
            devices[iccid]["SmsUsage"],
        )
        != (carrier.status, carrier.communication_plan, carrier.rate_plan, carrier.ctd_bytes, carrier.ctd_sms)
    ]
    assert not wrong, f"{len(wrong)} devices differ from the carrier, e.g. {wrong[:3]}"


# -- the DAG file ---------------------------------------------------------------------------------------


def test_one_sync_dag_per_tenant_with_the_policies():
    from include.carrier_optimization.config.tenants import load_tenants

    namespace = runpy.run_path(str(DAG_FILE))
    for tenant in load_tenants(ROOT / "dags" / "tenants.yaml"):
        dag = namespace[f"device_sync__{tenant.slug}"]
        assert f"tenant:{tenant.slug}" in dag.tags and "device-sync" in dag.tags
        assert dag.max_active_runs == 1 and dag.catchup is False
        assert all(task.retries >= 2 for task in dag.tasks), [t.task_id for t in dag.tasks if t.retries < 2]
        downstream = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
        assert downstream["request"] == {"sync_devices", "merge", "complete", "failed"}  # the request XCom
        assert downstream["sync_devices"] == {"merge", "failed"}
        assert downstream["merge"] == {"complete", "failed"}
        assert downstream["complete"] == {"failed"}
        assert dag.get_task("failed").trigger_rule == "one_failed"
        (watcher,) = dag.timetable.asset_condition.watchers  # started by its queue's requests
        assert watcher.trigger.service_provider_ids == [sp.id for sp in tenant.service_providers]
        assert watcher.trigger.sqs_queue == tenant.device_sync_queue
        assert dag.get_task("complete").sqs_queue == tenant.request_queue


# -- runs -----------------------------------------------------------------------------------------------


def test_sync_merges_the_carrier_fleet_and_publishes_the_completion(
    amop, simulator, session, sqs_client, sync_queues
):
    before = devices_by_iccid(amop.engine)
    request_id = publish_sync_request(sqs_client, sync_queues, amop, session["session_id"])

    dr = load_sync_dag().test()

    assert dr.state == "success", states(dr)
    assert states(dr)["failed"] == "skipped"
    assert_devices_match_carrier(amop.engine, simulator)
    after = devices_by_iccid(amop.engine)
    assert len(after) == len(before) + NEW_SIMS
    new = [after[i] for i in set(after) - set(before)]
    assert {d["TenantId"] for d in new} == {ACME.tenant_id} and all(d["ModifiedDate"] for d in new)
    plan_ids = dict(zip(amop.fleet.plans.code, amop.fleet.plans.plan_id, strict=True))
    assert all(d["CarrierRatePlanId"] == plan_ids[d["CarrierRatePlanCode"]] for d in after.values())
    pages = simulator.page_count()
    assert [simulator.count(f"page:{n}") for n in range(1, pages + 1)] == [1] * pages

    (completion,) = drain(sqs_client, sync_queues["request"])
    parsed = parse_request(completion)
    assert (parsed.tenant_id, parsed.service_provider_id, parsed.bill_period_id) == (
        ACME.tenant_id,
        SP,
        amop.billing_period_id,
    )
    assert (parsed.session_id, parsed.has_synced) == (session["session_id"], True)
    assert completion["MessageAttributes"]["BillMonth"]["StringValue"] == str(amop.fleet.period_end.month)
    assert drain(sqs_client, sync_queues["device_sync"]) == []
    assert request_id == dr.get_task_instance("request").xcom_pull(task_ids="request")["message_id"]


def test_injected_429_and_500_are_retried_with_backoff(amop, simulator, session, sqs_client, sync_queues):
    simulator.faults.fail_page(1, 429, 500)
    simulator.faults.fail_page(5, 503, 503, 502)
    first_of_page_7 = simulator.devices[6 * PAGE_SIZE].iccid
    simulator.faults.fail_usage(first_of_page_7, 500)
    publish_sync_request(sqs_client, sync_queues, amop, session["session_id"])

    dr = load_sync_dag().test()

    assert dr.state == "success", states(dr)
    assert (simulator.count("page:1"), simulator.count("page:5"), simulator.count("page:6")) == (3, 4, 1)
    assert simulator.statuses[429] == 1 and simulator.statuses[500] == 2 and simulator.statuses[503] == 2
    assert_devices_match_carrier(amop.engine, simulator)
    assert len(drain(sqs_client, sync_queues["request"])) == 1


def test_malformed_page_fails_clearly_merges_nothing_and_stops_the_session(
    amop, simulator, session, sqs_client, sync_queues
):
    simulator.faults.malformed_page(3, "missing_iccid")
    before = devices_by_iccid(amop.engine)
    publish_sync_request(sqs_client, sync_queues, amop, session["session_id"])

    dr = load_sync_dag().test()

    assert dr.state == "failed"
    assert states(dr) | {"request": "success"} == {
        "request": "success",
        "sync_devices": "failed",
        "merge": "upstream_failed",
        "complete": "upstream_failed",
        "failed": "failed",  # the watcher fails the run once the e-mail is out and the session stopped
    }
    assert devices_by_iccid(amop.engine) == before, "a failed sync changed the Device table"
    with amop.engine.connect() as conn:
        staged = conn.execute(select(s.jasper_device_staging.c.ICCID)).scalars().all()
        stopped = conn.execute(
            select(s.optimization_session).where(s.optimization_session.c.Id == session["session_id"])
        ).one()
    assert len(staged) == 2 * PAGE_SIZE  # pages 1 and 2 staged, page 3 not
    assert (stopped.IsDeleted, stopped.IsActive) == (True, False)
    assert "Jasper device page 3: `devices[20].iccid`" in stopped.ErrorMessage
    (email,) = amop.emails()
    assert email["subject"] == SYNC_ERROR_SUBJECT.format(provider=PROVIDER.name)
    assert "Jasper device page 3: `devices[20].iccid` must be a non-empty string" in email["body"]
    assert ACME.alert_emails[0] in email["to"]
    assert drain(sqs_client, sync_queues["request"]) == [], "a failed sync must not continue the optimization"


def test_retried_sync_task_resumes_after_the_last_completed_page(
    amop, simulator, session, sqs_client, sync_queues
):
    simulator.faults.malformed_page(4, "truncated", times=1)  # the first try fails at page 4
    publish_sync_request(sqs_client, sync_queues, amop, session["session_id"])

    dr = load_sync_dag(retries=1).test()

    assert dr.state == "success", states(dr)
    assert [simulator.count(f"page:{n}") for n in range(1, 6)] == [1, 1, 1, 2, 1]
    assert dr.get_task_instance("sync_devices").xcom_pull(task_ids="sync_devices")["resumed_from"] == 4
    assert_devices_match_carrier(amop.engine, simulator)
    assert len(drain(sqs_client, sync_queues["request"])) == 1


# -- the round trip: the optimization DAG waits, the device-sync DAG answers ----------------------------

SYNC_WORKER = """
import json, runpy, sys
from datetime import timedelta
from airflow.utils import db
db.resetdb()  # its own metadata database (dag.test() needs the ORM set up in this process)
from tests.dags.conftest import ACME, take_from_queue
dag = runpy.run_path(sys.argv[1])[sys.argv[2]]
take_from_queue(dag, timeout=240, sqs_queue=ACME.device_sync_queue, tenant_id=ACME.tenant_id,
                kind="device_sync", service_provider_ids=[sp.id for sp in ACME.service_providers])
for task in dag.tasks:
    task.retries, task.retry_delay = 0, timedelta(0)
    if hasattr(task, "poke_interval"):
        task.poke_interval, task.timeout = 0.5, 240
dr = dag.test()
tasks = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
print(json.dumps({"state": str(dr.state), "tasks": tasks}))
"""


def start_sync_worker(tmp_path: Path) -> subprocess.Popen:
    """``device_sync__acme`` run by ``dag.test()`` in its own process, with its own metadata database.

    It shares only what a deployment shares: the AMOP database, the SQS endpoint, the carrier API.
    """
    metadata = tmp_path / "sync-worker-airflow.db"
    env = dict(os.environ)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{metadata}"
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-c", SYNC_WORKER, str(DAG_FILE), DAG_ID],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_optimization_waits_for_the_sync_dag_and_continues_after_its_completion(
    amop, simulator, sync_queues, sqs_client, load_dag, tmp_path
):
    worker = start_sync_worker(tmp_path)
    try:
        optimization = load_dag()
        optimization.get_task("sync_wait").timeout = 240  # a broken sync fails the test, it does not hang
        dr = optimization.test(run_conf={"has_synced": False, "batch_size": 2500})
        out, err = worker.communicate(timeout=300)
    finally:
        worker.kill()
    sync_run = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    sync_run["output"] = (out + err)[-6000:]

    assert sync_run.get("state") == "success", sync_run
    assert dr.state == "success", states(dr)
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    continuation = tis["sync_wait"].xcom_pull(task_ids="sync_wait")
    with amop.engine.connect() as conn:
        (ses,) = conn.execute(select(s.optimization_session)).all()
        (instance,) = conn.execute(select(s.optimization_instance)).all()
        snapshot = dict(
            conn.execute(
                select(s.optimization_device.c.ICCID, s.optimization_device.c.CycleDataUsageMB)
            ).all()
        )
    assert (continuation["session_id"], continuation["has_synced"]) == (ses.Id, True)
    assert continuation["bill_period_id"] == amop.billing_period_id
    assert (ses.IsDeleted, ses.Progress) == (False, 100)
    # The optimization ran on the synced devices: the carrier's new SIMs and its usage.
    assert instance.DeviceCount == FLEET_SIZE + NEW_SIMS == len(snapshot)
    mb = 1024 * 1024
    changed = [
        iccid
        for iccid, carrier in simulator.by_iccid.items()
        if abs(snapshot[iccid] - round(carrier.ctd_bytes / mb, 3)) > 1e-9
    ]
    assert not changed, f"{len(changed)} SIMs were optimized with pre-sync usage, e.g. {changed[:3]}"
    assert drain(sqs_client, sync_queues["device_sync"]) == []
    assert drain(sqs_client, sync_queues["request"]) == []

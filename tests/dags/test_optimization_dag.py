"""Whole runs of the tenant DAG with ``dag.test()`` on SQLite and PostgreSQL (issue 4).

Each case runs the real DAG file on a generated tenant and then reads the AMOP tables back: one winner
per comm group, device results complete, statuses, and every winner's total recomputed here from the
invoice rules of docs/architecture.md (not by the package's cost model). Progress and errors are captured by a
local AMOP 2.0 API; e-mails by the outbox folder; the device-sync worker is played by a thread.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import Counter

import boto3
import pytest
from sqlalchemy import func, select, update

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.messaging.publishing import build_request_attributes
from include.carrier_optimization.pipeline.instance import INVALID_PLANS_MESSAGE
from include.carrier_optimization.pipeline.progress import ERROR_PATH, PROGRESS_PATH
from include.carrier_optimization.reporting.notify import ALREADY_RUNNING_SUBJECT, RESULTS_SUBJECT
from tests.dags.conftest import ACME, slow_evaluation, take_from_queue

pytestmark = pytest.mark.dags

SUCCESS, ERRORS = int(OptimizationStatus.CompleteWithSuccess), int(OptimizationStatus.CompleteWithErrors)
TOLERANCE = 1e-9  # overage blocks: ceil with a tolerance of 1e-9 blocks (docs/architecture.md)
#: Fewer, larger batches keep the run short; several batches are still mapped.
FAST = {"batch_size": 2500}


# -- reading the end state back ----------------------------------------------------------------------


def rows(engine, query) -> list:
    with engine.connect() as conn:
        return conn.execute(query).all()


def only_session(engine):
    (session,) = rows(engine, select(s.optimization_session))
    return session


def only_instance(engine):
    (instance,) = rows(engine, select(s.optimization_instance))
    return instance


def recomputed_total(engine, instance, queue_id: int) -> float:
    """Invoice of a queue's device results, from the cost model (docs/architecture.md) on the snapshot."""
    res, dev, plan = s.device_result, s.optimization_device, s.carrier_rate_plan
    uses_proration = rows(
        engine,
        select(s.service_provider.c.UsesProration).where(
            s.service_provider.c.id == instance.ServiceProviderId
        ),
    )[0][0]
    days = (instance.BillingPeriodEndDate - instance.BillingPeriodStartDate).days or 30
    lines = rows(
        engine,
        select(
            dev.c.ProjectedDataUsageMB,
            dev.c.WasActivatedInThisBillingPeriod,
            dev.c.DaysActivatedInBillingPeriod,
            plan.c.Id,
            plan.c.DisplayRate,
            plan.c.PlanMB,
            plan.c.OverageRateCost,
            plan.c.DataPerOverageCharge,
            plan.c.AllowsSimPooling,
        )
        .join(dev, (dev.c.AmopDeviceId == res.c.AmopDeviceId) & (dev.c.InstanceId == instance.Id))
        .join(plan, plan.c.Id == res.c.AssignedCarrierRatePlanId)
        .where(res.c.QueueId == queue_id),
    )

    def blocks(excess: float, block: float) -> int:
        return 0 if excess <= 0 else max(0, math.ceil(excess / block - TOLERANCE))

    total = 0.0
    pools: dict[int, list[float]] = {}
    for usage, activated, active_days, plan_id, charge, mb, rate, block, pooled in lines:
        f = min(active_days, days) / days if uses_proration and activated else 1.0
        total += float(charge) * f
        if pooled:
            pool = pools.setdefault(plan_id, [0.0, 0.0, float(rate), float(block)])
            pool[0] += usage
            pool[1] += mb * f
        else:
            total += float(rate) * blocks(usage - mb * f, float(block))
    for usage, allowance, rate, block in pools.values():
        total += rate * blocks(usage - allowance, block)
    return total


def assert_optimized(engine, *, devices: int | None = None) -> dict:
    """The end state of a successful run; returns figures for further checks."""
    q, res, staging, dev = (
        s.optimization_queue,
        s.device_result,
        s.device_result_staging,
        s.optimization_device,
    )
    session, instance = only_session(engine), only_instance(engine)
    assert instance.RunStatusId == SUCCESS, instance.ErrorMessage
    assert instance.RunEndTime is not None and instance.ErrorMessage is None
    assert session.Progress == 100 and session.ErrorMessage is None
    snapshot = rows(
        engine, select(dev.c.AmopDeviceId, dev.c.CommunicationPlan).where(dev.c.InstanceId == instance.Id)
    )
    assert instance.DeviceCount == len(snapshot) > 0
    if devices is not None:
        assert len(snapshot) == devices

    queues = rows(engine, select(q).where(q.c.InstanceId == instance.Id))
    assert queues and all(r.RunEndTime is not None for r in queues), "a queue was left unfinished"
    assert {r.RunStatusId for r in queues} == {SUCCESS}
    summaries = rows(
        engine, select(s.comm_group_summary).where(s.comm_group_summary.c.InstanceId == instance.Id)
    )
    groups = {r.CommPlanGroupId for r in queues}
    assert {r.CommGroupId for r in summaries} == groups

    allowed = {
        r.CommunicationPlanName: {int(p) for p in r.RatePlanIds.split(",")}
        for r in rows(engine, select(s.communication_plan))
    }
    comm_plan = dict(snapshot)
    result_rows = rows(
        engine,
        select(
            res.c.QueueId,
            res.c.AmopDeviceId,
            res.c.AssignedCarrierRatePlanId,
            res.c.ChargeAmt,
            res.c.SmsChargeAmount,
        ),
    )
    assert Counter(r.AmopDeviceId for r in result_rows) == Counter(list(comm_plan)), (
        "device results incomplete"
    )
    for r in result_rows:
        assert r.AssignedCarrierRatePlanId in allowed[comm_plan[r.AmopDeviceId]], r

    winners = {}
    for summary in summaries:
        group = [r for r in queues if r.CommPlanGroupId == summary.CommGroupId]
        best = min(float(r.TotalCost) for r in group if r.TotalCost is not None)
        lowest_id = min(r.Id for r in group if r.TotalCost is not None and float(r.TotalCost) == best)
        assert summary.WinnerQueueId == lowest_id, (
            "winner is not the cheapest finished queue (lowest id on ties)"
        )
        assert float(summary.WinnerCost) == best
        assert {r.QueueId for r in result_rows if r.AmopDeviceId in comm_plan} >= {lowest_id}
        recomputed = recomputed_total(engine, instance, lowest_id)
        assert recomputed == pytest.approx(best, abs=0.01), f"comm group {summary.CommGroupId}"
        charged = sum(
            float(r.ChargeAmt) + float(r.SmsChargeAmount) for r in result_rows if r.QueueId == lowest_id
        )
        assert charged == pytest.approx(best, abs=0.01 + 1e-4 * summary.DeviceCount)
        assert float(summary.BaseCost) >= best - 0.005, "a result worse than the base assignment"
        winners[summary.CommGroupId] = summary
    assert {r.QueueId for r in result_rows} == {w.WinnerQueueId for w in winners.values()}, (
        "one winner per group"
    )
    staged = {r[0] for r in rows(engine, select(staging.c.QueueId).distinct())}
    assert staged <= {w.WinnerQueueId for w in winners.values()}, "losing rows left in staging"
    return {"session": session, "instance": instance, "queues": queues, "winners": winners}


def progress_values(posts) -> list[int]:
    return [p["json"]["data"]["Progress"] for p in posts if p["path"] == PROGRESS_PATH]


def error_messages(posts) -> list[str]:
    return [p["json"]["data"]["ErrorMessage"] for p in posts if p["path"] == ERROR_PATH]


def task_states(dr) -> dict[str, set[str]]:
    from airflow.utils.session import create_session

    with create_session() as session:
        states: dict[str, set[str]] = {}
        for ti in dr.get_task_instances(session=session):
            states.setdefault(ti.task_id, set()).add(str(ti.state))
        return states


# -- SQS helpers -------------------------------------------------------------------------------------


def send_request(client, url: str, **fields) -> str:
    attributes = build_request_attributes(
        **({"tenant_id": ACME.tenant_id, "service_provider_id": ACME.service_providers[0].id} | fields)
    )
    return client.send_message(QueueUrl=url, MessageBody="Carrier to optimize", MessageAttributes=attributes)[
        "MessageId"
    ]


def drain(client, url: str) -> list[dict]:
    found = []
    while batch := client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in batch:
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found += batch
    return found


def text(message: dict, name: str) -> str | None:
    value = (message.get("MessageAttributes") or {}).get(name)
    return None if value is None else value["StringValue"]


class DeviceSyncWorker(threading.Thread):
    """Plays the device-sync worker: takes each sync request, "syncs", publishes the completion."""

    def __init__(self, endpoint: str, queues: dict[str, str], on_sync=None) -> None:
        super().__init__(daemon=True)
        self.client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        self.queues = queues
        self.on_sync = on_sync
        self.requests: list[dict] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            response = self.client.receive_message(
                QueueUrl=self.queues["device_sync"], WaitTimeSeconds=1, MessageAttributeNames=["All"]
            )
            for message in response.get("Messages", []):
                self.client.delete_message(
                    QueueUrl=self.queues["device_sync"], ReceiptHandle=message["ReceiptHandle"]
                )
                self.requests.append(message)
                if self.on_sync is not None:
                    self.on_sync(message)
                send_request(
                    self.client,
                    self.queues["request"],
                    tenant_id=int(text(message, "TenantId")),
                    service_provider_id=int(text(message, "ServiceProviderId")),
                    bill_period_id=int(text(message, "BillPeriodId")),
                    session_id=int(text(message, "OptimizationSessionId")),
                    has_synced=True,
                )

    def __enter__(self) -> DeviceSyncWorker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(timeout=10)


# -- the scenarios -----------------------------------------------------------------------------------


def test_manual_run_with_config_optimizes_the_tenant(amop, load_dag, amop_api):
    posts = amop_api()
    dr = load_dag().test(run_conf={"has_synced": True, "engine": "best", **FAST})

    assert dr.state == "success", task_states(dr)
    state = assert_optimized(amop.engine, devices=len(amop.fleet.devices))
    assert state["session"].BillingPeriodId == amop.billing_period_id
    kinds = Counter(r.QueueKind for r in state["queues"])
    groups = len(state["winners"])
    assert kinds["base"] == kinds["engine"] == groups and kinds["sequence"] > 0
    assert progress_values(posts) == [0, 30, 40, 50, 100]
    assert error_messages(posts) == []
    (results,) = amop.emails()
    assert results["subject"] == RESULTS_SUBJECT.format(tenant=ACME.name)
    assert f"{len(amop.fleet.devices):,}" in results["body"]


@pytest.mark.integration("sqs")
def test_sqs_request_runs_and_sorts_the_queue(amop, load_dag, sqs_client, tenant_queues):
    """It takes this tenant's request; another tenant's and malformed ones are dead-lettered."""
    urls = tenant_queues
    other = send_request(sqs_client, urls["request"], tenant_id=99, bill_period_id=7, has_synced=True)
    bad = sqs_client.send_message(
        QueueUrl=urls["request"],
        MessageBody="no provider",
        MessageAttributes={"TenantId": {"DataType": "String", "StringValue": str(ACME.tenant_id)}},
    )["MessageId"]
    send_request(sqs_client, urls["request"], bill_period_id=amop.billing_period_id, has_synced=True)

    dag = load_dag()
    take_from_queue(
        dag, sqs_queue=urls["request"], tenant_id=ACME.tenant_id, dead_letter_queue=urls["dead_letter"]
    )
    dr = dag.test(run_conf=FAST)  # as if the queue's watcher had started it

    assert dr.state == "success", task_states(dr)
    assert_optimized(amop.engine)
    assert drain(sqs_client, urls["request"]) == []  # taken, recorded, deleted
    dead = {m["Body"]: text(m, "ErrorReason") for m in drain(sqs_client, urls["dead_letter"])}
    assert bad in dead["no provider"] and "ServiceProviderId" in dead["no provider"]
    assert len(dead) == 2 and any(other in reason and "TenantId" in reason for reason in dead.values())


@pytest.mark.integration("sqs")
def test_run_syncs_first_through_the_sqs_round_trip(
    amop, load_dag, sqs_client, sqs_endpoint, tenant_queues, amop_api
):
    posts = amop_api()
    sp = ACME.service_providers[0].id
    with amop.engine.begin() as conn:
        conn.execute(s.jasper_device_staging.insert().values(ICCID="stale", ServiceProviderId=sp))
    removed = int(amop.fleet.devices.device_id.iloc[0])
    # A second request of the tenant arrives while the run waits for its sync: left for a later run.
    second = send_request(sqs_client, tenant_queues["request"], bill_period_id=amop.billing_period_id)

    def carrier_sync(message):  # the sync sees one SIM gone at the carrier
        assert rows(amop.engine, select(func.count()).select_from(s.jasper_device_staging))[0][0] == 0
        with amop.engine.begin() as conn:
            conn.execute(update(s.device).where(s.device.c.Id == removed).values(IsDeleted=True))

    with DeviceSyncWorker(sqs_endpoint, tenant_queues, on_sync=carrier_sync) as worker:
        dr = load_dag().test(run_conf={"has_synced": False, **FAST})

    assert dr.state == "success", task_states(dr)
    (request,) = worker.requests
    session = only_session(amop.engine)
    assert text(request, "OptimizationSessionId") == str(session.Id)
    assert text(request, "PageNumber") == "1" and text(request, "NextStep") == "DeviceUsageByRatePlan"
    assert text(request, "BillPeriodId") == str(amop.billing_period_id)
    state = assert_optimized(amop.engine, devices=len(amop.fleet.devices) - 1)
    assert removed not in {r[0] for r in rows(amop.engine, select(s.optimization_device.c.AmopDeviceId))}, (
        "the run optimized the devices as they were before the sync"
    )
    assert state["session"].Id == session.Id
    assert progress_values(posts) == [0, 20, 30, 40, 50, 100]
    assert [m["MessageId"] for m in drain(sqs_client, tenant_queues["request"])] == [second]


def test_invalid_plans_end_the_instance_with_errors(amop, load_dag, amop_api):
    posts = amop_api()
    plan = s.carrier_rate_plan
    bad = sorted(int(i) for i in amop.fleet.plans.plan_id.iloc[[2, 5]])
    with amop.engine.begin() as conn:
        conn.execute(update(plan).where(plan.c.Id == bad[0]).values(DataPerOverageCharge=0))
        conn.execute(update(plan).where(plan.c.Id == bad[1]).values(OverageRateCost=-1))

    dr = load_dag().test(run_conf={"has_synced": True, **FAST})

    assert dr.state == "failed"
    assert task_states(dr)["count"] == {"failed"}
    instance = only_instance(amop.engine)
    assert instance.RunStatusId == ERRORS and instance.RunEndTime is not None
    assert instance.ErrorMessage.startswith(INVALID_PLANS_MESSAGE), "the legacy message, kept by the callback"
    for plan_id in bad:
        assert str(plan_id) in instance.ErrorMessage
    for table in (s.comm_group, s.optimization_queue, s.optimization_device, s.device_result):
        assert rows(amop.engine, select(func.count()).select_from(table))[0][0] == 0, table.name
    errors = error_messages(posts)
    assert errors and all(str(bad[0]) in e for e in errors)
    (alert,) = [e for e in amop.emails() if "failed" in e["subject"]]
    assert ACME.alert_emails[0] in alert["to"] and str(bad[0]) in alert["body"]


def test_concurrent_request_is_refused_without_touching_the_running_session(amop, load_dag):
    from include.carrier_optimization import pipeline

    first = pipeline.open_session(
        amop.engine,
        pipeline.Request(tenant_id=ACME.tenant_id, service_provider_id=ACME.service_providers[0].id),
        run_key=f"portal/{uuid.uuid4()}",
    )
    pipeline.prepare_instance(
        amop.engine,
        session_id=first["session_id"],
        request=pipeline.Request(tenant_id=ACME.tenant_id, service_provider_id=ACME.service_providers[0].id),
        batch_size=500,
    )
    before = {
        t.name: rows(amop.engine, select(t))
        for t in (s.optimization_session, s.optimization_instance, s.optimization_queue)
    }

    dr = load_dag().test(run_conf={"has_synced": True, **FAST})

    states = task_states(dr)
    assert dr.state == "success" and states["session"] == {"skipped"}
    assert states["count"] == states["winners"] == states["report"] == {"skipped"}
    after = {t: rows(amop.engine, select(s.metadata.tables[t])) for t in before}
    assert after == before, "the refused run touched the running session"
    (warning,) = amop.emails()
    assert warning["subject"] == ALREADY_RUNNING_SUBJECT
    assert str(first["session_id"]) in warning["body"] and ACME.alert_emails[0] in warning["to"]


def test_failing_task_marks_the_instance_and_alerts(amop, load_dag, amop_api, monkeypatch):
    from include.carrier_optimization import pipeline

    posts = amop_api()

    def broken(*args, **kwargs):
        raise RuntimeError("optimizer lost its database")

    monkeypatch.setattr(pipeline, "run_optimizer_batch", broken)
    dr = load_dag().test(run_conf={"has_synced": True, **FAST})

    assert dr.state == "failed"
    states = task_states(dr)
    assert "failed" in states["optimize"] and states["winners"] == {"upstream_failed"}
    instance = only_instance(amop.engine)
    assert instance.RunStatusId == ERRORS and "optimizer lost its database" in instance.ErrorMessage
    assert any("optimizer lost its database" in e for e in error_messages(posts))
    alerts = [e for e in amop.emails() if "failed" in e["subject"]]
    assert alerts and all(ACME.alert_emails[0] in a["to"] for a in alerts)
    assert f"instance {instance.Id}" in alerts[0]["body"]


@pytest.mark.parametrize("amop_url", ["sqlite"], indirect=True)  # the API does not depend on the database
@pytest.mark.parametrize("engine", ["optimal", "legacy"])
def test_failing_progress_api_never_fails_the_run(amop, load_dag, amop_api, engine):
    posts = amop_api(status=500)
    dr = load_dag().test(run_conf={"has_synced": True, "engine": engine, **FAST})

    assert dr.state == "success", task_states(dr)
    state = assert_optimized(amop.engine)
    kinds = Counter(r.QueueKind for r in state["queues"])
    if engine == "optimal":
        assert kinds["sequence"] == 0 and kinds["engine"] == len(state["winners"])
    else:
        assert kinds["engine"] == 0 and kinds["sequence"] > 0
    assert progress_values(posts) == [0, 30, 40, 50, 100], "every progress call was attempted"


def test_cleared_run_resumes_after_a_failure_without_duplicates(amop, load_dag, monkeypatch):
    """A batch fails for good; the run is cleared and run again in place: it ends as a clean run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from include.carrier_optimization import pipeline

    original = pipeline.run_optimizer_batch
    failing: dict[str, int] = {}

    def flaky(engine, *, comm_group_id, **kwargs):
        if failing.setdefault("group", comm_group_id) == comm_group_id:
            raise RuntimeError("worker lost")
        return original(engine, comm_group_id=comm_group_id, **kwargs)

    monkeypatch.setattr(pipeline, "run_optimizer_batch", flaky)
    dag, conf = load_dag(), {"has_synced": True, **FAST}
    failed = dag.test(run_conf=conf)
    assert failed.state == "failed"
    assert only_instance(amop.engine).RunStatusId == ERRORS
    finished_before = {r.Id for r in rows(amop.engine, select(s.optimization_queue)) if r.RunEndTime}

    monkeypatch.setattr(pipeline, "run_optimizer_batch", original)
    runs = DagRun.__table__
    with create_session() as session:  # "Clear" on the run: it is running again, its tasks start over
        session.execute(
            update(runs)
            .where(runs.c.dag_id == dag.dag_id, runs.c.run_id == failed.run_id)
            .values(state="running")
        )
    resumed = dag.test(logical_date=failed.logical_date, run_after=failed.run_after, run_conf=conf)

    assert resumed.run_id == failed.run_id and resumed.state == "success", task_states(resumed)
    state = assert_optimized(amop.engine, devices=len(amop.fleet.devices))
    queues = state["queues"]
    summaries = rows(amop.engine, select(s.comm_group_summary))
    assert Counter(r.QueueKind for r in queues)["sequence"] == sum(r.SequenceCount for r in summaries)
    assert len({(r.CommPlanGroupId, r.QueueKind, r.SequenceIndex) for r in queues}) == len(queues)
    assert finished_before <= {r.Id for r in queues}, "finished queues were kept, not rewritten"


@pytest.mark.parametrize("amop_url", ["sqlite"], indirect=True)
@pytest.mark.integration("redis")
def test_optimizer_out_of_time_defers_and_continues_from_its_checkpoint(
    amop, load_dag, monkeypatch, redis_client
):
    """With a 1 s budget each optimizer batch checkpoints (Redis, written through), defers and resumes.

    The other runs checkpoint to the database alone (no ``redis_default`` connection).
    """
    from include.carrier_optimization import pipeline
    from include.carrier_optimization.amop.checkpoints import checkpoint_prefix
    from include.carrier_optimization.amop.redis_checkpoints import RedisCheckpointStore
    from tests.conftest import REDIS_URL

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", REDIS_URL)
    put, in_redis = RedisCheckpointStore.put, []
    monkeypatch.setattr(
        RedisCheckpointStore,
        "put",
        lambda self, key, value, **kw: in_redis.append(key) or put(self, key, value, **kw),
    )

    original, calls = pipeline.run_optimizer_batch, []

    def counted(*args, **kwargs):
        progress = original(*args, **kwargs)
        calls.append((kwargs["comm_group_id"], kwargs["start"], progress))
        return progress

    monkeypatch.setattr(pipeline, "run_optimizer_batch", counted)
    slow_evaluation(monkeypatch)  # a batch outlasts the 1 s budget however fast the evaluation is
    dag = load_dag()
    dag.task_dict["optimize"].partial_kwargs["time_budget_seconds"] = 1
    dr = dag.test(run_conf={"has_synced": True, "engine": "legacy", **FAST})

    assert dr.state == "success", task_states(dr)
    state = assert_optimized(amop.engine, devices=len(amop.fleet.devices))
    sequences = sum(r.SequenceCount for r in rows(amop.engine, select(s.comm_group_summary)))
    assert Counter(r.QueueKind for r in state["queues"])["sequence"] == sequences
    batches = {(group, start) for group, start, _ in calls}
    assert len(calls) > len(batches), "no optimizer batch ran out of time: the budget was not exercised"
    assert any(not progress.done for _, _, progress in calls)
    assert sum(progress.evaluated for _, _, progress in calls) == sequences, "a resumed batch evaluated again"
    assert rows(amop.engine, select(func.count()).select_from(s.checkpoint))[0][0] == 0, "checkpoints left"
    assert in_redis, "the checkpoints did not go to Redis"
    assert redis_client.keys(checkpoint_prefix(dag.dag_id) + "*") == [], "checkpoints left in Redis"

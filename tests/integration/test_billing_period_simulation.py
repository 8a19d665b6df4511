"""Ten days of hourly ticks across a billing period end, with a controlled clock (issue 11, item 5).

Real parts: the local SQS endpoint, the AMOP database, the window (``publish_due_requests``), the queue
watcher (``SqsRequestWatcherTrigger`` rounds), the intake task (``OptimizationIntakeOperator``) and the
session guard (``pipeline.open_session``). Simulated: the clock, and what a started run then does (a
sync of one hour unless synced, an optimization of two hours, a results e-mail when it ends well), one
run at a time as ``max_active_runs=1`` makes the tenant DAG do.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.run_records import RunRecords
from include.carrier_optimization.amop.schema import OptimizationStatus, create_schema
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet
from include.carrier_optimization.messaging.publishing import build_request_attributes
from include.carrier_optimization.pipeline.schedule import publish_due_requests
from plugins.compat import AirflowSkipException
from plugins.operators.intake import OptimizationIntakeOperator
from plugins.triggers.intake import SqsRequestWatcherTrigger

pytestmark = pytest.mark.integration("sqs")

TENANT = 11
P1, P2 = 1101, 1102
START_HOURS = {P1: 6, P2: 2}
START = dt.datetime(2026, 3, 24)
#: Current periods end inside the run; the next ones end a month later (their windows stay closed).
FIRST_END = {P1: dt.datetime(2026, 3, 28, 23, 59, 59), P2: dt.datetime(2026, 3, 30, 23, 59, 59)}
PORTAL_HOURS = {30: P1, 180: P2}  # Mar 25 06:00 (period 1 of P1), Mar 31 12:00 (period 2 of P2)
RECORD_CRASH_HOUR = 2  # the window publishes P2's request, then dies before writing the decision down
FAILING_RUNS = {(P1, "scheduled")}  # P1's first scheduled optimization ends CompleteWithErrors


@dataclass
class Run:
    run_id: str
    payload: dict[str, Any]
    phase: str = "queued"
    until: dt.datetime | None = None
    request: pipeline.Request | None = None
    session: dict[str, Any] | None = None
    kind: str = ""
    instance_id: int | None = None


@dataclass
class World:
    engine: Any
    client: Any
    queue: str
    clock: dict[str, dt.datetime]
    periods: dict[tuple[int, int], int]
    runs: list[Run] = field(default_factory=list)
    results: Counter = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: list[tuple[int, dt.datetime]] = field(default_factory=list)
    max_unfinished: int = 0
    drop_next_delete: bool = False
    failing: set = field(default_factory=lambda: set(FAILING_RUNS))

    @property
    def now(self) -> dt.datetime:
        return self.clock["now"]


@pytest.fixture
def world(monkeypatch, tmp_path, sqs_client) -> World:
    url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
    monkeypatch.setenv("CARRIER_OPT_DB_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_AMOP_DB", raising=False)
    engine = make_engine(url)
    create_schema(engine)
    clock = {"now": START}
    for module in (
        "amop.repository",
        "amop.run_records",
        "amop.instances",
        "amop.queues",
        "amop.results",
        "pipeline.session",
        "pipeline.instance",
        "pipeline.queues",
        "pipeline.optimizer",
    ):
        monkeypatch.setattr(f"include.carrier_optimization.{module}.utcnow", lambda: clock["now"])
    periods = {}
    for provider, end in FIRST_END.items():
        spec = TenantSpec(
            tenant_id=TENANT, name="sim", service_provider_id=provider, start_hour=START_HOURS[provider]
        )
        periods[(provider, 1)] = AmopRepository(engine).write_fleet(
            generate_fleet(20, seed=provider, tenant=spec, period_end=end)
        )
        with engine.begin() as conn:
            periods[(provider, 2)] = conn.execute(
                insert(s.billing_period).values(
                    ServiceProviderId=provider,
                    BillYear=2026,
                    BillMonth=4,
                    BillingCycleStartDate=end + dt.timedelta(seconds=1),
                    BillingCycleEndDate=end.replace(month=4, day=end.day - 2),
                )
            ).inserted_primary_key[0]
    queue = sqs_client.create_queue(QueueName=f"sim-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield World(engine, sqs_client, queue, clock, periods)
    sqs_client.delete_queue(QueueUrl=queue)
    engine.dispose()


def tick_window(w: World, hour: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        if hour == RECORD_CRASH_HOUR:

            def crash(*args, **kwargs):
                raise RuntimeError("window task killed after publishing")

            patch.setattr(RunRecords, "record_decision", crash)
        try:
            publish_due_requests(
                w.engine,
                w.client,
                tenant_id=TENANT,
                request_queue=w.queue,
                start_hours=START_HOURS,
                billing_time_zone="UTC",
                now_utc=w.now,
            )
        except RuntimeError:
            assert hour == RECORD_CRASH_HOUR


def portal_request(w: World, provider: int) -> None:
    """The portal creates its session and sends the request with it (legacy §2.2, period ended: synced)."""
    period = AmopRepository(w.engine).current_billing_period(provider, w.now)
    session = AmopRepository(w.engine).create_session(TENANT, provider, period["id"])
    w.client.send_message(
        QueueUrl=w.queue,
        MessageBody="portal",
        MessageAttributes=build_request_attributes(
            tenant_id=TENANT,
            service_provider_id=provider,
            bill_period_id=period["id"],
            session_id=session["session_id"],
            has_synced=True,
        ),
    )


def start(w: World, run: Run) -> None:
    """The run's request task and session step; then its sync or its optimization begins."""
    op = OptimizationIntakeOperator(task_id="request", tenant_id=TENANT)
    if w.drop_next_delete and run.payload["request"]["session_id"]:
        op._sqs_call = lambda *args, **kwargs: None  # the worker dies before it deletes the message
        w.drop_next_delete = False
    event = SimpleNamespace(extra={"payload": run.payload}, timestamp=w.now)
    try:
        taken = op.execute(
            {"triggering_asset_events": {"asset": [event]}, "run_id": run.run_id, "params": {}}
        )
    except AirflowSkipException:
        w.duplicates.append(run.payload["message_id"])
        run.phase = "done"
        return
    run.request = pipeline.Request.from_dict(taken)
    run.kind = "explicit" if run.request.explicit else "scheduled"
    try:
        run.session = pipeline.open_session(w.engine, run.request, run_key=run.run_id, now=w.now)
    except (pipeline.RunRefused, pipeline.SessionFinished) as refused:
        w.refused.append(str(refused))  # the warning e-mail; nothing starts
        run.phase = "done"
        return
    if run.request.has_synced:
        begin_optimization(w, run)
    else:
        pipeline.set_progress(w.engine, run.session["session_id"], 20)
        run.phase, run.until = "sync", w.now + dt.timedelta(hours=1)


def begin_optimization(w: World, run: Run) -> None:
    repo = AmopRepository(w.engine)
    run.instance_id = repo.start_instance(
        session_id=run.session["session_id"],
        tenant_id=TENANT,
        service_provider_id=run.request.service_provider_id,
        billing_period=repo.billing_period(run.session["billing_period_id"]),
    )
    repo.set_instance_status(run.instance_id, OptimizationStatus.RunningPermutations)
    run.phase, run.until = "optimize", w.now + dt.timedelta(hours=2)


def advance(w: World) -> None:
    """Move the active run on; when it ends, start the queued ones (one active run at a time)."""
    repo = AmopRepository(w.engine)
    for run in [r for r in w.runs if r.phase in ("sync", "optimize") and r.until <= w.now]:
        if run.phase == "sync":
            begin_optimization(w, run)
            continue
        key = (run.request.service_provider_id, run.kind)
        if key in w.failing:
            w.failing.discard(key)
            repo.set_instance_status(run.instance_id, OptimizationStatus.CompleteWithErrors, error="boom")
            w.failed.append((run.request.service_provider_id, w.now))
        else:
            repo.set_instance_status(run.instance_id, OptimizationStatus.CompleteWithSuccess)
            w.results[(run.request.service_provider_id, run.session["billing_period_id"], run.kind)] += 1
        run.phase = "done"
    while not any(r.phase in ("sync", "optimize") for r in w.runs) and (
        queued := next((r for r in w.runs if r.phase == "queued"), None)
    ):
        start(w, queued)
        if queued.phase == "queued":
            queued.phase = "done"


def unfinished_instances(engine) -> int:
    ins = s.optimization_instance
    finished = [int(x) for x in s.FINISHED_STATUSES]
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(ins).where(ins.c.RunStatusId.not_in(finished))
        ).scalar_one()


def test_ten_days_of_hourly_ticks_across_a_period_end(world):
    w = world
    watcher = SqsRequestWatcherTrigger(
        sqs_queue=w.queue, tenant_id=TENANT, wait_time_seconds=0, hold_seconds=1
    )
    for hour in range(10 * 24):
        w.clock["now"] = START + dt.timedelta(hours=hour)
        advance(w)
        tick_window(w, hour)
        if hour in PORTAL_HOURS:
            portal_request(w, PORTAL_HOURS[hour])
            w.drop_next_delete = hour == 30  # P1's portal request: its delivery will be repeated
        if hour == 31:
            time.sleep(1.2)  # the undeleted message's visibility timeout passes: SQS delivers it again
        for payload in watcher._round(w.client):
            w.runs.append(Run(run_id=f"asset_triggered__{len(w.runs)}", payload=payload))
        advance(w)
        w.max_unfinished = max(w.max_unfinished, unfinished_instances(w.engine))

    p = w.periods
    # One scheduled optimization and one results e-mail per provider and period whose window opened,
    # plus one per explicit (portal) request; nothing for the next periods (their windows stay closed).
    assert w.results == Counter(
        {
            (P1, p[(P1, 1)], "scheduled"): 1,
            (P2, p[(P2, 1)], "scheduled"): 1,
            (P1, p[(P1, 1)], "explicit"): 1,
            (P2, p[(P2, 2)], "explicit"): 1,
        }
    )
    assert w.max_unfinished == 1, "an optimization started while another ran"
    # The CompleteWithErrors run was retried on the next tick (the tick it ended on publishes again).
    ((provider, failed_at),) = w.failed
    retry = RunRecords(w.engine).last_decision(provider, p[(provider, 1)])
    assert "CompleteWithErrors" in retry["Reason"] and retry["DecidedAt"] - failed_at < dt.timedelta(hours=1)
    # The duplicate delivery of the portal request was dropped by its MessageId ...
    assert len(w.duplicates) == 1
    assert RunRecords(w.engine).message_run(w.duplicates[0]) is not None
    # ... and the window's re-published P2 request (its decision was not written down) by the guard.
    assert len(w.refused) == 1 and "already optimized" in w.refused[0]
    assert (
        w.client.get_queue_attributes(QueueUrl=w.queue, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
        == "0"
    )

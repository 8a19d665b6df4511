"""Fault injection on whole runs of the tenant DAG (issue 5): every interrupted run ends as a clean one.

Each scenario runs the real DAG file with ``dag.test()`` on a generated tenant, breaks something on the
way (a killed process, the time budget, Redis, the database connection, a duplicated SQS message), lets
the run resume the way Airflow would (clear, retry, deferral), and then compares the AMOP tables with
those of an uninterrupted reference run of the same fleet (module-scoped, run once): the same winner
per comm group (queue kind and total cost), the same device result rows (count, plan and charges per
SIM, totals), no duplicate queue, queue-rate-plan or device result rows, the instance
``CompleteWithSuccess``. The end state is first checked on its own by the assertions of
``test_optimization_dag`` (winner totals recomputed from the invoice rules).

The runs use the legacy engine: its result is the cheapest of all sequences whatever the order in
which batches run, so an interrupted run must reach exactly the reference's numbers (the optimal
engine works to a time limit and may legitimately differ between two runs).
"""

from __future__ import annotations

import datetime as dt
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.core.fleet import generate_fleet
from tests.conftest import free_port
from tests.dags.conftest import (
    ACME,
    ACME_SPEC,
    DAG_FILE,
    FLEET_SEED,
    FLEET_SIZE,
    PACKAGE_CONNECTIONS,
    ROOT,
    current_period_end,
    slow_evaluation,
    take_from_queue,
)
from tests.dags.test_optimization_dag import assert_optimized, rows, task_states

pytestmark = pytest.mark.dags

#: Legacy engine only (deterministic, see the module docstring); 1,500 SIMs of tenant ``acme`` in
#: batches of 1,000 sequences: several optimizer batches, each a few seconds of work.
CONF = {"has_synced": True, "engine": "legacy", "batch_size": 1000}
SEQUENCE_QUEUES = (s.optimization_queue.c.QueueKind == "sequence",)


# -- the end state and its comparison ----------------------------------------------------------------


def end_state(engine, *, devices: int = FLEET_SIZE) -> dict:
    """The comparable end state of a finished run, after the checks of ``assert_optimized``.

    Ids differ between two runs, so comm groups are named by their rate plan list and queues by
    (comm group, kind, sequence index).
    """
    qrp, res = s.queue_rate_plan, s.device_result
    state = assert_optimized(engine, devices=devices)
    group_key = dict(rows(engine, select(s.comm_group.c.Id, s.comm_group.c.RatePlanIds)))
    queues = state["queues"]
    queue_keys = [(group_key[r.CommPlanGroupId], r.QueueKind, r.SequenceIndex) for r in queues]
    assert not duplicates(queue_keys), "duplicate queue rows"
    plan_rows = rows(engine, select(qrp.c.QueueId, qrp.c.SequenceOrder))
    assert not duplicates(plan_rows), "duplicate queue rate plan rows"
    results = rows(
        engine,
        select(
            res.c.QueueId,
            res.c.AmopDeviceId,
            res.c.AssignedCarrierRatePlanId,
            res.c.ChargeAmt,
            res.c.OverageChargeAmt,
            res.c.SmsChargeAmount,
        ),
    )
    assert not duplicates([(r.QueueId, r.AmopDeviceId) for r in results]), "duplicate device results"
    assert not duplicates([r.AmopDeviceId for r in results]), "a SIM has two results"
    return {
        "status": int(state["instance"].RunStatusId),
        "devices": int(state["instance"].DeviceCount),
        "winners": {
            group_key[g]: (w.WinnerKind, round(float(w.WinnerCost), 4)) for g, w in state["winners"].items()
        },
        "queues": Counter((kind) for _, kind, _ in queue_keys),
        "queue_rate_plans": len(plan_rows),
        "results": len(results),
        "plans": {int(r.AmopDeviceId): int(r.AssignedCarrierRatePlanId) for r in results},
        "charges": {
            int(r.AmopDeviceId): round(float(r.ChargeAmt) + float(r.SmsChargeAmount), 4) for r in results
        },
        "total": round(sum(float(r.ChargeAmt) + float(r.SmsChargeAmount) for r in results), 2),
        "overage": round(sum(float(r.OverageChargeAmt) for r in results), 2),
    }


def duplicates(keys) -> list:
    return [k for k, n in Counter(keys).items() if n > 1]


def assert_same_end_state(engine, reference: dict, *, devices: int = FLEET_SIZE) -> dict:
    """The run's end state equals the reference run's, field by field (readable failures)."""
    state = end_state(engine, devices=devices)
    for name in reference:
        if name in ("plans", "charges"):
            differ = {
                k: (state[name].get(k), v) for k, v in reference[name].items() if state[name].get(k) != v
            }
            assert not differ and set(state[name]) == set(reference[name]), (
                f"{name}: {len(differ)} SIMs differ from the reference, e.g. {dict(list(differ.items())[:5])}"
            )
        else:
            assert state[name] == reference[name], name
    return state


def load_dag(*, retries: int | None = 0, retry_delay: float | None = None):
    """The tenant DAG loaded freshly from the DAG file, as the ``load_dag`` fixture does (module scope)."""
    dag = runpy.run_path(str(DAG_FILE))[ACME.dag_id]
    for task in dag.tasks:
        if retries is not None:
            task.retries = retries
        if retry_delay is not None:
            task.retry_delay = dt.timedelta(seconds=retry_delay)
        if hasattr(task, "poke_interval"):
            task.poke_interval = 0.5
    return dag


def fresh_amop_database(url: str):
    """A fresh AMOP schema at ``url`` holding the fleet of the ``amop`` fixture; returns the engine."""
    from include.carrier_optimization.amop.repository import AmopRepository
    from include.carrier_optimization.amop.schema import create_schema, drop_schema
    from include.carrier_optimization.amop.storage import make_engine

    engine = make_engine(url)
    drop_schema(engine)
    create_schema(engine)
    fleet = generate_fleet(FLEET_SIZE, seed=FLEET_SEED, tenant=ACME_SPEC, period_end=current_period_end())
    AmopRepository(engine).write_fleet(fleet)
    return engine


@pytest.fixture(scope="module")
def reference(airflow_db, tmp_path_factory) -> dict:
    """End state of one uninterrupted run of the fleet (SQLite, no Redis), run once per module."""
    folder = tmp_path_factory.mktemp("reference")
    url = f"sqlite:///{folder / 'amop.sqlite'}"
    engine = fresh_amop_database(url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARRIER_OPT_DB_URL", url)
        mp.setenv("CARRIER_OPT_OUTBOX", str(folder / "outbox"))
        for name in PACKAGE_CONNECTIONS:
            mp.delenv(name, raising=False)
        dr = load_dag().test(run_conf=CONF)
    assert dr.state == "success", task_states(dr)
    state = end_state(engine)
    engine.dispose()
    assert state["queues"]["sequence"] > 2 * CONF["batch_size"], "too few sequences for several batches"
    return state


def optimize_results(dr) -> list[dict]:
    """The return values (XCom) of the run's ``optimize`` map indexes."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.execute(
            select(XComModel.map_index, XComModel.value).where(
                XComModel.dag_id == dr.dag_id,
                XComModel.run_id == dr.run_id,
                XComModel.task_id == "optimize",
                XComModel.key == "return_value",
            )
        ).all()
    import json

    return [json.loads(v) if isinstance(v, (str, bytes)) else v for _, v in sorted(found)]


def counted_batches(monkeypatch) -> list:
    """Record every ``run_optimizer_batch`` call's ``(comm_group_id, start, BatchProgress)``."""
    from include.carrier_optimization import pipeline

    original, calls = pipeline.run_optimizer_batch, []

    def counted(*args, **kwargs):
        progress = original(*args, **kwargs)
        calls.append((kwargs["comm_group_id"], kwargs["start"], progress))
        return progress

    monkeypatch.setattr(pipeline, "run_optimizer_batch", counted)
    return calls


def wait_until(condition, *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# -- 1. a task killed mid-batch ----------------------------------------------------------------------

CHILD_RUN = """
import datetime as dt, sys, time
sys.path.insert(0, {root!r})
import fastapi.routing  # first: else the first in-process API call of dag.test() got a 400 here
from pathlib import Path
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.pipeline import optimizer
from tests.dags.test_fault_injection import CONF, load_dag
evaluate, checkpoint, committed = legacy.evaluate_sequences, optimizer._checkpoint, []
def recorded(*args, **kwargs):
    done = checkpoint(*args, **kwargs)
    committed.append(True)
    return done
def slow(*args, **kwargs):
    # the first evaluation after a committed checkpoint waits there to be killed: its optimize task is
    # running (mid-batch, or at the start of the next batch), with some queues finished for good
    if committed:
        Path({stuck!r}).touch()
        time.sleep(3600)
    time.sleep(0.05)
    return evaluate(*args, **kwargs)
legacy.evaluate_sequences, optimizer._checkpoint = slow, recorded
when = dt.datetime.fromisoformat({when!r})
load_dag().test(logical_date=when, run_after=when, run_conf=CONF)
"""


def test_task_killed_mid_batch_then_cleared_resumes_from_what_is_done(amop, reference, tmp_path):
    """The worker running an optimizer batch dies (SIGKILL, no exception, no callback); the run is cleared.

    Driven as Airflow would see it: a child process runs ``dag.test()`` for a fixed logical date and is
    killed inside an optimizer task once a checkpoint has committed (the next evaluation waits there, so
    the kill never falls between two tasks, as a kill on a count of finished queues could when a small
    batch ran first and ended). The scheduler would then find
    the task without heartbeat and fail it; here the killed run's unfinished task instances are set to
    ``failed`` in the metadata database (what that heartbeat-timeout handling does). Then ``dag.test()``
    runs again for the same logical date: it finds the same run (run id from the logical date), clears
    its task instances (``SerializedDAG.clear_dags``, the "Clear" of the whole run) and runs every task
    again, each continuing from what is already written.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    q = s.optimization_queue
    when = dt.datetime.now(dt.UTC).replace(microsecond=0)
    log, stuck = tmp_path / "child.log", tmp_path / "stuck"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD_RUN.format(root=str(ROOT), when=when.isoformat(), stuck=str(stuck)),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(
                lambda: stuck.exists() or child.poll() is not None,
                timeout=90,
                what="the first optimizer chunks",
            )
            assert child.poll() is None, f"the run ended before it was killed:\n{log.read_text()[-3000:]}"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    sequences = rows(amop.engine, select(q.c.Id, q.c.RunEndTime).where(*SEQUENCE_QUEUES))
    done_before = {r.Id: r.RunEndTime for r in sequences if r.RunEndTime is not None}
    assert 0 < len(done_before) < reference["queues"]["sequence"], "not killed mid-optimization"
    with create_session() as session:
        (run,) = session.scalars(
            select(DagRun).where(DagRun.dag_id == ACME.dag_id, DagRun.logical_date == when)
        ).all()
        assert run.state == "running"
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == ACME.dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        running = [(ti.task_id, ti.map_index) for ti in tis if ti.state == TaskInstanceState.RUNNING]
        assert [task for task, _ in running] == ["optimize"], running
        for ti in tis:  # the scheduler's verdict on a task without heartbeat
            if ti.state == TaskInstanceState.RUNNING:
                ti.state = TaskInstanceState.FAILED
        run_id = run.run_id

    resumed = load_dag().test(logical_date=when, run_after=when, run_conf=CONF)

    assert resumed.run_id == run_id and resumed.state == "success", task_states(resumed)
    assert_same_end_state(amop.engine, reference)
    after = dict(rows(amop.engine, select(q.c.Id, q.c.RunEndTime).where(q.c.Id.in_(list(done_before)))))
    assert after == done_before, "queues finished before the kill were evaluated again"


# -- 2. the time budget ------------------------------------------------------------------------------


@pytest.mark.parametrize("amop_url", ["sqlite"], indirect=True)
def test_optimizer_interrupted_by_its_time_budget_ends_as_the_reference(amop, reference, monkeypatch):
    """A 1 s budget: the optimizer batches checkpoint and defer several times, then finish.

    Deferrals are counted from the batches' unfinished returns: under ``dag.test()`` (Airflow 3.3.2,
    ``_run_task``) the resumed call gets ``{"event": ...}`` instead of the deferral's kwargs, so the
    ``resumes`` figure of the operator's XCom stays 0 there (the triggerer merges them in a deployment).
    """
    calls = counted_batches(monkeypatch)
    slow_evaluation(monkeypatch)
    dr = short_budget_dag().test(run_conf=CONF)

    assert dr.state == "success", task_states(dr)
    assert_same_end_state(amop.engine, reference)
    deferrals = sum(not progress.done for _, _, progress in calls)
    assert deferrals >= 3, calls
    assert sum(p.evaluated for _, _, p in calls) == reference["queues"]["sequence"], "a queue evaluated twice"
    assert len(optimize_results(dr)) == len({(g, start) for g, start, _ in calls})
    assert rows(amop.engine, select(func.count()).select_from(s.checkpoint))[0][0] == 0, "checkpoints left"


def short_budget_dag():
    """The DAG with a 1 s optimizer budget: every batch checkpoints (then defers) within a second.

    Checkpoint writes after each chunk are throttled (one per 2 s), so at the full budget a batch of this
    fleet may finish before writing any.
    """
    dag = load_dag()
    dag.task_dict["optimize"].partial_kwargs["time_budget_seconds"] = 1
    return dag


# -- 3. Redis down -----------------------------------------------------------------------------------


@pytest.mark.parametrize("amop_url", ["sqlite"], indirect=True)
def test_redis_down_before_the_run_runs_database_only(amop, reference, monkeypatch):
    """``redis_default`` points at a port nobody listens on: degraded mode, checkpoints in the database.

    The cache check finds Redis configured but unreachable: one configuration-issue e-mail.
    """
    from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore
    from include.carrier_optimization.reporting.notify import CACHE_ISSUE_SUBJECT

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", f"redis://127.0.0.1:{free_port()}/0")
    put, in_database = DatabaseCheckpointStore.put, []
    monkeypatch.setattr(
        DatabaseCheckpointStore,
        "put",
        lambda self, key, value, **kw: in_database.append(key) or put(self, key, value, **kw),
    )
    slow_evaluation(monkeypatch)  # the 1 s budget runs out, so the optimizer checkpoints and defers
    dr = short_budget_dag().test(run_conf=CONF)

    assert dr.state == "success", task_states(dr)
    assert_same_end_state(amop.engine, reference)
    assert any("optimize" in key for key in in_database), in_database
    alerts = [
        e for e in amop.emails() if e["subject"] == CACHE_ISSUE_SUBJECT.format(ou="Carrier Optimization")
    ]
    assert len(alerts) == 1, [e["subject"] for e in amop.emails()]


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of this test on a free port (no persistence); ``.kill()`` stops it at once."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=1)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    wait_until(answers, timeout=10, what="redis-server")
    process.url = f"redis://127.0.0.1:{port}/0"
    yield process
    client.close()
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.mark.parametrize("amop_url", ["sqlite"], indirect=True)
@pytest.mark.integration("redis")
def test_redis_lost_during_the_run_degrades_to_the_database(amop, reference, monkeypatch, redis_server):
    """Redis answers at the start and dies (SIGKILL) once the first optimizer checkpoint is in it.

    A thread watches the checkpoint writes and kills this test's own redis-server; the stores of the
    running and later optimizer tasks find it gone and continue on the database alone.
    """
    from include.carrier_optimization.amop.redis_checkpoints import (
        FallbackCheckpointStore,
        RedisCheckpointStore,
    )

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_server.url)
    put, in_redis = RedisCheckpointStore.put, []
    monkeypatch.setattr(
        RedisCheckpointStore,
        "put",
        lambda self, key, value, **kw: (put(self, key, value, **kw), in_redis.append(key)),
    )
    degrade, degraded = FallbackCheckpointStore._degrade, []
    monkeypatch.setattr(
        FallbackCheckpointStore,
        "_degrade",
        lambda self, error: (degraded.append(error), degrade(self, error)),
    )
    killed = threading.Event()

    def kill_redis_once_optimizing():
        wait_until(lambda: in_redis, timeout=120, what="the first optimizer checkpoint in Redis")
        redis_server.kill()
        redis_server.wait(timeout=10)
        killed.set()

    watcher = threading.Thread(target=kill_redis_once_optimizing, daemon=True)
    watcher.start()
    slow_evaluation(monkeypatch)  # the 1 s budget runs out: checkpoints are written while optimizing
    dr = short_budget_dag().test(run_conf=CONF)
    watcher.join(timeout=5)

    assert killed.is_set(), "Redis was not stopped during the run"
    assert dr.state == "success", task_states(dr)
    assert_same_end_state(amop.engine, reference)
    assert in_redis, "no checkpoint reached Redis before it stopped"
    assert degraded, "the checkpoint store never noticed Redis was gone"
    assert rows(amop.engine, select(func.count()).select_from(s.checkpoint))[0][0] == 0, "checkpoints left"


# -- 4. the database connection lost while a batch writes ---------------------------------------------


@pytest.mark.parametrize("amop_url", ["postgres"], indirect=True)
@pytest.mark.integration("postgres")
def test_database_connection_lost_mid_batch_is_retried_to_the_reference(amop, reference, monkeypatch):
    """PostgreSQL ends the writing backend (``pg_terminate_backend``) once in a queue batch and once in
    an optimizer chunk; each task fails, Airflow retries it (the DAG's ``retries=2``, ``retry_delay``
    lowered to 1 s on this copy) and the retry continues from what was committed.

    The backend is terminated from a second connection at a fixed point of the write (before the queue
    rate plans of the first queue batch, before the record of the third optimizer chunk), so the
    failure lands inside the transaction every time.
    """
    import psycopg

    from include.carrier_optimization.amop import queues
    from include.carrier_optimization.pipeline import optimizer

    terminated: list[tuple[str, int]] = []

    def terminate(conn, where: str) -> None:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with psycopg.connect(amop.url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        terminated.append((where, pid))

    bulk_insert, record_if_better, records = queues.bulk_insert, optimizer.record_if_better, []

    def bulk_insert_cut(conn, table, *args, **kwargs):
        if table is s.queue_rate_plan and "write_queues" not in dict(terminated):
            terminate(conn, "write_queues")
        return bulk_insert(conn, table, *args, **kwargs)

    def record_if_better_cut(conn, *args, **kwargs):
        records.append(1)
        if len(records) == 3:
            terminate(conn, "optimize")
        return record_if_better(conn, *args, **kwargs)

    monkeypatch.setattr(queues, "bulk_insert", bulk_insert_cut)
    monkeypatch.setattr(optimizer, "record_if_better", record_if_better_cut)
    dr = load_dag(retries=None, retry_delay=1).test(run_conf=CONF)

    assert [where for where, _ in terminated] == ["write_queues", "optimize"]
    assert dr.state == "success", task_states(dr)
    assert_same_end_state(amop.engine, reference)
    tries = try_numbers(dr)
    retried = sorted(key for key, n in tries.items() if n > 1)
    assert [task for task, _ in retried] == ["optimize", "write_queues"], tries
    assert all(tries[key] == 2 for key in retried)


def try_numbers(dr) -> dict[tuple[str, int], int]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.try_number).where(
                TaskInstance.dag_id == dr.dag_id, TaskInstance.run_id == dr.run_id
            )
        ).all()
    return {(task, index): n for task, index, n in found}


# -- 5. a duplicated continuation message --------------------------------------------------------------


@pytest.mark.parametrize("amop_url", ["sqlite"], indirect=True)
@pytest.mark.integration("sqs")
def test_duplicated_sync_completion_does_no_harm(
    amop, reference, sqs_client, sqs_endpoint, tenant_queues, monkeypatch
):
    """The device-sync worker publishes the session's completion twice.

    The run takes one (its sync wait); the other is released and stays on the request queue. The
    watcher takes it (its session no longer waits for a sync) and a second run finds the session
    finished: its session step skips (no e-mail), so nothing after it runs (no queue evaluated, no row
    rewritten, no second report), and the message is consumed. The end state stays the reference's.
    """
    from include.carrier_optimization.reporting.notify import RESULTS_SUBJECT
    from tests.dags.test_optimization_dag import DeviceSyncWorker, drain, send_request, text

    def publish_twice(message):  # the worker publishes the completion after this: two in all
        send_request(
            sqs_client,
            tenant_queues["request"],
            bill_period_id=int(text(message, "BillPeriodId")),
            session_id=int(text(message, "OptimizationSessionId")),
            has_synced=True,
        )

    with DeviceSyncWorker(sqs_endpoint, tenant_queues, on_sync=publish_twice) as worker:
        first = load_dag().test(run_conf={**CONF, "has_synced": False})

    assert first.state == "success", task_states(first)
    assert len(worker.requests) == 1
    assert_same_end_state(amop.engine, reference)
    session_id = rows(amop.engine, select(s.optimization_session.c.Id))[0][0]
    waiting = int(
        sqs_client.get_queue_attributes(
            QueueUrl=tenant_queues["request"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    assert waiting == 1, "the duplicate completion should be left on the request queue"
    before = {t.name: rows(amop.engine, select(t)) for t in RUN_TABLES}
    results_mail = RESULTS_SUBJECT.format(tenant=ACME.name)
    assert [e["subject"] for e in amop.emails()].count(results_mail) == 1

    calls = counted_batches(monkeypatch)
    dag = load_dag()
    take_from_queue(dag, sqs_queue=tenant_queues["request"], tenant_id=ACME.tenant_id)
    second = dag.test(run_conf=CONF)  # as if the queue's watcher had started it with the duplicate

    assert drain(sqs_client, tenant_queues["request"]) == [], "the duplicate was not taken"
    states = task_states(second)
    assert second.state == "success", states
    assert states["session"] == states["count"] == states["winners"] == states["report"] == {"skipped"}
    taken = xcom(second, "request")
    assert taken["session_id"] == session_id and taken["has_synced"] is True
    assert sum(p.evaluated for _, _, p in calls) == 0, "the finished session was optimized again"
    assert_same_end_state(amop.engine, reference)
    after = {t.name: rows(amop.engine, select(t)) for t in RUN_TABLES}
    changed = [name for name in before if after[name] != before[name]]
    assert not changed, f"the duplicate's run rewrote {', '.join(changed)}"
    assert [e["subject"] for e in amop.emails()].count(results_mail) == 1, "a second report was sent"


RUN_TABLES = (
    s.optimization_session,
    s.optimization_instance,
    s.optimization_queue,
    s.queue_rate_plan,
    s.device_result,
    s.device_result_staging,
    s.comm_group_summary,
)


def xcom(dr, task_id: str, map_index: int = -1):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.execute(
            select(XComModel.value).where(
                XComModel.dag_id == dr.dag_id,
                XComModel.run_id == dr.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == "return_value",
            )
        ).scalar_one_or_none()
    import json

    return json.loads(value) if isinstance(value, (str, bytes)) else value

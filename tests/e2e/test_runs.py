"""Runs of the tenant DAG on a real Airflow: triggered through the REST API, killed, cleared, re-run.

Scenarios (issue "The product on a running Airflow"): a. a run triggered through the REST API with the
form's fields; d. one ``optimize`` map index SIGKILLed until its retries are exhausted, then that one
index cleared through the REST API; e. a Celery worker killed mid-run. Each ends in the AMOP end state
of the deployment's uninterrupted reference run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.queues import KIND_SEQUENCE
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.reporting.notify import FAILURE_SUBJECT, RESULTS_SUBJECT
from scripts.airflow_api import wait_until
from tests.dags.test_fault_injection import assert_same_end_state
from tests.e2e.conftest import FORM, RUN_TIMEOUT, SIMS

pytestmark = pytest.mark.e2e

SUCCESS, ERRORS = int(OptimizationStatus.CompleteWithSuccess), int(OptimizationStatus.CompleteWithErrors)


def subjects(deployment) -> list[str]:
    return [m["subject"] for m in deployment.emails()]


def results_subject(deployment) -> str:
    tenant = next(t for t in deployment.tenants if t.slug == "acme")
    return RESULTS_SUBJECT.format(tenant=tenant.name)


def instance_status(deployment) -> int:
    from sqlalchemy import select

    with deployment.engine().connect() as conn:
        (status,) = conn.execute(select(s.optimization_instance.c.RunStatusId)).one()
    return int(status)


def tis(deployment, run_id: str) -> dict[tuple[str, int], dict]:
    return {
        (t["task_id"], t["map_index"]): t for t in deployment.api.task_instances(deployment.dag_id, run_id)
    }


def test_a_run_triggered_through_the_rest_api_optimizes_every_comm_group(deployment, reference):
    run, state = reference["run"], reference["state"]
    assert run["run_type"] == "manual" and run["conf"]["engine"] == "legacy"
    states = {
        t["task_id"]: t["state"] for t in deployment.api.task_instances(deployment.dag_id, run["dag_run_id"])
    }
    assert states["report"] == "success" and states["winners"] == "success"
    assert state["status"] == SUCCESS and state["devices"] == SIMS and state["results"] == SIMS
    assert state["winners"] and all(cost > 0 for _, cost in state["winners"].values())
    assert [m["subject"] for m in reference["emails"]].count(results_subject(deployment)) == 1


def running_pid(deployment, run_id: str, key: tuple[str, int], *, tries: int) -> int:
    """Wait until the task instance ``key`` runs its try ``tries`` with a process id; return that id."""

    def running():
        ti = tis(deployment, run_id).get(key)
        if ti and ti["state"] in ("success", "failed"):
            pytest.fail(f"{key} ended {ti['state']} before it could be killed (try {ti['try_number']})")
        return ti and ti["state"] == "running" and ti["try_number"] == tries and ti.get("pid") and ti["pid"]

    return wait_until(running, timeout=RUN_TIMEOUT, what=f"{key} try {tries} to run", interval=0.1)


def batch_of(deployment, run_id: str, map_index: int) -> dict:
    """The queue batch ``{"comm_group_id", "start", "stop"}`` of one ``optimize`` index (REST API XCom)."""
    return deployment.api.xcom(deployment.dag_id, run_id, "batches_of")[map_index]


@contextlib.contextmanager
def queues_locked(deployment, batch: dict) -> Iterator[None]:
    """Hold row locks on the batch's sequence queues: its optimize task waits at its first checkpoint.

    The optimize batches of the e2e fleet take tenths of a second, and a retry only has the work left
    after its killed try's checkpoints, so a try could end before the test sees it running. A checkpoint
    finishes its queues in one transaction, which waits here until the lock is released (rolled back).
    """
    from sqlalchemy import and_, select

    q = s.optimization_queue
    rows = and_(
        q.c.CommPlanGroupId == batch["comm_group_id"],
        q.c.QueueKind == KIND_SEQUENCE,
        q.c.SequenceIndex >= batch["start"],
        q.c.SequenceIndex < batch["stop"],
    )
    with deployment.engine().connect() as conn, conn.begin() as transaction:
        # FOR NO KEY UPDATE: blocks the checkpoint's update, not inserts that reference the queues. The
        # batch's queues are written in one transaction, before its optimize task can be scheduled.
        wait_until(
            lambda: (
                len(conn.execute(select(q.c.Id).where(rows).with_for_update(key_share=True)).all())
                == batch["stop"] - batch["start"]
            ),
            timeout=RUN_TIMEOUT,
            what=f"the queues of {batch} to be written",
            interval=0.05,
        )
        yield
        transaction.rollback()


def test_an_optimize_index_killed_until_its_retries_run_out_then_cleared_ends_as_the_reference(
    deployment, reference
):
    deployment.reset_amop()
    api, dag_id = deployment.api, deployment.dag_id
    run_id = api.trigger(dag_id, FORM)["dag_run_id"]
    count_done = wait_until(
        lambda: tis(deployment, run_id).get(("optimize", 0)) and tis(deployment, run_id),
        timeout=RUN_TIMEOUT,
        what="the optimize tasks to be expanded",
    )
    key = ("optimize", max(i for t, i in count_done if t == "optimize"))  # the last index starts last
    retries = 2
    with queues_locked(deployment, batch_of(deployment, run_id, key[1])):
        # each try blocks at its first checkpoint, so it is still running when it is killed
        for attempt in range(1, retries + 2):
            pid = running_pid(deployment, run_id, key, tries=attempt)
            time.sleep(0.3)
            os.kill(pid, signal.SIGKILL)
        run = api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    killed = tis(deployment, run_id)[key]
    assert run["state"] == "failed" and killed["state"] == "failed" and killed["try_number"] == retries + 1
    alert = FAILURE_SUBJECT.format(dag_id=dag_id)
    wait_until(  # the dag-processor runs the callbacks of a killed task, a little after the run ends
        lambda: instance_status(deployment) == ERRORS and alert in subjects(deployment),
        timeout=120,
        what="the instance to end CompleteWithErrors with an alert",
    )
    time.sleep(10)  # a second alert would come within seconds
    assert subjects(deployment).count(alert) == 1
    assert results_subject(deployment) not in subjects(deployment)

    cleared = api.clear(dag_id, run_id, [list(key)], downstream=True)
    assert {(t["task_id"], t["map_index"]) for t in cleared} >= {key, ("winners", -1), ("report", -1)}
    assert len([t for t in cleared if t["task_id"] == "optimize"]) == 1, "only the one index is cleared"
    run = api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", tis(deployment, run_id)
    assert_same_end_state(deployment.engine(), reference["state"], devices=SIMS)
    assert subjects(deployment).count(results_subject(deployment)) == 1
    assert subjects(deployment).count(FAILURE_SUBJECT.format(dag_id=dag_id)) == 1


def descendant_of(pid: int, ancestor: int) -> bool:
    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.NoSuchProcess:
        return False


#: Tasks whose uninterrupted end state is not "success" in the e2e runs.
ENDS_AS = {"sync_request": "skipped"}


def frozen_victims(airflow, on_worker_one, attempts: int = 20) -> list[dict]:
    """Stop worker-1 (SIGSTOP to its group) while it runs a task; the tasks it was running, frozen.

    A task seen running may end before a kill lands (e2e tasks take tenths of a second): stopped first,
    no task of the worker can end or report any more, so those seen running after the stop are exactly
    the ones the kill interrupts. If none is left running, the worker resumes and we wait for another.
    """
    for _ in range(attempts):
        wait_until(on_worker_one, timeout=RUN_TIMEOUT, what="a task running on worker-1", interval=0.1)
        airflow.signal("worker-1", signal.SIGSTOP)
        if victims := on_worker_one():
            return victims
        airflow.signal("worker-1", signal.SIGCONT)
    raise AssertionError(f"no task of worker-1 was still running when stopped, {attempts} times")


def test_a_celery_worker_killed_mid_run_has_its_tasks_rerun_on_the_other_worker(deployment, reference):
    if deployment.executor != "CeleryExecutor":
        pytest.skip("one worker to kill needs the CeleryExecutor")
    deployment.reset_amop()
    api, dag_id, airflow = deployment.api, deployment.dag_id, deployment.airflow
    run_id = api.trigger(dag_id, FORM)["dag_run_id"]
    worker = airflow.pids["worker-1"]

    def on_worker_one():
        running = [
            t
            for t in tis(deployment, run_id).values()
            if t["state"] == "running" and t.get("pid") and descendant_of(t["pid"], worker)
        ]
        return running

    victims = frozen_victims(airflow, on_worker_one)
    airflow.signal("worker-1")  # SIGKILL to the worker and its task processes
    run = api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", tis(deployment, run_id)
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
    final = tis(deployment, run_id)
    for victim in victims:
        rerun = final[(victim["task_id"], victim["map_index"])]
        # ended as in an uninterrupted run: `sync_request` skips (the form says the fleet has synced)
        assert rerun["state"] == ENDS_AS.get(victim["task_id"], "success"), rerun
        assert rerun["try_number"] > victim["try_number"], rerun
    assert_same_end_state(deployment.engine(), reference["state"], devices=SIMS)
    assert subjects(deployment).count(results_subject(deployment)) == 1
    airflow.stop(["worker-1"])
    airflow.start(["worker-1"])  # the deployment has two workers again for the next scenario

"""A real Airflow for the end-to-end tests, started through the same code as `make airflow`.

One deployment per executor (LocalExecutor, then CeleryExecutor with two workers): api-server,
scheduler, dag-processor, triggerer, the local SQS endpoint and the carrier simulators, each a process
of its own, with the metadata database and the AMOP database on the local PostgreSQL. The tests drive it
only from outside: the REST API, boto3 on the SQS endpoint, signals to process ids, and the AMOP tables.

Each scenario starts from the same seeded AMOP data (:meth:`E2EDeployment.reset_amop`), so its end state
can be compared with the uninterrupted reference run of the same deployment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from include.carrier_optimization.reporting.notify import read_outbox
from scripts.airflow_api import AirflowApi
from scripts.local_airflow import (
    POSTGRES,
    WINDOW_DAG_ID,
    LocalAirflow,
    create_database,
    drop_database,
    free_port,
)
from scripts.local_services import TENANTS_FILE, seed_amop
from tests.conftest import IN_CI

pytestmark = pytest.mark.e2e

TENANT = "acme"
PROVIDER_ID = 101
#: SIMs per service provider: small, so a run takes about a minute on two cores.
SIMS = 400
#: The run's request as the trigger form sends it. The legacy engine is deterministic whatever the order
#: in which batches run, so an interrupted run must reach the reference's numbers to the cent.
FORM = {
    "service_provider_id": PROVIDER_ID,
    "billing_period_id": None,
    "portal_type_id": 0,
    "has_synced": True,
    "session_id": None,
    "engine": "legacy",
    "batch_size": 2500,
    "queues_per_instance": 5,
    "time_budget_seconds": 600,
}
RUN_TIMEOUT = 600
#: Faster failure detection than production's, so a killed worker's tasks are retried within a minute.
SETTINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
}
EXECUTORS = {"LocalExecutor": (6, "local"), "CeleryExecutor": (8, "celery")}
#: Figures the scenarios measure (latencies, suite time), printed at the end of the test session.
FIGURES: list[str] = []


def record_figure(text: str) -> None:
    """Keep one measured figure for the end-of-session summary."""
    FIGURES.append(text)


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("end-to-end figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@dataclass
class E2EDeployment:
    """A running Airflow under test, with what the tests need to reach around it."""

    airflow: LocalAirflow
    api: AirflowApi
    amop_url: str
    tenants: list

    @property
    def dag_id(self) -> str:
        return f"carrier_optimization__{TENANT}"

    @property
    def executor(self) -> str:
        return self.airflow.executor

    def engine(self):
        from include.carrier_optimization.amop.storage import make_engine

        return make_engine(self.amop_url)

    def reset_amop(self) -> None:
        """The seeded AMOP data again, an empty device cache and an empty outbox."""
        import datetime as dt

        import redis

        seed_amop(self.amop_url, self.tenants, sims=SIMS, seed=self.airflow.seed, now=dt.datetime.now())
        client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{self.airflow.redis_db + 1}")
        client.flushdb()
        client.close()
        shutil.rmtree(self.airflow.outbox, ignore_errors=True)
        self.airflow.outbox.mkdir()

    def emails(self) -> list[dict[str, str]]:
        """The outbox's messages, oldest first, as ``{subject, to, body}``."""
        return read_outbox(self.airflow.outbox)

    def run_to_end(self, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        """Trigger a manual run with ``conf`` (default: the form) and wait until it ends."""
        run = self.api.trigger(self.dag_id, conf if conf is not None else FORM)
        return self.api.wait_for_run(self.dag_id, run["dag_run_id"], timeout=RUN_TIMEOUT)

    def process_log(self, name: str) -> str:
        path = self.airflow.home / "process-logs" / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def running_deployment(
    tmp_path_factory,
    *,
    executor: str,
    redis_db: int,
    short: str,
    settings: dict[str, str],
    before_start: Callable[[LocalAirflow], None] | None = None,
    label: str | None = None,
) -> Iterator[E2EDeployment]:
    """A running Airflow on throwaway metadata and AMOP databases, stopped by process id at the end.

    ``before_start(airflow)`` runs once the metadata database is migrated, before any process starts
    (e.g. to create the sign-in users of another auth manager). ``label`` names it in the figures.
    """
    import psycopg

    from include.carrier_optimization.config.tenants import load_tenants

    try:
        psycopg.connect(POSTGRES, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        _unavailable(f"PostgreSQL is not reachable ({error})")
    label = label or executor
    tag = f"{short}_{uuid.uuid4().hex[:6]}"
    metadata_db, amop_db = f"carrier_opt_e2e_{tag}", f"carrier_opt_e2e_amop_{tag}"
    create_database(amop_db, drop=True)
    amop_url = POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{amop_db}"
    airflow = LocalAirflow(
        home=Path(tmp_path_factory.mktemp(f"airflow_{short}")),
        executor=executor,
        port=free_port(),
        metadata_db=metadata_db,
        amop_url=amop_url,
        redis_db=redis_db,
        sims=SIMS,
        settings=settings,
    )
    started = time.monotonic()
    try:
        airflow.prepare(fresh=True)
        if before_start is not None:
            before_start(airflow)
        airflow.start()
        api = airflow.wait_ready(keep_paused=(WINDOW_DAG_ID,))
        record_figure(f"[{label}] Airflow up in {time.monotonic() - started:.0f} s")
        yield E2EDeployment(airflow, api, amop_url, load_tenants(TENANTS_FILE))
    finally:
        airflow.stop()
        record_figure(f"[{label}] deployment's whole time {time.monotonic() - started:.0f} s")
        if not os.environ.get("CARRIER_OPT_E2E_KEEP"):  # keep them to look at a failure
            drop_database(metadata_db)
            drop_database(amop_db)


@pytest.fixture(scope="session", params=list(EXECUTORS))
def deployment(request, tmp_path_factory):
    """A running Airflow with ``request.param`` as executor, stopped by process id afterwards."""
    redis_db, short = EXECUTORS[request.param]
    with running_deployment(
        tmp_path_factory, executor=request.param, redis_db=redis_db, short=short, settings=SETTINGS
    ) as running:
        yield running


@pytest.fixture(scope="session")
def reference(deployment) -> dict[str, Any]:
    """Scenario a's uninterrupted run on the seeded data: its run and the AMOP end state it leaves."""
    from tests.dags.test_fault_injection import end_state

    deployment.reset_amop()
    run = deployment.run_to_end()
    assert run["state"] == "success", deployment.api.task_instances(deployment.dag_id, run["dag_run_id"])
    return {"run": run, "state": end_state(deployment.engine(), devices=SIMS), "emails": deployment.emails()}

"""Fixtures of the whole-DAG runs: a fresh AMOP database with a generated tenant, an outbox, the DAG.

Each test gets its own AMOP database (an SQLite file, or the session's PostgreSQL database with the
schema dropped and created again), its own e-mail outbox, and a DAG object loaded freshly from
``dags/carrier_optimization.py`` (so a test may lower poke intervals or retries on its copy only).
Connections the package would use (``amop_db``, ``amop_api``, ``redis_default``, ``smtp_notifications``)
are removed from the environment: the runs use the embedded defaults unless a test sets them.
"""

from __future__ import annotations

import datetime as dt
import json
import runpy
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from include.carrier_optimization.config.tenants import load_tenants
from include.carrier_optimization.core.fleet import Fleet, TenantSpec, generate_fleet
from include.carrier_optimization.reporting.notify import read_outbox
from scripts.local_services import take_from_queue  # noqa: F401 (the DAG tests' stand-in of the watcher)

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "carrier_optimization.py"
TENANTS = {t.slug: t for t in load_tenants(ROOT / "dags" / "tenants.yaml")}
ACME = TENANTS["acme"]
#: The generated fleet matches the first provider of tenant ``acme`` in ``tenants.yaml``.
ACME_SPEC = TenantSpec(
    tenant_id=ACME.tenant_id,
    name=ACME.slug,
    service_provider_id=ACME.service_providers[0].id,
    service_provider_name=ACME.service_providers[0].name,
    uses_proration=ACME.service_providers[0].uses_proration,
    start_hour=ACME.service_providers[0].start_hour,
)
FLEET_SIZE = 1500
FLEET_SEED = 4
PACKAGE_CONNECTIONS = (
    "AIRFLOW_CONN_AMOP_DB",
    "AIRFLOW_CONN_AMOP_API",
    "AIRFLOW_CONN_REDIS_DEFAULT",
    "AIRFLOW_CONN_SMTP_NOTIFICATIONS",
)


def current_period_end(now: dt.datetime | None = None) -> dt.datetime:
    """A billing period end a few days ahead, so the generated period is the provider's current one."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return (now + dt.timedelta(days=3)).replace(hour=23, minute=59, second=59, microsecond=0)


@dataclass
class AmopDatabase:
    """One test's AMOP database with the generated tenant written into it."""

    url: str
    engine: Any
    fleet: Fleet
    billing_period_id: int
    outbox: Path

    def emails(self) -> list[dict[str, Any]]:
        """The outbox's messages (oldest first) as ``{subject, to, body}``."""
        return read_outbox(self.outbox)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.integration("postgres")),
    ]
)
def amop_url(request, tmp_path) -> str:
    """URL of the test's AMOP database: an SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'amop.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def amop(amop_url, tmp_path, monkeypatch, airflow_db) -> AmopDatabase:
    """A fresh AMOP schema holding a generated fleet of tenant ``acme``; env points the DAG at it."""
    from include.carrier_optimization.amop.repository import AmopRepository
    from include.carrier_optimization.amop.schema import create_schema, drop_schema
    from include.carrier_optimization.amop.storage import make_engine

    engine = make_engine(amop_url)
    drop_schema(engine)
    create_schema(engine)
    fleet = generate_fleet(FLEET_SIZE, seed=FLEET_SEED, tenant=ACME_SPEC, period_end=current_period_end())
    period_id = AmopRepository(engine).write_fleet(fleet)
    outbox = tmp_path / "outbox"
    monkeypatch.setenv("CARRIER_OPT_DB_URL", amop_url)
    monkeypatch.setenv("CARRIER_OPT_OUTBOX", str(outbox))
    for name in PACKAGE_CONNECTIONS:
        monkeypatch.delenv(name, raising=False)
    yield AmopDatabase(amop_url, engine, fleet, period_id, outbox)
    engine.dispose()


@pytest.fixture
def load_dag():
    """Load a tenant's DAG freshly from the DAG file; sensors poke fast and tasks fail without retries.

    ``load_dag(slug="acme", retries=0, poke_interval=0.5)`` returns the DAG object. Retries are off by
    default because ``dag.test()`` would wait out the 30 s retry delay; pass ``retries=None`` to keep
    the DAG's own.
    """

    def load(slug: str = "acme", *, retries: int | None = 0, poke_interval: float = 0.5):
        namespace = runpy.run_path(str(DAG_FILE))
        dag = namespace[TENANTS[slug].dag_id]
        for task in dag.tasks:
            if retries is not None:
                task.retries = retries
            if hasattr(task, "poke_interval"):
                task.poke_interval = poke_interval
        return dag

    return load


@pytest.fixture
def tenant_queues(sqs_client):
    """Empty request, device-sync and dead-letter queues of tenant ``acme`` (their URLs by role)."""
    urls = {}
    for role, name in (
        ("request", ACME.request_queue),
        ("device_sync", ACME.device_sync_queue),
        ("dead_letter", ACME.dead_letter_queue),
    ):
        try:  # a fresh queue: PurgeQueue is refused more than once a minute
            sqs_client.delete_queue(QueueUrl=sqs_client.get_queue_url(QueueName=name)["QueueUrl"])
        except sqs_client.exceptions.QueueDoesNotExist:
            pass
        urls[role] = sqs_client.create_queue(QueueName=name)["QueueUrl"]
    return urls


class _Capture(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server API)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.posts.append({"path": self.path, "json": json.loads(body or b"null")})
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format, *args):  # silence the per-request stderr lines
        return


@pytest.fixture
def amop_api(monkeypatch):
    """A local AMOP 2.0 API capturing POSTs; ``amop_api(status=500)`` makes it fail every call.

    Sets the ``amop_api`` HTTP connection to it and returns the list the POSTs are appended to.
    """
    servers = []

    def start(status: int = 200) -> list[dict[str, Any]]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
        server.posts = []
        server.status = status
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setenv(
            "AIRFLOW_CONN_AMOP_API",
            json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": server.server_port, "schema": "http"}
            ),
        )
        return server.posts

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def slow_evaluation(monkeypatch, seconds: float = 0.01) -> None:
    """Each chunk's evaluation takes ``seconds`` longer, so a 1 s budget runs out however fast the machine.

    Without commits per chunk a batch of this fleet can finish within one second, never deferring.
    """
    from include.carrier_optimization.core.engines import legacy

    original = legacy.evaluate_sequences

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(legacy, "evaluate_sequences", slow)

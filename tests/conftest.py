"""Shared fixtures: real PostgreSQL and Redis on their standard ports, a local SQS endpoint, an Airflow home.

Services are real. Outside CI a missing service skips its tests; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_TEST_HOME = Path(os.environ.get("CARRIER_OPT_AIRFLOW_TEST_HOME", ROOT / ".airflow_test_home"))

# Airflow reads its configuration at import: set it before anything imports airflow.
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_TEST_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ.setdefault("AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP", ".*")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
# The explicit local mode (include/carrier_optimization/config/local_mode.py): embedded defaults for missing
# connections. Tests of the production behaviour switch it off with monkeypatch.
os.environ["CARRIER_OPT_LOCAL_MODE"] = "true"
for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(key, value)

POSTGRES_ADMIN_URL = os.environ.get(
    "CARRIER_OPT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CARRIER_OPT_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); start it (see README) or run .ci/run"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def production_mode(monkeypatch):
    """``CARRIER_OPT_LOCAL_MODE`` off for one test: what a deployed Airflow does."""
    monkeypatch.delenv("CARRIER_OPT_LOCAL_MODE")


def not_defined(conn_id: str, role: str) -> str:
    """``pytest.raises(match=...)`` of the error for a connection missing outside local mode."""
    return rf"^Connection '{conn_id}' \({role}\) is not defined"


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_instance(engine, request, *, run_key: str, now):
    """Open a session for ``request`` and prepare its optimal-engine instance; return ``(session, plan)``."""
    from include.carrier_optimization import pipeline

    session = pipeline.open_session(engine, request, run_key=run_key, now=now)
    plan = pipeline.prepare_instance(
        engine,
        session_id=session["session_id"],
        request=request,
        batch_size=100,
        engine_name="optimal",
        now=now,
    )
    return session, plan


def finish_instance(engine, session: dict, plan):
    """Optimize every group of ``plan``, pick the winners, store the report, mark the session 100 %.

    Returns the summary of ``select_winners``.
    """
    from include.carrier_optimization import pipeline
    from include.carrier_optimization.amop.result_files import store_result_file
    from include.carrier_optimization.core.engines.optimal import solve_optimal
    from include.carrier_optimization.reporting.report import build_report

    for group in plan.groups:
        pipeline.run_engine_for_group(engine, comm_group_id=group["comm_group_id"], solve=solve_optimal)
    summary = pipeline.select_winners(engine, instance_id=plan.instance_id)
    store_result_file(engine, plan.instance_id, build_report(engine, plan.instance_id).xlsx)
    pipeline.set_progress(engine, session["session_id"], 100)
    return summary


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a throwaway PostgreSQL database created for this test session and dropped after it."""
    import psycopg

    admin = POSTGRES_ADMIN_URL
    name = f"carrier_opt_test_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        _unavailable("PostgreSQL", error)
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of an embedded SQLite database file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'amop.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_engine(request):
    """An engine with a freshly created AMOP schema, once on SQLite and once on PostgreSQL."""
    from include.carrier_optimization.amop.schema import create_schema, drop_schema
    from include.carrier_optimization.amop.storage import make_engine

    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    engine = make_engine(url)
    drop_schema(engine)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def amop(monkeypatch, tmp_path):
    """An AMOP SQLite database with the schema; the hooks' embedded default (no ``amop_db`` connection)."""
    from include.carrier_optimization.amop.schema import create_schema
    from include.carrier_optimization.amop.storage import make_engine

    url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
    monkeypatch.setenv("CARRIER_OPT_DB_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_AMOP_DB", raising=False)
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_client():
    """A client of the real local Redis on a test database, flushed before and after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        _unavailable("Redis", error)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def sqs_endpoint():
    """A local SQS endpoint (moto server in a thread) and an ``aws_default`` connection pointing at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get("AIRFLOW_CONN_AWS_DEFAULT")
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = (
        '{"conn_type": "aws", "login": "testing", "password": "testing", '
        f'"extra": {{"region_name": "us-east-1", "endpoint_url": "{endpoint}"}}}}'
    )
    yield endpoint
    server.stop()
    if previous is None:
        os.environ.pop("AIRFLOW_CONN_AWS_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = previous


@pytest.fixture
def sqs_client(sqs_endpoint):
    """A boto3 SQS client on the local endpoint."""
    import boto3

    return boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated throwaway Airflow metadata database (SQLite) under ``.airflow_test_home``."""
    AIRFLOW_TEST_HOME.mkdir(exist_ok=True)
    from airflow.utils import db

    db.resetdb()
    yield AIRFLOW_TEST_HOME

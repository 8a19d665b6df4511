"""Operators of the tenant DAG: construction without connections, templated values, the steps on SQLite."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet
from include.carrier_optimization.reporting.notify import ALREADY_RUNNING_SUBJECT, CACHE_ISSUE_SUBJECT
from plugins.compat import AirflowFailException, AirflowSkipException
from plugins.operators.optimization import (
    OptimizationCacheCheckOperator,
    OptimizationCountOperator,
    OptimizationEngineOperator,
    OptimizationLegacyOperator,
    OptimizationQueueInsertOperator,
    OptimizationSessionOperator,
    OptimizationWinnersOperator,
)

DAG_ID = "carrier_optimization__unit"
TENANT = TenantSpec(tenant_id=5, name="unit", service_provider_id=501)
REQUEST = {"tenant_id": 5, "service_provider_id": 501, "has_synced": True}
SESSION = {"session_id": 1, "session_guid": "g", "billing_period_id": 1, "request": REQUEST}
BATCH = {"comm_group_id": 1, "start": 0, "stop": 10}
XCOM_LIMIT = 16 * 1024

OPERATORS = {
    "cache_check": lambda: OptimizationCacheCheckOperator(task_id="cache_check"),
    "session": lambda: OptimizationSessionOperator(task_id="session", request=REQUEST, alert_emails=["a@x"]),
    "count": lambda: OptimizationCountOperator(
        task_id="count", session=SESSION, engine="best", batch_size="50"
    ),
    "write_queues": lambda: OptimizationQueueInsertOperator(
        task_id="write_queues", batch=BATCH, session=SESSION
    ),
    "optimize": lambda: OptimizationLegacyOperator(
        task_id="optimize", batch=BATCH, queues_per_instance="5", time_budget_seconds="60"
    ),
    "engine": lambda: OptimizationEngineOperator(task_id="engine", comm_group_id="1", engine="best"),
    "winners": lambda: OptimizationWinnersOperator(
        task_id="winners", session=SESSION, count={"instance_id": 1}
    ),
}


@pytest.fixture
def no_connections(monkeypatch, tmp_path):
    """No Airflow connection of the package defined; embedded database and outbox in ``tmp_path``."""
    for name in ("AIRFLOW_CONN_AMOP_DB", "AIRFLOW_CONN_AMOP_API", "AIRFLOW_CONN_SMTP_NOTIFICATIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_REDIS_DEFAULT", raising=False)
    url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
    monkeypatch.setenv("CARRIER_OPT_DB_URL", url)
    monkeypatch.setenv("CARRIER_OPT_OUTBOX", str(tmp_path / "outbox"))
    return url


@pytest.fixture
def amop(no_connections):
    engine = make_engine(no_connections)
    s.create_schema(engine)
    end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=3)).replace(microsecond=0)
    AmopRepository(engine).write_fleet(generate_fleet(60, seed=3, tenant=TENANT, period_end=end))
    yield engine
    engine.dispose()


def context(task_id: str = "task", map_index: int = -1, xcoms: dict | None = None) -> dict:
    """A task context; ``xcoms`` maps upstream task ids to their return values."""
    ti = SimpleNamespace(
        dag_id=DAG_ID,
        run_id="manual__1",
        task_id=task_id,
        map_index=map_index,
        xcom_pull=lambda task_ids=None, key="return_value": (xcoms or {}).get(task_ids),
    )
    return {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": "manual__1", "ti": ti}


def small_xcom(value) -> None:
    assert len(json.dumps(value)) < XCOM_LIMIT


@pytest.mark.parametrize("name", list(OPERATORS))
def test_operator_is_built_without_connections_or_io(no_connections, name):
    op = OPERATORS[name]()
    assert tuple(op.template_fields) == tuple(sorted(op.template_fields))
    for field in op.template_fields:
        assert field in op.__dict__, f"{name}: template field {field!r} not assigned in __init__"
    assert "db" not in op.__dict__ and "api" not in op.__dict__ and "mail" not in op.__dict__


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: OptimizationSessionOperator(task_id="t", request="oops"), "`request` must be the intake"),
        (
            lambda: OptimizationSessionOperator(task_id="t", request={"tenant_id": 5}),
            "`request` must be the request",
        ),
        (
            lambda: OptimizationCountOperator(task_id="t", session=SESSION, engine="fast"),
            "`engine` must be one of",
        ),
        (
            lambda: OptimizationCountOperator(task_id="t", session=SESSION, batch_size="many"),
            "`batch_size` must be a positive integer; got 'many'",
        ),
        (
            lambda: OptimizationCountOperator(task_id="t", session="None"),
            "`session` must be the session step",
        ),
        (
            lambda: OptimizationCountOperator(task_id="t", session={**SESSION, "request": {}}),
            r"`session\['request'\]` must be the request dict",
        ),
        (lambda: OptimizationQueueInsertOperator(task_id="t", batch={"start": 0}), "`batch` must be"),
        (
            lambda: OptimizationQueueInsertOperator(task_id="t", batch=BATCH, session=[1]),
            "`session` must be the session step",
        ),
        (
            lambda: OptimizationLegacyOperator(task_id="t", batch=BATCH, queues_per_instance="0"),
            "`queues_per_instance` must be a positive integer; got '0'",
        ),
        (
            lambda: OptimizationLegacyOperator(task_id="t", batch=BATCH, time_budget_seconds="soon"),
            "`time_budget_seconds` must be a positive integer",
        ),
        (
            lambda: OptimizationEngineOperator(task_id="t", comm_group_id="x"),
            "`comm_group_id` must be a positive",
        ),
        (
            lambda: OptimizationWinnersOperator(task_id="t", session=SESSION, count={}),
            r"`count\['instance_id'\]` must be a positive integer",
        ),
    ],
    ids=[
        "session-not-dict",
        "session-request-incomplete",
        "count-engine",
        "count-batch-size",
        "count-session",
        "count-session-request",
        "insert-batch",
        "insert-session",
        "optimize-queues-per-instance",
        "optimize-budget",
        "engine-group",
        "winners-count",
    ],
)
def test_bad_templated_values_fail_without_retries(amop, build, match):
    with pytest.raises(AirflowFailException, match=match):
        build().execute(context())


def test_engine_operator_skips_when_the_run_is_legacy(no_connections):
    op = OptimizationEngineOperator(task_id="engine", comm_group_id=1, engine="legacy")
    with pytest.raises(AirflowSkipException, match="engine=legacy"):
        op.execute(context())


def test_steps_return_small_json_descriptors(amop):
    """session → count → write_queues → optimize → engine → winners on the embedded database."""
    session = OptimizationSessionOperator(task_id="session", request=REQUEST).execute(context("session"))
    small_xcom(session)
    assert session["resumed"] is False and session["request"]["tenant_id"] == 5

    count = OptimizationCountOperator(task_id="count", session=session, batch_size="200").execute(
        context("count")
    )
    small_xcom(count)
    assert count["device_count"] == 60 and count["batches"]

    batch = count["batches"][0]
    written = OptimizationQueueInsertOperator(task_id="write_queues", batch=batch, session=session).execute(
        context("write_queues", 0)
    )
    small_xcom(written)
    assert written["queues"] == batch["stop"] - batch["start"]

    optimized = OptimizationLegacyOperator(task_id="optimize", batch=batch, redis_conn_id=None).execute(
        context("optimize", 0)
    )
    small_xcom(optimized)
    assert optimized["evaluated"] == batch["stop"] - batch["start"] and optimized["resumes"] == 0

    engine = OptimizationEngineOperator(
        task_id="engine", comm_group_id=count["groups"][0], time_limit_seconds="5"
    ).execute(context("engine", 0))
    small_xcom(engine)
    assert engine["skipped"] is False and engine["cost"] > 0

    summary = OptimizationWinnersOperator(task_id="winners", session=session, count=count).execute(
        context("winners")
    )
    small_xcom(summary)
    assert summary["groups"] == len(count["groups"]) and summary["devices"] == 60
    with amop.connect() as conn:
        progress = conn.execute(select(s.optimization_session.c.Progress)).scalar_one()
        results = conn.execute(select(func.count()).select_from(s.device_result)).scalar_one()
    assert progress == 50 and results == 60


def test_write_queues_reports_40_only_when_the_instance_s_queues_are_complete(amop, monkeypatch):
    session = OptimizationSessionOperator(task_id="session", request=REQUEST).execute(context("session"))
    count = OptimizationCountOperator(task_id="count", session=session, batch_size="500").execute(
        context("count")
    )
    sent = []
    monkeypatch.setattr(
        OptimizationQueueInsertOperator,
        "progress",
        lambda self, session, value, devices=0: sent.append(value),
    )
    for index, batch in enumerate(count["batches"]):
        OptimizationQueueInsertOperator(task_id="write_queues", batch=batch, session=session).execute(
            context("write_queues", index)
        )
        assert sent == ([40] if index == len(count["batches"]) - 1 else [])


def test_count_reports_40_itself_when_there_is_nothing_to_write(amop, monkeypatch):
    session = OptimizationSessionOperator(task_id="session", request=REQUEST).execute(context("session"))
    sent = []
    monkeypatch.setattr(
        OptimizationCountOperator, "progress", lambda self, session, value, devices=0: sent.append(value)
    )
    count = OptimizationCountOperator(task_id="count", session=session, engine="optimal").execute(
        context("count")
    )
    assert count["batches"] == [] and sent == [30, 40]


def test_session_refused_while_another_runs_warns_and_skips(amop):
    first = OptimizationSessionOperator(task_id="session", request=REQUEST).execute(context("session"))
    pipeline.prepare_instance(
        amop, session_id=first["session_id"], request=pipeline.Request.from_dict(REQUEST), batch_size=500
    )
    second = OptimizationSessionOperator(task_id="session", request=REQUEST, alert_emails=["ops@x"])
    with pytest.raises(AirflowSkipException, match="Already Running"):
        second.execute({**context("session"), "run_id": "manual__2"})
    (mail,) = list((Path(amop.url.database).parent / "outbox").glob("*.eml"))
    text = mail.read_text()
    assert ALREADY_RUNNING_SUBJECT in text and "ops@x" in text


class TestCacheCheck:
    def test_no_redis_connection_means_database_only_by_design(self, no_connections):
        result = OptimizationCacheCheckOperator(task_id="cache_check").execute(context("cache_check"))
        assert result["status"] == "absent" and "database only" in result["message"]

    def test_reachable_redis_is_ok(self, no_connections, monkeypatch, redis_client):
        port = redis_client.connection_pool.connection_kwargs["port"]
        monkeypatch.setenv(
            "AIRFLOW_CONN_REDIS_DEFAULT",
            json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": port}),
        )
        result = OptimizationCacheCheckOperator(task_id="cache_check").execute(context("cache_check"))
        assert result["status"] == "ok"

    def test_configured_but_unreachable_redis_degrades_and_alerts_once_per_instance(self, amop, monkeypatch):
        from tests.conftest import free_port

        monkeypatch.setenv(
            "AIRFLOW_CONN_REDIS_DEFAULT",
            json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": free_port()}),
        )
        check = OptimizationCacheCheckOperator(task_id="cache_check").execute(context("cache_check"))
        assert check["status"] == "degraded"
        session = OptimizationSessionOperator(task_id="session", request=REQUEST).execute(context("session"))
        count_op = OptimizationCountOperator(task_id="count", session=session, alert_emails=["ops@x"])
        first = count_op.execute(context("count", xcoms={"cache_check": check}))
        again = count_op.execute(context("count", xcoms={"cache_check": check}))  # a retried count step
        assert first["instance_id"] == again["instance_id"]
        mails = list((Path(amop.url.database).parent / "outbox").glob("*.eml"))
        assert len(mails) == 1
        text = mails[0].read_text()
        assert CACHE_ISSUE_SUBJECT.format(ou="Carrier Optimization") in text
        assert f"session {session['session_id']}" in text and f"instance {first['instance_id']}" in text

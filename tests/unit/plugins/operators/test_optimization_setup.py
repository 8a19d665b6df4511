"""The set-up operators: construction without connections, templated values, the steps on SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.carrier_optimization import pipeline
from include.carrier_optimization.reporting.notify import ALREADY_RUNNING_SUBJECT, CACHE_ISSUE_SUBJECT
from plugins.compat import AirflowFailException, AirflowSkipException
from plugins.operators.optimization_setup import (
    OptimizationCacheCheckOperator,
    OptimizationCountOperator,
    OptimizationQueueInsertOperator,
    OptimizationSessionOperator,
)

DAG_ID = "carrier_optimization__unit"
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
}


@pytest.fixture
def amop(fleet_amop):
    return fleet_amop


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


def assert_built_without_io(op) -> None:
    """Template fields sorted and assigned in ``__init__``; no hook built yet."""
    assert tuple(op.template_fields) == tuple(sorted(op.template_fields))
    for field in op.template_fields:
        assert field in op.__dict__, f"{op.task_id}: template field {field!r} not assigned in __init__"
    assert not {"db", "api", "mail", "checkpoints", "sqs"} & set(op.__dict__)


@pytest.mark.parametrize("name", list(OPERATORS))
def test_operator_is_built_without_connections_or_io(no_connections, name):
    assert_built_without_io(OPERATORS[name]())


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
    ],
)
def test_bad_templated_values_fail_without_retries(amop, build, match):
    with pytest.raises(AirflowFailException, match=match):
        build().execute(context())


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

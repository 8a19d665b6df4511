"""The solve operators: templated values, the time-budget deferral, the steps on SQLite."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import TaskDeferred
from sqlalchemy import func, select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.checkpoints import checkpoint_key
from plugins.compat import AirflowFailException, AirflowSkipException
from plugins.operators.optimization_setup import (
    OptimizationCountOperator,
    OptimizationQueueInsertOperator,
    OptimizationSessionOperator,
)
from plugins.operators.optimization_solve import (
    OptimizationEngineOperator,
    OptimizationLegacyOperator,
    OptimizationWinnersOperator,
)
from tests.unit.plugins.operators.test_optimization_setup import (
    BATCH,
    DAG_ID,
    REQUEST,
    SESSION,
    assert_built_without_io,
    context,
    small_xcom,
)

OPERATORS = {
    "optimize": lambda: OptimizationLegacyOperator(
        task_id="optimize", batch=BATCH, queues_per_instance="5", time_budget_seconds="60"
    ),
    "engine": lambda: OptimizationEngineOperator(task_id="engine", comm_group_id="1", engine="best"),
    "winners": lambda: OptimizationWinnersOperator(
        task_id="winners", session=SESSION, count={"instance_id": 1}
    ),
}


@pytest.fixture
def amop(fleet_amop):
    return fleet_amop


@pytest.mark.parametrize("name", list(OPERATORS))
def test_operator_is_built_without_connections_or_io(no_connections, name):
    assert_built_without_io(OPERATORS[name]())


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: OptimizationLegacyOperator(task_id="t", batch={"start": 0}),
            "`batch` must be",
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
        "optimize-batch",
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


def first_batch(amop) -> tuple[dict, dict]:
    """Session, count and the queue rows of the count's first batch; returns ``(count, batch)``."""
    session = OptimizationSessionOperator(task_id="session", request=REQUEST).execute(context("session"))
    count = OptimizationCountOperator(task_id="count", session=session, batch_size="200").execute(
        context("count")
    )
    batch = count["batches"][0]
    OptimizationQueueInsertOperator(task_id="write_queues", batch=batch).execute(context("write_queues", 0))
    return count, batch


KEY = checkpoint_key(DAG_ID, "manual__1", "optimize", 0)


def checkpoint_keys(amop) -> set[str]:
    """The optimizer's checkpoint keys in the database (the set-up steps keep markers there too)."""
    with amop.connect() as conn:
        keys = conn.execute(select(s.checkpoint.c.CheckpointKey)).scalars()
        return {k for k in keys if k == KEY}


def test_out_of_time_optimizer_checkpoints_defers_and_continues_in_execute_complete(amop, monkeypatch):
    """The first call is out of time at once: checkpoint, defer; ``execute_complete`` does the batch."""
    _, batch = first_batch(amop)
    original, deadlines = pipeline.run_optimizer_batch, []

    def out_of_time_once(engine, **kwargs):
        deadlines.append(kwargs["deadline"])
        return original(engine, **{**kwargs, "deadline": 0.0 if len(deadlines) == 1 else kwargs["deadline"]})

    monkeypatch.setattr(pipeline, "run_optimizer_batch", out_of_time_once)
    op = OptimizationLegacyOperator(
        task_id="optimize", batch=batch, queues_per_instance="2", redis_conn_id=None
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("optimize", 0))
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.kwargs == {"resumes": 1}
    assert checkpoint_keys(amop) == {KEY}

    result = op.execute_complete(context("optimize", 0), event=None, **deferred.value.kwargs)

    assert result == {
        **batch,
        "evaluated": batch["stop"] - batch["start"],
        "recorded": result["recorded"],
        "resumes": 1,
    }
    assert len(deadlines) == 2
    assert checkpoint_keys(amop) == set(), "the finished batch left its checkpoint"


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

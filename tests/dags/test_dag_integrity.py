"""DAG integrity: every file imports, one DAG per tenant, tags, retries, params, parse time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from include.carrier_optimization.config.tenants import load_tenants

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
TENANTS = load_tenants(DAGS / "tenants.yaml")


def _dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0.x
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def dagbag(monkeypatch_module):
    # A DAG file that needs a real connection or variable to parse is broken by definition.
    for name in list(__import__("os").environ):
        if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
            monkeypatch_module.delenv(name)
    return _dagbag()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix() for p in DAGS.glob("*.py")))
def test_dag_file_imports_without_errors(dagbag, path):
    errors = {Path(k).relative_to(ROOT).as_posix(): v for k, v in dagbag.import_errors.items()}
    assert path not in errors, f"{path} failed to import with message {errors.get(path)}"


def test_one_dag_per_tenant_with_stable_ids(dagbag):
    expected = {t.dag_id for t in TENANTS}
    assert {d for d in dagbag.dag_ids if d.startswith("carrier_optimization__")} == expected


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.slug)
def test_tenant_dag_policies(dagbag, tenant):
    dag = dagbag.dags[tenant.dag_id]
    assert f"tenant:{tenant.slug}" in dag.tags, f"{dag.dag_id} in {dag.fileloc} has no tenant tag"
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.retries >= 2, f"{dag.dag_id}.{task.task_id} has retries={task.retries}; need >= 2"
        assert task.on_failure_callback, f"{dag.dag_id}.{task.task_id} does not mark the instance failed"


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.slug)
def test_task_graph_is_the_design_pipeline(dagbag, tenant):
    dag = dagbag.dags[tenant.dag_id]
    assert set(dag.task_ids) == {
        "request",
        "cache_check",
        "session",
        "sync_request",
        "sync_wait",
        "count",
        "batches_of",
        "groups_of",
        "write_queues",
        "optimize",
        "engine",
        "winners",
        "report",
    }
    downstream = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert "cache_check" in downstream["request"] and "session" in downstream["cache_check"]
    assert {"sync_request", "count"} <= downstream["session"]
    assert "count" in downstream["sync_wait"]
    assert {"batches_of", "groups_of"} <= downstream["count"]
    assert {"write_queues", "optimize"} <= downstream["batches_of"] and "engine" in downstream["groups_of"]
    assert "optimize" in downstream["write_queues"]
    assert "winners" in downstream["optimize"] and "winners" in downstream["engine"]
    assert downstream["winners"] == {"report"}


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.slug)
def test_engines_are_queued_before_the_legacy_batches_and_cpu_tasks_are_capped(dagbag, tenant):
    dag = dagbag.dags[tenant.dag_id]
    engine, write_queues, optimize = (dag.get_task(t) for t in ("engine", "write_queues", "optimize"))

    def total(task) -> int:  # the default weight rule, "downstream": own weight plus every downstream's
        return task.priority_weight + sum(t.priority_weight for t in task.get_flat_relatives(upstream=False))

    # a run's longest single tasks take the free slots first
    assert total(engine) > total(write_queues) and total(engine) > total(optimize)
    assert optimize.max_active_tis_per_dagrun == write_queues.max_active_tis_per_dagrun == 4


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.slug)
def test_tenant_dags_start_on_their_queue_s_asset_watcher_not_on_a_clock(dagbag, tenant):
    from plugins.triggers.intake import SqsRequestWatcherTrigger

    for dag_id, queue, kind in (
        (tenant.dag_id, tenant.request_queue, "optimization"),
        (f"device_sync__{tenant.slug}", tenant.device_sync_queue, "device_sync"),
    ):
        dag = dagbag.dags[dag_id]
        asset = dag.timetable.asset_condition
        assert type(asset).__name__ == "Asset", f"{dag_id} must be scheduled on exactly its queue's asset"
        (watcher,) = asset.watchers
        assert isinstance(watcher.trigger, SqsRequestWatcherTrigger)
        assert (watcher.trigger.sqs_queue, watcher.trigger.kind) == (queue, kind)
        assert watcher.trigger.dead_letter_queue == tenant.dead_letter_queue
        assert type(dag.get_task("request")).__name__.endswith("IntakeOperator")


def test_the_window_dag_is_hourly_with_one_quick_task_per_tenant(dagbag):
    dag = dagbag.dags["carrier_optimization_window"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.timetable.expression in ("@hourly", "0 * * * *")
    assert set(dag.task_ids) == {f"window__{t.slug}" for t in TENANTS}
    for tenant in TENANTS:
        task = dag.get_task(f"window__{tenant.slug}")
        assert task.request_queue == tenant.request_queue and task.retries >= 2
        assert task.start_hours == {sp.id: sp.start_hour for sp in tenant.service_providers}


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.slug)
def test_params_defaults_are_valid_and_typed(dagbag, tenant):
    dag = dagbag.dags[tenant.dag_id]
    params = dag.params
    params.validate()  # raises on a default that breaks its own schema
    assert params["service_provider_id"] == tenant.service_providers[0].id
    assert params["engine"] == tenant.engine
    for name in ("service_provider_id", "engine", "batch_size", "queues_per_instance", "time_budget_seconds"):
        param = params.get_param(name)
        assert param.schema.get("type"), f"{name} is untyped"
        assert param.schema.get("title") and param.schema.get("section"), f"{name} lacks title or section"


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 0), ("engine", "magic"), ("service_provider_id", 999), ("time_budget_seconds", "soon")],
    ids=["batch-size-zero", "unknown-engine", "unknown-provider", "non-numeric-budget"],
)
def test_invalid_form_values_are_refused_naming_the_field(dagbag, field, value):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    form = ParamsDict(dict(dagbag.dags[TENANTS[0].dag_id].params.items()))
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {field}"):
        form[field] = value


def test_parse_time_of_the_dags_folder_is_measured_and_small(record_property):
    code = (
        f"import time, json, sys; sys.path.insert(0, {str(ROOT)!r}); t = time.perf_counter();"
        f"import runpy; runpy.run_path({str(DAGS / 'carrier_optimization.py')!r});"
        "print(json.dumps({'seconds': time.perf_counter() - t}))"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    record_property("dag_parse_seconds", round(seconds, 3))
    record_property("parse_process_seconds", round(time.perf_counter() - start, 3))
    assert seconds < 30, "parsing must stay well inside dagbag_import_timeout (30 s)"

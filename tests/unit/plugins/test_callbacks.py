"""The tenant DAG's failure callback: instance CompleteWithErrors, AMOP ErrorMessage, alert e-mail."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.fleet import TenantSpec
from include.carrier_optimization.reporting.notify import FAILURE_SUBJECT
from plugins.callbacks import instance_failure_callback, mark_instance_failed, run_failure_callback
from plugins.hooks.amop_api import AmopApiHook

TENANT = TenantSpec(tenant_id=6, name="cb", service_provider_id=601)
REQUEST = pipeline.Request(tenant_id=6, service_provider_id=601)
DAG_ID = "carrier_optimization__cb"


@pytest.fixture
def amop(local_amop):
    return local_amop(TENANT, 30, seed=2)


@pytest.fixture
def api_errors(monkeypatch):
    sent = []
    monkeypatch.setattr(AmopApiHook, "send_error", lambda self, **kwargs: sent.append(kwargs) or True)
    return sent


def outbox(tmp_path: Path) -> list[str]:
    return [p.read_text() for p in sorted((tmp_path / "outbox").glob("*.eml"))]


def started(engine) -> tuple[dict, int]:
    session = pipeline.open_session(engine, REQUEST, run_key=f"{DAG_ID}/run")
    plan = pipeline.prepare_instance(
        engine, session_id=session["session_id"], request=REQUEST, batch_size=500
    )
    return session, plan.instance_id


def context(session, exception="boom") -> dict:
    ti = SimpleNamespace(
        task_id="optimize", dag_id=DAG_ID, run_id="manual__1", xcom_pull=lambda task_ids: session
    )
    return {"ti": ti, "exception": RuntimeError(exception)}


def test_failure_marks_the_instance_reports_and_alerts(amop, api_errors, tmp_path):
    session, instance_id = started(amop)
    instance_failure_callback(alert_emails=["ops@cb.example"])(context(session, "database gone"))

    instance = AmopRepository(amop).instance(instance_id)
    assert instance["RunStatusId"] == int(OptimizationStatus.CompleteWithErrors)
    assert instance["ErrorMessage"] == "Task optimize failed: database gone"
    assert instance["RunEndTime"] is not None
    assert api_errors == [
        {
            "session_id": session["session_id"],
            "session_guid": session["session_guid"],
            "message": "Task optimize failed: database gone",
        }
    ]
    (mail,) = outbox(tmp_path)
    assert FAILURE_SUBJECT.format(dag_id=DAG_ID) in mail and "ops@cb.example" in mail
    assert f"instance {instance_id}" in mail and "database gone" in mail


def test_a_succeeded_instance_keeps_its_status(amop, api_errors, tmp_path):
    session, instance_id = started(amop)
    pipeline.select_winners(amop, instance_id=instance_id)
    mark_instance_failed(context(session, "report failed"), alert_emails=["ops@cb.example"])
    instance = AmopRepository(amop).instance(instance_id)
    assert instance["RunStatusId"] == int(OptimizationStatus.CompleteWithSuccess)
    assert instance["ErrorMessage"] is None
    # The optimization stands (a failed report): AMOP gets no error, the operators get the alert.
    assert api_errors == [] and len(outbox(tmp_path)) == 1


def test_failure_before_a_session_still_alerts(amop, api_errors, tmp_path):
    mark_instance_failed(context(None, "no request"), alert_emails=["ops@cb.example"])
    assert api_errors == []
    (mail,) = outbox(tmp_path)
    assert "no request" in mail and "session None" in mail


def test_an_unreachable_database_does_not_stop_the_alert(amop, api_errors, tmp_path, monkeypatch):
    session, _ = started(amop)
    monkeypatch.setenv("CARRIER_OPT_DB_URL", f"sqlite:///{tmp_path / 'missing' / 'nowhere.sqlite'}")
    mark_instance_failed(context(session, "disk full"), alert_emails=["ops@cb.example"])  # does not raise
    assert len(api_errors) == 1
    (mail,) = outbox(tmp_path)
    assert "disk full" in mail and "instance None" in mail


def test_an_instance_ended_by_its_step_keeps_its_own_message(amop, api_errors, tmp_path):
    session, instance_id = started(amop)
    repo = AmopRepository(amop)
    repo.set_instance_status(instance_id, OptimizationStatus.CompleteWithErrors, error="plan_id 7 invalid")
    mark_instance_failed(context(session, "Instance 1: plan_id 7 invalid"), alert_emails=["ops@cb.example"])
    assert repo.instance(instance_id)["ErrorMessage"] == "plan_id 7 invalid"
    # AMOP gets the step's own message once (the count step no longer reports it itself).
    assert [e["message"] for e in api_errors] == ["plan_id 7 invalid"]
    (mail,) = outbox(tmp_path)
    assert "plan_id 7 invalid" in mail


def run_context(run_id: str = "run", reason: str = "task_failure") -> dict:
    """What the dag-processor passes a DAG's failure callback: the DAG, the run, the last task."""
    return {
        "dag": SimpleNamespace(dag_id=DAG_ID),
        "run_id": run_id,
        "reason": reason,
        "ti": SimpleNamespace(task_id="optimize", dag_id=DAG_ID, run_id=run_id),
    }


def test_a_run_whose_killed_task_ran_no_callback_marks_its_instance_once(amop, api_errors, tmp_path):
    session, instance_id = started(amop)  # opened by run "run" (run key carrier_optimization__cb/run)
    callback = run_failure_callback(alert_emails=["ops@cb.example"])
    callback(run_context())
    instance = AmopRepository(amop).instance(instance_id)
    assert instance["RunStatusId"] == int(OptimizationStatus.CompleteWithErrors)
    assert instance["ErrorMessage"] == "Run run failed (task_failure) at task optimize"
    assert [e["session_id"] for e in api_errors] == [session["session_id"]]
    (mail,) = outbox(tmp_path)
    assert FAILURE_SUBJECT.format(dag_id=DAG_ID) in mail and f"instance {instance_id}" in mail
    callback(run_context())  # a second failure of the same run: the instance has ended, nothing more
    assert len(outbox(tmp_path)) == 1 and len(api_errors) == 1


def test_a_run_whose_task_callback_already_reported_adds_nothing(amop, api_errors, tmp_path):
    session, instance_id = started(amop)
    instance_failure_callback(alert_emails=["ops@cb.example"])(context(session, "database gone"))
    run_failure_callback(alert_emails=["ops@cb.example"])(run_context())
    assert AmopRepository(amop).instance(instance_id)["ErrorMessage"] == "Task optimize failed: database gone"
    assert len(outbox(tmp_path)) == 1 and len(api_errors) == 1


def test_a_failed_run_that_never_opened_a_session_or_succeeded_is_left_alone(amop, api_errors, tmp_path):
    run_failure_callback(alert_emails=["ops@cb.example"])(run_context(run_id="never-started"))
    _, instance_id = started(amop)
    pipeline.select_winners(amop, instance_id=instance_id)
    run_failure_callback(alert_emails=["ops@cb.example"])(run_context())
    assert AmopRepository(amop).instance(instance_id)["RunStatusId"] == int(
        OptimizationStatus.CompleteWithSuccess
    )
    assert outbox(tmp_path) == [] and api_errors == []


def test_a_task_callback_run_by_the_dag_processor_finds_the_session_by_its_run(amop, api_errors, tmp_path):
    session, instance_id = started(amop)

    def no_xcom(task_ids):
        raise RuntimeError("no supervisor to ask")

    ti = SimpleNamespace(task_id="optimize", dag_id=DAG_ID, run_id="run", xcom_pull=no_xcom)
    mark_instance_failed({"ti": ti, "exception": None}, alert_emails=["ops@cb.example"])
    run_failure_callback(alert_emails=["ops@cb.example"])(run_context())
    instance = AmopRepository(amop).instance(instance_id)
    assert instance["RunStatusId"] == int(OptimizationStatus.CompleteWithErrors)
    assert instance["ErrorMessage"] == "Task optimize failed: task failed"
    assert len(outbox(tmp_path)) == 1 and [e["session_id"] for e in api_errors] == [session["session_id"]]


def test_an_undeliverable_alert_goes_to_the_task_log(amop, tmp_path, monkeypatch, caplog):
    """Outside local mode with SMTP down: retries, then the alert is logged in full (nothing raises)."""
    import json
    import logging

    from tests.conftest import free_port

    session, instance_id = started(amop)
    db = {"conn_type": "sqlite", "host": str(tmp_path / "amop.sqlite")}
    monkeypatch.setenv("AIRFLOW_CONN_AMOP_DB", json.dumps(db))
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": free_port()}  # nothing listens
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_NOTIFICATIONS", json.dumps(smtp))
    monkeypatch.delenv("CARRIER_OPT_LOCAL_MODE")
    monkeypatch.setattr("plugins.hooks.email.time.sleep", lambda seconds: None)
    with caplog.at_level(logging.ERROR, logger="plugins.callbacks"):
        mark_instance_failed(context(session, "disk full"), alert_emails=["ops@cb.example"])
    assert AmopRepository(amop).instance(instance_id)["RunStatusId"] == int(
        OptimizationStatus.CompleteWithErrors
    )
    alert = "\n".join(r.getMessage() for r in caplog.records if r.name == "plugins.callbacks")
    assert "'smtp_notifications' (e-mail) could not deliver" in alert
    assert "disk full" in alert and "ops@cb.example" in alert and f"instance {instance_id}" in alert
    assert outbox(tmp_path) == []

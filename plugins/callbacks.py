"""Task callbacks of the optimization DAG: a task failing for good ends its instance with errors."""

from __future__ import annotations

import logging
from typing import Any

from include.carrier_optimization.notify import FAILURE_SUBJECT, Email
from include.carrier_optimization.repository import AmopRepository
from include.carrier_optimization.schema import OptimizationStatus
from plugins.hooks.amop import AmopDatabaseHook
from plugins.hooks.amop_api import AmopApiHook
from plugins.hooks.email import NotificationEmailHook

LOG = logging.getLogger(__name__)


def mark_instance_failed(context: dict[str, Any]) -> None:
    """Mark the run's instance ``CompleteWithErrors``, report the error to AMOP and alert by e-mail.

    Runs as ``on_failure_callback`` (after the last retry). Every part is best effort: a callback that
    raises would hide the task's own error.
    """
    ti = context["ti"]
    error = str(context.get("exception") or "task failed")
    message = f"Task {ti.task_id} failed: {error}"[:4000]
    params = context.get("params") or {}
    try:
        session = ti.xcom_pull(task_ids="session") or {}
        engine = AmopDatabaseHook(amop_conn_id=params.get("amop_conn_id", "amop_db")).get_conn()
        repo = AmopRepository(engine)
        instance_id = repo.instance_id_for_session(session["session_id"]) if session else None
        if instance_id is not None:
            instance = repo.instance(instance_id)
            if instance["RunStatusId"] != OptimizationStatus.CompleteWithSuccess:
                repo.set_instance_status(instance_id, OptimizationStatus.CompleteWithErrors, error=message)
        if session:
            AmopApiHook().send_error(
                session_id=session["session_id"], session_guid=session.get("session_guid"), message=message
            )
        recipients = tuple(params.get("alert_emails") or ())
        body = f"{message}\n\nDAG {ti.dag_id}, run {ti.run_id}, session {session.get('session_id')}, "
        body += f"instance {instance_id}."
        NotificationEmailHook().send(Email(recipients, FAILURE_SUBJECT.format(dag_id=ti.dag_id), body))
    except Exception:  # never mask the task's failure
        LOG.exception("Failure callback of %s could not finish", ti.task_id)

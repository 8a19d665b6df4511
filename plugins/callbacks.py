"""Failure callbacks of the optimization DAG: a task failing for good ends its instance with errors.

Two ways in, one outcome. The task's ``on_failure_callback`` runs in the task process after its last
try. A task process that is killed (SIGKILL, a lost worker) runs no callback of its own, so the DAG's
``on_failure_callback`` (run by the dag-processor when the run fails) marks the instance too, unless it
has already ended: the instance is marked and one alert goes out, whichever way the failure came.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from include.carrier_optimization.amop.repository import AmopRepository, run_key
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.reporting.notify import FAILURE_SUBJECT, Email
from plugins.hooks.amop import AmopDatabaseHook
from plugins.hooks.amop_api import AmopApiHook
from plugins.hooks.email import NotificationEmailHook

LOG = logging.getLogger(__name__)


def instance_failure_callback(
    *, alert_emails: Sequence[str] = (), amop_conn_id: str = AmopDatabaseHook.default_conn_name
) -> Callable[[dict[str, Any]], None]:
    """The ``on_failure_callback`` of a tenant DAG: :func:`mark_instance_failed` with its recipients.

    :param alert_emails: recipients of the alert e-mail (the tenant's ``alert_emails``).
    :param amop_conn_id: AMOP database connection (default ``amop_db``).
    """
    return functools.partial(
        mark_instance_failed, alert_emails=tuple(alert_emails), amop_conn_id=amop_conn_id
    )


def run_failure_callback(
    *, alert_emails: Sequence[str] = (), amop_conn_id: str = AmopDatabaseHook.default_conn_name
) -> Callable[[dict[str, Any]], None]:
    """The DAG-level ``on_failure_callback`` of a tenant DAG: :func:`mark_run_failed`.

    :param alert_emails: recipients of the alert e-mail (the tenant's ``alert_emails``).
    :param amop_conn_id: AMOP database connection (default ``amop_db``).
    """
    return functools.partial(mark_run_failed, alert_emails=tuple(alert_emails), amop_conn_id=amop_conn_id)


def mark_run_failed(
    context: dict[str, Any],
    *,
    alert_emails: Sequence[str] = (),
    amop_conn_id: str = AmopDatabaseHook.default_conn_name,
) -> None:
    """End the failed run's instance ``CompleteWithErrors`` and alert, unless its instance has ended.

    The session is found by the run (``<dag_id>/<run_id>``), not by XCom: the callback runs in the
    dag-processor. An instance that ended (with success, or already with errors through a task's own
    callback) is left alone, so a failure is reported once.

    :param context: the run's callback context (``dag``, ``run_id``, ``reason``, and the last task).
    :param alert_emails: recipients of the alert e-mail.
    :param amop_conn_id: AMOP database connection (default ``amop_db``).
    """
    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    ti = context.get("ti")
    where = f"task {ti.task_id}" if ti is not None else "a task"
    message = f"Run {run_id} failed ({context.get('reason') or 'task failure'}) at {where}"
    marked = _best_effort(
        dag_id,
        "mark the instance",
        lambda: _mark_unended_instance(amop_conn_id, run_key(dag_id, run_id), message),
    )
    if not marked:
        LOG.info("Run %s/%s failed; its instance has ended or never started", dag_id, run_id)
        return
    session, instance_id = marked
    _report_and_alert(
        session, instance_id, message, alert_emails, dag_id=dag_id, run_id=run_id, succeeded=False
    )


def mark_instance_failed(
    context: dict[str, Any],
    *,
    alert_emails: Sequence[str] = (),
    amop_conn_id: str = AmopDatabaseHook.default_conn_name,
) -> None:
    """Mark the run's instance ``CompleteWithErrors``, report the error to AMOP and alert by e-mail.

    Runs as ``on_failure_callback`` (after the last retry). Every part is best effort: a callback that
    raises would hide the task's own error. An instance that already ended ``CompleteWithSuccess`` (a
    failing report) keeps its status.

    :param context: the task's context.
    :param alert_emails: recipients of the alert e-mail.
    :param amop_conn_id: AMOP database connection (default ``amop_db``).
    """
    ti = context["ti"]
    error = str(context.get("exception") or "task failed")
    message = f"Task {ti.task_id} failed: {error}"[:4000]
    session = _best_effort(ti, "read the session", lambda: ti.xcom_pull(task_ids="session"))
    if not isinstance(session, dict):  # run by the dag-processor for a killed task: find it by its run
        session = _best_effort(
            ti,
            "find the session",
            lambda: _repository(amop_conn_id).session_for_run(run_key(ti.dag_id, ti.run_id)),
        )
    session = session if isinstance(session, dict) else {}
    instance_id = None
    if session:
        marked = _best_effort(
            ti, "mark the instance", lambda: _mark_instance(amop_conn_id, session["session_id"], message)
        )
        instance_id, succeeded, reported = marked if marked else (None, False, message)
    else:
        succeeded, reported = True, message  # no session yet: nothing to report to AMOP
    _report_and_alert(
        session, instance_id, reported, alert_emails, dag_id=ti.dag_id, run_id=ti.run_id, succeeded=succeeded
    )


def _report_and_alert(
    session: dict[str, Any],
    instance_id: int | None,
    message: str,
    alert_emails: Sequence[str],
    *,
    dag_id: str,
    run_id: str,
    succeeded: bool,
) -> None:
    """Report ``message`` to the AMOP API (unless the optimization ``succeeded``) and send the alert."""
    if session and not succeeded:  # a failing report leaves a finished optimization: nothing to report
        _best_effort(
            dag_id,
            "report the error to AMOP",
            lambda: AmopApiHook().send_error(
                session_id=session["session_id"],
                session_guid=session.get("session_guid"),
                message=message,
            ),
        )
    body = f"{message}\n\nDAG {dag_id}, run {run_id}, session {(session or {}).get('session_id')}, "
    body += f"instance {instance_id}."
    _best_effort(
        dag_id,
        "send the alert e-mail",
        lambda: NotificationEmailHook().send_or_log(  # undeliverable: the alert goes to the task log
            Email(tuple(alert_emails), FAILURE_SUBJECT.format(dag_id=dag_id), body), LOG
        ),
    )


def _mark_unended_instance(amop_conn_id: str, run_key: str, message: str) -> tuple[dict, int] | None:
    """End the run's unended instance ``CompleteWithErrors``; ``(session, instance id)`` or None."""
    repo = _repository(amop_conn_id)
    session = repo.session_for_run(run_key)
    instance_id = repo.instance_id_for_session(session["session_id"]) if session else None
    ended = (OptimizationStatus.CompleteWithSuccess, OptimizationStatus.CompleteWithErrors)
    if instance_id is None or repo.instance(instance_id)["RunStatusId"] in ended:
        return None
    repo.set_instance_status(instance_id, OptimizationStatus.CompleteWithErrors, error=message)
    return session, instance_id


def _mark_instance(amop_conn_id: str, session_id: int, message: str) -> tuple[int | None, bool, str]:
    """End the session's instance ``CompleteWithErrors`` unless it succeeded.

    An instance that already ended with errors keeps its message (the first cause, e.g. the legacy
    invalid-plans text). Returns the instance id, whether it had succeeded, and the message it holds.
    """
    repo = _repository(amop_conn_id)
    instance_id = repo.instance_id_for_session(session_id)
    if instance_id is not None:
        instance = repo.instance(instance_id)
        ended_with = (
            instance["ErrorMessage"]
            if instance["RunStatusId"] == OptimizationStatus.CompleteWithErrors
            else None
        )
        if instance["RunStatusId"] != OptimizationStatus.CompleteWithSuccess:
            # an instance the step ended itself (invalid plans) keeps its own, more precise message
            repo.set_instance_status(
                instance_id, OptimizationStatus.CompleteWithErrors, error=ended_with or message
            )
            return instance_id, False, ended_with or message
        return instance_id, True, message
    return None, False, message


def _repository(amop_conn_id: str) -> AmopRepository:
    return AmopRepository(AmopDatabaseHook(amop_conn_id=amop_conn_id).get_conn())


def _best_effort(who: Any, what: str, action: Callable[[], Any]) -> Any:
    """Run one part of the callback; log and go on when it fails (never mask the task's failure)."""
    try:
        return action()
    except Exception:
        LOG.exception("Failure callback of %s could not %s", getattr(who, "task_id", who), what)
        return None

"""Task callbacks of the optimization DAG: a task failing for good ends its instance with errors."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from include.carrier_optimization.notify import FAILURE_SUBJECT, Email
from include.carrier_optimization.repository import AmopRepository
from include.carrier_optimization.schema import OptimizationStatus
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
    session = session if isinstance(session, dict) else {}
    instance_id = None
    if session:
        marked = _best_effort(
            ti, "mark the instance", lambda: _mark_instance(amop_conn_id, session["session_id"], message)
        )
        instance_id, succeeded, reported = marked if marked else (None, False, message)
        if not succeeded:  # a failing report leaves a finished optimization: nothing to report to AMOP
            _best_effort(
                ti,
                "report the error to AMOP",
                lambda: AmopApiHook().send_error(
                    session_id=session["session_id"],
                    session_guid=session.get("session_guid"),
                    message=reported,
                ),
            )
    body = f"{message}\n\nDAG {ti.dag_id}, run {ti.run_id}, session {session.get('session_id')}, "
    body += f"instance {instance_id}."
    _best_effort(
        ti,
        "send the alert e-mail",
        lambda: NotificationEmailHook().send_or_log(  # undeliverable: the alert goes to the task log
            Email(tuple(alert_emails), FAILURE_SUBJECT.format(dag_id=ti.dag_id), body), LOG
        ),
    )


def _mark_instance(amop_conn_id: str, session_id: int, message: str) -> tuple[int | None, bool, str]:
    """End the session's instance ``CompleteWithErrors`` unless it succeeded.

    An instance that already ended with errors keeps its message (the first cause, e.g. the legacy
    invalid-plans text). Returns the instance id, whether it had succeeded, and the message it holds.
    """
    repo = AmopRepository(AmopDatabaseHook(amop_conn_id=amop_conn_id).get_conn())
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


def _best_effort(ti: Any, what: str, action: Callable[[], Any]) -> Any:
    """Run one part of the callback; log and go on when it fails (never mask the task's failure)."""
    try:
        return action()
    except Exception:
        LOG.exception("Failure callback of %s could not %s", ti.task_id, what)
        return None

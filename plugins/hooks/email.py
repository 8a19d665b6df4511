"""Hook that delivers the pipeline's e-mails: SMTP; the local outbox folder only in local mode."""

from __future__ import annotations

import logging
import os
import smtplib
import time
from pathlib import Path
from typing import Any

from include.carrier_optimization.config.local_mode import (
    ConnectionNotUsable,
    EmailNotDelivered,
    local_mode,
    missing_connection,
)
from include.carrier_optimization.reporting.notify import Email, write_to_outbox
from plugins.compat import AirflowNotFoundException, BaseHook

OUTBOX_ENV = "CARRIER_OPT_OUTBOX"


def outbox_folder() -> Path:
    """``$CARRIER_OPT_OUTBOX``, else ``$AIRFLOW_HOME/outbox``."""
    if folder := os.environ.get(OUTBOX_ENV):
        return Path(folder)
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow")) / "outbox"


def _flag(value: Any) -> bool:
    """A connection extra as a boolean: URI extras arrive as text ("false", "0", "no", "off")."""
    if isinstance(value, str):
        return value.strip().lower() not in {"false", "0", "no", "off", ""}
    return bool(value)


class NotificationEmailHook(BaseHook):
    """Send alert, warning and result e-mails.

    With an ``smtp`` connection (SES SMTP on MWAA) the message is sent through it, retried
    ``len(RETRY_DELAYS)`` times with exponential backoff (2, 4, 8 s, as the legacy system) before
    :class:`EmailNotDelivered` is raised. In local mode (``CARRIER_OPT_LOCAL_MODE=true``) a missing
    connection or a failed delivery writes the message to the outbox folder instead; outside it a
    missing connection raises :class:`ConnectionNotUsable` naming the connection id.
    :meth:`send_or_log` is for alerts: an undeliverable alert goes to the task log.

    :param smtp_conn_id: Airflow SMTP connection (default ``smtp_notifications``).
    """

    RETRY_DELAYS: tuple[float, ...] = (2.0, 4.0, 8.0)

    conn_name_attr = "smtp_conn_id"
    default_conn_name = "smtp_notifications"
    conn_type = "smtp"
    hook_name = "Notification e-mail"

    def __init__(self, smtp_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smtp_conn_id = smtp_conn_id

    def send(self, email: Email) -> str:
        """Deliver ``email``; returns where it went (``smtp:<host>`` or the outbox file path)."""
        try:
            conn = self.get_connection(self.smtp_conn_id)
        except AirflowNotFoundException:
            if not local_mode():
                raise missing_connection(self.smtp_conn_id, "e-mail") from None
            return str(write_to_outbox(email, outbox_folder()))
        try:
            self._send_with_retries(conn, email)
        except OSError as error:  # smtplib.SMTPException, refused or timed-out sockets
            if not local_mode():
                raise EmailNotDelivered(
                    self.smtp_conn_id,
                    "e-mail",
                    f"could not deliver {email.subject!r} after {len(self.RETRY_DELAYS)} retries: {error}",
                ) from error
            self.log.warning(
                "SMTP delivery of %r failed (%s); written to the outbox instead", email.subject, error
            )
            return str(write_to_outbox(email, outbox_folder()))
        return f"smtp:{conn.host}"

    def send_or_log(self, email: Email, log: logging.Logger | None = None) -> str | None:
        """Deliver an alert or warning; when it cannot be delivered, log it in full and return None."""
        try:
            return self.send(email)
        except ConnectionNotUsable as error:
            (log or self.log).error(
                "%s. The e-mail follows here instead.\nTo: %s\nSubject: %s\n\n%s",
                error,
                "; ".join(email.to),
                email.subject,
                email.body,
            )
            return None

    def _send_with_retries(self, conn: Any, email: Email) -> None:
        for attempt, delay in enumerate((*self.RETRY_DELAYS, None)):
            try:
                self._send_once(conn, email)
                return
            except OSError as error:
                if delay is None:
                    raise
                self.log.warning(
                    "SMTP delivery of %r failed (%s); retry %d in %.0f s",
                    email.subject,
                    error,
                    attempt + 1,
                    delay,
                )
                time.sleep(delay)

    def _send_once(self, conn: Any, email: Email) -> None:
        extra = conn.extra_dejson or {}
        sender = extra.get("from_email", conn.login or "carrier-optimization@localhost")
        with smtplib.SMTP(conn.host, conn.port or 587, timeout=30) as smtp:
            if _flag(extra.get("starttls", True)):
                smtp.starttls()
            if conn.login:
                smtp.login(conn.login, conn.password or "")
            smtp.send_message(email.to_message(sender))

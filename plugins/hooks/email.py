"""Hook that delivers the pipeline's e-mails: SMTP when configured, else a local outbox folder."""

from __future__ import annotations

import os
import smtplib
from pathlib import Path
from typing import Any

from include.carrier_optimization.notify import Email, write_to_outbox
from plugins.compat import BaseHook

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

    With an ``smtp`` connection (SES SMTP on MWAA) the message is sent through it; without one it is
    written to the outbox folder. Delivery problems are logged and never fail the calling task.

    :param smtp_conn_id: Airflow SMTP connection (default ``smtp_notifications``).
    """

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
        except Exception:
            conn = None
        if conn is None:
            return str(write_to_outbox(email, outbox_folder()))
        try:
            sender = (conn.extra_dejson or {}).get(
                "from_email", conn.login or "carrier-optimization@localhost"
            )
            with smtplib.SMTP(conn.host, conn.port or 587, timeout=30) as smtp:
                if _flag((conn.extra_dejson or {}).get("starttls", True)):
                    smtp.starttls()
                if conn.login:
                    smtp.login(conn.login, conn.password or "")
                smtp.send_message(email.to_message(sender))
            return f"smtp:{conn.host}"
        except Exception as error:
            self.log.warning(
                "SMTP delivery of %r failed (%s); written to the outbox instead", email.subject, error
            )
            return str(write_to_outbox(email, outbox_folder()))

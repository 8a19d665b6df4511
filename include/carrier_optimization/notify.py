"""E-mails of the pipeline (alerts, warnings, results) and the local outbox they fall back to."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

LOG = logging.getLogger(__name__)

ALREADY_RUNNING_SUBJECT = "[Warning] Carrier Plan Optimization: Optimization Is Already Running"
CACHE_ISSUE_SUBJECT = "{ou} - Optimization Configuration Issue"
FAILURE_SUBJECT = "[Error] Carrier Plan Optimization failed: {dag_id}"
SKIPPED_GROUP_SUBJECT = "Carrier Plan optimization Error: Rate Plans limit exceeded"
RESULTS_SUBJECT = "Carrier Plan Optimization Results: {tenant}"


@dataclass(frozen=True)
class Email:
    """One message: recipients, subject, plain-text body and optional attachments (name, bytes)."""

    to: tuple[str, ...]
    subject: str
    body: str
    attachments: tuple[tuple[str, bytes], ...] = field(default=())

    def to_message(self, sender: str = "carrier-optimization@localhost") -> EmailMessage:
        """The standard-library message, ready for SMTP or a file."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(self.to) or "undisclosed-recipients:;"
        message["Subject"] = self.subject
        message.set_content(self.body)
        for name, content in self.attachments:
            maintype, subtype = _mime(name)
            message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
        return message


def _mime(name: str) -> tuple[str, str]:
    if name.endswith(".xlsx"):
        return "application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if name.endswith(".png"):
        return "image", "png"
    return "application", "octet-stream"


def write_to_outbox(email: Email, folder: str | Path, *, now: dt.datetime | None = None) -> Path:
    """Write ``email`` as an ``.eml`` file into ``folder`` (the local default of the e-mail role)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%f")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", email.subject).strip("-")[:60]
    path = out / f"{stamp}-{slug}.eml"
    path.write_bytes(email.to_message().as_bytes())
    LOG.info("E-mail %r written to %s", email.subject, path)
    return path

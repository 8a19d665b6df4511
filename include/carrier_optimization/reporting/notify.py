"""E-mails of the pipeline (alerts, warnings, results) and the local outbox they fall back to."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

LOG = logging.getLogger(__name__)

ALREADY_RUNNING_SUBJECT = "[Warning] Carrier Plan Optimization: Optimization Is Already Running"
CACHE_ISSUE_SUBJECT = "{ou} - Optimization Configuration Issue"
FAILURE_SUBJECT = "[Error] Carrier Plan Optimization failed: {dag_id}"
SKIPPED_GROUP_SUBJECT = "Carrier Plan optimization Error: Rate Plans limit exceeded"
RESULTS_SUBJECT = "Carrier Plan Optimization Results: {tenant}"
SIM_COUNT_SUBJECT = "Carrier Plan Optimization Warning: SIM Counts not Expected"


def skipped_groups_email(to: tuple[str, ...], *, instance_id: int, skipped: list[str]) -> Email:
    """The legacy "Rate Plans limit exceeded" e-mail for the comm groups left out of an instance."""
    lines = "\n".join(f"- {line}" for line in skipped)
    body = (
        f"The rate plan count for Instance {instance_id} has exceeded the limit in these communication "
        f"plan groups; they were not optimized and keep their current rate plans:\n{lines}\n"
    )
    return Email(to, SKIPPED_GROUP_SUBJECT, body)


def sim_count_email(to: tuple[str, ...], *, instance_id: int, actual: int, expected: int) -> Email:
    """The legacy "SIM Counts not Expected" warning: fewer SIMs set up than the provider has."""
    body = (
        f"Instance {instance_id}: {actual} SIMs were set up for optimization, {expected} were expected "
        f"({expected - actual} left out: comm groups over the rate plan limit, or comm plans without "
        "allowed rate plans). The optimization continues with the SIMs set up.\n"
    )
    return Email(to, SIM_COUNT_SUBJECT, body)


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


def read_outbox(folder: str | Path) -> list[dict[str, str]]:
    """The outbox's messages, oldest first, as ``{subject, to, body}`` (the plain-text body)."""
    out = Path(folder)
    found = []
    for path in sorted(out.glob("*.eml")) if out.exists() else []:
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        body = message.get_body(preferencelist=("plain",))
        found.append(
            {
                "subject": str(message["Subject"]),
                "to": str(message["To"]),
                "body": body.get_content() if body is not None else "",
            }
        )
    return found

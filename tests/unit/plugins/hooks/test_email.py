"""NotificationEmailHook: outbox without a connection, real SMTP to a local server, fallback on failure."""

from __future__ import annotations

import asyncio
import base64
import email
import inspect
import json
import threading
from email import policy
from pathlib import Path

import pytest

from include.carrier_optimization.config.local_mode import ConnectionNotUsable, EmailNotDelivered
from include.carrier_optimization.reporting.notify import Email
from plugins.compat import BaseHook
from plugins.hooks.email import OUTBOX_ENV, NotificationEmailHook, outbox_folder
from tests.conftest import free_port, not_defined

CONN_ID = "smtp_test"
CONN_ENV = "AIRFLOW_CONN_SMTP_TEST"
DEFAULT_ENV = "AIRFLOW_CONN_SMTP_NOTIFICATIONS"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EMAIL = Email(
    to=("ops@acme.example", "billing@acme.example"),
    subject="Carrier Plan Optimization Results: Acme",
    body="Savings: 12.50 USD\n.leading dot line\n",
    attachments=(("report.xlsx", b"PK\x03\x04 workbook \x00\xff"),),
)


class SmtpServer:
    """A minimal asyncio SMTP server on 127.0.0.1 (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT), in a thread.

    No STARTTLS is offered. Each delivered message is kept as ``{"mail_from", "rcpt_tos", "data", "user"}``.
    """

    def __init__(self, *, user: str | None = None, password: str | None = None) -> None:
        self.user, self.password = user, password
        self.messages: list[dict] = []
        self.commands: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> SmtpServer:
        self.thread.start()
        start = asyncio.start_server(self._session, "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(timeout=5)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(*lines: str) -> None:
            writer.write(b"".join(line.encode() + b"\r\n" for line in lines))
            await writer.drain()

        await reply("220 localhost test SMTP")
        mail_from, rcpt_tos, user = None, [], None
        while raw := await reader.readline():
            verb, _, arg = raw.decode().rstrip("\r\n").partition(" ")
            verb = verb.upper()
            self.commands.append(verb)
            if verb == "EHLO":
                await reply("250-localhost", *(["250-AUTH PLAIN"] if self.user else []), "250 HELP")
            elif verb == "HELO":
                await reply("250 localhost")
            elif verb == "AUTH":
                mechanism, _, initial = arg.partition(" ")
                _, login, password = base64.b64decode(initial).decode().split("\0")
                if mechanism.upper() == "PLAIN" and (login, password) == (self.user, self.password):
                    user = login
                    await reply("235 2.7.0 Authentication successful")
                else:
                    await reply("535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                mail_from = arg.split(":", 1)[1].split()[0].strip("<>")
                await reply("250 OK")
            elif verb == "RCPT":
                rcpt_tos.append(arg.split(":", 1)[1].strip().strip("<>"))
                await reply("250 OK")
            elif verb == "DATA":
                await reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (line := await reader.readline()) != b".\r\n":
                    lines.append(line[1:] if line.startswith(b"..") else line)
                self.messages.append(
                    {"mail_from": mail_from, "rcpt_tos": rcpt_tos, "data": b"".join(lines), "user": user}
                )
                mail_from, rcpt_tos = None, []
                await reply("250 OK: queued")
            elif verb in ("RSET", "NOOP"):
                await reply("250 OK")
            elif verb == "QUIT":
                await reply("221 Bye")
                break
            else:
                await reply("502 Command not implemented")
        writer.close()


@pytest.fixture
def outbox(monkeypatch, tmp_path) -> Path:
    folder = tmp_path / "outbox"
    monkeypatch.setenv(OUTBOX_ENV, str(folder))
    return folder


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Retries without the 2/4/8 s waits; records the waits asked for."""
    waits = []
    monkeypatch.setattr("plugins.hooks.email.time.sleep", waits.append)
    return waits


@pytest.fixture
def no_connection(monkeypatch):
    monkeypatch.delenv(CONN_ENV, raising=False)
    monkeypatch.delenv(DEFAULT_ENV, raising=False)


def _smtp_conn(monkeypatch, port: int, **fields) -> None:
    extra = fields.pop("extra", {"starttls": False})
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra} | fields
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))


def _parse(data: bytes) -> email.message.EmailMessage:
    """Parse a message file or an SMTP DATA payload (CRLF line ends on the wire)."""
    return email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)


def _assert_is_the_email(message: email.message.EmailMessage, sender: str) -> None:
    assert message["From"] == sender
    assert message["To"] == "ops@acme.example, billing@acme.example"
    assert message["Subject"] == EMAIL.subject
    assert message.get_body(preferencelist=("plain",)).get_content() == EMAIL.body
    [attachment] = message.iter_attachments()
    assert (attachment.get_filename(), attachment.get_content_type(), attachment.get_content()) == (
        "report.xlsx",
        XLSX_TYPE,
        EMAIL.attachments[0][1],
    )


class TestConstruction:
    def test_constructor_takes_only_the_connection_id(self):
        params = list(inspect.signature(NotificationEmailHook.__init__).parameters)
        assert params == ["self", "smtp_conn_id", "kwargs"]
        assert NotificationEmailHook.default_conn_name == "smtp_notifications"
        assert NotificationEmailHook.conn_name_attr == "smtp_conn_id"
        assert NotificationEmailHook.conn_type == "smtp"

    def test_no_lookup_at_construction(self, monkeypatch):
        lookups = []
        monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, c: lookups.append(c)))
        hook = NotificationEmailHook(smtp_conn_id=CONN_ID)
        assert hook.smtp_conn_id == CONN_ID and lookups == []


class TestOutboxFolder:
    def test_env_wins(self, monkeypatch, tmp_path):
        monkeypatch.setenv(OUTBOX_ENV, str(tmp_path / "box"))
        assert outbox_folder() == tmp_path / "box"

    def test_under_airflow_home(self, monkeypatch, tmp_path):
        monkeypatch.delenv(OUTBOX_ENV, raising=False)
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
        assert outbox_folder() == tmp_path / "outbox"

    def test_home_airflow_without_airflow_home(self, monkeypatch, tmp_path):
        monkeypatch.delenv(OUTBOX_ENV, raising=False)
        monkeypatch.delenv("AIRFLOW_HOME", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        assert outbox_folder() == tmp_path / "airflow" / "outbox"


class TestWithoutConnection:
    def test_writes_the_outbox_file(self, no_connection, outbox):
        where = NotificationEmailHook().send(EMAIL)
        [path] = outbox.iterdir()
        assert where == str(path) and path.suffix == ".eml"
        _assert_is_the_email(_parse(path.read_bytes()), "carrier-optimization@localhost")

    def test_outbox_under_airflow_home(self, no_connection, monkeypatch, tmp_path):
        monkeypatch.delenv(OUTBOX_ENV, raising=False)
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
        where = Path(NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL))
        assert where.parent == tmp_path / "outbox" and where.is_file()


class TestSmtp:
    def test_server_receives_the_message(self, monkeypatch, outbox):
        with SmtpServer() as server:
            _smtp_conn(
                monkeypatch, server.port, extra={"starttls": False, "from_email": "noreply@amop.example"}
            )
            where = NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert where == "smtp:127.0.0.1"
        [received] = server.messages
        assert received["mail_from"] == "noreply@amop.example"
        assert received["rcpt_tos"] == ["ops@acme.example", "billing@acme.example"]
        assert received["user"] is None
        _assert_is_the_email(_parse(received["data"]), "noreply@amop.example")
        assert not outbox.exists()

    def test_login_authenticates_and_is_the_default_sender(self, monkeypatch, outbox):
        with SmtpServer(user="ses-user", password="ses-secret") as server:
            _smtp_conn(monkeypatch, server.port, login="ses-user", password="ses-secret")
            where = NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert where == "smtp:127.0.0.1"
        [received] = server.messages
        assert received["user"] == "ses-user" and received["mail_from"] == "ses-user"
        assert _parse(received["data"])["From"] == "ses-user"
        assert not outbox.exists()

    def test_without_login_or_from_email_the_default_sender(self, monkeypatch, outbox):
        with SmtpServer() as server:
            _smtp_conn(monkeypatch, server.port)
            NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert [m["mail_from"] for m in server.messages] == ["carrier-optimization@localhost"]


class TestFallback:
    def test_dead_port_falls_back_to_the_outbox(self, monkeypatch, outbox, hook_logs, no_backoff):
        _smtp_conn(monkeypatch, free_port())  # nothing listens here
        where = NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        [path] = outbox.iterdir()
        assert where == str(path)
        _assert_is_the_email(_parse(path.read_bytes()), "carrier-optimization@localhost")
        assert no_backoff == [2.0, 4.0, 8.0]  # local mode retries too, before the outbox
        warning = [e["event"] for e in hook_logs if e["log_level"] == "warning"][-1]
        assert warning.startswith(f"SMTP delivery of {EMAIL.subject!r} failed (")
        assert warning.endswith("); written to the outbox instead")

    def test_rejected_login_falls_back(self, monkeypatch, outbox):
        with SmtpServer(user="ses-user", password="ses-secret") as server:
            _smtp_conn(monkeypatch, server.port, login="ses-user", password="wrong")
            where = NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert server.messages == [] and "AUTH" in server.commands
        assert Path(where).parent == outbox and Path(where).is_file()

    def test_starttls_is_the_default_and_required(self, monkeypatch, outbox):
        # No `starttls` extra: the hook insists on STARTTLS, which this server does not offer.
        with SmtpServer() as server:
            _smtp_conn(monkeypatch, server.port, extra={})
            where = NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert server.messages == [] and "MAIL" not in server.commands
        assert Path(where).parent == outbox

    def test_uri_connection_can_disable_starttls(self, monkeypatch, outbox):
        with SmtpServer() as server:
            monkeypatch.setenv(CONN_ENV, f"smtp://127.0.0.1:{server.port}?starttls=false")
            where = NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert where == "smtp:127.0.0.1"
        assert len(server.messages) == 1


class FlakyServer(SmtpServer):
    """Drops the first ``failures`` connections before greeting, then behaves."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def _session(self, reader, writer):
        if self.failures > 0:
            self.failures -= 1
            writer.close()
            return
        await super()._session(reader, writer)


@pytest.mark.usefixtures("production_mode")
class TestProductionMode:
    """``CARRIER_OPT_LOCAL_MODE`` off: no outbox; retries with backoff, then an error naming the conn."""

    def test_missing_connection_fails_naming_it(self, no_connection, outbox):
        with pytest.raises(ConnectionNotUsable, match=not_defined(CONN_ID, "e-mail")):
            NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert not outbox.exists()

    def test_three_retries_with_backoff_then_the_error(self, monkeypatch, outbox, no_backoff):
        _smtp_conn(monkeypatch, free_port())  # nothing listens here
        with pytest.raises(EmailNotDelivered, match=rf"^Connection '{CONN_ID}' \(e-mail\) could not deliver"):
            NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert no_backoff == [2.0, 4.0, 8.0] and not outbox.exists()

    def test_a_retry_delivers_after_transient_failures(self, monkeypatch, outbox, no_backoff):
        with FlakyServer(failures=2) as server:
            _smtp_conn(monkeypatch, server.port, extra={"starttls": False})
            where = NotificationEmailHook(smtp_conn_id=CONN_ID).send(EMAIL)
        assert where == "smtp:127.0.0.1" and len(server.messages) == 1
        assert no_backoff == [2.0, 4.0] and not outbox.exists()

    def test_send_or_log_puts_the_alert_in_the_log(self, no_connection, outbox, caplog):
        import logging

        log = logging.getLogger("test.alerts")
        with caplog.at_level(logging.ERROR, logger="test.alerts"):
            assert NotificationEmailHook(smtp_conn_id=CONN_ID).send_or_log(EMAIL, log) is None
        [record] = caplog.records
        assert CONN_ID in record.getMessage() and EMAIL.subject in record.getMessage()
        assert EMAIL.body in record.getMessage() and not outbox.exists()

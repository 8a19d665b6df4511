"""E-mails: the standard-library message (headers, body, typed attachments) and the outbox file."""

from __future__ import annotations

import datetime as dt
import email
from email import policy

import pytest

from include.carrier_optimization.reporting.notify import (
    ALREADY_RUNNING_SUBJECT,
    CACHE_ISSUE_SUBJECT,
    FAILURE_SUBJECT,
    RESULTS_SUBJECT,
    SKIPPED_GROUP_SUBJECT,
    Email,
    write_to_outbox,
)

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSX_BYTES = b"PK\x03\x04 fake workbook \x00\xff"
PNG_BYTES = b"\x89PNG\r\n\x1a\n fake image"
CSV_BYTES = b"iccid,plan\n8901,P1\n"
NOW = dt.datetime(2024, 3, 31, 23, 59, 58, 123456, tzinfo=dt.UTC)


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


class TestSubjects:
    def test_legacy_subjects_are_verbatim(self):
        # docs/architecture.md
        assert ALREADY_RUNNING_SUBJECT == (
            "[Warning] Carrier Plan Optimization: Optimization Is Already Running"
        )
        assert SKIPPED_GROUP_SUBJECT == "Carrier Plan optimization Error: Rate Plans limit exceeded"
        assert CACHE_ISSUE_SUBJECT.format(ou="OU-7") == "OU-7 - Optimization Configuration Issue"

    def test_templated_subjects_fill_their_placeholder(self):
        assert FAILURE_SUBJECT.format(dag_id="d1") == "[Error] Carrier Plan Optimization failed: d1"
        assert RESULTS_SUBJECT.format(tenant="Acme") == "Carrier Plan Optimization Results: Acme"


class TestEmailToMessage:
    @pytest.fixture(autouse=True)
    def _email(self):
        self.email = Email(
            to=("a@example.com", "b@example.com"),
            subject="Carrier Plan Optimization Results: Acme",
            body="Savings: 12.50 USD\nDevices: 3\n",
            attachments=(("report.xlsx", XLSX_BYTES), ("chart.png", PNG_BYTES), ("rows.csv", CSV_BYTES)),
        )

    def test_headers(self):
        message = self.email.to_message("sender@example.com")
        assert message["From"] == "sender@example.com"
        assert message["To"] == "a@example.com, b@example.com"
        assert message["Subject"] == "Carrier Plan Optimization Results: Acme"

    def test_default_sender(self):
        assert self.email.to_message()["From"] == "carrier-optimization@localhost"

    def test_no_recipients_gives_undisclosed(self):
        message = Email(to=(), subject="s", body="b").to_message()
        assert message["To"] == "undisclosed-recipients:;"

    def test_plain_message_without_attachments_is_text(self):
        message = Email(to=("a@example.com",), subject="s", body="hello\n").to_message()
        assert message.get_content_type() == "text/plain"
        assert not message.is_multipart()
        assert message.get_content() == "hello\n"

    def test_body_is_the_first_text_part(self):
        message = self.email.to_message()
        assert message.get_content_type() == "multipart/mixed"
        body = message.get_body(preferencelist=("plain",))
        assert body.get_content() == "Savings: 12.50 USD\nDevices: 3\n"

    def test_attachments_keep_name_bytes_and_mime_type(self):
        message = self.email.to_message()
        found = [
            (part.get_filename(), part.get_content_type(), part.get_content())
            for part in message.iter_attachments()
        ]
        assert found == [
            ("report.xlsx", XLSX_TYPE, XLSX_BYTES),
            ("chart.png", "image/png", PNG_BYTES),
            ("rows.csv", "application/octet-stream", CSV_BYTES),
        ]

    def test_attachments_are_dispositioned_as_attachments(self):
        message = self.email.to_message()
        assert [part.get_content_disposition() for part in message.iter_attachments()] == ["attachment"] * 3


class TestWriteToOutbox:
    @pytest.fixture(autouse=True)
    def _email(self):
        self.email = Email(
            to=("ops@example.com",),
            subject="[Error] Carrier Plan Optimization failed: carrier_optimization__acme",
            body="Task optimize failed.\n",
            attachments=(("report.xlsx", XLSX_BYTES),),
        )

    def test_file_name_is_timestamp_and_subject_slug(self, tmp_path):
        short = Email(to=(), subject="[Results] Acme: March (2024)!", body="")
        path = write_to_outbox(short, tmp_path, now=NOW)
        assert path.parent == tmp_path
        assert path.name == "20240331T235958123456-Results-Acme-March-2024.eml"

    def test_slug_is_capped_at_60_characters(self, tmp_path):
        path = write_to_outbox(Email(to=(), subject="x" * 200, body=""), tmp_path, now=NOW)
        assert path.name == f"20240331T235958123456-{'x' * 60}.eml"

    def test_creates_missing_folders(self, tmp_path):
        folder = tmp_path / "a" / "b"
        path = write_to_outbox(self.email, folder, now=NOW)
        assert path.is_file() and path.parent == folder

    def test_file_parses_back_with_the_email_package(self, tmp_path):
        path = write_to_outbox(self.email, str(tmp_path), now=NOW)
        parsed = _parse(path.read_bytes())
        assert parsed["To"] == "ops@example.com"
        assert parsed["From"] == "carrier-optimization@localhost"
        assert parsed["Subject"] == self.email.subject
        assert parsed.get_body(preferencelist=("plain",)).get_content() == "Task optimize failed.\n"
        [attachment] = parsed.iter_attachments()
        assert attachment.get_filename() == "report.xlsx"
        assert attachment.get_content_type() == XLSX_TYPE
        assert attachment.get_content() == XLSX_BYTES

    def test_without_now_uses_the_current_utc_time(self, tmp_path):
        before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        path = write_to_outbox(self.email, tmp_path)
        after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        stamp = dt.datetime.strptime(path.name.split("-", 1)[0], "%Y%m%dT%H%M%S%f")
        assert before <= stamp <= after

    def test_two_messages_in_the_same_second_get_distinct_files(self, tmp_path):
        first = write_to_outbox(self.email, tmp_path, now=NOW)
        second = write_to_outbox(self.email, tmp_path, now=NOW + dt.timedelta(microseconds=1))
        assert first != second
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])

    def test_logs_subject_and_path(self, tmp_path, caplog):
        caplog.set_level("INFO", logger="include.carrier_optimization.reporting.notify")
        path = write_to_outbox(self.email, tmp_path, now=NOW)
        assert any(
            self.email.subject in r.getMessage() and str(path) in r.getMessage() for r in caplog.records
        )


def test_the_outbox_reads_back_oldest_first_with_subject_recipients_and_body(tmp_path):
    from include.carrier_optimization.reporting.notify import read_outbox

    later, earlier = dt.datetime(2026, 11, 30, 12, 0, 1), dt.datetime(2026, 11, 30, 12, 0, 0)
    write_to_outbox(Email(("b@x.example",), "Second", "two", (("r.xlsx", b"PK"),)), tmp_path, now=later)
    write_to_outbox(Email(("a@x.example", "c@x.example"), "First", "one"), tmp_path, now=earlier)
    assert read_outbox(tmp_path) == [
        {"subject": "First", "to": "a@x.example, c@x.example", "body": "one\n"},
        {"subject": "Second", "to": "b@x.example", "body": "two\n"},
    ]
    assert read_outbox(tmp_path / "missing") == []

"""The report step outside local mode: SMTP retried with backoff, then the step fails (no outbox)."""

from __future__ import annotations

import json

import pytest

from include.carrier_optimization.amop.schema import create_schema
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.config.local_mode import EmailNotDelivered
from tests.conftest import free_port
from tests.unit.plugins.operators.test_optimization_report import context, finished_instance, operator


@pytest.fixture
def amop(sqlite_url):
    """An AMOP database with its schema, as a DBA leaves it (nothing is created at task time)."""
    engine = make_engine(sqlite_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.mark.usefixtures("production_mode")
def test_the_report_step_fails_when_smtp_stays_down(amop, sqlite_url, tmp_path, monkeypatch):
    session, summary = finished_instance(amop)
    monkeypatch.setenv("AIRFLOW_CONN_AMOP_DB", json.dumps({"conn_type": "sqlite", "host": sqlite_url[10:]}))
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": free_port(), "extra": {"starttls": False}}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_NOTIFICATIONS", json.dumps(smtp))
    waits = []
    monkeypatch.setattr("plugins.hooks.email.time.sleep", waits.append)
    with pytest.raises(
        EmailNotDelivered, match=r"^Connection 'smtp_notifications' \(e-mail\) could not deliver"
    ):
        operator(session, summary).execute(context())
    assert waits == [2.0, 4.0, 8.0]
    assert not (tmp_path / "outbox").exists()

"""AmopApiHook: log-only without a connection; real HTTP POSTs to a local server; failures never raise."""

from __future__ import annotations

import inspect
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from include.carrier_optimization.config.local_mode import ConnectionNotUsable
from include.carrier_optimization.pipeline.progress import (
    ERROR_PATH,
    PROGRESS_PATH,
    error_payload,
    progress_payload,
)
from plugins.compat import BaseHook
from plugins.hooks.amop_api import AmopApiHook
from tests.conftest import free_port, not_defined

CONN_ID = "amop_api_test"
CONN_ENV = "AIRFLOW_CONN_AMOP_API_TEST"
DEFAULT_ENV = "AIRFLOW_CONN_AMOP_API"
SESSION_ID = 4711
SESSION_GUID = "0b8f6f7e-3c1d-4a55-9a57-3f0c2f6b9e11"


class AmopApiServer:
    """A tiny AMOP 2.0 stand-in: records each request and answers with ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                recorder.requests.append(
                    {
                        "method": "POST",
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(self.rfile.read(length) or b"null"),
                    }
                )
                body = b'{"ok": true}' if recorder.status < 400 else b'{"error": "boom"}'
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> AmopApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def no_connection(monkeypatch):
    monkeypatch.delenv(CONN_ENV, raising=False)
    monkeypatch.delenv(DEFAULT_ENV, raising=False)


@pytest.fixture
def api(monkeypatch):
    """The local server and an ``http`` connection ``amop_api_test`` pointing at it."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with AmopApiServer() as server:
        monkeypatch.setenv(
            CONN_ENV,
            json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": server.port, "schema": "http"}),
        )
        yield server


def _events(logs) -> list[tuple[str, str]]:
    return [(entry["log_level"], entry["event"]) for entry in logs]


class TestConstruction:
    def test_constructor_takes_only_the_connection_id(self):
        params = list(inspect.signature(AmopApiHook.__init__).parameters)
        assert params == ["self", "amop_api_conn_id", "kwargs"]
        assert AmopApiHook.default_conn_name == "amop_api"
        assert AmopApiHook.conn_name_attr == "amop_api_conn_id"
        assert AmopApiHook.conn_type == "http"

    def test_no_client_and_no_lookup_after_construction(self, monkeypatch):
        lookups = []
        monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, c: lookups.append(c)))
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        assert hook._http is None and lookups == []


class TestWithoutConnection:
    def test_progress_goes_to_the_log_only(self, no_connection, hook_logs):
        hook = AmopApiHook()
        assert (
            hook.send_progress(session_id=SESSION_ID, session_guid=None, progress=40, device_count=12)
            is False
        )
        assert _events(hook_logs) == [
            ("info", f"Optimization session {SESSION_ID}: progress 40% (12 SIMs)"),
            ("info", "Connection amop_api not defined: progress goes to the task log only"),
        ]

    def test_error_goes_to_the_log_only(self, no_connection, hook_logs):
        hook = AmopApiHook()
        assert hook.send_error(session_id=SESSION_ID, session_guid=None, message="No rate plans") is False
        assert ("error", f"Optimization session {SESSION_ID}: No rate plans") in _events(hook_logs)

    def test_connection_is_looked_up_once(self, no_connection, monkeypatch):
        lookups = []
        original = BaseHook.get_connection.__func__

        def counting(cls, conn_id):
            lookups.append(conn_id)
            return original(cls, conn_id)

        monkeypatch.setattr(BaseHook, "get_connection", classmethod(counting))
        hook = AmopApiHook()
        assert hook.get_conn() is None and hook.get_conn() is None
        hook.send_progress(session_id=1, session_guid=None, progress=0)
        assert lookups == ["amop_api"]


class TestWithConnection:
    def test_get_conn_is_a_cached_post_http_hook(self, api):
        from airflow.providers.http.hooks.http import HttpHook

        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        http = hook.get_conn()
        assert isinstance(http, HttpHook)
        assert http.method == "POST" and http.http_conn_id == CONN_ID
        assert hook.get_conn() is http

    @pytest.mark.parametrize("progress", [0, 20, 30, 40, 50, 100], ids=lambda p: f"{p}%")
    def test_progress_body_and_path(self, api, progress):
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        assert hook.send_progress(
            session_id=SESSION_ID, session_guid=SESSION_GUID, progress=progress, device_count=321
        )
        assert api.requests == [
            {
                "method": "POST",
                "path": PROGRESS_PATH,
                "content_type": "application/json",
                "body": progress_payload(
                    session_id=SESSION_ID, session_guid=SESSION_GUID, progress=progress, device_count=321
                ),
            }
        ]

    def test_error_body_and_path(self, api):
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        assert hook.send_error(session_id=SESSION_ID, session_guid=None, message="Rate plan limit exceeded")
        assert api.requests == [
            {
                "method": "POST",
                "path": ERROR_PATH,
                "content_type": "application/json",
                "body": error_payload(
                    session_id=SESSION_ID, session_guid=None, message="Rate plan limit exceeded"
                ),
            }
        ]

    def test_sequence_of_calls_reuses_the_hook(self, api):
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        for progress in (0, 20, 30):
            assert hook.send_progress(session_id=1, session_guid=None, progress=progress)
        assert hook.send_error(session_id=1, session_guid=None, message="x")
        assert [(r["path"], r["body"]["data"]["Progress"]) for r in api.requests] == [
            (PROGRESS_PATH, 0),
            (PROGRESS_PATH, 20),
            (PROGRESS_PATH, 30),
            (ERROR_PATH, 0),
        ]

    def test_base_path_of_the_connection_is_kept(self, monkeypatch):
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with AmopApiServer() as server:
            monkeypatch.setenv(
                CONN_ENV, json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{server.port}/amop20"})
            )
            assert AmopApiHook(amop_api_conn_id=CONN_ID).send_progress(
                session_id=1, session_guid=None, progress=0
            )
        assert [r["path"] for r in server.requests] == [f"/amop20{PROGRESS_PATH}"]

    def test_invalid_progress_raises_before_any_request(self, api):
        with pytest.raises(ValueError, match="`progress` must be within 0..100; got 101"):
            AmopApiHook(amop_api_conn_id=CONN_ID).send_progress(session_id=1, session_guid=None, progress=101)
        assert api.requests == []


class TestFailures:
    @pytest.mark.parametrize("status", [500, 404, 401], ids=["server-error", "not-found", "unauthorized"])
    def test_error_status_returns_false_and_logs(self, api, status, hook_logs):
        api.status = status
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        assert hook.send_progress(session_id=1, session_guid=None, progress=20) is False
        assert len(api.requests) == 1  # the call was made, once
        warnings = [e for level, e in _events(hook_logs) if level == "warning" and e.startswith("AMOP API")]
        assert len(warnings) == 1 and warnings[0].startswith(
            f"AMOP API call {PROGRESS_PATH} failed: {status}"
        )

    def test_error_message_on_500_returns_false(self, api):
        api.status = 500
        assert (
            AmopApiHook(amop_api_conn_id=CONN_ID).send_error(session_id=1, session_guid=None, message="m")
            is False
        )
        assert [r["path"] for r in api.requests] == [ERROR_PATH]

    def test_closed_port_returns_false(self, monkeypatch, hook_logs):
        port = free_port()  # nothing listens here
        monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port}))
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        assert hook.send_progress(session_id=1, session_guid=None, progress=30) is False
        assert hook.send_error(session_id=1, session_guid=None, message="m") is False
        warnings = [e for level, e in _events(hook_logs) if level == "warning" and e.startswith("AMOP API")]
        assert [w.split(" failed: ")[0] for w in warnings] == [
            f"AMOP API call {PROGRESS_PATH}",
            f"AMOP API call {ERROR_PATH}",
        ]
        assert all("Connection refused" in w for w in warnings)

    def test_recovers_after_a_failure(self, api):
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        api.status = 500
        assert hook.send_progress(session_id=1, session_guid=None, progress=40) is False
        api.status = 200
        assert hook.send_progress(session_id=1, session_guid=None, progress=50) is True
        assert [r["body"]["data"]["Progress"] for r in api.requests] == [40, 50]


@pytest.mark.usefixtures("production_mode")
class TestProductionMode:
    """``CARRIER_OPT_LOCAL_MODE`` off: the API connection is required; a rejected call still never fails."""

    def test_missing_connection_fails_naming_it(self, no_connection, hook_logs):
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        with pytest.raises(ConnectionNotUsable, match=not_defined(CONN_ID, "AMOP progress API")):
            hook.send_progress(session_id=SESSION_ID, session_guid=None, progress=20)
        with pytest.raises(ConnectionNotUsable):  # not cached as "log only" after the first failure
            hook.get_conn()

    def test_configured_connection_posts(self, api):
        hook = AmopApiHook(amop_api_conn_id=CONN_ID)
        assert hook.send_progress(session_id=SESSION_ID, session_guid="g", progress=30) is True
        assert len(api.requests) == 1

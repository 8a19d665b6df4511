"""The sessions page as a person sees it: served by uvicorn, rendered by headless Chromium.

The plugin's FastAPI app is mounted at its prefix (as Airflow's API server mounts it) on a free
127.0.0.1 port. Chromium loads the page, dumps the DOM after rendering and takes a screenshot.
Needs ``/usr/bin/chromium`` (Debian package ``chromium``): skipped without it, failed in CI.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import create_schema
from include.carrier_optimization.amop.storage import make_engine, sqlite_url
from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.reporting.sessions_view import TABLE_HEADERS
from tests.conftest import finish_instance, start_instance
from tests.e2e.browser import HEADLESS_FLAGS

pytestmark = pytest.mark.integration("chromium")

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
PREFIX = "/carrier-optimization"
#: Where the screenshot of the last run is kept for a person to look at.
SCREENSHOT = Path(os.environ.get("CARRIER_OPT_UI_SCREENSHOT", "/tmp/carrier_optimization_ui.png"))


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: apt-get install -y chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def amop(tmp_path_factory):
    """Tenant 1: a finished and reported instance, then a running one."""
    engine = make_engine(sqlite_url(tmp_path_factory.mktemp("amop") / "amop.db"))
    create_schema(engine)
    fleet = generate_fleet(120, seed=21)
    period_id = AmopRepository(engine).write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True, manual=True
    )

    session, plan = start_instance(engine, request, run_key="dag/ui-done", now=fleet.as_of)
    summary = finish_instance(engine, session, plan)
    running_session, _ = start_instance(engine, request, run_key="dag/ui-running", now=fleet.as_of)
    pipeline.set_progress(engine, running_session["session_id"], 40)
    yield SimpleNamespace(engine=engine, session=session, instance_id=plan.instance_id, summary=summary)
    engine.dispose()


@pytest.fixture(scope="module")
def server(amop):
    """uvicorn serving the plugin app under its prefix, in a thread; yields the base URL."""
    import uvicorn
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import FastAPI

    from plugins.carrier_optimization_plugin import create_app
    from tests.conftest import free_port

    app = create_app(
        engine_factory=lambda: amop.engine,
        names=lambda: {1: "Acme Logistics"},
        tenant_dags=lambda: {1: "carrier_optimization__acme"},
        readable_dags=lambda user, dag_ids: set(dag_ids),
    )
    app.dependency_overrides[get_user] = lambda: SimpleNamespace(get_name=lambda: "tester")
    parent = FastAPI()
    parent.mount(PREFIX, app)
    port = free_port()
    config = uvicorn.Config(parent, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


def run_chromium(chromium: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(chromium),
            *HEADLESS_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1280,800",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_person_sees_the_sessions_table_with_savings(chromium, server, amop, tmp_path):
    url = f"{server}{PREFIX}/?tenant_id=1"
    dumped = run_chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    headers = [html.unescape(h) for h in re.findall(r"<th[^>]*>([^<]*)</th>", dom)]
    assert headers == list(TABLE_HEADERS)
    rows = re.findall(r"<tr>(.*?)</tr>", dom, flags=re.S)
    assert len(rows) == 1 + 2  # header row + the finished and the running instance
    done = next(r for r in rows if amop.session["session_guid"] in r)
    assert f"${amop.summary['savings']:,.2f}" in done
    assert f"${amop.summary['optimized_cost']:,.2f}" in done
    assert "Complete" in done and f'href="reports/{amop.instance_id}.xlsx"' in done
    assert any("Optimizing" in r for r in rows)

    shot = tmp_path / "sessions.png"
    taken = run_chromium(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", url)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    SCREENSHOT.write_bytes(shot.read_bytes())


def test_the_report_link_downloads_the_workbook(server, amop):
    with urllib.request.urlopen(f"{server}{PREFIX}/reports/{amop.instance_id}.xlsx", timeout=30) as response:
        assert response.status == 200
        assert response.read().startswith(b"PK")  # an xlsx is a zip archive

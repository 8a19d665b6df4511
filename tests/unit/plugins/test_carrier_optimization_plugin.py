"""UI plugin: registration, authentication, routes, lazy app, and mounting by Airflow's plugin manager."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.result_files import XLSX_MIME, store_result_file
from include.carrier_optimization.amop.schema import create_schema
from include.carrier_optimization.amop.storage import make_engine, sqlite_url
from include.carrier_optimization.core.engines.optimal import solve_optimal
from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.reporting.report import build_report
from plugins.carrier_optimization_plugin import (
    URL_PREFIX,
    CarrierOptimizationPlugin,
    LazyAsgiApp,
    create_app,
)
from tests.conftest import start_instance

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def amop(tmp_path_factory):
    """A SQLite AMOP database with one finished, reported instance of tenant 1."""
    engine = make_engine(sqlite_url(tmp_path_factory.mktemp("amop") / "amop.db"))
    create_schema(engine)
    fleet = generate_fleet(50, seed=9)
    period_id = AmopRepository(engine).write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True
    )
    session, plan = start_instance(engine, request, run_key="dag/ui", now=fleet.as_of)
    for group in plan.groups:
        pipeline.run_engine_for_group(engine, comm_group_id=group["comm_group_id"], solve=solve_optimal)
    summary = pipeline.select_winners(engine, instance_id=plan.instance_id)
    xlsx = build_report(engine, plan.instance_id).xlsx
    store_result_file(engine, plan.instance_id, xlsx)
    yield SimpleNamespace(
        engine=engine, instance_id=plan.instance_id, summary=summary, xlsx=xlsx, session=session
    )
    engine.dispose()


def signed_in(app: FastAPI) -> FastAPI:
    """Stand in for a logged-in Airflow user (what the UI's session cookie gives)."""
    from airflow.api_fastapi.core_api.security import get_user

    app.dependency_overrides[get_user] = lambda: SimpleNamespace(get_name=lambda: "tester")
    return app


def app_for(amop, names=dict) -> FastAPI:
    """The app on the test database; the user may read tenant 1's DAG (access: test_sessions_access.py)."""
    return create_app(
        engine_factory=lambda: amop.engine,
        names=names,
        tenant_dags=lambda: {1: "carrier_optimization__acme"},
        readable_dags=lambda user, dag_ids: set(dag_ids),
    )


@pytest.fixture(scope="module")
def client(amop):
    app = signed_in(app_for(amop, names=lambda: {1: "Acme Logistics"}))
    with TestClient(app) as test_client:
        yield test_client


class TestRegistration:
    def test_fastapi_app_under_a_free_prefix(self):
        from airflow.api_fastapi.app import RESERVED_URL_PREFIXES

        (entry,) = CarrierOptimizationPlugin.fastapi_apps
        assert entry["url_prefix"] == URL_PREFIX == "/carrier-optimization"
        assert not any(URL_PREFIX.startswith(prefix) for prefix in RESERVED_URL_PREFIXES)
        assert isinstance(entry["app"], LazyAsgiApp) and entry["name"]

    def test_navigation_entry_points_at_the_app_with_a_relative_href(self):
        (view,) = CarrierOptimizationPlugin.external_views
        assert view["href"] == "carrier-optimization/"
        assert (view["destination"], view["category"], view["url_route"]) == (
            "nav",
            "browse",
            "carrier-optimization",
        )

    def test_loading_the_plugin_imports_no_fastapi(self, tmp_path):
        code = (
            "import json, sys; import plugins.carrier_optimization_plugin as m; "
            "print(json.dumps(['fastapi' in sys.modules, m.sessions_app.app is None]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**os.environ, "AIRFLOW_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, True]

    def test_airflow_plugin_manager_mounts_the_app_and_lists_the_view(self, tmp_path):
        code = (
            "import json\n"
            "from airflow import plugins_manager\n"
            "apps, _ = plugins_manager.get_fastapi_plugins()\n"
            "views, _ = plugins_manager._get_ui_plugins()\n"
            "_, errors = plugins_manager._get_plugins()\n"
            "print(json.dumps({'prefixes': [a['url_prefix'] for a in apps],\n"
            "                  'views': [v['url_route'] for v in views], 'errors': errors}))\n"
        )
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        }
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr[-2000:]
        found = json.loads(done.stdout.strip().splitlines()[-1])
        assert URL_PREFIX in found["prefixes"]
        assert "carrier-optimization" in found["views"]
        assert not [k for k in found["errors"] if "carrier_optimization_plugin" in k], found["errors"]


class TestRoutes:
    def test_every_route_requires_an_airflow_user(self, amop):
        app = create_app(engine_factory=lambda: amop.engine, names=dict)
        with TestClient(app) as anonymous:
            for path in ("/", "/api/sessions?tenant_id=1", f"/reports/{amop.instance_id}.xlsx"):
                assert anonymous.get(path).status_code == 401, path

    def test_page_lists_the_tenant_sessions(self, client, amop):
        response = client.get("/", params={"tenant_id": 1})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        assert "<th>Session</th>" in page and '<th class="num">Savings</th>' in page
        assert f"${amop.summary['savings']:,.2f}" in page
        assert "Acme Logistics (1)" in page
        assert f'href="reports/{amop.instance_id}.xlsx"' in page

    def test_page_defaults_to_the_first_tenant(self, client, amop):
        assert amop.session["session_guid"] in client.get("/").text

    def test_json_rows(self, client, amop):
        (row,) = client.get("/api/sessions", params={"tenant_id": 1}).json()
        assert row["instance_id"] == amop.instance_id
        assert row["savings"] == amop.summary["savings"]
        assert row["status"] == "Complete" and row["has_report"] is True
        assert client.get("/api/sessions", params={"tenant_id": 1, "limit": 0}).status_code == 422

    def test_report_download(self, client, amop):
        response = client.get(f"/reports/{amop.instance_id}.xlsx")
        assert response.status_code == 200
        assert response.headers["content-type"] == XLSX_MIME
        assert (
            f"device_assignments_instance_{amop.instance_id}.xlsx" in response.headers["content-disposition"]
        )
        assert response.content == amop.xlsx
        assert "Device Assignments" in load_workbook(io.BytesIO(response.content), read_only=True).sheetnames
        missing = client.get(f"/reports/{amop.instance_id + 100}.xlsx")
        assert missing.status_code == 404 and "has no stored report" in missing.json()["detail"]

    def test_assignments_csv_download(self, client, amop):
        csv_gz = gzip.compress(b"ICCID,MSISDN\n8901,555\n")
        store_result_file(amop.engine, amop.instance_id, amop.xlsx, assignments_csv=csv_gz)
        try:
            response = client.get(f"/reports/{amop.instance_id}.csv.gz")
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/gzip"
            assert (
                f"device_assignments_instance_{amop.instance_id}.csv.gz"
                in (response.headers["content-disposition"])
            )
            assert response.content == csv_gz
            assert client.get(f"/reports/{amop.instance_id}.xlsx").content == amop.xlsx
        finally:
            store_result_file(amop.engine, amop.instance_id, amop.xlsx)
        missing = client.get(f"/reports/{amop.instance_id}.csv.gz")
        assert missing.status_code == 404 and "no stored assignments CSV" in missing.json()["detail"]

    def test_relative_links_resolve_under_the_mount_prefix(self, amop):
        parent = FastAPI()
        parent.mount(URL_PREFIX, signed_in(app_for(amop)))
        with TestClient(parent) as test_client:
            page = test_client.get(f"{URL_PREFIX}/", params={"tenant_id": 1})
            assert page.status_code == 200
            link = f"{URL_PREFIX}/reports/{amop.instance_id}.xlsx"
            assert test_client.get(link).content == amop.xlsx


def test_lazy_app_builds_once_on_first_request(amop):
    built = []

    def factory():
        built.append(1)
        return signed_in(app_for(amop))

    lazy = LazyAsgiApp(factory)
    assert built == [] and lazy.app is None
    with TestClient(lazy) as test_client:
        assert test_client.get("/api/sessions", params={"tenant_id": 1}).status_code == 200
        assert test_client.get("/api/sessions", params={"tenant_id": 2}).status_code == 403  # not readable
    assert built == [1]

"""Per-tenant access in the sessions view: two signed-in users, each reading only their tenant's DAG.

The auth manager is asked through ``get_auth_manager()`` and ``is_authorized_dag`` (what a real API
server does); here it is a stand-in that grants each user one DAG, installed as the API server would.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.result_files import store_result_file
from include.carrier_optimization.amop.schema import create_schema
from include.carrier_optimization.amop.storage import make_engine, sqlite_url
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet
from include.carrier_optimization.reporting.report import build_report
from plugins.carrier_optimization_plugin import create_app
from tests.conftest import finish_instance, start_instance

DAGS = {1: "carrier_optimization__acme", 2: "carrier_optimization__globex"}
GRANTS = {"alice": {DAGS[1]}, "bob": {DAGS[2]}, "carol": set()}


class StandInAuthManager:
    """Grants ``GET`` on the DAGs of ``GRANTS``; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        self.asked.append((user.get_name(), method, details.id))
        return method == "GET" and details.id in GRANTS[user.get_name()]


@pytest.fixture(scope="module")
def amop(tmp_path_factory):
    """Tenants 1 and 2, each with one finished and reported instance."""
    engine = make_engine(sqlite_url(tmp_path_factory.mktemp("amop") / "amop.db"))
    create_schema(engine)
    instances = {}
    end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=3)).replace(microsecond=0)
    for tenant_id in DAGS:
        tenant = TenantSpec(
            tenant_id=tenant_id, name=f"t{tenant_id}", service_provider_id=100 * tenant_id + 1
        )
        AmopRepository(engine).write_fleet(generate_fleet(30, seed=tenant_id, tenant=tenant, period_end=end))
        request = pipeline.Request(tenant_id=tenant_id, service_provider_id=tenant.service_provider_id)
        session, plan = start_instance(engine, request, run_key=f"dag/{tenant_id}", now=None)
        finish_instance(engine, session, plan)
        store_result_file(engine, plan.instance_id, build_report(engine, plan.instance_id).xlsx)
        instances[tenant_id] = SimpleNamespace(session=session, instance_id=plan.instance_id)
    yield SimpleNamespace(engine=engine, instances=instances)
    engine.dispose()


@pytest.fixture
def manager(monkeypatch):
    from airflow.api_fastapi import app as api_app

    stand_in = StandInAuthManager()
    monkeypatch.setattr(api_app._AuthManagerState, "instance", stand_in)
    return stand_in


@pytest.fixture
def client(amop, manager):
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app(
        engine_factory=lambda: amop.engine, names=lambda: {1: "Acme", 2: "Globex"}, tenant_dags=lambda: DAGS
    )
    app.dependency_overrides[get_user] = signed_in_user
    with TestClient(app) as test_client:
        yield test_client


def signed_in_user(request: Request) -> SimpleNamespace:
    """The signed-in user, as the UI's session cookie would give it (named by a test header)."""
    return SimpleNamespace(get_name=lambda: request.headers["x-test-user"])


def as_user(client: TestClient, name: str, path: str, **params):
    return client.get(path, params=params, headers={"x-test-user": name})


def test_each_user_sees_only_the_tenant_whose_dag_they_may_read(client, amop, manager):
    alice = as_user(client, "alice", "/").text
    bob = as_user(client, "bob", "/").text
    assert amop.instances[1].session["session_guid"] in alice
    assert amop.instances[2].session["session_guid"] not in alice and "Globex" not in alice
    assert amop.instances[2].session["session_guid"] in bob
    assert amop.instances[1].session["session_guid"] not in bob and "Acme" not in bob
    assert ("alice", "GET", DAGS[2]) in manager.asked  # asked of the auth manager, per DAG


def test_another_tenant_answers_403_on_every_route(client, amop):
    for path, params in (("/", {"tenant_id": 2}), ("/api/sessions", {"tenant_id": 2})):
        response = as_user(client, "alice", path, **params)
        assert response.status_code == 403 and response.json()["detail"] == "not allowed to read tenant 2"
    assert as_user(client, "alice", f"/reports/{amop.instances[2].instance_id}.xlsx").status_code == 403
    assert as_user(client, "bob", f"/reports/{amop.instances[2].instance_id}.xlsx").status_code == 200
    rows = as_user(client, "bob", "/api/sessions", tenant_id=2).json()
    assert [r["tenant_id"] for r in rows] == [2]


def test_a_user_without_tenants_sees_an_empty_page(client, amop):
    page = as_user(client, "carol", "/")
    assert page.status_code == 200
    assert all(i.session["session_guid"] not in page.text for i in amop.instances.values())
    assert as_user(client, "carol", "/api/sessions", tenant_id=1).status_code == 403

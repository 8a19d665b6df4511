"""Per-tenant access in the sessions view, on a running Airflow with the FAB auth manager (issue 12 §2).

Two users sign in with a password (``POST /auth/token``): ``acme_user``, whose role may read only the
DAG ``carrier_optimization__acme``, and ``globex_user``, only ``carrier_optimization__globex``. Each
tenant has a finished session, from a real run triggered by the admin. Each user sees, in the page, the
JSON and the report downloads, its own tenant's sessions and nothing of the other's, whose page, rows
and reports answer 403.

The users and roles are made with the provider's CLI, as an operator would: ``users create`` and
``roles create`` before the processes start, ``sync-perm --include-dags`` (the DAG resources exist only
once the DAGs are parsed) and ``roles add-perms`` once they are.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from scripts.airflow_api import AirflowApi
from scripts.local_airflow import PASSWORD, USER, LocalAirflow
from tests.e2e.conftest import RUN_TIMEOUT, SETTINGS, record_figure, running_deployment

pytestmark = pytest.mark.e2e

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
PREFIX = "/carrier-optimization"
#: tenant slug → (tenant id, display name, its user, that user's role).
TENANTS = {
    "acme": (1, "Acme Logistics", "acme_user", "acme_reader"),
    "globex": (2, "Globex Utilities", "globex_user", "globex_reader"),
}
USER_PASSWORD = "tenant-pass"
#: Redis databases of its own (broker unused by LocalExecutor, and the device cache), apart from the
#: other end-to-end deployments'.
REDIS_DB = 12


def create_users(airflow: LocalAirflow) -> None:
    """The admin (the launcher's credentials), one reader role per tenant and one user in each."""
    airflow.cli(
        *("users", "create", "--username", USER, "--password", PASSWORD, "--role", "Admin"),
        *("--email", "admin@example.com", "--firstname", "Ad", "--lastname", "Min"),
    )
    airflow.cli("roles", "create", *(role for *_, role in TENANTS.values()))
    for slug, (_, _, user, role) in TENANTS.items():
        airflow.cli(
            *("users", "create", "--username", user, "--password", USER_PASSWORD, "--role", role),
            *("--email", f"{user}@{slug}.example", "--firstname", slug, "--lastname", "Reader"),
        )


def grant_tenant_dags(airflow: LocalAirflow) -> None:
    """Each tenant's role may read its tenant's optimization DAG, and nothing else."""
    airflow.cli("sync-perm", "--include-dags")
    for slug, (*_, role) in TENANTS.items():
        airflow.cli("roles", "add-perms", role, "-r", f"DAG:carrier_optimization__{slug}", "-a", "can_read")


@pytest.fixture(scope="module")
def fab(tmp_path_factory):
    """A LocalExecutor Airflow with the FAB auth manager, both tenants' users and one finished run each."""
    with running_deployment(
        tmp_path_factory,
        executor="LocalExecutor",
        redis_db=REDIS_DB,
        short="fab",
        settings={**SETTINGS, "AIRFLOW__CORE__AUTH_MANAGER": FAB},
        before_start=create_users,
        label="FAB auth manager",
    ) as deployment:
        started = time.monotonic()
        grant_tenant_dags(deployment.airflow)
        record_figure(f"[FAB auth manager] roles' DAG permissions in {time.monotonic() - started:.0f} s")
        api = deployment.api
        runs = {
            slug: api.trigger(f"carrier_optimization__{slug}", {"has_synced": True, "engine": "legacy"})
            for slug in TENANTS
        }
        for slug, run in runs.items():
            dag_id = f"carrier_optimization__{slug}"
            done = api.wait_for_run(dag_id, run["dag_run_id"], timeout=RUN_TIMEOUT)
            assert done["state"] == "success", api.task_instances(dag_id, run["dag_run_id"])
        yield deployment


def signed_in(fab, user: str, password: str = USER_PASSWORD) -> requests.Session:
    """A session that sends ``user``'s token (from FAB's ``POST /auth/token``) on every request."""
    token = AirflowApi(fab.airflow.url, username=user, password=password).token()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def sessions(fab, session: requests.Session, tenant_id: int) -> list[dict[str, Any]]:
    answer = session.get(
        f"{fab.airflow.url}{PREFIX}/api/sessions", params={"tenant_id": tenant_id}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def rows(fab) -> dict[str, list[dict[str, Any]]]:
    """Each tenant's session rows, as the admin (who may read every DAG) sees them."""
    admin = signed_in(fab, USER, PASSWORD)
    found = {slug: sessions(fab, admin, tenant_id) for slug, (tenant_id, *_) in TENANTS.items()}
    for slug, tenant_rows in found.items():
        assert tenant_rows, f"no session of {slug} in the AMOP database"
        assert any(r["status"] == "Complete" for r in tenant_rows), tenant_rows
    return found


@pytest.mark.parametrize("slug", list(TENANTS))
def test_a_user_sees_only_the_tenants_whose_dag_they_may_read(fab, rows, slug):
    tenant_id, name, user, _ = TENANTS[slug]
    (other,) = set(TENANTS) - {slug}
    other_id, other_name, *_ = TENANTS[other]
    client = signed_in(fab, user)
    base = f"{fab.airflow.url}{PREFIX}"

    # The auth manager itself: the user may read its tenant's DAG and not the other's.
    assert client.get(f"{fab.airflow.url}/api/v2/dags/carrier_optimization__{slug}", timeout=30).ok
    other_dag = client.get(f"{fab.airflow.url}/api/v2/dags/carrier_optimization__{other}", timeout=30)
    assert other_dag.status_code == 403, other_dag.text

    # The page: its own tenant by default, the only one in the tenant list, with its sessions.
    page = client.get(f"{base}/", timeout=30)
    assert page.status_code == 200, page.text
    assert f'<option value="{tenant_id}" selected>' in page.text
    assert f'<option value="{other_id}"' not in page.text and other_name not in page.text
    assert all(r["session_guid"] in page.text for r in rows[slug])
    assert not any(r["session_guid"] in page.text for r in rows[other])
    assert client.get(f"{base}/", params={"tenant_id": tenant_id}, timeout=30).status_code == 200

    # The JSON rows: the same as the admin's for its tenant.
    assert sessions(fab, client, tenant_id) == rows[slug]

    # The other tenant: page, rows and every report answer 403.
    assert client.get(f"{base}/", params={"tenant_id": other_id}, timeout=30).status_code == 403
    answer = client.get(f"{base}/api/sessions", params={"tenant_id": other_id}, timeout=30)
    assert answer.status_code == 403, answer.text
    for row in rows[other]:
        if row["instance_id"]:
            report = client.get(f"{base}/reports/{row['instance_id']}.xlsx", timeout=30)
            assert report.status_code == 403, report.text

    # Its own reports download (the stored workbook, or 404 for an instance that stored none).
    own = [r for r in rows[slug] if r["instance_id"]]
    for row in own:
        report = client.get(f"{base}/reports/{row['instance_id']}.xlsx", timeout=30)
        assert report.status_code == (200 if row["has_report"] else 404), report.text
        if row["has_report"]:
            assert report.content[:2] == b"PK"  # an xlsx is a zip file
    assert any(r["has_report"] for r in own), own


def test_without_a_token_the_view_is_refused(fab):
    answer = requests.get(f"{fab.airflow.url}{PREFIX}/api/sessions", params={"tenant_id": 1}, timeout=30)
    assert answer.status_code in (401, 403), answer.text

"""Scenario g: what a signed-in person sees in headless Chromium on the running Airflow.

The trigger form of the tenant DAG (the DAG page's Trigger dialog) with its sections and fields, and,
after the reference run, the sessions view (``/carrier-optimization/``) with the run's savings as the
AMOP database has them. Signing in: the UI authenticates with Airflow's HTTP-only ``_token`` cookie,
a JWT; the test gets one from ``POST /auth/token`` (the admin user's password) and sets it with the
DevTools ``Network.setCookie``, as the login page would. Screenshots are kept in
``$CARRIER_OPT_E2E_SCREENSHOTS`` (default ``/tmp/carrier_optimization_e2e``).

Needs ``/usr/bin/chromium``: skipped without it, failed when ``CI=true``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.reporting.summary import summary_of_instance
from tests.conftest import IN_CI
from tests.e2e.browser import CHROMIUM, Chromium
from tests.e2e.conftest import PROVIDER_ID, TENANT

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(os.environ.get("CARRIER_OPT_E2E_SCREENSHOTS", "/tmp/carrier_optimization_e2e"))
#: The trigger form as ``tenant_params`` in dags/carrier_optimization.py declares it: section → field titles.
FORM_SECTIONS = {
    "Request": ["Service provider", "Billing period id", "Portal type", "Devices already synced"],
    "Resume": ["Session to resume"],
    "Engine": ["Engine", "Batch size", "Queues per instance", "Time budget (s)"],
}
TRIGGER_BUTTON = "[data-testid=trigger-dag-button]"
DIALOG = "[...document.querySelectorAll('[role=dialog]')].find(d => d.innerText.includes('Trigger Dag'))"
#: The visible labels of the fields of one accordion section of the Trigger dialog, "*" of required ones cut.
SECTION_FIELDS = """(section => {
  const trigger = document.querySelector(`[role=dialog] [data-part=item-trigger][id$=":trigger:${section}"]`);
  const content = trigger && document.getElementById(trigger.getAttribute('aria-controls'));
  if (!content || trigger.getAttribute('aria-expanded') !== 'true') return null;
  return [...content.querySelectorAll('label')]
    .filter(l => l.checkVisibility() && l.htmlFor && document.getElementById(l.htmlFor))
    .map(l => l.innerText.replace(/\\*\\s*$/, '').trim())
    .filter(text => text);
})"""
#: The sessions table as header → cell text, one object per body row.
TABLE_ROWS = """(() => {
  const headers = [...document.querySelectorAll('thead th')].map(th => th.innerText.trim());
  return [...document.querySelectorAll('tbody tr')].map(tr =>
    Object.fromEntries([...tr.cells].map((td, i) => [headers[i], td.innerText.trim()])));
})()"""


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: apt-get install -y chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with Chromium(tmp_path / "chromium-profile", size=(1400, 1400)) as chromium:
        yield chromium


def sign_in(browser: Chromium, deployment) -> None:
    """The admin user's JWT as the UI's ``_token`` cookie (what the login page leaves behind)."""
    browser.set_cookie("_token", deployment.api.token(), deployment.airflow.url)


def assert_png(data: bytes, path: Path) -> None:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, f"{path}: {len(data)} bytes"
    assert path.read_bytes() == data


def test_a_signed_in_person_sees_the_trigger_form_with_its_sections_and_fields(deployment, browser):
    sign_in(browser, deployment)
    browser.open(f"{deployment.airflow.url}/dags/{deployment.dag_id}")
    browser.wait_for(f"!!document.querySelector('{TRIGGER_BUTTON}')")
    browser.click(TRIGGER_BUTTON)
    browser.wait_for(f"!!{DIALOG}")

    tenant = next(t for t in deployment.tenants if t.slug == TENANT)
    provider = next(p for p in tenant.service_providers if p.id == PROVIDER_ID)
    seen = {}
    for section in FORM_SECTIONS:  # one section open at a time: opening one closes the one before
        browser.click(f'[role=dialog] [data-part=item-trigger][id$=":trigger:{section}"]')
        seen[section] = browser.wait_for(f"{SECTION_FIELDS}({section!r})", timeout=20)
        if section == "Request":  # the provider select shows the default provider by name
            assert f"{provider.name} ({provider.id})" in browser.evaluate(f"{DIALOG}.innerText")
    assert seen == FORM_SECTIONS
    assert f"Trigger Dag - {deployment.dag_id}" in browser.evaluate(f"{DIALOG}.innerText")

    # The screenshot once the sections have stopped moving: only the last one (Engine) open.
    browser.wait_for(
        "[...document.querySelectorAll('[role=dialog] [data-part=item-content]')]"
        ".filter(c => c.checkVisibility()).length === 1"
    )
    path = SCREENSHOTS / f"trigger_form_{deployment.executor}.png"
    assert_png(browser.screenshot(path), path)


def newest_finished_instance(engine, tenant_id: int) -> tuple[int, int]:
    """(instance id, session id) of the tenant's newest instance that ended CompleteWithSuccess."""
    ins, done = s.optimization_instance, int(OptimizationStatus.CompleteWithSuccess)
    with engine.connect() as conn:
        return conn.execute(
            select(ins.c.Id, ins.c.OptimizationSessionId)
            .where(ins.c.TenantId == tenant_id, ins.c.RunStatusId == done)
            .order_by(ins.c.Id.desc())
            .limit(1)
        ).one()


def test_after_a_run_the_sessions_view_shows_its_savings(deployment, reference, browser):
    tenant = next(t for t in deployment.tenants if t.slug == TENANT)
    page = f"{deployment.airflow.url}/carrier-optimization/?tenant_id={tenant.tenant_id}"
    browser.open(page)  # not signed in yet: refused
    browser.wait_for("document.body && document.body.innerText.includes('Not authenticated')")

    engine = deployment.engine()
    try:
        instance_id, session_id = newest_finished_instance(engine, tenant.tenant_id)
        summary = summary_of_instance(engine, tenant_id=tenant.tenant_id, instance_id=instance_id)
    finally:
        engine.dispose()
    assert summary["savings"] > 0, summary

    sign_in(browser, deployment)
    browser.open(page)
    rows = browser.wait_for(f"document.querySelector('tbody tr td') && {TABLE_ROWS}")
    row = next((r for r in rows if r["Session"].startswith(f"#{session_id} ")), None)
    assert row is not None, rows
    assert row["Status"] == "Complete"
    assert row["Cost before"] == f"${summary['current_cost']:,.2f}"
    assert row["Cost after"] == f"${summary['optimized_cost']:,.2f}"
    assert row["Savings"].startswith(f"${summary['savings']:,.2f} ("), row

    path = SCREENSHOTS / f"sessions_{deployment.executor}.png"
    assert_png(browser.screenshot(path), path)

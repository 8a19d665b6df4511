"""Sessions page of the UI plugin on a real AMOP database (SQLite and PostgreSQL): rows and rendered HTML."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.reporting.sessions_view import (
    TABLE_HEADERS,
    list_sessions,
    render_sessions_page,
)
from tests.conftest import finish_instance, start_instance

TENANT = 1


def populate(engine) -> dict:
    """A finished, reported instance; a session waiting for its sync; a running instance; another tenant."""
    fleet = generate_fleet(60, seed=3)
    repo = AmopRepository(engine)
    period_id = repo.write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=TENANT, service_provider_id=101, bill_period_id=period_id, has_synced=True, manual=True
    )

    done_session, done = start_instance(engine, request, run_key="dag/done", now=fleet.as_of)
    summary = finish_instance(engine, done_session, done)

    waiting = repo.create_session(TENANT, 101, period_id)
    pipeline.set_progress(engine, waiting["session_id"], 20, error="<script>alert('sync')</script> failed")
    running_session, running = start_instance(engine, request, run_key="dag/running", now=fleet.as_of)
    pipeline.set_progress(engine, running_session["session_id"], 40)
    other = repo.create_session(2, 101, period_id)
    return {
        "done": (done_session, done, summary),
        "waiting": waiting,
        "running": (running_session, running),
        "other": other,
    }


def test_one_row_per_instance_with_its_figures(db_engine):
    data = populate(db_engine)
    rows = {row.session_id: row for row in list_sessions(db_engine, TENANT)}
    session, plan, summary = data["done"]
    running_session, running = data["running"]

    assert set(rows) == {session["session_id"], data["waiting"]["session_id"], running_session["session_id"]}
    done = rows[session["session_id"]]
    assert (done.instance_id, done.status, done.status_class) == (plan.instance_id, "Complete", "ok")
    assert (done.progress, done.sims, done.has_report) == (100, 60, True)
    assert done.cost_before == summary["current_cost"]
    assert done.cost_after == summary["optimized_cost"]
    assert done.savings == summary["savings"]
    assert done.lower_bound == summary["lower_bound"]
    assert done.gap == summary["gap"]
    assert done.service_provider == "Jasper AT&T"

    run = rows[running_session["session_id"]]
    assert (run.instance_id, run.status, run.progress) == (running.instance_id, "Optimizing", 40)
    assert run.cost_before is not None and run.cost_after is None and run.savings is None
    assert run.has_report is False

    wait = rows[data["waiting"]["session_id"]]
    assert (wait.instance_id, wait.status, wait.progress) == (None, "Waiting (sync)", 20)
    assert "failed" in wait.error


def test_newest_first_limit_and_tenants(db_engine):
    data = populate(db_engine)
    rows = list_sessions(db_engine, TENANT)
    assert [r.session_id for r in rows] == sorted((r.session_id for r in rows), reverse=True)
    assert [r.session_id for r in list_sessions(db_engine, TENANT, limit=1)] == [rows[0].session_id]
    assert [r.session_id for r in list_sessions(db_engine, 2)] == [data["other"]["session_id"]]
    assert list_sessions(db_engine, 99) == []
    # Deleted sessions disappear.
    with db_engine.begin() as conn:
        conn.execute(
            update(s.optimization_session)
            .where(s.optimization_session.c.Id == data["other"]["session_id"])
            .values(IsDeleted=True)
        )
    assert list_sessions(db_engine, 2) == []


def test_rendered_page_shows_headers_rows_figures_and_links(db_engine):
    data = populate(db_engine)
    session, plan, summary = data["done"]
    page = render_sessions_page(
        list_sessions(db_engine, TENANT), tenant_id=TENANT, tenants=[(1, "Acme & Co"), (2, "Globex")]
    )

    headers = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    assert headers == list(TABLE_HEADERS)
    assert page.count("<tbody><tr>") == 1 and page.count("</tr>") == 1 + 3  # header + 3 rows
    assert f"${summary['savings']:,.2f}" in page
    assert f"${summary['optimized_cost']:,.2f}" in page
    assert f"{summary['gap']:.3%}" in page
    assert f'href="reports/{plan.instance_id}.xlsx"' in page
    assert page.count(".xlsx") == 1  # only the reported instance links a workbook
    assert session["session_guid"] in page
    # Values are escaped: tenant names and error texts never become markup.
    assert "Acme &amp; Co (1)" in page and '<option value="1" selected>' in page
    assert "<script>" not in page and html.escape("<script>alert('sync')</script>") in page


def test_empty_tenant_page_says_so(db_engine):
    page = render_sessions_page([], tenant_id=7, tenants=[])
    assert "No optimization sessions for this tenant yet." in page
    assert "<select" not in page


@pytest.mark.parametrize(
    ("tenant", "limit", "match"),
    [("x", 5, "must be integers"), (1, 0, "`limit` must be > 0"), (None, 5, "must be integers")],
    ids=["text-tenant", "zero-limit", "no-tenant"],
)
def test_list_sessions_iv(tenant, limit, match):
    with pytest.raises(ValueError, match=match):
        list_sessions(None, tenant, limit=limit)


def test_gap_cell_says_which_comm_groups_are_proven_optimal():
    from include.carrier_optimization.reporting.sessions_view import SessionRow, _gap_text

    base = dict(
        session_id=1,
        session_guid="g",
        tenant_id=1,
        created=None,
        progress=100,
        service_provider_id=1,
        service_provider="sp",
    )
    assert _gap_text(SessionRow(**base, gap=0.0, proven_groups=3, groups=3)).endswith("proven optimal</span>")
    assert (
        _gap_text(SessionRow(**base, gap=0.0002, proven_groups=1, groups=3)) == "0.020% (1/3 groups proven)"
    )
    assert _gap_text(SessionRow(**base)) == "—"

"""Legacy parity of the steps: progress gating (isAutoCarrierOptimization), AdditionalJson, set-up e-mails."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.fleet import TenantSpec
from include.carrier_optimization.pipeline.progress import is_auto_carrier_optimization, progress_payload
from plugins.hooks.amop_api import AmopApiHook
from plugins.operators.optimization_setup import OptimizationCountOperator, OptimizationSessionOperator

TENANT = TenantSpec(tenant_id=8, name="gate", service_provider_id=801)
DAG_ID = "carrier_optimization__gate"


@pytest.fixture
def amop(local_amop):
    return local_amop(TENANT, 20, seed=4)


@pytest.fixture
def sent(monkeypatch):
    """Progress calls that reached the API hook."""
    calls = []
    monkeypatch.setattr(AmopApiHook, "send_progress", lambda self, **kwargs: calls.append(kwargs) or True)
    return calls


def run_session(request: dict, run_id: str) -> dict:
    ti = SimpleNamespace(dag_id=DAG_ID, run_id=run_id, task_id="session", map_index=-1)
    operator = OptimizationSessionOperator(task_id="session", request=request)
    return operator.execute({"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": run_id, "ti": ti})


def stored_progress(engine, session_id: int) -> int:
    ses = s.optimization_session
    with engine.connect() as conn:
        return conn.execute(select(ses.c.Progress).where(ses.c.Id == session_id)).scalar_one()


@pytest.mark.parametrize(
    ("session_id", "has_synced", "auto"),
    [(None, False, True), (None, True, True), (5, True, True), (5, False, False)],
    ids=["scheduled-or-form", "scheduled-synced", "continuation", "portal-request"],
)
def test_auto_rule(session_id, has_synced, auto):
    assert is_auto_carrier_optimization(session_id=session_id, has_synced=has_synced) is auto


def test_a_new_session_sends_progress_0_with_the_legacy_additional_json(amop, sent):
    session = run_session({"tenant_id": 8, "service_provider_id": 801}, "manual__1")
    assert session["auto"] is True
    [call] = sent
    period = AmopRepository(amop).billing_period(session["billing_period_id"])
    assert call["progress"] == 0 and call["additional"] == {
        "data": {
            "BillPeriodId": period["id"],
            "SiteId": 0,
            "ServiceProviderId": 801,
            "OptimizationType": 0,
            "OptimizationFrom": "group",
            "BillingPeriodStartDate": period["BillingCycleStartDate"].isoformat(),
            "BillingPeriodEndDate": period["BillingCycleEndDate"].isoformat(),
            "DeviceCount": 0,
            "TenantId": 8,
        }
    }
    body = progress_payload(session_id=1, session_guid="g", progress=0, additional=call["additional"])
    assert json.loads(body["data"]["AdditionalJson"])["data"]["OptimizationFrom"] == "group"


def test_a_portal_request_stores_progress_but_sends_none(amop, sent):
    first = run_session({"tenant_id": 8, "service_provider_id": 801}, "manual__1")
    sent.clear()
    request = {"tenant_id": 8, "service_provider_id": 801, "session_id": first["session_id"]}
    session = run_session(request, "asset_triggered__2")
    assert session["auto"] is False and session["additional_json"] is None
    assert sent == [] and stored_progress(amop, session["session_id"]) == 0


def test_the_synced_continuation_sends_progress_without_additional_json(amop, sent):
    first = run_session({"tenant_id": 8, "service_provider_id": 801}, "manual__1")
    sent.clear()
    request = {
        "tenant_id": 8,
        "service_provider_id": 801,
        "session_id": first["session_id"],
        "has_synced": True,
    }
    session = run_session(request, "asset_triggered__2")
    assert session["auto"] is True
    assert [(c["progress"], c["additional"]) for c in sent] == [(0, None)]


def test_a_mobility_request_from_the_form_fails_naming_the_portal_type(amop, sent):
    from plugins.compat import AirflowFailException

    with pytest.raises(AirflowFailException, match=r"`PortalTypeId` is 1 \(Mobility\): not supported yet"):
        run_session({"tenant_id": 8, "service_provider_id": 801, "portal_type_id": 1}, "manual__1")
    assert sent == []
    with pytest.raises(ValueError, match=r"is 2 \(CrossProvider\)"):
        pipeline.Request(tenant_id=8, service_provider_id=801, portal_type_id=2)


def test_count_sends_the_limit_and_sim_count_e_mails_once(amop, sent, monkeypatch, tmp_path):
    import functools

    from include.carrier_optimization.reporting.notify import SIM_COUNT_SUBJECT, SKIPPED_GROUP_SUBJECT

    monkeypatch.setattr(
        pipeline, "prepare_instance", functools.partial(pipeline.prepare_instance, plan_limit=1)
    )
    session = run_session({"tenant_id": 8, "service_provider_id": 801, "has_synced": True}, "manual__1")
    ti = SimpleNamespace(dag_id=DAG_ID, run_id="manual__1", task_id="count", xcom_pull=lambda **kw: None)
    context = {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": "manual__1", "ti": ti}
    count = OptimizationCountOperator(task_id="count", session=session, alert_emails=["ops@gate.example"])
    first = count.execute(context)
    count.execute(context)  # a cleared count step sends nothing again
    mails = sorted(p.read_text() for p in (tmp_path / "outbox").glob("*.eml"))
    assert len(mails) == 2
    limit = next(m for m in mails if SKIPPED_GROUP_SUBJECT in m)
    assert f"Instance {first['instance_id']}" in limit and "over the limit of 1" in limit
    sims = next(m for m in mails if SIM_COUNT_SUBJECT in m)
    assert f"{first['device_count']} SIMs were set up for optimization, 20 were expected" in sims
    assert first["skipped"]

"""Legacy parity of the instance set-up (docs/architecture.md): queue fields, SqsMessageId."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.engines.optimal import solve_optimal
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet

MESSAGE_ID = "5f1c3e2a-sqs-message"


def _fleet(engine, *, uses_proration: bool, tenant_id: int = 4, provider: int = 401):
    tenant = TenantSpec(
        tenant_id=tenant_id, name="parity", service_provider_id=provider, uses_proration=uses_proration
    )
    end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=3)).replace(microsecond=0)
    fleet = generate_fleet(40, seed=5, tenant=tenant, period_end=end)
    AmopRepository(engine).write_fleet(fleet)
    return tenant


def _queues(engine, instance_id: int) -> list:
    q = s.optimization_queue
    with engine.connect() as conn:
        return conn.execute(
            select(q.c.QueueKind, q.c.UsesProration, q.c.SqsMessageId).where(q.c.InstanceId == instance_id)
        ).all()


@pytest.mark.parametrize("uses_proration", [True, False])
def test_queues_take_uses_proration_from_the_provider_and_the_message_id(db_engine, uses_proration):
    tenant = _fleet(db_engine, uses_proration=uses_proration)
    request = pipeline.Request(
        tenant_id=tenant.tenant_id, service_provider_id=tenant.service_provider_id, message_id=MESSAGE_ID
    )
    session = pipeline.open_session(db_engine, request, run_key="dag/parity")
    plan = pipeline.prepare_instance(
        db_engine, session_id=session["session_id"], request=request, batch_size=50
    )
    for batch in plan.batches:
        pipeline.write_queue_batch(
            db_engine, comm_group_id=batch["comm_group_id"], start=batch["start"], stop=batch["stop"]
        )
    for group in plan.groups:
        pipeline.run_engine_for_group(db_engine, comm_group_id=group["comm_group_id"], solve=solve_optimal)
    queues = _queues(db_engine, plan.instance_id)
    assert {row.QueueKind for row in queues} == {"base", "sequence", "engine"}
    assert all(row.UsesProration is uses_proration for row in queues)
    assert all(row.SqsMessageId == MESSAGE_ID for row in queues)
    assert AmopRepository(db_engine).instance(plan.instance_id)["SqsMessageId"] == MESSAGE_ID


def _prepared(engine, run_key: str):
    """A form request's instance, set up on a fleet of a prorating provider."""
    tenant = _fleet(engine, uses_proration=True)
    request = pipeline.Request(tenant_id=tenant.tenant_id, service_provider_id=tenant.service_provider_id)
    session = pipeline.open_session(engine, request, run_key=run_key)
    return pipeline.prepare_instance(engine, session_id=session["session_id"], request=request, batch_size=50)


def test_a_form_request_records_no_message_id(db_engine):
    plan = _prepared(db_engine, "dag/form")
    assert AmopRepository(db_engine).instance(plan.instance_id)["SqsMessageId"] is None
    assert {row.SqsMessageId for row in _queues(db_engine, plan.instance_id)} == {None}


def test_a_full_set_up_has_no_skipped_groups_and_no_sim_warning(db_engine):
    plan = _prepared(db_engine, "dag/full")
    assert plan.device_count > 0 and plan.skipped == [] and plan.sim_counts is None


def test_a_plan_limit_skips_groups_lists_them_and_counts_the_sims(db_engine):
    tenant = _fleet(db_engine, uses_proration=True)
    request = pipeline.Request(tenant_id=tenant.tenant_id, service_provider_id=tenant.service_provider_id)
    session = pipeline.open_session(db_engine, request, run_key="dag/limit")
    kwargs = {"session_id": session["session_id"], "request": request, "batch_size": 50, "plan_limit": 1}
    plan = pipeline.prepare_instance(db_engine, **kwargs)
    assert plan.skipped and all("over the limit of 1" in line for line in plan.skipped)
    devices = len(AmopRepository(db_engine).devices(tenant.service_provider_id, tenant.tenant_id))
    assert plan.sim_counts == {"expected": devices, "actual": plan.device_count}
    assert plan.device_count < devices
    again = pipeline.prepare_instance(db_engine, **kwargs)  # a cleared count step: same facts
    assert (again.skipped, again.sim_counts) == (plan.skipped, plan.sim_counts)


def test_the_set_up_facts_are_dropped_after_the_winners(db_engine):
    plan = _prepared(db_engine, "dag/forget")
    with db_engine.connect() as conn:
        assert conn.execute(select(s.checkpoint.c.CheckpointKey)).scalars().all() == [
            f"carrier_opt:setup:{plan.instance_id}"
        ]
    pipeline.forget_setup_facts(db_engine, plan.instance_id)
    with db_engine.connect() as conn:
        assert conn.execute(select(s.checkpoint.c.CheckpointKey)).scalars().all() == []

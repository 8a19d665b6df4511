"""The comm-group rows of an instance (SQLite and PostgreSQL): set-up writes, summaries, plans, SIMs."""

from __future__ import annotations

from sqlalchemy import func, select

from include.carrier_optimization.amop import comm_groups
from include.carrier_optimization.amop import schema as s
from tests.unit.include.carrier_optimization.pipeline import conftest as pipeline_setup

# The pipeline tests' 60-SIM fleet, its session and the count step.
fleet, session, prepare = pipeline_setup.fleet, pipeline_setup.session, pipeline_setup.prepare


def test_summaries_and_sequences_of_an_instance(db_engine, session):
    plan = prepare(db_engine, session)
    with db_engine.connect() as conn:
        rows = comm_groups.summaries(conn, plan.instance_id)
        expected = comm_groups.expected_sequences(conn, plan.instance_id)
        assert comm_groups.expected_sequences(conn, plan.instance_id + 1) == 0
        owners = {comm_groups.instance_id_of(conn, int(r.CommGroupId)) for r in rows}
    assert [int(r.CommGroupId) for r in rows] == sorted(g["comm_group_id"] for g in plan.groups)
    assert expected == sum(g["sequences"] for g in plan.groups)
    assert owners == {plan.instance_id}


def test_plan_rows_and_devices_of_a_group(db_engine, session, fleet):
    plan = prepare(db_engine, session)
    total = 0
    with db_engine.connect() as conn:
        for group in plan.groups:
            rows = comm_groups.plan_rows(conn, group["comm_group_id"])
            assert [r.group_plan_id for r in rows] == sorted(r.group_plan_id for r in rows)
            assert len(rows) == group["plans"]
            assert set(fleet.plans.plan_id) >= {r.plan_id for r in rows}
            frame = comm_groups.devices(conn, plan.instance_id, group["comm_group_id"])
            assert list(frame.columns) == comm_groups.DEVICE_FRAME_COLUMNS
            assert frame.device_id.tolist() == sorted(frame.device_id.tolist())
            assert len(frame) == group["devices"]
            total += len(frame)
    assert total == plan.device_count


def test_insert_group_writes_its_comm_plans_and_rate_plans(db_engine, session, fleet):
    plan = prepare(db_engine, session)
    plan_ids = [int(p) for p in fleet.plans.plan_id[:2]]
    with db_engine.begin() as conn:
        comm_plan_id = conn.execute(select(s.communication_plan.c.Id)).scalars().first()
        group_id = comm_groups.insert_group(
            conn,
            instance_id=plan.instance_id,
            key=",".join(map(str, plan_ids)),
            comm_plan_ids=[comm_plan_id],
            plan_thresholds=[(plan_ids[0], 12.5), (plan_ids[1], None)],
        )
        rows = comm_groups.plan_rows(conn, group_id)
        comm = conn.execute(
            select(func.count())
            .select_from(s.comm_group_comm_plan)
            .where(s.comm_group_comm_plan.c.CommGroupId == group_id)
        ).scalar_one()
        usage = (
            conn.execute(
                select(s.comm_group_rate_plan.c.MaxAvgUsage)
                .where(s.comm_group_rate_plan.c.CommGroupId == group_id)
                .order_by(s.comm_group_rate_plan.c.Id)
            )
            .scalars()
            .all()
        )
        comm_groups.insert_summary(
            conn,
            CommGroupId=group_id,
            InstanceId=plan.instance_id,
            DeviceCount=0,
            PlanCount=2,
            SequenceCount=3,
        )
        comm_groups.set_summary(conn, group_id, WinnerKind="base")
        summary = [r for r in comm_groups.summaries(conn, plan.instance_id) if r.CommGroupId == group_id]
    assert [r.plan_id for r in rows] == plan_ids and comm == 1
    assert usage == [12.5, None]
    assert [(r.SequenceCount, r.WinnerKind) for r in summary] == [(3, "base")]

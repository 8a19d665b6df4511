"""Record-if-better on the AMOP tables (SQLite and PostgreSQL): strictly cheaper only."""

from __future__ import annotations

from sqlalchemy import func, select, update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.core.engines import legacy
from tests.unit.include.carrier_optimization.pipeline.conftest import prepare


def test_record_if_better_is_strict(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.groups[0]["comm_group_id"]
    pipeline.write_queue_batch(db_engine, **plan.batches[0])
    group = pipeline.load_group(db_engine, group_id)
    base = legacy.base_assignment(group)
    q = s.optimization_queue
    with db_engine.connect() as conn:
        queue_id = conn.execute(
            select(q.c.Id).where(q.c.CommPlanGroupId == group_id, q.c.QueueKind == "sequence").limit(1)
        ).scalar_one()
    with db_engine.begin() as conn:  # the same cost as the base queue: not recorded
        assert not pipeline.record_if_better(conn, group_id, queue_id, group, base, period_id=None)
    with db_engine.begin() as conn:  # the group's best made one cent worse: now strictly better
        conn.execute(
            update(q)
            .where(q.c.CommPlanGroupId == group_id, q.c.QueueKind == "base")
            .values(TotalCost=q.c.TotalCost + 0.01)
        )
        assert pipeline.record_if_better(conn, group_id, queue_id, group, base, period_id=None)
    with db_engine.connect() as conn:
        rows = conn.execute(
            select(func.count())
            .select_from(s.device_result_staging)
            .where(s.device_result_staging.c.QueueId == queue_id)
        ).scalar_one()
    assert rows == group.n_devices

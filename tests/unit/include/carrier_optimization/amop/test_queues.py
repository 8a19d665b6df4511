"""The queue rows (SQLite and PostgreSQL): written once, read per batch, finished and closed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from include.carrier_optimization.amop import instances, queues
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.schema import OptimizationStatus
from tests.unit.include.carrier_optimization.pipeline import conftest as pipeline_setup

# The pipeline tests' 60-SIM fleet, its session and the count step.
fleet, session, prepare = pipeline_setup.fleet, pipeline_setup.session, pipeline_setup.prepare


def test_insert_queue_returns_the_existing_queue(db_engine, session, fleet):
    plan = prepare(db_engine, session)
    group_id = plan.groups[0]["comm_group_id"]
    with db_engine.begin() as conn:
        instance = instances.instance_row(conn, plan.instance_id)._mapping
        first = queues.insert_queue(conn, instance, 301, group_id, queues.KIND_ENGINE, 0)
        again = queues.insert_queue(conn, instance, 301, group_id, queues.KIND_ENGINE, 0)
        found = queues.engine_queue(conn, group_id)
        source = queues.queue_source(conn, instance)
    assert first == again == found.Id and found.RunEndTime is None
    assert source == {"UsesProration": fleet.tenant.uses_proration, "SqsMessageId": None}


def test_sequence_queues_and_their_rate_plans_of_a_batch(db_engine, session):
    plan = prepare(db_engine, session)
    group_id, now = plan.groups[0]["comm_group_id"], utcnow()
    with db_engine.begin() as conn:
        instance = instances.instance_row(conn, plan.instance_id)
        assert queues.sequence_indices(conn, group_id, 0, 4) == set()
        assert queues.insert_sequence_queues(conn, instance, group_id, [0, 2, 3], now=now) == 3
        assert queues.sequence_indices(conn, group_id, 1, 4) == {2, 3}
        ids = queues.sequence_queue_ids(conn, group_id, 0, 4)
        assert sorted(ids) == [0, 2, 3]
        assert queues.queues_with_plans(conn, ids.values()) == set()
        written = queues.insert_queue_rate_plans(conn, [(ids[3], 1, 11), (ids[3], 0, 10)], now=now)
        assert written == 2 and queues.queues_with_plans(conn, ids.values()) == {ids[3]}
        assert queues.pending_queue_plans(conn, group_id, 0, 4).tolist() == [[ids[3], 10], [ids[3], 11]]
        assert queues.pending_queue_plans(conn, group_id, 0, 3).shape == (0, 2)
        queues.finish_queues(conn, [ids[3]], OptimizationStatus.CompleteWithSuccess)
        assert queues.pending_queue_plans(conn, group_id, 0, 4).shape == (0, 2)
        assert [r.Id for r in queues.batch_queues(conn, group_id, 0, 4)] == [ids[0], ids[2], ids[3]]
        assert queues.count_sequence_queues(conn, plan.instance_id) == 3


def test_finish_and_close_queues(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.groups[0]["comm_group_id"]
    started = utcnow() - dt.timedelta(minutes=5)
    with db_engine.begin() as conn:
        instance = instances.instance_row(conn, plan.instance_id)
        queues.insert_sequence_queues(conn, instance, group_id, [0, 1], now=utcnow())
        ids = queues.sequence_queue_ids(conn, group_id, 0, 2)
        queues.finish_queues(conn, [ids[0]], OptimizationStatus.CompleteWithSuccess, started=started)
        queues.close_open_queues(conn, group_id)
        rows = {r.Id: r for r in queues.batch_queues(conn, group_id, 0, 2)}
    assert all(r.RunEndTime is not None for r in rows.values())
    q = s.optimization_queue
    with db_engine.connect() as conn:
        state = dict(
            conn.execute(select(q.c.Id, q.c.RunStatusId).where(q.c.Id.in_(list(ids.values())))).all()
        )
        start = conn.execute(select(q.c.RunStartTime).where(q.c.Id == ids[0])).scalar_one()
    assert state == {
        ids[0]: int(OptimizationStatus.CompleteWithSuccess),
        ids[1]: int(OptimizationStatus.CompleteWithErrors),
    }
    assert abs((start - started).total_seconds()) < 1


def test_finish_batch_ends_only_the_unfinished_queues_of_its_range(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.groups[0]["comm_group_id"]
    started = utcnow() - dt.timedelta(minutes=5)
    q = s.optimization_queue
    with db_engine.begin() as conn:
        instance = instances.instance_row(conn, plan.instance_id)
        queues.insert_sequence_queues(conn, instance, group_id, [0, 1, 2, 3], now=utcnow())
        ids = queues.sequence_queue_ids(conn, group_id, 0, 4)
        queues.finish_queues(conn, [ids[1]], OptimizationStatus.CompleteWithErrors)
        ended_before = conn.execute(select(q.c.RunEndTime).where(q.c.Id == ids[1])).scalar_one()
        queues.finish_batch(conn, group_id, 0, 3, OptimizationStatus.CompleteWithSuccess, started=started)
    with db_engine.connect() as conn:
        found = conn.execute(select(q.c.Id, q.c.RunStatusId, q.c.RunEndTime, q.c.RunStartTime))
        rows = {r.Id: r for r in found}
    assert rows[ids[0]].RunStatusId == rows[ids[2]].RunStatusId == int(OptimizationStatus.CompleteWithSuccess)
    assert abs((rows[ids[0]].RunStartTime - started).total_seconds()) < 1
    assert rows[ids[1]].RunStatusId == int(OptimizationStatus.CompleteWithErrors)  # finished before: kept
    assert rows[ids[1]].RunEndTime == ended_before
    assert rows[ids[3]].RunEndTime is None  # outside the range

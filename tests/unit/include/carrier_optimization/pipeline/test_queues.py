"""The write-queues step (SQLite and PostgreSQL): idempotent batches, completion of an instance."""

from __future__ import annotations

from include.carrier_optimization import pipeline
from tests.unit.include.carrier_optimization.pipeline.conftest import counts, prepare


def test_write_queue_batch_twice_writes_no_duplicates(db_engine, session):
    plan = prepare(db_engine, session)
    batch = plan.batches[0]
    first = pipeline.write_queue_batch(db_engine, **batch)
    written = counts(db_engine)
    assert first["queues"] == batch["stop"] - batch["start"] > 0
    assert pipeline.write_queue_batch(db_engine, **batch) == {"queues": 0, "queue_rate_plans": 0}
    assert counts(db_engine) == written


def test_queues_written_completes_with_the_last_batch(db_engine, session):
    plan = prepare(db_engine, session)
    group_id = plan.batches[0]["comm_group_id"]
    for batch in plan.batches[:-1]:
        pipeline.write_queue_batch(db_engine, **batch)
    before = pipeline.queues_written(db_engine, comm_group_id=group_id)
    pipeline.write_queue_batch(db_engine, **plan.batches[-1])
    after = pipeline.queues_written(db_engine, comm_group_id=group_id)
    assert not before["complete"] and after["complete"]
    assert after["expected"] == after["written"] == sum(g["sequences"] for g in plan.groups)
    assert after["devices"] == plan.device_count

"""The comm group summary query (SQLite and PostgreSQL): rows per instance, newest finished instance."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import NoResultFound

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.summaries import comm_group_summaries, newest_finished_instance
from include.carrier_optimization.core.fleet import generate_fleet
from tests.conftest import finish_instance, start_instance


def two_instances(engine) -> tuple:
    """A finished instance and a prepared one of tenant 1."""
    fleet = generate_fleet(40, seed=4)
    period_id = AmopRepository(engine).write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True, manual=True
    )
    session, done = start_instance(engine, request, run_key="dag/done", now=fleet.as_of)
    winners = finish_instance(engine, session, done)
    _, prepared = start_instance(engine, request, run_key="dag/prepared", now=fleet.as_of)
    return done, winners, prepared


def test_rows_per_instance_ordered_by_comm_group(db_engine):
    done, winners, prepared = two_instances(db_engine)
    rows = comm_group_summaries(db_engine, [done.instance_id, prepared.instance_id, 999])
    assert set(rows) == {done.instance_id, prepared.instance_id}  # no rows: no key
    finished = rows[done.instance_id]
    assert [r.CommGroupId for r in finished] == sorted(g["comm_group_id"] for g in done.groups)
    assert [r.WinnerQueueId for r in finished] == [g["winner_queue_id"] for g in winners["groups"]]
    assert sum(r.DeviceCount for r in finished) == winners["devices"]
    assert all(r.WinnerQueueId is None for r in rows[prepared.instance_id])
    assert comm_group_summaries(db_engine, []) == {}


def test_newest_finished_instance_of_a_tenant(db_engine):
    done, _, prepared = two_instances(db_engine)
    assert prepared.instance_id > done.instance_id
    assert newest_finished_instance(db_engine, 1) == done.instance_id
    with pytest.raises(NoResultFound):
        newest_finished_instance(db_engine, 2)

"""The engine step (SQLite and PostgreSQL): one engine queue per comm group, recorded once."""

from __future__ import annotations

import dataclasses

import numpy as np

from include.carrier_optimization import pipeline
from tests.unit.include.carrier_optimization.pipeline.conftest import counts, prepare, stub_solver


def test_engine_for_group_twice_records_once(db_engine, session):
    plan = prepare(db_engine, session, engine_name="optimal")
    group_id = plan.groups[0]["comm_group_id"]
    first = pipeline.run_engine_for_group(db_engine, comm_group_id=group_id, solve=stub_solver)
    written = counts(db_engine)
    second = pipeline.run_engine_for_group(db_engine, comm_group_id=group_id, solve=stub_solver)
    assert second == {
        "comm_group_id": group_id,
        "queue_id": first["queue_id"],
        "cost": first["cost"],
        "skipped": True,
    }
    assert counts(db_engine) == written


def test_the_engine_step_fills_the_device_cache_the_optimize_step_then_reads(
    db_engine, session, redis_client, monkeypatch
):
    from include.carrier_optimization.amop import comm_groups
    from include.carrier_optimization.amop.device_cache import DeviceCache

    plan = prepare(db_engine, session, engine_name="best")
    group_id = plan.groups[0]["comm_group_id"]
    cache = DeviceCache(redis_client)
    reads: list[int] = []
    real_devices = comm_groups.devices

    def counted(conn, instance_id, comm_group_id):
        reads.append(comm_group_id)
        return real_devices(conn, instance_id, comm_group_id)

    monkeypatch.setattr(comm_groups, "devices", counted)
    pipeline.run_engine_for_group(db_engine, comm_group_id=group_id, solve=stub_solver, cache=cache)
    assert reads == [group_id] and cache.get(plan.instance_id, group_id) is not None
    from_cache = pipeline.load_group(db_engine, group_id, cache=cache)
    assert reads == [group_id]  # the optimize step's load found the group in Redis
    from_database = pipeline.load_group(db_engine, group_id)
    for field in dataclasses.fields(from_database):
        cached, read = getattr(from_cache, field.name), getattr(from_database, field.name)
        assert np.array_equal(cached, read) if isinstance(read, np.ndarray) else cached == read, field.name

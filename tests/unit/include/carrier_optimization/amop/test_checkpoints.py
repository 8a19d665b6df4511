"""Checkpoint keys, the store protocol on Redis and on a database (SQLite, PostgreSQL), the database store."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from include.carrier_optimization.amop import checkpoints as ck
from include.carrier_optimization.amop import storage
from include.carrier_optimization.amop.checkpoints import (
    DatabaseCheckpointStore,
    checkpoint_key,
    checkpoint_prefix,
    device_cache_key,
)
from include.carrier_optimization.amop.redis_checkpoints import RedisCheckpointStore
from include.carrier_optimization.amop.schema import checkpoint as checkpoint_table
from tests.unit.include.carrier_optimization.amop.conftest import DAG_ID, KEY, RUN_ID, VALUE


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class Backend:
    """A store under test plus the backend-specific helpers the shared tests need."""

    name: str
    store: Any
    client: Any = None
    engine: Any = None

    def expire(self, key: str) -> None:
        if self.client is not None:
            self.client.pexpire(key, 1)
            time.sleep(0.02)
        else:
            with self.engine.begin() as conn:
                conn.execute(
                    update(checkpoint_table)
                    .where(checkpoint_table.c.CheckpointKey == key)
                    .values(ExpiresAt=_utcnow() - dt.timedelta(seconds=1))
                )

    def raw_write(self, key: str, text: str) -> None:
        if self.client is not None:
            self.client.set(key, text, ex=60)
        else:
            self.store.put(key, {})
            with self.engine.begin() as conn:
                conn.execute(
                    update(checkpoint_table).where(checkpoint_table.c.CheckpointKey == key).values(Value=text)
                )

    def remaining_ttl(self, key: str) -> float:
        if self.client is not None:
            return self.client.ttl(key)
        with self.engine.connect() as conn:
            expires = conn.execute(
                select(checkpoint_table.c.ExpiresAt).where(checkpoint_table.c.CheckpointKey == key)
            ).scalar_one()
        return (expires - _utcnow()).total_seconds()


def _database_engine(request, kind: str):
    """The ``db_engine`` fixture's engine, built here so one parameter list spans Redis and both databases."""
    from include.carrier_optimization.amop.schema import create_schema, drop_schema
    from include.carrier_optimization.amop.storage import make_engine

    engine = make_engine(request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url"))
    drop_schema(engine)
    create_schema(engine)
    request.addfinalizer(engine.dispose)
    return engine


@pytest.fixture(params=["redis", "sqlite", "postgres"])
def backend(request) -> Backend:
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        return Backend("redis", RedisCheckpointStore(client, ttl_seconds=3600), client=client)
    engine = _database_engine(request, request.param)
    return Backend(request.param, DatabaseCheckpointStore(engine, ttl_seconds=3600), engine=engine)


class TestCheckpointStore:
    """The one protocol, on Redis and on the database."""

    def test_implements_protocol(self, backend):
        assert isinstance(backend.store, ck.CheckpointStore)

    def test_put_then_get_returns_the_value(self, backend):
        backend.store.put(KEY, VALUE)
        assert backend.store.get(KEY) == VALUE

    def test_absent_key_reads_none(self, backend):
        assert backend.store.get(KEY) is None
        assert backend.store.get_entry(KEY) is None

    def test_put_replaces_the_value(self, backend):
        backend.store.put(KEY, VALUE)
        backend.store.put(KEY, {"cursor": 18})
        assert backend.store.get(KEY) == {"cursor": 18}

    def test_get_entry_carries_the_write_time(self, backend):
        before = time.time()
        backend.store.put(KEY, VALUE)
        entry = backend.store.get_entry(KEY)
        assert entry.data == VALUE
        assert before <= entry.written_at <= time.time()

    def test_non_finite_floats_survive(self, backend):
        backend.store.put(KEY, {"best_cost": float("inf")})
        assert backend.store.get(KEY) == {"best_cost": float("inf")}

    def test_delete_removes_and_tolerates_absent_keys(self, backend):
        backend.store.put(KEY, VALUE)
        backend.store.delete(KEY)
        backend.store.delete(KEY)
        assert backend.store.get(KEY) is None

    def test_delete_prefix_removes_one_run_only(self, backend):
        run_keys = [checkpoint_key(DAG_ID, "r1", "optimize", i) for i in range(-1, 3)]
        other_run = checkpoint_key(DAG_ID, "r10", "optimize", 0)  # "r1" is a text prefix of "r10"
        other_dag = checkpoint_key(DAG_ID + "_x", "r1", "optimize", 0)
        for key in [*run_keys, other_run, other_dag]:
            backend.store.put(key, {"k": key})
        assert backend.store.delete_prefix(checkpoint_prefix(DAG_ID, "r1")) == len(run_keys)
        assert [backend.store.get(k) for k in run_keys] == [None] * len(run_keys)
        assert backend.store.get(other_run) == {"k": other_run}
        assert backend.store.get(other_dag) == {"k": other_dag}

    def test_expired_checkpoint_is_absent(self, backend):
        backend.store.put(KEY, VALUE)
        backend.expire(KEY)
        assert backend.store.get(KEY) is None

    def test_every_write_sets_the_ttl(self, backend):
        backend.store.put(KEY, VALUE)
        assert 3500 < backend.remaining_ttl(KEY) <= 3600
        backend.store.put(KEY, VALUE, ttl_seconds=120)
        assert 0 < backend.remaining_ttl(KEY) <= 120
        backend.store.put(KEY, {"cursor": 19})  # an overwrite sets the default TTL again
        assert 3500 < backend.remaining_ttl(KEY) <= 3600

    def test_value_is_a_versioned_json_envelope(self, backend):
        backend.store.put(KEY, VALUE)
        if backend.client is not None:
            raw = backend.client.get(KEY)
        else:
            with backend.engine.connect() as conn:
                raw = conn.execute(
                    select(checkpoint_table.c.Value).where(checkpoint_table.c.CheckpointKey == KEY)
                ).scalar_one()
        envelope = json.loads(raw)
        assert envelope["v"] == ck.SCHEMA_VERSION == 1
        assert envelope["data"] == VALUE
        assert isinstance(envelope["t"], float)

    @pytest.mark.parametrize(
        "raw, reason",
        [
            ('{"v": 99, "t": 1.0, "data": {"cursor": 1}}', "schema version 99"),
            ('{"t": 1.0, "data": {"cursor": 1}}', "schema version None"),
            ('{"v": 1, "t": 1.0, "data": [1]}', "without a dict `data`"),
            ("not json", "not JSON"),
        ],
        ids=["future-version", "no-version", "data-not-dict", "corrupt"],
    )
    def test_unreadable_value_reads_as_absent_with_a_warning(self, backend, caplog, raw, reason):
        backend.raw_write(KEY, raw)
        with caplog.at_level(logging.WARNING, logger=ck.__name__):
            assert backend.store.get(KEY) is None
        assert f"Ignoring checkpoint {KEY}" in caplog.text
        assert reason in caplog.text

    @pytest.mark.parametrize(
        "value, match",
        [([1, 2], "must be a dict; got list"), ({"x": {1, 2}}, "must be JSON-serialisable")],
        ids=["not-a-dict", "not-json"],
    )
    def test_put_rejects_values_that_are_not_json_dicts(self, backend, value, match):
        with pytest.raises(TypeError, match=match):
            backend.store.put(KEY, value)
        assert backend.store.get(KEY) is None

    @pytest.mark.parametrize("ttl", [0, -5, 1.5, True], ids=["zero", "negative", "float", "bool"])
    def test_put_rejects_bad_ttl(self, backend, ttl):
        with pytest.raises(ValueError, match="`ttl_seconds` must be a positive integer"):
            backend.store.put(KEY, VALUE, ttl_seconds=ttl)


class TestCheckpointKey:
    def test_layout(self):
        assert checkpoint_key("d", "r", "t") == "carrier_opt:ckpt:d:r:t:-1:cursor"
        assert checkpoint_key("d", "r", "t", 4, name="best") == "carrier_opt:ckpt:d:r:t:4:best"

    def test_run_ids_with_colons_spaces_and_slashes_are_escaped(self):
        key = checkpoint_key(DAG_ID, "manual__2025-01-31T00:00:00+00:00 retry/2 50%", "optimize", 3)
        assert key == (
            "carrier_opt:ckpt:carrier_optimization__acme:"
            "manual__2025-01-31T00%3A00%3A00%2B00%3A00%20retry%2F2%2050%25:optimize:3:cursor"
        )
        assert key.count(":") == 6
        assert " " not in key and "*" not in checkpoint_key("d", "r*?[x]", "t")

    def test_distinct_ids_give_distinct_keys(self):
        assert checkpoint_key("a:b", "c", "t") != checkpoint_key("a", "b:c", "t")
        assert checkpoint_key("d", "a%3Ab", "t") != checkpoint_key("d", "a:b", "t")
        assert checkpoint_key("d", "r", "t", 1) != checkpoint_key("d", "r", "t", -1)

    def test_prefixes_match_their_keys(self):
        key = checkpoint_key(DAG_ID, RUN_ID, "optimize", 0)
        assert key.startswith(checkpoint_prefix(DAG_ID, RUN_ID))
        assert key.startswith(checkpoint_prefix(DAG_ID))
        assert not checkpoint_key(DAG_ID, "r10", "t").startswith(checkpoint_prefix(DAG_ID, "r1"))

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"dag_id": ""}, "`dag_id` must be a non-empty string"),
            ({"run_id": ""}, "`run_id` must be a non-empty string"),
            ({"task_id": ""}, "`task_id` must be a non-empty string"),
            ({"name": ""}, "`name` must be a non-empty string"),
            ({"map_index": -2}, "`map_index` must be an integer >= -1"),
            ({"map_index": 1.0}, "`map_index` must be an integer >= -1"),
            ({"map_index": True}, "`map_index` must be an integer >= -1"),
            ({"task_id": "x" * 400}, "more than 400"),
        ],
        ids=[
            "empty-dag",
            "empty-run",
            "empty-task",
            "empty-name",
            "map-index-below",
            "map-index-float",
            "map-index-bool",
            "too-long",
        ],
    )
    def test_checkpoint_key_iv(self, kwargs, match):
        args = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "name": "cursor", **kwargs}
        with pytest.raises(ValueError, match=match):
            checkpoint_key(
                args.pop("dag_id"), args.pop("run_id"), args.pop("task_id"), args.pop("map_index"), **args
            )

    def test_numpy_map_index_is_accepted(self):
        assert checkpoint_key("d", "r", "t", np.int64(2)) == "carrier_opt:ckpt:d:r:t:2:cursor"

    def test_device_cache_key(self):
        assert device_cache_key(7, 3) == "carrier_opt:7:3:sims"


class TestDatabaseCheckpointStore:
    def test_purge_expired_deletes_only_expired_rows(self, db_engine):
        store = DatabaseCheckpointStore(db_engine)
        store.put("k-old", {"a": 1})
        store.put("k-new", {"a": 2})
        Backend("db", store, engine=db_engine).expire("k-old")
        assert store.purge_expired() == 1
        with db_engine.connect() as conn:
            keys = conn.execute(select(checkpoint_table.c.CheckpointKey)).scalars().all()
        assert keys == ["k-new"]

    def test_generic_upsert_path(self, db_engine, monkeypatch):
        """The update-then-insert path used on dialects without ON CONFLICT (SQL Server)."""
        monkeypatch.setattr(storage, "NATIVE_UPSERT", {})
        store = DatabaseCheckpointStore(db_engine)
        store.put(KEY, {"cursor": 1})
        store.put(KEY, {"cursor": 2})
        assert store.get(KEY) == {"cursor": 2}
        with db_engine.connect() as conn:
            rows = conn.execute(select(checkpoint_table)).all()
        assert len(rows) == 1

    def test_generic_upsert_turns_a_concurrent_insert_into_an_update(self, db_engine):
        store = DatabaseCheckpointStore(db_engine)
        store.put(KEY, {"cursor": 1})
        row = {
            "CheckpointKey": KEY,
            "Value": json.dumps({"v": 1, "t": time.time(), "data": {"cursor": 5}}),
            "ExpiresAt": _utcnow() + dt.timedelta(hours=1),
            "UpdatedDate": _utcnow(),
        }

        class RacingConnection:
            """Reports that the UPDATE found no row, as when another writer inserts in between."""

            def __init__(self, conn):
                self.conn, self.updates = conn, 0

            def execute(self, statement):
                if statement.is_update and self.updates == 0:  # the row "appears" after this UPDATE
                    self.updates += 1
                    return type("Result", (), {"rowcount": 0})()
                return self.conn.execute(statement)

            def begin_nested(self):
                return self.conn.begin_nested()

        with db_engine.begin() as conn:
            store._upsert_generic(RacingConnection(conn), row)
        assert store.get(KEY) == {"cursor": 5}

    def test_put_rejects_keys_wider_than_the_column(self, db_engine):
        with pytest.raises(ValueError, match="more than 400"):
            DatabaseCheckpointStore(db_engine).put("k" * 401, VALUE)

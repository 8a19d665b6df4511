"""Checkpoint stores on a real Redis and a real database (SQLite, PostgreSQL), fallback and device cache."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select, update

from include.carrier_optimization.amop import checkpoints as ck
from include.carrier_optimization.amop.checkpoints import (
    DEVICE_CACHE_TTL_SECONDS,
    DatabaseCheckpointStore,
    DeviceCache,
    FallbackCheckpointStore,
    RedisCheckpointStore,
    checkpoint_key,
    checkpoint_prefix,
    device_cache_key,
    redis_available,
)
from include.carrier_optimization.amop.schema import checkpoint as checkpoint_table

DAG_ID = "carrier_optimization__acme"
RUN_ID = "manual__2025-01-31T00:00:00+00:00"
KEY = checkpoint_key(DAG_ID, RUN_ID, "optimize", 3)
VALUE = {"cursor": 17, "best": {"queue_id": 42, "total_cost": 1234.5678}, "done": [1, 2, 3], "note": None}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fast_client(port: int) -> redis.Redis:
    """A client that fails at once when nothing listens (no retries, short timeouts)."""
    return redis.Redis(
        host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=1
    )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@pytest.fixture
def redis_server():
    """A private ``redis-server`` on a free port (no persistence); killed by pid at teardown."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    port = _free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = _fast_client(port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"redis-server on port {port} did not start")
            time.sleep(0.05)
    yield process, client
    client.close()
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


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
        monkeypatch.setattr(ck, "_NATIVE_UPSERT", {})
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


class TestFallbackCheckpointStore:
    """Redis written through to the database; Redis going away degrades once and loses nothing."""

    @pytest.fixture
    def database(self, db_engine):
        return DatabaseCheckpointStore(db_engine)

    def test_healthy_writes_both_and_never_degrades(self, redis_client, database):
        calls = []
        store = FallbackCheckpointStore(RedisCheckpointStore(redis_client), database, on_degrade=calls.append)
        store.put(KEY, VALUE)
        assert RedisCheckpointStore(redis_client).get(KEY) == VALUE
        assert database.get(KEY) == VALUE
        assert store.get(KEY) == VALUE
        assert redis_client.ttl(KEY) > 0
        store.delete(KEY)
        assert redis_client.get(KEY) is None and database.get(KEY) is None
        assert calls == [] and not store.degraded

    def test_reads_return_the_newest_copy(self, redis_client, database):
        """A Redis copy that missed writes during an outage must not shadow the database's newer one."""
        redis_store = RedisCheckpointStore(redis_client)
        store = FallbackCheckpointStore(redis_store, database)
        redis_store.put(KEY, {"cursor": 5})
        time.sleep(0.01)
        database.put(KEY, {"cursor": 8})
        assert store.get(KEY) == {"cursor": 8}
        time.sleep(0.01)
        redis_store.put(KEY, {"cursor": 9})
        assert store.get(KEY) == {"cursor": 9}
        database.delete(KEY)
        assert store.get(KEY) == {"cursor": 9}

    def test_delete_prefix_counts_each_checkpoint_once(self, redis_client, database):
        store = FallbackCheckpointStore(RedisCheckpointStore(redis_client), database)
        for i in range(3):
            store.put(checkpoint_key(DAG_ID, RUN_ID, "optimize", i), {"i": i})
        assert store.delete_prefix(checkpoint_prefix(DAG_ID, RUN_ID)) == 3
        assert (
            redis_client.keys("*") == []
            and database.get(checkpoint_key(DAG_ID, RUN_ID, "optimize", 0)) is None
        )

    def test_redis_on_a_closed_port_degrades_once(self, database, caplog):
        calls = []
        primary = RedisCheckpointStore(_fast_client(_free_port()))
        store = FallbackCheckpointStore(primary, database, on_degrade=calls.append)
        with caplog.at_level(logging.WARNING, logger=ck.__name__):
            store.put(KEY, VALUE)
            store.put("k2", {"cursor": 2})
            assert store.get(KEY) == VALUE
            assert store.get("k2") == {"cursor": 2}
            store.delete("k2")
            assert store.get("k2") is None
            assert store.delete_prefix(checkpoint_prefix(DAG_ID)) == 1
        assert len(calls) == 1 and isinstance(calls[0], redis.exceptions.ConnectionError)
        assert store.degraded and store.degraded_by is calls[0]
        warnings = [r for r in caplog.records if "is unavailable" in r.getMessage()]
        assert len(warnings) == 1
        assert "RedisCheckpointStore" in warnings[0].getMessage()
        assert "DatabaseCheckpointStore" in warnings[0].getMessage()

    def test_redis_dying_mid_run_loses_nothing(self, redis_server, database):
        process, client = redis_server
        calls = []
        store = FallbackCheckpointStore(RedisCheckpointStore(client), database, on_degrade=calls.append)
        keys = [checkpoint_key(DAG_ID, RUN_ID, "optimize", i) for i in range(4)]
        store.put(keys[0], {"cursor": 1})
        store.put(keys[1], {"cursor": 1})
        assert client.get(keys[0]) is not None and calls == []

        process.kill()  # no persistence: everything Redis held is gone for good
        process.wait(timeout=10)

        store.put(keys[0], {"cursor": 2})  # the write that meets the dead server completes on the database
        store.put(keys[2], {"cursor": 1})
        assert calls and len(calls) == 1 and isinstance(calls[0], redis.exceptions.ConnectionError)
        assert store.get(keys[0]) == {"cursor": 2}  # written after the switch
        assert store.get(keys[1]) == {"cursor": 1}  # written before the switch, only in Redis's memory
        assert store.get(keys[2]) == {"cursor": 1}
        assert store.get(keys[3]) is None
        assert len(calls) == 1

        # A later task attempt, with Redis back but empty, still resumes from the database.
        with redis_server_on(client.connection_pool.connection_kwargs["port"]) as fresh:
            later = FallbackCheckpointStore(RedisCheckpointStore(fresh), database, on_degrade=calls.append)
            assert [later.get(k) for k in keys] == [{"cursor": 2}, {"cursor": 1}, {"cursor": 1}, None]
            later.put(keys[3], {"cursor": 7})
            assert RedisCheckpointStore(fresh).get(keys[3]) == {"cursor": 7}
        assert len(calls) == 1

    def test_on_degrade_is_called_once_under_concurrency(self, database):
        calls = []
        store = FallbackCheckpointStore(
            RedisCheckpointStore(_fast_client(_free_port())), database, on_degrade=calls.append
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: store.put(f"k{i}", {"i": i}), range(32)))
        assert len(calls) == 1
        assert [store.get(f"k{i}") for i in range(32)] == [{"i": i} for i in range(32)]

    def test_a_failing_on_degrade_does_not_fail_the_run(self, database, caplog):
        def boom(error):
            raise RuntimeError("mail server down")

        store = FallbackCheckpointStore(
            RedisCheckpointStore(_fast_client(_free_port())), database, on_degrade=boom
        )
        with caplog.at_level(logging.ERROR, logger=ck.__name__):
            store.put(KEY, VALUE)
        assert store.get(KEY) == VALUE
        assert "on_degrade callback failed" in caplog.text and "mail server down" in caplog.text

    def test_other_primary_errors_propagate(self, redis_client, database):
        """Only "unavailable" errors degrade; a programming error (here a wrong-type key) is raised."""
        redis_client.rpush(KEY, "x")
        store = FallbackCheckpointStore(RedisCheckpointStore(redis_client), database)
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            store.get(KEY)
        assert not store.degraded


class redis_server_on:  # noqa: N801 - used like a function
    """Context manager: a fresh ``redis-server`` on ``port`` (after the previous one died), killed on exit."""

    def __init__(self, port: int) -> None:
        self.port = port

    def __enter__(self) -> redis.Redis:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = _fast_client(self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return self.client
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.__exit__()
                    pytest.fail(f"redis-server did not restart on port {self.port}")
                time.sleep(0.05)

    def __exit__(self, *exc_info) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class TestRedisAvailable:
    def test_reachable(self, redis_client):
        ok, message = redis_available(redis_client)
        assert ok
        db = redis_client.connection_pool.connection_kwargs["db"]
        assert message.startswith(f"Redis at 127.0.0.1:6379 db {db} answered PING in ")

    def test_closed_port_answers_quickly_with_the_reason(self):
        port = _free_port()
        # The client's own retry policy and timeouts are not used by the probe.
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=30, socket_timeout=30)
        ok, message = redis_available(client, timeout=0.5)
        assert not ok
        assert message.startswith(f"Redis at 127.0.0.1:{port} db 0 is unreachable: ConnectionError")

    def test_probe_leaves_the_client_usable(self, redis_client):
        redis_available(redis_client)
        redis_client.set("after-probe", b"1")
        assert redis_client.get("after-probe") == b"1"


def _devices(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "device_id": np.arange(1, n + 1, dtype=np.int64),
            "iccid": [f"8901260{i:013d}" for i in range(n)],
            "comm_plan": rng.choice(["IoT Basic", "IoT: Pool/2"], n),
            "usage_mb": rng.gamma(0.6, 300.0, n),
            "sms": rng.integers(0, 40, n),
            "days_active": rng.integers(1, 31, n).astype(np.int32),
            "is_active": rng.random(n) > 0.1,
            "activated": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
            "current_plan_id": pd.array(rng.integers(1, 9, n), dtype="Int64"),
        }
    )
    frame.loc[::7, "current_plan_id"] = pd.NA
    frame.loc[::11, "iccid"] = None
    return frame


class CountingLoader:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.calls = frame, 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return self.frame


class TestDeviceCache:
    def test_miss_loads_and_caches_then_hit_skips_the_loader(self, redis_client):
        frame = _devices(1000)
        loader = CountingLoader(frame)
        cache = DeviceCache(redis_client)
        first = cache.get_or_load(7, 3, loader)
        second = cache.get_or_load(7, 3, loader)
        assert loader.calls == 1
        pd.testing.assert_frame_equal(first, frame)
        pd.testing.assert_frame_equal(second, frame)
        assert 0 < redis_client.ttl("carrier_opt:7:3:sims") <= DEVICE_CACHE_TTL_SECONDS == 48 * 3600

    def test_entries_are_per_instance_and_comm_group(self, redis_client):
        cache = DeviceCache(redis_client)
        cache.put(7, 3, _devices(10, seed=1))
        assert cache.get(7, 4) is None and cache.get(8, 3) is None
        pd.testing.assert_frame_equal(cache.get(7, 3), _devices(10, seed=1))
        cache.invalidate(7, 3)
        assert cache.get(7, 3) is None

    @pytest.mark.parametrize(
        "frame",
        [
            _devices(0),
            _devices(200).set_index("device_id"),
            _devices(200).set_index(["comm_plan", "device_id"]),
            _devices(50).astype({"comm_plan": "category"}),
            pd.DataFrame({"note": pd.Series(["a", None, "c"], dtype=object), 5: [1.5, np.nan, 2.0]}),
        ],
        ids=["empty", "index", "multi-index", "categorical", "object-and-int-names"],
    )
    def test_round_trip_keeps_columns_dtypes_values_and_index(self, redis_client, frame):
        cache = DeviceCache(redis_client)
        assert cache.put(1, 1, frame)
        pd.testing.assert_frame_equal(cache.get(1, 1), frame)

    def test_large_fleet_round_trip(self, redis_client):
        frame = _devices(100_000, seed=5)
        cache = DeviceCache(redis_client)
        assert cache.put(1, 2, frame)
        assert len(redis_client.get("carrier_opt:1:2:sims")) < 120 * len(frame)  # compact: ~ raw cell bytes
        pd.testing.assert_frame_equal(cache.get(1, 2), frame)

    def test_without_a_client_every_call_loads(self):
        loader = CountingLoader(_devices(5))
        cache = DeviceCache(None)
        cache.get_or_load(1, 1, loader)
        cache.get_or_load(1, 1, loader)
        assert loader.calls == 2

    def test_redis_down_falls_back_to_the_loader_and_warns_once(self, caplog):
        loader = CountingLoader(_devices(5))
        cache = DeviceCache(_fast_client(_free_port()))
        with caplog.at_level(logging.WARNING, logger=ck.__name__):
            results = [cache.get_or_load(1, 1, loader) for _ in range(3)]
        assert loader.calls == 3
        for result in results:
            pd.testing.assert_frame_equal(result, loader.frame)
        assert sum("Device cache unavailable" in r.getMessage() for r in caplog.records) == 1

    def test_redis_dying_mid_run_falls_back_to_the_loader(self, redis_server):
        process, client = redis_server
        loader = CountingLoader(_devices(20))
        cache = DeviceCache(client)
        cache.get_or_load(1, 1, loader)
        cache.get_or_load(1, 1, loader)
        assert loader.calls == 1
        process.kill()
        process.wait(timeout=10)
        pd.testing.assert_frame_equal(cache.get_or_load(1, 1, loader), loader.frame)
        assert loader.calls == 2 and cache.unavailable_by is not None

    def test_unreadable_entry_is_a_miss_and_is_replaced(self, redis_client, caplog):
        redis_client.set("carrier_opt:1:1:sims", b"not an npz", ex=60)
        loader = CountingLoader(_devices(5))
        cache = DeviceCache(redis_client)
        with caplog.at_level(logging.WARNING, logger=ck.__name__):
            pd.testing.assert_frame_equal(cache.get_or_load(1, 1, loader), loader.frame)
        assert "reading carrier_opt:1:1:sims failed" in caplog.text
        pd.testing.assert_frame_equal(cache.get_or_load(1, 1, loader), loader.frame)
        assert loader.calls == 1  # the second call was a hit on the replaced entry

    def test_unserialisable_frame_is_returned_uncached(self, redis_client):
        frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
        loader = CountingLoader(frame)
        cache = DeviceCache(redis_client)
        assert cache.get_or_load(1, 1, loader) is frame
        assert redis_client.get("carrier_opt:1:1:sims") is None
        assert cache.unavailable_by is None  # a bad frame does not switch the cache off

    def test_loader_errors_propagate(self, redis_client):
        def loader():
            raise LookupError("no devices for comm group 3")

        with pytest.raises(LookupError, match="comm group 3"):
            DeviceCache(redis_client).get_or_load(1, 3, loader)


class TestThrottledWriter:
    def test_writes_at_most_once_per_interval(self, monkeypatch):
        from include.carrier_optimization.amop import checkpoints

        clock = iter([0.0, 0.5, 1.0, 2.1, 2.2, 4.5])
        monkeypatch.setattr(checkpoints.time, "monotonic", lambda: next(clock))
        written = []
        writer = checkpoints.ThrottledWriter(written.append, seconds=2.0)  # created at t=0.0
        for cursor in (5, 10, 15, 20, 25):  # at t = 0.5, 1.0, 2.1, 2.2, 4.5
            writer(cursor)
        assert written == [15, 25]

"""Redis checkpoint stores: Redis written through to the database (degrading once), and the Redis probe."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from include.carrier_optimization.amop import redis_checkpoints
from include.carrier_optimization.amop.checkpoints import (
    DatabaseCheckpointStore,
    checkpoint_key,
    checkpoint_prefix,
)
from include.carrier_optimization.amop.redis_checkpoints import (
    FallbackCheckpointStore,
    RedisCheckpointStore,
    redis_available,
)
from tests.conftest import free_port
from tests.unit.include.carrier_optimization.amop.conftest import (
    DAG_ID,
    KEY,
    RUN_ID,
    VALUE,
    fast_client,
    redis_server_on,
)


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
        primary = RedisCheckpointStore(fast_client(free_port()))
        store = FallbackCheckpointStore(primary, database, on_degrade=calls.append)
        with caplog.at_level(logging.WARNING, logger=redis_checkpoints.__name__):
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
            RedisCheckpointStore(fast_client(free_port())), database, on_degrade=calls.append
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: store.put(f"k{i}", {"i": i}), range(32)))
        assert len(calls) == 1
        assert [store.get(f"k{i}") for i in range(32)] == [{"i": i} for i in range(32)]

    def test_a_failing_on_degrade_does_not_fail_the_run(self, database, caplog):
        def boom(error):
            raise RuntimeError("mail server down")

        store = FallbackCheckpointStore(
            RedisCheckpointStore(fast_client(free_port())), database, on_degrade=boom
        )
        with caplog.at_level(logging.ERROR, logger=redis_checkpoints.__name__):
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


class TestRedisAvailable:
    def test_reachable(self, redis_client):
        ok, message = redis_available(redis_client)
        assert ok
        db = redis_client.connection_pool.connection_kwargs["db"]
        assert message.startswith(f"Redis at 127.0.0.1:6379 db {db} answered PING in ")

    def test_closed_port_answers_quickly_with_the_reason(self):
        port = free_port()
        # The client's own retry policy and timeouts are not used by the probe.
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=30, socket_timeout=30)
        ok, message = redis_available(client, timeout=0.5)
        assert not ok
        assert message.startswith(f"Redis at 127.0.0.1:{port} db 0 is unreachable: ConnectionError")

    def test_probe_leaves_the_client_usable(self, redis_client):
        redis_available(redis_client)
        redis_client.set("after-probe", b"1")
        assert redis_client.get("after-probe") == b"1"

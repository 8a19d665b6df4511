"""CheckpointHook: lazy cached Redis client from the Airflow connection, store choice per configuration."""

from __future__ import annotations

import inspect
import json

import pytest
import redis

from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore, checkpoint_key
from include.carrier_optimization.amop.device_cache import DeviceCache
from include.carrier_optimization.amop.redis_checkpoints import FallbackCheckpointStore, RedisCheckpointStore
from plugins.hooks.checkpoint import CheckpointHook
from tests.conftest import REDIS_URL, free_port

CONN_ENV = "AIRFLOW_CONN_REDIS_DEFAULT"
TEST_DB = int(REDIS_URL.rsplit("/", 1)[1])  # the test database of tests/conftest.py (default 15)
LOCAL_REDIS = json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 6379, "extra": {"db": TEST_DB}})
KEY = checkpoint_key("carrier_optimization__acme", "manual__1", "optimize", 0)


@pytest.fixture
def no_redis_connection(monkeypatch):
    monkeypatch.delenv(CONN_ENV, raising=False)


@pytest.fixture
def local_redis_connection(monkeypatch, redis_client):
    monkeypatch.setenv(CONN_ENV, LOCAL_REDIS)
    return redis_client


@pytest.fixture
def sqlite_engine(sqlite_url):
    from include.carrier_optimization.amop.schema import create_schema
    from include.carrier_optimization.amop.storage import make_engine

    engine = make_engine(sqlite_url)
    create_schema(engine)
    yield engine
    engine.dispose()


class TestCheckpointHook:
    def test_constructor_takes_only_the_connection_id(self):
        params = list(inspect.signature(CheckpointHook.__init__).parameters)
        assert params == ["self", "redis_conn_id", "kwargs"]
        assert CheckpointHook.default_conn_name == "redis_default"
        assert CheckpointHook.conn_name_attr == "redis_conn_id"

    def test_a_uri_connection_selects_its_database(self, redis_client, monkeypatch):
        monkeypatch.setenv(CONN_ENV, f"redis://127.0.0.1:6379/{TEST_DB}")
        client = CheckpointHook().get_conn()
        assert client.connection_pool.connection_kwargs["db"] == TEST_DB
        client.set("carrier_opt:probe", b"1")
        assert redis_client.get("carrier_opt:probe") == b"1"  # written where the URI says, not in db 0

    def test_a_db_extra_wins_over_the_uri_path(self, monkeypatch):
        monkeypatch.setenv(
            CONN_ENV,
            json.dumps({"conn_type": "redis", "host": "127.0.0.1", "schema": "4", "extra": {"db": 5}}),
        )
        assert CheckpointHook().get_conn().connection_pool.connection_kwargs["db"] == 5

    def test_construction_does_no_io(self, local_redis_connection, monkeypatch):
        from plugins.compat import BaseHook

        lookups = []

        def recording(cls, conn_id):
            lookups.append(conn_id)
            raise AssertionError("no connection lookup expected")

        monkeypatch.setattr(BaseHook, "get_connection", classmethod(recording))
        hook = CheckpointHook()
        assert hook.redis is None and lookups == []
        with pytest.raises(AssertionError, match="no connection lookup expected"):
            hook.get_conn()  # the patch is effective: the first get_conn() is what looks up
        assert lookups == ["redis_default"]

    def test_get_conn_builds_once_and_caches(self, local_redis_connection):
        hook = CheckpointHook()
        client = hook.get_conn()
        assert isinstance(client, redis.Redis)
        assert hook.get_conn() is client and hook.redis is client
        assert client.connection_pool.connection_kwargs["db"] == TEST_DB
        client.set("hook-probe", b"1")
        assert local_redis_connection.get("hook-probe") == b"1"

    def test_get_conn_bounds_timeouts_and_retries(self, local_redis_connection):
        kwargs = CheckpointHook().get_conn().connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == CheckpointHook.socket_timeout
        assert kwargs["socket_connect_timeout"] == CheckpointHook.socket_connect_timeout
        assert kwargs["retry"].get_retries() == CheckpointHook.retries

    @pytest.mark.parametrize("conn_id", [None, "redis_default"], ids=["no-conn-id", "conn-not-defined"])
    def test_get_conn_is_none_when_not_configured(self, no_redis_connection, conn_id):
        hook = CheckpointHook(redis_conn_id=conn_id)
        assert hook.get_conn() is None
        assert hook.get_conn() is None

    def test_not_defined_is_looked_up_once(self, no_redis_connection, monkeypatch):
        from airflow.providers.redis.hooks.redis import RedisHook

        lookups = []
        original = RedisHook.get_conn

        def counting(self):
            lookups.append(self.redis_conn_id)
            return original(self)

        monkeypatch.setattr(RedisHook, "get_conn", counting)
        hook = CheckpointHook()
        hook.get_conn()
        hook.get_conn()
        assert lookups == ["redis_default"]

    def test_store_without_redis_is_the_database(self, no_redis_connection, sqlite_engine):
        store = CheckpointHook().get_store(sqlite_engine)
        assert type(store) is DatabaseCheckpointStore
        store.put(KEY, {"cursor": 3})
        assert DatabaseCheckpointStore(sqlite_engine).get(KEY) == {"cursor": 3}

    def test_store_with_redis_writes_through_both(self, local_redis_connection, sqlite_engine):
        calls = []
        store = CheckpointHook().get_store(sqlite_engine, on_degrade=calls.append)
        assert isinstance(store, FallbackCheckpointStore)
        assert isinstance(store.primary, RedisCheckpointStore)
        assert isinstance(store.fallback, DatabaseCheckpointStore)
        store.put(KEY, {"cursor": 4})
        assert RedisCheckpointStore(local_redis_connection).get(KEY) == {"cursor": 4}
        assert local_redis_connection.ttl(KEY) > 0
        assert DatabaseCheckpointStore(sqlite_engine).get(KEY) == {"cursor": 4}
        assert calls == []

    def test_store_with_unreachable_redis_degrades(self, monkeypatch, sqlite_engine):
        monkeypatch.setenv(CONN_ENV, f'{{"conn_type":"redis","host":"127.0.0.1","port":{free_port()}}}')
        calls = []
        store = CheckpointHook().get_store(sqlite_engine, on_degrade=calls.append)
        store.put(KEY, {"cursor": 5})
        assert store.get(KEY) == {"cursor": 5}
        assert len(calls) == 1 and isinstance(calls[0], redis.exceptions.ConnectionError)

    def test_device_cache_uses_the_client(self, local_redis_connection):
        hook = CheckpointHook()
        cache = hook.get_device_cache()
        assert isinstance(cache, DeviceCache) and cache.client is hook.get_conn()

    def test_device_cache_without_redis_has_no_client(self, no_redis_connection):
        assert CheckpointHook().get_device_cache().client is None

    def test_test_connection(self, local_redis_connection):
        ok, message = CheckpointHook().test_connection()
        assert ok and f"127.0.0.1:6379 db {TEST_DB} answered PING" in message

    @pytest.mark.parametrize(
        "conn_id, match",
        [(None, "no connection id"), ("redis_default", "connection 'redis_default' is not defined")],
        ids=["no-conn-id", "conn-not-defined"],
    )
    def test_test_connection_not_configured(self, no_redis_connection, conn_id, match):
        ok, message = CheckpointHook(redis_conn_id=conn_id).test_connection()
        assert not ok and match in message

    def test_test_connection_unreachable(self, monkeypatch):
        port = free_port()
        monkeypatch.setenv(CONN_ENV, f'{{"conn_type":"redis","host":"127.0.0.1","port":{port}}}')
        ok, message = CheckpointHook().test_connection()
        assert not ok and f"127.0.0.1:{port} db 0 is unreachable" in message

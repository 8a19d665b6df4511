"""Hook giving library code the checkpoint store and the device cache from the `redis` connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from airflow.providers.redis.hooks.redis import RedisHook
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop.checkpoints import CheckpointStore, DatabaseCheckpointStore
from include.carrier_optimization.amop.device_cache import DeviceCache
from include.carrier_optimization.amop.redis_checkpoints import (
    FallbackCheckpointStore,
    RedisCheckpointStore,
    redis_available,
)
from plugins.compat import AirflowNotFoundException, BaseHook


class CheckpointHook(BaseHook):
    """Build the checkpoint store (docs/architecture.md) and the device-list cache from a Redis connection.

    Redis is optional. When ``redis_conn_id`` is ``None`` or names no defined connection, Redis is
    "not configured": :meth:`get_conn` returns ``None``, :meth:`get_store` returns the database store
    alone and :meth:`get_device_cache` a cache that always loads (the laptop default). When it is
    configured, :meth:`get_store` returns Redis written through to the database, which degrades to the
    database alone (calling ``on_degrade`` once) if Redis stops answering mid-run.

    Construction does no I/O. The client is built on the first :meth:`get_conn` through the Redis
    provider's ``RedisHook`` (same connection fields and extras) and cached; its socket timeouts and
    retries are bounded by the class attributes below, so an unreachable Redis costs seconds, not
    minutes, before the run degrades.

    :param redis_conn_id: Airflow connection id of the Redis cache (default ``redis_default``);
        ``None`` to run without Redis.
    """

    conn_name_attr = "redis_conn_id"
    default_conn_name = "redis_default"
    conn_type = "redis"
    hook_name = "Carrier optimization checkpoints"

    #: Seconds to wait for a Redis answer and for a TCP connection.
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 2.0
    #: Retries of a Redis command after a connection error or timeout (short exponential backoff).
    retries: int = 1

    def __init__(self, redis_conn_id: str | None = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redis_conn_id = redis_conn_id
        self.redis: redis.Redis | None = None
        self._resolved = False

    def get_conn(self) -> redis.Redis | None:
        """Return the cached Redis client, or ``None`` when Redis is not configured.

        The first call looks the connection up and builds the client (no command is sent); later
        calls return the same object.
        """
        if not self._resolved:
            self.redis = self._build_client()
            self._resolved = True
        return self.redis

    def _build_client(self) -> redis.Redis | None:
        if self.redis_conn_id is None:
            self.log.info("No Redis connection id given: checkpoints and device lists use the database only")
            return None
        try:
            client = RedisHook(redis_conn_id=self.redis_conn_id).get_conn()
        except AirflowNotFoundException:
            self.log.info(
                "Connection %s is not defined: checkpoints and device lists use the database only",
                self.redis_conn_id,
            )
            return None
        pool = getattr(client, "connection_pool", None)
        if pool is not None:  # RedisCluster keeps per-node pools: its defaults stay in force
            db = self._uri_database()
            if db is not None:  # RedisHook reads the database only from the `db` extra
                pool.connection_kwargs["db"] = db
            timeouts = {
                "socket_timeout": self.socket_timeout,
                "socket_connect_timeout": self.socket_connect_timeout,
            }
            pool.connection_kwargs.update(timeouts)
            for name, value in timeouts.items():  # redis-py keeps the originals for maintenance events
                if f"orig_{name}" in pool.connection_kwargs:
                    pool.connection_kwargs[f"orig_{name}"] = value
            client.set_retry(Retry(ExponentialBackoff(cap=0.5, base=0.05), self.retries))
        return client

    def _uri_database(self) -> int | None:
        """The database of a ``redis://host:port/N`` connection (schema) unless a ``db`` extra names one."""
        conn = self.get_connection(self.redis_conn_id)
        if "db" in (conn.extra_dejson or {}) or not str(conn.schema or "").isdigit():
            return None
        return int(conn.schema)

    def get_store(
        self, engine: Engine, *, on_degrade: Callable[[BaseException], object] | None = None
    ) -> CheckpointStore:
        """Return the checkpoint store for this configuration.

        Redis configured: a ``FallbackCheckpointStore`` writing through Redis and the database,
        degrading to the database alone on the first Redis connection error. Not configured: a
        ``DatabaseCheckpointStore``.

        :param engine: SQLAlchemy engine of the AMOP database (table ``OptimizationCheckpoint``).
        :param on_degrade: called once with the Redis error if the store degrades (default: none;
            the store logs a warning either way).
        """
        client = self.get_conn()
        database = DatabaseCheckpointStore(engine)
        if client is None:
            return database
        return FallbackCheckpointStore(RedisCheckpointStore(client), database, on_degrade=on_degrade)

    def get_device_cache(self) -> DeviceCache:
        """Return the read-through device-list cache (it always loads when Redis is not configured)."""
        return DeviceCache(self.get_conn())

    def test_connection(self) -> tuple[bool, str]:
        """Ping Redis with a short timeout; return ``(status, message)`` instead of raising.

        ``(False, ...)`` also when Redis is not configured; callers that treat "not configured" as
        normal check ``get_conn() is None`` first.
        """
        client = self.get_conn()
        if client is None:
            if self.redis_conn_id is None:
                return False, "Redis is not configured (no connection id)"
            return False, f"Redis is not configured (connection {self.redis_conn_id!r} is not defined)"
        return redis_available(client, timeout=self.socket_connect_timeout)

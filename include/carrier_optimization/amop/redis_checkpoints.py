"""Checkpoint stores on Redis: Redis alone, Redis written through to the database, and the Redis probe.

Keys, values and the store protocol are those of ``checkpoints`` (docs/architecture.md, "Checkpoints
and resume"); every Redis write sets a TTL. Nothing here connects at import: stores receive a client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from include.carrier_optimization.amop.checkpoints import (
    DEFAULT_TTL_SECONDS,
    CheckpointEntry,
    CheckpointStore,
    decode_value,
    encode_value,
    ttl_iv,
)

__all__ = [
    "REDIS_UNAVAILABLE_ERRORS",
    "FallbackCheckpointStore",
    "RedisCheckpointStore",
    "redis_available",
]

LOG = logging.getLogger(__name__)

#: Redis errors that mean "the cache is not usable now": refused or dropped connections, timeouts,
#: failed authentication (a ``ConnectionError`` subclass) and a read-only replica after a failover.
REDIS_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)


# -- Redis ------------------------------------------------------------------------------------------


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisCheckpointStore:
    """Checkpoints in Redis: ``SET key envelope EX ttl`` on every write, so nothing outlives its TTL.

    Parameters
    ----------
    client : redis.Redis
        A client; ``decode_responses`` may be on or off.
    ttl_seconds : int, optional
        Default TTL of every write (default :data:`DEFAULT_TTL_SECONDS`, three days); a write may
        pass its own.

    Notes
    -----
    Redis errors propagate; :class:`FallbackCheckpointStore` turns the "unavailable" ones into a
    switch to the database.
    """

    def __init__(self, client: redis.Redis, *, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.client = client
        self.ttl_seconds = ttl_iv(ttl_seconds)

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the data under ``key`` or ``None``; see :class:`CheckpointStore`."""
        entry = self.get_entry(key)
        return None if entry is None else entry.data

    def get_entry(self, key: str) -> CheckpointEntry | None:
        """Return the data under ``key`` with its write time, or ``None``."""
        raw = self.client.get(key)
        return None if raw is None else decode_value(key, raw)

    def put(self, key: str, value: dict[str, Any], *, ttl_seconds: int | None = None) -> None:
        """Store ``value`` under ``key`` with a TTL (``ttl_seconds`` or the store's default)."""
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_iv(ttl_seconds)
        self.client.set(key, encode_value(key, value), ex=ttl)

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        self.client.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        """Remove the keys starting with ``prefix`` (``SCAN``, ``DEL`` per 500 keys); return the count."""
        removed, batch = 0, []
        for key in self.client.scan_iter(match=_glob_escape(prefix) + "*", count=500):
            batch.append(key)
            if len(batch) == 500:
                removed += self.client.delete(*batch)
                batch = []
        if batch:
            removed += self.client.delete(*batch)
        return removed


# -- Redis with database fallback -------------------------------------------------------------------


class FallbackCheckpointStore:
    """A primary store (Redis) written through to a fallback store (the database); degrades, never fails.

    Semantics, chosen so that Redis going away in the middle of a run neither fails the run nor loses
    a checkpoint:

    - **put** writes the fallback first (the durable record), then the primary. Every checkpoint is
      therefore in the database whatever happens to Redis later: an eviction, a restart without
      persistence, a failover, or an outage while the task that wrote it is deferred.
    - **get** reads both and returns the most recently written entry (envelope time ``t``). This
      never returns a stale Redis copy that missed writes while some task ran degraded, and never
      misses a value written before or after a switch.
    - **delete** / **delete_prefix** remove from both.
    - The first "unavailable" error of the primary (:data:`REDIS_UNAVAILABLE_ERRORS`) logs one
      warning, calls ``on_degrade(error)`` once and switches the store to the fallback alone for the
      rest of its life (one task attempt); the operation that hit the error completes on the
      fallback. A failing ``on_degrade`` is logged, not raised. Errors of the fallback propagate.

    The price of write-through is one small upsert per checkpoint write; checkpoints are written per
    chunk of work (seconds to minutes apart), so the database load stays small. The bulk payload
    that Redis is really for, the device list, goes through ``device_cache.DeviceCache`` instead.

    Known limit: a delete made while degraded cannot reach Redis, so the old Redis copy survives
    until its TTL; a later attempt may then resume from that older cursor and redo some work, which
    is harmless because every task is idempotent.

    Parameters
    ----------
    primary : CheckpointStore
        Normally a :class:`RedisCheckpointStore`.
    fallback : CheckpointStore
        Normally a :class:`~include.carrier_optimization.amop.checkpoints.DatabaseCheckpointStore`.
    on_degrade : callable, optional
        Called once with the error that made the store degrade (e.g. to send the alert e-mail).
    degrade_on : tuple of exception types, optional
        Errors of the primary that mean "unavailable" (default :data:`REDIS_UNAVAILABLE_ERRORS`).
    """

    def __init__(
        self,
        primary: CheckpointStore,
        fallback: CheckpointStore,
        *,
        on_degrade: Callable[[BaseException], object] | None = None,
        degrade_on: tuple[type[BaseException], ...] = REDIS_UNAVAILABLE_ERRORS,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.on_degrade = on_degrade
        self.degrade_on = degrade_on
        self.degraded_by: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        """Whether the store has switched to the fallback alone."""
        return self.degraded_by is not None

    def _degrade(self, error: BaseException) -> None:
        with self._lock:
            if self.degraded_by is not None:
                return
            self.degraded_by = error
        LOG.warning(
            "Checkpoint store %s is unavailable (%s: %s); continuing on %s alone for this task",
            type(self.primary).__name__,
            type(error).__name__,
            error,
            type(self.fallback).__name__,
        )
        if self.on_degrade is not None:
            try:
                self.on_degrade(error)
            except Exception:
                LOG.exception("on_degrade callback failed; the run continues in degraded mode")

    def _on_primary(self, operation: Callable[[], Any]) -> tuple[bool, Any]:
        """Run ``operation`` on the primary unless degraded; return (ran, result)."""
        if self.degraded_by is not None:
            return False, None
        try:
            return True, operation()
        except self.degrade_on as error:
            self._degrade(error)
            return False, None

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the newest data under ``key`` in either store, or ``None``."""
        entry = self.get_entry(key)
        return None if entry is None else entry.data

    def get_entry(self, key: str) -> CheckpointEntry | None:
        """Return the most recently written entry under ``key`` in either store, or ``None``."""
        _, from_primary = self._on_primary(lambda: self.primary.get_entry(key))
        from_fallback = self.fallback.get_entry(key)
        entries = [e for e in (from_primary, from_fallback) if e is not None]
        return max(entries, key=lambda e: e.written_at) if entries else None

    def put(self, key: str, value: dict[str, Any], *, ttl_seconds: int | None = None) -> None:
        """Write ``value`` to the fallback, then to the primary unless degraded."""
        self.fallback.put(key, value, ttl_seconds=ttl_seconds)
        self._on_primary(lambda: self.primary.put(key, value, ttl_seconds=ttl_seconds))

    def delete(self, key: str) -> None:
        """Remove ``key`` from both stores (from the fallback only when degraded)."""
        self._on_primary(lambda: self.primary.delete(key))
        self.fallback.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        """Remove the keys starting with ``prefix`` from both; return the larger of the two counts."""
        _, from_primary = self._on_primary(lambda: self.primary.delete_prefix(prefix))
        return max(from_primary or 0, self.fallback.delete_prefix(prefix))


# -- availability -----------------------------------------------------------------------------------


def _describe(client: Any) -> str:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    db = kwargs.get("db") or 0
    if "path" in kwargs:
        return f"Redis at unix:{kwargs['path']} db {db}"
    return f"Redis at {kwargs.get('host', '?')}:{kwargs.get('port', '?')} db {db}"


def redis_available(client: Any, *, timeout: float = 2.0) -> tuple[bool, str]:
    """Ping Redis with a short timeout; return ``(reachable, message)`` instead of raising.

    The ping runs on a one-off connection built from ``client``'s settings with ``timeout`` as
    connect and read timeout and no retries, so an unreachable server answers within about
    ``timeout`` seconds whatever the client's own timeouts are.

    Parameters
    ----------
    client : redis.Redis
        The configured client.
    timeout : float, optional
        Seconds to wait for the connection and for the answer (default 2).

    Returns
    -------
    tuple of (bool, str)
        ``(True, "Redis at host:port db N answered PING in X ms")`` or
        ``(False, "Redis at host:port db N is unreachable: <error>")``. No password is shown.
    """
    where = _describe(client)
    probe = client
    pool = getattr(client, "connection_pool", None)
    if pool is not None and hasattr(pool, "connection_kwargs"):
        kwargs = {**pool.connection_kwargs, "socket_timeout": timeout, "socket_connect_timeout": timeout}
        kwargs["retry"] = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
        kwargs.pop("maint_notifications_pool_handler", None)  # bound to the client's own pool
        for name in ("orig_socket_timeout", "orig_socket_connect_timeout"):
            if name in kwargs:
                kwargs[name] = timeout
        probe = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )
    started = time.perf_counter()
    try:
        probe.ping()
    except redis.exceptions.RedisError as error:
        return False, f"{where} is unreachable: {type(error).__name__}: {error}"
    finally:
        if probe is not client:
            probe.close()
            probe.connection_pool.disconnect()
    return True, f"{where} answered PING in {(time.perf_counter() - started) * 1000:.0f} ms"

"""Checkpoint stores (Redis, database, Redis with database fallback) and the device-list cache.

Everything a task needs to resume after a retry, a clear or a deferral lives here, not in XCom
(docs/architecture.md). One key function names every checkpoint; every store speaks one protocol; values are
JSON envelopes ``{"v": 1, "t": <unix seconds written>, "data": {...}}`` and every Redis write sets a
TTL. Nothing here connects at import: stores receive a client or an engine.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import quote

import numpy as np
import pandas as pd
import redis
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from include.carrier_optimization.amop.schema import checkpoint as checkpoint_table

__all__ = [
    "CHECKPOINT_PREFIX",
    "DEFAULT_TTL_SECONDS",
    "DEVICE_CACHE_TTL_SECONDS",
    "KEY_MAX_LENGTH",
    "REDIS_UNAVAILABLE_ERRORS",
    "SCHEMA_VERSION",
    "CheckpointEntry",
    "CheckpointStore",
    "DatabaseCheckpointStore",
    "DeviceCache",
    "FallbackCheckpointStore",
    "RedisCheckpointStore",
    "checkpoint_key",
    "checkpoint_prefix",
    "device_cache_key",
    "redis_available",
]

LOG = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CHECKPOINT_PREFIX = "carrier_opt:ckpt:"
DEFAULT_TTL_SECONDS = 3 * 24 * 3600
DEVICE_CACHE_TTL_SECONDS = 48 * 3600
KEY_MAX_LENGTH = 400  # OptimizationCheckpoint.CheckpointKey is String(400)

#: Redis errors that mean "the cache is not usable now": refused or dropped connections, timeouts,
#: failed authentication (a ``ConnectionError`` subclass) and a read-only replica after a failover.
REDIS_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)


# -- keys -------------------------------------------------------------------------------------------


def _key_part(name: str, value: object) -> str:
    text = str(value)
    if not text:
        raise ValueError(f"`{name}` must be a non-empty string.")
    # Percent-encode everything but [A-Za-z0-9_.~-]: ':' can no longer split parts, '%' itself is
    # encoded (so the encoding is injective) and no Redis glob character survives.
    return quote(text, safe="")


def checkpoint_key(
    dag_id: str, run_id: str, task_id: str, map_index: int = -1, *, name: str = "cursor"
) -> str:
    """Return the key of one checkpoint of one task instance, the same in Redis and in the database.

    The key is ``carrier_opt:ckpt:{dag_id}:{run_id}:{task_id}:{map_index}:{name}``, every part
    percent-encoded (``urllib.parse.quote`` with no safe characters), so run ids such as
    ``manual__2025-01-31T00:00:00+00:00`` or ids holding spaces cannot collide or split a part.

    Parameters
    ----------
    dag_id, run_id, task_id : str
        The task instance; all non-empty.
    map_index : int, optional
        ``ti.map_index``; -1 (the default) for an unmapped task.
    name : str, optional
        Which checkpoint of the task instance (default ``"cursor"``), e.g. ``"best"``.

    Returns
    -------
    str
        The key, at most :data:`KEY_MAX_LENGTH` characters.

    Raises
    ------
    ValueError
        When a part is empty, ``map_index`` is not an integer >= -1, or the key exceeds
        :data:`KEY_MAX_LENGTH` characters (the database column width).

    Examples
    --------
    >>> checkpoint_key("carrier_optimization__acme", "manual__2025-01-31T00:00:00+00:00", "optimize", 3)
    'carrier_opt:ckpt:carrier_optimization__acme:manual__2025-01-31T00%3A00%3A00%2B00%3A00:optimize:3:cursor'
    """
    if isinstance(map_index, bool) or not isinstance(map_index, int | np.integer) or map_index < -1:
        raise ValueError(
            f"`map_index` must be an integer >= -1 (-1 for an unmapped task); got {map_index!r}."
        )
    key = checkpoint_prefix(dag_id, run_id) + ":".join(
        [_key_part("task_id", task_id), str(int(map_index)), _key_part("name", name)]
    )
    if len(key) > KEY_MAX_LENGTH:
        raise ValueError(
            f"Checkpoint key is {len(key)} characters, more than {KEY_MAX_LENGTH} (the width of "
            f"OptimizationCheckpoint.CheckpointKey); shorten the DAG, run, task id or name: {key[:80]}..."
        )
    return key


def checkpoint_prefix(dag_id: str, run_id: str | None = None) -> str:
    """Return the common key prefix of a DAG's checkpoints, or of one run's, for ``delete_prefix``.

    Parameters
    ----------
    dag_id : str
        The DAG.
    run_id : str, optional
        The run; ``None`` (the default) gives the prefix of every run of the DAG.

    Returns
    -------
    str
        ``carrier_opt:ckpt:{dag_id}:`` or ``carrier_opt:ckpt:{dag_id}:{run_id}:``, encoded as in
        :func:`checkpoint_key`, so that it matches exactly the keys of that DAG or run.
    """
    prefix = CHECKPOINT_PREFIX + _key_part("dag_id", dag_id) + ":"
    if run_id is not None:
        prefix += _key_part("run_id", run_id) + ":"
    return prefix


def device_cache_key(instance_id: int, comm_group_id: int) -> str:
    """Return the Redis key of a comm group's device list, ``carrier_opt:{instance}:{comm_group}:sims``."""
    instance, group = _key_part("instance_id", instance_id), _key_part("comm_group_id", comm_group_id)
    return f"carrier_opt:{instance}:{group}:sims"


# -- values ----------------------------------------------------------------------------------------


class CheckpointEntry(NamedTuple):
    """A decoded checkpoint: its data and when it was written (unix seconds, the writer's clock)."""

    data: dict[str, Any]
    written_at: float


def _ttl_iv(ttl_seconds: object) -> int:
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | np.integer) or ttl_seconds <= 0:
        raise ValueError(f"`ttl_seconds` must be a positive integer number of seconds; got {ttl_seconds!r}.")
    return int(ttl_seconds)


def _encode(key: str, value: dict[str, Any]) -> str:
    if not isinstance(value, dict):
        raise TypeError(f"Checkpoint {key}: the value must be a dict; got {type(value).__name__}.")
    try:
        return json.dumps({"v": SCHEMA_VERSION, "t": time.time(), "data": value}, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise TypeError(f"Checkpoint {key}: the value must be JSON-serialisable ({error}).") from error


def _decode(key: str, raw: str | bytes) -> CheckpointEntry | None:
    """Decode an envelope; a corrupt value or an unknown schema version is logged and reads as absent.

    Reading as absent is safe because every task is idempotent: it restarts from what the database
    says is done instead of trusting a checkpoint this code cannot interpret.
    """
    try:
        envelope = json.loads(raw)
    except (TypeError, ValueError):
        LOG.warning("Ignoring checkpoint %s: its value is not JSON", key)
        return None
    version = envelope.get("v") if isinstance(envelope, dict) else None
    if version != SCHEMA_VERSION:
        LOG.warning(
            "Ignoring checkpoint %s: schema version %r, this code reads version %d",
            key,
            version,
            SCHEMA_VERSION,
        )
        return None
    data, written_at = envelope.get("data"), envelope.get("t")
    if not isinstance(data, dict) or not isinstance(written_at, int | float):
        LOG.warning(
            "Ignoring checkpoint %s: version %d envelope without a dict `data` and a time `t`", key, version
        )
        return None
    return CheckpointEntry(data, float(written_at))


# -- the protocol ----------------------------------------------------------------------------------


@runtime_checkable
class CheckpointStore(Protocol):
    """What every checkpoint store offers; keys come from :func:`checkpoint_key`."""

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the data stored under ``key``, or ``None`` when absent, expired or unreadable."""
        ...

    def get_entry(self, key: str) -> CheckpointEntry | None:
        """Like :meth:`get`, with the time the value was written."""
        ...

    def put(self, key: str, value: dict[str, Any], *, ttl_seconds: int | None = None) -> None:
        """Store ``value`` (a JSON-serialisable dict) under ``key``, replacing any previous value."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing an absent key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` and return how many were removed."""
        ...


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
        self.ttl_seconds = _ttl_iv(ttl_seconds)

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the data under ``key`` or ``None``; see :class:`CheckpointStore`."""
        entry = self.get_entry(key)
        return None if entry is None else entry.data

    def get_entry(self, key: str) -> CheckpointEntry | None:
        """Return the data under ``key`` with its write time, or ``None``."""
        raw = self.client.get(key)
        return None if raw is None else _decode(key, raw)

    def put(self, key: str, value: dict[str, Any], *, ttl_seconds: int | None = None) -> None:
        """Store ``value`` under ``key`` with a TTL (``ttl_seconds`` or the store's default)."""
        ttl = self.ttl_seconds if ttl_seconds is None else _ttl_iv(ttl_seconds)
        self.client.set(key, _encode(key, value), ex=ttl)

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


# -- database --------------------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    """Naive UTC now, the form the AMOP ``DateTime`` columns hold."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# Dialects with a native single-statement upsert; others use update-then-insert (see _upsert_generic).
_NATIVE_UPSERT: dict[str, Callable[..., Any]] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


class DatabaseCheckpointStore:
    """Checkpoints in the ``OptimizationCheckpoint`` table, the fallback when Redis is absent or down.

    A write upserts one row (``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL,
    update-then-insert elsewhere) with ``ExpiresAt = now + ttl``; a read ignores rows whose
    ``ExpiresAt`` has passed, so an expired checkpoint is absent exactly as in Redis.
    :meth:`purge_expired` deletes such rows (the database does not expire them by itself).

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The AMOP database; each call runs in its own short transaction.
    ttl_seconds : int, optional
        Default lifetime of a write (default :data:`DEFAULT_TTL_SECONDS`).
    """

    def __init__(self, engine: Engine, *, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.engine = engine
        self.ttl_seconds = _ttl_iv(ttl_seconds)
        self.table = checkpoint_table

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the data under ``key`` or ``None``; see :class:`CheckpointStore`."""
        entry = self.get_entry(key)
        return None if entry is None else entry.data

    def get_entry(self, key: str) -> CheckpointEntry | None:
        """Return the unexpired data under ``key`` with its write time, or ``None``."""
        t = self.table
        query = select(t.c.Value).where(
            t.c.CheckpointKey == key, or_(t.c.ExpiresAt.is_(None), t.c.ExpiresAt > _utcnow())
        )
        with self.engine.connect() as conn:
            raw = conn.execute(query).scalar_one_or_none()
        return None if raw is None else _decode(key, raw)

    def put(self, key: str, value: dict[str, Any], *, ttl_seconds: int | None = None) -> None:
        """Upsert ``value`` under ``key``, expiring ``ttl_seconds`` (or the store's default) from now."""
        if len(key) > KEY_MAX_LENGTH:
            raise ValueError(
                f"Checkpoint key is {len(key)} characters, more than {KEY_MAX_LENGTH}: {key[:80]}..."
            )
        ttl = self.ttl_seconds if ttl_seconds is None else _ttl_iv(ttl_seconds)
        now = _utcnow()
        row = {
            "CheckpointKey": key,
            "Value": _encode(key, value),
            "ExpiresAt": now + dt.timedelta(seconds=ttl),
            "UpdatedDate": now,
        }
        with self.engine.begin() as conn:
            native = _NATIVE_UPSERT.get(conn.dialect.name)
            if native is None:
                self._upsert_generic(conn, row)
            else:
                stmt = native(self.table).values(**row)
                changes = {c: stmt.excluded[c] for c in ("Value", "ExpiresAt", "UpdatedDate")}
                conn.execute(
                    stmt.on_conflict_do_update(index_elements=[self.table.c.CheckpointKey], set_=changes)
                )

    def _upsert_generic(self, conn: Connection, row: dict[str, Any]) -> None:
        """Update, else insert; a concurrent insert of the same key (unique violation) becomes an update."""
        t = self.table
        changes = {c: row[c] for c in ("Value", "ExpiresAt", "UpdatedDate")}
        by_key = t.c.CheckpointKey == row["CheckpointKey"]
        if conn.execute(update(t).where(by_key).values(**changes)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(t).values(**row))
        except IntegrityError:
            conn.execute(update(t).where(by_key).values(**changes))

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        with self.engine.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.CheckpointKey == key))

    def delete_prefix(self, prefix: str) -> int:
        """Remove the rows whose key starts with ``prefix`` (``LIKE`` with escaping); return the count."""
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(self.table).where(self.table.c.CheckpointKey.startswith(prefix, autoescape=True))
            )
        return int(result.rowcount)

    def purge_expired(self) -> int:
        """Delete the rows whose ``ExpiresAt`` has passed; return how many were deleted."""
        t = self.table
        with self.engine.begin() as conn:
            result = conn.execute(delete(t).where(t.c.ExpiresAt.is_not(None), t.c.ExpiresAt <= _utcnow()))
        return int(result.rowcount)


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
    that Redis is really for, the device list, goes through :class:`DeviceCache` instead.

    Known limit: a delete made while degraded cannot reach Redis, so the old Redis copy survives
    until its TTL; a later attempt may then resume from that older cursor and redo some work, which
    is harmless because every task is idempotent.

    Parameters
    ----------
    primary : CheckpointStore
        Normally a :class:`RedisCheckpointStore`.
    fallback : CheckpointStore
        Normally a :class:`DatabaseCheckpointStore`.
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


# -- device-list cache ------------------------------------------------------------------------------

_FRAME_FORMAT = 1
_META = "__meta__"


def _frame_to_bytes(frame: pd.DataFrame) -> bytes:
    """Serialise a frame as an uncompressed ``.npz`` without pickle.

    Numeric, bool and datetime64 columns are stored as raw arrays, every other column (strings,
    nullable and categorical dtypes) as a JSON list, plus a JSON header naming columns, dtypes and
    index. No pickle is written, so reading needs none.
    """
    if not frame.columns.is_unique:
        raise ValueError("the frame has duplicate column names")
    index_names: list[Any] | None = None
    if not (isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1):
        index_names = list(frame.index.names)
        frame = frame.reset_index(names=[f"__index_{i}__" for i in range(frame.index.nlevels)])
    columns, arrays = [], {}
    for i, (name, series) in enumerate(frame.items()):
        field = f"c{i}"
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "biufcmM":
            arrays[field] = series.to_numpy()
            kind = "array"
        else:
            values = series.astype(object).where(series.notna(), None).tolist()
            arrays[field] = np.frombuffer(json.dumps(values).encode(), dtype=np.uint8)
            kind = "json"
        columns.append({"name": name, "kind": kind, "dtype": str(series.dtype)})
    meta = {"format": _FRAME_FORMAT, "columns": columns, "index": index_names, "rows": len(frame)}
    # With a non-default index, its levels are the first len(meta["index"]) columns.
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _frame_from_bytes(payload: bytes) -> pd.DataFrame:
    """Inverse of :func:`_frame_to_bytes`; raises ``ValueError`` on an unknown format."""
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        meta = json.loads(npz[_META].tobytes())
        if meta.get("format") != _FRAME_FORMAT:
            raise ValueError(f"device cache format {meta.get('format')!r}, this code reads {_FRAME_FORMAT}")
        data = {}
        for i, column in enumerate(meta["columns"]):
            raw = npz[f"c{i}"]
            if column["kind"] == "array":
                data[column["name"]] = raw
            else:
                values = json.loads(raw.tobytes())
                data[column["name"]] = pd.Series(values, dtype=pd.api.types.pandas_dtype(column["dtype"]))
    frame = pd.DataFrame(data, index=pd.RangeIndex(meta["rows"]))
    if meta["index"] is not None:
        frame = frame.set_index(list(frame.columns[: len(meta["index"])]))
        frame.index.names = meta["index"]
    return frame


class DeviceCache:
    """Read-through cache of a comm group's device list in Redis (key :func:`device_cache_key`, TTL 48 h).

    The cache is a convenience, never a requirement: with no client, with Redis down or with an
    unreadable entry, :meth:`get_or_load` calls the loader and returns its frame. Cache failures are
    logged (the first "unavailable" error once, as a warning, after which the cache stops trying for
    the life of this object) and never raised; errors of the loader propagate.

    Frames are stored as uncompressed ``.npz`` bytes (raw numeric arrays, JSON for string columns),
    about 8 bytes per numeric cell: 100,000 devices with a handful of columns take a few MB and
    round-trip in tens of milliseconds. Column names, dtypes, values and a non-default index survive.

    Parameters
    ----------
    client : redis.Redis or None
        The configured client; ``None`` when Redis is not configured (every call loads).
    ttl_seconds : int, optional
        Lifetime of an entry (default :data:`DEVICE_CACHE_TTL_SECONDS`, 48 hours).
    """

    def __init__(self, client: redis.Redis | None, *, ttl_seconds: int = DEVICE_CACHE_TTL_SECONDS) -> None:
        self.client = client
        self.ttl_seconds = _ttl_iv(ttl_seconds)
        self.unavailable_by: BaseException | None = None

    def _usable(self) -> bool:
        return self.client is not None and self.unavailable_by is None

    def _failed(self, action: str, key: str, error: BaseException) -> None:
        if isinstance(error, REDIS_UNAVAILABLE_ERRORS):
            self.unavailable_by = error
            LOG.warning(
                "Device cache unavailable (%s %s: %s); loading from the database from now on",
                action,
                key,
                error,
            )
        else:
            LOG.warning(
                "Device cache: %s %s failed (%s: %s); ignoring the cache for it",
                action,
                key,
                type(error).__name__,
                error,
            )

    def get(self, instance_id: int, comm_group_id: int) -> pd.DataFrame | None:
        """Return the cached device list, or ``None`` on a miss or any cache failure."""
        key = device_cache_key(instance_id, comm_group_id)
        if not self._usable():
            return None
        try:
            payload = self.client.get(key)
            return None if payload is None else _frame_from_bytes(payload)
        except Exception as error:  # a cache failure of any kind is a miss
            self._failed("reading", key, error)
            return None

    def put(self, instance_id: int, comm_group_id: int, frame: pd.DataFrame) -> bool:
        """Cache ``frame`` with the TTL; return whether it was stored (never raises for cache failures)."""
        key = device_cache_key(instance_id, comm_group_id)
        if not self._usable():
            return False
        try:
            self.client.set(key, _frame_to_bytes(frame), ex=self.ttl_seconds)
        except Exception as error:  # unserialisable frame or Redis failure: skip caching
            self._failed("writing", key, error)
            return False
        return True

    def invalidate(self, instance_id: int, comm_group_id: int) -> None:
        """Drop the cached device list (never raises for cache failures)."""
        key = device_cache_key(instance_id, comm_group_id)
        if not self._usable():
            return
        try:
            self.client.delete(key)
        except Exception as error:
            self._failed("deleting", key, error)

    def get_or_load(
        self, instance_id: int, comm_group_id: int, loader: Callable[[], pd.DataFrame]
    ) -> pd.DataFrame:
        """Return the cached device list, or ``loader()``'s frame after caching it.

        Parameters
        ----------
        instance_id, comm_group_id : int
            The optimization instance and comm group.
        loader : callable
            Returns the device list from the database; called only on a miss or a cache failure.

        Returns
        -------
        pandas.DataFrame
            The device list; equal (columns, dtypes, values, index) whether it came from the cache or
            the loader.
        """
        cached = self.get(instance_id, comm_group_id)
        if cached is not None:
            LOG.debug(
                "Device cache hit for instance %s comm group %s (%d rows)",
                instance_id,
                comm_group_id,
                len(cached),
            )
            return cached
        frame = loader()
        self.put(instance_id, comm_group_id, frame)
        return frame


class ThrottledWriter:
    """Call ``write(cursor)`` at most every ``seconds`` (checkpoint writes of a hot loop).

    Where the work itself commits a durable cursor (the optimizer's finished queues), the checkpoint only
    has to be recent: writing it after every chunk would cost more than it saves (``bench/resume.py``).

    Parameters
    ----------
    write : callable
        Receives the cursor.
    seconds : float
        Least time between two writes.
    """

    def __init__(self, write: Callable[[Any], None], seconds: float = 2.0) -> None:
        self.write = write
        self.seconds = seconds
        self.last = time.monotonic()

    def __call__(self, cursor: Any) -> None:
        """Write ``cursor`` when the last write is at least ``seconds`` old."""
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.write(cursor)
            self.last = now

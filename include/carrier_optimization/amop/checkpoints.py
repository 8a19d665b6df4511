"""Checkpoint keys, the store protocol and its database store (the ``OptimizationCheckpoint`` table).

Everything a task needs to resume after a retry, a clear or a deferral lives in a checkpoint store, not
in XCom (docs/architecture.md, "Checkpoints and resume"). One key function names every checkpoint;
every store speaks one protocol; values are JSON envelopes ``{"v": 1, "t": <unix seconds written>,
"data": {...}}`` and every write carries a TTL. The Redis stores are in ``redis_checkpoints``, the
device-list cache in ``device_cache``. Nothing here connects at import: stores receive an engine.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import quote

import numpy as np
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from include.carrier_optimization.amop import storage
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.schema import checkpoint as checkpoint_table

__all__ = [
    "CHECKPOINT_PREFIX",
    "DEFAULT_TTL_SECONDS",
    "KEY_MAX_LENGTH",
    "SCHEMA_VERSION",
    "CheckpointEntry",
    "CheckpointStore",
    "DatabaseCheckpointStore",
    "checkpoint_key",
    "checkpoint_prefix",
    "decode_value",
    "device_cache_key",
    "encode_value",
    "ttl_iv",
]

LOG = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CHECKPOINT_PREFIX = "carrier_opt:ckpt:"
DEFAULT_TTL_SECONDS = 3 * 24 * 3600
KEY_MAX_LENGTH = 400  # OptimizationCheckpoint.CheckpointKey is String(400)


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


def ttl_iv(ttl_seconds: object) -> int:
    """Return ``ttl_seconds`` as an int; raise ``ValueError`` unless it is a positive integer."""
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | np.integer) or ttl_seconds <= 0:
        raise ValueError(f"`ttl_seconds` must be a positive integer number of seconds; got {ttl_seconds!r}.")
    return int(ttl_seconds)


def encode_value(key: str, value: dict[str, Any]) -> str:
    """Return the JSON envelope of ``value``; raise ``TypeError`` unless it is a JSON-serialisable dict."""
    if not isinstance(value, dict):
        raise TypeError(f"Checkpoint {key}: the value must be a dict; got {type(value).__name__}.")
    try:
        return json.dumps({"v": SCHEMA_VERSION, "t": time.time(), "data": value}, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise TypeError(f"Checkpoint {key}: the value must be JSON-serialisable ({error}).") from error


def decode_value(key: str, raw: str | bytes) -> CheckpointEntry | None:
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


# -- database --------------------------------------------------------------------------------------


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
        self.ttl_seconds = ttl_iv(ttl_seconds)
        self.table = checkpoint_table

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the data under ``key`` or ``None``; see :class:`CheckpointStore`."""
        entry = self.get_entry(key)
        return None if entry is None else entry.data

    def get_entry(self, key: str) -> CheckpointEntry | None:
        """Return the unexpired data under ``key`` with its write time, or ``None``."""
        t = self.table
        query = select(t.c.Value).where(
            t.c.CheckpointKey == key, or_(t.c.ExpiresAt.is_(None), t.c.ExpiresAt > utcnow())
        )
        with self.engine.connect() as conn:
            raw = conn.execute(query).scalar_one_or_none()
        return None if raw is None else decode_value(key, raw)

    def put(self, key: str, value: dict[str, Any], *, ttl_seconds: int | None = None) -> None:
        """Upsert ``value`` under ``key``, expiring ``ttl_seconds`` (or the store's default) from now."""
        if len(key) > KEY_MAX_LENGTH:
            raise ValueError(
                f"Checkpoint key is {len(key)} characters, more than {KEY_MAX_LENGTH}: {key[:80]}..."
            )
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_iv(ttl_seconds)
        now = utcnow()
        row = {
            "CheckpointKey": key,
            "Value": encode_value(key, value),
            "ExpiresAt": now + dt.timedelta(seconds=ttl),
            "UpdatedDate": now,
        }
        with self.engine.begin() as conn:
            native = storage.native_upsert(conn)
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
            result = conn.execute(delete(t).where(t.c.ExpiresAt.is_not(None), t.c.ExpiresAt <= utcnow()))
        return int(result.rowcount)

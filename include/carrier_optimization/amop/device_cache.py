"""Read-through cache of a comm group's device list in Redis (``.npz`` frames, database fallback).

docs/architecture.md, "Checkpoints and resume": the device list of a comm group is cached in Redis;
the cache is a convenience, never a requirement. Nothing here connects at import.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import redis

from include.carrier_optimization.amop.checkpoints import device_cache_key, ttl_iv
from include.carrier_optimization.amop.redis_checkpoints import REDIS_UNAVAILABLE_ERRORS

__all__ = ["DEVICE_CACHE_TTL_SECONDS", "DeviceCache"]

LOG = logging.getLogger(__name__)

DEVICE_CACHE_TTL_SECONDS = 48 * 3600

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
        self.ttl_seconds = ttl_iv(ttl_seconds)
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

"""The device-list cache on a real Redis: read-through, round trips, Redis down or dying mid-run."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from include.carrier_optimization.amop import device_cache
from include.carrier_optimization.amop.device_cache import DEVICE_CACHE_TTL_SECONDS, DeviceCache
from tests.conftest import free_port
from tests.unit.include.carrier_optimization.amop.conftest import fast_client


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
        cache = DeviceCache(fast_client(free_port()))
        with caplog.at_level(logging.WARNING, logger=device_cache.__name__):
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
        with caplog.at_level(logging.WARNING, logger=device_cache.__name__):
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

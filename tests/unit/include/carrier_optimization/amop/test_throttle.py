"""The throttled writer: at most one write per interval."""

from __future__ import annotations

from include.carrier_optimization.amop import throttle


class TestThrottledWriter:
    def test_writes_at_most_once_per_interval(self, monkeypatch):
        clock = iter([0.0, 0.5, 1.0, 2.1, 2.2, 4.5])
        monkeypatch.setattr(throttle.time, "monotonic", lambda: next(clock))
        written = []
        writer = throttle.ThrottledWriter(written.append, seconds=2.0)  # created at t=0.0
        for cursor in (5, 10, 15, 20, 25):  # at t = 0.5, 1.0, 2.1, 2.2, 4.5
            writer(cursor)
        assert written == [15, 25]

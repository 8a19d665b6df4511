"""The simulator's fault knobs on their own: queues, counted malformations, a seeded error rate."""

from __future__ import annotations

import pytest

from include.carrier_optimization.sync.carriers.simulator_faults import Faults


def test_unknown_malformation_is_refused():
    with pytest.raises(ValueError, match="`kind` must be one of missing_iccid, not_json"):
        Faults().malformed_page(1, "garbled")


def test_random_error_rate_is_seeded():
    first, second = Faults(error_rate=0.5, seed=4), Faults(error_rate=0.5, seed=4)
    assert [first.page_status(1) for _ in range(20)] == [second.page_status(1) for _ in range(20)]


def test_queued_statuses_are_answered_once_each_per_page_and_iccid():
    faults = Faults()
    faults.fail_page(1, 429, 500)
    faults.fail_usage("b", 503)
    assert [faults.page_status(1) for _ in range(3)] == [429, 500, None]
    assert faults.page_status(2) is None
    assert [faults.usage_status(["a", "b"]) for _ in range(2)] == [503, None]


def test_malformation_counts_down_and_clear_removes_every_fault():
    faults = Faults()
    faults.malformed_page(4, "truncated", times=2)
    faults.slow_page(4, 1.5)
    assert [faults.page_malformation(4) for _ in range(3)] == ["truncated", "truncated", None]
    faults.malformed_page(5)
    faults.clear()
    assert (faults.page_malformation(5), faults.page_delay(4)) == (None, 0.0)

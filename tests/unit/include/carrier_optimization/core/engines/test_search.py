"""Local search and relabelling: pool excess, improving moves only, current plans kept at equal cost."""

from __future__ import annotations

import numpy as np
import pytest

from include.carrier_optimization.core.domain import RatePlan
from include.carrier_optimization.core.engines.dual import prepare_group
from include.carrier_optimization.core.engines.optimal import OPTIONS
from include.carrier_optimization.core.engines.search import local_search, pool_excess, relabel

CHEAP = RatePlan(1, "CHEAP", 1.0, 10.0, 1.0, 1.0, pooled=False)
SAME = RatePlan(2, "SAME", 1.0, 10.0, 1.0, 1.0, pooled=False)
POOL = RatePlan(3, "POOL", 0.5, 10.0, 2.0, 1.0, pooled=True)


def test_pool_excess_sums_the_excess_of_the_pool_members(make_tiny_group):
    data = prepare_group(make_tiny_group([CHEAP, POOL], [4.0, 25.0, 7.0]))
    assert pool_excess(data, np.array([1, 1, 0])).tolist() == pytest.approx([(4 - 10) + (25 - 10)])
    assert pool_excess(data, np.array([0, 0, 0])).tolist() == [0.0]


@pytest.mark.parametrize("seed", range(10))
def test_local_search_never_raises_the_cost_and_ends_in_a_local_optimum(make_hard_group, reference, seed):
    group = make_hard_group(6100 + seed, n_devices=6, n_plans=3)
    data = prepare_group(group)
    start = np.zeros(group.n_devices, dtype=np.int64)
    trace: dict = {}
    result = local_search(data, start, None, dict(OPTIONS), trace)
    assert start.tolist() == [0] * group.n_devices  # the input is not changed
    cost = reference(group, result)
    assert cost <= reference(group, start) + 1e-9
    for i in range(group.n_devices):  # no single move improves
        for p in range(group.n_plans):
            moved = result.copy()
            moved[i] = p
            assert reference(group, moved) >= cost - 1e-7
    assert trace["local_search_moves"] >= 0


def test_local_search_moves_devices_to_the_cheaper_plan(make_tiny_group):
    expensive = RatePlan(9, "DEAR", 5.0, 10.0, 1.0, 1.0, pooled=False)
    data = prepare_group(make_tiny_group([expensive, CHEAP], [1.0, 2.0]))
    trace: dict = {}
    assert local_search(data, np.array([0, 0]), None, dict(OPTIONS), trace).tolist() == [1, 1]
    assert trace["local_search_moves"] == 2


def test_local_search_stops_at_a_past_deadline(make_tiny_group):
    data = prepare_group(make_tiny_group([SAME, CHEAP], [1.0]))
    trace: dict = {}
    assert local_search(data, np.array([0]), 0.0, dict(OPTIONS), trace).tolist() == [0]
    assert trace["local_search_stopped"] == "time limit"


def test_relabel_keeps_the_current_plan_when_it_costs_the_same(make_tiny_group, reference):
    group = make_tiny_group([CHEAP, SAME], [1.0, 2.0, 3.0], current=[1, -1, 0])
    data = prepare_group(group)
    trace: dict = {}
    result = relabel(data, np.array([0, 1, 1]), trace)
    assert result.tolist() == [1, 1, 0]
    assert reference(group, result) == pytest.approx(reference(group, np.array([0, 1, 1])))
    assert trace["relabel_moves"] >= 1


def test_relabel_swaps_identical_devices_so_both_keep_their_plan(make_tiny_group):
    dear = RatePlan(9, "DEAR", 5.0, 10.0, 1.0, 1.0, pooled=False)
    group = make_tiny_group([CHEAP, dear], [2.0, 2.0], current=[1, 0])
    data = prepare_group(group)
    # one identical device on each plan: swapping labels keeps the cost and both current plans
    assert relabel(data, np.array([1, 0]), {}).tolist() == [1, 0]
    assert relabel(data, np.array([0, 1]), {}).tolist() == [1, 0]


def test_relabel_never_moves_a_device_back_when_it_costs_more(make_tiny_group, reference):
    dear = RatePlan(9, "DEAR", 5.0, 10.0, 1.0, 1.0, pooled=False)
    group = make_tiny_group([CHEAP, dear, POOL], [2.0, 30.0], current=[1, 2])
    data = prepare_group(group)
    trace: dict = {}
    result = relabel(data, np.array([0, 0]), trace)
    assert result.tolist() == [0, 0] and trace["relabel_moves"] == 0

"""Block-aware bound: valid against brute force, and above the Lagrangian where whole blocks matter."""

from __future__ import annotations

import numpy as np
import pytest

from include.carrier_optimization.core.domain import GroupProblem, RatePlan
from include.carrier_optimization.core.engines.blockbound import block_aware_bound, branch_bound
from include.carrier_optimization.core.engines.dual import maximize_dual, prepare_group
from include.carrier_optimization.core.engines.optimal import OPTIONS

OPTIONS_ = dict(OPTIONS)


def _lagrangian(data):
    return maximize_dual(data, None, OPTIONS_, {})[1]


def test_a_big_block_lifts_the_bound_above_the_lagrangian(brute):
    # the pool costs 1 + 0.1/MB in the LP, but a whole block is $10: the $5 flat plan is the optimum
    pool = RatePlan(1, "POOL", 1.0, 0.0, 10.0, 100.0, pooled=True)
    flat = RatePlan(2, "FLAT", 5.0, 1000.0, 1.0, 1.0, pooled=False)
    group = GroupProblem("1,2", ("cp",), (pool, flat), ["a"], [1.0], [0], [1], [0], [-1])
    data = prepare_group(group)
    optimum, _ = brute(group)
    lagrangian = _lagrangian(data)
    bound = block_aware_bound(data, np.zeros(1), lagrangian, optimum, None, OPTIONS_, {})
    assert lagrangian == pytest.approx(1.1)
    assert bound == pytest.approx(optimum) and optimum == 5.0


@pytest.mark.parametrize("seed", range(20))
def test_every_branch_bound_is_below_the_optimum_of_its_branch(make_hard_group, brute, reference, seed):
    import itertools

    group = make_hard_group(9000 + seed, n_devices=5, n_plans=3)
    data = prepare_group(group)
    optimum, _ = brute(group)
    for g, plan in enumerate(data.pools):
        rate, size = data.rate[g], data.block[g]
        for split in (1, 2):
            low = branch_bound(data, g, split - 1, True, None, OPTIONS_)
            high = branch_bound(data, g, split, False, None, OPTIONS_)
            assert min(low, high) <= optimum + 1e-9
            # each branch's bound is below the cheapest assignment inside that branch
            for assignment in itertools.product(range(group.n_plans), repeat=group.n_devices):
                on = np.asarray(assignment) == plan
                excess = float(data.excess[on, g].sum())
                blocks = max(0, int(np.ceil(excess / size - 1e-9))) if on.any() else 0
                cost = reference(group, assignment)
                assert (low if blocks <= split - 1 else high) <= cost + 1e-9, (rate, blocks)

"""The Lagrangian dual: group matrices, the oracle, the bound's validity and the cutting-plane maximum."""

from __future__ import annotations

import numpy as np
import pytest

from include.carrier_optimization.core.domain import RatePlan
from include.carrier_optimization.core.engines.dual import (
    lagrangian_bound,
    maximize_dual,
    oracle,
    pool_cost,
    prepare_group,
)
from include.carrier_optimization.core.engines.optimal import OPTIONS

POOL = RatePlan(1, "POOL", 2.0, 10.0, 1.0, 1.0, pooled=True)
FLAT = RatePlan(2, "FLAT", 3.0, 100.0, 1.0, 1.0, pooled=False)


def test_prepare_group_indexes_pools_and_the_best_individual_plan(make_tiny_group):
    data = prepare_group(make_tiny_group([FLAT, POOL], [4.0, 25.0], proration=[1.0, 0.5]))
    assert data.pools.tolist() == [1]
    assert data.pool_of_plan.tolist() == [-1, 0]
    # excess u − A·f: 4 − 10, 25 − 10·0.5
    assert data.excess[:, 0].tolist() == pytest.approx([-6.0, 20.0])
    assert data.rho.tolist() == pytest.approx([1.0])
    assert data.best_individual_plan.tolist() == [0, 0]
    assert data.best_individual.tolist() == pytest.approx([3.0, 1.5])  # prorated monthly charge


def test_without_individual_plans_the_best_individual_is_infinite(make_tiny_group):
    data = prepare_group(make_tiny_group([POOL], [1.0]))
    assert np.isinf(data.best_individual).all() and data.best_individual_plan.tolist() == [-1]


def test_pool_cost_charges_whole_blocks_of_positive_excess_only(make_tiny_group):
    block = RatePlan(3, "BLK", 0.0, 0.0, 5.0, 10.0, pooled=True)
    data = prepare_group(make_tiny_group([block], [0.0]))
    assert pool_cost(data, np.array([[-3.0], [0.0], [0.5], [10.0], [10.5]])).ravel().tolist() == [
        0.0,
        0.0,
        5.0,
        5.0,
        10.0,
    ]


def test_oracle_without_pools_is_the_sum_of_best_individual_costs(make_tiny_group):
    data = prepare_group(make_tiny_group([FLAT], [1.0, 2.0]))
    value, gradient, plan = oracle(data, np.zeros(0))
    assert value == pytest.approx(6.0) and gradient.size == 0 and plan.tolist() == [0, 0]


def test_oracle_prices_pool_excess_and_returns_its_supergradient(make_tiny_group):
    data = prepare_group(make_tiny_group([FLAT, POOL], [0.0, 12.0]))
    # at λ=0 both devices take the pool (2 < 3): excesses −10 and +2
    value, gradient, plan = oracle(data, np.array([0.0]))
    assert value == pytest.approx(4.0) and plan.tolist() == [1, 1]
    assert gradient.tolist() == pytest.approx([-8.0])
    # at λ=1 the heavy device costs 2 + 2 = 4 > 3 in the pool: it leaves it
    value, gradient, plan = oracle(data, np.array([1.0]))
    assert plan.tolist() == [1, 0]
    assert value == pytest.approx((2.0 - 10.0) + 3.0) and gradient.tolist() == pytest.approx([-10.0])


@pytest.mark.parametrize("seed", range(8))
def test_the_bound_is_below_the_optimum_for_any_prices(make_hard_group, brute, seed):
    group = make_hard_group(4100 + seed, n_devices=5, n_plans=3)
    optimum, _ = brute(group)
    n_pools = int(group.table.pooled.sum())
    for prices in (np.zeros(n_pools), np.full(n_pools, 0.05), np.full(n_pools, 1e6)):  # 1e6 is clipped
        assert lagrangian_bound(group, prices) <= optimum + 1e-9


def test_lagrangian_bound_checks_its_arguments(make_tiny_group):
    group = make_tiny_group([FLAT, POOL], [1.0])
    with pytest.raises(ValueError, match="one per pooled plan"):
        lagrangian_bound(group, [0.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        lagrangian_bound(group, [np.nan])
    with pytest.raises(TypeError, match="GroupProblem"):
        lagrangian_bound("group", [0.0])


@pytest.mark.parametrize("seed", range(6))
def test_maximize_dual_beats_every_grid_point_and_stays_a_valid_bound(make_group, brute, seed):
    group = make_group(4200 + seed, n_devices=6, n_plans=3, pooled_share=1.0)
    data = prepare_group(group)
    trace: dict = {}
    lam, value, plan = maximize_dual(data, None, dict(OPTIONS), trace)
    optimum, _ = brute(group)
    assert value <= optimum + 1e-9
    assert value == pytest.approx(oracle(data, lam)[0])
    assert np.all(lam >= 0) and np.all(lam <= data.rho + 1e-12)
    grid = np.linspace(0, 1, 11)
    for t in grid:
        assert value >= oracle(data, t * data.rho)[0] - 1e-6 * max(1.0, abs(value))
    assert trace["dual_iterations"] >= 1 and len(plan) == group.n_devices


def test_maximize_dual_stops_at_a_past_deadline(make_tiny_group):
    data = prepare_group(make_tiny_group([FLAT, POOL], [0.0, 12.0]))
    trace: dict = {}
    maximize_dual(data, 0.0, dict(OPTIONS), trace)
    assert trace["dual_stopped"] == "time limit" and trace["dual_iterations"] == 1

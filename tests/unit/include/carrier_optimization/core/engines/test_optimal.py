"""Optimal engine: brute-force optimum on tiny groups, valid lower bounds, statuses, relabelling."""

from __future__ import annotations

import highspy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan
from include.carrier_optimization.core.engines import optimal
from include.carrier_optimization.core.engines.optimal import highs_status, lagrangian_bound, solve_optimal


def _check_feasible(problem, result):
    """Every device gets exactly one plan of its group."""
    assert len(result.assignment) == len(problem.groups)
    for group, assignment in zip(problem.groups, result.assignment, strict=True):
        assert assignment.shape == (group.n_devices,) and assignment.dtype == np.int64
        assert np.all((assignment >= 0) & (assignment < group.n_plans))


@pytest.mark.parametrize("seed", range(25))
def test_reaches_the_brute_force_optimum_on_tiny_groups(make_group, reference, brute, seed):
    rng = np.random.default_rng(1000 + seed)
    group = make_group(
        1000 + seed,
        n_devices=int(rng.integers(1, 8)),
        n_plans=int(rng.integers(1, 5)),
        sms_rates=seed % 2 == 0,
    )
    problem = Problem((group,))
    result = solve_optimal(problem)
    optimum, _ = brute(group)
    _check_feasible(problem, result)
    assert result.status == 0 and result.success
    assert reference(group, result.assignment[0]) == pytest.approx(optimum, abs=1e-9)
    assert result.cost == pytest.approx(optimum, abs=1e-9)
    assert result.lower_bound <= optimum + 1e-9
    assert result.gap == pytest.approx(
        (result.cost - result.lower_bound) / result.cost if result.cost else 0.0
    )


@pytest.mark.parametrize("seed", range(6))
def test_larger_groups_are_priced_by_the_cost_model_and_bounded(make_group, reference, seed):
    group = make_group(seed, n_devices=400, n_plans=8, pooled_share=0.6)
    result = solve_optimal(Problem((group,)), options=optimal.NO_MILP)
    (group_result,) = result.groups
    assert group_result.cost == pytest.approx(reference(group, group_result.assignment), rel=1e-12)
    assert group_result.lower_bound <= group_result.cost + 1e-9
    assert group_result.gap < 0.05
    assert set(group_result.pool_prices) == {p.plan_id for p in group.plans if p.pooled}
    for plan_id, price in group_result.pool_prices.items():
        plan = next(p for p in group.plans if p.plan_id == plan_id)
        assert 0.0 <= price <= plan.overage_rate / plan.overage_block_mb + 1e-12


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_devices=st.integers(1, 30), n_plans=st.integers(1, 5))
def test_lower_bound_never_exceeds_a_feasible_cost(make_group, reference, seed, n_devices, n_plans):
    group = make_group(seed, n_devices=n_devices, n_plans=n_plans)
    rng = np.random.default_rng(seed)
    result = solve_optimal(Problem((group,)), options=optimal.NO_MILP)
    assignments = [rng.integers(0, n_plans, n_devices) for _ in range(20)] + [result.assignment[0]]
    for prices in (None, rng.uniform(0, 1, int(group.table.pooled.sum()))):
        bound = result.lower_bound if prices is None else lagrangian_bound(group, prices * 10)
        for assignment in assignments:
            assert bound <= reference(group, assignment) + 1e-9


def test_without_pools_the_per_device_argmin_is_optimal(make_group, reference):
    group = make_group(5, n_devices=200, n_plans=6, pooled_share=0.0)
    result = solve_optimal(Problem((group,)))
    assert result.gap == 0.0 and result.lower_bound == pytest.approx(result.cost)
    assert result.groups[0].pool_prices == {}
    single = [
        min(reference(_one(group, i), [p]) for p in range(group.n_plans)) for i in range(group.n_devices)
    ]
    assert result.cost == pytest.approx(sum(single))


def _one(group: GroupProblem, i: int) -> GroupProblem:
    return GroupProblem(
        group.key,
        group.comm_plans,
        group.plans,
        group.device_ids[i : i + 1],
        group.usage_mb[i : i + 1],
        group.sms[i : i + 1],
        group.proration[i : i + 1],
        group.comm_plan_index[i : i + 1],
        group.current_plan[i : i + 1],
    )


def test_pool_that_needs_light_and_heavy_devices_together():
    # A pool at $1.5 with 5 MB each beats $3 bundles only when light and heavy SIMs share it.
    pool = RatePlan(1, "POOL", 1.5, 5.0, 0.5, 1.0, pooled=True)
    bundle = RatePlan(2, "BUNDLE", 3.0, 10.0, 1.0, 1.0, pooled=False)
    usage = [0.0, 0.0, 0.0, 12.0, 3.0, 9.0]
    group = GroupProblem(
        "1,2", ("cp",), (pool, bundle), list("abcdef"), usage, [0] * 6, [1] * 6, [0] * 6, [-1] * 6
    )
    result = solve_optimal(Problem((group,)))
    # all six on the pool: 30 MB allowance covers 24 MB, 6 × 1.5 = 9 (alone, 12 MB on the pool costs 5)
    assert result.assignment[0].tolist() == [0] * 6
    assert result.cost == pytest.approx(9.0)


def test_relabelling_keeps_identical_devices_on_their_current_plan():
    pool_a = RatePlan(1, "A", 2.0, 5.0, 1.0, 1.0, pooled=True)
    pool_b = RatePlan(2, "B", 2.0, 5.0, 1.0, 1.0, pooled=True)  # the same price: any split costs the same
    group = GroupProblem(
        "1,2", ("cp",), (pool_a, pool_b), list("abcd"), [1.0] * 4, [0] * 4, [1] * 4, [0] * 4, [1, 1, 0, -1]
    )
    result = solve_optimal(Problem((group,)))
    assert result.cost == pytest.approx(8.0)
    assert result.assignment[0][:3].tolist() == [1, 1, 0] and result.changes == 0


def test_same_seed_same_result(make_group):
    problem = Problem(tuple(make_group(s, n_devices=300, n_plans=7) for s in range(3)))
    first, second = solve_optimal(problem, seed=3), solve_optimal(problem, seed=3)
    assert first.cost == second.cost and first.lower_bound == second.lower_bound
    for a, b in zip(first.assignment, second.assignment, strict=True):
        np.testing.assert_array_equal(a, b)


class TestStatuses:
    def test_finished(self, make_group):
        result = solve_optimal(Problem((make_group(1, n_devices=50, n_plans=4),)))
        assert (result.status, result.success, result.engine) == (0, True, "optimal")
        assert isinstance(result.cost, float) and isinstance(result.lower_bound, float)
        assert isinstance(result.gap, float) and isinstance(result.changes, int)
        assert result.message.startswith("Optimization finished")

    def test_time_limit_keeps_a_feasible_assignment(self, make_group, reference):
        group = make_group(2, n_devices=2000, n_plans=8, pooled_share=0.7)
        result = solve_optimal(Problem((group,)), time_limit=1e-6)
        assert (result.status, result.success) == (1, False)
        assert result.message.startswith("Stopped at the time limit")
        assert result.cost == pytest.approx(reference(group, result.assignment[0]))
        assert result.lower_bound <= result.cost

    def test_invalid_plans(self, make_group):
        bad = RatePlan(9, "BAD", 1.0, 1.0, -1.0, 1.0, pooled=True)
        group = GroupProblem("9", ("cp",), (bad,), ["a"], [1.0], [0], [1], [0], [-1])
        result = solve_optimal(Problem((group,)))
        assert (result.status, result.success) == (2, False)
        assert result.assignment is None and result.cost is None and result.lower_bound is None
        assert "`plans`: overage_rate must be > 0; plan_id 9 (1 of 1)" in result.message

    def test_backend_failure_falls_back_with_a_valid_bound(self, make_group, reference, monkeypatch):
        monkeypatch.setattr(
            highspy.Highs, "getModelStatus", lambda self: highspy.HighsModelStatus.kSolveError
        )
        group = make_group(4, n_devices=300, n_plans=6, pooled_share=0.8)
        result = solve_optimal(Problem((group,)))
        assert (result.status, result.success) == (3, False)
        assert "HiGHS status 4: kSolveError" in result.message
        assert result.cost == pytest.approx(reference(group, result.assignment[0]))
        assert result.lower_bound <= result.cost


def test_highs_status_mapping():
    status = highspy.HighsModelStatus
    assert highs_status(status.kOptimal) == (0, "HiGHS status 7: kOptimal")
    assert highs_status(status.kTimeLimit)[0] == 1 and highs_status(status.kIterationLimit)[0] == 1
    assert highs_status(status.kInfeasible)[0] == 2
    assert highs_status(status.kUnbounded) == (3, "HiGHS status 10: kUnbounded")
    assert highs_status(123) == (3, "HiGHS unrecognized status 123")


def test_lagrangian_bound_iv(make_group):
    group = make_group(1, n_devices=3, n_plans=3, pooled_share=1.0)
    with pytest.raises(ValueError, match="`prices` must be 3 finite numbers"):
        lagrangian_bound(group, [0.1])
    with pytest.raises(ValueError, match="`prices` must be 3 finite numbers"):
        lagrangian_bound(group, [0.1, np.nan, 0.2])
    with pytest.raises(TypeError, match="`group` must be a GroupProblem"):
        lagrangian_bound(None, [])


def test_solve_optimal_iv(make_group):
    problem = Problem((make_group(1, n_devices=3, n_plans=2),))
    with pytest.raises(ValueError, match=r"unknown keys \['nope'\]; accepted keys are \["):
        solve_optimal(problem, options={"nope": 1})
    with pytest.raises(ValueError, match="lp_rounds must be an integer >= 0"):
        solve_optimal(problem, options={"lp_rounds": -1})
    with pytest.raises(ValueError, match="tie_tolerance must be a number >= 0"):
        solve_optimal(problem, options={"tie_tolerance": -1.0})
    with pytest.raises(ValueError, match="`time_limit` must be a number > 0 or None"):
        solve_optimal(problem, time_limit=-5)
    with pytest.raises(TypeError, match="`problem` must be a Problem"):
        solve_optimal(None)


def test_docstring_examples():
    import doctest
    import importlib

    failures, tried = doctest.testmod(
        importlib.import_module("include.carrier_optimization.core.engines.optimal")
    )
    assert tried > 0 and failures == 0


@pytest.mark.parametrize("seed", range(30))
def test_hard_tiny_groups_reach_the_brute_force_optimum_proven(make_hard_group, reference, brute, seed):
    rng = np.random.default_rng(5000 + seed)
    group = make_hard_group(5000 + seed, n_devices=int(rng.integers(2, 8)), n_plans=int(rng.integers(2, 5)))
    optimum, _ = brute(group)
    result = solve_optimal(Problem((group,)))
    (group_result,) = result.groups
    assert reference(group, group_result.assignment) == pytest.approx(optimum, abs=1e-9)
    assert group_result.lower_bound <= optimum + 1e-9
    assert group_result.proven and result.proven
    # without the MILP, the Lagrangian and block-aware bounds still never exceed the optimum
    heuristic = solve_optimal(Problem((group,)), options=optimal.NO_MILP).groups[0]
    assert heuristic.lower_bound <= optimum + 1e-9 <= heuristic.cost + 2e-9


def test_same_input_gives_the_same_assignment(make_hard_group):
    problem = Problem((make_hard_group(77, n_devices=400, n_plans=5),))
    first, second = solve_optimal(problem), solve_optimal(problem)
    assert np.array_equal(first.assignment[0], second.assignment[0])
    assert (first.cost, first.lower_bound) == (second.cost, second.lower_bound)

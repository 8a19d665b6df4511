"""Exact MILP: twins of pooled plans, the guard against an inconsistent HiGHS run, proven optima."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan
from include.carrier_optimization.core.engines import exact, optimal
from include.carrier_optimization.core.engines.dual import prepare_group
from include.carrier_optimization.core.engines.optimal import solve_optimal


def _twin_group(n_devices: int, seed: int) -> GroupProblem:
    rng = np.random.default_rng(seed)
    pool = RatePlan(2, "POOL", 3.0, 10.0, 10.0, 1024.0, pooled=True, sms_rate=0.01)
    twin = dataclasses.replace(pool, plan_id=3, code="POOL-TWIN")  # the same plan under another id
    payg = RatePlan(1, "PAYG", 0.5, 0.0, 1.0, 1.0, pooled=False, sms_rate=0.05)
    plans = (payg, pool, twin, RatePlan(4, "POOL-BIG", 8.0, 100.0, 25.0, 100.0, pooled=True))
    return GroupProblem(
        key="1,2,3,4",
        comm_plans=("cp",),
        plans=plans,
        device_ids=[f"t{i}" for i in range(n_devices)],
        usage_mb=rng.choice([0.0, 2.5, 8.0, 30.0, 140.0], n_devices),
        sms=rng.choice([0, 10, 100], n_devices),
        proration=np.where(rng.random(n_devices) < 0.3, 0.5, 1.0),
        comm_plan_index=np.zeros(n_devices, dtype=np.int64),
        current_plan=rng.integers(-1, 4, n_devices),
    )


def test_twin_pools_share_one_set_of_columns():
    data = prepare_group(_twin_group(10, 0))
    assert exact._twin_pool(data).tolist() == [0, 0, 2]
    allowed = np.ones(data.own.shape, dtype=bool)
    canonical, folded = exact._canonical(data, allowed)
    assert canonical.tolist() == [0, 1, 1, 3] and not folded[:, 2].any()
    _, first = exact._classes(data, np.arange(10), folded)
    _, col_plan, _, _ = exact._columns(data, first, folded)
    assert 2 not in set(col_plan.tolist())  # local plan 2 is the twin of local plan 1


@pytest.mark.parametrize("seed", range(8))
def test_twins_reach_the_brute_force_optimum(brute, reference, seed):
    group = _twin_group(6, seed)
    optimum, _ = brute(group)
    (result,) = solve_optimal(Problem((group,))).groups
    assert result.proven and reference(group, result.assignment) == pytest.approx(optimum, abs=1e-9)
    assert result.lower_bound <= optimum + 1e-9


def test_a_run_whose_objective_is_not_its_solutions_cost_is_rejected():
    cost = np.array([1.0, 2.0])
    assert exact._consistent(SimpleNamespace(x=np.array([1.0, 1.0]), objective=3.0), cost)
    assert not exact._consistent(SimpleNamespace(x=np.array([1.0, 1.0]), objective=2.0), cost)
    assert not exact._consistent(SimpleNamespace(x=np.array([1.0]), objective=1.0), cost)


def test_an_inconsistent_warm_started_run_is_solved_again_cold(monkeypatch):
    data = prepare_group(_twin_group(40, 3))
    calls = []
    real = exact.run_highs

    def flaky(**kwargs):
        run = real(**kwargs)
        calls.append(kwargs.get("warm_start") is not None)
        if kwargs.get("warm_start") is not None:  # what HiGHS 1.16 did: a bound below its own solution
            return SimpleNamespace(**{**run.__dict__, "objective": run.objective - 50, "dual_bound": 0.0})
        return run

    monkeypatch.setattr(exact, "run_highs", flaky)
    outcome = exact.solve_exact(data, np.zeros(40, dtype=np.int64), 10.0, 50000)
    assert calls == [True, False]
    assert outcome.optimal and outcome.lower_bound > 0.0 and outcome.assignment is not None


def test_restricted_model_keeps_fixed_devices_and_never_raises_the_cost(make_hard_group, reference):
    group = make_hard_group(31, n_devices=300, n_plans=5)
    data = prepare_group(group)
    incumbent = np.zeros(300, dtype=np.int64)  # everyone on PAYG
    allowed = np.zeros(data.own.shape, dtype=bool)
    allowed[:150] = True  # the first half may move anywhere, the second half stays
    outcome = exact.solve_exact(data, incumbent, 10.0, 50000, allowed)
    assert outcome.lower_bound is None and not outcome.optimal  # a restricted model certifies nothing
    assert np.array_equal(outcome.assignment[150:], incumbent[150:])
    assert reference(group, outcome.assignment) <= reference(group, incumbent) + 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_large_group_paths_never_do_worse_than_no_milp(make_group, reference, seed):
    group = make_group(40 + seed, n_devices=600, n_plans=8, pooled_share=0.6, sms_rates=True)
    plain = solve_optimal(Problem((group,)), options=optimal.NO_MILP).groups[0]
    for options in ({"exact_max_devices": 0}, {"exact_max_devices": 0, "exact_large_devices": 0}):
        result = solve_optimal(Problem((group,)), options={**options, "target_gap": 0.0}).groups[0]
        assert result.cost == pytest.approx(reference(group, result.assignment), rel=1e-12)
        assert result.cost <= plain.cost + 1e-9 and result.lower_bound <= result.cost + 1e-9

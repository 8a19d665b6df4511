"""The best engine keeps the cheaper of legacy and optimal per comm group; the solve dispatcher."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan
from include.carrier_optimization.core.engines import solve, solve_best, solve_legacy, solve_optimal


@pytest.fixture(scope="module")
def problem(make_group):
    return Problem(tuple(make_group(seed, n_devices=150, n_plans=6, n_comm_plans=3) for seed in range(4)))


def test_never_worse_than_either_engine_per_group(problem, reference):
    best = solve_best(problem)
    legacy = solve_legacy(problem)
    optimal = solve_optimal(problem)
    assert best.engine == "best" and best.status == 0
    for group, b, leg, opt in zip(problem.groups, best.groups, legacy.groups, optimal.groups, strict=True):
        assert b.cost == pytest.approx(reference(group, b.assignment))
        assert b.cost <= min(leg.cost, opt.cost) + 1e-9
        assert b.engine in {"legacy", "optimal"}
        assert b.lower_bound == opt.lower_bound and b.lower_bound <= b.cost + 1e-9
        assert b.details["legacy_cost"] == leg.cost and b.details["optimal_cost"] == opt.cost
    assert best.cost <= legacy.cost + 1e-9 and best.lower_bound == pytest.approx(optimal.lower_bound)


def test_legacy_wins_a_group_where_it_is_cheaper(monkeypatch, problem):
    from include.carrier_optimization.core.engines import best as best_module

    real = best_module.solve_optimal

    def worse_optimal(problem, **kwargs):
        result = real(problem, **kwargs)
        groups = tuple(dataclasses.replace(g, cost=g.cost + 1e6) for g in result.groups)
        return dataclasses.replace(result, groups=groups)

    monkeypatch.setattr(best_module, "solve_optimal", worse_optimal)
    result = solve_best(problem)
    assert all(g.engine == "legacy" for g in result.groups)
    np.testing.assert_array_equal(result.assignment[0], solve_legacy(problem).assignment[0])


def test_invalid_plans_give_status_2():
    bad = RatePlan(3, "BAD", 1.0, 1.0, 1.0, 0.0, pooled=False)
    group = GroupProblem("3", ("cp",), (bad,), ["a"], [1.0], [0], [1], [0], [-1])
    result = solve_best(Problem((group,)))
    assert (result.status, result.engine, result.assignment) == (2, "best", None)
    assert "plan_id 3" in result.message


def test_options_are_passed_to_each_engine(problem):
    result = solve_best(problem, options={"legacy": {"sequence_cap": 2}, "optimal": {"lp_rounds": 1}})
    assert all(g.details.get("legacy_cost") is not None for g in result.groups)
    with pytest.raises(ValueError, match=r"unknown keys \['fast'\]"):
        solve_best(problem, options={"fast": True})
    with pytest.raises(ValueError, match="sequence_cap must be an integer >= 1"):
        solve_best(problem, options={"legacy": {"sequence_cap": 0}})


def test_time_limit_is_shared(problem):
    result = solve_best(problem, time_limit=1e-6)
    assert result.status == 1 and result.cost is not None


def test_solve_dispatches_by_name(problem):
    assert solve(problem, engine="legacy").engine == "legacy"
    assert solve(problem, engine="optimal", options={"lp_rounds": 1}).engine == "optimal"
    assert solve(problem).engine == "best"
    with pytest.raises(
        ValueError, match=r"`engine` must be one of \['best', 'legacy', 'optimal'\]; got 'fast'"
    ):
        solve(problem, engine="fast")

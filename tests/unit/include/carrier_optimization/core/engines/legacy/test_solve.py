"""Legacy engine driver: the base assignment, record-if-better, time limit and input validation."""

from __future__ import annotations

import numpy as np
import pytest

from include.carrier_optimization.core.domain import Problem, RatePlan
from include.carrier_optimization.core.engines.legacy.sequences import sequence_count
from include.carrier_optimization.core.engines.legacy.solve import base_assignment, solve_legacy
from tests.unit.include.carrier_optimization.core.engines.legacy.conftest import (
    LARGE,
    MEDIUM,
    SMALL,
    legacy_group,
)


def test_base_assignment_smallest_sufficient_allowance_else_largest():
    cheap_twin = RatePlan(4, "S2", 8.0, 100.0, 1.0, 10.0, pooled=False)  # same allowance as S, cheaper
    group = legacy_group([0.0, 100.0, 100.5, 999.0, 5000.0], plans=(SMALL, MEDIUM, LARGE, cheap_twin))
    np.testing.assert_array_equal(base_assignment(group), [3, 3, 1, 2, 2])


def test_base_assignment_iv():
    with pytest.raises(TypeError, match="`group` must be a GroupProblem"):
        base_assignment([1.0])
    with pytest.raises(ValueError, match="`group` must have at least one plan"):
        base_assignment(legacy_group([], plans=()))


class TestSolveLegacy:
    def test_record_if_better_starts_from_the_base_assignment(self, make_group, reference):
        groups = tuple(make_group(seed, n_devices=30, n_plans=4) for seed in range(5))
        result = solve_legacy(Problem(groups))
        assert result.status == 0 and result.success and result.engine == "legacy"
        assert result.lower_bound is None and result.gap is None
        for group, group_result in zip(groups, result.groups, strict=True):
            cost = reference(group, group_result.assignment)
            assert group_result.cost == pytest.approx(cost)
            assert cost <= reference(group, base_assignment(group)) + 1e-9
            assert group_result.details["evaluated"] == sequence_count(group.n_plans)
            if group_result.details["best_index"] == -1:
                np.testing.assert_array_equal(group_result.assignment, base_assignment(group))
        assert result.cost == pytest.approx(sum(g.cost for g in result.groups))

    def test_same_input_same_result(self, make_group):
        problem = Problem((make_group(7, n_devices=50, n_plans=5),))
        first, second = solve_legacy(problem, seed=1), solve_legacy(problem, seed=1)
        np.testing.assert_array_equal(first.assignment[0], second.assignment[0])
        assert first.cost == second.cost and first.groups[0].details == second.groups[0].details

    def test_single_device_is_decided_by_the_base_assignment(self):
        result = solve_legacy(Problem((legacy_group([300.0]),)))
        assert result.groups[0].details["evaluated"] == 0
        np.testing.assert_array_equal(result.assignment[0], [1])

    def test_time_limit_keeps_the_best_so_far(self, make_group):
        group = make_group(2, n_devices=40, n_plans=6)
        result = solve_legacy(Problem((group,)), time_limit=1e-9)
        assert (
            result.status == 1
            and not result.success
            and result.message.startswith("Stopped at the time limit")
        )
        np.testing.assert_array_equal(result.assignment[0], base_assignment(group))

    def test_invalid_plans_give_status_2(self):
        bad = RatePlan(5, "BAD", 1.0, 1.0, 1.0, 0.0, pooled=False)
        result = solve_legacy(Problem((legacy_group([1.0], plans=(SMALL, bad)),)))
        assert result.status == 2 and result.assignment is None and result.cost is None
        assert "`plans`: overage_block_mb must be > 0; plan_id 5 (1 of 2)" in result.message

    def test_solve_legacy_iv(self):
        problem = Problem((legacy_group([1.0]),))
        with pytest.raises(
            ValueError, match=r"unknown keys \['speed'\]; accepted keys are \['batch_size', 'sequence_cap'\]"
        ):
            solve_legacy(problem, options={"speed": 1})
        with pytest.raises(ValueError, match="sequence_cap must be an integer >= 1"):
            solve_legacy(problem, options={"sequence_cap": 0})
        with pytest.raises(ValueError, match="`time_limit` must be a number > 0"):
            solve_legacy(problem, time_limit=0)
        with pytest.raises(TypeError, match="`problem` must be a Problem"):
            solve_legacy([problem])


def test_docstring_examples():
    import doctest
    import importlib

    failures, tried = doctest.testmod(
        importlib.import_module("include.carrier_optimization.core.engines.legacy.solve")
    )
    assert tried > 0 and failures == 0

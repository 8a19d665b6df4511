"""EngineResult: the gap formula, combining groups, the status-2 result."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from include.carrier_optimization.core.engines.result import (
    STATUS_MESSAGES,
    EngineResult,
    GroupResult,
    compute_gap,
    count_changes,
    infeasible_result,
)


def _group(key, cost, bound, status=0, changes=1):
    return GroupResult(
        key=key,
        engine="optimal",
        status=status,
        assignment=np.zeros(2, dtype=np.int64),
        cost=cost,
        lower_bound=bound,
        gap=compute_gap(cost, bound),
        seconds=0.5,
        changes=changes,
        pool_prices={7: 0.25},
    )


def test_gap_formula():
    assert compute_gap(200.0, 150.0) == pytest.approx(0.25)  # (cost - bound) / cost
    assert compute_gap(100.0, 100.0) == 0.0
    assert compute_gap(100.0, 100.0 + 1e-12) == 0.0  # never negative
    assert compute_gap(0.0, 0.0) == 0.0
    assert compute_gap(None, 1.0) is None and compute_gap(1.0, None) is None


def test_from_groups_adds_costs_and_bounds_and_keeps_the_worst_status():
    result = EngineResult.from_groups(
        "optimal", (_group("a", 100.0, 90.0), _group("b", 50.0, 50.0, status=1)), 2.0
    )
    assert (result.status, result.success) == (1, False)
    assert result.message.startswith(STATUS_MESSAGES[1])
    assert result.cost == 150.0 and result.lower_bound == 140.0
    assert result.gap == pytest.approx(10.0 / 150.0)
    assert result.changes == 2 and len(result.assignment) == 2
    assert result.pool_prices == ({7: 0.25}, {7: 0.25})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.cost = 1.0


def test_from_groups_without_bounds_has_no_gap():
    result = EngineResult.from_groups("legacy", (_group("a", 10.0, None),), 0.1)
    assert result.status == 0 and result.success and result.lower_bound is None and result.gap is None


def test_infeasible_result_has_no_solution_fields():
    result = infeasible_result("optimal", "`plans`: overage_rate must be > 0; plan_id 3 (1 of 1)", 0.0)
    assert (result.status, result.success) == (2, False)
    assert result.message == STATUS_MESSAGES[2] + " `plans`: overage_rate must be > 0; plan_id 3 (1 of 1)"
    assert result.assignment is None and result.cost is None and result.lower_bound is None
    assert result.gap is None and result.changes is None and result.groups == ()


def test_count_changes_ignores_unknown_current_plans():
    assert count_changes(np.array([0, 1, -1, 2]), np.array([0, 2, 1, 0])) == 2


def test_docstring_examples():
    import doctest
    import importlib

    failures, tried = doctest.testmod(
        importlib.import_module("include.carrier_optimization.core.engines.result")
    )
    assert tried > 0 and failures == 0

"""The cost model: overage blocks, cost matrices and the invoice against a per-device reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.carrier_optimization.core.cost import (
    evaluate,
    largest_remainder_cents,
    overage_blocks,
    overage_matrix,
    own_cost_matrix,
)
from include.carrier_optimization.core.domain import GroupProblem, RatePlan
from include.carrier_optimization.core.validation import InvalidInputError


class TestOverageBlocks:
    def test_whole_blocks_with_tolerance(self):
        blocks = overage_blocks([-5.0, 0.0, 1e-12, 9.99, 10.0, 10.0 + 1e-10, 10.01], 10.0)
        np.testing.assert_array_equal(blocks, [0, 0, 0, 1, 1, 1, 2])


def _hand_group() -> GroupProblem:
    pool = RatePlan(1, "POOL", 5.0, 10.0, 2.0, 1.0, pooled=True, sms_rate=0.1)
    single = RatePlan(2, "IND", 3.0, 4.0, 1.5, 2.0, pooled=False)
    return GroupProblem(
        key="1,2",
        comm_plans=("cp",),
        plans=(pool, single),
        device_ids=["a", "b", "c", "d"],
        usage_mb=[4.0, 18.5, 7.0, 3.0],
        sms=[10, 0, 0, 5],
        proration=[1.0, 1.0, 1.0, 0.5],
        comm_plan_index=[0, 0, 0, 0],
        current_plan=[0, -1, 1, 0],
    )


class TestEvaluate:
    def test_hand_computed_invoice(self):
        group = _hand_group()
        result = evaluate(group, [0, 0, 1, 1])
        # pool: 5 + 5 fixed, excess 22.5 - 20 = 2.5 MB -> 3 blocks × 2 = 6, split over its 2 SIMs
        # d on IND at f = 0.5: 1.5 fixed, allowance 2, usage 3 -> 1 block of 2 MB -> 1.5
        # c on IND: 3 fixed, 7 - 4 = 3 MB -> 2 blocks -> 3.0
        np.testing.assert_allclose(result.fixed, [5.0, 5.0, 3.0, 1.5])
        np.testing.assert_allclose(result.overage, [3.0, 3.0, 3.0, 1.5])
        np.testing.assert_allclose(result.sms, [1.0, 0.0, 0.0, 0.0])
        assert result.total_fixed == pytest.approx(14.5)
        assert result.total_overage == pytest.approx(10.5)
        assert result.total_sms == pytest.approx(1.0)
        assert result.total == pytest.approx(26.0)
        pool_row, single_row = result.plans
        assert (pool_row.plan_id, pool_row.devices, pool_row.overage_blocks, pool_row.overage) == (
            1,
            2,
            3.0,
            6.0,
        )
        assert pool_row.usage_mb == pytest.approx(22.5) and pool_row.allowance_mb == pytest.approx(20.0)
        assert (single_row.plan_id, single_row.devices, single_row.overage_blocks) == (2, 2, 3.0)
        assert single_row.total == pytest.approx(3.0 + 1.5 + 3.0 + 1.5)
        np.testing.assert_allclose(result.device_total.sum(), result.total)

    def test_prorated_allowance_counts_in_the_pool(self):
        group = _hand_group()
        result = evaluate(group, [0, 0, 0, 0])
        # allowance 10 + 10 + 10 + 5 = 35, usage 32.5: no overage
        assert result.total_overage == 0.0
        assert result.plans[1].devices == 0 and result.plans[1].total == 0.0

    def test_evaluate_iv(self):
        group = _hand_group()
        with pytest.raises(ValueError, match=r"`assignment` must have shape \(4,\)"):
            evaluate(group, [0, 1])
        with pytest.raises(ValueError, match="integer plan indices"):
            evaluate(group, [0.0, 1.0, 0.0, 1.0])
        with pytest.raises(
            InvalidInputError,
            match=r"`assignment`: plan index must be in \[0, 2\); device_id b, d \(2 of 4\)",
        ):
            evaluate(group, [0, 2, 1, -1])
        with pytest.raises(TypeError, match="`group` must be a GroupProblem"):
            evaluate("group", [0])

    @settings(max_examples=150, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), n_devices=st.integers(1, 40), n_plans=st.integers(1, 6))
    def test_matches_the_per_device_reference(self, make_group, reference, seed, n_devices, n_plans):
        group = make_group(seed, n_devices=n_devices, n_plans=n_plans, sms_rates=True)
        assignment = np.random.default_rng(seed).integers(0, n_plans, n_devices)
        result = evaluate(group, assignment)
        assert result.total == pytest.approx(reference(group, assignment), rel=1e-12, abs=1e-9)
        assert result.device_total.sum() == pytest.approx(result.total, rel=1e-12, abs=1e-9)
        assert sum(row.total for row in result.plans) == pytest.approx(result.total, rel=1e-12, abs=1e-9)

    def test_own_cost_matrix_is_the_cost_of_single_devices(self, make_group, reference):
        group = make_group(3, n_devices=12, n_plans=4, pooled_share=0.0, sms_rates=True)
        own = own_cost_matrix(group)
        for p in range(group.n_plans):
            assert own[:, p].sum() == pytest.approx(reference(group, [p] * group.n_devices))
        pooled = make_group(4, n_devices=5, n_plans=3, pooled_share=1.0)
        assert np.count_nonzero(overage_matrix(pooled)) == 0


def test_helpers_iv():
    with pytest.raises(ValueError, match="`block_mb` must be > 0"):
        overage_blocks([1.0], 0.0)
    with pytest.raises(TypeError, match="`group` must be a GroupProblem"):
        own_cost_matrix(None)
    with pytest.raises(TypeError, match="`group` must be a GroupProblem"):
        overage_matrix("x")


def test_docstring_examples():
    import doctest
    import importlib

    failures, tried = doctest.testmod(importlib.import_module("include.carrier_optimization.core.cost"))
    assert tried > 0 and failures == 0


class TestDeviceCents:
    def test_a_pools_overage_is_split_by_largest_remainder(self):
        plan = RatePlan(1, "POOL", 1.0, 0.0, 10.0, 100.0, pooled=True)
        group = GroupProblem(
            "1", ("cp",), (plan,), ["a", "b", "c"], [30.0, 30.0, 30.0], [0] * 3, [1] * 3, [0] * 3, [-1] * 3
        )
        breakdown = evaluate(group, [0, 0, 0])
        fixed, overage, sms = breakdown.device_cents()
        assert overage.tolist() == [334, 333, 333] and fixed.tolist() == [100] * 3 and sms.tolist() == [0] * 3
        assert int((fixed + overage + sms).sum()) == round(breakdown.total * 100) == 1300

    @settings(max_examples=60, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), n_devices=st.integers(1, 200), n_plans=st.integers(1, 6))
    def test_device_cents_add_up_to_the_invoice(self, make_group, seed, n_devices, n_plans):
        group = make_group(seed, n_devices=n_devices, n_plans=n_plans, sms_rates=True)
        assignment = np.random.default_rng(seed).integers(0, n_plans, n_devices)
        breakdown = evaluate(group, assignment)
        fixed, overage, sms = breakdown.device_cents()
        assert int((fixed + overage + sms).sum()) == round(breakdown.total * 100)
        assert np.all(np.abs((fixed + overage + sms) / 100 - breakdown.device_total) < 0.035)
        assert np.all(fixed >= 0) and np.all(sms >= 0)

    def test_largest_remainder_cents(self):
        assert largest_remainder_cents([0.015, 0.015, 0.015], 5).tolist() == [2, 2, 1]
        assert largest_remainder_cents([0.29, 0.57], 86).tolist() == [29, 57]
        assert largest_remainder_cents([1.0, 2.0], 299).tolist() == [100, 199]  # taken from the largest
        assert largest_remainder_cents([], 0).tolist() == []

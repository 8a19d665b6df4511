"""Domain dataclasses: frozen, with contiguous read-only arrays."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan, SkippedGroup

PLAN = RatePlan(7, "P7", 5.0, 10.0, 1.0, 1.0, pooled=True)


def _group(n=3) -> GroupProblem:
    return GroupProblem(
        key="7",
        comm_plans=["cp"],
        plans=[PLAN],
        device_ids=[f"d{i}" for i in range(n)],
        usage_mb=[1, 2, 3][:n],
        sms=[0] * n,
        proration=[1] * n,
        comm_plan_index=[0] * n,
        current_plan=[-1] * n,
    )


class TestGroupProblem:
    def test_arrays_are_contiguous_read_only_and_typed(self):
        group = _group()
        assert group.usage_mb.dtype == np.float64 and group.current_plan.dtype == np.int64
        assert group.usage_mb.flags.c_contiguous and not group.usage_mb.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            group.usage_mb[0] = 5.0
        assert group.plans == (PLAN,) and group.comm_plans == ("cp",)
        assert (group.n_devices, group.n_plans) == (3, 1)
        np.testing.assert_array_equal(group.plan_ids, [7])
        assert group.table.pooled.tolist() == [True]

    def test_is_frozen(self):
        with pytest.raises(dataclasses.FrozenInstanceError):
            _group().key = "other"

    def test_shape_mismatch_names_the_field(self):
        with pytest.raises(ValueError, match=r"`usage_mb` must have shape \(2,\); got \(3,\)"):
            GroupProblem("7", ("cp",), (PLAN,), ["a", "b"], [1, 2, 3], [0, 0], [1, 1], [0, 0], [-1, -1])


def test_problem_counts_devices_over_groups():
    skipped = SkippedGroup("1,2", ("big",), 21, 4, "21 plans, over the limit of 15")
    problem = Problem(groups=[_group(3), _group(2)], skipped=[skipped], days_in_period=31)
    assert problem.n_devices == 5 and problem.skipped == (skipped,) and problem.days_in_period == 31

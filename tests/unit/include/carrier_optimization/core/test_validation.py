"""Validation messages name the argument, the rule and the offending ids (first ten and a count)."""

from __future__ import annotations

import pytest

from include.carrier_optimization.core.domain import RatePlan
from include.carrier_optimization.core.validation import (
    InvalidInputError,
    mask_errors,
    offenders,
    plan_errors,
    validate_plans,
)


def _plan(plan_id, **changes) -> RatePlan:
    values = dict(monthly_charge=5.0, included_mb=10.0, overage_rate=1.0, overage_block_mb=1.0, pooled=False)
    values.update(changes)
    return RatePlan(plan_id, f"P{plan_id}", **values)


def test_offenders_lists_the_first_ten_and_a_count():
    message = offenders("devices", "usage_mb must be >= 0", "device_id", [f"d{i}" for i in range(12)], 20)
    assert message == (
        "`devices`: usage_mb must be >= 0; device_id d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, ... (12 of 20)"
    )


def test_mask_errors_reports_only_broken_rules():
    import numpy as np

    ids = np.array(["a", "b", "c"], dtype=object)
    errors = mask_errors("x", "id", ids, [("ok", np.zeros(3, bool)), ("bad", np.array([False, True, True]))])
    assert errors == ["`x`: bad; id b, c (2 of 3)"]


class TestPlanErrors:
    def test_valid_plans_have_no_errors(self):
        assert plan_errors([_plan(1), _plan(2, pooled=True)]) == []
        assert plan_errors([]) == []

    def test_non_positive_overage_block_names_the_plans(self):
        plans = [_plan(17, overage_block_mb=0.0), _plan(42, overage_block_mb=-1.0), _plan(3)]
        assert plan_errors(plans) == ["`plans`: overage_block_mb must be > 0; plan_id 17, 42 (2 of 3)"]

    def test_non_positive_overage_rate_names_the_plans(self):
        assert plan_errors([_plan(5, overage_rate=0.0), _plan(6)]) == [
            "`plans`: overage_rate must be > 0; plan_id 5 (1 of 2)"
        ]

    @pytest.mark.parametrize(
        ("changes", "rule"),
        [
            ({"monthly_charge": -1.0}, "monthly_charge must be a finite number >= 0"),
            ({"included_mb": float("nan")}, "included_mb must be a finite number >= 0"),
            ({"sms_rate": -0.1}, "sms_rate must be a finite number >= 0"),
            ({"overage_rate": float("inf")}, "overage_rate must be > 0"),
        ],
        ids=["negative-charge", "nan-allowance", "negative-sms-rate", "infinite-rate"],
    )
    def test_other_rules(self, changes, rule):
        assert plan_errors([_plan(9, **changes)]) == [f"`plans`: {rule}; plan_id 9 (1 of 1)"]

    def test_duplicate_ids(self):
        assert plan_errors([_plan(4), _plan(4)]) == ["`plans`: plan_id must be unique; plan_id 4, 4 (2 of 2)"]

    def test_validate_plans_raises_a_value_error_subclass(self):
        with pytest.raises(InvalidInputError, match=r"overage_block_mb must be > 0; plan_id 17 \(1 of 1\)"):
            validate_plans([_plan(17, overage_block_mb=0.0)])
        assert issubclass(InvalidInputError, ValueError)
        validate_plans([_plan(1)])  # valid: no exception


def test_docstring_examples():
    import doctest
    import importlib

    failures, tried = doctest.testmod(importlib.import_module("include.carrier_optimization.core.validation"))
    assert tried > 0 and failures == 0

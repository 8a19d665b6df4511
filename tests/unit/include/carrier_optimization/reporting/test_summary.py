"""The savings summary of an instance: totals, bound and gap from its comm groups."""

from __future__ import annotations

import pytest

from include.carrier_optimization.reporting.summary import optional_float, savings_summary


def group(cost, current, bound, devices=10, changes=2):
    return {
        "cost": cost,
        "current_cost": current,
        "lower_bound": bound,
        "devices": devices,
        "changes": changes,
    }


def test_totals_savings_and_gap_add_up_over_the_groups():
    figures = savings_summary(9, [group(90.0, 100.0, 89.0), group(10.004, 12.0, 10.0, devices=5, changes=1)])
    assert figures["instance_id"] == 9
    assert figures["devices"] == 15 and figures["changes"] == 3
    assert figures["current_cost"] == 112.0
    assert figures["optimized_cost"] == 100.0
    assert figures["savings"] == 12.0
    assert figures["lower_bound"] == 99.0
    assert figures["gap"] == pytest.approx((100.004 - 99.0) / 99.0, abs=1e-6)


def test_no_bound_when_a_group_has_none_and_a_missing_current_cost_counts_as_zero():
    figures = savings_summary(1, [group(5.0, None, 4.0), group(5.0, 8.0, None)])
    assert figures["lower_bound"] is None and figures["gap"] is None
    assert figures["current_cost"] == 8.0 and figures["savings"] == -2.0


def test_optional_float_keeps_none():
    assert optional_float(None) is None
    assert optional_float("1.25") == 1.25

"""Billing period inputs: usage projection, proration factor and the legacy activation days."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from include.carrier_optimization.core.billing_period import (
    days_active_in_period,
    project_usage,
    proration_factor,
)

START = dt.datetime(2026, 11, 1)
END = dt.datetime(2026, 12, 1)
MID = dt.datetime(2026, 11, 16)


class TestProjectUsage:
    def project(self, usage, **kwargs):
        kwargs.setdefault("now", MID)
        kwargs.setdefault("usage_date", [MID] * len(usage))
        return project_usage(usage, period_start=START, period_end=END, **kwargs)

    def test_mid_period_usage_is_scaled_to_the_period_with_the_margin(self):
        # 30 days / 15 days elapsed × 1.01
        np.testing.assert_allclose(self.project([10.0, 0.0]), [10.0 * 2 * 1.01, 0.0])

    @pytest.mark.parametrize("status", ["DEACTIVATED", "RETIRED"])
    def test_deactivated_and_retired_sims_keep_their_usage(self, status):
        result = self.project([10.0, 10.0], status=[status, "ACTIVATED"])
        np.testing.assert_allclose(result, [10.0, 20.2])

    def test_status_match_is_case_sensitive_as_in_the_legacy_code(self):
        np.testing.assert_allclose(self.project([10.0], status=["deactivated"]), [20.2])

    def test_period_ended_returns_usage_unchanged(self):
        result = self.project([10.0], now=END + dt.timedelta(seconds=1))
        np.testing.assert_array_equal(result, [10.0])

    @pytest.mark.parametrize(
        "usage_date",
        [START - dt.timedelta(days=1), END, END + dt.timedelta(days=2), START, None],
        ids=["before-start", "at-end", "after-end", "at-start", "missing-date"],
    )
    def test_usage_dates_outside_the_open_period_leave_usage_unchanged(self, usage_date):
        np.testing.assert_array_equal(self.project([7.5], usage_date=[usage_date]), [7.5])

    def test_elapsed_seconds_round_half_to_even(self):
        # 2.5 s rounds to 2 s (banker's rounding, as .NET and Python round)
        date = START + dt.timedelta(seconds=2, milliseconds=500)
        period = (END - START).total_seconds()
        np.testing.assert_allclose(self.project([1.0], usage_date=[date]), [period / 2 * 1.01])

    def test_project_usage_iv(self):
        with pytest.raises(ValueError, match="`usage_mb` must be a one-dimensional array"):
            project_usage([[1.0]], period_start=START, period_end=END, now=MID)
        with pytest.raises(ValueError, match="`usage_mb` must hold finite numbers"):
            project_usage([np.nan], period_start=START, period_end=END, now=MID)
        with pytest.raises(ValueError, match="`period_end` must be after `period_start`"):
            project_usage([1.0], period_start=END, period_end=START, now=MID)
        with pytest.raises(ValueError, match="must be datetimes"):
            project_usage([1.0], period_start=None, period_end=END, now=MID)
        with pytest.raises(ValueError, match=r"`status` must have shape \(1,\)"):
            project_usage([1.0], period_start=START, period_end=END, now=MID, status=["A", "B"])
        with pytest.raises(ValueError, match=r"`usage_date` must have shape \(1,\)"):
            project_usage([1.0], period_start=START, period_end=END, now=MID, usage_date=[MID, MID])


class TestProration:
    def test_devices_active_fewer_days_are_prorated(self):
        np.testing.assert_allclose(proration_factor([30, 15, 0, 45], 30), [1.0, 0.5, 0.0, 1.0])

    def test_no_proration_when_the_provider_does_not_prorate(self):
        np.testing.assert_array_equal(proration_factor([15], 30, uses_proration=False), [1.0])

    def test_explicit_activation_flag(self):
        result = proration_factor([15, 15], 30, activated_in_period=[True, False])
        np.testing.assert_allclose(result, [0.5, 1.0])

    def test_proration_factor_iv(self):
        with pytest.raises(ValueError, match="`days_active` must hold finite numbers >= 0"):
            proration_factor([-1], 30)
        with pytest.raises(ValueError, match="`days_in_period` must be a positive integer"):
            proration_factor([1], 0)
        with pytest.raises(ValueError, match="`days_active` must be a one-dimensional array"):
            proration_factor([[1]], 30)
        with pytest.raises(ValueError, match=r"`activated_in_period` must have shape \(1,\)"):
            proration_factor([1], 30, activated_in_period=[True, True])

    def test_days_active_in_period_follows_the_legacy_rule(self):
        activated, days = days_active_in_period(
            [dt.datetime(2026, 11, 20, 12), dt.datetime(2025, 1, 1), None, dt.datetime(2026, 11, 1)],
            period_start=START,
            period_end=END,
            days_in_period=30,
        )
        np.testing.assert_array_equal(activated, [True, False, False, True])
        np.testing.assert_array_equal(days, [11, 30, 30, 30])  # ceil(10.5 days) = 11; capped at D


def test_days_active_in_period_iv():
    with pytest.raises(ValueError, match="`date_activated` must be a one-dimensional array"):
        days_active_in_period([[START]], period_start=START, period_end=END, days_in_period=30)
    with pytest.raises(ValueError, match="end after start"):
        days_active_in_period([START], period_start=END, period_end=START, days_in_period=30)
    with pytest.raises(ValueError, match="`days_in_period` must be a positive integer"):
        days_active_in_period([START], period_start=START, period_end=END, days_in_period=0)


def test_docstring_examples():
    import doctest
    import importlib

    failures, tried = doctest.testmod(
        importlib.import_module("include.carrier_optimization.core.billing_period")
    )
    assert tried > 0 and failures == 0

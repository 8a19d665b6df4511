"""The fleet generator is deterministic and realistic enough for the engines and the pipeline."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.carrier_optimization.core.fleet import generate_fleet


class TestGenerateFleet:
    def test_same_seed_same_fleet_other_seed_other_fleet(self):
        a, b, c = generate_fleet(2000, seed=7), generate_fleet(2000, seed=7), generate_fleet(2000, seed=8)
        pd.testing.assert_frame_equal(a.devices, b.devices)
        assert not np.array_equal(a.devices.usage_mb, c.devices.usage_mb)

    def test_plans_ladder_has_pooled_and_individual_plans_and_groups_within_limit(self):
        fleet = generate_fleet(100, seed=1)
        assert len(fleet.plans) == 21
        assert set(fleet.plans.pooled) == {0, 1}
        allowed = {row.allowed_plan_ids for row in fleet.comm_plans.itertuples()}
        assert len(allowed) == 3  # three comm groups of identical allowed lists
        assert all(len(a.split(",")) <= 15 for a in allowed)
        assert (fleet.plans.overage_rate > 0).all() and (fleet.plans.overage_block_mb > 0).all()

    def test_oversized_group_exceeds_the_legacy_limit(self):
        fleet = generate_fleet(100, seed=1, oversized_group=True)
        assert max(len(a.split(",")) for a in fleet.comm_plans.allowed_plan_ids) == 21

    def test_usage_has_idle_share_heavy_tail_and_mid_period_activations(self):
        d = generate_fleet(20_000, seed=3).devices
        idle = (d.usage_mb == 0).mean()
        assert 0.2 < idle < 0.3
        assert d.usage_mb.max() > 50 * d.usage_mb.median()
        assert 0.03 < (d.days_active < 31).mean() < 0.07
        assert set(d.status) == {"ACTIVATED", "DEACTIVATED"}

    def test_current_plan_is_allowed_by_the_devices_comm_plan(self):
        fleet = generate_fleet(3000, seed=4)
        allowed = {
            r.comm_plan: {int(x) for x in r.allowed_plan_ids.split(",")}
            for r in fleet.comm_plans.itertuples()
        }
        assert all(
            p in allowed[c]
            for c, p in zip(fleet.devices.comm_plan, fleet.devices.current_plan_id, strict=True)
        )

    def test_projection_scales_month_to_date_usage_of_active_sims(self):
        fleet = generate_fleet(500, seed=5)
        d = fleet.devices
        period = round((fleet.period_end - fleet.period_start).total_seconds())
        elapsed = round((fleet.as_of - fleet.period_start).total_seconds())
        active = d.status == "ACTIVATED"
        np.testing.assert_allclose(
            d.usage_mb[active], d.cycle_usage_mb[active] * period / elapsed * 1.01, atol=1e-6
        )
        np.testing.assert_allclose(d.usage_mb[~active], d.cycle_usage_mb[~active])

    def test_rejects_an_empty_fleet(self):
        with pytest.raises(ValueError, match="`n_sims` must be >= 1"):
            generate_fleet(0)


@pytest.mark.parametrize(
    ("read", "share"),
    [(dt.timedelta(hours=-1), 0.0), (dt.timedelta(0), 0.0), (dt.timedelta(days=400), 1.0)],
    ids=["an hour before the period start", "at the period start", "after the period end"],
)
def test_a_reading_outside_its_period_reports_no_usage_or_all_of_it(read, share):
    """The first hours of a month: the local deployments read the sample fleet an hour before now."""
    end = dt.datetime(2026, 12, 31, 23, 59, 59)
    start = generate_fleet(10, seed=4, period_end=end).period_start
    fleet = generate_fleet(3000, seed=4, period_end=end, as_of=start + read)
    full = generate_fleet(3000, seed=4, period_end=end, as_of=end).devices
    active = fleet.devices.status == "ACTIVATED"
    assert active.any() and (fleet.devices.ctd_bytes >= 0).all() and (fleet.devices.usage_mb >= 0).all()
    assert np.allclose(fleet.devices.ctd_bytes[active], share * full.ctd_bytes[active], atol=1)

"""The restricted LP: reduced costs, fixed devices, tie classes, the LP bound and its rounded assignment."""

from __future__ import annotations

import numpy as np
import pytest

from include.carrier_optimization.core.engines.dual import prepare_group
from include.carrier_optimization.core.engines.optimal import OPTIONS
from include.carrier_optimization.core.engines.restricted import reduced_costs, restricted_lp


def test_reduced_costs_add_priced_excess_on_pooled_plans_only(make_group):
    group = make_group(5100, n_devices=4, n_plans=3, pooled_share=0.5)
    data = prepare_group(group)
    lam = np.linspace(0.1, 0.2, len(data.pools))
    reduced = reduced_costs(data, lam)
    expected = data.own.copy()
    for g, p in enumerate(data.pools):
        expected[:, p] += lam[g] * (group.usage_mb - group.proration * group.plans[p].included_mb)
    assert reduced == pytest.approx(expected)
    assert reduced_costs(data, np.zeros(len(data.pools))) == pytest.approx(data.own)


def test_devices_with_one_candidate_are_fixed_without_an_lp(make_group):
    group = make_group(5101, n_devices=5, n_plans=3)
    data = prepare_group(group)
    picks = np.array([0, 1, 2, 1, 0])
    candidates = np.zeros((5, 3), dtype=bool)
    candidates[np.arange(5), picks] = True
    trace: dict = {}
    assignment, lam, value, failure = restricted_lp(data, candidates, None, dict(OPTIONS), trace)
    assert assignment.tolist() == picks.tolist()
    assert (lam, value, failure) == (None, None, None) and trace["lp_tie_devices"] == 0


@pytest.mark.parametrize("seed", range(8))
def test_with_every_plan_a_candidate_the_lp_is_a_lower_bound(make_hard_group, brute, reference, seed):
    group = make_hard_group(5200 + seed, n_devices=5, n_plans=3)
    data = prepare_group(group)
    candidates = np.ones((group.n_devices, group.n_plans), dtype=bool)
    trace: dict = {}
    assignment, lam, value, failure = restricted_lp(data, candidates, None, dict(OPTIONS), trace)
    optimum, _ = brute(group)
    assert failure is None and trace["lp_status"].endswith("kOptimal")
    assert value <= optimum + 1e-7
    assert reference(group, assignment) >= optimum - 1e-9  # a real, complete assignment
    assert assignment.min() >= 0 and assignment.max() < group.n_plans
    assert np.all(lam >= 0) and np.all(lam <= data.rho + 1e-12)


def test_the_rounded_assignment_keeps_to_the_candidates_when_classes_are_bucketed(make_group):
    group = make_group(5300, n_devices=200, n_plans=4, pooled_share=0.5)
    data = prepare_group(group)
    rng = np.random.default_rng(1)
    candidates = rng.random((200, 4)) < 0.6
    candidates[np.arange(200), rng.integers(0, 4, 200)] = True
    options = dict(OPTIONS) | {"lp_max_classes": 8}
    trace: dict = {}
    assignment, _, value, failure = restricted_lp(data, candidates, None, options, trace)
    assert failure is None and value is not None
    assert candidates[np.arange(200), assignment].all()
    ties = int((candidates.sum(axis=1) > 1).sum())
    assert trace["lp_tie_devices"] == ties
    # over the cap, devices of a (candidates, proration) key share usage buckets: far fewer classes
    assert trace["lp_classes"] < ties / 3

"""Shared helpers of the library tests: random tiny groups, an independent cost reference, brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from include.carrier_optimization.core.domain import GroupProblem, RatePlan


def _blocks(excess: float, block: float) -> int:
    """Whole overage blocks of docs/architecture.md, written out: ceil with a tolerance of 1e-9 blocks."""
    if excess <= 0:
        return 0
    return max(0, math.ceil(excess / block - 1e-9))


def reference_cost(group: GroupProblem, assignment) -> float:
    """Invoice of an assignment by a plain per-device loop (independent of `cost.evaluate`)."""
    total = 0.0
    pools: dict[int, list[float]] = {}
    for i, p in enumerate(assignment):
        plan = group.plans[int(p)]
        f, u = float(group.proration[i]), float(group.usage_mb[i])
        total += plan.monthly_charge * f + plan.sms_rate * float(group.sms[i])
        if plan.pooled:
            usage, allowance = pools.setdefault(int(p), [0.0, 0.0])
            pools[int(p)] = [usage + u, allowance + plan.included_mb * f]
        else:
            total += plan.overage_rate * _blocks(u - plan.included_mb * f, plan.overage_block_mb)
    for p, (usage, allowance) in pools.items():
        plan = group.plans[p]
        total += plan.overage_rate * _blocks(usage - allowance, plan.overage_block_mb)
    return total


def brute_force(group: GroupProblem) -> tuple[float, tuple[int, ...]]:
    """Cheapest assignment over all ``P^N`` assignments (tiny groups only)."""
    best = (math.inf, ())
    for assignment in itertools.product(range(group.n_plans), repeat=group.n_devices):
        cost = reference_cost(group, assignment)
        if cost < best[0] - 1e-9:
            best = (cost, assignment)
    return best


def random_group(
    rng: np.random.Generator,
    *,
    n_devices: int,
    n_plans: int,
    n_comm_plans: int = 2,
    pooled_share: float = 0.5,
    sms_rates: bool = False,
) -> GroupProblem:
    """A random group with a mix of idle, light and heavy devices, prorated devices and pooled plans."""
    plans = tuple(
        RatePlan(
            plan_id=100 + j,
            code=f"P{j}",
            monthly_charge=float(np.round(rng.uniform(0.5, 20.0), 2)),
            included_mb=float(rng.choice([0.0, 1.0, 5.0, 10.0, 25.0, 50.0])),
            overage_rate=float(np.round(rng.uniform(0.05, 3.0), 3)),
            overage_block_mb=float(rng.choice([1.0, 5.0, 10.0])),
            pooled=bool(rng.random() < pooled_share),
            sms_rate=float(rng.choice([0.0, 0.05])) if sms_rates else 0.0,
        )
        for j in range(n_plans)
    )
    usage = np.where(rng.random(n_devices) < 0.25, 0.0, np.round(rng.lognormal(1.0, 1.5, n_devices), 3))
    proration = np.where(rng.random(n_devices) < 0.2, rng.integers(0, 31, n_devices) / 30, 1.0)
    return GroupProblem(
        key=",".join(str(p.plan_id) for p in plans),
        comm_plans=tuple(f"cp{k}" for k in range(n_comm_plans)),
        plans=plans,
        device_ids=[f"d{i}" for i in range(n_devices)],
        usage_mb=usage,
        sms=rng.integers(0, 10, n_devices),
        proration=proration,
        comm_plan_index=rng.integers(0, n_comm_plans, n_devices),
        current_plan=rng.integers(-1, n_plans, n_devices),
    )


def hard_group(rng: np.random.Generator, *, n_devices: int, n_plans: int) -> GroupProblem:
    """A tiny group of the hard kinds: pooled plans with big blocks, SMS rates, a pay-as-you-go zero-MB
    plan, ties (repeated usages, equal prices) and mid-period activations (proration)."""
    plans = [RatePlan(100, "PAYG", 0.5, 0.0, 1.0, 1.0, pooled=False, sms_rate=0.05)]
    for j in range(1, n_plans):
        plans.append(
            RatePlan(
                plan_id=100 + j,
                code=f"H{j}",
                monthly_charge=float(rng.choice([2.0, 5.0, 5.0, 12.0])),
                included_mb=float(rng.choice([0.0, 10.0, 50.0, 100.0])),
                overage_rate=float(rng.choice([5.0, 10.0, 25.0])),
                overage_block_mb=float(rng.choice([10.0, 100.0, 1024.0])),
                pooled=bool(rng.random() < 0.7),
                sms_rate=float(rng.choice([0.0, 0.02])),
            )
        )
    usage = rng.choice([0.0, 0.0, 3.0, 12.5, 40.0, 95.0, 160.0], n_devices)
    return GroupProblem(
        key=",".join(str(p.plan_id) for p in plans),
        comm_plans=("cp0",),
        plans=tuple(plans),
        device_ids=[f"h{i}" for i in range(n_devices)],
        usage_mb=usage,
        sms=rng.choice([0, 0, 20, 200], n_devices),
        proration=np.where(rng.random(n_devices) < 0.3, rng.integers(1, 30, n_devices) / 30, 1.0),
        comm_plan_index=np.zeros(n_devices, dtype=np.int64),
        current_plan=rng.integers(-1, n_plans, n_devices),
    )


@pytest.fixture(scope="session")
def make_hard_group():
    """Factory of hard tiny groups: ``make_hard_group(seed, n_devices=..., n_plans=...)``."""

    def make(seed: int, **kwargs) -> GroupProblem:
        return hard_group(np.random.default_rng(seed), **kwargs)

    return make


@pytest.fixture(scope="session")
def make_group():
    """Factory of random groups: ``make_group(seed, n_devices=..., n_plans=...)``."""

    def make(seed: int, **kwargs) -> GroupProblem:
        return random_group(np.random.default_rng(seed), **kwargs)

    return make


@pytest.fixture(scope="session")
def reference():
    """`reference_cost`: the invoice by a plain per-device loop."""
    return reference_cost


@pytest.fixture(scope="session")
def brute():
    """`brute_force`: the optimum over all assignments of a tiny group."""
    return brute_force


def tiny_group(plans, usage, *, proration=None, current=None) -> GroupProblem:
    """A group of one comm plan over ``plans``; devices ``d0..`` with ``usage``, no SMS, full periods."""
    n = len(usage)
    return GroupProblem(
        key=",".join(str(p.plan_id) for p in plans),
        comm_plans=("cp",),
        plans=tuple(plans),
        device_ids=[f"d{i}" for i in range(n)],
        usage_mb=usage,
        sms=[0] * n,
        proration=[1.0] * n if proration is None else proration,
        comm_plan_index=[0] * n,
        current_plan=[-1] * n if current is None else current,
    )


@pytest.fixture(scope="session")
def make_tiny_group():
    """`tiny_group`: a hand-written group of one comm plan."""
    return tiny_group

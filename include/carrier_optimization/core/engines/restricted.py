"""The restricted LP of one group: tie devices aggregated into classes, solved by HiGHS, then rounded.

docs/architecture.md. Devices keep the plans whose reduced cost at the prices λ is within
a tolerance of their best; single-candidate devices are fixed, identical tie devices become count
variables, and the LP's pool duals are new prices for the next round of the optimal engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import highspy
import numpy as np

from include.carrier_optimization.core.engines.classes import row_classes
from include.carrier_optimization.core.engines.dual import GroupData
from include.carrier_optimization.core.engines.highs import HighsRun, csc_columns, highs_status, run_highs
from include.carrier_optimization.core.engines.result import STATUS_FINISHED

__all__ = ["reduced_costs", "restricted_lp"]


def reduced_costs(data: GroupData, lam: np.ndarray) -> np.ndarray:
    """``ĉ_ip(λ)`` (N, P): own cost, plus ``λ_g·(u_i − A_g·f_i)`` on the pooled plans."""
    reduced = data.own.copy()
    if len(data.pools):
        reduced[:, data.pools] += data.excess * lam
    return reduced


def _tie_classes(data: GroupData, candidates: np.ndarray, ties: np.ndarray, max_classes: int):
    """Aggregate tie devices into at most about ``max_classes`` classes.

    Devices are grouped by candidate set, proration and (when a plan prices SMS) SMS count; inside a group
    identical devices share a class. When that gives more than ``max_classes`` classes, each group is split
    into buckets of consecutive usage instead, and a class's columns carry its members' mean cost and
    excess. Returns the class of each tie device (classes ordered by key, then usage).
    """
    group = data.group
    n_plans = group.n_plans
    if n_plans < 62:
        pattern = (candidates[ties] * (1 << np.arange(n_plans, dtype=np.int64))).sum(axis=1).astype(float)
    else:
        pattern = np.unique(candidates[ties], axis=0, return_inverse=True)[1].ravel().astype(float)
    sms = group.sms[ties] if np.any(group.table.sms_rate != 0) else np.zeros(len(ties))
    key = row_classes(pattern, group.proration[ties], sms)
    usage = group.usage_mb[ties]
    exact = row_classes(key, usage)
    if exact.max() < max_classes:  # identical devices merged: the LP is exact
        return exact
    order = np.lexsort((ties, usage, key))
    # bucket by a position that grows with both the device count and the usage mass, so buckets are
    # narrow where devices are many and heavy devices (which move pool totals most) stay nearly alone
    sorted_usage = usage[order]
    position = np.arange(1, len(ties) + 1) / len(ties) + np.cumsum(sorted_usage) / max(
        sorted_usage.sum(), 1e-12
    )
    budget = max(1, max_classes // 2)
    bucket_sorted = np.minimum((position * budget).astype(np.int64), 2 * budget)
    # a bucket never spans two keys: number buckets by (key, bucket) pairs
    classes = np.empty(len(ties), dtype=np.int64)
    classes[order] = row_classes(key[order], bucket_sorted)
    return classes


def restricted_lp(
    data: GroupData,
    candidates: np.ndarray,
    deadline: float | None,
    options: Mapping[str, Any],
    trace: dict[str, object],
) -> tuple[np.ndarray | None, np.ndarray | None, float | None, tuple[int, str] | None]:
    """Solve the LP over the candidate plans; returns (assignment, λ_LP, LP value, failure)."""
    assignment, constant, fixed_excess, ties = _fixed_devices(data, candidates)
    trace["lp_tie_devices"] = int(ties.size)
    if ties.size == 0:
        return assignment, None, None, None

    member_class = _tie_classes(data, candidates, ties, options["lp_max_classes"])
    n_classes = int(member_class.max()) + 1
    weight = np.bincount(member_class, minlength=n_classes)
    trace["lp_classes"] = n_classes
    representative = ties[np.unique(member_class, return_index=True)[1]]
    cls, plan = np.nonzero(candidates[representative])  # columns, ordered by class
    n_cols, n_pools = len(cls), len(data.pools)
    mean_cost, mean_excess = _class_means(data, ties, member_class, weight, cls, plan)
    run = _solve_class_lp(data, cls, plan, mean_cost, mean_excess, weight, fixed_excess, deadline)
    code, text = highs_status(run.status)
    x, row_dual, objective = run.x, run.row_dual, run.objective
    trace["lp_status"] = text
    if code != STATUS_FINISHED or len(x) != n_cols + n_pools:
        return None, None, None, (code, text)
    lam = np.clip(-row_dual[n_classes:], 0.0, data.rho)
    counts = _round_counts(x[:n_cols], cls, weight)
    members = ties[np.lexsort((ties, data.group.usage_mb[ties], member_class))]
    assignment[members] = _hand_out(plan, cls, counts)
    return assignment, lam, constant + objective, None


def _fixed_devices(
    data: GroupData, candidates: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Devices with a single candidate are fixed: their assignment (-1 for ties), own cost, pool excess.

    Returns the assignment, the fixed devices' own cost, their excess per pool and the tie devices.
    """
    n_candidates = candidates.sum(axis=1)
    fixed = n_candidates == 1
    assignment = np.where(fixed, np.argmax(candidates, axis=1), -1)
    constant = float(data.own[fixed, assignment[fixed]].sum())
    n_pools = len(data.pools)
    fixed_pool = np.where(fixed, data.pool_of_plan[np.maximum(assignment, 0)], -1)
    inside = np.flatnonzero(fixed_pool >= 0)
    fixed_excess = np.bincount(
        fixed_pool[inside], weights=data.excess[inside, fixed_pool[inside]], minlength=n_pools
    )
    return assignment, constant, fixed_excess, np.flatnonzero(~fixed)


def _class_means(
    data: GroupData,
    ties: np.ndarray,
    member_class: np.ndarray,
    weight: np.ndarray,
    cls: np.ndarray,
    plan: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Class means of own cost and pool excess of each LP column (class ``cls[j]`` on plan ``plan[j]``)."""
    n_classes = len(weight)
    n_cols = len(cls)
    mean_cost = np.empty(n_cols)
    mean_excess = np.zeros(n_cols)
    for p in range(data.group.n_plans):
        cols = np.flatnonzero(plan == p)
        if cols.size == 0:
            continue
        total = np.bincount(member_class, weights=data.own[ties, p], minlength=n_classes)
        mean_cost[cols] = total[cls[cols]] / weight[cls[cols]]
        g = data.pool_of_plan[p]
        if g >= 0:
            total = np.bincount(member_class, weights=data.excess[ties, g], minlength=n_classes)
            mean_excess[cols] = total[cls[cols]] / weight[cls[cols]]
    return mean_cost, mean_excess


def _solve_class_lp(
    data: GroupData,
    cls: np.ndarray,
    plan: np.ndarray,
    mean_cost: np.ndarray,
    mean_excess: np.ndarray,
    weight: np.ndarray,
    fixed_excess: np.ndarray,
    deadline: float | None,
) -> HighsRun:
    """One HiGHS call on the class LP: count columns per (class, plan), overage columns per pool."""
    n_classes, n_cols, n_pools = len(weight), len(cls), len(data.pools)
    pool = data.pool_of_plan[plan]
    pooled_col = pool >= 0
    # column j: assignment row cls[j] and, when pooled, the pool row (mean excess); overage columns o_g
    # (MB over the pool allowance) have pool row coefficient -1 and cost ρ_g
    start, index, value = csc_columns(cls, pool, mean_excess[pooled_col], n_classes, -np.ones(n_pools))
    remaining = None if deadline is None else deadline - time.perf_counter()
    return run_highs(
        cost=np.r_[mean_cost, data.rho],
        col_lower=np.zeros(n_cols + n_pools),
        col_upper=np.full(n_cols + n_pools, highspy.kHighsInf),
        row_lower=np.r_[weight.astype(float), np.full(n_pools, -highspy.kHighsInf)],
        row_upper=np.r_[weight.astype(float), -fixed_excess],
        start=start,
        index=index,
        value=value,
        time_limit=remaining,
    )


def _hand_out(plan: np.ndarray, cls: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Plan labels of the tie devices, class by class in usage order: each plan spread over the class."""
    label = np.repeat(plan, counts)
    label_class = np.repeat(cls, counts)
    k = np.arange(len(label)) - np.repeat(np.cumsum(counts) - counts, counts)
    slot = (k + 0.5) / np.repeat(np.maximum(counts, 1), counts)
    return label[np.lexsort((slot, label_class))]


def _round_counts(y: np.ndarray, cls: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Integer counts per column: floors, then each class's remainder to its largest fractions."""
    counts = np.floor(y + 1e-9).astype(np.int64)
    counts = np.maximum(counts, 0)
    remainder = weight - np.bincount(cls, weights=counts, minlength=len(weight)).astype(np.int64)
    for k in np.flatnonzero(remainder != 0):
        cols = np.flatnonzero(cls == k)
        if remainder[k] > 0:
            fractions = y[cols] - counts[cols]
            for j in cols[np.argsort(-fractions, kind="stable")][: remainder[k]]:
                counts[j] += 1
        else:  # floors overshoot only through the 1e-9 slack: take from the largest counts
            for j in cols[np.argsort(-counts[cols], kind="stable")][: -remainder[k]]:
                counts[j] -= 1
    return counts

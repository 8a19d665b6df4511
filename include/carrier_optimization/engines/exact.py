"""Exact MILP of one comm group (HiGHS), block-aware and aggregated over identical SIMs.

``optimization-notes.md`` §1.2. Identical devices (same usage, proration and SMS count) form a class
``c`` of ``n_c`` devices; per class the model keeps the cheapest non-pooled plan (non-pooled plans do
not interact, so the others can never be better) and every pooled plan:

    min  Σ_c Σ_p c_cp·y_cp + Σ_g r_g·k_g
    s.t. Σ_p y_cp = n_c                                   for every class c
         Σ_c e_cg·y_cg − q_g·k_g <= 0                     for every pool g   (e_cg = u_c − A_g·f_c)
         y_cp ∈ {0, …, n_c},  k_g ∈ ℤ≥0                   (whole overage blocks)

This is the invoice exactly (the block rounding included), with one integer per (class, column) instead
of one binary per (device, plan), so idle SIMs and other twins cost one variable. HiGHS is warm-started
from the heuristic's assignment; its dual bound is a certified lower bound also when a limit stops it.
Identical pooled plans ("twins") keep one set of columns (merging two such pools never costs more), which
removes the symmetry that otherwise keeps HiGHS from closing the gap. A run whose objective is not the
cost of the solution it returns (seen with HiGHS 1.16, a warm start and presolve) is discarded and the
model solved again without the warm start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np

from include.carrier_optimization.cost import overage_blocks
from include.carrier_optimization.engines.highs import csc_columns, highs_status, run_highs

__all__ = ["ExactOutcome", "solve_exact"]


@dataclass(frozen=True, eq=False)
class ExactOutcome:
    """Result of the exact MILP: the assignment (None if HiGHS found none), its dual bound and status."""

    assignment: np.ndarray | None
    lower_bound: float | None
    optimal: bool
    status: str


def _classes(data) -> tuple[np.ndarray, np.ndarray]:
    """Class of each device (identical usage, proration, SMS) and the first device of each class."""
    group = data.group
    keys = np.column_stack([group.usage_mb, group.proration, group.sms.astype(np.float64)])
    _, first, member = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return member.ravel(), first


def _twin_pool(data) -> np.ndarray:
    """For each pool, the first pool of an identical plan (itself when it has no earlier twin).

    Two pools of identical plans never beat one: merging them gives ``max(0, a + b) <= max(0, a) +
    max(0, b)`` MB of excess and no more blocks, so dropping the twins keeps the optimum and removes the
    symmetry that would make the search explore each split twice.
    """
    t = data.group.table
    p = data.pools
    keys = np.column_stack(
        [t.monthly_charge[p], t.included_mb[p], t.overage_rate[p], t.overage_block_mb[p], t.sms_rate[p]]
    )
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first[inverse.ravel()]


def _columns(data, first: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns ``(class, local plan)``: the best non-pooled plan of each class, then the distinct pools."""
    n_classes = len(first)
    pools = data.pools[np.unique(_twin_pool(data))]
    individual = data.best_individual_plan[first]
    has_individual = individual >= 0
    col_class = np.r_[np.flatnonzero(has_individual), np.repeat(np.arange(n_classes), len(pools))]
    col_plan = np.r_[individual[has_individual], np.tile(pools, n_classes)]
    col_pool = data.pool_of_plan[col_plan]
    return col_class, col_plan, col_pool


def _warm_counts(data, member, col_class, col_plan, assignment: np.ndarray) -> np.ndarray:
    """Column values of a device assignment (a non-pooled device counts on its class's best column)."""
    n_classes = int(member.max()) + 1
    n_plans = data.group.n_plans
    pool = data.pool_of_plan[assignment]
    canonical = data.pools[_twin_pool(data)][np.maximum(pool, 0)] if len(data.pools) else assignment
    # identical devices share their best non-pooled plan; a device on a twin pool counts on the kept twin
    slot_plan = np.where(pool >= 0, canonical, data.best_individual_plan)
    slots = np.bincount(member * n_plans + slot_plan, minlength=n_classes * n_plans)
    return slots[col_class * n_plans + col_plan].astype(np.float64)


def _decode(member: np.ndarray, col_class, col_plan, counts: np.ndarray) -> np.ndarray | None:
    """Hand each class's column counts to its devices (in device order); None if counts do not fit."""
    n = len(member)
    if counts.sum() != n or np.any(counts < 0):
        return None
    order = np.argsort(col_class, kind="stable")
    labels = np.repeat(col_plan[order], counts[order])
    label_class = np.repeat(col_class[order], counts[order])
    devices = np.argsort(member, kind="stable")
    if not np.array_equal(label_class, member[devices]):
        return None
    assignment = np.empty(n, dtype=np.int64)
    assignment[devices] = labels
    return assignment


def _consistent(run, cost: np.ndarray) -> bool:
    """Whether HiGHS's objective is the cost of the solution it returns (else its bound is unusable)."""
    if len(run.x) != len(cost) or not np.isfinite(run.objective):
        return False
    return abs(float(cost @ run.x) - run.objective) <= 1e-6 * max(1.0, abs(run.objective))


def solve_exact(data, assignment: np.ndarray, time_limit: float, max_nodes: int) -> ExactOutcome:
    """Solve the aggregated MILP of one group, warm-started from ``assignment``.

    ``data`` is the optimal engine's per-group data (``own``, ``excess``, ``pools``, ``pool_of_plan``,
    ``rate``, ``block``, ``best_individual_plan``, ``group``). The node limit keeps the search
    deterministic; the time limit is a safety net. ``optimal`` is True when HiGHS proved optimality with
    a relative gap of 0; ``lower_bound`` is HiGHS's dual bound (valid in every case it is finite).
    """
    member, first = _classes(data)
    n_classes, n_pools = len(first), len(data.pools)
    weight = np.bincount(member, minlength=n_classes).astype(np.float64)
    col_class, col_plan, col_pool = _columns(data, first)
    pooled = col_pool >= 0
    pool_coeff = data.excess[first[col_class[pooled]], col_pool[pooled]]
    start, index, value = csc_columns(col_class, col_pool, pool_coeff, n_classes, -data.block)
    warm = _warm_counts(data, member, col_class, col_plan, assignment)
    pool_excess = np.bincount(col_pool[pooled], weights=pool_coeff * warm[pooled], minlength=n_pools)
    model = {
        "cost": np.r_[data.own[first[col_class], col_plan], data.rate],
        "col_lower": np.zeros(len(col_class) + n_pools),
        "col_upper": np.r_[weight[col_class], np.full(n_pools, highspy.kHighsInf)],
        "row_lower": np.r_[weight, np.full(n_pools, -highspy.kHighsInf)],
        "row_upper": np.r_[weight, np.zeros(n_pools)],
        "start": start,
        "index": index,
        "value": value,
        "integer": True,
        "options": {"mip_rel_gap": 0.0, "mip_abs_gap": 1e-7, "mip_max_nodes": int(max_nodes)},
    }
    began = time.perf_counter()
    run = run_highs(
        **model, time_limit=time_limit, warm_start=np.r_[warm, overage_blocks(pool_excess, data.block)]
    )
    if not _consistent(run, model["cost"]):
        # HiGHS 1.16 can return the warm start with a wrong objective and dual bound after presolve:
        # such a run proves nothing; solve again without the warm start in the time left
        left = time_limit - (time.perf_counter() - began)
        if left <= 0:
            return ExactOutcome(None, None, False, "inconsistent warm-started HiGHS run; no time left")
        run = run_highs(**model, time_limit=left)
        if not _consistent(run, model["cost"]):
            return ExactOutcome(None, None, False, "inconsistent HiGHS run")
    code, text = highs_status(run.status)
    bound = float(run.dual_bound) if np.isfinite(run.dual_bound) else None
    decoded = None
    if len(run.x) == len(col_class) + n_pools:
        decoded = _decode(member, col_class, col_plan, np.rint(run.x[: len(col_class)]).astype(np.int64))
    return ExactOutcome(assignment=decoded, lower_bound=bound, optimal=code == 0, status=text)

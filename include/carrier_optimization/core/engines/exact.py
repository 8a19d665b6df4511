"""Exact MILP of one comm group (HiGHS), block-aware and aggregated over identical SIMs.

docs/architecture.md Identical devices (same usage, proration and SMS count) form a class
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

On a larger group the same model restricted to the devices whose plan is open (``free``) and to their
candidate plans (``allowed``), the other devices fixed as in the incumbent, is a small MILP that finds a
cheaper assignment; its bound is then only a bound of the restricted model and is not reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np

from include.carrier_optimization.core.cost import evaluate, overage_blocks
from include.carrier_optimization.core.engines.dual import GroupData
from include.carrier_optimization.core.engines.highs import csc_columns, highs_status, run_highs

__all__ = ["ExactOutcome", "solve_exact"]


@dataclass(frozen=True, eq=False)
class ExactOutcome:
    """Result of the exact MILP: the assignment (None if HiGHS found none), its dual bound and status."""

    assignment: np.ndarray | None
    lower_bound: float | None
    optimal: bool
    status: str


def _classes(data, free: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class of each free device (same usage, proration, SMS, candidate plans) and each class's first."""
    group = data.group
    pattern = np.unique(allowed[free], axis=0, return_inverse=True)[1].ravel().astype(np.float64)
    keys = np.column_stack(
        [group.usage_mb[free], group.proration[free], group.sms[free].astype(float), pattern]
    )
    _, first, member = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return member.ravel(), free[first]


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


def _canonical(data, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plans with twin pools folded into the kept twin: (plan → canonical plan, allowed folded)."""
    canonical = np.arange(data.group.n_plans)
    if len(data.pools):
        canonical[data.pools] = data.pools[_twin_pool(data)]
    folded = np.zeros_like(allowed)
    for p in range(data.group.n_plans):
        folded[:, canonical[p]] |= allowed[:, p]
    return canonical, folded


def _columns(data, first: np.ndarray, allowed: np.ndarray):
    """Columns ``(class, local plan)`` and each class's best non-pooled plan (-1 when none allowed).

    Per class: its cheapest allowed non-pooled plan (they do not interact), then its allowed kept pools.
    """
    individual_cost = np.where(allowed[first] & (data.pool_of_plan < 0), data.own[first], np.inf)
    best = np.argmin(individual_cost, axis=1)
    best = np.where(np.isfinite(individual_cost[np.arange(len(first)), best]), best, -1)
    has_individual = best >= 0
    pool_class, pool_plan = np.nonzero(allowed[first][:, data.pools])
    col_class = np.r_[np.flatnonzero(has_individual), pool_class]
    col_plan = np.r_[best[has_individual], data.pools[pool_plan]]
    return col_class, col_plan, data.pool_of_plan[col_plan], best


def _warm_counts(member, col_class, col_plan, slot_plan: np.ndarray, n_plans: int) -> np.ndarray:
    """Column values of the incumbent: devices counted on their slot plan within their class."""
    n_classes = int(member.max()) + 1
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
    result = np.empty(n, dtype=np.int64)
    result[devices] = labels
    return result


def _consistent(run, cost: np.ndarray) -> bool:
    """Whether HiGHS's objective is the cost of the solution it returns (else its bound is unusable)."""
    if len(run.x) != len(cost) or not np.isfinite(run.objective):
        return False
    return abs(float(cost @ run.x) - run.objective) <= 1e-6 * max(1.0, abs(run.objective))


def _solve_checked(model: dict, warm: np.ndarray, time_limit: float):
    """Warm-started HiGHS run; an inconsistent one is repeated cold. Returns the run or a reason."""
    began = time.perf_counter()
    run = run_highs(**model, time_limit=time_limit, warm_start=warm)
    if _consistent(run, model["cost"]):
        return run, ""
    # HiGHS 1.16 can return the warm start with a wrong objective and dual bound after presolve:
    # such a run proves nothing; solve again without the warm start in the time left
    left = time_limit - (time.perf_counter() - began)
    if left <= 0:
        return None, "inconsistent warm-started HiGHS run; no time left"
    run = run_highs(**model, time_limit=left)
    return (run, "") if _consistent(run, model["cost"]) else (None, "inconsistent HiGHS run")


def solve_exact(
    data: GroupData,
    assignment: np.ndarray,
    time_limit: float,
    max_nodes: int,
    allowed: np.ndarray | None = None,
) -> ExactOutcome:
    """Solve the aggregated MILP of one group, warm-started from ``assignment``.

    ``data`` is the optimal engine's per-group data (`engines.dual.GroupData`). Without ``allowed`` the
    model is the whole group (every plan open to every device): ``optimal`` is True when HiGHS proved
    optimality with a relative gap of 0 and ``lower_bound`` is HiGHS's dual bound (valid in every case it
    is finite). With ``allowed`` (N×P, the incumbent's plan is added), a device with one allowed plan
    stays fixed, the others get their allowed plans: the outcome's assignment is the restricted optimum
    found and ``lower_bound`` is None. The node limit keeps the search deterministic; the time limit is a
    safety net.
    """
    n = data.group.n_devices
    rows = np.arange(n)
    full = allowed is None
    allowed = np.ones(data.own.shape, dtype=bool) if full else allowed.copy()
    allowed[rows, assignment] = True
    canonical, allowed = _canonical(data, allowed)
    incumbent = canonical[assignment]
    free = np.flatnonzero(allowed.sum(axis=1) > 1)
    if free.size == 0:  # one possible assignment: it is the optimum of the model
        cost = evaluate(data.group, incumbent).total if full else None
        return ExactOutcome(incumbent if full else None, cost, full, "no open device")
    member, first = _classes(data, free, allowed)
    model, warm, col_class, col_plan = _milp(data, allowed, incumbent, free, member, first, max_nodes)
    run, reason = _solve_checked(model, warm, time_limit)
    if run is None:
        return ExactOutcome(None, None, False, reason)
    code, text = highs_status(run.status)
    counts = np.rint(run.x[: len(col_class)]).astype(np.int64)
    decoded = _decode(member, col_class, col_plan, counts)
    result = None
    if decoded is not None:
        result = incumbent.copy()
        result[free] = decoded
    bound = float(run.dual_bound) if full and np.isfinite(run.dual_bound) else None
    return ExactOutcome(assignment=result, lower_bound=bound, optimal=full and code == 0, status=text)


def _milp(
    data: GroupData,
    allowed: np.ndarray,
    incumbent: np.ndarray,
    free: np.ndarray,
    member: np.ndarray,
    first: np.ndarray,
    max_nodes: int,
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """The aggregated MILP as HiGHS arguments, its warm start (the incumbent), each column's class and plan.

    Devices outside ``free`` are fixed as in the incumbent: their pool excess moves to the pool rows' bounds.
    """
    n_classes, n_pools = len(first), len(data.pools)
    weight = np.bincount(member, minlength=n_classes).astype(np.float64)
    col_class, col_plan, col_pool, best = _columns(data, first, allowed)
    pooled = col_pool >= 0
    pool_coeff = data.excess[first[col_class[pooled]], col_pool[pooled]]
    fixed = np.setdiff1d(np.arange(data.group.n_devices), free)
    fixed_pool = data.pool_of_plan[incumbent[fixed]]
    on_pool = fixed_pool >= 0
    fixed_excess = np.bincount(
        fixed_pool[on_pool], weights=data.excess[fixed[on_pool], fixed_pool[on_pool]], minlength=n_pools
    )
    start, index, value = csc_columns(col_class, col_pool, pool_coeff, n_classes, -data.block)
    slot = np.where(data.pool_of_plan[incumbent[free]] >= 0, incumbent[free], best[member])
    warm = _warm_counts(member, col_class, col_plan, slot, data.group.n_plans)
    pool_excess = fixed_excess + np.bincount(
        col_pool[pooled], weights=pool_coeff * warm[pooled], minlength=n_pools
    )
    model = {
        "cost": np.r_[data.own[first[col_class], col_plan], data.rate],
        "col_lower": np.zeros(len(col_class) + n_pools),
        "col_upper": np.r_[weight[col_class], np.full(n_pools, highspy.kHighsInf)],
        "row_lower": np.r_[weight, np.full(n_pools, -highspy.kHighsInf)],
        "row_upper": np.r_[weight, -fixed_excess],
        "start": start,
        "index": index,
        "value": value,
        "integer": True,
        "options": {"mip_rel_gap": 0.0, "mip_abs_gap": 1e-7, "mip_max_nodes": int(max_nodes)},
    }
    return model, np.r_[warm, overage_blocks(pool_excess, data.block)], col_class, col_plan

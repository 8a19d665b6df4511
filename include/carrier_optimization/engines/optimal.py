"""Optimal engine: Lagrangian prices, restricted LP (HiGHS), rounding, exact-delta local search, relabel.

``optimization-notes.md`` §1.6 and §3.4. Per comm group, with one pool per pooled plan ``g`` and the
per-MB overage price ``ρ_g = r_g / q_g``:

1. **Dual.** ``L(λ) = Σ_i min_p ĉ_ip(λ)`` over ``λ ∈ Π_g [0, ρ_g]`` with ``ĉ_ip = c_ip`` on a non-pooled
   plan and ``ĉ_ig = C_g·f_i + σ_g·m_i + λ_g·(u_i − A_g·f_i)`` on a pooled one. Every ``L(λ)`` is a lower
   bound of the optimum; it is maximised by a box-step cutting-plane method (a small HiGHS LP per step).
   The oracle needs O(N·G) work: the best non-pooled cost of each device does not depend on λ and is
   computed once.
2. **Restricted LP.** Devices keep the plans whose reduced cost is within ``tie_tolerance`` of their best;
   single-candidate devices are fixed, identical tie devices are aggregated into count variables (above
   ``lp_max_classes`` classes, into buckets of consecutive usage), and the LP (pool excess priced at
   ``ρ_g``) is solved with HiGHS. Its pool duals are new prices: columns that become attractive are added
   until ``L(λ_LP)`` equals the LP value (column generation, at most ``lp_rounds`` LPs).
3. **Rounding** of the split classes (largest remainders, each plan spread over the class's usage range),
   then **local search** with exact deltas (pool blocks included) until no single move improves. A group
   of up to ``exact_max_devices`` SIMs still above its bound is solved by the exact, block-aware MILP of
   `engines.exact` (warm-started; its dual bound certifies the result, "proven optimal" at gap 0).
4. **Relabelling**: identical devices swap plans so that devices keep their current plan, and devices move
   back to their current plan whenever that changes the cost by nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import MappingProxyType

import highspy
import numpy as np

from include.carrier_optimization.cost import evaluate, overage_blocks
from include.carrier_optimization.domain import GroupProblem, Problem
from include.carrier_optimization.engines.blockbound import block_aware_bound
from include.carrier_optimization.engines.dual import (
    GroupData,
    lagrangian_bound,
    maximize_dual,
    oracle,
    pool_cost,
    prepare_group,
)
from include.carrier_optimization.engines.exact import solve_exact
from include.carrier_optimization.engines.highs import csc_columns, highs_status, run_highs
from include.carrier_optimization.engines.result import (
    PROVEN_GAP,
    STATUS_BACKEND,
    STATUS_FINISHED,
    STATUS_LIMIT,
    EngineResult,
    GroupResult,
    check_solve_arguments,
    compute_gap,
    count_changes,
    infeasible_result,
)
from include.carrier_optimization.validation import plan_errors

__all__ = ["OPTIONS", "solve_optimal", "highs_status", "lagrangian_bound"]

LOG = logging.getLogger(__name__)

#: Accepted options and their defaults.
OPTIONS = MappingProxyType(
    {
        "dual_iterations": 400,
        "dual_tolerance": 1e-9,
        "tie_tolerance": 1e-6,
        "lp_rounds": 4,
        "lp_max_classes": 10000,
        "local_search_rounds": 100,
        "exact_max_devices": 2000,
        "exact_max_nodes": 50000,
        "exact_time_limit": 10.0,
        "target_gap": 2e-4,
        "exact_large_devices": 10000,
        "exact_large_time_limit": 3.0,
        "restricted_delta": 0.02,
        "restricted_time_limit": 2.0,
        "block_bound_pools": 3,
        "block_bound_time_limit": 2.0,
    }
)

#: Options that switch every MILP off (the Lagrangian, LP and block-aware bounds remain).
NO_MILP = MappingProxyType({"exact_max_devices": 0, "exact_large_devices": 0, "restricted_time_limit": 0.0})

_MOVE_EPS = 1e-9  # a move must save more than this ($) to count as an improvement
_EQUAL_EPS = 1e-12  # a relabelling move may change the cost by at most this ($)

# --------------------------------------------------------------------------- restricted LP


def _reduced_costs(data: GroupData, lam: np.ndarray) -> np.ndarray:
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
    _, key = np.unique(np.column_stack([pattern, group.proration[ties], sms]), axis=0, return_inverse=True)
    key = key.ravel()
    usage = group.usage_mb[ties]
    _, exact = np.unique(np.column_stack([key, usage]), axis=0, return_inverse=True)
    exact = exact.ravel()
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
    _, cls_sorted = np.unique(np.column_stack([key[order], bucket_sorted]), axis=0, return_inverse=True)
    classes = np.empty(len(ties), dtype=np.int64)
    classes[order] = cls_sorted.ravel()
    return classes


def _restricted_lp(data: GroupData, candidates: np.ndarray, deadline, options, trace):
    """Solve the LP over the candidate plans; returns (assignment, λ_LP, LP value, failure)."""
    group = data.group
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
    ties = np.flatnonzero(~fixed)
    trace["lp_tie_devices"] = int(ties.size)
    if ties.size == 0:
        return assignment, None, None, None

    member_class = _tie_classes(data, candidates, ties, options["lp_max_classes"])
    n_classes = int(member_class.max()) + 1
    weight = np.bincount(member_class, minlength=n_classes)
    trace["lp_classes"] = n_classes
    representative = ties[np.unique(member_class, return_index=True)[1]]
    cls, plan = np.nonzero(candidates[representative])  # columns, ordered by class
    n_cols = len(cls)
    # class means of cost and pool excess per column
    mean_cost = np.empty(n_cols)
    mean_excess = np.zeros(n_cols)
    for p in range(group.n_plans):
        cols = np.flatnonzero(plan == p)
        if cols.size == 0:
            continue
        total = np.bincount(member_class, weights=data.own[ties, p], minlength=n_classes)
        mean_cost[cols] = total[cls[cols]] / weight[cls[cols]]
        g = data.pool_of_plan[p]
        if g >= 0:
            total = np.bincount(member_class, weights=data.excess[ties, g], minlength=n_classes)
            mean_excess[cols] = total[cls[cols]] / weight[cls[cols]]
    pool = data.pool_of_plan[plan]
    pooled_col = pool >= 0
    # column j: assignment row cls[j] and, when pooled, the pool row (mean excess); overage columns o_g
    # (MB over the pool allowance) have pool row coefficient -1 and cost ρ_g
    start, index, value = csc_columns(cls, pool, mean_excess[pooled_col], n_classes, -np.ones(n_pools))
    remaining = None if deadline is None else deadline - time.perf_counter()
    run = run_highs(
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
    code, text = highs_status(run.status)
    x, row_dual, objective = run.x, run.row_dual, run.objective
    trace["lp_status"] = text
    if code != STATUS_FINISHED or len(x) != n_cols + n_pools:
        return None, None, None, (code, text)
    lam = np.clip(-row_dual[n_classes:], 0.0, data.rho)
    counts = _round_counts(x[:n_cols], cls, weight)
    # hand out the counts: each plan spread evenly over the class's usage range
    label = np.repeat(plan, counts)
    label_class = np.repeat(cls, counts)
    k = np.arange(len(label)) - np.repeat(np.cumsum(counts) - counts, counts)
    slot = (k + 0.5) / np.repeat(np.maximum(counts, 1), counts)
    label = label[np.lexsort((slot, label_class))]
    members = ties[np.lexsort((ties, group.usage_mb[ties], member_class))]
    assignment[members] = label
    return assignment, lam, constant + objective, None


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


# --------------------------------------------------------------------------- local search and relabel


def _pool_excess(data: GroupData, assignment: np.ndarray) -> np.ndarray:
    pool = data.pool_of_plan[assignment]
    inside = pool >= 0
    return np.bincount(pool[inside], weights=data.excess[inside, pool[inside]], minlength=len(data.pools))


def _move_delta(data: GroupData, excess_sum, device: int, source: int, target: int) -> float:
    """Exact cost change of moving one device, pool blocks included."""
    delta = data.own[device, target] - data.own[device, source]
    g = data.pool_of_plan[source]
    if g >= 0:
        after = excess_sum[g] - data.excess[device, g]
        delta += data.rate[g] * (_blocks(after, data.block[g]) - _blocks(excess_sum[g], data.block[g]))
    h = data.pool_of_plan[target]
    if h >= 0:
        after = excess_sum[h] + data.excess[device, h]
        delta += data.rate[h] * (_blocks(after, data.block[h]) - _blocks(excess_sum[h], data.block[h]))
    return float(delta)


def _blocks(excess: float, block: float) -> float:
    return float(overage_blocks(excess, block))


def _local_search(data: GroupData, assignment: np.ndarray, deadline, options, trace) -> np.ndarray:
    """Single moves with exact deltas until none improves (batched where moves are independent)."""
    assignment = assignment.copy()
    n = data.group.n_devices
    rows = np.arange(n)
    moves = 0
    for _ in range(options["local_search_rounds"]):
        if deadline is not None and time.perf_counter() > deadline:
            trace["local_search_stopped"] = "time limit"
            break
        excess_sum = _pool_excess(data, assignment)
        pool_now = pool_cost(data, excess_sum)
        delta = data.own - data.own[rows, assignment][:, None]
        source_pool = data.pool_of_plan[assignment]
        in_pool = source_pool >= 0
        if len(data.pools):
            leave = np.zeros(n)
            g = source_pool[in_pool]
            leave[in_pool] = (
                data.rate[g] * overage_blocks(excess_sum[g] - data.excess[in_pool, g], data.block[g])
                - pool_now[g]
            )
            delta += leave[:, None]
            join = pool_cost(data, excess_sum + data.excess) - pool_now
            delta[:, data.pools] += join
        delta[rows, assignment] = np.inf
        target = np.argmin(delta, axis=1)
        gain = delta[rows, target]
        improving = gain < -_MOVE_EPS
        if not improving.any():
            break
        touches_pool = in_pool | (data.pool_of_plan[target] >= 0)
        free = improving & ~touches_pool
        assignment[free] = target[free]
        moves += int(free.sum())
        pooled_moves = np.flatnonzero(improving & touches_pool)
        pooled_moves = pooled_moves[np.argsort(gain[pooled_moves], kind="stable")]
        for device in pooled_moves[:5000]:
            source, dest = assignment[device], target[device]
            change = _move_delta(data, excess_sum, device, source, dest)
            if change < -_MOVE_EPS:
                _apply_move(data, excess_sum, device, source, dest)
                assignment[device] = dest
                moves += 1
    trace["local_search_moves"] = moves
    return assignment


def _apply_move(data: GroupData, excess_sum: np.ndarray, device: int, source: int, target: int) -> None:
    g, h = data.pool_of_plan[source], data.pool_of_plan[target]
    if g >= 0:
        excess_sum[g] -= data.excess[device, g]
    if h >= 0:
        excess_sum[h] += data.excess[device, h]


def _relabel(data: GroupData, assignment: np.ndarray, trace) -> np.ndarray:
    """Keep devices on their current plan where the cost allows it (never raising the cost)."""
    group = data.group
    current = group.current_plan
    assignment = _relabel_identical(group, assignment)
    excess_sum = _pool_excess(data, assignment)
    candidates = np.flatnonzero((current >= 0) & (current != assignment))
    touches_pool = (data.pool_of_plan[assignment[candidates]] >= 0) | (
        data.pool_of_plan[current[candidates]] >= 0
    )
    free = candidates[~touches_pool]
    equal = data.own[free, current[free]] - data.own[free, assignment[free]] <= _EQUAL_EPS
    assignment[free[equal]] = current[free[equal]]
    moved = int(equal.sum())
    for device in candidates[touches_pool]:
        source, target = assignment[device], current[device]
        if _move_delta(data, excess_sum, device, source, target) <= _EQUAL_EPS:
            _apply_move(data, excess_sum, device, source, target)
            assignment[device] = target
            moved += 1
    trace["relabel_moves"] = moved
    return assignment


def _relabel_identical(group: GroupProblem, assignment: np.ndarray) -> np.ndarray:
    """Permute plans among identical devices (same u, f, m) so that most keep their current plan."""
    n = group.n_devices
    if n == 0:
        return assignment
    keys = np.column_stack([group.usage_mb, group.proration, group.sms])
    _, cls = np.unique(keys, axis=0, return_inverse=True)
    cls = cls.ravel()
    n_plans = group.n_plans
    pair = cls * n_plans + assignment  # (class, assigned plan) slots
    slots = np.bincount(pair, minlength=(cls.max() + 1) * n_plans)
    current = group.current_plan
    has_current = current >= 0
    want = np.where(has_current, cls * n_plans + np.maximum(current, 0), -1)
    # rank of each device among devices of the same class wanting the same plan
    order = np.lexsort((np.arange(n), want))
    sorted_want = want[order]
    first = np.searchsorted(sorted_want, sorted_want, side="left")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first
    keep = has_current & (rank < slots[np.maximum(want, 0)])
    result = np.empty_like(assignment)
    result[keep] = current[keep]
    used = np.bincount(want[keep], minlength=len(slots))
    left = slots - used
    # remaining slots go to the other devices, class by class
    others = np.flatnonzero(~keep)
    others = others[np.argsort(cls[others], kind="stable")]
    labels = np.repeat(np.arange(len(slots)) % n_plans, left)  # ordered by class, then plan
    result[others] = labels
    return result


# --------------------------------------------------------------------------- the engine


def _solve_optimal_iv(problem, time_limit, options):
    merged = check_solve_arguments(problem, time_limit, options, OPTIONS)
    real = {
        "dual_tolerance",
        "tie_tolerance",
        "exact_time_limit",
        "target_gap",
        "exact_large_time_limit",
        "restricted_delta",
        "restricted_time_limit",
        "block_bound_time_limit",
    }
    for key in sorted(set(OPTIONS) - real):
        if not isinstance(merged[key], int) or merged[key] < 0:
            raise ValueError(f"`options`: {key} must be an integer >= 0; got {merged[key]!r}")
    for key in sorted(real):
        if not isinstance(merged[key], int | float) or not merged[key] >= 0:
            raise ValueError(f"`options`: {key} must be a number >= 0; got {merged[key]!r}")
    return problem, time_limit, merged


def solve_optimal(
    problem: Problem, *, time_limit=None, seed=None, options: Mapping | None = None
) -> EngineResult:
    """Near-optimal assignment with a certified lower bound, per comm group.

    Minimises ``Σ_i Σ_p c_ip·x_ip + Σ_g r_g·k_g`` (one plan per device, ``k_g`` whole overage blocks of
    pool ``g``) by the pipeline of the module docstring. The lower bound is ``max L(λ)`` over the prices
    tried; ``gap = (cost − lower_bound) / cost`` (see `compute_gap`).

    Parameters
    ----------
    problem : Problem
        The comm groups.
    time_limit : float, optional
        Seconds for the whole call; phases stop early and the best assignment so far is kept (status 1).
    seed : int, optional
        Unused: the engine is deterministic; accepted for the common engine signature.
    options : mapping, optional
        ``dual_iterations`` (400), ``dual_tolerance`` (1e-9, relative), ``tie_tolerance`` (1e-6 $),
        ``lp_rounds`` (4 column-generation rounds), ``lp_max_classes`` (10000: above that, tie devices are
        aggregated into usage buckets), ``local_search_rounds`` (100), ``exact_max_devices`` (2000):
        a group of up to that many SIMs whose gap is above `PROVEN_GAP` is solved by the exact MILP
        (HiGHS, warm-started, kept only if cheaper, its dual bound kept if higher), stopped after
        ``exact_max_nodes`` (50000) nodes or ``exact_time_limit`` seconds (10.0); then, while the gap
        is open, the block-aware bound branches on the blocks of at most ``block_bound_pools`` (3) pools for
        at most ``block_bound_time_limit`` seconds (2.0).

    Returns
    -------
    EngineResult
        Status 0 (finished), 1 (time limit), 2 (invalid plans: no assignment), 3 (HiGHS failed: the
        assignment is the Lagrangian argmin polished by local search; the bound stays valid).
        Group details: ``dual_iterations``, ``lp_tie_devices``, ``lp_classes``, ``lp_rounds``,
        ``local_search_moves``, ``relabel_moves``; ``pool_prices`` holds λ per pooled plan id ($/MB).

    Raises
    ------
    ValueError
        For a bad ``time_limit`` or unknown/invalid options.

    Examples
    --------
    >>> from include.carrier_optimization.domain import GroupProblem, Problem, RatePlan
    >>> pool = RatePlan(1, "POOL", 5.0, 10.0, 1.0, 1.0, pooled=True)
    >>> payg = RatePlan(2, "PAYG", 1.0, 0.0, 1.0, 1.0, pooled=False)
    >>> g = GroupProblem("1,2", ("cp",), (pool, payg), ["a", "b"], [0.0, 14.0], [0, 0], [1, 1], [0, 0],
    ...                  [-1, -1])
    >>> result = solve_optimal(Problem((g,)))
    >>> result.cost   # both on the pool: 5 + 5, and 14 MB fit in the pool's 20 MB
    10.0
    >>> round(result.lower_bound, 2), result.groups[0].proven   # the exact MILP proves it
    (10.0, True)
    >>> lp_only = solve_optimal(Problem((g,)), options=NO_MILP)
    >>> round(lp_only.lower_bound, 2)   # the LP alone may put 40 % of the idle SIM in the pool
    7.6
    """
    problem, time_limit, options = _solve_optimal_iv(problem, time_limit, options)
    began = time.perf_counter()
    deadline = None if time_limit is None else began + time_limit
    errors = [e for group in problem.groups for e in plan_errors(group.plans)]
    if errors:
        return infeasible_result("optimal", "\n".join(dict.fromkeys(errors)), time.perf_counter() - began)
    results = []
    messages = []
    for group in problem.groups:
        result, message = _solve_group(group, deadline, options)
        results.append(result)
        if message:
            messages.append(f"group {group.key}: {message}")
    return EngineResult.from_groups(
        "optimal", tuple(results), time.perf_counter() - began, "; ".join(messages)
    )


def _solve_group(group: GroupProblem, deadline, options) -> tuple[GroupResult, str]:
    began = time.perf_counter()
    trace: dict[str, object] = {}
    status, message = STATUS_FINISHED, ""
    data = prepare_group(group)
    if len(data.pools) == 0 or group.n_devices == 0:
        # no pools: the problem separates, the per-device argmin is optimal and L equals its cost
        lam = np.zeros(len(data.pools))
        bound, _, assignment = oracle(data, lam)
        trace["dual_iterations"] = 1
    else:
        lam, bound, assignment, status, message = _solve_pooled(data, deadline, options, trace)
        assignment, bound = _certify(data, lam, assignment, bound, deadline, options, trace)
    assignment = _relabel(data, np.asarray(assignment, dtype=np.int64), trace)
    if trace.get("local_search_stopped") == "time limit":
        status = max(status, STATUS_LIMIT)
    cost = evaluate(group, assignment).total
    bound = min(bound, cost) if bound - cost <= 1e-9 * max(1.0, abs(cost)) else bound
    prices = {int(group.plan_ids[p]): float(v) for p, v in zip(data.pools, lam, strict=True)}
    LOG.info(
        "Optimal engine: group %s cost %.2f bound %.2f gap %.4g%% in %.2fs",
        group.key,
        cost,
        bound,
        100 * (compute_gap(cost, bound) or 0.0),
        time.perf_counter() - began,
    )
    return (
        GroupResult(
            key=group.key,
            engine="optimal",
            status=status,
            assignment=assignment,
            cost=cost,
            lower_bound=float(bound),
            gap=compute_gap(cost, bound),
            seconds=time.perf_counter() - began,
            changes=count_changes(group.current_plan, assignment),
            pool_prices=prices,
            details=trace,
        ),
        message,
    )


def _solve_pooled(data: GroupData, deadline, options, trace):
    """Dual, restricted LP rounds, local search; returns (λ, bound, assignment, status, message)."""
    status, message = STATUS_FINISHED, ""
    lam, bound, assignment = maximize_dual(data, deadline, options, trace)
    if trace.get("dual_stopped") == "time limit":
        status = STATUS_LIMIT
    if "dual_failure" in trace:  # the bound stays valid: it is the best L(λ) evaluated
        code, message = trace.pop("dual_failure")
        status = STATUS_BACKEND if code != STATUS_LIMIT else STATUS_LIMIT
    candidates = _reduced_costs(data, lam)
    candidates = candidates <= candidates.min(axis=1, keepdims=True) + options["tie_tolerance"]
    for round_ in range(options["lp_rounds"]):
        if deadline is not None and time.perf_counter() > deadline:
            status = STATUS_LIMIT
            break
        trace["lp_rounds"] = round_ + 1
        lp_assignment, lp_lam, lp_value, failure = _restricted_lp(data, candidates, deadline, options, trace)
        if failure is not None:
            status = max(status, STATUS_BACKEND if failure[0] != STATUS_LIMIT else STATUS_LIMIT)
            message = failure[1]
            break
        assignment = lp_assignment
        if lp_lam is None:  # no ties: the argmin is optimal for the relaxation
            break
        value, _, _ = oracle(data, lp_lam)
        if value > bound:
            lam, bound = lp_lam, value
        trace["lp_value"] = lp_value
        if lp_value - value <= 1e-7 * max(1.0, abs(value)):
            break
        reduced = _reduced_costs(data, lp_lam)
        candidates |= reduced <= reduced.min(axis=1, keepdims=True) + options["tie_tolerance"]
    assignment = _local_search(data, assignment, deadline, options, trace)
    return lam, bound, assignment, status, message


def _certify(data: GroupData, lam, assignment: np.ndarray, bound: float, deadline, options, trace):
    """Close the gap of a group with a MILP (`_milp_finish`), then the block-aware bound.

    A MILP's assignment is kept only if the cost model finds it cheaper; the exact MILP's dual bound and
    the block-aware bound of `engines.blockbound` replace the bound when higher (all are valid). Returns
    (assignment, bound).
    """
    group = data.group
    cost = evaluate(group, assignment).total
    trace["bound_source"] = "lagrangian"
    outcome = _milp_finish(data, lam, assignment, compute_gap(cost, bound), deadline, options, trace)
    if outcome is not None and outcome.assignment is not None:
        if evaluate(group, outcome.assignment).total < cost - _MOVE_EPS:
            assignment = _local_search(data, outcome.assignment, deadline, options, trace)
            cost = evaluate(group, assignment).total
    if outcome is not None and outcome.lower_bound is not None and outcome.lower_bound > bound:
        bound = outcome.lower_bound
        trace["bound_source"] = "milp"
    bound = min(bound, cost) if bound - cost <= 1e-9 * max(1.0, abs(cost)) else bound
    if compute_gap(cost, bound) > options["target_gap"] and _time_left(deadline, 1.0) > 0:
        blocks = overage_blocks(_pool_excess(data, assignment), data.block)
        better = block_aware_bound(data, blocks, bound, cost, deadline, options, trace)
        if better > bound:
            bound = better
            trace["bound_source"] = "block-aware"
    return assignment, bound


def _milp_finish(data: GroupData, lam, assignment, gap: float, deadline, options, trace):
    """The MILP a group's size and gap call for, or None.

    Up to ``exact_max_devices`` SIMs: the exact MILP until proven (``exact_time_limit``). Above, only
    while the gap exceeds ``target_gap``: the exact MILP for its cuts and bound up to
    ``exact_large_devices`` SIMs (``exact_large_time_limit``), else the MILP restricted to the plans
    within ``restricted_delta`` $ of each device's best reduced cost (``restricted_time_limit``).
    """
    n = data.group.n_devices
    if _time_left(deadline, 1.0) <= 0 or gap <= PROVEN_GAP:
        return None
    nodes = options["exact_max_nodes"]
    if n <= options["exact_max_devices"]:
        limit = _time_left(deadline, options["exact_time_limit"])
    elif gap > options["target_gap"] and n <= options["exact_large_devices"]:
        limit = _time_left(deadline, options["exact_large_time_limit"])
    elif gap > options["target_gap"] and options["restricted_time_limit"] > 0:
        reduced = _reduced_costs(data, lam)
        allowed = reduced <= reduced.min(axis=1, keepdims=True) + options["restricted_delta"]
        outcome = solve_exact(
            data, assignment, _time_left(deadline, options["restricted_time_limit"]), nodes, allowed
        )
        trace["restricted_status"] = outcome.status
        return outcome
    else:
        return None
    outcome = solve_exact(data, assignment, limit, nodes)
    trace["exact_status"] = outcome.status
    return outcome


def _time_left(deadline: float | None, cap: float) -> float:
    """Seconds a phase may take: its own cap, and never past the engine's deadline."""
    return cap if deadline is None else min(cap, deadline - time.perf_counter())

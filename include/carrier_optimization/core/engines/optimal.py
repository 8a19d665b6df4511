"""Optimal engine: Lagrangian prices, restricted LP (HiGHS), rounding, exact-delta local search, relabel.

docs/architecture.md Per comm group, with one pool per pooled plan ``g`` and the
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

import numpy as np

from include.carrier_optimization.core.cost import evaluate, overage_blocks
from include.carrier_optimization.core.domain import GroupProblem, Problem
from include.carrier_optimization.core.engines.blockbound import block_aware_bound
from include.carrier_optimization.core.engines.dual import (
    GroupData,
    lagrangian_bound,
    maximize_dual,
    oracle,
    prepare_group,
)
from include.carrier_optimization.core.engines.exact import solve_exact
from include.carrier_optimization.core.engines.highs import highs_status
from include.carrier_optimization.core.engines.restricted import reduced_costs, restricted_lp
from include.carrier_optimization.core.engines.result import (
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
from include.carrier_optimization.core.engines.search import MOVE_EPS, local_search, pool_excess, relabel
from include.carrier_optimization.core.validation import plan_errors

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
        "exact_time_limit": 8.0,  # HiGHS may overrun its limit by a second or two: 10 s per group in all
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
    problem: Problem,
    *,
    time_limit: float | None = None,
    seed: int | None = None,
    options: Mapping | None = None,
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
        Unused: the engine is deterministic (a MILP stopped by its time limit rather than by its node
        limit may depend on the machine's speed); accepted for the common engine signature.
    options : mapping, optional
        ``dual_iterations`` (400), ``dual_tolerance`` (1e-9, relative), ``tie_tolerance`` (1e-6 $),
        ``lp_rounds`` (4 column-generation rounds), ``lp_max_classes`` (10000: above that, tie devices are
        aggregated into usage buckets), ``local_search_rounds`` (100), ``exact_max_devices`` (2000):
        a group of up to that many SIMs whose gap is above `PROVEN_GAP` is solved by the exact MILP
        (HiGHS, warm-started, kept only if cheaper, its dual bound kept if higher), stopped after
        ``exact_max_nodes`` (50000) nodes or ``exact_time_limit`` seconds (8.0). Above that size, while
        the gap exceeds ``target_gap`` (2e-4): the exact MILP for ``exact_large_time_limit`` seconds (3.0)
        up to ``exact_large_devices`` SIMs (10000), else the MILP restricted to the plans within
        ``restricted_delta`` $ (0.02) of each device's best reduced cost for ``restricted_time_limit``
        seconds (2.0). Then, while the gap exceeds ``target_gap``, the block-aware bound branches on the
        blocks of at most ``block_bound_pools`` (3) pools for at most ``block_bound_time_limit`` s (2.0).
        `NO_MILP` switches every MILP off.

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
    >>> from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan
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
    assignment = relabel(data, np.asarray(assignment, dtype=np.int64), trace)
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
    candidates = reduced_costs(data, lam)
    candidates = candidates <= candidates.min(axis=1, keepdims=True) + options["tie_tolerance"]
    for round_ in range(options["lp_rounds"]):
        if deadline is not None and time.perf_counter() > deadline:
            status = STATUS_LIMIT
            break
        trace["lp_rounds"] = round_ + 1
        lp_assignment, lp_lam, lp_value, failure = restricted_lp(data, candidates, deadline, options, trace)
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
        reduced = reduced_costs(data, lp_lam)
        candidates |= reduced <= reduced.min(axis=1, keepdims=True) + options["tie_tolerance"]
    assignment = local_search(data, assignment, deadline, options, trace)
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
        if evaluate(group, outcome.assignment).total < cost - MOVE_EPS:
            assignment = local_search(data, outcome.assignment, deadline, options, trace)
            cost = evaluate(group, assignment).total
    if outcome is not None and outcome.lower_bound is not None and outcome.lower_bound > bound:
        bound = outcome.lower_bound
        trace["bound_source"] = "milp"
    bound = min(bound, cost) if bound - cost <= 1e-9 * max(1.0, abs(cost)) else bound
    if compute_gap(cost, bound) > options["target_gap"] and _time_left(deadline, 1.0) > 0:
        blocks = overage_blocks(pool_excess(data, assignment), data.block)
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
        reduced = reduced_costs(data, lam)
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

"""Legacy engine driver: the base assignment, then every sequence batch, recording the strictly better.

Reconstruction of docs/architecture.md (Engines, legacy): per comm group the base assignment, then the
sequences in batches (`sequences`) evaluated by the kernel (`evaluation`), record-if-better.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from include.carrier_optimization.core.cost import evaluate
from include.carrier_optimization.core.domain import GroupProblem, Problem
from include.carrier_optimization.core.engines.legacy.evaluation import (
    TIE_TOLERANCE,
    evaluate_sequences,
    prepare_tables,
)
from include.carrier_optimization.core.engines.legacy.sequences import (
    DEFAULT_SEQUENCE_CAP,
    canonical_plan_order,
    check_group,
    iter_sequences,
    sequence_count,
)
from include.carrier_optimization.core.engines.result import (
    STATUS_FINISHED,
    STATUS_LIMIT,
    EngineResult,
    GroupResult,
    check_solve_arguments,
    count_changes,
    infeasible_result,
)
from include.carrier_optimization.core.validation import plan_errors

__all__ = ["DEFAULT_BATCH_SIZE", "OPTIONS", "base_assignment", "solve_legacy"]

LOG = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1024
#: Accepted options and their defaults.
OPTIONS = MappingProxyType({"sequence_cap": DEFAULT_SEQUENCE_CAP, "batch_size": DEFAULT_BATCH_SIZE})


def base_assignment(group: GroupProblem) -> np.ndarray:
    """Legacy base assignment: each SIM on the plan with the smallest ``A >= u``, else the largest ``A``.

    Ties between plans of equal allowance go to the lower monthly charge (then the lower plan id). The
    result is always a candidate of the group (record-if-better starts from its cost).

    Returns
    -------
    ndarray of int64
        Local plan index per device.

    Examples
    --------
    >>> from include.carrier_optimization.core.domain import RatePlan
    >>> small = RatePlan(1, "S", 10.0, 100.0, 1.0, 10.0, pooled=False)
    >>> large = RatePlan(2, "L", 20.0, 500.0, 1.0, 10.0, pooled=False)
    >>> g = GroupProblem("1,2", ("cp",), (small, large), ["a", "b", "c"], [50, 300, 900], [0] * 3,
    ...                  [1] * 3, [0] * 3, [-1] * 3)
    >>> base_assignment(g)
    array([0, 1, 1])
    """
    group = check_group(group)
    t = group.table
    order = np.lexsort((t.plan_id, t.monthly_charge, t.included_mb))
    allowance = t.included_mb[order]
    position = np.searchsorted(allowance, group.usage_mb, side="left")
    largest = int(np.searchsorted(allowance, allowance[-1], side="left"))
    return order[np.where(position < len(order), np.minimum(position, len(order) - 1), largest)].astype(
        np.int64
    )


def _solve_legacy_iv(problem, time_limit, options):
    merged = check_solve_arguments(problem, time_limit, options, OPTIONS)
    for key in OPTIONS:
        if not isinstance(merged[key], int) or merged[key] < 1:
            raise ValueError(f"`options`: {key} must be an integer >= 1; got {merged[key]!r}")
    return problem, time_limit, merged


def solve_legacy(
    problem: Problem,
    *,
    time_limit: float | None = None,
    seed: int | None = None,
    options: Mapping | None = None,
) -> EngineResult:
    """Legacy parity engine: base assignment, then every sequence × strategy, keeping strictly better.

    Per comm group: ``best = base_assignment``; for the sequences ``0 .. sequence_count(P, cap) − 1`` (in
    batches) take the batch's best candidate and record it if it is strictly cheaper than the best so
    far. Groups with fewer than two devices are decided by the base assignment alone.

    Parameters
    ----------
    problem : Problem
        The comm groups.
    time_limit : float, optional
        Seconds for the whole call; when it runs out the best so far is kept (status 1).
    seed : int, optional
        Unused (the engine is deterministic); accepted for the common engine signature.
    options : mapping, optional
        ``sequence_cap`` (default 5040) and ``batch_size`` (default 1024).

    Returns
    -------
    EngineResult
        Status 0 (all sequences evaluated), 1 (time limit reached) or 2 (invalid plans; no assignment).
        ``lower_bound`` and ``gap`` are None. Group details: ``sequences`` (total), ``evaluated``,
        ``best_index`` (-1: the base assignment won), ``strategy``, ``sequence`` (plan ids).

    Raises
    ------
    ValueError
        For a bad ``time_limit`` or unknown/invalid options.

    Examples
    --------
    >>> from include.carrier_optimization.core.domain import RatePlan
    >>> small = RatePlan(1, "S", 10.0, 100.0, 1.0, 10.0, pooled=False)
    >>> large = RatePlan(2, "L", 20.0, 500.0, 1.0, 10.0, pooled=True)
    >>> g = GroupProblem("1,2", ("cp",), (small, large), ["a", "b"], [50.0, 700.0], [0, 0], [1, 1],
    ...                  [0, 0], [-1, -1])
    >>> result = solve_legacy(Problem((g,)))   # base (S, L) costs 10 + 20 + 20 overage = 50
    >>> result.cost, result.assignment[0].tolist(), result.lower_bound   # both in the pool
    (40.0, [1, 1], None)
    """
    problem, time_limit, options = _solve_legacy_iv(problem, time_limit, options)
    began = time.perf_counter()
    deadline = None if time_limit is None else began + time_limit
    errors = [e for group in problem.groups for e in plan_errors(group.plans)]
    if errors:
        return infeasible_result("legacy", "\n".join(dict.fromkeys(errors)), time.perf_counter() - began)
    results = tuple(_solve_group(group, deadline, options) for group in problem.groups)
    return EngineResult.from_groups("legacy", results, time.perf_counter() - began)


def _solve_group(group: GroupProblem, deadline: float | None, options: Mapping) -> GroupResult:
    began = time.perf_counter()
    cap, batch = options["sequence_cap"], options["batch_size"]
    best = base_assignment(group)
    best_cost = evaluate(group, best).total
    best_index, best_strategy, best_sequence = -1, None, None
    total = sequence_count(group.n_plans, cap)
    evaluated, status = 0, STATUS_FINISHED
    if group.n_devices > 1:
        tables = prepare_tables(group)
        order = canonical_plan_order(group)
        for start in range(0, total, batch):
            if deadline is not None and time.perf_counter() > deadline:
                status = STATUS_LIMIT
                LOG.warning(
                    "Legacy engine: time limit after %d of %d sequences (group %s)",
                    evaluated,
                    total,
                    group.key,
                )
                break
            sequences = np.array(list(iter_sequences(order, cap, start, start + batch)), dtype=np.int64)
            candidate = evaluate_sequences(group, sequences, start=start, tables=tables)
            evaluated += len(sequences)
            if candidate.cost < best_cost - TIE_TOLERANCE:  # record if strictly better
                best, best_cost = candidate.assignment, candidate.cost
                best_index, best_strategy, best_sequence = (
                    candidate.index,
                    candidate.strategy,
                    candidate.sequence,
                )
    cost = evaluate(group, best).total
    details = {
        "sequences": total,
        "evaluated": evaluated,
        "best_index": best_index,
        "strategy": str(best_strategy) if best_strategy else "BaseAssignment",
        "sequence": [int(group.plan_ids[p]) for p in best_sequence] if best_sequence else [],
    }
    LOG.info("Legacy engine: group %s cost %.2f (%s)", group.key, cost, details["strategy"])
    return GroupResult(
        key=group.key,
        engine="legacy",
        status=status,
        assignment=best,
        cost=cost,
        lower_bound=None,
        gap=None,
        seconds=time.perf_counter() - began,
        changes=count_changes(group.current_plan, best),
        details=details,
    )

"""Exact-delta local search and relabelling of one group's assignment (the optimal engine's last steps).

docs/architecture.md: single moves with exact cost deltas (pool blocks included)
until none improves, then identical devices swap plans so that devices keep their current plan, and
devices move back to their current plan whenever that changes the cost by nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from include.carrier_optimization.core.cost import BLOCK_TOLERANCE, overage_blocks
from include.carrier_optimization.core.domain import GroupProblem
from include.carrier_optimization.core.engines.classes import row_classes
from include.carrier_optimization.core.engines.dual import GroupData, pool_cost

__all__ = ["MOVE_EPS", "pool_excess", "local_search", "relabel"]

MOVE_EPS = 1e-9  # a move must save more than this ($) to count as an improvement
_EQUAL_EPS = 1e-12  # a relabelling move may change the cost by at most this ($)


def pool_excess(data: GroupData, assignment: np.ndarray) -> np.ndarray:
    """Excess MB ``Σ (u_i − A_g·f_i)`` of each pool under ``assignment``."""
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
    # `cost.overage_blocks` for one pool in plain floats: it is called ~10^5 times per large group
    return float(max(math.ceil(max(excess, 0.0) / block - BLOCK_TOLERANCE), 0))


def local_search(
    data: GroupData,
    assignment: np.ndarray,
    deadline: float | None,
    options: Mapping[str, Any],
    trace: dict[str, object],
) -> np.ndarray:
    """Single moves with exact deltas until none improves (batched where moves are independent)."""
    assignment = assignment.copy()
    n = data.group.n_devices
    rows = np.arange(n)
    moves = 0
    for _ in range(options["local_search_rounds"]):
        if deadline is not None and time.perf_counter() > deadline:
            trace["local_search_stopped"] = "time limit"
            break
        excess_sum = pool_excess(data, assignment)
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
        improving = gain < -MOVE_EPS
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
            if change < -MOVE_EPS:
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


def relabel(data: GroupData, assignment: np.ndarray, trace: dict[str, object]) -> np.ndarray:
    """Keep devices on their current plan where the cost allows it (never raising the cost)."""
    group = data.group
    current = group.current_plan
    assignment = _relabel_identical(group, assignment)
    excess_sum = pool_excess(data, assignment)
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
    cls = row_classes(group.usage_mb, group.proration, group.sms)
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

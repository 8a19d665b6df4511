"""A block-aware Lagrangian lower bound: one pool's whole overage blocks split into two branches.

The Lagrangian ``L(λ)`` of `engines.dual` is the LP bound: it prices a pool's overage at ``ρ_g`` per MB,
as if a fraction of a block could be bought. The carrier bills whole blocks ``k_g``, so for a pool ``g``
and any ``K >= 0`` every assignment has ``k_g <= K`` or ``k_g >= K + 1``. Dualising the pool row
``E_g(x) <= q_g·k_g`` with ``λ_g >= 0`` in each branch:

* ``k_g <= K``: ``min_{0<=k<=K} (r_g − λ_g·q_g)·k = K·min(0, r_g − λ_g·q_g)``, valid for every ``λ_g >= 0``
  (above ``ρ_g`` too, which is what makes the branch strong: data in the pool may cost more than overage);
* ``k_g >= K + 1``: ``(K + 1)·(r_g − λ_g·q_g)`` for ``λ_g <= ρ_g``.

So ``min(max L_≤K, max L_≥K+1)`` is a lower bound of the optimum that knows the pool pays whole blocks,
and at least as high as ``max L`` when ``K`` sits at the LP's fractional block count. The other pools keep
their usual prices. Each pool gives such a bound; the best one is kept.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from include.carrier_optimization.core.engines.dual import GroupData, maximize_dual, oracle

__all__ = ["PRICE_CAP", "branch_bound", "block_aware_bound"]

#: In the ``k_g <= K`` branch, λ_g goes at least up to this many times the overage price ρ_g (and up to
#: the price at which every device with excess prefers its best non-pooled plan, at most 1000 ρ_g).
PRICE_CAP = 4.0


def _price_cap(data: GroupData, pool: int) -> float:
    """Upper end of λ_pool in the ``k <= K`` branch (beyond it no device with excess stays in the pool)."""
    excess = data.excess[:, pool]
    leave = (data.best_individual - data.own[:, data.pools[pool]])[excess > 0] / excess[excess > 0]
    leave = leave[np.isfinite(leave)]
    rho = data.rho[pool]
    wanted = float(leave.max()) if leave.size else PRICE_CAP * rho
    return min(max(PRICE_CAP * rho, wanted), 1000.0 * rho)


def _branch_function(data: GroupData, pool: int, blocks: int, at_most: bool):
    """``λ ↦ (value, supergradient, argmin)`` of the branch ``k_pool <= blocks`` or ``>= blocks``."""
    rate, size = data.rate[pool], data.block[pool]

    def evaluate(lam: np.ndarray):
        value, gradient, plan = oracle(data, lam)
        gradient = gradient.copy()
        slope = rate - lam[pool] * size
        if not at_most or slope < 0:
            value += blocks * slope
            gradient[pool] -= blocks * size
        return value, gradient, plan

    return evaluate


def branch_bound(
    data: GroupData,
    pool: int,
    blocks: int,
    at_most: bool,
    deadline: float | None,
    options: Mapping[str, Any],
) -> float:
    """Maximum found of the Lagrangian of one branch (``k_pool <= blocks`` or ``k_pool >= blocks``).

    Every value is a valid lower bound of the cheapest assignment inside the branch.
    """
    scale = data.rho.copy()
    if at_most:
        scale[pool] = _price_cap(data, pool)
    trace: dict[str, object] = {}
    evaluate = _branch_function(data, pool, int(blocks), at_most)
    return float(maximize_dual(data, deadline, options, trace, evaluate=evaluate, scale=scale)[1])


def block_aware_bound(
    data: GroupData,
    blocks: np.ndarray,
    bound: float,
    cost: float,
    deadline: float | None,
    options: Mapping[str, Any],
    trace: dict[str, object],
) -> float:
    """Best of ``bound`` and the two-branch bounds ``k_g <= K − 1 | k_g >= K`` of the pools.

    ``K`` is the pool's ``blocks`` in the incumbent, or 1 when it pays none. Pools whose block price
    ``r_g`` is below a tenth of the open gap are skipped (one block cannot move the bound much); the
    others are tried in order of ``r_g``, at most
    ``block_bound_pools`` of them, while the gap is open and time is left (``block_bound_time_limit``).
    """
    began = time.perf_counter()
    cap = began + options["block_bound_time_limit"]
    stop = cap if deadline is None else min(cap, deadline)
    order = [g for g in np.argsort(-data.rate, kind="stable") if data.rate[g] >= 0.1 * (cost - bound)]
    tried = 0
    for g in order[: options["block_bound_pools"]]:
        if time.perf_counter() > stop or cost - bound <= 1e-9 * max(1.0, abs(cost)):
            break
        tried += 1
        split = max(int(blocks[g]), 1)
        low = branch_bound(data, g, split - 1, True, stop, options)
        if low <= bound:
            continue
        high = branch_bound(data, g, split, False, stop, options)
        bound = max(bound, min(low, high, cost))
    trace["block_bound_pools"] = tried
    trace["block_bound_seconds"] = round(time.perf_counter() - began, 4)
    return bound

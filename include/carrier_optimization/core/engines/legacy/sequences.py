"""Legacy rate plan sequences: break-even thresholds, the canonical plan order and the capped permutations.

Reconstruction of docs/architecture.md (Engines, legacy): break-even average usage per plan
(``MaxAvgUsage``) and sequence generation (permutations up to a cap, canonical order first),
deterministic and random-access so a batch of sequences can start anywhere.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np

from include.carrier_optimization.core.domain import GroupProblem, RatePlan
from include.carrier_optimization.core.validation import plan_errors

__all__ = [
    "DEFAULT_SEQUENCE_CAP",
    "check_group",
    "max_avg_usage",
    "canonical_plan_order",
    "sequence_count",
    "sequence_at",
    "iter_sequences",
]

#: Default cap on the number of sequences per comm group (docs/architecture.md).
DEFAULT_SEQUENCE_CAP = 5040


def _max_avg_usage_iv(plans):
    plans = tuple(plans)
    if not plans or not all(isinstance(p, RatePlan) for p in plans):
        raise ValueError("`plans` must be a non-empty sequence of RatePlan")
    errors = plan_errors(plans)
    if errors:
        raise ValueError("\n".join(errors))
    return plans


def max_avg_usage(plans: Sequence[RatePlan]) -> np.ndarray:
    """Break-even average usage per plan (legacy ``MaxAvgUsage``).

    Plans sorted by ``(A, C, plan_id)``; for each plan ``i`` but the last, with ``j`` the next plan:
    ``M_i = A_i + (C_j − C_i) / (r_i / q_i)`` if ``C_j > C_i``, else ``M_i = A_i``; the last plan gets
    ``M = +inf``. ``M_i`` is the average MB per SIM at which staying on ``i`` and paying overage costs
    as much as moving up to ``j``.

    Parameters
    ----------
    plans : sequence of RatePlan
        The comm group's plans (valid: ``r > 0``, ``q > 0``).

    Returns
    -------
    ndarray of float64
        ``M`` aligned with ``plans``.

    Raises
    ------
    ValueError
        For an empty list or invalid plans (the formula divides by ``r/q``).

    Examples
    --------
    >>> small = RatePlan(1, "S", 10.0, 100.0, 1.0, 10.0, pooled=False)
    >>> large = RatePlan(2, "L", 20.0, 500.0, 1.0, 10.0, pooled=False)
    >>> max_avg_usage([small, large])   # 100 + (20 - 10) / 0.1
    array([200.,  inf])
    """
    plans = _max_avg_usage_iv(plans)
    allowance = np.array([p.included_mb for p in plans])
    charge = np.array([p.monthly_charge for p in plans])
    per_mb = np.array([p.overage_rate / p.overage_block_mb for p in plans])
    order = np.lexsort((np.array([p.plan_id for p in plans]), charge, allowance))
    result = np.full(len(plans), np.inf)
    for i, j in zip(order[:-1], order[1:], strict=True):
        step = charge[j] - charge[i]
        result[i] = allowance[i] + step / per_mb[i] if step > 0 else allowance[i]
    return result


def check_group(group: GroupProblem) -> GroupProblem:
    """Input validation of the legacy functions taking one comm group: a `GroupProblem` with a plan."""
    if not isinstance(group, GroupProblem):
        raise TypeError("`group` must be a GroupProblem")
    if group.n_plans == 0:
        raise ValueError("`group` must have at least one plan")
    return group


def canonical_plan_order(group: GroupProblem) -> tuple[int, ...]:
    """Local plan indices sorted by ``(MaxAvgUsage, A, C, plan_id)``: the first sequence of a group.

    Examples
    --------
    >>> small = RatePlan(1, "S", 10.0, 100.0, 1.0, 10.0, pooled=False)
    >>> large = RatePlan(2, "L", 20.0, 500.0, 1.0, 10.0, pooled=False)
    >>> g = GroupProblem("2,1", ("cp",), (large, small), ["d"], [1.0], [0], [1], [0], [-1])
    >>> canonical_plan_order(g)
    (1, 0)
    """
    group = check_group(group)
    t = group.table
    threshold = max_avg_usage(group.plans)
    order = np.lexsort((t.plan_id, t.monthly_charge, t.included_mb, threshold))
    return tuple(int(i) for i in order)


def _prefix_length(n_plans: int, cap: int) -> int:
    """Largest k <= n with n!/(n-k)! <= cap (0 when even one free position is over the cap)."""
    k, count = 0, 1
    while k < n_plans and count * (n_plans - k) <= cap:
        count *= n_plans - k
        k += 1
    return k


def _sequence_count_iv(n_plans, cap):
    if not isinstance(n_plans, int | np.integer) or n_plans < 0:
        raise ValueError(f"`n_plans` must be an integer >= 0; got {n_plans!r}")
    if not isinstance(cap, int | np.integer) or cap < 1:
        raise ValueError(f"`cap` must be an integer >= 1; got {cap!r}")
    return int(n_plans), int(cap)


def sequence_count(n_plans: int, cap: int = DEFAULT_SEQUENCE_CAP) -> int:
    """Number of sequences of a group: ``n!/(n−k)!`` for the largest ``k`` with that count ``<= cap``.

    Every ordered choice of ``k`` plans is followed by the other plans in canonical order; for
    ``n <= 7`` (cap 5040) that is all ``n!`` permutations, for ``n = 15`` it is ``15·14·13 = 2730``.

    Examples
    --------
    >>> sequence_count(4), sequence_count(7), sequence_count(15)
    (24, 5040, 2730)
    """
    n, cap = _sequence_count_iv(n_plans, cap)
    k = _prefix_length(n, cap)
    return math.perm(n, k)


def _sequence_at_iv(plans_order, index, cap):
    order = tuple(int(p) for p in plans_order)
    if len(set(order)) != len(order):
        raise ValueError("`plans_order` must not repeat a plan")
    n, cap = _sequence_count_iv(len(order), cap)
    total = math.perm(n, _prefix_length(n, cap))
    if not isinstance(index, int | np.integer) or not 0 <= index < total:
        raise ValueError(f"`index` must be an integer in [0, {total}); got {index!r}")
    return order, int(index), cap


def sequence_at(plans_order: Sequence[int], index: int, cap: int = DEFAULT_SEQUENCE_CAP) -> tuple[int, ...]:
    """The ``index``-th sequence, in lexicographic order of positions in ``plans_order``.

    Index 0 is ``plans_order`` itself (the canonical sequence); the first ``k`` positions enumerate every
    ordered choice of ``k`` plans (``k`` as in `sequence_count`) and the remaining plans follow in
    ``plans_order`` order. Deterministic and random-access, so a batch can start anywhere.

    Parameters
    ----------
    plans_order : sequence of int
        The plans in canonical order (see `canonical_plan_order`).
    index : int
        In ``[0, sequence_count(len(plans_order), cap))``.
    cap : int
        Sequence cap.

    Returns
    -------
    tuple of int
        A permutation of ``plans_order``.

    Examples
    --------
    >>> [sequence_at((0, 1, 2), i) for i in range(3)]
    [(0, 1, 2), (0, 2, 1), (1, 0, 2)]
    """
    order, index, cap = _sequence_at_iv(plans_order, index, cap)
    n = len(order)
    k = _prefix_length(n, cap)
    remaining = list(order)
    head = []
    for position in range(k):
        block = math.perm(n - position - 1, k - position - 1)
        digit, index = divmod(index, block)
        head.append(remaining.pop(digit))
    return tuple(head + remaining)


def iter_sequences(
    plans_order: Sequence[int], cap: int = DEFAULT_SEQUENCE_CAP, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, ...]]:
    """Yield the sequences ``start .. stop − 1`` (default: to the end) of `sequence_at`.

    Examples
    --------
    >>> list(iter_sequences((0, 1), start=1))
    [(1, 0)]
    """
    order = tuple(int(p) for p in plans_order)
    n, cap = _sequence_count_iv(len(order), cap)
    k = _prefix_length(n, cap)
    total = math.perm(n, k)
    stop = total if stop is None else min(int(stop), total)
    if not 0 <= start <= total:
        raise ValueError(f"`start` must be in [0, {total}]; got {start!r}")
    # itertools.permutations is lexicographic in input positions, the order of `sequence_at`.
    for head in itertools.islice(itertools.permutations(order, k), start, stop):
        chosen = set(head)
        yield head + tuple(p for p in order if p not in chosen)

"""Legacy engine (parity): rate plan sequences filled greedily against MaxAvgUsage thresholds.

Reconstruction of docs/architecture.md: break-even average usage per plan, sequence
generation (permutations up to a cap, canonical order first), the four strategies, the base assignment
and record-if-better. A sequence is evaluated from usage sorted once and prefix sums (O(P log N) per
sequence and partition, vectorised over a batch of sequences), never by looping over devices.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from include.carrier_optimization.core.cost import evaluate, overage_blocks, overage_matrix
from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan
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

__all__ = [
    "DEFAULT_SEQUENCE_CAP",
    "STRATEGIES",
    "Strategy",
    "Candidate",
    "LegacyTables",
    "max_avg_usage",
    "canonical_plan_order",
    "sequence_count",
    "sequence_at",
    "iter_sequences",
    "base_assignment",
    "prepare_tables",
    "evaluate_sequences",
    "solve_legacy",
]

LOG = logging.getLogger(__name__)

#: Default cap on the number of sequences per comm group (docs/architecture.md).
DEFAULT_SEQUENCE_CAP = 5040
DEFAULT_BATCH_SIZE = 1024
#: Costs within this many $ are ties (float noise must not decide between equal candidates).
TIE_TOLERANCE = 1e-9
#: Accepted options and their defaults.
OPTIONS = MappingProxyType({"sequence_cap": DEFAULT_SEQUENCE_CAP, "batch_size": DEFAULT_BATCH_SIZE})


class Strategy(NamedTuple):
    """A legacy assignment strategy: grouping × usage order."""

    grouping: str
    order: str

    def __str__(self) -> str:
        return f"{self.grouping}/{self.order}"


#: The four M2M strategies, in evaluation order (ties keep the earliest).
STRATEGIES = (
    Strategy("NoGrouping", "LargestToSmallest"),
    Strategy("NoGrouping", "SmallestToLargest"),
    Strategy("GroupByCommunicationPlan", "LargestToSmallest"),
    Strategy("GroupByCommunicationPlan", "SmallestToLargest"),
)


@dataclass(frozen=True, eq=False)
class Candidate:
    """Best candidate of a batch of sequences.

    Attributes
    ----------
    cost : float
        Total cost of the candidate (prefix-sum evaluation of the cost model).
    index : int
        Global index of its sequence (``start`` + row in the batch).
    strategy : Strategy
        The strategy that produced it.
    sequence : tuple of int
        The sequence (local plan indices).
    assignment : ndarray of int64
        Local plan index per device.
    """

    cost: float
    index: int
    strategy: Strategy
    sequence: tuple[int, ...]
    assignment: np.ndarray


# --------------------------------------------------------------------------- thresholds and sequences


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


def _group_iv(group) -> GroupProblem:
    if not isinstance(group, GroupProblem):
        raise TypeError("`group` must be a GroupProblem")
    if group.n_plans == 0:
        raise ValueError("`group` must have at least one plan")
    return group


_canonical_plan_order_iv = _base_assignment_iv = _prepare_tables_iv = _group_iv


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
    group = _canonical_plan_order_iv(group)
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


# --------------------------------------------------------------------------- base assignment


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
    >>> small = RatePlan(1, "S", 10.0, 100.0, 1.0, 10.0, pooled=False)
    >>> large = RatePlan(2, "L", 20.0, 500.0, 1.0, 10.0, pooled=False)
    >>> g = GroupProblem("1,2", ("cp",), (small, large), ["a", "b", "c"], [50, 300, 900], [0] * 3,
    ...                  [1] * 3, [0] * 3, [-1] * 3)
    >>> base_assignment(g)
    array([0, 1, 1])
    """
    group = _base_assignment_iv(group)
    t = group.table
    order = np.lexsort((t.plan_id, t.monthly_charge, t.included_mb))
    allowance = t.included_mb[order]
    position = np.searchsorted(allowance, group.usage_mb, side="left")
    largest = int(np.searchsorted(allowance, allowance[-1], side="left"))
    return order[np.where(position < len(order), np.minimum(position, len(order) - 1), largest)].astype(
        np.int64
    )


# --------------------------------------------------------------------------- prefix-sum evaluation


@dataclass(frozen=True, eq=False)
class _Layout:
    """Devices of one grouping sorted by (partition, usage, position), with prefix sums."""

    order: np.ndarray  # device positions in layout order
    starts: np.ndarray  # (K,) first layout position of each partition
    ends: np.ndarray  # (K,) one past the last
    usage_max: np.ndarray  # (K,) largest usage of each partition (-inf when empty)
    usage: np.ndarray  # (N + 1,) prefix sums of u
    proration: np.ndarray  # (N + 1,) prefix sums of f
    sms: np.ndarray  # (N + 1,) prefix sums of m
    overage: np.ndarray  # (P, N + 1) prefix sums of the per-device overage on non-pooled plans


@dataclass(frozen=True, eq=False)
class LegacyTables:
    """Per-group data for fast sequence evaluation, built once by `prepare_tables` (O(N log N + N·P))."""

    group: GroupProblem
    thresholds: np.ndarray  # MaxAvgUsage per local plan
    layouts: tuple[_Layout, _Layout]  # NoGrouping, GroupByCommunicationPlan


def _layout(group: GroupProblem, partition: np.ndarray, n_partitions: int, overage: np.ndarray) -> _Layout:
    n = group.n_devices
    order = np.lexsort((np.arange(n), group.usage_mb, partition))
    bounds = np.searchsorted(partition[order], np.arange(n_partitions + 1))
    starts, ends = bounds[:-1].astype(np.int64), bounds[1:].astype(np.int64)
    sorted_usage = group.usage_mb[order]
    usage_max = np.where(ends > starts, sorted_usage[np.maximum(ends - 1, 0)] if n else 0.0, -np.inf)

    def prefix(values, axis=-1):
        shape = list(values.shape)
        shape[axis] = 1
        return np.concatenate([np.zeros(shape), np.cumsum(values, axis=axis)], axis=axis)

    return _Layout(
        order=order,
        starts=starts,
        ends=ends,
        usage_max=usage_max,
        usage=prefix(sorted_usage),
        proration=prefix(group.proration[order]),
        sms=prefix(group.sms[order]),
        overage=np.ascontiguousarray(prefix(overage[order].T)),
    )


def prepare_tables(group: GroupProblem) -> LegacyTables:
    """Sort the group's usage once per grouping and build the prefix sums used by `evaluate_sequences`."""
    group = _prepare_tables_iv(group)
    overage = overage_matrix(group)
    layouts = (
        _layout(group, np.zeros(group.n_devices, dtype=np.int64), 1, overage),
        _layout(group, group.comm_plan_index, len(group.comm_plans), overage),
    )
    return LegacyTables(group=group, thresholds=max_avg_usage(group.plans), layouts=layouts)


def _fill_smallest_first(layout: _Layout, sequences: np.ndarray, thresholds: np.ndarray):
    """Greedy fill in ascending usage: per step, the block ``[a, e)`` of each (sequence, partition).

    Pool ``j`` takes SIMs while the block's average stays ``<= M``; the first SIM that would lift it above
    ``M`` opens the next pool. The average of an ascending block never decreases, so the end is found by
    bisection on the prefix sums: the first ``e'`` with ``S[e'] − S[a] > M·(e' − a)``.
    """
    n_seq, n_steps = sequences.shape
    ends_of_partition = np.broadcast_to(layout.ends[None, :], (n_seq, len(layout.ends)))
    a = np.broadcast_to(layout.starts[None, :], ends_of_partition.shape).copy()
    prefix = layout.usage
    block_start = np.empty((n_steps, *a.shape), dtype=np.int64)
    block_end = np.empty_like(block_start)
    rounds = int(max(1, (layout.ends - layout.starts).max(initial=0) + 1)).bit_length()
    for step in range(n_steps):
        block_start[step] = a
        if step == n_steps - 1:
            block_end[step] = ends_of_partition
            break
        limit = thresholds[sequences[:, step]][:, None]
        lo, hi = a + 1, ends_of_partition + 1
        base = prefix[a]
        for _ in range(rounds):
            mid = (lo + hi) >> 1
            inside = mid <= ends_of_partition
            safe = np.where(inside, mid, ends_of_partition)
            with np.errstate(invalid="ignore"):  # inf · 0 only where `inside` is False
                over = ~inside | (prefix[safe] - base > limit * (safe - a))
            hi = np.where(over, mid, hi)
            lo = np.where(over, lo, mid + 1)
        e = np.where(hi <= ends_of_partition, hi - 1, ends_of_partition)
        block_end[step] = e
        a = e
    return block_start, block_end


def _fill_largest_first(layout: _Layout, sequences: np.ndarray, thresholds: np.ndarray):
    """Greedy fill in descending usage: the whole partition goes to the first pool with ``M >= max u``.

    A block that starts with its largest SIM has its largest average at the start, so the first pool
    that accepts that SIM accepts all the rest; the last pool of the sequence takes what remains.
    """
    n_seq, n_steps = sequences.shape
    accepts = thresholds[sequences][:, None, :] >= layout.usage_max[None, :, None]
    accepts[:, :, -1] = True
    chosen = np.argmax(accepts, axis=2)  # (S, K)
    start = np.broadcast_to(layout.starts[None, :], chosen.shape)
    end = np.broadcast_to(layout.ends[None, :], chosen.shape)
    steps = np.arange(n_steps)[:, None, None]
    block_start = np.broadcast_to(start, (n_steps, *chosen.shape))
    block_end = np.where(steps == chosen[None], end[None], start[None])
    return block_start, block_end


def _cost_of_blocks(tables: LegacyTables, layout: _Layout, sequences, block_start, block_end) -> np.ndarray:
    """Cost of each sequence from its blocks: fixed, SMS and overage from prefix sums, pools summed."""
    t = tables.group.table
    plans = sequences.T  # (steps, S)
    count = (block_end - block_start).sum(axis=2)
    usage = (layout.usage[block_end] - layout.usage[block_start]).sum(axis=2)
    proration = (layout.proration[block_end] - layout.proration[block_start]).sum(axis=2)
    cost = t.monthly_charge[plans] * proration
    if np.any(t.sms_rate != 0):
        sms = (layout.sms[block_end] - layout.sms[block_start]).sum(axis=2)
        cost += t.sms_rate[plans] * sms
    rows = plans[:, :, None]
    individual = (layout.overage[rows, block_end] - layout.overage[rows, block_start]).sum(axis=2)
    pool = t.overage_rate[plans] * overage_blocks(
        usage - t.included_mb[plans] * proration, t.overage_block_mb[plans]
    )
    cost += np.where(t.pooled[plans], np.where(count > 0, pool, 0.0), individual)
    return cost.sum(axis=0)


def _blocks(tables: LegacyTables, strategy_index: int, sequences: np.ndarray):
    layout = tables.layouts[strategy_index // 2]
    fill = _fill_largest_first if strategy_index % 2 == 0 else _fill_smallest_first
    block_start, block_end = fill(layout, sequences, tables.thresholds)
    return layout, block_start, block_end


def _materialize(tables: LegacyTables, strategy_index: int, sequence: np.ndarray) -> np.ndarray:
    layout, block_start, block_end = _blocks(tables, strategy_index, sequence[None, :])
    assignment = np.empty(tables.group.n_devices, dtype=np.int64)
    for step, plan in enumerate(sequence):
        for a, e in zip(block_start[step, 0], block_end[step, 0], strict=True):
            assignment[layout.order[a:e]] = plan
    return assignment


def _evaluate_sequences_iv(group, sequences, start, tables):
    group = _group_iv(group)
    if tables is None:
        tables = prepare_tables(group)
    elif tables.group is not group:
        raise ValueError("`tables` must be prepared from `group`")
    seqs = np.ascontiguousarray(sequences, dtype=np.int64)
    p = group.n_plans
    if seqs.ndim != 2 or seqs.shape[0] == 0 or seqs.shape[1] != p:
        raise ValueError(f"`sequences` must be a non-empty (S, {p}) array of local plan indices")
    if not np.all(np.sort(seqs, axis=1) == np.arange(p)):
        raise ValueError("`sequences`: every row must be a permutation of the group's plan indices")
    if not isinstance(start, int | np.integer) or start < 0:
        raise ValueError(f"`start` must be an integer >= 0; got {start!r}")
    if group.n_devices == 0:
        raise ValueError("`group` has no devices")
    return tables, seqs, int(start)


def evaluate_sequences(
    group: GroupProblem, sequences, *, start: int = 0, tables: LegacyTables | None = None
) -> Candidate:
    """Evaluate a batch of sequences under the four strategies and return the cheapest candidate.

    For each sequence π and strategy (grouping × order): partition the SIMs (one partition, or one per
    comm plan), sort each partition by usage, fill pools in sequence order (pool ``π_j`` takes SIMs while
    its average usage stays ``<= MaxAvgUsage(π_j)``; the last pool takes the rest), merge the plan pools
    across partitions and cost the result with the docs/architecture.md model. The fill and the cost come from
    prefix sums over the sorted usage, O(P log N) per sequence and partition.

    Parameters
    ----------
    group : GroupProblem
        The comm group (at least one device).
    sequences : array_like of int, shape (S, P)
        Sequences of local plan indices (e.g. from `iter_sequences` over `canonical_plan_order`).
    start : int
        Global index of the first row (the candidate's ``index`` is ``start + row``).
    tables : LegacyTables, optional
        Reuse tables from `prepare_tables(group)` across batches.

    Returns
    -------
    Candidate
        The cheapest (sequence, strategy); ties (within 1e-9 $) keep the earliest sequence, then the
        earliest strategy of `STRATEGIES`.

    Raises
    ------
    ValueError
        When a row is not a permutation of the plans, or the group is empty.
    """
    tables, seqs, start = _evaluate_sequences_iv(group, sequences, start, tables)
    costs = np.empty((len(seqs), len(STRATEGIES)))
    for s in range(len(STRATEGIES)):
        layout, block_start, block_end = _blocks(tables, s, seqs)
        costs[:, s] = _cost_of_blocks(tables, layout, seqs, block_start, block_end)
    flat = costs.ravel()
    first = int(np.flatnonzero(flat <= flat.min() + TIE_TOLERANCE)[0])  # ties keep the earliest
    row, s = np.unravel_index(first, costs.shape)
    return Candidate(
        cost=float(costs[row, s]),
        index=start + int(row),
        strategy=STRATEGIES[s],
        sequence=tuple(int(p) for p in seqs[row]),
        assignment=_materialize(tables, int(s), seqs[row]),
    )


# --------------------------------------------------------------------------- the engine


def _solve_legacy_iv(problem, time_limit, options):
    merged = check_solve_arguments(problem, time_limit, options, OPTIONS)
    for key in OPTIONS:
        if not isinstance(merged[key], int) or merged[key] < 1:
            raise ValueError(f"`options`: {key} must be an integer >= 1; got {merged[key]!r}")
    return problem, time_limit, merged


def solve_legacy(
    problem: Problem, *, time_limit=None, seed=None, options: Mapping | None = None
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

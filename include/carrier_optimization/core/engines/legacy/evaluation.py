"""Legacy evaluation kernel: a batch of sequences under the four strategies, from sorted usage + prefix sums.

Reconstruction of docs/architecture.md (Engines, legacy): the four strategies (grouping × usage
order), the greedy fill against each plan's break-even average usage and the cost of the resulting pools.
A sequence is evaluated from usage sorted once and prefix sums (O(P log N) per sequence and partition,
vectorised over a batch of sequences), never by looping over devices. The end of an ascending pool
depends only on where it starts and on its plan, so each (plan, start) is bisected once per group and
remembered in the tables: the optimize step evaluates a few sequences per call (one chunk of queues), and
the bisection's many tiny numpy calls, not arithmetic, were its cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from include.carrier_optimization.core.cost import overage_blocks, overage_matrix
from include.carrier_optimization.core.domain import GroupProblem
from include.carrier_optimization.core.engines.legacy.sequences import check_group, max_avg_usage

__all__ = [
    "TIE_TOLERANCE",
    "STRATEGIES",
    "Strategy",
    "Candidate",
    "LegacyTables",
    "prepare_tables",
    "evaluate_sequences",
]

#: Costs within this many $ are ties (float noise must not decide between equal candidates).
TIE_TOLERANCE = 1e-9


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
    """Best candidate of a batch of sequences; its assignment is built on first use.

    Most candidates are compared by cost and dropped (record-if-better), so the O(N) assignment is only
    materialized (then cached) when ``assignment`` is read.

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
    tables : LegacyTables
        The group's tables (to materialize the assignment).
    assignment : ndarray of int64
        Local plan index per device (property, computed once).
    """

    cost: float
    index: int
    strategy: Strategy
    sequence: tuple[int, ...]
    tables: LegacyTables = field(repr=False)

    @cached_property
    def assignment(self) -> np.ndarray:
        """Local plan index per device: the fill of ``sequence`` under ``strategy``."""
        strategy_index = STRATEGIES.index(self.strategy)
        return _materialize(self.tables, strategy_index, np.array(self.sequence, dtype=np.int64))


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
    """Per-group data for fast sequence evaluation, built once by `prepare_tables` (O(N log N + N·P)).

    ``block_ends[g][p, a]`` remembers, per grouping ``g``, one past where the ascending pool of plan ``p``
    that starts at layout position ``a`` ends (0: not bisected yet, so the table comes from calloc and only
    the pages of positions a sequence reaches take memory). It is filled as sequences are evaluated and
    holds exactly what the bisection returns, so results do not depend on what was evaluated before.
    """

    group: GroupProblem
    thresholds: np.ndarray  # MaxAvgUsage per local plan
    layouts: tuple[_Layout, _Layout]  # NoGrouping, GroupByCommunicationPlan
    block_ends: tuple[np.ndarray, np.ndarray]  # (P, N + 1) int32 per grouping: end + 1, 0 = unknown


def _layout(
    group: GroupProblem, order: np.ndarray, partition: np.ndarray, n_partitions: int, overage: np.ndarray
) -> _Layout:
    """The SIMs in ``order`` (by partition, then usage, then index) with their partitions and prefix sums."""
    n = group.n_devices
    bounds = np.searchsorted(partition[order], np.arange(n_partitions + 1))
    starts, ends = bounds[:-1].astype(np.int64), bounds[1:].astype(np.int64)
    sorted_usage = group.usage_mb[order]
    usage_max = np.where(ends > starts, sorted_usage[np.maximum(ends - 1, 0)] if n else 0.0, -np.inf)

    def prefix(values):
        return np.concatenate([np.zeros(1), np.cumsum(values)])

    plans_overage = np.empty((overage.shape[1], n + 1))  # (P, N + 1), written in place: no copies
    plans_overage[:, 0] = 0.0
    np.cumsum(overage[order].T, axis=1, out=plans_overage[:, 1:])
    return _Layout(
        order=order,
        starts=starts,
        ends=ends,
        usage_max=usage_max,
        usage=prefix(sorted_usage),
        proration=prefix(group.proration[order]),
        sms=prefix(group.sms[order]),
        overage=plans_overage,
    )


def prepare_tables(group: GroupProblem) -> LegacyTables:
    """Sort the group's usage once per grouping and build the prefix sums used by `evaluate_sequences`.

    Both orders are by usage with ties by index: the comm plan grouping's is the first re-sorted stably
    by comm plan, which is what a sort on (comm plan, usage, index) gives, in a fraction of its time.
    """
    group = check_group(group)
    overage = overage_matrix(group)
    by_usage = np.argsort(group.usage_mb, kind="stable")
    by_comm_plan = by_usage[np.argsort(group.comm_plan_index[by_usage], kind="stable")]
    layouts = (
        _layout(group, by_usage, np.zeros(group.n_devices, dtype=np.int64), 1, overage),
        _layout(group, by_comm_plan, group.comm_plan_index, len(group.comm_plans), overage),
    )
    unknown = (np.zeros((group.n_plans, group.n_devices + 1), dtype=np.int32) for _ in layouts)
    return LegacyTables(
        group=group, thresholds=max_avg_usage(group.plans), layouts=layouts, block_ends=tuple(unknown)
    )


def _bisect_block_ends(layout: _Layout, a: np.ndarray, end: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """End of the ascending block from ``a`` (its partition ends at ``end``) for break-even ``limit``.

    Pool ``j`` takes SIMs while the block's average stays ``<= M``; the first SIM that would lift it above
    ``M`` opens the next pool. The average of an ascending block never decreases, so the end is found by
    bisection on the prefix sums: the first ``e'`` with ``S[e'] − S[a] > M·(e' − a)``. Elementwise: each
    result depends only on its own ``(a, end, limit)``, which is what makes `LegacyTables.block_ends` exact.
    """
    prefix = layout.usage
    rounds = int(max(1, (layout.ends - layout.starts).max(initial=0) + 1)).bit_length()
    lo, hi = a + 1, end + 1
    base = prefix[a]
    for _ in range(rounds):
        mid = (lo + hi) >> 1
        inside = mid <= end
        safe = np.where(inside, mid, end)
        with np.errstate(invalid="ignore"):  # inf · 0 only where `inside` is False
            over = ~inside | (prefix[safe] - base > limit * (safe - a))
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid + 1)
    return np.where(hi <= end, hi - 1, end)


def _remember_block_ends(tables: LegacyTables, grouping: int, starts: np.ndarray, ends: np.ndarray) -> None:
    """Bisect the pools of every plan from ``starts`` (partitions ending at ``ends``) into the memo.

    Every plan, not only the one asked for: the sequences of a chunk differ in the plan that follows a
    shared start, and one bisection of P·|starts| elements costs about what one of |starts| does.
    """
    starts, first = np.unique(starts, return_index=True)
    n_plans = len(tables.thresholds)
    plan = np.repeat(np.arange(n_plans), len(starts))
    starts, ends = np.tile(starts, n_plans), np.tile(ends[first], n_plans)
    found = _bisect_block_ends(tables.layouts[grouping], starts, ends, tables.thresholds[plan])
    tables.block_ends[grouping][plan, starts] = found + 1


def _fill_smallest_first(tables: LegacyTables, grouping: int, sequences: np.ndarray):
    """Greedy fill in ascending usage: per step, the block ``[a, e)`` of each (sequence, partition).

    A pool that starts at its partition's end is empty (``e = a``); any other ``(plan, a)`` is looked up
    in ``tables.block_ends``, bisected (`_remember_block_ends`) when a start is first reached.
    """
    layout, memo = tables.layouts[grouping], tables.block_ends[grouping]
    n_seq, n_steps = sequences.shape
    ends_of_partition = np.broadcast_to(layout.ends[None, :], (n_seq, len(layout.ends)))
    a = np.broadcast_to(layout.starts[None, :], ends_of_partition.shape).copy()
    block_start = np.empty((n_steps, *a.shape), dtype=np.int64)
    block_end = np.empty_like(block_start)
    for step in range(n_steps):
        block_start[step] = a
        if step == n_steps - 1:
            block_end[step] = ends_of_partition
            break
        plan = sequences[:, step, None]
        open_ = a < ends_of_partition
        e = np.where(open_, memo[plan, a] - 1, a)
        missing = e < 0
        if missing.any():
            _remember_block_ends(tables, grouping, a[missing], ends_of_partition[missing])
            e[missing] = memo[np.broadcast_to(plan, a.shape)[missing], a[missing]] - 1
        block_end[step] = e
        a = e
    return block_start, block_end


def _fill_largest_first(tables: LegacyTables, grouping: int, sequences: np.ndarray):
    """Greedy fill in descending usage: the whole partition goes to the first pool with ``M >= max u``.

    A block that starts with its largest SIM has its largest average at the start, so the first pool
    that accepts that SIM accepts all the rest; the last pool of the sequence takes what remains.
    """
    layout = tables.layouts[grouping]
    n_seq, n_steps = sequences.shape
    accepts = tables.thresholds[sequences][:, None, :] >= layout.usage_max[None, :, None]
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
    grouping = strategy_index // 2
    fill = _fill_largest_first if strategy_index % 2 == 0 else _fill_smallest_first
    block_start, block_end = fill(tables, grouping, sequences)
    return tables.layouts[grouping], block_start, block_end


def _materialize(tables: LegacyTables, strategy_index: int, sequence: np.ndarray) -> np.ndarray:
    layout, block_start, block_end = _blocks(tables, strategy_index, sequence[None, :])
    assignment = np.empty(tables.group.n_devices, dtype=np.int64)
    for step, plan in enumerate(sequence):
        for a, e in zip(block_start[step, 0], block_end[step, 0], strict=True):
            assignment[layout.order[a:e]] = plan
    return assignment


def _evaluate_sequences_iv(group, sequences, start, tables):
    group = check_group(group)
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
    group: GroupProblem, sequences: npt.ArrayLike, *, start: int = 0, tables: LegacyTables | None = None
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
        tables=tables,
    )

"""Legacy evaluation kernel: the prefix-sum fill and cost against a per-device fill."""

from __future__ import annotations

import numpy as np
import pytest

from include.carrier_optimization.core.domain import GroupProblem
from include.carrier_optimization.core.engines.legacy.evaluation import (
    STRATEGIES,
    _bisect_block_ends,  # the bisection of one ascending pool
    _fill_smallest_first,  # the remembered fill
    _materialize,  # the fill of one (sequence, strategy)
    evaluate_sequences,
    prepare_tables,
)
from include.carrier_optimization.core.engines.legacy.sequences import (
    canonical_plan_order,
    iter_sequences,
    max_avg_usage,
)
from tests.unit.include.carrier_optimization.core.engines.legacy.conftest import (
    LARGE,
    MEDIUM,
    SMALL,
    legacy_group,
)


def naive_fill(group: GroupProblem, sequence, strategy, thresholds) -> np.ndarray:
    """The legacy fill written per device: pools in sequence order, advance while the average would exceed."""
    assignment = np.empty(group.n_devices, dtype=np.int64)
    if strategy.grouping == "NoGrouping":
        partitions = [np.arange(group.n_devices)]
    else:
        partitions = [np.flatnonzero(group.comm_plan_index == k) for k in range(len(group.comm_plans))]
    for members in partitions:
        order = members[np.lexsort((members, group.usage_mb[members]))]
        if strategy.order == "LargestToSmallest":
            order = order[::-1]
        i, total, count = 0, 0.0, 0
        for device in order:
            u = group.usage_mb[device]
            while i < len(sequence) - 1 and (total + u) / (count + 1) > thresholds[sequence[i]]:
                i, total, count = i + 1, 0.0, 0
            assignment[device] = sequence[i]
            total, count = total + u, count + 1
    return assignment


def test_prepare_tables_iv():
    with pytest.raises(TypeError, match="`group` must be a GroupProblem"):
        prepare_tables([1.0])
    with pytest.raises(ValueError, match="`group` must have at least one plan"):
        prepare_tables(legacy_group([], plans=()))


def test_each_layout_orders_by_partition_then_usage_then_index_with_its_prefix_sums():
    rng = np.random.default_rng(5)
    usage = rng.integers(0, 4, 300).astype(float) * 250.0  # few distinct values: ties everywhere
    comm = rng.integers(0, 2, 300)
    group = legacy_group(usage, comm=comm)
    tables = prepare_tables(group)
    index = np.arange(300)
    for layout, partition in zip(tables.layouts, (np.zeros(300, dtype=int), comm), strict=True):
        np.testing.assert_array_equal(layout.order, np.lexsort((index, usage, partition)))
        np.testing.assert_array_equal(layout.usage, np.concatenate([[0.0], np.cumsum(usage[layout.order])]))
        assert layout.overage.shape == (group.n_plans, 301) and layout.overage.flags.c_contiguous
        np.testing.assert_array_equal(layout.overage[:, 0], 0.0)
        bounds = np.searchsorted(partition[layout.order], np.arange(partition.max() + 2))
        np.testing.assert_array_equal(layout.starts, bounds[:-1])
        np.testing.assert_array_equal(layout.ends, bounds[1:])


class TestEvaluateSequences:
    def test_hand_made_fills(self):
        thresholds = max_avg_usage([SMALL, MEDIUM, LARGE])  # [200, 500, inf]
        group = legacy_group([50.0, 150.0, 260.0, 700.0, 900.0], comm=[0, 1, 0, 1, 0])
        # ascending S-M-L: 50, 150, 260 keep S's average <= 200 (153); 700 would lift it to 290 -> M,
        # but 700 alone is over M's 500 -> L, which takes the rest
        # descending: 900 is over 200 and 500, so the whole partition goes to L
        # by comm plan, ascending: cp0 = 50, 260, 900 -> S, S, L; cp1 = 150, 700 -> S, L
        expected = {
            "NoGrouping/LargestToSmallest": [2, 2, 2, 2, 2],
            "NoGrouping/SmallestToLargest": [0, 0, 0, 2, 2],
            "GroupByCommunicationPlan/LargestToSmallest": [2, 2, 2, 2, 2],
            "GroupByCommunicationPlan/SmallestToLargest": [0, 0, 0, 2, 2],
        }
        tables = prepare_tables(group)
        for index, strategy in enumerate(STRATEGIES):
            np.testing.assert_array_equal(
                naive_fill(group, (0, 1, 2), strategy, thresholds), expected[str(strategy)]
            )
            np.testing.assert_array_equal(
                _materialize(tables, index, np.array([0, 1, 2])), expected[str(strategy)]
            )
        # sequence M-S-L, ascending: 50..260 avg <= 500 on M; 700 lifts M to 290 (<= 500); 900 -> 412 -> M
        np.testing.assert_array_equal(_materialize(tables, 1, np.array([1, 0, 2])), [1, 1, 1, 1, 1])

    @pytest.mark.parametrize("seed", range(12))
    def test_prefix_sums_match_the_per_device_fill(self, make_group, reference, seed):
        rng = np.random.default_rng(seed)
        group = make_group(
            seed, n_devices=int(rng.integers(1, 40)), n_plans=int(rng.integers(1, 5)), n_comm_plans=3
        )
        thresholds = max_avg_usage(group.plans)
        sequences = np.array(list(iter_sequences(canonical_plan_order(group))))
        tables = prepare_tables(group)
        costs = np.array(
            [
                [reference(group, naive_fill(group, s, strategy, thresholds)) for strategy in STRATEGIES]
                for s in sequences
            ]
        )
        candidate = evaluate_sequences(group, sequences, start=100, tables=tables)
        # ties within 1e-9 $ keep the earliest sequence, then the earliest strategy
        row, column = np.unravel_index(np.flatnonzero(costs.ravel() <= costs.min() + 1e-9)[0], costs.shape)
        assert candidate.cost == pytest.approx(costs[row, column], abs=1e-9)
        assert reference(group, candidate.assignment) == pytest.approx(candidate.cost, abs=1e-9)
        assert candidate.index == 100 + row and candidate.strategy == STRATEGIES[column]
        assert candidate.sequence == tuple(sequences[row])
        for s, sequence in enumerate(sequences):  # each sequence alone
            single = evaluate_sequences(group, sequence[None, :], tables=tables)
            assert single.cost == pytest.approx(costs[s].min(), abs=1e-9)

    def test_evaluate_sequences_iv(self):
        group = legacy_group([1.0, 2.0])
        with pytest.raises(ValueError, match=r"non-empty \(S, 3\) array"):
            evaluate_sequences(group, [[0, 1]])
        with pytest.raises(ValueError, match="permutation of the group's plan indices"):
            evaluate_sequences(group, [[0, 1, 1]])
        with pytest.raises(ValueError, match="`tables` must be prepared from `group`"):
            evaluate_sequences(group, [[0, 1, 2]], tables=prepare_tables(legacy_group([1.0])))
        with pytest.raises(ValueError, match="`start` must be an integer >= 0"):
            evaluate_sequences(group, [[0, 1, 2]], start=-1)


def bisected_fill(tables, grouping, sequences):
    """The ascending fill without `LegacyTables.block_ends`: every (sequence, partition, step) bisected."""
    layout = tables.layouts[grouping]
    n_seq, n_steps = sequences.shape
    ends = np.broadcast_to(layout.ends, (n_seq, len(layout.ends)))
    a = np.broadcast_to(layout.starts, ends.shape).copy()
    starts, block_ends = [], []
    for step in range(n_steps):
        starts.append(a)
        if step == n_steps - 1:
            block_ends.append(ends.copy())
            break
        limit = np.broadcast_to(tables.thresholds[sequences[:, step, None]], a.shape)
        a = _bisect_block_ends(layout, a.ravel(), ends.ravel(), limit.ravel()).reshape(a.shape)
        block_ends.append(a)
    return np.array(starts), np.array(block_ends)


class TestRememberedBlockEnds:
    """`LegacyTables.block_ends` only remembers bisections: results never depend on what ran before."""

    @pytest.mark.parametrize("seed", range(8))
    def test_fill_matches_bisection_cold_and_warm(self, make_group, seed):
        rng = np.random.default_rng(seed)
        group = make_group(
            seed, n_devices=int(rng.integers(2, 60)), n_plans=int(rng.integers(2, 6)), n_comm_plans=3
        )
        sequences = np.array(list(iter_sequences(canonical_plan_order(group))), dtype=np.int64)
        for grouping in (0, 1):
            tables = prepare_tables(group)
            expected = bisected_fill(tables, grouping, sequences)
            for rows in (sequences[::-1], sequences[rng.permutation(len(sequences))[:3]], sequences):
                reference = bisected_fill(tables, grouping, rows)
                start, end = _fill_smallest_first(tables, grouping, rows)
                np.testing.assert_array_equal(start, reference[0])
                np.testing.assert_array_equal(end, reference[1])
            assert np.all(tables.block_ends[grouping][:, -1] == 0)  # pools from position N: never stored
            np.testing.assert_array_equal(_fill_smallest_first(tables, grouping, sequences)[1], expected[1])

    @pytest.mark.parametrize("chunk", [1, 2, 5])
    def test_chunks_give_the_same_candidates_on_fresh_and_reused_tables(self, make_group, chunk):
        group = make_group(3, n_devices=80, n_plans=5, n_comm_plans=3)
        sequences = np.array(list(iter_sequences(canonical_plan_order(group))), dtype=np.int64)
        reused = prepare_tables(group)
        evaluate_sequences(group, sequences[::-1], tables=reused)  # warm every (plan, start)
        for start in range(0, len(sequences), chunk):
            rows = sequences[start : start + chunk]
            fresh = evaluate_sequences(group, rows, start=start, tables=prepare_tables(group))
            again = evaluate_sequences(group, rows, start=start, tables=reused)
            assert (again.cost, again.index, again.strategy, again.sequence) == (
                fresh.cost,
                fresh.index,
                fresh.strategy,
                fresh.sequence,
            )
            np.testing.assert_array_equal(again.assignment, fresh.assignment)


def test_candidate_assignment_is_built_once_on_first_use(make_group, reference):
    group = make_group(5, n_devices=30, n_plans=4, n_comm_plans=2)
    sequences = np.array(list(iter_sequences(canonical_plan_order(group))), dtype=np.int64)
    tables = prepare_tables(group)
    candidate = evaluate_sequences(group, sequences, tables=tables)
    assert "assignment" not in vars(candidate)  # not materialized by the evaluation
    assignment = candidate.assignment
    assert candidate.assignment is assignment  # cached
    strategy = STRATEGIES.index(candidate.strategy)
    np.testing.assert_array_equal(assignment, _materialize(tables, strategy, np.array(candidate.sequence)))
    assert reference(group, assignment) == pytest.approx(candidate.cost, abs=1e-9)

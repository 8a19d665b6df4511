"""Legacy engine: MaxAvgUsage, sequences, base assignment, the prefix-sum fill against a per-device fill."""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan
from include.carrier_optimization.core.engines.legacy import (
    STRATEGIES,
    _materialize,  # the fill of one (sequence, strategy)
    base_assignment,
    canonical_plan_order,
    evaluate_sequences,
    iter_sequences,
    max_avg_usage,
    prepare_tables,
    sequence_at,
    sequence_count,
    solve_legacy,
)

SMALL = RatePlan(1, "S", 10.0, 100.0, 1.0, 10.0, pooled=False)  # 0.1 $/MB
MEDIUM = RatePlan(2, "M", 20.0, 500.0, 2.0, 10.0, pooled=True)  # 0.2 $/MB
LARGE = RatePlan(3, "L", 15.0, 1000.0, 1.0, 1.0, pooled=False)  # cheaper than M


def _group(usage, plans=(SMALL, MEDIUM, LARGE), comm=None, current=None) -> GroupProblem:
    n = len(usage)
    return GroupProblem(
        key=",".join(str(p.plan_id) for p in plans),
        comm_plans=("cp0", "cp1"),
        plans=tuple(plans),
        device_ids=[f"d{i}" for i in range(n)],
        usage_mb=usage,
        sms=[0] * n,
        proration=[1.0] * n,
        comm_plan_index=comm if comm is not None else [0] * n,
        current_plan=current if current is not None else [-1] * n,
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


class TestMaxAvgUsage:
    def test_break_even_between_consecutive_plans(self):
        # sorted by allowance: S (100), M (500), L (1000)
        # S: 100 + (20 - 10) / 0.1 = 200; M: next is L with a lower charge -> its allowance, 500; L: inf
        np.testing.assert_allclose(max_avg_usage([SMALL, MEDIUM, LARGE]), [200.0, 500.0, np.inf])

    def test_input_order_does_not_matter(self):
        np.testing.assert_allclose(max_avg_usage([LARGE, SMALL, MEDIUM]), [np.inf, 200.0, 500.0])

    def test_max_avg_usage_iv(self):
        with pytest.raises(ValueError, match="non-empty sequence of RatePlan"):
            max_avg_usage([])
        with pytest.raises(ValueError, match=r"overage_rate must be > 0; plan_id 9"):
            max_avg_usage([RatePlan(9, "Z", 1.0, 1.0, 0.0, 1.0, pooled=False)])


def test_canonical_order_sorts_by_threshold_then_allowance():
    assert canonical_plan_order(_group([1.0], plans=(LARGE, MEDIUM, SMALL))) == (2, 1, 0)


@pytest.mark.parametrize("function", [canonical_plan_order, base_assignment, prepare_tables])
def test_group_functions_iv(function):
    with pytest.raises(TypeError, match="`group` must be a GroupProblem"):
        function([1.0])
    with pytest.raises(ValueError, match="`group` must have at least one plan"):
        function(_group([], plans=()))


class TestSequences:
    @pytest.mark.parametrize(
        ("n", "cap", "expected"),
        [
            (0, 5040, 1),
            (1, 5040, 1),
            (4, 5040, 24),
            (7, 5040, 5040),
            (8, 5040, 1680),
            (15, 5040, 2730),
            (5, 1, 1),
        ],
    )
    def test_sequence_count(self, n, cap, expected):
        assert sequence_count(n, cap) == expected

    def test_canonical_first_lexicographic_and_distinct(self):
        order = (4, 2, 0, 1, 3)
        sequences = list(iter_sequences(order))
        assert sequences[0] == order and len(sequences) == math.factorial(5) == len(set(sequences))
        assert sequences == sorted(sequences, key=lambda s: [order.index(p) for p in s])

    @pytest.mark.parametrize("cap", [1, 7, 100, 5040])
    def test_indexable_and_resumable(self, cap):
        order = tuple(range(9))
        total = sequence_count(9, cap)
        everything = list(iter_sequences(order, cap))
        assert len(everything) == total
        assert [sequence_at(order, i, cap) for i in range(total)] == everything
        middle = total // 2
        assert list(iter_sequences(order, cap, middle)) == everything[middle:]
        assert list(iter_sequences(order, cap, 1, 3)) == everything[1:3]

    def test_truncated_sequences_keep_the_tail_in_canonical_order(self):
        order = tuple(range(15))
        for sequence in iter_sequences(order, 5040, 0, 50):
            head, tail = sequence[:3], sequence[3:]
            assert tail == tuple(p for p in order if p not in head)

    def test_sequence_at_iv(self):
        with pytest.raises(ValueError, match=r"`index` must be an integer in \[0, 6\)"):
            sequence_at((0, 1, 2), 6)
        with pytest.raises(ValueError, match="must not repeat a plan"):
            sequence_at((0, 0), 0)
        with pytest.raises(ValueError, match="`cap` must be an integer >= 1"):
            sequence_count(3, 0)
        with pytest.raises(ValueError, match=r"`start` must be in \[0, 2\]"):
            list(iter_sequences((0, 1), start=5))


def test_base_assignment_smallest_sufficient_allowance_else_largest():
    cheap_twin = RatePlan(4, "S2", 8.0, 100.0, 1.0, 10.0, pooled=False)  # same allowance as S, cheaper
    group = _group([0.0, 100.0, 100.5, 999.0, 5000.0], plans=(SMALL, MEDIUM, LARGE, cheap_twin))
    np.testing.assert_array_equal(base_assignment(group), [3, 3, 1, 2, 2])


class TestEvaluateSequences:
    def test_hand_made_fills(self):
        thresholds = max_avg_usage([SMALL, MEDIUM, LARGE])  # [200, 500, inf]
        group = _group([50.0, 150.0, 260.0, 700.0, 900.0], comm=[0, 1, 0, 1, 0])
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
        group = _group([1.0, 2.0])
        with pytest.raises(ValueError, match=r"non-empty \(S, 3\) array"):
            evaluate_sequences(group, [[0, 1]])
        with pytest.raises(ValueError, match="permutation of the group's plan indices"):
            evaluate_sequences(group, [[0, 1, 1]])
        with pytest.raises(ValueError, match="`tables` must be prepared from `group`"):
            evaluate_sequences(group, [[0, 1, 2]], tables=prepare_tables(_group([1.0])))
        with pytest.raises(ValueError, match="`start` must be an integer >= 0"):
            evaluate_sequences(group, [[0, 1, 2]], start=-1)


class TestSolveLegacy:
    def test_record_if_better_starts_from_the_base_assignment(self, make_group, reference):
        groups = tuple(make_group(seed, n_devices=30, n_plans=4) for seed in range(5))
        result = solve_legacy(Problem(groups))
        assert result.status == 0 and result.success and result.engine == "legacy"
        assert result.lower_bound is None and result.gap is None
        for group, group_result in zip(groups, result.groups, strict=True):
            cost = reference(group, group_result.assignment)
            assert group_result.cost == pytest.approx(cost)
            assert cost <= reference(group, base_assignment(group)) + 1e-9
            assert group_result.details["evaluated"] == sequence_count(group.n_plans)
            if group_result.details["best_index"] == -1:
                np.testing.assert_array_equal(group_result.assignment, base_assignment(group))
        assert result.cost == pytest.approx(sum(g.cost for g in result.groups))

    def test_same_input_same_result(self, make_group):
        problem = Problem((make_group(7, n_devices=50, n_plans=5),))
        first, second = solve_legacy(problem, seed=1), solve_legacy(problem, seed=1)
        np.testing.assert_array_equal(first.assignment[0], second.assignment[0])
        assert first.cost == second.cost and first.groups[0].details == second.groups[0].details

    def test_single_device_is_decided_by_the_base_assignment(self):
        result = solve_legacy(Problem((_group([300.0]),)))
        assert result.groups[0].details["evaluated"] == 0
        np.testing.assert_array_equal(result.assignment[0], [1])

    def test_time_limit_keeps_the_best_so_far(self, make_group):
        group = make_group(2, n_devices=40, n_plans=6)
        result = solve_legacy(Problem((group,)), time_limit=1e-9)
        assert (
            result.status == 1
            and not result.success
            and result.message.startswith("Stopped at the time limit")
        )
        np.testing.assert_array_equal(result.assignment[0], base_assignment(group))

    def test_invalid_plans_give_status_2(self):
        bad = RatePlan(5, "BAD", 1.0, 1.0, 1.0, 0.0, pooled=False)
        result = solve_legacy(Problem((_group([1.0], plans=(SMALL, bad)),)))
        assert result.status == 2 and result.assignment is None and result.cost is None
        assert "`plans`: overage_block_mb must be > 0; plan_id 5 (1 of 2)" in result.message

    def test_solve_legacy_iv(self):
        problem = Problem((_group([1.0]),))
        with pytest.raises(
            ValueError, match=r"unknown keys \['speed'\]; accepted keys are \['batch_size', 'sequence_cap'\]"
        ):
            solve_legacy(problem, options={"speed": 1})
        with pytest.raises(ValueError, match="sequence_cap must be an integer >= 1"):
            solve_legacy(problem, options={"sequence_cap": 0})
        with pytest.raises(ValueError, match="`time_limit` must be a number > 0"):
            solve_legacy(problem, time_limit=0)
        with pytest.raises(TypeError, match="`problem` must be a Problem"):
            solve_legacy([problem])


def test_docstring_examples():
    import doctest
    import importlib

    failures, tried = doctest.testmod(
        importlib.import_module("include.carrier_optimization.core.engines.legacy")
    )
    assert tried > 0 and failures == 0

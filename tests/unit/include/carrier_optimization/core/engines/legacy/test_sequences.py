"""Legacy sequences: MaxAvgUsage, the canonical plan order, the capped permutations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.carrier_optimization.core.domain import RatePlan
from include.carrier_optimization.core.engines.legacy.sequences import (
    canonical_plan_order,
    check_group,
    iter_sequences,
    max_avg_usage,
    sequence_at,
    sequence_count,
)
from tests.unit.include.carrier_optimization.core.engines.legacy.conftest import (
    LARGE,
    MEDIUM,
    SMALL,
    legacy_group,
)


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
    assert canonical_plan_order(legacy_group([1.0], plans=(LARGE, MEDIUM, SMALL))) == (2, 1, 0)


@pytest.mark.parametrize("function", [check_group, canonical_plan_order])
def test_group_functions_iv(function):
    with pytest.raises(TypeError, match="`group` must be a GroupProblem"):
        function([1.0])
    with pytest.raises(ValueError, match="`group` must have at least one plan"):
        function(legacy_group([], plans=()))


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


def test_docstring_examples():
    import doctest
    import importlib

    failures, tried = doctest.testmod(
        importlib.import_module("include.carrier_optimization.core.engines.legacy.sequences")
    )
    assert tried > 0 and failures == 0

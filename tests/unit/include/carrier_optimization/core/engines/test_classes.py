"""Classes of equal rows: identical to np.unique(axis=0, return_inverse=True)."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from include.carrier_optimization.core.engines.classes import row_classes


def reference(*columns):
    return np.unique(np.column_stack(columns), axis=0, return_inverse=True)[1].ravel()


@pytest.mark.parametrize("seed", range(5))
def test_the_ids_equal_numpy_unique_on_rows_with_many_repeats(seed):
    rng = np.random.default_rng(seed)
    n = 5000
    key = rng.integers(0, 7, n)
    usage = rng.choice([0.0, -0.0, 1.5, 2.25, 1e9, 3.0], n)
    proration = rng.choice([1.0, 0.5, 1 / 3], n)
    assert np.array_equal(row_classes(key, usage, proration), reference(key, usage, proration))
    assert np.array_equal(row_classes(usage), reference(usage))


def test_a_single_row_and_no_rows():
    assert row_classes([4.0], [1]).tolist() == [0]
    assert row_classes(np.zeros(0), np.zeros(0)).tolist() == []


def test_doctests():
    failures, tried = doctest.testmod(
        importlib.import_module("include.carrier_optimization.core.engines.classes")
    )
    assert tried > 0 and failures == 0

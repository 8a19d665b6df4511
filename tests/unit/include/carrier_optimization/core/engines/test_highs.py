"""HiGHS plumbing: status translation, one LP/MILP call, and the assignment model's sparse columns."""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from include.carrier_optimization.core.engines.highs import csc_columns, highs_status, run_highs
from include.carrier_optimization.core.engines.result import (
    STATUS_BACKEND,
    STATUS_FINISHED,
    STATUS_INFEASIBLE,
    STATUS_LIMIT,
)

S = highspy.HighsModelStatus


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (S.kOptimal, STATUS_FINISHED),
        (S.kTimeLimit, STATUS_LIMIT),
        (S.kIterationLimit, STATUS_LIMIT),
        (S.kInfeasible, STATUS_INFEASIBLE),
        (S.kUnbounded, STATUS_BACKEND),
        (S.kSolveError, STATUS_BACKEND),
    ],
)
def test_highs_status_maps_model_statuses_and_keeps_the_highs_code(status, code):
    assert highs_status(status) == (code, f"HiGHS status {int(status)}: {status.name}")


def test_an_unknown_status_is_a_backend_failure():
    assert highs_status(99) == (STATUS_BACKEND, "HiGHS unrecognized status 99")


def _one_row(integer=False, upper=np.inf):
    # min x0 + 2·x1  s.t.  x0 + x1 = 1.5,  0 <= x0 <= upper
    return run_highs(
        cost=[1.0, 2.0],
        col_lower=[0.0, 0.0],
        col_upper=[upper, np.inf],
        row_lower=[1.5],
        row_upper=[1.5],
        start=[0, 1, 2],
        index=[0, 0],
        value=[1.0, 1.0],
        time_limit=None,
        integer=integer,
    )


def test_run_highs_solves_an_lp_with_its_duals():
    run = _one_row()
    assert highs_status(run.status)[0] == STATUS_FINISHED
    assert run.x.tolist() == pytest.approx([1.5, 0.0])
    assert run.objective == pytest.approx(1.5) and run.dual_bound == pytest.approx(1.5)
    assert run.row_dual.tolist() == pytest.approx([1.0])


def test_run_highs_integer_is_a_milp():
    # x0 + x1 = 1.5 has no integer solution
    assert highs_status(_one_row(integer=True).status)[0] == STATUS_INFEASIBLE
    feasible = run_highs(
        cost=[1.0, 2.0],
        col_lower=[0.0, 0.0],
        col_upper=[1.0, np.inf],
        row_lower=[2.0],
        row_upper=[2.0],
        start=[0, 1, 2],
        index=[0, 0],
        value=[1.0, 1.0],
        time_limit=10,
        integer=True,
        warm_start=[0.0, 2.0],
    )
    assert highs_status(feasible.status)[0] == STATUS_FINISHED
    assert feasible.x.tolist() == pytest.approx([1.0, 1.0])
    assert feasible.objective == pytest.approx(3.0) and feasible.dual_bound == pytest.approx(3.0)


def test_run_highs_maximizes_on_request():
    run = run_highs([1.0], [0.0], [4.0], [], [], [0, 0], [], [], None, maximize=True)
    assert run.x.tolist() == pytest.approx([4.0]) and run.objective == pytest.approx(4.0)


def test_csc_columns_build_assignment_pool_and_overage_entries():
    # three columns: class 0 on a pooled plan (pool 0), class 0 on a flat plan, class 1 on pool 1
    start, index, value = csc_columns(
        np.array([0, 0, 1]), np.array([0, -1, 1]), np.array([2.5, -4.0]), 2, np.array([-1.0, -1.0])
    )
    assert start.tolist() == [0, 2, 3, 5, 6, 7]
    assert index.tolist() == [0, 2, 0, 1, 3, 2, 3]
    assert value.tolist() == [1.0, 2.5, 1.0, 1.0, -4.0, -1.0, -1.0]

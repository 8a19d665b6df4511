"""HiGHS plumbing shared by the engines: status translation, one LP/MILP call, sparse model columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

from include.carrier_optimization.core.engines.result import (
    STATUS_BACKEND,
    STATUS_FINISHED,
    STATUS_INFEASIBLE,
    STATUS_LIMIT,
)

__all__ = ["HighsRun", "highs_status", "run_highs", "csc_columns"]


@dataclass(frozen=True, eq=False)
class HighsRun:
    """What one HiGHS call returns: model status, primal values, row duals, objective, MIP dual bound."""

    status: object
    x: np.ndarray
    row_dual: np.ndarray
    objective: float
    dual_bound: float


_HIGHS_STATUS = {
    "kOptimal": STATUS_FINISHED,
    "kTimeLimit": STATUS_LIMIT,
    "kIterationLimit": STATUS_LIMIT,
    "kInterrupt": STATUS_LIMIT,
    "kHighsInterrupt": STATUS_LIMIT,
    "kInfeasible": STATUS_INFEASIBLE,
}


def highs_status(model_status: highspy.HighsModelStatus | int) -> tuple[int, str]:
    """Translate a HiGHS model status into an engine status and a message keeping the HiGHS code.

    Optimal → 0; time or iteration limit, interrupt → 1; infeasible → 2; anything else (unbounded, solve
    errors) → 3, and codes HiGHS does not name → 3 with ``"unrecognized status N"``.

    Examples
    --------
    >>> highs_status(highspy.HighsModelStatus.kTimeLimit)
    (1, 'HiGHS status 13: kTimeLimit')
    >>> highs_status(99)
    (3, 'HiGHS unrecognized status 99')
    """
    code = int(model_status)
    name = highspy.HighsModelStatus(code).name
    if not name or name == "???":
        return STATUS_BACKEND, f"HiGHS unrecognized status {code}"
    return _HIGHS_STATUS.get(name, STATUS_BACKEND), f"HiGHS status {code}: {name}"


def run_highs(
    cost: npt.ArrayLike,
    col_lower: npt.ArrayLike,
    col_upper: npt.ArrayLike,
    row_lower: npt.ArrayLike,
    row_upper: npt.ArrayLike,
    start: npt.ArrayLike,
    index: npt.ArrayLike,
    value: npt.ArrayLike,
    time_limit: float | None,
    maximize: bool = False,
    integer: bool = False,
    warm_start: npt.ArrayLike | None = None,
    options: Mapping[str, object] | None = None,
) -> HighsRun:
    """Solve one LP (or MILP when ``integer``) with HiGHS, warm-started from ``warm_start`` if given.

    ``dual_bound`` is HiGHS's ``mip_dual_bound`` for a MILP (a valid lower bound of a minimisation, also
    when a limit stopped the search) and the objective for an LP.
    """
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if time_limit is not None:
        h.setOptionValue("time_limit", max(float(time_limit), 1e-3))
    for key, option in (options or {}).items():
        h.setOptionValue(key, option)
    lp = highspy.HighsLp()
    lp.num_col_ = len(cost)
    lp.num_row_ = len(row_lower)
    lp.col_cost_ = np.asarray(cost, dtype=np.float64)
    lp.col_lower_ = np.asarray(col_lower, dtype=np.float64)
    lp.col_upper_ = np.asarray(col_upper, dtype=np.float64)
    lp.row_lower_ = np.asarray(row_lower, dtype=np.float64)
    lp.row_upper_ = np.asarray(row_upper, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.asarray(start, dtype=np.int32)
    lp.a_matrix_.index_ = np.asarray(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.asarray(value, dtype=np.float64)
    if maximize:
        lp.sense_ = highspy.ObjSense.kMaximize
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * len(cost)
    h.passModel(lp)
    if warm_start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = list(map(float, warm_start))
        solution.value_valid = True
        h.setSolution(solution)
    h.run()
    solution = h.getSolution()
    info = h.getInfo()
    return HighsRun(
        status=h.getModelStatus(),
        x=np.asarray(solution.col_value),
        row_dual=np.asarray(solution.row_dual),
        objective=info.objective_function_value,
        dual_bound=info.mip_dual_bound if integer else info.objective_function_value,
    )


def csc_columns(
    assign_row: np.ndarray,
    pool: np.ndarray,
    pool_coeff: np.ndarray,
    n_assign_rows: int,
    overage_coeff: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise sparse matrix of the assignment model (HiGHS ``start``/``index``/``value``).

    Column ``j`` has 1.0 in assignment row ``assign_row[j]`` and, when ``pool[j] >= 0``, ``pool_coeff``
    (one entry per pooled column, in order) in pool row ``n_assign_rows + pool[j]``; then one overage
    column per pool with ``overage_coeff[g]`` in pool row ``n_assign_rows + g``.
    """
    pooled = pool >= 0
    start = np.r_[0, np.cumsum(1 + pooled.astype(np.int64))]
    index = np.empty(start[-1], dtype=np.int64)
    value = np.empty(start[-1])
    index[start[:-1]] = assign_row
    value[start[:-1]] = 1.0
    second = start[:-1][pooled] + 1
    index[second] = n_assign_rows + pool[pooled]
    value[second] = pool_coeff
    n_pools = len(overage_coeff)
    start = np.r_[start, start[-1] + 1 + np.arange(n_pools)]
    index = np.r_[index, n_assign_rows + np.arange(n_pools)]
    value = np.r_[value, overage_coeff]
    return start, index, value

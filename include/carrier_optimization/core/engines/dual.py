"""The Lagrangian dual of a comm group: its data, the bound oracle and the cutting-plane maximisation.

docs/architecture.md ``L(λ) = Σ_i min_p ĉ_ip(λ)`` with ``ĉ_ip = c_ip`` on a non-pooled plan and
``ĉ_ig = C_g·f_i + σ_g·m_i + λ_g·(u_i − A_g·f_i)`` on a pooled one; every ``λ ∈ Π_g [0, ρ_g]`` gives a
lower bound of the optimum. Used by the optimal engine and by the block-aware bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from include.carrier_optimization.core.cost import overage_blocks, own_cost_matrix
from include.carrier_optimization.core.domain import GroupProblem
from include.carrier_optimization.core.engines.highs import highs_status
from include.carrier_optimization.core.engines.result import STATUS_FINISHED

__all__ = ["GroupData", "prepare_group", "pool_cost", "oracle", "lagrangian_bound", "maximize_dual"]

# --------------------------------------------------------------------------- data of one group


@dataclass(frozen=True, eq=False)
class GroupData:
    """Matrices of one group used by every phase."""

    group: GroupProblem
    own: np.ndarray  # (N, P) cost without pool overage
    own_pools: np.ndarray  # (N, G) own cost on the pooled plans (contiguous: the dual's hot loop)
    pools: np.ndarray  # (G,) local plan index of each pooled plan
    pool_of_plan: np.ndarray  # (P,) pool index of a plan, -1 for non-pooled
    excess: np.ndarray  # (N, G) u_i − A_g·f_i
    rate: np.ndarray  # (G,) r_g
    block: np.ndarray  # (G,) q_g
    rho: np.ndarray  # (G,) r_g / q_g
    best_individual: np.ndarray  # (N,) min over non-pooled plans (inf when none)
    best_individual_plan: np.ndarray  # (N,) its local index (-1 when none)


def prepare_group(group: GroupProblem) -> GroupData:
    """The matrices of one group that the dual, the LP, the MILP and the local search share."""
    t = group.table
    own = own_cost_matrix(group)
    pools = np.flatnonzero(t.pooled)
    individual = np.flatnonzero(~t.pooled)
    pool_of_plan = np.full(group.n_plans, -1, dtype=np.int64)
    pool_of_plan[pools] = np.arange(len(pools))
    excess = group.usage_mb[:, None] - group.proration[:, None] * t.included_mb[None, pools]
    if individual.size:
        pick = np.argmin(own[:, individual], axis=1)
        best_individual = own[np.arange(group.n_devices), individual[pick]]
        best_individual_plan = individual[pick]
    else:
        best_individual = np.full(group.n_devices, np.inf)
        best_individual_plan = np.full(group.n_devices, -1, dtype=np.int64)
    return GroupData(
        group=group,
        own=own,
        own_pools=np.ascontiguousarray(own[:, pools]),
        pools=pools,
        pool_of_plan=pool_of_plan,
        excess=np.ascontiguousarray(excess),
        rate=t.overage_rate[pools],
        block=t.overage_block_mb[pools],
        rho=t.overage_rate[pools] / t.overage_block_mb[pools],
        best_individual=best_individual,
        best_individual_plan=best_individual_plan.astype(np.int64),
    )


def pool_cost(data: GroupData, excess_sum: npt.ArrayLike) -> np.ndarray:
    """Pool overage ``r_g·k(E_g, q_g)`` for pool excesses ``E`` (any shape ending in G)."""
    return data.rate * overage_blocks(excess_sum, data.block)


# --------------------------------------------------------------------------- the Lagrangian dual


def oracle(data: GroupData, lam: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``L(λ)``, a supergradient (pool excess of the argmin) and the argmin plan of each device."""
    if len(data.pools) == 0:
        return float(data.best_individual.sum()), np.zeros(0), data.best_individual_plan.copy()
    reduced = data.excess * lam
    reduced += data.own_pools  # own + excess·λ (addition commutes exactly)
    pick = np.argmin(reduced, axis=1)
    best_pool = np.take_along_axis(reduced, pick[:, None], axis=1).ravel()
    use_pool = best_pool <= data.best_individual
    value = float(np.where(use_pool, best_pool, data.best_individual).sum())
    chosen = np.where(use_pool, pick, -1)
    gradient = np.bincount(
        chosen[use_pool],
        weights=data.excess[use_pool, pick[use_pool]],
        minlength=len(data.pools),
    )
    plan = np.where(use_pool, data.pools[pick], data.best_individual_plan)
    return value, gradient, plan


def _lagrangian_bound_iv(group, prices):
    if not isinstance(group, GroupProblem):
        raise TypeError("`group` must be a GroupProblem")
    prices = np.ascontiguousarray(prices, dtype=np.float64)
    n_pools = int(group.table.pooled.sum())
    if prices.shape != (n_pools,) or not np.all(np.isfinite(prices)):
        raise ValueError(f"`prices` must be {n_pools} finite numbers (one per pooled plan)")
    return group, prices


def lagrangian_bound(group: GroupProblem, prices: npt.ArrayLike) -> float:
    """Lagrangian lower bound for given pool prices.

    ``L(λ) = Σ_i min_p ĉ_ip(λ)``, valid (``L(λ) <= cost`` of every assignment) for every
    ``λ_g ∈ [0, r_g/q_g]``; prices are clipped into that box.

    Parameters
    ----------
    group : GroupProblem
        The comm group.
    prices : array_like of float
        ``λ`` in $/MB, one per pooled plan in plan order.

    Returns
    -------
    float
        The bound.

    Raises
    ------
    ValueError
        When ``prices`` does not hold one finite number per pooled plan.
    """
    group, prices = _lagrangian_bound_iv(group, prices)
    data = prepare_group(group)
    return oracle(data, np.clip(prices, 0.0, data.rho))[0]


class CuttingPlaneModel:
    """``max t`` s.t. ``t <= L_k + g_k·(μ − μ_k)`` for every cut and ``μ`` in a box (warm-started HiGHS)."""

    def __init__(self, n_pools: int) -> None:
        self.n_pools = n_pools
        self.columns = np.arange(n_pools + 1, dtype=np.int32)
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
        inf = highspy.kHighsInf
        self.highs.addVars(n_pools + 1, np.r_[np.zeros(n_pools), -inf], np.r_[np.ones(n_pools), inf])
        self.highs.changeColsCost(n_pools + 1, self.columns, np.r_[np.zeros(n_pools), 1.0])

    def add_cut(self, mu: np.ndarray, value: float, gradient: np.ndarray) -> None:
        """``t − g·μ' <= L − g·μ``."""
        coefficients = np.r_[-gradient, 1.0]
        self.highs.addRow(
            -highspy.kHighsInf, float(value - gradient @ mu), len(coefficients), self.columns, coefficients
        )

    def solve(
        self, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[highspy.HighsModelStatus, np.ndarray, float]:
        """Maximise the model over the box; returns (HiGHS status, μ, model value)."""
        self.highs.changeColsBounds(self.n_pools, self.columns[:-1], lower, upper)
        self.highs.run()
        status = self.highs.getModelStatus()
        x = np.asarray(self.highs.getSolution().col_value)
        return status, x[: self.n_pools], self.highs.getInfo().objective_function_value


def maximize_dual(
    data: GroupData,
    deadline: float | None,
    options: Mapping[str, Any],
    trace: dict[str, object],
    evaluate: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]] | None = None,
    scale: np.ndarray | None = None,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Box-step cutting planes on ``μ = λ/scale ∈ [0, 1]^G``; returns the best λ, its value and argmin.

    ``evaluate(λ)`` returns (value, supergradient, argmin) of a concave function, `oracle` (the Lagrangian
    ``L``) by default; ``scale`` (ρ by default) sets the box of λ.

    The model (the minimum of the cuts) over a box around the current center proposes the next point; a
    step that realises at least a tenth of the predicted increase moves the center (and widens the box
    when it touched it), otherwise the box shrinks. When the model predicts no increase inside the box
    the box grows; the method stops when the model over the whole ``[0, 1]^G`` predicts no increase (the
    best value is then the maximum up to the tolerance) or at the iteration or time limit.
    """
    n_pools = len(data.pools)
    scale = data.rho if scale is None else scale
    if evaluate is None:
        evaluate = lambda lam: oracle(data, lam)  # noqa: E731
    center = np.full(n_pools, 0.5)
    center_value, gradient, plan = evaluate(center * scale)
    best = (center * scale, center_value, plan)
    model = CuttingPlaneModel(n_pools)
    model.add_cut(center, center_value, gradient * scale)
    evaluations = 1
    step = 0.25
    tolerance = options["dual_tolerance"]
    for _ in range(options["dual_iterations"]):
        if deadline is not None and time.perf_counter() > deadline:
            trace["dual_stopped"] = "time limit"
            break
        lower = np.maximum(center - step, 0.0)
        upper = np.minimum(center + step, 1.0)
        status, mu, model_value = model.solve(lower, upper)
        code, text = highs_status(status)
        if code != STATUS_FINISHED:
            trace["dual_stopped"] = f"cutting-plane LP: {text}"
            trace["dual_failure"] = (code, text)
            break
        mu = np.clip(mu, 0.0, 1.0)
        predicted = model_value - center_value
        if predicted <= tolerance * max(1.0, abs(center_value)):
            if step >= 1.0:  # the model over the whole box proves optimality
                trace["dual_stopped"] = "converged"
                break
            step = min(1.0, 4 * step)  # optimal inside the box only: look wider
            continue
        value, gradient, plan = evaluate(mu * scale)
        evaluations += 1
        model.add_cut(mu, value, gradient * scale)
        if value > best[1]:
            best = (mu * scale, value, plan)
        if value - center_value >= 0.1 * predicted:  # serious step
            touched = np.any((np.abs(mu - lower) < 1e-12) & (lower > 0)) or np.any(
                (np.abs(mu - upper) < 1e-12) & (upper < 1)
            )
            center, center_value = mu, value
            if touched:
                step = min(1.0, 2 * step)
        else:  # null step: the cut improves the model; look closer
            step = max(1e-6, 0.5 * step)
    trace["dual_iterations"] = evaluations
    return best

"""The one cost model (docs/architecture.md): overage blocks, per-device cost matrices, the invoice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from include.carrier_optimization.core.domain import GroupProblem
from include.carrier_optimization.core.validation import InvalidInputError, offenders

__all__ = [
    "BLOCK_TOLERANCE",
    "PlanCost",
    "CostBreakdown",
    "overage_blocks",
    "overage_matrix",
    "own_cost_matrix",
    "evaluate",
    "largest_remainder_cents",
]

#: Overage blocks are ``ceil(excess / q - BLOCK_TOLERANCE)``, so float noise never bills an extra block.
BLOCK_TOLERANCE = 1e-9


def _overage_blocks_iv(excess_mb, block_mb):
    excess = np.asarray(excess_mb, dtype=np.float64)
    block = np.asarray(block_mb, dtype=np.float64)
    if not np.all(block > 0):
        raise ValueError("`block_mb` must be > 0")
    return excess, block


def overage_blocks(excess_mb: npt.ArrayLike, block_mb: npt.ArrayLike) -> np.ndarray:
    """Whole overage blocks: ``k = ceil(max(0, x) / q - 1e-9)``, never below 0.

    Parameters
    ----------
    excess_mb : array_like of float
        Usage above the allowance ``x`` (MB), may be negative.
    block_mb : array_like of float
        Block size ``q`` (MB), > 0.

    Returns
    -------
    ndarray of float64
        Number of blocks billed.

    Examples
    --------
    >>> overage_blocks([-1.0, 0.0, 1.0, 10.0, 10.5], 10.0)
    array([0., 0., 1., 1., 2.])
    """
    excess, block = _overage_blocks_iv(excess_mb, block_mb)
    return np.maximum(np.ceil(np.maximum(excess, 0.0) / block - BLOCK_TOLERANCE), 0.0)


def _group_iv(group, name: str = "group") -> GroupProblem:
    if not isinstance(group, GroupProblem):
        raise TypeError(f"`{name}` must be a GroupProblem")
    return group


_overage_matrix_iv = _own_cost_matrix_iv = _group_iv


def overage_matrix(group: GroupProblem) -> np.ndarray:
    """Per-device overage of each device on each non-pooled plan (0 in the columns of pooled plans).

    ``o_ip = [p not pooled]·r_p·k(u_i − A_p·f_i, q_p)`` with ``k`` of `overage_blocks`.

    Parameters
    ----------
    group : GroupProblem
        The group.

    Returns
    -------
    ndarray of float64, shape (n_devices, n_plans)
        C-contiguous matrix.
    """
    group = _overage_matrix_iv(group)
    t = group.table
    overage = np.zeros((group.n_devices, group.n_plans))
    individual = np.flatnonzero(~t.pooled)
    if individual.size:
        excess = group.usage_mb[:, None] - group.proration[:, None] * t.included_mb[None, individual]
        blocks = overage_blocks(excess, t.overage_block_mb[individual])
        overage[:, individual] = t.overage_rate[individual] * blocks
    return overage


def own_cost_matrix(group: GroupProblem) -> np.ndarray:
    """Cost of each device on each plan that does not depend on other devices.

    ``c_ip = C_p·f_i + σ_p·m_i + o_ip`` with ``o_ip`` of `overage_matrix`: the pool overage of a pooled
    plan is left out (it depends on the whole pool).

    Parameters
    ----------
    group : GroupProblem
        The group.

    Returns
    -------
    ndarray of float64, shape (n_devices, n_plans)
        C-contiguous matrix of per-device costs.
    """
    group = _own_cost_matrix_iv(group)
    t = group.table
    cost = overage_matrix(group)
    cost += group.proration[:, None] * t.monthly_charge[None, :]
    if np.any(t.sms_rate != 0):
        cost += group.sms[:, None] * t.sms_rate[None, :]
    return cost


@dataclass(frozen=True)
class PlanCost:
    """Invoice line of one plan of a group (for a pooled plan: its pool)."""

    plan_id: int
    code: str
    pooled: bool
    devices: int
    usage_mb: float
    allowance_mb: float
    overage_blocks: float
    fixed: float
    overage: float
    sms: float

    @property
    def total(self) -> float:
        """Fixed + overage + SMS of the plan."""
        return self.fixed + self.overage + self.sms


@dataclass(frozen=True, eq=False)
class CostBreakdown:
    """Invoice of one group's assignment: per device, per plan (pool) and in total.

    Attributes
    ----------
    fixed, overage, sms : ndarray of float64
        Per device; a pooled plan's overage is attributed as pool overage / pool SIM count.
    plans : tuple of PlanCost
        One line per plan of the group, in the group's plan order (unused plans have zeros).
    total_fixed, total_overage, total_sms, total : float
        Totals; ``total_overage`` sums the pool and per-device overages exactly (not the attributions).
    """

    fixed: np.ndarray
    overage: np.ndarray
    sms: np.ndarray
    plans: tuple[PlanCost, ...]
    total_fixed: float
    total_overage: float
    total_sms: float

    @property
    def total(self) -> float:
        """Σ fixed + Σ overage + Σ SMS."""
        return self.total_fixed + self.total_overage + self.total_sms

    @property
    def device_total(self) -> np.ndarray:
        """Per-device cost: fixed + overage (attributed) + SMS."""
        return self.fixed + self.overage + self.sms

    def device_cents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-device fixed, overage and SMS in whole cents that add up to the invoice to the cent.

        Each part is rounded by `largest_remainder_cents` to its rounded total; the cent that rounding the
        parts separately may leave (``round(total) − Σ round(parts)``) goes to the overage (the pooled
        overage shares), or to the fixed charges when there is no overage. So ``Σ fixed + overage + SMS``
        over the devices is ``round(total · 100)`` exactly.
        """
        total = int(round(self.total * 100))
        fixed_target, sms_target = int(round(self.total_fixed * 100)), int(round(self.total_sms * 100))
        overage_target = total - fixed_target - sms_target
        if self.total_overage <= 0:
            fixed_target, overage_target = fixed_target + overage_target, 0
        return (
            largest_remainder_cents(self.fixed, fixed_target),
            largest_remainder_cents(self.overage, overage_target),
            largest_remainder_cents(self.sms, sms_target),
        )


def largest_remainder_cents(amounts: npt.ArrayLike, target_cents: int) -> np.ndarray:
    """Round amounts in $ to whole cents that sum to ``target_cents`` (largest-remainder method).

    Every amount gets its cents rounded down; the cents still missing go one each to the amounts with
    the largest remainders (ties: the first device), or, when the target is below the floors, are taken
    from the largest amounts. Deterministic; each result is within one cent of its amount when the
    target is the rounded sum.

    Examples
    --------
    >>> largest_remainder_cents([10 / 3, 10 / 3, 10 / 3], 1000).tolist()
    [334, 333, 333]
    """
    values = np.asarray(amounts, dtype=np.float64) * 100.0
    cents = np.floor(values + 1e-6).astype(np.int64)
    missing = int(target_cents) - int(cents.sum())
    if values.size == 0 or missing == 0:
        return cents
    if missing > 0:
        order = np.argsort(-(values - cents), kind="stable")
    else:
        order = np.argsort(-values, kind="stable")
    rounds, extra = divmod(abs(missing), values.size)
    step = 1 if missing > 0 else -1
    cents += step * rounds
    cents[order[:extra]] += step
    return cents


def _evaluate_iv(group, assignment):
    group = _group_iv(group)
    a = np.asarray(assignment)
    if a.shape != (group.n_devices,):
        raise ValueError(f"`assignment` must have shape ({group.n_devices},); got {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError("`assignment` must hold integer plan indices")
    a = np.ascontiguousarray(a, dtype=np.int64)
    bad = (a < 0) | (a >= group.n_plans)
    if np.any(bad):
        raise InvalidInputError(
            offenders(
                "assignment",
                f"plan index must be in [0, {group.n_plans})",
                "device_id",
                group.device_ids[bad],
                group.n_devices,
            )
        )
    return group, a


def evaluate(group: GroupProblem, assignment: npt.ArrayLike) -> CostBreakdown:
    """Invoice of an assignment of one comm group (docs/architecture.md).

    For device ``i`` on plan ``p``: fixed ``C_p·f_i``, allowance ``A_p·f_i``, SMS ``σ_p·m_i``; overage
    ``r_p·k(u_i − A_p·f_i, q_p)`` on a non-pooled plan and, on a pooled plan, one pool per plan:
    ``r_p·k(Σu − Σ A_p·f, q_p)`` over the devices on ``p``, with ``k(x, q) = ceil(max(0, x)/q − 1e-9)``.
    Total = Σ fixed + Σ overage + Σ SMS.

    Parameters
    ----------
    group : GroupProblem
        The comm group.
    assignment : array_like of int
        Local plan index per device (see `GroupProblem`).

    Returns
    -------
    CostBreakdown
        Per-device, per-plan and total amounts (float64, not rounded).

    Raises
    ------
    InvalidInputError
        When a plan index is out of range (naming the devices).

    Examples
    --------
    >>> from include.carrier_optimization.core.domain import GroupProblem, RatePlan
    >>> plan = RatePlan(1, "P", 5.0, 10.0, 2.0, 1.0, pooled=True)
    >>> g = GroupProblem("1", ("cp",), (plan,), ["a", "b"], [4.0, 18.5], [0, 0], [1, 1], [0, 0], [-1, -1])
    >>> evaluate(g, [0, 0]).total   # 10 + 2 * ceil(22.5 - 20)
    16.0
    """
    group, a = _evaluate_iv(group, assignment)
    t = group.table
    n_plans = group.n_plans
    f, u = group.proration, group.usage_mb
    fixed = t.monthly_charge[a] * f
    sms = t.sms_rate[a] * group.sms
    allowance = t.included_mb[a] * f
    pooled = t.pooled[a]

    count = np.bincount(a, minlength=n_plans)
    usage_sum = np.bincount(a, weights=u, minlength=n_plans)
    allowance_sum = np.bincount(a, weights=allowance, minlength=n_plans)
    device_blocks = np.where(pooled, 0.0, overage_blocks(u - allowance, t.overage_block_mb[a]))
    pool_blocks = np.where(t.pooled, overage_blocks(usage_sum - allowance_sum, t.overage_block_mb), 0.0)
    pool_overage = t.overage_rate * pool_blocks
    share = np.divide(pool_overage, count, out=np.zeros(n_plans), where=count > 0)
    overage = np.where(pooled, share[a], t.overage_rate[a] * device_blocks)

    blocks = np.where(t.pooled, pool_blocks, np.bincount(a, weights=device_blocks, minlength=n_plans))
    plan_overage = t.overage_rate * blocks
    return CostBreakdown(
        fixed=fixed,
        overage=overage,
        sms=sms,
        plans=_plan_lines(group, a, fixed, sms, (count, usage_sum, allowance_sum, blocks, plan_overage)),
        total_fixed=float(fixed.sum()),
        total_overage=float(plan_overage.sum()),
        total_sms=float(sms.sum()),
    )


def _plan_lines(
    group: GroupProblem,
    a: np.ndarray,
    fixed: np.ndarray,
    sms: np.ndarray,
    per_plan: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[PlanCost, ...]:
    """One invoice line per plan of the group, from the per-device fixed and SMS amounts of assignment ``a``.

    ``per_plan`` holds, per plan, the device count, usage, allowance, overage blocks and overage.
    """
    t = group.table
    n_plans = group.n_plans
    count, usage_sum, allowance_sum, blocks, plan_overage = per_plan
    plan_fixed = np.bincount(a, weights=fixed, minlength=n_plans)
    plan_sms = np.bincount(a, weights=sms, minlength=n_plans)
    return tuple(
        PlanCost(
            plan_id=int(t.plan_id[p]),
            code=group.plans[p].code,
            pooled=bool(t.pooled[p]),
            devices=int(count[p]),
            usage_mb=float(usage_sum[p]),
            allowance_mb=float(allowance_sum[p]),
            overage_blocks=float(blocks[p]),
            fixed=float(plan_fixed[p]),
            overage=float(plan_overage[p]),
            sms=float(plan_sms[p]),
        )
        for p in range(n_plans)
    )

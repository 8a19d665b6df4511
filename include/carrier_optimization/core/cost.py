"""The one cost model (docs/architecture.md): usage projection, proration and the invoice of an assignment."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from include.carrier_optimization.core.domain import GroupProblem
from include.carrier_optimization.core.validation import InvalidInputError, offenders

__all__ = [
    "BLOCK_TOLERANCE",
    "PROJECTION_MARGIN",
    "FINAL_STATUSES",
    "PlanCost",
    "CostBreakdown",
    "project_usage",
    "proration_factor",
    "days_active_in_period",
    "overage_blocks",
    "overage_matrix",
    "own_cost_matrix",
    "evaluate",
    "largest_remainder_cents",
]

LOG = logging.getLogger(__name__)

#: Overage blocks are ``ceil(excess / q - BLOCK_TOLERANCE)``, so float noise never bills an extra block.
BLOCK_TOLERANCE = 1e-9
#: Legacy safety margin of the usage projection.
PROJECTION_MARGIN = 1.01
#: SIM statuses whose usage is never projected (exact, case-sensitive, as in the legacy code).
FINAL_STATUSES = frozenset({"DEACTIVATED", "RETIRED"})


def _to_ms(value) -> np.datetime64:
    return np.datetime64(value, "ms")


def _project_usage_iv(usage_mb, period_start, period_end, now, status, usage_date):
    usage = np.ascontiguousarray(usage_mb, dtype=np.float64)
    if usage.ndim != 1:
        raise ValueError("`usage_mb` must be a one-dimensional array")
    if not np.all(np.isfinite(usage)):
        raise ValueError("`usage_mb` must hold finite numbers")
    start, end, when = _to_ms(period_start), _to_ms(period_end), _to_ms(now)
    if np.isnat(start) or np.isnat(end) or np.isnat(when):
        raise ValueError("`period_start`, `period_end` and `now` must be datetimes")
    if not end > start:
        raise ValueError("`period_end` must be after `period_start`")
    n = len(usage)
    if status is None:
        final = np.zeros(n, dtype=bool)
    else:
        status = np.asarray(status, dtype=object)
        if status.shape != (n,):
            raise ValueError(f"`status` must have shape ({n},)")
        final = np.isin(status, list(FINAL_STATUSES))
    if usage_date is None:
        dates = np.full(n, end)
    else:
        dates = np.asarray(usage_date, dtype="datetime64[ms]")
        if dates.shape != (n,):
            raise ValueError(f"`usage_date` must have shape ({n},)")
        dates = np.where(np.isnat(dates), end, dates)
    return usage, start, end, when, final, dates


def project_usage(usage_mb, *, period_start, period_end, now, status=None, usage_date=None) -> np.ndarray:
    """Project month-to-date usage to the full billing period (legacy ``ProjectDataUsage``).

    ``u' = (round(T) / round(t)) · u · 1.01`` with ``T`` the period length and ``t`` the time from the
    period start to the usage date, both in whole seconds (half to even). The usage is returned unchanged
    when the SIM is ``DEACTIVATED`` or ``RETIRED``, when ``now`` is after the period end (the period has
    ended), when the usage date is outside ``[start, end)``, or when ``t`` rounds to 0.

    Parameters
    ----------
    usage_mb : array_like of float
        Month-to-date usage (MB), one per SIM.
    period_start, period_end : datetime-like
        Billing period bounds, naive, in the billing time zone.
    now : datetime-like
        The current time in the billing time zone.
    status : array_like of str, optional
        SIM status; default: no SIM is deactivated or retired.
    usage_date : array_like of datetime-like, optional
        When each usage was read (NaT/None means the period end, which leaves the usage unchanged).

    Returns
    -------
    ndarray of float64
        Projected usage (MB), unrounded.

    Raises
    ------
    ValueError
        When an argument has the wrong shape, non-finite usage, or the period is empty.

    Examples
    --------
    >>> import datetime as dt
    >>> start, end = dt.datetime(2026, 11, 1), dt.datetime(2026, 12, 1)
    >>> project_usage([10.0], period_start=start, period_end=end, now=dt.datetime(2026, 11, 16),
    ...               usage_date=[dt.datetime(2026, 11, 16)]).round(3)
    array([20.2])
    """
    usage, start, end, when, final, dates = _project_usage_iv(
        usage_mb, period_start, period_end, now, status, usage_date
    )
    if when > end:
        return usage.copy()
    period_sec = np.round((end - start) / np.timedelta64(1, "s"))
    elapsed_sec = np.round((dates - start) / np.timedelta64(1, "s"))
    project = ~final & (dates >= start) & (dates < end) & (elapsed_sec > 0)
    projected = usage.copy()
    projected[project] = period_sec / elapsed_sec[project] * usage[project] * PROJECTION_MARGIN
    return projected


def _proration_factor_iv(days_active, days_in_period, activated_in_period):
    days = np.ascontiguousarray(days_active, dtype=np.float64)
    if days.ndim != 1:
        raise ValueError("`days_active` must be a one-dimensional array")
    if not np.all(np.isfinite(days)) or np.any(days < 0):
        raise ValueError("`days_active` must hold finite numbers >= 0")
    if not (isinstance(days_in_period, int | np.integer) and days_in_period > 0):
        raise ValueError(f"`days_in_period` must be a positive integer; got {days_in_period!r}")
    if activated_in_period is None:
        activated = days < days_in_period
    else:
        activated = np.asarray(activated_in_period, dtype=bool)
        if activated.shape != days.shape:
            raise ValueError(f"`activated_in_period` must have shape {days.shape}")
    return days, int(days_in_period), activated


def proration_factor(
    days_active, days_in_period: int, *, uses_proration: bool = True, activated_in_period=None
):
    """Proration factor of each SIM: ``f = min(d, D) / D`` if prorated and activated in the period, else 1.

    Parameters
    ----------
    days_active : array_like of float
        Days active in the billing period, ``d`` (>= 0).
    days_in_period : int
        Days of the billing period, ``D``.
    uses_proration : bool
        The service provider prorates (legacy ``UsesProration``); False gives 1 everywhere.
    activated_in_period : array_like of bool, optional
        SIM activated inside the period; default ``d < D`` (the command-line rule).

    Returns
    -------
    ndarray of float64
        ``f`` in [0, 1], scaling both the monthly charge and the included data.

    Examples
    --------
    >>> proration_factor([30, 15], 30)
    array([1. , 0.5])
    """
    days, total, activated = _proration_factor_iv(days_active, days_in_period, activated_in_period)
    if not uses_proration:
        return np.ones_like(days)
    return np.where(activated, np.minimum(days, total) / total, 1.0)


def _days_active_in_period_iv(date_activated, period_start, period_end, days_in_period):
    dates = np.asarray(date_activated, dtype="datetime64[ms]")
    if dates.ndim != 1:
        raise ValueError("`date_activated` must be a one-dimensional array")
    start, end = _to_ms(period_start), _to_ms(period_end)
    if np.isnat(start) or np.isnat(end) or not end > start:
        raise ValueError("`period_start` and `period_end` must be datetimes with end after start")
    if not (isinstance(days_in_period, int | np.integer) and days_in_period > 0):
        raise ValueError(f"`days_in_period` must be a positive integer; got {days_in_period!r}")
    return dates, start, end


def days_active_in_period(date_activated, *, period_start, period_end, days_in_period: int):
    """Legacy activation days: ``d = min(ceil(end - activated) in days, D)`` for SIMs activated inside.

    Parameters
    ----------
    date_activated : array_like of datetime-like
        Provider activation date per SIM (NaT/None: not activated in this period).
    period_start, period_end : datetime-like
        Billing period bounds (billing time zone).
    days_in_period : int
        ``D``; SIMs not activated inside the period get ``D``.

    Returns
    -------
    activated : ndarray of bool
        ``start <= activated <= end``.
    days : ndarray of int64
        Days active in the period.
    """
    dates, start, end = _days_active_in_period_iv(date_activated, period_start, period_end, days_in_period)
    activated = ~np.isnat(dates) & (dates >= start) & (dates <= end)
    span = np.ceil((end - np.where(activated, dates, end)) / np.timedelta64(1, "D"))
    days = np.where(activated, np.minimum(span, days_in_period), days_in_period).astype(np.int64)
    return activated, days


def _overage_blocks_iv(excess_mb, block_mb):
    excess = np.asarray(excess_mb, dtype=np.float64)
    block = np.asarray(block_mb, dtype=np.float64)
    if not np.all(block > 0):
        raise ValueError("`block_mb` must be > 0")
    return excess, block


def overage_blocks(excess_mb, block_mb):
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


def largest_remainder_cents(amounts, target_cents: int) -> np.ndarray:
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


def evaluate(group: GroupProblem, assignment) -> CostBreakdown:
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
    plan_fixed = np.bincount(a, weights=fixed, minlength=n_plans)
    plan_sms = np.bincount(a, weights=sms, minlength=n_plans)
    rows = tuple(
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
    return CostBreakdown(
        fixed=fixed,
        overage=overage,
        sms=sms,
        plans=rows,
        total_fixed=float(fixed.sum()),
        total_overage=float(plan_overage.sum()),
        total_sms=float(sms.sum()),
    )

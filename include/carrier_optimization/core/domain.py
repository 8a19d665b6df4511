"""Domain model of the optimization: rate plans, per-comm-group problems and the whole problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["RatePlan", "PlanTable", "GroupProblem", "SkippedGroup", "Problem"]


@dataclass(frozen=True)
class RatePlan:
    """One carrier rate plan.

    Attributes
    ----------
    plan_id : int
        Carrier rate plan id.
    code : str
        Rate plan code (display name).
    monthly_charge : float
        Fixed charge per SIM and period, ``C`` ($), prorated by ``f``.
    included_mb : float
        Included data per SIM, ``A`` (MB), prorated by ``f``.
    overage_rate : float
        Price of one overage block, ``r`` ($); must be > 0.
    overage_block_mb : float
        Size of one overage block, ``q`` (MB); must be > 0.
    pooled : bool
        The SIMs of one comm group on this plan share their allowance (one pool per plan and group).
    sms_rate : float
        Price per SMS, ``σ`` ($); 0 for carrier plans.
    """

    plan_id: int
    code: str
    monthly_charge: float
    included_mb: float
    overage_rate: float
    overage_block_mb: float
    pooled: bool
    sms_rate: float = 0.0


@dataclass(frozen=True, eq=False)
class PlanTable:
    """The plans of one group as read-only float64/bool arrays, aligned with ``GroupProblem.plans``."""

    plan_id: np.ndarray
    monthly_charge: np.ndarray
    included_mb: np.ndarray
    overage_rate: np.ndarray
    overage_block_mb: np.ndarray
    pooled: np.ndarray
    sms_rate: np.ndarray

    @classmethod
    def from_plans(cls, plans: tuple[RatePlan, ...]) -> PlanTable:
        """Build the arrays from a tuple of plans."""

        def column(name, dtype):
            values = np.array([getattr(p, name) for p in plans], dtype=dtype)
            values.setflags(write=False)
            return values

        return cls(
            plan_id=column("plan_id", np.int64),
            monthly_charge=column("monthly_charge", np.float64),
            included_mb=column("included_mb", np.float64),
            overage_rate=column("overage_rate", np.float64),
            overage_block_mb=column("overage_block_mb", np.float64),
            pooled=column("pooled", bool),
            sms_rate=column("sms_rate", np.float64),
        )


@dataclass(frozen=True, eq=False)
class GroupProblem:
    """The assignment problem of one comm group: its plans and its devices as contiguous arrays.

    Every device of the group may use every plan of the group (the group is defined by one allowed-plan
    list). An assignment of the group is an int64 array of length ``n_devices`` holding, per device, the
    position of its plan in ``plans`` (a *local plan index*, ``0 .. n_plans - 1``); ``plan_ids[a]``
    turns it into carrier plan ids.

    Attributes
    ----------
    key : str
        The allowed-plan list that defines the group (plan ids joined by ``,``).
    comm_plans : tuple of str
        Names of the comm plans in the group.
    plans : tuple of RatePlan
        The group's candidate plans (known plans of the list, first occurrence order).
    device_ids : ndarray of object
        Device ids (str), one per device.
    usage_mb : ndarray of float64
        Projected usage ``u`` (MB) to optimize for.
    sms : ndarray of float64
        SMS count ``m`` of the period.
    proration : ndarray of float64
        Proration factor ``f`` in [0, 1] (1 when not prorated).
    comm_plan_index : ndarray of int64
        Position of each device's comm plan in ``comm_plans``.
    current_plan : ndarray of int64
        Local index of each device's current plan, -1 when unknown or not in the group.
    """

    key: str
    comm_plans: tuple[str, ...]
    plans: tuple[RatePlan, ...]
    device_ids: np.ndarray
    usage_mb: np.ndarray
    sms: np.ndarray
    proration: np.ndarray
    comm_plan_index: np.ndarray
    current_plan: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.device_ids)
        for name, dtype in (
            ("usage_mb", np.float64),
            ("sms", np.float64),
            ("proration", np.float64),
            ("comm_plan_index", np.int64),
            ("current_plan", np.int64),
        ):
            values = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            if values.shape != (n,):
                raise ValueError(f"`{name}` must have shape ({n},); got {values.shape}")
            values.setflags(write=False)
            object.__setattr__(self, name, values)
        ids = np.asarray(self.device_ids, dtype=object)
        ids.setflags(write=False)
        object.__setattr__(self, "device_ids", ids)
        object.__setattr__(self, "plans", tuple(self.plans))
        object.__setattr__(self, "comm_plans", tuple(self.comm_plans))

    @property
    def n_devices(self) -> int:
        """Number of devices N."""
        return len(self.device_ids)

    @property
    def n_plans(self) -> int:
        """Number of candidate plans P."""
        return len(self.plans)

    @cached_property
    def table(self) -> PlanTable:
        """The plans as arrays (built once)."""
        return PlanTable.from_plans(self.plans)

    @property
    def plan_ids(self) -> np.ndarray:
        """Carrier plan id of each local plan index."""
        return self.table.plan_id


@dataclass(frozen=True)
class SkippedGroup:
    """A comm group left out of the optimization, with the reason (e.g. too many plans)."""

    key: str
    comm_plans: tuple[str, ...]
    n_plans: int
    n_devices: int
    reason: str


@dataclass(frozen=True, eq=False)
class Problem:
    """The whole optimization problem: independent comm groups plus the groups that were skipped.

    Attributes
    ----------
    groups : tuple of GroupProblem
        The groups to optimize; pools never span two groups, so groups are solved independently.
    skipped : tuple of SkippedGroup
        Groups reported and not optimized (over the plan limit).
    days_in_period : int
        Days ``D`` of the billing period.
    """

    groups: tuple[GroupProblem, ...]
    skipped: tuple[SkippedGroup, ...] = field(default=())
    days_in_period: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "skipped", tuple(self.skipped))

    @property
    def n_devices(self) -> int:
        """Number of devices over all optimized groups."""
        return sum(g.n_devices for g in self.groups)

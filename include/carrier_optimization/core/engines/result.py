"""The one result type of every engine (`EngineResult`), its status codes and the gap formula."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from include.carrier_optimization.core.domain import Problem

__all__ = [
    "STATUS_FINISHED",
    "STATUS_LIMIT",
    "STATUS_INFEASIBLE",
    "STATUS_BACKEND",
    "STATUS_MESSAGES",
    "PROVEN_GAP",
    "GroupResult",
    "EngineResult",
    "compute_gap",
    "infeasible_result",
    "proven_from_stored",
]

STATUS_FINISHED = 0
STATUS_LIMIT = 1
STATUS_INFEASIBLE = 2
STATUS_BACKEND = 3

#: Standard texts of the status codes; messages start with these.
STATUS_MESSAGES = MappingProxyType(
    {
        STATUS_FINISHED: "Optimization finished within tolerance.",
        STATUS_LIMIT: "Stopped at the time limit; the best assignment found so far is kept.",
        STATUS_INFEASIBLE: "Infeasible input; no assignment.",
        STATUS_BACKEND: "The LP backend failed; the assignment is the fallback of the engine.",
    }
)

#: A result whose gap to its certified lower bound is at most this is reported "proven optimal".
PROVEN_GAP = 1e-9


def compute_gap(cost: float | None, lower_bound: float | None) -> float | None:
    """Relative optimality gap: ``gap = max(0, cost − lower_bound) / max(|cost|, 1e-12)``.

    The assignment is at most ``gap · cost`` more expensive than an optimal one. ``None`` when either
    value is missing.

    Examples
    --------
    >>> compute_gap(101.0, 100.0)
    0.009900990099009901
    """
    if cost is None or lower_bound is None:
        return None
    return max(0.0, cost - lower_bound) / max(abs(cost), 1e-12)


def proven_from_stored(cost: float | None, lower_bound: float | None) -> bool:
    """Whether stored (rounded) figures show a proven optimum: the bound reaches the cost to the cent.

    The engines store a proven group's bound equal to its cost, so this reads `GroupResult.proven` back
    from a database row (money is rounded there).

    Examples
    --------
    >>> proven_from_stored(1234.5678, 1234.5678), proven_from_stored(100.0, 99.98)
    (True, False)
    """
    return cost is not None and lower_bound is not None and cost - lower_bound < 0.005


@dataclass(frozen=True, eq=False)
class GroupResult:
    """Result of one comm group.

    Attributes
    ----------
    key : str
        The group's allowed-plan list.
    engine : str
        Engine that produced the assignment (for ``best``: the winner of the group).
    status : int
        Status of the group (codes of `EngineResult`).
    assignment : ndarray of int64
        Local plan index per device (positions in ``GroupProblem.plans``).
    cost : float
        Cost of the assignment by the cost model.
    lower_bound : float or None
        Lagrangian lower bound (optimal engine); None for the legacy engine.
    gap : float or None
        `compute_gap` of cost and lower bound.
    seconds : float
        Wall time spent on the group.
    changes : int
        Devices with a known current plan that are assigned another plan.
    pool_prices : mapping of int to float
        Price of data per pooled plan id ($/MB, the Lagrange multiplier λ); empty for legacy.
    details : mapping
        Engine-specific figures (legacy: sequences evaluated, best sequence and strategy; optimal:
        dual iterations, LP size, local-search moves).
    """

    key: str
    engine: str
    status: int
    assignment: np.ndarray
    cost: float
    lower_bound: float | None
    gap: float | None
    seconds: float
    changes: int
    pool_prices: Mapping[int, float] = field(default_factory=dict)
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def proven(self) -> bool:
        """True when the lower bound certifies the cost as optimal (``gap <= PROVEN_GAP``)."""
        return self.gap is not None and self.gap <= PROVEN_GAP


@dataclass(frozen=True, eq=False)
class EngineResult:
    """What every engine returns.

    Attributes
    ----------
    status : int
        0 finished within tolerance; 1 stopped at a limit with the best-so-far kept; 2 infeasible input
        (nothing assigned); 3 backend (HiGHS) failure, the assignment is the engine's fallback.
    success : bool
        ``status == 0``.
    message : str
        Starts with the text of `STATUS_MESSAGES`; HiGHS codes are kept in it.
    engine : str
        ``"legacy"``, ``"optimal"`` or ``"best"``.
    assignment : tuple of ndarray of int64, or None
        Per group (order of ``Problem.groups``) the local plan index of each device; None for status 2.
    cost : float or None
        Total cost over all groups; None for status 2.
    lower_bound : float or None
        Sum of the groups' lower bounds; None for status 2 and for the legacy engine.
    gap : float or None
        ``compute_gap(cost, lower_bound)``; None when ``lower_bound`` is None.
    groups : tuple of GroupResult
        Per-group details (empty for status 2).
    seconds : float
        Wall time of the call.
    changes : int or None
        Total plan changes over the groups; None for status 2.
    """

    status: int
    success: bool
    message: str
    engine: str
    assignment: tuple[np.ndarray, ...] | None
    cost: float | None
    lower_bound: float | None
    gap: float | None
    groups: tuple[GroupResult, ...]
    seconds: float
    changes: int | None

    @property
    def proven(self) -> bool:
        """True when every group is proven optimal (see `GroupResult.proven`)."""
        return self.lower_bound is not None and all(g.proven for g in self.groups)

    @property
    def pool_prices(self) -> tuple[Mapping[int, float], ...]:
        """Price of data ($/MB) per pooled plan id, one mapping per group."""
        return tuple(g.pool_prices for g in self.groups)

    @classmethod
    def from_groups(
        cls, engine: str, groups: tuple[GroupResult, ...], seconds: float, message: str = ""
    ) -> EngineResult:
        """Combine group results: the worst group status wins, costs and bounds add up."""
        status = max((g.status for g in groups), default=STATUS_FINISHED)
        cost = float(sum(g.cost for g in groups))
        bounds = [g.lower_bound for g in groups]
        lower_bound = float(sum(bounds)) if groups and all(b is not None for b in bounds) else None
        if not groups:
            lower_bound = 0.0 if engine != "legacy" else None
        text = STATUS_MESSAGES[status] + (f" {message}" if message else "")
        return cls(
            status=status,
            success=status == STATUS_FINISHED,
            message=text,
            engine=engine,
            assignment=tuple(g.assignment for g in groups),
            cost=cost,
            lower_bound=lower_bound,
            gap=compute_gap(cost, lower_bound),
            groups=groups,
            seconds=seconds,
            changes=int(sum(g.changes for g in groups)),
        )


def infeasible_result(engine: str, message: str, seconds: float) -> EngineResult:
    """Status-2 result: no assignment, the reason in the message."""
    return EngineResult(
        status=STATUS_INFEASIBLE,
        success=False,
        message=f"{STATUS_MESSAGES[STATUS_INFEASIBLE]} {message}",
        engine=engine,
        assignment=None,
        cost=None,
        lower_bound=None,
        gap=None,
        groups=(),
        seconds=seconds,
        changes=None,
    )


def count_changes(current_plan: np.ndarray, assignment: np.ndarray) -> int:
    """Devices with a known current plan (``>= 0``) assigned another plan."""
    return int(np.count_nonzero((current_plan >= 0) & (current_plan != assignment)))


def check_solve_arguments(
    problem: Problem, time_limit: float | None, options: Mapping | None, defaults: Mapping[str, object]
) -> dict[str, object]:
    """The checks every ``solve_<engine>`` shares; returns ``defaults`` updated with ``options``.

    Raises
    ------
    TypeError
        When ``problem`` is not a `Problem`.
    ValueError
        For a ``time_limit`` that is not a number > 0 or None, or option keys not in ``defaults`` (listed
        with the accepted keys). Option values are the engine's to check.
    """
    if not isinstance(problem, Problem):
        raise TypeError("`problem` must be a Problem")
    if time_limit is not None and not (isinstance(time_limit, int | float) and time_limit > 0):
        raise ValueError(f"`time_limit` must be a number > 0 or None; got {time_limit!r}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"`options`: unknown keys {unknown}; accepted keys are {sorted(defaults)}")
    return {**defaults, **options}

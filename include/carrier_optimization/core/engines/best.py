"""The `best` engine (legacy and optimal, the cheaper per comm group wins) and the `solve` dispatcher."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from include.carrier_optimization.core.domain import Problem
from include.carrier_optimization.core.engines.legacy import solve_legacy
from include.carrier_optimization.core.engines.optimal import solve_optimal
from include.carrier_optimization.core.engines.result import STATUS_INFEASIBLE, EngineResult, compute_gap

__all__ = ["ENGINES", "solve_best", "solve"]

LOG = logging.getLogger(__name__)

#: Share of the time limit given to the optimal engine; legacy gets the rest.
OPTIMAL_SHARE = 2 / 3


def _solve_best_iv(problem, time_limit, options):
    if not isinstance(problem, Problem):
        raise TypeError("`problem` must be a Problem")
    if time_limit is not None and not (isinstance(time_limit, int | float) and time_limit > 0):
        raise ValueError(f"`time_limit` must be a number > 0 or None; got {time_limit!r}")
    options = dict(options or {})
    unknown = sorted(set(options) - {"legacy", "optimal"})
    if unknown:
        raise ValueError(f"`options`: unknown keys {unknown}; accepted keys are ['legacy', 'optimal']")
    return problem, time_limit, options


def solve_best(
    problem: Problem,
    *,
    time_limit: float | None = None,
    seed: int | None = None,
    options: Mapping | None = None,
) -> EngineResult:
    """Run the optimal and the legacy engine; per comm group the cheaper assignment wins.

    ``cost_g = min(cost_g(optimal), cost_g(legacy))`` (ties go to the one with fewer plan changes, then
    optimal), so the result is never worse than legacy; the lower bound is the optimal engine's.

    Parameters
    ----------
    problem : Problem
        The comm groups.
    time_limit : float, optional
        Seconds for both engines: two thirds for optimal, the rest for legacy.
    seed : int, optional
        Passed on to both engines.
    options : mapping, optional
        ``{"optimal": {...}, "legacy": {...}}``: options of each engine.

    Returns
    -------
    EngineResult
        ``engine="best"``; each group's ``engine`` names the winner. Status: the worse of the two engines'
        statuses for the winning groups (2 when the input is invalid).

    Raises
    ------
    ValueError
        For a bad ``time_limit`` or unknown options (also inside the engines' options).
    """
    problem, time_limit, options = _solve_best_iv(problem, time_limit, options)
    began = time.perf_counter()
    optimal_limit = None if time_limit is None else time_limit * OPTIMAL_SHARE
    optimal = solve_optimal(problem, time_limit=optimal_limit, seed=seed, options=options.get("optimal"))
    if optimal.status == STATUS_INFEASIBLE:
        return replace(optimal, engine="best", seconds=time.perf_counter() - began)
    legacy_limit = None if time_limit is None else max(time_limit - (time.perf_counter() - began), 1e-3)
    legacy = solve_legacy(problem, time_limit=legacy_limit, seed=seed, options=options.get("legacy"))
    groups = []
    for opt, leg in zip(optimal.groups, legacy.groups, strict=True):
        winner = opt if (opt.cost, opt.changes, 0) <= (leg.cost, leg.changes, 1) else leg
        groups.append(
            replace(
                winner,
                lower_bound=opt.lower_bound,
                gap=compute_gap(winner.cost, opt.lower_bound),
                pool_prices=opt.pool_prices,
                seconds=opt.seconds + leg.seconds,
                details={**winner.details, "optimal_cost": opt.cost, "legacy_cost": leg.cost},
            )
        )
        LOG.info(
            "Best engine: group %s won by %s (optimal %.2f, legacy %.2f)",
            opt.key,
            winner.engine,
            opt.cost,
            leg.cost,
        )
    message = "; ".join(m for m in (_detail(optimal), _detail(legacy)) if m)
    return EngineResult.from_groups("best", tuple(groups), time.perf_counter() - began, message)


def _detail(result: EngineResult) -> str:
    """The engine-specific part of a message (after the standard status text)."""
    if result.status == 0:
        return ""
    return f"{result.engine}: {result.message}"


ENGINES = {"legacy": solve_legacy, "optimal": solve_optimal, "best": solve_best}


def solve(problem: Problem, engine: str = "best", **kwargs: Any) -> EngineResult:
    """Dispatch to ``solve_<engine>(problem, **kwargs)``.

    Parameters
    ----------
    problem : Problem
        The comm groups.
    engine : {"best", "optimal", "legacy"}
        Engine name.
    **kwargs
        ``time_limit``, ``seed``, ``options`` of the engine.

    Returns
    -------
    EngineResult
        The engine's result.

    Raises
    ------
    ValueError
        For an unknown engine name.
    """
    engine = _solve_iv(engine)
    return ENGINES[engine](problem, **kwargs)


def _solve_iv(engine):
    if engine not in ENGINES:
        raise ValueError(f"`engine` must be one of {sorted(ENGINES)}; got {engine!r}")
    return engine

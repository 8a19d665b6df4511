"""Optimization engines: legacy (parity), optimal (Lagrangian + LP) and best (the cheaper of both)."""

from __future__ import annotations

from include.carrier_optimization.core.engines.best import ENGINES, solve, solve_best
from include.carrier_optimization.core.engines.legacy import solve_legacy
from include.carrier_optimization.core.engines.optimal import solve_optimal
from include.carrier_optimization.core.engines.result import EngineResult, GroupResult, compute_gap

__all__ = [
    "ENGINES",
    "EngineResult",
    "GroupResult",
    "compute_gap",
    "solve",
    "solve_best",
    "solve_legacy",
    "solve_optimal",
]

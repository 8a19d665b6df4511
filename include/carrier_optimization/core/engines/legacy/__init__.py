"""The legacy parity engine (docs/architecture.md, Engines): its public API, one import for every caller.

``sequences`` (break-even thresholds, the capped permutations), ``evaluation`` (the prefix-sum kernel of
the four strategies), ``solve`` (base assignment, record-if-better per comm group).
"""

from __future__ import annotations

from include.carrier_optimization.core.engines.legacy.evaluation import (
    STRATEGIES,
    Candidate,
    LegacyTables,
    Strategy,
    evaluate_sequences,
    prepare_tables,
)
from include.carrier_optimization.core.engines.legacy.sequences import (
    DEFAULT_SEQUENCE_CAP,
    canonical_plan_order,
    iter_sequences,
    max_avg_usage,
    sequence_at,
    sequence_count,
)
from include.carrier_optimization.core.engines.legacy.solve import base_assignment, solve_legacy

__all__ = [
    "DEFAULT_SEQUENCE_CAP",
    "STRATEGIES",
    "Strategy",
    "Candidate",
    "LegacyTables",
    "max_avg_usage",
    "canonical_plan_order",
    "sequence_count",
    "sequence_at",
    "iter_sequences",
    "base_assignment",
    "prepare_tables",
    "evaluate_sequences",
    "solve_legacy",
]

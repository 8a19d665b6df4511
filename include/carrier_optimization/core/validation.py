"""Input validation: the error type and the checks that name the offending rows."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from include.carrier_optimization.core.domain import RatePlan

__all__ = ["InvalidInputError", "offenders", "plan_errors", "validate_plans", "MAX_SHOWN"]

LOG = logging.getLogger(__name__)

MAX_SHOWN = 10


class InvalidInputError(ValueError):
    """Input data that breaks a rule; the message names the argument, the rule and the offending ids."""


def offenders(argument: str, rule: str, label: str, ids: Iterable[object], total: int) -> str:
    """Format one rule violation: argument, rule, the first ten offending ids and a count.

    Parameters
    ----------
    argument : str
        Name of the offending argument or file (shown in backticks).
    rule : str
        The rule that is broken, e.g. ``"overage_block_mb must be > 0"``.
    label : str
        Name of the id column, e.g. ``"plan_id"``.
    ids : iterable
        Ids of the offending rows, in input order.
    total : int
        Number of rows checked.

    Returns
    -------
    str
        E.g. ``"`plans`: overage_block_mb must be > 0; plan_id 17, 42 (2 of 310)"``.

    Examples
    --------
    >>> offenders("plans", "overage_rate must be > 0", "plan_id", [3], 5)
    '`plans`: overage_rate must be > 0; plan_id 3 (1 of 5)'
    """
    ids = list(ids)
    shown = ", ".join(str(i) for i in ids[:MAX_SHOWN])
    if len(ids) > MAX_SHOWN:
        shown += ", ..."
    return f"`{argument}`: {rule}; {label} {shown} ({len(ids)} of {total})"


def mask_errors(
    argument: str, label: str, ids: np.ndarray, checks: Sequence[tuple[str, np.ndarray]]
) -> list[str]:
    """Messages for every ``(rule, bad_mask)`` pair whose mask flags at least one row."""
    return [offenders(argument, rule, label, ids[bad], len(ids)) for rule, bad in checks if np.any(bad)]


def plan_errors(plans: Sequence[RatePlan], argument: str = "plans") -> list[str]:
    """Rule violations of a plan list (empty when valid).

    Rules: ``overage_rate > 0`` and ``overage_block_mb > 0`` (the legacy rejection of invalid overage),
    finite non-negative ``monthly_charge``, ``included_mb`` and ``sms_rate``, unique ``plan_id``.

    Parameters
    ----------
    plans : sequence of RatePlan
        The plans to check.
    argument : str
        Name used in the messages.

    Returns
    -------
    list of str
        One message per broken rule, naming the offending plan ids.
    """
    if not plans:
        return []
    ids = np.array([p.plan_id for p in plans], dtype=object)

    def column(name):
        return np.array([getattr(p, name) for p in plans], dtype=np.float64)

    rate, block = column("overage_rate"), column("overage_block_mb")
    unique, counts = np.unique(ids.astype(np.int64), return_counts=True)
    duplicated = np.isin(ids.astype(np.int64), unique[counts > 1])
    checks = [
        ("overage_rate must be > 0", ~(rate > 0) | ~np.isfinite(rate)),
        ("overage_block_mb must be > 0", ~(block > 0) | ~np.isfinite(block)),
        ("plan_id must be unique", duplicated),
    ]
    for name in ("monthly_charge", "included_mb", "sms_rate"):
        values = column(name)
        checks.append((f"{name} must be a finite number >= 0", ~(values >= 0) | ~np.isfinite(values)))
    return mask_errors(argument, "plan_id", ids, checks)


def validate_plans(plans: Sequence[RatePlan], argument: str = "plans") -> None:
    """Raise `InvalidInputError` when any plan breaks a rule of `plan_errors`.

    Raises
    ------
    InvalidInputError
        With one line per broken rule, e.g. "`plans`: overage_block_mb must be > 0; plan_id 17 (1 of 3)".
    """
    errors = plan_errors(plans, argument)
    if errors:
        raise InvalidInputError("\n".join(errors))

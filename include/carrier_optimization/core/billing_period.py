"""Per-SIM billing period inputs of the cost model: usage projected to the period, days active, proration.

docs/architecture.md (Cost model): month-to-date usage scaled to the full period × 1.01 unless the SIM is
deactivated or the period has ended; proration ``f = d/D`` when the provider prorates and the SIM was
activated inside the period. `cost.evaluate` takes these as the group's ``usage_mb`` and ``proration``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROJECTION_MARGIN",
    "FINAL_STATUSES",
    "project_usage",
    "proration_factor",
    "days_active_in_period",
]

#: A datetime-like value: a datetime, a numpy datetime64 or an ISO string.
Moment = dt.datetime | np.datetime64 | str
#: Legacy safety margin of the usage projection.
PROJECTION_MARGIN = 1.01
#: SIM statuses whose usage is never projected (exact, case-sensitive, as in the legacy code).
FINAL_STATUSES = frozenset({"DEACTIVATED", "RETIRED"})


def _to_ms(value: Moment) -> np.datetime64:
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


def project_usage(
    usage_mb: npt.ArrayLike,
    *,
    period_start: Moment,
    period_end: Moment,
    now: Moment,
    status: npt.ArrayLike | None = None,
    usage_date: npt.ArrayLike | None = None,
) -> np.ndarray:
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
    days_active: npt.ArrayLike,
    days_in_period: int,
    *,
    uses_proration: bool = True,
    activated_in_period: npt.ArrayLike | None = None,
) -> np.ndarray:
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


def days_active_in_period(
    date_activated: npt.ArrayLike, *, period_start: Moment, period_end: Moment, days_in_period: int
) -> tuple[np.ndarray, np.ndarray]:
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

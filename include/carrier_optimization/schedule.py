"""The legacy "is it time to run" window of scheduled carrier optimizations (legacy-system.md §2.1)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

WINDOW_DAYS = 8


def local_billing_time(now_utc: dt.datetime, time_zone: str) -> dt.datetime:
    """``now_utc`` (aware, or naive UTC) as naive local billing time, the form billing periods use."""
    if now_utc.tzinfo is None:
        now_utc = now_utc.replace(tzinfo=dt.UTC)
    return now_utc.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)


def is_time_to_run(period_end: dt.datetime, now_local: dt.datetime, start_hour: int | None) -> bool:
    """Whether a scheduled tick optimizes: the last days of the period, from the provider's start hour.

    Runs when ``(days_until_end < 8 and today <= end day) or (today == end day)``, and the local hour
    is at least ``start_hour``. Decision (the legacy code throws on a missing start hour inside the
    window): a provider without a start hour is never scheduled; it runs on request only.
    """
    if start_hour is None:
        return False
    days_until_end = (period_end - now_local).total_seconds() / 86400
    in_window = (days_until_end < WINDOW_DAYS and now_local.date() <= period_end.date()) or (
        now_local.date() == period_end.date()
    )
    return in_window and now_local.hour >= start_hour

"""The legacy "is it time to run" window (docs/architecture.md) and local billing time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from include.carrier_optimization.pipeline.schedule import WINDOW_DAYS, is_time_to_run, local_billing_time

CHICAGO = "America/Chicago"
# A billing period ending at the last second of March (local billing time, naive).
END = dt.datetime(2024, 3, 31, 23, 59, 59)
START_HOUR = 6


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, minute, second)


def legacy_is_time_to_run(period_end: dt.datetime, now_local: dt.datetime, start_hour: int) -> bool:
    """§2.1 written out independently: fractional days, dates compared, then the hour."""
    days = (period_end - now_local) / dt.timedelta(days=1)
    window = (days < 8 and now_local.date() <= period_end.date()) or now_local.date() == period_end.date()
    return window and now_local.hour >= start_hour


class TestIsTimeToRun:
    def test_window_is_eight_days(self):
        assert WINDOW_DAYS == 8

    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            pytest.param(at(20, 12), False, id="11-days-before-end"),
            pytest.param(at(23, 23, 59, 59), False, id="exactly-8-days-before-end"),
            pytest.param(at(24, 0, 0, 0), False, id="just-inside-but-before-start-hour"),
            pytest.param(at(24, 6, 0, 0), True, id="first-day-of-window-at-start-hour"),
            pytest.param(at(27, 12), True, id="middle-of-window"),
            pytest.param(at(31, 6), True, id="end-day-at-start-hour"),
            pytest.param(at(31, 23, 59, 59), True, id="end-instant"),
            pytest.param(at(1, 6, month=4), False, id="day-after-end"),
            pytest.param(at(15, 12, month=4), False, id="weeks-after-end"),
        ],
    )
    def test_window(self, now, expected):
        assert is_time_to_run(END, now, START_HOUR) is expected
        assert legacy_is_time_to_run(END, now, START_HOUR) is expected

    def test_every_hour_of_the_month_matches_the_legacy_rule(self):
        now = dt.datetime(2024, 3, 1)
        fired = []
        while now < dt.datetime(2024, 4, 3):
            result = is_time_to_run(END, now, START_HOUR)
            assert result is legacy_is_time_to_run(END, now, START_HOUR), now
            if result:
                fired.append(now)
            now += dt.timedelta(hours=1)
        # 8 days (24th..31st) x 18 hours (06..23)
        assert len(fired) == 8 * 18
        assert fired[0] == at(24, 6) and fired[-1] == at(31, 23)

    def test_end_day_runs_after_the_period_end_time(self):
        # A period ending at noon: the rest of the end day still counts (local.date == end.date).
        noon_end = dt.datetime(2024, 3, 31, 12, 0)
        assert is_time_to_run(noon_end, at(31, 18), START_HOUR) is True
        assert is_time_to_run(noon_end, at(1, 0, month=4), 0) is False

    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            pytest.param(at(27, 5, 59, 59), False, id="one-second-before-start-hour"),
            pytest.param(at(27, 6, 0, 0), True, id="at-start-hour"),
            pytest.param(at(27, 23, 59, 59), True, id="end-of-day"),
            pytest.param(at(27, 0, 0, 0), False, id="midnight"),
        ],
    )
    def test_start_hour_boundary(self, now, expected):
        assert is_time_to_run(END, now, START_HOUR) is expected

    def test_start_hour_zero_runs_from_midnight(self):
        assert is_time_to_run(END, at(27, 0), 0) is True

    def test_start_hour_23_runs_only_in_the_last_hour(self):
        assert is_time_to_run(END, at(27, 22, 59), 23) is False
        assert is_time_to_run(END, at(27, 23, 0), 23) is True

    @pytest.mark.parametrize(
        "now",
        [at(27, 12), at(31, 23, 59, 59), at(10, 12)],
        ids=["inside-window", "end-day", "outside-window"],
    )
    def test_no_start_hour_is_never_scheduled(self, now):
        assert is_time_to_run(END, now, None) is False


class TestLocalBillingTime:
    def test_naive_input_is_read_as_utc(self):
        assert local_billing_time(dt.datetime(2024, 1, 15, 12, 0), CHICAGO) == dt.datetime(2024, 1, 15, 6, 0)

    def test_aware_input_is_converted(self):
        now = dt.datetime(2024, 1, 15, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 11:00 UTC
        assert local_billing_time(now, CHICAGO) == dt.datetime(2024, 1, 15, 5, 0)

    def test_result_is_naive(self):
        result = local_billing_time(dt.datetime(2024, 7, 1, tzinfo=dt.UTC), CHICAGO)
        assert result.tzinfo is None

    def test_utc_zone_is_identity(self):
        now = dt.datetime(2024, 7, 1, 13, 14, 15, 16, tzinfo=dt.UTC)
        assert local_billing_time(now, "UTC") == now.replace(tzinfo=None)

    def test_conversion_crosses_the_date_line(self):
        # 03:00 UTC on April 1 is still March 31 in Chicago (CDT, UTC-5): the end day of a March period.
        local = local_billing_time(dt.datetime(2024, 4, 1, 3, 0, tzinfo=dt.UTC), CHICAGO)
        assert local == dt.datetime(2024, 3, 31, 22, 0)
        assert is_time_to_run(END, local, START_HOUR) is True

    @pytest.mark.parametrize(
        ("utc", "local"),
        [
            pytest.param(
                dt.datetime(2024, 3, 10, 7, 59), dt.datetime(2024, 3, 10, 1, 59), id="before-spring"
            ),
            pytest.param(dt.datetime(2024, 3, 10, 8, 0), dt.datetime(2024, 3, 10, 3, 0), id="after-spring"),
            pytest.param(dt.datetime(2024, 11, 3, 6, 30), dt.datetime(2024, 11, 3, 1, 30), id="first-1:30"),
            pytest.param(dt.datetime(2024, 11, 3, 7, 30), dt.datetime(2024, 11, 3, 1, 30), id="second-1:30"),
            pytest.param(dt.datetime(2024, 11, 3, 8, 0), dt.datetime(2024, 11, 3, 2, 0), id="after-fall"),
        ],
    )
    def test_dst_transitions(self, utc, local):
        assert local_billing_time(utc, CHICAGO) == local

    def test_start_hour_follows_local_time_across_dst(self):
        # Start hour 6 in Chicago is 12:00 UTC in winter (CST) and 11:00 UTC in summer (CDT).
        winter_end = dt.datetime(2024, 1, 31, 23, 59, 59)
        summer_end = dt.datetime(2024, 7, 31, 23, 59, 59)
        winter = [dt.datetime(2024, 1, 28, h, tzinfo=dt.UTC) for h in (11, 12)]
        summer = [dt.datetime(2024, 7, 28, h, tzinfo=dt.UTC) for h in (10, 11)]
        assert [is_time_to_run(winter_end, local_billing_time(t, CHICAGO), 6) for t in winter] == [
            False,
            True,
        ]
        assert [is_time_to_run(summer_end, local_billing_time(t, CHICAGO), 6) for t in summer] == [
            False,
            True,
        ]

    def test_unknown_zone_raises(self):
        with pytest.raises(ZoneInfoNotFoundError, match="Not/AZone"):
            local_billing_time(dt.datetime(2024, 1, 1), "Not/AZone")

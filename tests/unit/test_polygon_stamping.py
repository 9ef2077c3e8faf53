"""The XNYS stamp of daily bars (ingest/stamping.py), shared by Polygon and Yahoo, against a hand-made
reference for 2024 (NYSE holidays and 13:00 early closes as the exchange published them)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.stamping import StampError, asset_class, session, stamp_daily

NY = ZoneInfo("America/New_York")
HOLIDAYS_2024 = {
    dt.date(2024, 1, 1), dt.date(2024, 1, 15), dt.date(2024, 2, 19), dt.date(2024, 3, 29),
    dt.date(2024, 5, 27), dt.date(2024, 6, 19), dt.date(2024, 7, 4), dt.date(2024, 9, 2),
    dt.date(2024, 11, 28), dt.date(2024, 12, 25),
}  # fmt: skip
EARLY_2024 = {dt.date(2024, 7, 3), dt.date(2024, 11, 29), dt.date(2024, 12, 24)}


def reference(day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    if day.weekday() >= 5 or day in HOLIDAYS_2024:
        return None
    # available at the end of after-hours trading: 20:00 New York, 17:00 on an early close (issue 14, 7)
    close = dt.time(17, 0) if day in EARLY_2024 else dt.time(20, 0)
    return (
        dt.datetime.combine(day, dt.time(9, 30), NY).astimezone(dt.UTC),
        dt.datetime.combine(day, close, NY).astimezone(dt.UTC),
    )


days_2024 = st.dates(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
second_of_day = st.integers(0, 86_399)


@settings(deadline=None)
@given(day=days_2024, sec=second_of_day)
def test_stamp_matches_the_reference_for_any_instant_of_the_day(day: dt.date, sec: int) -> None:
    local = dt.datetime.combine(day, dt.time(0), NY) + dt.timedelta(seconds=sec)
    instant = local.replace(tzinfo=None).replace(tzinfo=NY).astimezone(dt.UTC)
    if instant.astimezone(NY).date() != day:  # a DST gap/fold pushed it off the day
        return
    want = reference(day)
    if want is None:
        with pytest.raises(StampError, match="not an XNYS trading day"):
            stamp_daily(day, instant)
    else:
        assert stamp_daily(day, instant) == want


@settings(deadline=None)
@given(day=days_2024, hours=st.integers(1, 72))
def test_an_instant_on_another_new_york_day_is_refused(day: dt.date, hours: int) -> None:
    instant = dt.datetime.combine(day, dt.time(23, 59), NY).astimezone(dt.UTC) + dt.timedelta(hours=hours)
    with pytest.raises(StampError, match="not on the trading day"):
        stamp_daily(day, instant)


def test_early_close_and_normal_day() -> None:
    s = session(dt.date(2024, 11, 29))
    assert s is not None and s.is_early_close
    assert (s.open_at, s.close_at) == (
        dt.datetime(2024, 11, 29, 14, 30, tzinfo=dt.UTC),
        dt.datetime(2024, 11, 29, 18, 0, tzinfo=dt.UTC),
    )
    summer = session(dt.date(2024, 7, 1))
    assert summer is not None and not summer.is_early_close
    assert summer.close_at == dt.datetime(2024, 7, 1, 20, 0, tzinfo=dt.UTC)
    assert session(dt.date(2024, 11, 28)) is None


def test_asset_class_from_the_explicit_etf_list() -> None:
    assert [asset_class(s) for s in ("SPY", "QQQ", "IWM", "DIA", "AAPL", "BRK.B")] == [
        "etf", "etf", "etf", "etf", "stock", "stock",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("day", "available_new_york"),
    [
        (dt.date(2024, 7, 1), dt.datetime(2024, 7, 1, 20, 0)),  # summer (EDT): 20:00 New York = 00:00 UTC
        (dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 20, 0)),  # winter (EST): 20:00 New York = 01:00 UTC
        (dt.date(2024, 7, 3), dt.datetime(2024, 7, 3, 17, 0)),  # early close 13:00: after-hours end 17:00
        (dt.date(2024, 11, 29), dt.datetime(2024, 11, 29, 17, 0)),  # the day after Thanksgiving
        (dt.date(2024, 3, 8), dt.datetime(2024, 3, 8, 20, 0)),  # the Friday before the DST switch
        (dt.date(2024, 3, 11), dt.datetime(2024, 3, 11, 20, 0)),  # the Monday after it
    ],
)
def test_a_daily_bar_is_available_when_after_hours_trading_ends(
    day: dt.date, available_new_york: dt.datetime
) -> None:
    """Day bars count extended-hours trades in their volume: they are known at the session's close plus
    four hours, not at the close (issue 14, item 7)."""
    ts, available_at = stamp_daily(day, dt.datetime.combine(day, dt.time(16, 0), NY))
    assert ts == dt.datetime.combine(day, dt.time(9, 30), NY).astimezone(dt.UTC)
    assert available_at == available_new_york.replace(tzinfo=NY).astimezone(dt.UTC)
    s = session(day)
    assert s is not None and available_at - s.close_at == dt.timedelta(hours=4)

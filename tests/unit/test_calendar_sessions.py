"""XNYS sessions from exchange_calendars, materialised in the lake by the writer; the 24/7 calendar."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

import lake
from features.calendars import bar_range, xnys_year, years_for
from ingest.sessions import land
from lake.paths import LakePaths
from tests.conftest import bars_table

NY = ZoneInfo("America/New_York")
UTC = dt.UTC


def _ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY).astimezone(UTC)


def _sessions(year: int) -> dict[dt.date, dict[str, object]]:
    t = xnys_year(year).to_pylist()
    return {r["day"]: r for r in t}


def test_xnys_known_days_2024() -> None:
    s = _sessions(2024)
    regular = s[dt.date(2024, 7, 5)]
    assert regular["open_at"] == _ny(2024, 7, 5, 9, 30) and regular["close_at"] == _ny(2024, 7, 5, 16)
    assert regular["is_early_close"] is False
    assert regular["ext_open_at"] == _ny(2024, 7, 5, 4) and regular["ext_close_at"] == _ny(2024, 7, 5, 20)
    for early in (dt.date(2024, 7, 3), dt.date(2024, 11, 29), dt.date(2024, 12, 24)):
        row = s[early]
        assert row["is_early_close"] is True, early
        assert row["close_at"] == _ny(early.year, early.month, early.day, 13), early
        assert row["ext_close_at"] == _ny(early.year, early.month, early.day, 17), early
    for holiday in (dt.date(2024, 7, 4), dt.date(2024, 1, 1), dt.date(2024, 11, 28), dt.date(2024, 12, 25)):
        assert holiday not in s, holiday
    assert dt.date(2024, 7, 6) not in s  # a Saturday
    # winter (EST) and summer (EDT) opens differ in UTC
    assert s[dt.date(2024, 1, 2)]["open_at"] == dt.datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert s[dt.date(2024, 7, 5)]["open_at"] == dt.datetime(2024, 7, 5, 13, 30, tzinfo=UTC)
    assert len(s) == 252
    assert all(d.year == 2024 for d in s)


def test_years_for_uses_the_new_york_day_of_the_first_bar() -> None:
    # 2024-01-01 02:00 UTC is still 2023-12-31 in New York
    assert list(years_for(dt.datetime(2024, 1, 1, 2, tzinfo=UTC), dt.datetime(2024, 3, 1, tzinfo=UTC))) == [
        2023,
        2024,
    ]
    assert list(years_for(dt.datetime(2024, 1, 2, tzinfo=UTC), dt.datetime(2025, 1, 1, 1, tzinfo=UTC))) == [
        2024,
        2025,
    ]


def _write(root: Path, symbol: str, table: pa.Table, source: str = "binance", interval: str = "1m") -> None:
    with land(root) as w:
        periods = sorted({t.strftime("%Y-%m") for t in table.column("ts").to_pylist()})
        for p in periods:
            mask = [t.strftime("%Y-%m") == p for t in table.column("ts").to_pylist()]
            part = {"source": source, "interval": interval, "symbol": symbol, "period": p}
            w.write(lake.BARS, part, table.filter(pa.array(mask)))


def test_a_bar_write_materialises_the_calendar_for_the_bar_range(lake_root: Path) -> None:
    con = lake.connect(lake_root)
    assert con.sql("SELECT count(*) FROM trading_sessions").fetchone() == (0,)
    start = dt.datetime(2023, 12, 30, 12, tzinfo=UTC)
    _write(lake_root, "BTCUSDT", bars_table(start, [1.0] * (4 * 1440)))  # to 2024-01-03 12:00
    parts = sorted(p.name for p in (lake_root / "datasets/trading_sessions/calendar=XNYS").iterdir())
    assert parts == ["period=2023", "period=2024"]
    assert lake.verify(lake_root) == []
    con = lake.connect(lake_root)
    rows = con.sql(
        "SELECT calendar, day, open_at, close_at, is_early_close FROM trading_sessions ORDER BY ALL"
    ).fetchall()
    crypto_days = [r[1] for r in rows if r[0] == "24/7"]
    assert crypto_days == [dt.date(2023, 12, 30) + dt.timedelta(days=i) for i in range(5)]
    assert all(r[3] - r[2] == dt.timedelta(days=1) for r in rows if r[0] == "24/7")
    xnys = {r[1]: r for r in rows if r[0] == "XNYS"}
    # the bar range, by New York day: 2023-12-30 .. 2024-01-03; Jan 1 is a holiday, Dec 30/31 a weekend
    assert sorted(xnys) == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    assert xnys[dt.date(2024, 1, 2)][2] == dt.datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert bar_range(LakePaths(lake_root)) == (
        start,
        start + dt.timedelta(minutes=4 * 1440 - 1),
    )


def test_trading_sessions_has_the_early_close_and_no_holiday_rows(lake_root: Path) -> None:
    _write(lake_root, "AAPL", bars_table(_ny(2024, 7, 1, 9, 30), [1.0] * 10, asset_class="stock"), "polygon")
    _write(lake_root, "AAPL", bars_table(_ny(2024, 7, 8, 9, 30), [1.0] * 10, asset_class="stock"), "polygon")
    con = lake.connect(lake_root)
    rows = con.sql(
        "SELECT day, close_at, is_early_close FROM trading_sessions WHERE calendar = 'XNYS' ORDER BY day"
    ).fetchall()
    assert [r[0] for r in rows] == [
        dt.date(2024, 7, 1),
        dt.date(2024, 7, 2),
        dt.date(2024, 7, 3),
        dt.date(2024, 7, 5),
        dt.date(2024, 7, 8),
    ]
    early = {r[0]: (r[1], r[2]) for r in rows}
    assert early[dt.date(2024, 7, 3)] == (_ny(2024, 7, 3, 13), True)
    assert early[dt.date(2024, 7, 5)] == (_ny(2024, 7, 5, 16), False)


def test_rewriting_bars_leaves_the_calendar_files_untouched(lake_root: Path) -> None:
    table = bars_table(_ny(2024, 7, 1, 9, 30), [1.0, 2.0], asset_class="stock")
    _write(lake_root, "AAPL", table, "polygon")
    f = lake_root / "datasets/trading_sessions/calendar=XNYS/period=2024/data.parquet"
    before = f.stat().st_mtime_ns
    _write(lake_root, "AAPL", bars_table(_ny(2024, 7, 2, 9, 30), [1.0, 2.0], asset_class="stock"), "polygon")
    assert f.stat().st_mtime_ns == before


# --- known days in winter and around the DST switches (extended hours) -------------------------------------

KNOWN_EXTENDED_DAYS = [
    dt.date(2024, 1, 10),  # winter (EST): 19:00-19:59 New York is 00:00-00:59 UTC of the next day
    dt.date(2024, 11, 13),  # winter (EST)
    dt.date(2024, 3, 8),  # Friday before the March switch (EST)
    dt.date(2024, 3, 11),  # Monday after it (EDT)
    dt.date(2024, 11, 1),  # Friday before the November switch (EDT)
    dt.date(2024, 11, 4),  # Monday after it (EST)
    dt.date(2024, 7, 10),  # summer
]


def test_extended_sessions_count_every_minute_in_winter_and_across_dst(lake_root: Path) -> None:
    from lake.config import Settings

    for day in KNOWN_EXTENDED_DAYS:
        start = _ny(day.year, day.month, day.day, 4)
        _write(lake_root, "AAPL", bars_table(start, [1.0] * 960, asset_class="stock"), "polygon")
        hourly = bars_table(start, [1.0] * 16, asset_class="stock", interval=dt.timedelta(hours=1))
        _write(lake_root, "AAPL", hourly, "polygon", interval="1h")
    con = lake.connect(lake_root, read_only=True, settings=Settings(session="extended"))
    got = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            """SELECT "interval", day, n_bars, expected_bars, missing_bars, max_gap_minutes FROM bar_quality
               WHERE symbol = 'AAPL' AND n_bars > 0"""
        ).fetchall()
    }
    for day in KNOWN_EXTENDED_DAYS:
        assert got[("1m", day)] == (960, 960, 0, 0.0), day
        assert got[("1h", day)] == (16, 16, 0, 0.0), day
    assert {d for _, d in got} == set(KNOWN_EXTENDED_DAYS)
    # the last bar of the day (19:59 New York) lies on its New York trading day, in the session
    for day in KNOWN_EXTENDED_DAYS:
        last = _ny(day.year, day.month, day.day, 19, 59)
        row = con.execute(
            """SELECT day, in_session FROM bar_sessions WHERE symbol = 'AAPL' AND "interval" = '1m' AND ts = ?""",
            [last],
        ).fetchone()
        assert row == (day, True), (day, row)
    regular = lake.connect(lake_root, read_only=True, settings=Settings(session="regular"))
    n = dict(
        regular.execute(
            """SELECT day, n_bars FROM bar_quality WHERE symbol = 'AAPL' AND "interval" = '1m' AND n_bars > 0"""
        ).fetchall()
    )
    assert n == {d: 390 for d in KNOWN_EXTENDED_DAYS}


def test_views_do_not_depend_on_the_connections_time_zone(lake_root: Path) -> None:
    # crypto from 20:00 UTC on 2024-03-09 over the US DST switch (03-10) to 2024-03-12; a stock alongside
    _write(
        lake_root,
        "BTCUSDT",
        bars_table(dt.datetime(2024, 3, 9, 20, tzinfo=UTC), [1.0 + i % 7 for i in range(3000)]),
    )
    _write(
        lake_root,
        "AAPL",
        bars_table(_ny(2024, 3, 8, 9, 30), [1.0 + i % 5 for i in range(390)], asset_class="stock"),
        "polygon",
    )
    queries = {
        "trading_sessions": "SELECT * FROM trading_sessions ORDER BY ALL",
        "bar_sessions": "SELECT * FROM bar_sessions ORDER BY ALL",
        "bar_quality": "SELECT * FROM bar_quality ORDER BY ALL",
        "features": "SELECT * FROM features ORDER BY symbol, ts",
        "splits": "SELECT * FROM splits ORDER BY ALL",
    }
    con = lake.connect(lake_root, read_only=True)
    want = {k: con.execute(q).fetchall() for k, q in queries.items()}
    crypto_days = [r for r in want["trading_sessions"] if r[0] == "24/7"]
    assert [r[1] for r in crypto_days] == [dt.date(2024, 3, 8) + dt.timedelta(days=i) for i in range(4)]
    assert all(r[2] == dt.datetime.combine(r[1], dt.time(), UTC) for r in crypto_days)
    for zone in ("Asia/Kolkata", "America/New_York", "Pacific/Chatham"):
        con.execute(f"SET TimeZone = '{zone}'")  # a fixed literal: DuckDB's SET takes no parameter
        for name, q in queries.items():
            assert con.execute(q).fetchall() == want[name], f"{name} changed with TimeZone = {zone}"

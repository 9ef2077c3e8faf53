"""bar_quality, symbol_quality, eligible_symbols and the sql/checks queries on small lakes built in the test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lake
from ingest.common import bar_period
from ingest.sessions import land
from lake.config import Settings
from lake.connect import check_files
from lake.schemas import UTC_TS
from tests.conftest import bars_table

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
MIN = dt.timedelta(minutes=1)


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY).astimezone(UTC)


def write(root: Path, symbol: str, table: pa.Table, *, source: str = "polygon", interval: str = "1m") -> None:
    """Write a BARS table, split into its period partitions."""
    ts = table.column("ts").to_pylist()
    with land(root) as w:
        for p in sorted({bar_period(interval, t) for t in ts}):
            mask = pa.array([bar_period(interval, t) == p for t in ts])
            part = {"source": source, "interval": interval, "symbol": symbol, "period": p}
            w.write(lake.BARS, part, table.filter(mask))


def stock_day(day: dt.date, start: tuple[int, int], minutes: int, **kw: Any) -> pa.Table:
    t0 = dt.datetime(day.year, day.month, day.day, *start, tzinfo=NY).astimezone(UTC)
    return bars_table(t0, [100.0 + 0.01 * i for i in range(minutes)], asset_class="stock", **kw)


def quality(root: Path, settings: Settings | None = None) -> dict[tuple[str, str, dt.date], dict[str, Any]]:
    con = lake.connect(root, settings=settings or Settings())
    rel = con.sql("SELECT * FROM bar_quality")
    return {(r[0], r[1], r[2]): dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()}


def test_known_days_regular_early_close_holiday_and_crypto(lake_root: Path) -> None:
    # AAPL with extended-hours minute bars (04:00-20:00 New York) on every weekday 2024-07-01..2024-07-05,
    # 04:00-17:00 on the early close of July 3, none on the July 4 holiday.
    for day in (1, 2, 5):
        write(lake_root, "AAPL", stock_day(dt.date(2024, 7, day), (4, 0), 960))
    write(lake_root, "AAPL", stock_day(dt.date(2024, 7, 3), (4, 0), 780))
    write(
        lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 7, 4, tzinfo=UTC), [1.0] * 1440), source="binance"
    )
    q = quality(lake_root)
    regular = q[("AAPL", "1m", dt.date(2024, 7, 2))]
    assert (regular["expected_bars"], regular["n_bars"], regular["missing_ratio"]) == (390, 390, 0.0)
    assert regular["max_gap_minutes"] == 0.0
    early = q[("AAPL", "1m", dt.date(2024, 7, 3))]
    assert (early["expected_bars"], early["n_bars"], early["is_early_close"]) == (210, 210, True)
    assert ("AAPL", "1m", dt.date(2024, 7, 4)) not in q  # holiday: no trading day, no expected bar
    crypto = q[("BTCUSDT", "1m", dt.date(2024, 7, 4))]
    assert (crypto["expected_bars"], crypto["n_bars"], crypto["missing_ratio"]) == (1440, 1440, 0.0)
    assert sorted(d for s, _, d in q if s == "AAPL") == [dt.date(2024, 7, d) for d in (1, 2, 3, 5)]


def test_early_close_2024_11_29_expects_210(lake_root: Path) -> None:
    write(lake_root, "SPY", stock_day(dt.date(2024, 11, 29), (9, 30), 200))
    row = quality(lake_root)[("SPY", "1m", dt.date(2024, 11, 29))]
    assert (row["expected_bars"], row["n_bars"]) == (210, 200)
    assert row["missing_ratio"] == pytest.approx(10 / 210)
    assert row["max_gap_minutes"] == 10.0  # the last ten minutes before the 13:00 close


def test_session_extended_changes_expected_and_counted_bars(lake_root: Path) -> None:
    for day in (2, 3):
        write(lake_root, "AAPL", stock_day(dt.date(2024, 7, day), (4, 0), 960 if day == 2 else 780))
    ext = quality(lake_root, Settings(session="extended"))
    assert ext[("AAPL", "1m", dt.date(2024, 7, 2))]["expected_bars"] == 960
    assert ext[("AAPL", "1m", dt.date(2024, 7, 2))]["n_bars"] == 960
    assert ext[("AAPL", "1m", dt.date(2024, 7, 3))]["expected_bars"] == 780
    reg = quality(lake_root, Settings(session="regular"))
    assert reg[("AAPL", "1m", dt.date(2024, 7, 2))]["n_bars"] == 390


def test_hourly_and_daily_expectations(lake_root: Path) -> None:
    # hourly stock bars aligned on the open (09:30 .. 15:30), and on the early close 09:30 .. 12:30
    write(
        lake_root,
        "AAPL",
        stock_day(dt.date(2024, 7, 2), (9, 30), 7, interval=dt.timedelta(hours=1)),
        interval="1h",
    )
    write(
        lake_root,
        "AAPL",
        stock_day(dt.date(2024, 7, 3), (9, 30), 4, interval=dt.timedelta(hours=1)),
        interval="1h",
    )
    write(
        lake_root,
        "BTCUSDT",
        bars_table(dt.datetime(2024, 7, 2, tzinfo=UTC), [1.0] * 24, interval=dt.timedelta(hours=1)),
        source="binance",
        interval="1h",
    )
    write(
        lake_root,
        "BTCUSDT",
        bars_table(dt.datetime(2024, 7, 1, tzinfo=UTC), [1.0] * 3, interval=dt.timedelta(days=1)),
        source="binance",
        interval="1d",
    )
    q = quality(lake_root)
    assert q[("AAPL", "1h", dt.date(2024, 7, 2))]["expected_bars"] == 7
    assert q[("AAPL", "1h", dt.date(2024, 7, 2))]["missing_ratio"] == 0.0
    assert q[("AAPL", "1h", dt.date(2024, 7, 3))]["expected_bars"] == 4
    assert q[("AAPL", "1h", dt.date(2024, 7, 3))]["missing_ratio"] == 0.0
    assert q[("BTCUSDT", "1h", dt.date(2024, 7, 2))]["expected_bars"] == 24
    assert [q[("BTCUSDT", "1d", dt.date(2024, 7, d))]["expected_bars"] for d in (1, 2, 3)] == [1, 1, 1]


def test_a_day_without_bars_is_missing_and_counts_against_eligibility(lake_root: Path) -> None:
    write(lake_root, "AAPL", stock_day(dt.date(2024, 7, 1), (9, 30), 390))
    write(lake_root, "AAPL", stock_day(dt.date(2024, 7, 5), (9, 30), 390))
    q = quality(lake_root)
    gap_day = q[("AAPL", "1m", dt.date(2024, 7, 2))]
    assert (gap_day["n_bars"], gap_day["expected_bars"], gap_day["missing_ratio"]) == (0, 390, 1.0)
    assert gap_day["max_gap_minutes"] == 390.0
    con = lake.connect(lake_root, settings=Settings(min_bars_per_symbol=100))
    sq = con.sql(
        "SELECT n_bars, expected_bars, missing_ratio, eligible, reason FROM symbol_quality"
    ).fetchone()
    assert sq is not None
    n, expected, missing, eligible, reason = sq
    assert (n, expected) == (780, 390 + 390 + 210 + 390)
    assert missing == pytest.approx(600 / 1380)
    assert eligible is False and "trading time missing" in reason and "max_missing_ratio" in reason
    assert con.sql("SELECT * FROM eligible_symbols").fetchall() == []


def test_gap_and_eligibility_thresholds_for_crypto(lake_root: Path) -> None:
    day = dt.datetime(2024, 3, 5, tzinfo=UTC)
    table = pa.concat_tables([bars_table(day, [1.0] * 600), bars_table(day + 620 * MIN, [1.0] * 820)])
    write(lake_root, "BTCUSDT", table, source="binance")
    row = quality(lake_root)[("BTCUSDT", "1m", dt.date(2024, 3, 5))]
    assert (row["n_bars"], row["expected_bars"]) == (1420, 1440)
    assert row["max_gap_minutes"] == 20.0
    assert row["missing_ratio"] == pytest.approx(20 / 1440)
    ok = lake.connect(lake_root, settings=Settings(min_bars_per_symbol=1000, max_missing_ratio=0.05))
    assert ok.sql('SELECT symbol, "interval", n_bars FROM eligible_symbols').fetchall() == [
        ("BTCUSDT", "1m", 1420)
    ]
    strict = lake.connect(lake_root, settings=Settings(min_bars_per_symbol=1000, max_missing_ratio=0.01))
    assert strict.sql("SELECT count(*) FROM eligible_symbols").fetchone() == (0,)
    reason = strict.sql("SELECT reason FROM symbol_quality").fetchone()
    assert reason is not None and "1.39% of trading time missing (> max_missing_ratio 1.00%)" in reason[0]
    few = lake.connect(lake_root, settings=Settings(min_bars_per_symbol=2000))
    reason = few.sql("SELECT reason FROM symbol_quality").fetchone()
    assert reason is not None and reason[0] == "only 1420 bars in session (< min_bars_per_symbol 2000)"


def checks(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = lake.connect(root)
    return {name: con.sql(p.read_text()).fetchall() for name, p in check_files()}


def test_checks_are_empty_on_clean_data(lake_root: Path) -> None:
    write(lake_root, "AAPL", stock_day(dt.date(2024, 7, 2), (9, 30), 390))
    write(lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 7, 2, tzinfo=UTC), [1.0] * 60), source="binance")
    found = checks(lake_root)
    assert set(found) >= {
        "ohlc_violations",
        "duplicate_bars",
        "bars_outside_session",
        "available_at_mismatch",
        "out_of_order",
        "missing_calendar",
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_ohlc_violation_is_counted_and_listed(lake_root: Path) -> None:
    t = stock_day(dt.date(2024, 7, 2), (9, 30), 390)
    high = t.column("high").to_pylist()
    high[5] = 1.0  # below open and close
    t = t.set_column(t.schema.get_field_index("high"), "high", pa.array(high))
    write(lake_root, "AAPL", t)
    assert quality(lake_root)[("AAPL", "1m", dt.date(2024, 7, 2))]["ohlc_violations"] == 1
    rows = checks(lake_root)["ohlc_violations"]
    assert len(rows) == 1 and rows[0][1] == "AAPL" and rows[0][3] == ny(2024, 7, 2, 9, 35)


def test_duplicates_across_partitions_and_quarantined_duplicates(lake_root: Path) -> None:
    t = bars_table(dt.datetime(2024, 7, 31, 23, 58, tzinfo=UTC), [1.0, 1.0], source_file="a.csv")
    with land(lake_root) as w:
        for period in ("2024-07", "2024-08"):  # the same bars in two month partitions
            w.write(
                lake.BARS, {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": period}, t
            )
        rejected = pa.table(
            {
                "symbol": ["BTCUSDT"],
                "interval": ["1m"],
                "source_file": ["a.csv"],
                "line_number": pa.array([3], type=pa.int64()),
                "raw": ["..."],
                "ts": pa.array([dt.datetime(2024, 7, 31, 23, 59, tzinfo=UTC)], type=UTC_TS),
                "open": [1.0],
                "high": [1.0],
                "low": [1.0],
                "close": [1.0],
                "volume": [1.0],
                "reason": ["duplicate open time"],
            }
        )
        w.write(lake.BARS_REJECTED, {"source": "binance", "period": "2024-07"}, rejected)
    row = quality(lake_root)[("BTCUSDT", "1m", dt.date(2024, 7, 31))]
    assert row["duplicates"] == 3  # two stored twice, one quarantined
    found = checks(lake_root)["duplicate_bars"]
    assert [(r[1], r[4]) for r in found] == [("BTCUSDT", 2), ("BTCUSDT", 2)]


def test_out_of_order_rows_in_a_file_written_around_the_writer(lake_root: Path) -> None:
    write(lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 7, 2, tzinfo=UTC), [1.0] * 5), source="binance")
    f = lake_root / "datasets/bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-07/data.parquet"
    t = pq.read_table(f, partitioning=None)
    pq.write_table(t.take([0, 2, 1, 3, 4]), f)  # not through the writer: rows out of order
    assert quality(lake_root)[("BTCUSDT", "1m", dt.date(2024, 7, 2))]["out_of_order"] == 1
    rows = checks(lake_root)["out_of_order"]
    assert len(rows) == 1 and rows[0][3] == dt.datetime(2024, 7, 2, 0, 1, tzinfo=UTC)


def test_bars_outside_any_session_and_available_at_mismatch(lake_root: Path) -> None:
    write(lake_root, "AAPL", stock_day(dt.date(2024, 7, 4), (10, 0), 3))  # the holiday
    write(lake_root, "AAPL", stock_day(dt.date(2024, 7, 2), (7, 0), 3))  # pre-market: inside extended hours
    bad = stock_day(dt.date(2024, 7, 2), (10, 0), 2)
    bad = bad.set_column(
        bad.schema.get_field_index("available_at"), "available_at", bad.column("ts")
    )  # known at its own open: impossible
    write(lake_root, "AAPL", bad)
    found = checks(lake_root)
    assert [r[3] for r in found["bars_outside_session"]] == [ny(2024, 7, 4, 10, m) for m in range(3)]
    assert [r[3] for r in found["available_at_mismatch"]] == [ny(2024, 7, 2, 10, m) for m in range(2)]


def test_daily_stock_bars_must_be_stamped_from_the_calendar(lake_root: Path) -> None:
    good = pa.table(
        {
            "asset_class": ["stock", "stock"],
            "ts": pa.array([ny(2024, 7, 2, 9, 30), ny(2024, 7, 3, 0)], type=UTC_TS),
            # known at the end of after-hours trading, close + 4 h (20:00 New York)
            "available_at": pa.array([ny(2024, 7, 2, 20), ny(2024, 7, 4, 0)], type=UTC_TS),
            "open": [1.0, 1.0],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [1.0, 1.0],
            "volume": [1.0, 1.0],
            "trades": pa.array([None, None], type=pa.int64()),
            "source_file": ["d.csv", "d.csv"],
        }
    )
    write(lake_root, "AAPL", good, source="yahoo", interval="1d")
    rows = checks(lake_root)["available_at_mismatch"]
    assert [r[3] for r in rows] == [ny(2024, 7, 3, 0)]


def test_one_source_storing_a_bar_twice_has_a_deterministic_winner(lake_root: Path) -> None:
    """The same polygon bar in two period partitions (a month-boundary mistake): the later period wins,
    then the smaller source_file, whatever order the files are read in."""
    t = ny(2024, 7, 31, 15, 0)
    with land(lake_root) as w:
        for period, close, src in (
            ("2024-07", 1.0, "b.csv"),
            ("2024-08", 2.0, "z.csv"),
            ("2024-06", 3.0, "a.csv"),
        ):
            table = bars_table(t, [close], asset_class="stock", source_file=src)
            w.write(
                lake.BARS, {"source": "polygon", "interval": "1m", "symbol": "AAPL", "period": period}, table
            )
    for threads in (1, 4):
        con = lake.connect(lake_root, read_only=True)
        con.execute(f"SET threads = {threads}")
        assert con.execute("SELECT close FROM bars WHERE symbol = 'AAPL'").fetchall() == [(2.0,)]


def test_weekly_bars_are_not_measured_against_daily_expectations(lake_root: Path) -> None:
    """A 1w series has one bar a week: counting one expected bar per trading day would call 80% of it
    missing. Intervals longer than a day have no expected bars and are never eligible, with the reason."""
    weeks = bars_table(
        ny(2024, 7, 1, 9, 30), [100.0] * 6, asset_class="stock", interval=dt.timedelta(weeks=1)
    )
    with land(lake_root) as w:  # no ingestor writes 1w (bar_period refuses it); a foreign file may
        w.write(lake.BARS, {"source": "yahoo", "interval": "1w", "symbol": "AAPL", "period": "2024"}, weeks)
    con = lake.connect(lake_root, read_only=True)
    got = con.execute(
        "SELECT count(*), count(expected_bars), count(missing_ratio) FROM bar_quality"
    ).fetchone()
    assert got is not None and got[0] > 0 and got[1:] == (0, 0)
    row = con.execute("SELECT eligible, reason FROM symbol_quality WHERE symbol = 'AAPL'").fetchone()
    assert row == (
        False,
        "interval 1w is not measured (only minute, hour and day intervals have expected bars)",
    )

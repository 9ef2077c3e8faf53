"""`marketlake ingest csv` (ingest/csv.py) on the real sample files the repository ships and on small files
the tests write: header layouts, stamping, quarantine, clear errors, re-runs and the `bars` precedence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import lake
from ingest import csv as csv_ingest
from ingest.common import RunContext
from ingest.stamping import stamp_daily
from lake.config import Settings
from lake.errors import MarketlakeError
from lake.paths import no_lake
from lake.writer import LakeWriter
from tests.conftest import bars_table

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SPY = SAMPLES / "yahoofinance-SPY-20080101-20180101.csv"
SP500 = SAMPLES / "SP500_NOV2019_IDay.csv"
NY = dt.timezone(dt.timedelta(hours=-5))


def ctx(root: Path) -> RunContext:
    return RunContext(root, Settings(), quiet=True)


def query(root: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def session_stamp(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return stamp_daily(day, dt.datetime.combine(day, dt.time(12), dt.UTC).astimezone(NY))


def write_file(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_yahoo_sample_lands_with_its_two_bad_rows_quarantined(lake_root: Path) -> None:
    summary = csv_ingest.run(ctx(lake_root), SPY, "SPY", "1d", None)
    assert summary.ok, summary.errors
    assert (summary.of("SPY").rows_landed, summary.of("SPY").rows_rejected) == (2517, 2)
    assert any("Adj Close ignored" in n for n in summary.notes)
    rejected = query(
        lake_root,
        "SELECT line_number, ts, open, low, reason, source_file FROM bars_rejected ORDER BY line_number",
    )
    assert [r[0] for r in rejected] == [1808, 1825]
    assert [r[1] for r in rejected] == [
        session_stamp(dt.date(2015, 3, 5))[0],
        session_stamp(dt.date(2015, 3, 30))[0],
    ]
    assert rejected[0][2:4] == (209.419998, 209.850006)
    for r in rejected:
        assert "low" in r[4] and "above open" in r[4]
        assert r[5] == "csv:SPY/1d/yahoofinance-SPY-20080101-20180101.csv"
    # stamped by the XNYS calendar, the Close column (not Adj Close), as an ETF, from source csv
    ts, available_at = session_stamp(dt.date(2008, 1, 2))
    row = query(
        lake_root,
        "SELECT source, asset_class, available_at, open, high, low, close, volume FROM bars "
        "WHERE symbol = 'SPY' AND ts = ?",
        ts,
    )
    assert row == [("csv", "etf", available_at, 146.529999, 146.990005, 143.880005, 144.929993, 204935600.0)]
    assert query(lake_root, "SELECT count(*) FROM bars WHERE ts::DATE IN ('2015-03-05', '2015-03-30')") == [
        (0,)
    ]


def test_sp500_minute_sample_needs_its_zone_and_then_lands_every_minute(lake_root: Path) -> None:
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(lake_root), SP500, "SPX", "1m", None)
    assert str(SP500) in str(err.value)
    assert "line 2" in str(err.value) and "--tz" in str(err.value)
    # nothing landed (the failed ingest made no lake at all, or an empty one)
    assert no_lake(lake_root) is not None or query(lake_root, "SELECT count(*) FROM lake_bars") == [(0,)]

    summary = csv_ingest.run(ctx(lake_root), SP500, "SPX", "1m", "America/New_York")
    assert summary.ok and summary.of("SPX").rows_landed == 1563
    first = query(
        lake_root,
        "SELECT ts, available_at, open, high, low, close, volume FROM bars WHERE symbol = 'SPX' ORDER BY ts LIMIT 1",
    )
    t0 = dt.datetime(2019, 11, 5, 14, 30, tzinfo=dt.UTC)  # 9:30 New York (EST)
    # the file's column order is Date,Open,Close,High,Low,Volume
    assert first == [(t0, t0 + dt.timedelta(minutes=1), 3080.8, 3081.47, 3080.3, 3080.49, 0.0)]


def test_columns_in_any_order_and_case_give_the_same_bars(tmp_path: Path) -> None:
    a = write_file(
        tmp_path,
        "a.csv",
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-03-01,10,12,9,11,10.5,100\n"
        "2024-03-04,11,13,10,12,11.5,200\n",
    )
    b = write_file(
        tmp_path,
        "b.csv",
        "VOLUME;close;LOW;High;open;date\n200;12;10;13;11;2024-03-04\n100;11;9;12;10;2024-03-01\n",
    )
    out = []
    for f in (a, b):
        root = tmp_path / f"lake-{f.stem}"
        assert csv_ingest.run(ctx(root), f, "ABC", "1d", None).ok
        out.append(
            query(root, "SELECT ts, available_at, open, high, low, close, volume FROM bars ORDER BY ts")
        )
    assert out[0] == out[1]
    assert [r[5] for r in out[0]] == [11.0, 12.0]
    assert out[0][0][:2] == session_stamp(dt.date(2024, 3, 1))


def test_iso_offsets_and_tz_local_times_mean_the_same_instants(tmp_path: Path) -> None:
    with_offset = write_file(
        tmp_path,
        "o.csv",
        "timestamp,open,high,low,close,volume,trades\n"
        "2024-03-08T15:59:00-05:00,5,6,4,5.5,10,3\n"
        "2024-03-11T09:30:00-04:00,5,6,4,5.5,10,4\n"
        "2024-03-11T13:31:00Z,5,6,4,5.5,10,5\n",
    )
    local = write_file(
        tmp_path,
        "l.csv",
        "Date,Time,Open,High,Low,Close,Volume,Trades\n"
        "03/08/2024,3:59 PM,5,6,4,5.5,10,3\n"
        "3/11/2024,9:30,5,6,4,5.5,10,4\n"
        "3/11/2024,9:31,5,6,4,5.5,10,5\n",
    )
    got = []
    for f, tz in ((with_offset, None), (local, "America/New_York")):
        root = tmp_path / f"lake-{f.stem}"
        assert csv_ingest.run(ctx(root), f, "ABC", "1m", tz).ok
        got.append(query(root, "SELECT ts, available_at, trades FROM bars ORDER BY ts"))
    assert got[0] == got[1]
    assert [r[0] for r in got[0]] == [
        dt.datetime(2024, 3, 8, 20, 59, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 11, 13, 30, tzinfo=dt.UTC),  # daylight-saving time began on 2024-03-10
        dt.datetime(2024, 3, 11, 13, 31, tzinfo=dt.UTC),
    ]
    assert all(r[1] - r[0] == dt.timedelta(minutes=1) for r in got[0])
    assert [r[2] for r in got[0]] == [3, 4, 5]


def test_unix_times_in_seconds_and_milliseconds_are_utc(tmp_path: Path, lake_root: Path) -> None:
    f = write_file(
        tmp_path,
        "k.csv",
        "open_time,open,high,low,close,volume\n1704067200000,5,6,4,5,1\n1704067260,5,6,4,5,1\n",
    )
    assert csv_ingest.run(ctx(lake_root), f, "BTCUSDT", "1m", None, asset_class="crypto").ok
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert query(lake_root, "SELECT ts FROM bars ORDER BY ts") == [(t0,), (t0 + dt.timedelta(minutes=1),)]


def test_bad_rows_are_quarantined_with_reason_and_line(tmp_path: Path, lake_root: Path) -> None:
    f = write_file(
        tmp_path,
        "bad.csv",
        "datetime,open,high,low,close,volume\n"
        "2024-03-10 02:30,5,6,4,5,1\n"  # does not exist in New York
        "2024-03-11 09:30,5,6,4,5,1\n"
        "2024-03-11 09:30,5,6,4,5,1\n"  # an identical copy: the bar lands once, not a rejection
        "2024-03-11 09:31,5,4,4,5,1\n"
        "2024-03-11 09:32,five,6,4,5,1\n"
        "2024-03-11 09:33:30,5,6,4,5,1\n"
        "yesterday,5,6,4,5,1\n"
        "2024-03-11 09:34,5,6,4,5\n",
    )
    summary = csv_ingest.run(ctx(lake_root), f, "ABC", "1m", "America/New_York")
    assert summary.of("ABC").rows_landed == 1
    reasons = dict(query(lake_root, "SELECT line_number, reason FROM bars_rejected ORDER BY line_number"))
    assert sorted(reasons) == [2, 5, 6, 7, 8, 9]
    assert "does not exist" in reasons[2]
    assert any("1 row repeat an earlier row exactly" in n for n in summary.notes)
    assert "high 4 is below open 5" in reasons[5]
    assert "open 'five' is not a number" in reasons[6]
    assert "grid" in reasons[7]
    assert "yesterday" in reasons[8]
    assert "5 fields" in reasons[9]


def test_a_daily_row_on_a_day_without_a_session_is_quarantined(tmp_path: Path, lake_root: Path) -> None:
    f = write_file(
        tmp_path, "d.csv", "Date,Open,High,Low,Close,Volume\n2024-03-02,5,6,4,5,1\n2024-03-01,5,6,4,5,1\n"
    )
    summary = csv_ingest.run(ctx(lake_root), f, "ABC", "1d", None)
    assert summary.of("ABC").rows_landed == 1
    assert query(lake_root, "SELECT line_number, reason FROM bars_rejected") == [
        (2, "date '2024-03-02': 2024-03-02 is not an XNYS trading day")
    ]


def test_crypto_days_run_from_midnight_utc(tmp_path: Path, lake_root: Path) -> None:
    f = write_file(tmp_path, "c.csv", "date,open,high,low,close,volume\n2024-03-02,5,6,4,5,1\n")
    assert csv_ingest.run(ctx(lake_root), f, "BTCUSDT", "1d", None, asset_class="crypto").ok
    midnight = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
    assert query(lake_root, "SELECT asset_class, ts, available_at FROM bars") == [
        ("crypto", midnight, midnight + dt.timedelta(days=1))
    ]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"\x1f\x8b\x08\x00rest", "compressed"),
        (b"Date,Open,High\xff\n", "not UTF-8"),
        (b"Date,Open,High,Low,Close\n2024-03-01,1,2,1,2\n", "no volume column"),
        (b"2024-03-01,1,2,1,2,5\n", "no time, open, high, low, close, volume column"),
        (b"Date,Close,Open,High,Low,Close,Volume\n", "two columns mean close"),
    ],
)
def test_a_file_it_cannot_read_is_a_clear_error_naming_it(
    tmp_path: Path, lake_root: Path, content: bytes | None, why: str
) -> None:
    f = tmp_path / "input.csv"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(lake_root), f, "ABC", "1d", None)
    assert str(f) in str(err.value) and why in str(err.value)


def test_an_intraday_file_of_dates_only_is_refused_naming_the_line(tmp_path: Path, lake_root: Path) -> None:
    f = write_file(tmp_path, "d.csv", "Date,Open,High,Low,Close,Volume\n2024-03-01,5,6,4,5,1\n")
    with pytest.raises(MarketlakeError, match=r"d\.csv: line 2: .*--interval 1d"):
        csv_ingest.run(ctx(lake_root), f, "ABC", "1m", None)


def test_bad_options_are_refused(tmp_path: Path, lake_root: Path) -> None:
    f = write_file(tmp_path, "d.csv", "Date,Open,High,Low,Close,Volume\n2024-03-01,5,6,4,5,1\n")
    with pytest.raises(MarketlakeError, match="vendor"):
        csv_ingest.run(ctx(lake_root), f, "ABC", "1d", None, source="yahoo")
    with pytest.raises(MarketlakeError, match="time zone"):
        csv_ingest.run(ctx(lake_root), f, "ABC", "1d", "Mars/Olympus")
    with pytest.raises(MarketlakeError, match="interval"):
        csv_ingest.run(ctx(lake_root), f, "ABC", "2w", None)
    with pytest.raises(MarketlakeError, match="symbol"):
        csv_ingest.run(ctx(lake_root), f, "../x", "1d", None)
    with pytest.raises(MarketlakeError, match="asset"):
        csv_ingest.run(ctx(lake_root), f, "ABC", "1d", None, asset_class="index")


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_a_rerun_changes_nothing_and_the_raw_file_is_cached(lake_root: Path) -> None:
    csv_ingest.run(ctx(lake_root), SPY, "SPY", "1d", None)
    cached = lake_root / "raw" / "csv" / "SPY" / "1d" / SPY.name
    assert cached.read_bytes() == SPY.read_bytes()
    assert (
        '"sha256": "d4225c2a41c52335780792536c87bbc9e692c51aca5fad92e3afeffca45fee7c"'
        in Path(f"{cached}.meta.json").read_text()
    )
    before = _files(lake_root)
    again = csv_ingest.run(ctx(lake_root), SPY, "SPY", "1d", None)
    assert _files(lake_root) == before
    assert (again.of("SPY").files_done, again.of("SPY").files_skipped) == (0, 1)
    assert query(lake_root, "SELECT count(*) FROM bars") == [(2517,)]
    assert query(lake_root, "SELECT count(*) FROM bars_rejected") == [(2,)]


def test_a_corrected_file_of_the_same_name_replaces_its_rows(tmp_path: Path, lake_root: Path) -> None:
    f = write_file(
        tmp_path, "x.csv", "Date,Open,High,Low,Close,Volume\n2024-03-01,5,6,4,5,1\n2024-03-04,5,4,4,5,1\n"
    )
    csv_ingest.run(ctx(lake_root), f, "ABC", "1d", None)
    assert query(lake_root, "SELECT count(*) FROM bars_rejected") == [(1,)]
    # the correction drops 2024-03-01, a bar outside its own span (2024-03-04): refused without --replace
    f.write_text("Date,Open,High,Low,Close,Volume\n2024-03-04,5,6,4,5.5,1\n", encoding="utf-8")
    with pytest.raises(MarketlakeError, match="would remove 1 of them, dated 2024-03-01"):
        csv_ingest.run(ctx(lake_root), f, "ABC", "1d", None)
    assert query(lake_root, "SELECT close FROM bars") == [(5.0,)]
    assert query(lake_root, "SELECT count(*) FROM bars_rejected") == [(1,)]
    csv_ingest.run(ctx(lake_root), f, "ABC", "1d", None, replace=True)
    assert query(lake_root, "SELECT close FROM bars") == [(5.5,)]
    assert query(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]


def test_csv_ranks_below_every_vendor_and_above_other_names(tmp_path: Path, lake_root: Path) -> None:
    days = [dt.date(2024, 3, 1), dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    opens = [session_stamp(d)[0] for d in days]
    # yahoo holds the first day, a custom source the last two; the CSV holds all three
    with LakeWriter.open(lake_root) as w:
        t = bars_table(opens[0], [100.0], interval=dt.timedelta(days=1), asset_class="stock")
        w.write(lake.BARS, {"source": "yahoo", "interval": "1d", "symbol": "ABC", "period": "2024"}, t)
    f = write_file(
        tmp_path,
        "abc.csv",
        "Date,Open,High,Low,Close,Volume\n" + "".join(f"{d},5,6,4,5,1\n" for d in days),
    )
    other = write_file(tmp_path, "other.csv", "Date,Open,High,Low,Close,Volume\n2024-03-05,7,8,6,7,1\n")
    # the prices differ on purpose (which source is shown): landed past the price check
    assert csv_ingest.run(ctx(lake_root), f, "ABC", "1d", None, allow_price_mismatch=True).ok
    assert csv_ingest.run(
        ctx(lake_root), other, "ABC", "1d", None, source="broker", allow_price_mismatch=True
    ).ok
    assert query(lake_root, "SELECT ts, source, close FROM bars ORDER BY ts") == [
        (opens[0], "yahoo", 100.0),
        (opens[1], "csv", 5.0),
        (opens[2], "csv", 5.0),
    ]
    assert query(lake_root, "SELECT count(*) FROM lake_bars") == [(5,)]


def test_the_shipped_samples_import_by_name_and_a_rerun_changes_nothing(lake_root: Path) -> None:
    from ingest import samples

    assert {s.file for s in samples.SAMPLES} <= {p.name for p in SAMPLES.iterdir()}
    first = samples.run(ctx(lake_root), ["SPX", "GOOG"])
    assert [
        (s.of(sym).rows_landed, s.of(sym).files_done) for s, sym in zip(first, ["GOOG", "SPX"], strict=True)
    ] == [
        (3379, 1),
        (1563, 1),
    ]
    again = samples.run(ctx(lake_root), ["SPX", "GOOG"])
    assert all(s.of(sym).files_skipped == 1 for s, sym in zip(again, ["GOOG", "SPX"], strict=True))
    with pytest.raises(MarketlakeError, match="no sample"):
        samples.run(ctx(lake_root), ["MSFT"])


def test_summaries_of_one_source_are_one_table() -> None:
    """The demo lands four files through `ingest csv`: one summary table for the source, counts summed."""
    from ingest.common import IngestSummary

    a, b, c = IngestSummary("csv"), IngestSummary("csv"), IngestSummary("yahoo")
    a.of("SPY").rows_landed, a.notes = 10, ["a note"]
    b.of("SPY").rows_rejected, b.of("AAPL").rows_landed = 2, 5
    b.fail("bad file", "AAPL")
    c.of("SPY").rows_landed = 1
    merged = IngestSummary.merged([a, b, c])
    assert [m.source for m in merged] == ["csv", "yahoo"]
    csv = merged[0]
    assert (csv.symbols["SPY"].rows_landed, csv.symbols["SPY"].rows_rejected) == (10, 2)
    assert (csv.symbols["AAPL"].rows_landed, csv.symbols["AAPL"].files_failed) == (5, 1)
    assert csv.notes == ["a note"] and csv.errors == ["bad file"] and not csv.ok
    assert merged[1].symbols["SPY"].rows_landed == 1 and a.symbols["SPY"].rows_rejected == 0  # inputs kept


def test_a_trade_count_beyond_int64_is_a_bad_row_not_a_crash(tmp_path: Path) -> None:
    f = write_file(
        tmp_path,
        "big.csv",
        "timestamp,open,high,low,close,volume,trades\n"
        "2024-03-08T15:58:00-05:00,5,6,4,5.5,10,3\n"
        f"2024-03-08T15:59:00-05:00,5,6,4,5.5,10,{'9' * 20}\n",
    )
    root = tmp_path / "lake"
    assert csv_ingest.run(ctx(root), f, "ABC", "1m", None).ok
    assert query(root, "SELECT trades FROM bars") == [(3,)]
    (reason,) = query(root, "SELECT reason FROM bars_rejected")
    assert "is out of range" in reason[0], reason


def test_hourly_bars_start_on_their_grid_and_never_overlap(tmp_path: Path) -> None:
    stock = write_file(
        tmp_path,
        "h.csv",
        "timestamp,open,high,low,close,volume\n"
        "2024-03-08T09:30:00-05:00,5,6,4,5.5,10\n"  # the session's first hour: on the :30 grid
        "2024-03-08T10:30:00-05:00,5,6,4,5.5,10\n"
        "2024-03-08T11:00:00-05:00,5,6,4,5.5,10\n"  # overlaps 10:30-11:30
        "2024-03-08T11:17:00-05:00,5,6,4,5.5,10\n",  # on no grid
    )
    root = tmp_path / "stock"
    assert csv_ingest.run(ctx(root), stock, "ABC", "1h", None).ok
    assert [r[0].minute for r in query(root, "SELECT ts FROM bars ORDER BY ts")] == [30, 30]
    reasons = [r[0] for r in query(root, "SELECT reason FROM bars_rejected ORDER BY line_number")]
    assert "overlaps the one at line 3" in reasons[0] and "not on the 1h grid" in reasons[1], reasons
    crypto = write_file(
        tmp_path,
        "c.csv",
        "timestamp,open,high,low,close,volume\n2024-03-08T10:00:00Z,5,6,4,5.5,10\n2024-03-08T11:30:00Z,5,6,4,5.5,10\n",
    )
    root = tmp_path / "crypto"
    assert csv_ingest.run(ctx(root), crypto, "BTCUSD", "1h", None, asset_class="crypto").ok
    assert [r[0].minute for r in query(root, "SELECT ts FROM bars")] == [
        0
    ]  # a crypto hour starts on the hour
    assert "a bar starts on a whole hour)" in query(root, "SELECT reason FROM bars_rejected")[0][0]


def test_a_daily_instant_whose_day_differs_in_new_york_is_refused_not_moved(tmp_path: Path) -> None:
    # 2024-03-14 20:30 New York: as a Unix time its UTC date is the 15th; with its offset it is the 14th
    instant = dt.datetime(2024, 3, 14, 20, 30, tzinfo=ZoneInfo("America/New_York"))
    f = write_file(
        tmp_path,
        "d.csv",
        "timestamp,open,high,low,close,volume\n"
        f"{int(instant.timestamp())},5,6,4,5.5,10\n"
        f"{instant.isoformat()},5,6,4,5.5,10\n",
    )
    root = tmp_path / "lake"
    assert csv_ingest.run(ctx(root), f, "ABC", "1d", None).ok
    assert [r[0] for r in query(root, "SELECT ts FROM bars")] == [session_stamp(dt.date(2024, 3, 14))[0]]
    (reason,) = query(root, "SELECT reason FROM bars_rejected")
    assert "2024-03-15 as written but 2024-03-14 in New York" in reason[0], reason


# --- a file's own cadence against --interval; weekend rows in a stock or ETF file -----------------------

BINANCE_HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
YAHOO_DAILY_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
YAHOO_INTRADAY_HEADER = "Datetime,Open,High,Low,Close,Adj Close,Volume\n"
HOLIDAYS = {dt.date(2023, 12, 25), dt.date(2024, 1, 1), dt.date(2024, 1, 15)}


def binance_rows(start: dt.datetime, step: dt.timedelta, n: int) -> str:
    """Binance kline rows (open time and close time in ms, 12 fields) from `start`, every `step`."""
    out = []
    for i in range(n):
        t = start + i * step
        ms = int(t.timestamp() * 1000)
        out.append(f"{ms},100,101,99,100.5,2.5,{ms + int(step.total_seconds() * 1000) - 1},250,10,1,100,0\n")
    return "".join(out)


def yahoo_days(first: dt.date, last: dt.date, *, every_day: bool = False) -> list[dt.date]:
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    return days if every_day else [d for d in days if d.weekday() < 5 and d not in HOLIDAYS]


def yahoo_daily(days: list[dt.date]) -> str:
    return YAHOO_DAILY_HEADER + "".join(f"{d},10,12,9,11,10.5,1000\n" for d in days)


def landed(root: Path) -> int:
    return 0 if no_lake(root) is not None else query(root, "SELECT count(*) FROM lake_bars")[0][0]


MINUTE_START = dt.datetime(2024, 9, 16, tzinfo=dt.UTC)  # a Monday


@pytest.mark.parametrize("interval", ["1h", "5m", "15m", "1d"])
def test_a_minute_file_declared_coarser_is_refused_whole(tmp_path: Path, interval: str) -> None:
    """A 1m Binance file imported as 1h landed each hour's first minute as an hourly bar (a wrong high, a
    sixtieth of the volume) and quarantined the rest as off the grid; as 1d, one minute a day."""
    f = write_file(
        tmp_path, "BTCUSDT-1m.csv", BINANCE_HEADER + binance_rows(MINUTE_START, dt.timedelta(minutes=1), 1440)
    )
    root = tmp_path / "lake"
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), f, "BTCUSDT", interval, None, asset_class="crypto")
    assert str(err.value) == (
        f"{f}: rows are 1 minute apart (the most common spacing, 1439 of 1439), finer than --interval "
        f"{interval}: use --interval 1m; nothing was stored"
    )
    assert landed(root) == 0


def test_the_sp500_minute_sample_declared_daily_or_5m_is_refused(lake_root: Path) -> None:
    for interval in ("1d", "5m", "1h"):
        with pytest.raises(
            MarketlakeError, match=rf"1 minute apart .*finer than --interval {interval}: use --interval 1m"
        ):
            csv_ingest.run(ctx(lake_root), SP500, "SPX", interval, "America/New_York")
    assert landed(lake_root) == 0


def test_a_5m_file_as_1h_and_a_30_minute_file_name_what_they_are(tmp_path: Path) -> None:
    five = write_file(
        tmp_path, "five.csv", BINANCE_HEADER + binance_rows(MINUTE_START, dt.timedelta(minutes=5), 300)
    )
    with pytest.raises(
        MarketlakeError, match="rows are 5 minutes apart .*finer than --interval 1h: use --interval 5m"
    ):
        csv_ingest.run(ctx(tmp_path / "a"), five, "BTCUSDT", "1h", None, asset_class="crypto")
    # a stock's half-hour bars declared hourly: every other one landed as an hour (the rest "overlapping")
    days = yahoo_days(dt.date(2024, 3, 4), dt.date(2024, 3, 8))
    rows = [
        dt.datetime.combine(d, dt.time(9, 30), ZoneInfo("America/New_York")) + k * dt.timedelta(minutes=30)
        for d in days
        for k in range(13)
    ]
    half = write_file(
        tmp_path,
        "half.csv",
        YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in rows),
    )
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(tmp_path / "b"), half, "ABC", "1h", None)
    assert "rows are 30 minutes apart" in str(err.value)
    assert "no --interval is 30 minutes (1m, 5m, 15m, 1h, 1d): resample the file to one first" in str(
        err.value
    )


def test_files_of_their_own_interval_land_as_before(tmp_path: Path) -> None:
    """Gaps (nights, weekends, holidays, quiet minutes), a stock's hour opening at 09:30, a few rows off the
    grid or duplicated: the file's cadence is still its bars' spacing, and nothing is refused."""
    ny = ZoneInfo("America/New_York")
    week = yahoo_days(dt.date(2024, 3, 4), dt.date(2024, 3, 15))
    cases: list[tuple[str, str, str, str | None, str | None, int, int]] = []
    # true 1h crypto (Binance), every hour of two weeks, weekends included, with two stray rows at :17
    hours = binance_rows(MINUTE_START, dt.timedelta(hours=1), 24 * 14)
    strays = binance_rows(MINUTE_START + dt.timedelta(hours=5, minutes=17), dt.timedelta(days=3), 2)
    cases.append(("crypto1h.csv", BINANCE_HEADER + hours + strays, "1h", None, "crypto", 24 * 14, 2))
    # 1h stock, yfinance style: 09:30, 10:30, ..., 15:30
    yf = [
        dt.datetime.combine(d, dt.time(9, 30), ny) + k * dt.timedelta(hours=1) for d in week for k in range(7)
    ]
    text = YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in yf)
    cases.append(("yf1h.csv", text, "1h", None, None, len(yf), 0))
    # 1h stock with the session's half hour first: 09:30, 10:00, 11:00, ..., 15:00 (the half hour rejected)
    tv = [
        dt.datetime.combine(d, t, ny)
        for d in week
        for t in [dt.time(9, 30)] + [dt.time(h) for h in range(10, 16)]
    ]
    text = YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in tv)
    cases.append(("tv1h.csv", text, "1h", None, None, len(tv) - len(week), len(week)))
    # 1d stock, Yahoo: weekends and holidays (Christmas, New Year, Martin Luther King day) missing
    days = yahoo_days(dt.date(2023, 12, 1), dt.date(2024, 1, 31))
    cases.append(("d.csv", yahoo_daily(days), "1d", None, None, len(days), 0))
    # 1d stock with three rows written twice: identical copies land once and are not rejections
    cases.append(("dup.csv", yahoo_daily(days + days[5:8]), "1d", None, None, len(days), 0))
    # 1d stock written as Unix times of midnight in New York, across the change to daylight saving time
    unix = [
        int(dt.datetime.combine(d, dt.time(0), ny).timestamp())
        for d in yahoo_days(dt.date(2024, 3, 7), dt.date(2024, 3, 12))
    ]
    text = "timestamp,open,high,low,close,volume\n" + "".join(f"{u},10,12,9,11,100\n" for u in unix)
    cases.append(("unix.csv", text, "1d", None, None, len(unix), 0))
    # two crypto days written as Unix times of midnight in New York: 23 hours apart (daylight saving began)
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{int(dt.datetime(2024, 3, d, tzinfo=ny).timestamp())},10,12,9,11,100\n" for d in (10, 11)
    )
    cases.append(("dst.csv", text, "1d", None, "crypto", 2, 0))
    # 1m stock (the S&P 500 sample's layout) with quiet minutes missing
    minutes = [
        dt.datetime(2024, 3, 5, 9, 30) + dt.timedelta(minutes=m) for m in range(390) if m % 7 not in (2, 3)
    ]
    text = "Date,Open,Close,High,Low,Volume\n" + "".join(
        f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d},10,11,12,9,0\n" for t in minutes
    )
    cases.append(("m.csv", text, "1m", "America/New_York", None, len(minutes), 0))
    for name, content, interval, tz, klass, bars, rejected in cases:
        f = write_file(tmp_path, name, content)
        summary = csv_ingest.run(ctx(tmp_path / f"lake-{name}"), f, "ABC", interval, tz, asset_class=klass)
        assert summary.ok, (name, summary.errors)
        got = (summary.of("ABC").rows_landed, summary.of("ABC").rows_rejected)
        assert got == (bars, rejected), name


def test_a_clock_hour_file_lands_its_whole_hours_and_rejects_the_half_hour(tmp_path: Path) -> None:
    """09:30, 10:00, 11:00, ..., 15:00 (a broker's or charting export): the 09:30 bar holds half an hour.
    It landed as an hourly bar and the 10:00 bar, a whole hour, was rejected as overlapping it."""
    ny = ZoneInfo("America/New_York")
    week = yahoo_days(dt.date(2024, 3, 4), dt.date(2024, 3, 8))
    times = [
        dt.datetime.combine(d, t, ny)
        for d in week
        for t in [dt.time(9, 30)] + [dt.time(h) for h in range(10, 16)]
    ]
    f = write_file(
        tmp_path,
        "tv.csv",
        YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in times),
    )
    root = tmp_path / "lake"
    assert csv_ingest.run(ctx(root), f, "ABC", "1h", None).ok
    landed = [r[0].astimezone(ny).time() for r in query(root, "SELECT ts FROM bars ORDER BY ts")]
    assert landed == [dt.time(h) for h in range(10, 16)] * len(week)
    rejected = query(root, "SELECT ts, reason FROM bars_rejected ORDER BY line_number")
    assert [r[0].astimezone(ny).time() for r in rejected] == [dt.time(9, 30)] * len(week)
    assert all(
        "starts at half past on a day whose bars start on the hour (2024-03-0" in r[1] for r in rejected
    ), rejected


def test_a_file_changing_from_half_past_to_clock_hours_keeps_each_days_whole_hours(tmp_path: Path) -> None:
    """8 days of yfinance's 09:30, 10:30, ..., 15:30 then 12 days of 09:30, 10:00, ..., 15:00: judged by the
    whole file's majority, the half-past days' whole hours (10:30, 11:30, ...) were rejected as half hours."""
    ny = ZoneInfo("America/New_York")
    days = yahoo_days(dt.date(2024, 4, 1), dt.date(2024, 4, 26))
    assert len(days) == 20
    hour = dt.timedelta(hours=1)
    half_past = [dt.datetime.combine(d, dt.time(9, 30), ny) + k * hour for d in days[:8] for k in range(7)]
    clock = [
        dt.datetime.combine(d, t, ny)
        for d in days[8:]
        for t in [dt.time(9, 30)] + [dt.time(h) for h in range(10, 16)]
    ]
    text = YAHOO_INTRADAY_HEADER + "".join(
        f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in half_past + clock
    )
    root = tmp_path / "lake"
    assert csv_ingest.run(ctx(root), write_file(tmp_path, "mixed.csv", text), "ABC", "1h", None).ok
    landed = {r[0] for r in query(root, "SELECT ts FROM bars")}
    assert landed == set(half_past) | {t for t in clock if t.minute == 0}
    rejected = [r[0] for r in query(root, "SELECT ts FROM bars_rejected")]
    assert sorted(rejected) == sorted(t for t in clock if t.minute == 30)


def test_a_clock_hour_files_short_last_days_are_judged_by_the_file(tmp_path: Path) -> None:
    """A clock-hour file's day exported at 10:40 holds 09:30 and 10:00 (a tie by counts: the 09:30 half hour
    landed as an hour and the 10:00 bar was rejected as overlapping it), and one exported at 10:10 holds 09:30
    alone: 09:30 is a bar of both grids, so the first day is on the hour by its 10:00, the second takes the
    file's grid."""
    ny = ZoneInfo("America/New_York")
    days = yahoo_days(dt.date(2024, 4, 1), dt.date(2024, 4, 9))
    hours = [dt.time(9, 30)] + [dt.time(h) for h in range(10, 16)]
    whole = [dt.datetime.combine(d, t, ny) for d in days[:5] for t in hours]
    short = [dt.datetime.combine(days[5], dt.time(9, 30), ny), dt.datetime.combine(days[5], dt.time(10), ny)]
    alone = [dt.datetime.combine(days[6], dt.time(9, 30), ny)]
    rows = whole + short + alone
    text = YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in rows)
    root = tmp_path / "lake"
    assert csv_ingest.run(ctx(root), write_file(tmp_path, "short.csv", text), "ABC", "1h", None).ok
    landed = {r[0] for r in query(root, "SELECT ts FROM bars")}
    assert landed == {t for t in rows if t.minute == 0}
    reasons = {r[0]: r[1] for r in query(root, "SELECT ts, reason FROM bars_rejected")}
    assert set(reasons) == {t for t in rows if t.minute == 30}
    assert "as the file's" not in reasons[short[0]] and "as the file's" in reasons[alone[0]], reasons


def test_cadence_is_the_most_common_spacing_the_larger_of_equals() -> None:
    t0 = dt.datetime(2024, 3, 4, 14, 30, tzinfo=dt.UTC)
    minute, hour = dt.timedelta(minutes=1), dt.timedelta(hours=1)
    assert csv_ingest.cadence([]) is None and csv_ingest.cadence([t0, t0]) is None
    # out of order, a duplicate, a gap: still one minute
    times = [t0 + k * minute for k in (5, 0, 1, 2, 2, 3, 4, 60, 61, 62)]
    assert csv_ingest.cadence(times) == (minute, 7, 8)
    # a stock's hours opening at 09:30 then 10:00: the half hour is once a day, the hour five times
    day = [t0, t0 + hour / 2] + [t0 + hour / 2 + k * hour for k in range(1, 6)]
    assert csv_ingest.cadence(day) == (hour, 5, 6)
    assert csv_ingest.cadence([t0, t0 + minute, t0 + minute + hour]) == (hour, 1, 2)


def test_a_crypto_file_read_as_a_stock_is_refused(tmp_path: Path) -> None:
    """Without --asset-class a crypto file was stored as a stock: weekend bars landed (intraday) or daily
    bars were stamped at New York's 16:00 close though a crypto day closes at midnight UTC."""
    hourly = write_file(
        tmp_path,
        "BTCUSDT-1h.csv",
        BINANCE_HEADER + binance_rows(MINUTE_START, dt.timedelta(hours=1), 24 * 14),
    )
    root = tmp_path / "lake"
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), hourly, "BTCUSDT", "1h", None)
    assert str(err.value) == (
        f"{hourly}: 88 of 336 rows are on a Saturday or Sunday (in New York and in UTC), when no US exchange "
        "trades; BTCUSDT is read as a stock: is it crypto? use --asset-class crypto; nothing was stored"
    )
    daily = write_file(
        tmp_path,
        "BTC-USD.csv",
        yahoo_daily(yahoo_days(dt.date(2024, 3, 1), dt.date(2024, 3, 31), every_day=True)),
    )
    with pytest.raises(
        MarketlakeError,
        match=r"BTC-USD\.csv: 10 of 31 rows are on a Saturday or Sunday, .*--asset-class crypto",
    ):
        csv_ingest.run(ctx(root), daily, "BTCUSD", "1d", None)
    assert landed(root) == 0
    assert csv_ingest.run(ctx(root), hourly, "BTCUSDT", "1h", None, asset_class="crypto").ok
    assert csv_ingest.run(ctx(root), daily, "BTCUSD", "1d", None, asset_class="crypto").ok
    assert query(root, "SELECT DISTINCT asset_class FROM bars") == [("crypto",)]
    assert landed(root) == 336 + 31


def test_a_few_weekend_rows_in_a_stock_file_are_quarantined_not_landed(
    tmp_path: Path, lake_root: Path
) -> None:
    """A Saturday minute is not a US stock's bar; two in a file are stray rows, quarantined with the reason.
    A Sunday evening in New York (Monday in UTC, the overnight session of 24/5 brokers) is not a weekend."""
    f = write_file(
        tmp_path,
        "m.csv",
        "timestamp,open,high,low,close,volume\n"
        "2024-03-08T15:58:00-05:00,5,6,4,5.5,10\n"
        "2024-03-08T15:59:00-05:00,5,6,4,5.5,10\n"
        "2024-03-09T10:00:00-05:00,5,6,4,5.5,10\n"  # Saturday
        "2024-03-09T10:01:00-05:00,5,6,4,5.5,10\n"  # Saturday
        "2024-03-10T20:00:00-04:00,5,6,4,5.5,10\n"  # Sunday 20:00 New York, Monday 00:00 UTC
        "2024-03-11T09:30:00-04:00,5,6,4,5.5,10\n"
        "2024-03-11T09:31:00-04:00,5,6,4,5.5,10\n"
        "2024-03-11T09:32:00-04:00,5,6,4,5.5,10\n"
        "2024-03-11T09:33:00-04:00,5,6,4,5.5,10\n"
        "2024-03-11T09:34:00-04:00,5,6,4,5.5,10\n"
        "2024-03-11T09:35:00-04:00,5,6,4,5.5,10\n"
        "2024-03-11T09:36:00-04:00,5,6,4,5.5,10\n",
    )
    summary = csv_ingest.run(ctx(lake_root), f, "ABC", "1m", None)
    assert summary.ok and summary.of("ABC").rows_landed == 10
    rows = query(lake_root, "SELECT line_number, reason FROM bars_rejected ORDER BY line_number")
    assert [r[0] for r in rows] == [4, 5]
    assert rows[0][1] == (
        "time 2024-03-09T15:00:00+00:00 is a Saturday in New York and in UTC: no US exchange "
        "trades a stock then (is the file crypto? use --asset-class crypto)"
    )


def test_the_cli_refuses_a_file_of_the_wrong_interval_in_one_line(tmp_path: Path, lake_root: Path) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    f = write_file(
        tmp_path, "btc1m.csv", BINANCE_HEADER + binance_rows(MINUTE_START, dt.timedelta(minutes=1), 120)
    )
    base = ["--lake", str(lake_root), "ingest", "csv", str(f), "--symbol", "BTCUSDT"]
    r = CliRunner().invoke(cli, [*base, "--interval", "1h", "--asset-class", "crypto"])
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        f"error: {f}: rows are 1 minute apart (the most common spacing, 119 of 119), finer than --interval 1h: "
        "use --interval 1m; nothing was stored"
    ], r.output
    assert "Traceback" not in r.output
    assert landed(lake_root) == 0
    r = CliRunner().invoke(cli, [*base, "--interval", "1m", "--asset-class", "crypto"])
    assert r.exit_code == 0, r.output
    assert landed(lake_root) == 120


def test_a_clock_hour_stock_file_trains_with_the_gap_the_readme_says(tmp_path: Path) -> None:
    """Its sessions start at 10:00, half an hour after the open: at the default max_gap_minutes = 15 every
    session is a segment of 6 bars, never past the 60-bar warm-up, and reading it says why and what to set;
    with max_gap_minutes = 30 (README) the segments run across sessions and the train period reads."""
    import numpy as np

    from lake.config import Settings
    from rl.episodes import EmptyPeriod, load_period

    ny = ZoneInfo("America/New_York")
    days = yahoo_days(dt.date(2024, 1, 2), dt.date(2024, 4, 30))
    rows = [
        dt.datetime.combine(d, t, ny)
        for d in days
        for t in [dt.time(9, 30)] + [dt.time(h) for h in range(10, 16)]
    ]
    px = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, len(rows))))
    text = YAHOO_INTRADAY_HEADER + "".join(
        f"{t.isoformat(' ')},{p:.4f},{p * 1.01:.4f},{p * 0.99:.4f},{p:.4f},{p:.4f},100\n"
        for t, p in zip(rows, px, strict=True)
    )
    root = tmp_path / "lake"
    assert csv_ingest.run(ctx(root), write_file(tmp_path, "tv.csv", text), "ABC", "1h", None).ok
    with pytest.raises(
        EmptyPeriod, match=r"max_gap_minutes = 15 starts a new segment.*needs max_gap_minutes = 30"
    ):
        load_period(root, Settings(), ["ABC"], "1h", "train")
    data = load_period(root, Settings(max_gap_minutes=30), ["ABC"], "1h", "train")
    assert data.n_rows > 200 and len(np.unique(data.segment_id)) == 1


# --- holes a quant found feeding real vendor files (session 8) -------------------------------------------


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from cli.main import cli

    return CliRunner().invoke(cli, list(args))


def test_a_file_cut_short_mid_line_quarantines_its_last_line_and_says_so(
    tmp_path: Path, lake_root: Path
) -> None:
    """The real SPY file cut 6 bytes short: its last row read `…,266.859985,266.8` (or a volume of 960) and
    landed a close that is not in the file. The line without a line ending goes to bars_rejected, named; the
    other rows land."""
    data = SPY.read_bytes()
    cut = write_file(tmp_path, "yahoofinance-SPY-20080101-20180101.csv", data[:-6].decode())
    lines = data.decode().count("\n")  # the whole file's lines; the cut one is the last
    summary = csv_ingest.run(ctx(lake_root), cut, "SPY", "1d", None)
    assert summary.ok, summary.errors
    assert (summary.of("SPY").rows_landed, summary.of("SPY").rows_rejected) == (2516, 3)
    reason = (
        "no line ending, and its last field (Volume) is shorter than in every other row: the file looks cut "
        "short (a whole file ends with a newline); if that line is whole, end the file with a newline and "
        "import it again"
    )
    assert query(
        lake_root, "SELECT line_number, raw, close, reason FROM bars_rejected WHERE line_number > 2000"
    ) == [(lines, data[:-6].decode().rsplit("\n", 1)[1], None, reason)]
    assert any(f"{cut.name}: line {lines} has no line ending" in n for n in summary.notes), summary.notes
    last = query(lake_root, "SELECT ts, close FROM bars ORDER BY ts DESC LIMIT 1")[0]
    assert last[0].date() == dt.date(2017, 12, 28) and last[1] != 266.8
    assert not query(lake_root, "SELECT 1 FROM bars WHERE close = 266.8 OR volume = 960")
    # the command says so (a note), exit 0: the other rows landed
    r = _cli(
        "--lake", str(tmp_path / "cli-lake"), "ingest", "csv", str(cut), "--symbol", "SPY", "--interval", "1d"
    )
    assert r.exit_code == 0, r.output
    assert f"note: {cut.name}: line {lines} has no line ending: the file looks cut short" in r.output, (
        r.output
    )


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_only_a_last_line_without_its_line_ending_is_quarantined(tmp_path: Path, newline: str) -> None:
    rows = ["Date,Open,High,Low,Close,Volume", "2024-03-04,10,12,9,11,1000", "2024-03-05,10,12,9,11,960"]
    whole = write_file(tmp_path, "whole.csv", newline.join(rows) + newline)
    s = csv_ingest.run(ctx(tmp_path / "a"), whole, "ABC", "1d", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (2, 0)
    cut = tmp_path / "cut.csv"
    cut.write_bytes((newline.join(rows)).encode())  # the last row written but not ended
    s = csv_ingest.run(ctx(tmp_path / "b"), cut, "ABC", "1d", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (1, 1)
    assert query(tmp_path / "b", "SELECT line_number FROM bars_rejected") == [(3,)]
    # a header alone without its newline is a file of one line: no rows, as before (not "cut short")
    head = tmp_path / "head.csv"
    head.write_bytes(rows[0].encode())
    s = csv_ingest.run(ctx(tmp_path / "c"), head, "ABC", "1d", None)
    assert s.errors == [f"{head}: no rows after the header"]


def _aug_2024_btc(day_first: bool, days: range = range(1, 32)) -> str:
    out = ["Date,Open,High,Low,Close,Volume"]
    for d in days:
        out.append(
            f"{d:02d}/08/2024,60000,61000,59000,60500,100"
            if day_first
            else f"08/{d:02d}/2024,60000,61000,59000,60500,100"
        )
    return "\n".join(out) + "\n"


def test_day_first_dates_are_refused_whole_naming_the_line(tmp_path: Path) -> None:
    """01/08/2024 … 31/08/2024 landed 12 bars misdated (1 Aug as 8 Jan) and rejected 19 as 'month must be in
    1..12', exit 0. Slash dates are M/D/YYYY (README): a file that cannot be is refused, nothing stored."""
    f = write_file(tmp_path, "btc-aug.csv", _aug_2024_btc(day_first=True))
    root = tmp_path / "lake"
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), f, "BTCUSD", "1d", None, asset_class="crypto")
    assert str(err.value) == (
        f"{f}: line 14: dates look day-first: 13/08/2024 (13 is not a month; slash dates are read as "
        "M/D/YYYY): if the file's dates are D/M/YYYY, import it with --date-order dmy; nothing was stored"
    )
    assert landed(root) == 0
    r = _cli(
        "--lake",
        str(root),
        "ingest",
        "csv",
        str(f),
        "--symbol",
        "BTCUSD",
        "--interval",
        "1d",
        "--asset-class",
        "crypto",
    )
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [f"error: {err.value}"], r.output
    assert landed(root) == 0


def test_day_first_dates_land_on_their_days_with_date_order_dmy(tmp_path: Path) -> None:
    f = write_file(tmp_path, "btc-aug.csv", _aug_2024_btc(day_first=True))
    root = tmp_path / "lake"
    r = _cli(
        "--lake", str(root), "-q", "ingest", "csv", str(f), "--symbol", "BTCUSD", "--interval", "1d",
        "--asset-class", "crypto", "--date-order", "dmy",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    got = query(root, "SELECT ts FROM bars ORDER BY ts")
    assert [t for (t,) in got] == [dt.datetime(2024, 8, d, tzinfo=dt.UTC) for d in range(1, 32)]
    # the same file month-first lands the same bars without the option (README: slash dates are M/D/YYYY)
    g = write_file(tmp_path, "btc-aug-us.csv", _aug_2024_btc(day_first=False))
    assert csv_ingest.run(ctx(tmp_path / "us"), g, "BTCUSD", "1d", None, asset_class="crypto").ok
    assert query(tmp_path / "us", "SELECT ts FROM bars ORDER BY ts") == got
    # said month-first, a day-first date is a bad row (as said), not a refusal
    s = csv_ingest.run(ctx(tmp_path / "m"), f, "BTCUSD", "1d", None, asset_class="crypto", date_order="mdy")
    assert (s.of("BTCUSD").rows_landed, s.of("BTCUSD").rows_rejected) == (12, 19)


def test_day_first_dates_that_could_be_month_first_are_not_guessed(tmp_path: Path) -> None:
    """01/08/2024 … 12/08/2024: every date reads as M/D/YYYY too (8 Jan, 8 Feb, …). Read so, each row would
    land a month from the last; the first number changing from row to row while the second stays says the
    dates are day-first: refused, unless --date-order says which."""
    f = write_file(tmp_path, "btc-aug.csv", _aug_2024_btc(day_first=True, days=range(1, 13)))
    root = tmp_path / "lake"
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), f, "BTCUSD", "1d", None, asset_class="crypto")
    assert str(err.value) == (
        f"{f}: lines 2-3: dates look day-first: 01/08/2024 then 02/08/2024 (the first number changes from row "
        "to row, the second does not; slash dates are read as M/D/YYYY): say which with --date-order dmy "
        "(D/M/YYYY) or --date-order mdy (M/D/YYYY); nothing was stored"
    )
    assert landed(root) == 0
    assert csv_ingest.run(ctx(root), f, "BTCUSD", "1d", None, asset_class="crypto", date_order="dmy").ok
    assert query(root, "SELECT min(ts), max(ts) FROM bars") == [
        (dt.datetime(2024, 8, 1, tzinfo=dt.UTC), dt.datetime(2024, 8, 12, tzinfo=dt.UTC))
    ]


def test_month_first_files_are_not_taken_for_day_first(lake_root: Path, tmp_path: Path) -> None:
    """The S&P 500 minute sample (11/4/2019 9:30 …) and a US daily file across month ends still land."""
    assert csv_ingest.run(ctx(lake_root), SP500, "SPX", "1m", "America/New_York").ok
    days = yahoo_days(dt.date(2024, 1, 16), dt.date(2024, 2, 16))  # across a month's end, no holiday
    text = "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"{d.month}/{d.day}/{d.year},10,12,9,11,100\n" for d in days
    )
    s = csv_ingest.run(ctx(tmp_path / "d"), write_file(tmp_path, "us.csv", text), "ABC", "1d", None)
    assert s.ok and s.of("ABC").rows_landed == len(days)


def _five_minute_stock_rows(days: list[dt.date], step_minutes: int = 5) -> str:
    ny = ZoneInfo("America/New_York")
    rows = [
        dt.datetime.combine(d, dt.time(9, 30), ny) + k * dt.timedelta(minutes=step_minutes)
        for d in days
        for k in range(390 // step_minutes)
    ]
    return YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in rows)


def test_a_file_coarser_than_its_interval_is_refused_whole(tmp_path: Path) -> None:
    """A 5-minute file imported as 1m landed every bar available 1 minute after it opened, its close known
    only 5 minutes after: look-ahead into the features (and every symbol's market context for SPY/QQQ)."""
    five = write_file(
        tmp_path, "btc5m.csv", BINANCE_HEADER + binance_rows(MINUTE_START, dt.timedelta(minutes=5), 288)
    )
    root = tmp_path / "lake"
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), five, "BTCUSDT", "1m", None, asset_class="crypto")
    assert str(err.value) == (
        f"{five}: rows are 5 minutes apart or a multiple of it (287 of 287 spacings within a day; the most "
        "common, 5 minutes, 287 times), never 1 minute: coarser than --interval 1m, whose bars would be "
        "available 1 minute after they open when their close is known only 5 minutes after: use "
        "--interval 5m; nothing was stored"
    )
    assert landed(root) == 0
    assert csv_ingest.run(ctx(root), five, "BTCUSDT", "5m", None, asset_class="crypto").ok
    assert query(root, "SELECT DISTINCT available_at - ts FROM bars") == [(dt.timedelta(minutes=5),)]
    # a stock's 5-minute bars as 1m, and its 15-minute bars as 5m
    week = yahoo_days(dt.date(2024, 3, 4), dt.date(2024, 3, 8))
    stock = write_file(tmp_path, "abc5m.csv", _five_minute_stock_rows(week))
    with pytest.raises(MarketlakeError, match=r"rows are 5 minutes apart .*: use --interval 5m; nothing was"):
        csv_ingest.run(ctx(root), stock, "ABC", "1m", None)
    fifteen = write_file(tmp_path, "abc15m.csv", _five_minute_stock_rows(week, 15))
    with pytest.raises(MarketlakeError, match=r"rows are 15 minutes apart .*coarser than --interval 5m"):
        csv_ingest.run(ctx(root), fifteen, "ABC", "5m", None)
    # hourly bars from 10:00 after the session's half hour (09:30, 10:00, 11:00, …) as 15m: use 1h
    ny = ZoneInfo("America/New_York")
    tv = [
        dt.datetime.combine(d, t, ny)
        for d in week
        for t in [dt.time(9, 30)] + [dt.time(h) for h in range(10, 16)]
    ]
    hourly = write_file(
        tmp_path,
        "tv.csv",
        YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in tv),
    )
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), hourly, "ABC", "15m", None)
    assert (
        "rows are 30 minutes apart or a multiple of it (30 of 30 spacings within a day; the most common, "
        "1 hour, 25 times), never 15 minutes" in str(err.value)
    )
    assert str(err.value).endswith(": use --interval 1h; nothing was stored")
    # 4-hour crypto bars as 1h: no interval is 4 hours
    four = write_file(
        tmp_path, "btc4h.csv", BINANCE_HEADER + binance_rows(MINUTE_START, dt.timedelta(hours=4), 60)
    )
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), four, "BTCUSDT", "1h", None, asset_class="crypto")
    assert "no --interval is 4 hours (1m, 5m, 15m, 1h, 1d): resample the file to one first" in str(err.value)
    assert landed(root) == 288


def test_a_weekly_file_as_daily_is_refused(tmp_path: Path) -> None:
    mondays = [dt.date(2023, 1, 2) + dt.timedelta(weeks=i) for i in range(40)]
    stock = write_file(tmp_path, "weekly.csv", yahoo_daily([d for d in mondays if d not in HOLIDAYS]))
    root = tmp_path / "lake"
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), stock, "ABC", "1d", None)
    assert str(err.value).startswith(
        f"{stock}: rows are 7 days apart (the most common spacing), never one trading day: coarser than "
        "--interval 1d"
    )
    assert str(err.value).endswith("nothing was stored")
    crypto = write_file(tmp_path, "btcw.csv", yahoo_daily(mondays))
    with pytest.raises(MarketlakeError, match="rows are 7 days apart .*never one day: coarser than"):
        csv_ingest.run(ctx(root), crypto, "BTCUSD", "1d", None, asset_class="crypto")
    assert landed(root) == 0


def test_sparse_or_short_files_of_their_interval_are_not_taken_for_coarser(tmp_path: Path) -> None:
    """An illiquid 1m stock (quiet minutes missing, every spacing a few minutes, some of them 1 minute), a
    stock with one bar a day, a few 5-minute bars as 1m (too few to tell), a daily stock file with
    holidays: each lands."""
    import random

    ny = ZoneInfo("America/New_York")
    rnd = random.Random(7)
    week = yahoo_days(dt.date(2024, 3, 4), dt.date(2024, 3, 8))
    cases: list[tuple[str, str, str, str | None]] = []
    illiquid = [
        dt.datetime.combine(d, dt.time(9, 30), ny) + dt.timedelta(minutes=m)
        for d in week
        for m in range(390)
        if rnd.random() < 0.2
    ]
    text = YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in illiquid)
    cases.append(("illiquid.csv", text, "1m", None))
    # spacings of 2 or 3 minutes, never 1: still not all a multiple of one coarser cadence
    odd = [dt.datetime.combine(week[0], dt.time(10), ny) + dt.timedelta(minutes=m) for m in range(0, 150, 5)]
    odd += [t + dt.timedelta(minutes=2) for t in odd]
    text = YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in sorted(odd))
    cases.append(("odd.csv", text, "1m", None))
    once = [
        dt.datetime.combine(d, dt.time(9, 30), ny)
        for d in yahoo_days(dt.date(2024, 1, 2), dt.date(2024, 3, 29))
    ]
    text = YAHOO_INTRADAY_HEADER + "".join(f"{t.isoformat(' ')},10,12,9,11,11,100\n" for t in once)
    cases.append(("once.csv", text, "1m", None))
    cases.append(
        (
            "short.csv",
            BINANCE_HEADER + binance_rows(MINUTE_START, dt.timedelta(minutes=5), 12),
            "1m",
            "crypto",
        )
    )
    cases.append(("d.csv", yahoo_daily(yahoo_days(dt.date(2023, 11, 1), dt.date(2024, 2, 29))), "1d", None))
    for name, content, interval, klass in cases:
        f = write_file(tmp_path, name, content)
        s = csv_ingest.run(ctx(tmp_path / f"lake-{name}"), f, "ABC", interval, None, asset_class=klass)
        assert s.ok and s.of("ABC").rows_landed > 0, (name, s.errors)


def test_a_lower_case_symbol_is_refused_with_the_upper_case_one(tmp_path: Path, lake_root: Path) -> None:
    """`--symbol spy` stored a symbol `spy` beside SPY (Binance and Polygon refuse lower case)."""
    with pytest.raises(MarketlakeError, match=r"^--symbol 'spy': symbols are upper case: SPY\?"):
        csv_ingest.run(ctx(lake_root), SPY, "spy", "1d", None)
    r = _cli("--lake", str(lake_root), "ingest", "csv", str(SPY), "--symbol", "spy", "--interval", "1d")
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "error: --symbol 'spy': symbols are upper case: SPY? (nothing was stored)"
    ], r.output
    assert landed(lake_root) == 0


def test_binance_count_column_is_the_trade_count_when_unambiguous(tmp_path: Path) -> None:
    """Binance's header-bearing CSVs name the trade count `count`: it is the trades column unless another
    column already is."""
    f = write_file(
        tmp_path, "btc.csv", BINANCE_HEADER + binance_rows(MINUTE_START, dt.timedelta(minutes=1), 30)
    )
    s = csv_ingest.run(ctx(tmp_path / "a"), f, "BTCUSDT", "1m", None, asset_class="crypto")
    assert s.ok
    assert not any("count" in n for n in s.notes), s.notes
    assert query(tmp_path / "a", "SELECT DISTINCT trades FROM bars") == [(10,)]
    both = "Date,Open,High,Low,Close,Volume,Trades,Count\n2024-03-04,10,12,9,11,1000,7,3\n"
    s = csv_ingest.run(ctx(tmp_path / "b"), write_file(tmp_path, "both.csv", both), "ABC", "1d", None)
    assert s.ok and "both.csv: columns not used: Count" in s.notes
    assert query(tmp_path / "b", "SELECT trades FROM bars") == [(7,)]
    two = "Date,Open,High,Low,Close,Volume,count,COUNT\n2024-03-04,10,12,9,11,1000,7,3\n"
    s = csv_ingest.run(ctx(tmp_path / "c"), write_file(tmp_path, "two.csv", two), "ABC", "1d", None)
    assert s.ok and query(tmp_path / "c", "SELECT trades FROM bars") == [(None,)]


AUG = dt.datetime(2024, 8, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def hourly(first: int, n: int, *, skip: frozenset[int] = frozenset(), close: float = 100.5) -> str:
    """A header and `n` hourly crypto rows from hour `first` after AUG (hours in `skip` left out)."""
    rows = "".join(
        f"{(AUG + i * HOUR).isoformat()},100,101,99,{close},2.5\n"
        for i in range(first, first + n)
        if i not in skip
    )
    return "Timestamp,Open,High,Low,Close,Volume\n" + rows


def _export(tmp_path: Path, folder: str, text: str) -> Path:
    """A broker's export: every one is called export.csv."""
    (tmp_path / folder).mkdir(exist_ok=True)
    return write_file(tmp_path / folder, "export.csv", text)


def _import(root: Path, f: Path, *extra: str) -> Any:
    return _cli(
        "--lake", str(root), "ingest", "csv", str(f), "--symbol", "SOLUSDT", "--interval", "1h",
        "--asset-class", "crypto", *extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("second", "removed", "dates"),
    [
        ((48, 48), 48, "2024-08-01 to 2024-08-02"),  # the next export: no date in common
        ((24, 48), 24, "2024-08-01"),  # a rolling export overlapping the first by a day
    ],
)
def test_a_second_export_of_the_same_name_is_refused_and_nothing_is_lost(
    tmp_path: Path, lake_root: Path, second: tuple[int, int], removed: int, dates: str
) -> None:
    """Brokers name every export alike: a second `export.csv` of other dates replaced the first's rows as
    if it were a corrected version, silently removing its bars (exit 0, no note) and overwriting its raw
    copy. It is refused before anything is written, naming the bars and dates it would remove."""
    jan = _export(tmp_path, "jan", hourly(0, 48))
    feb = _export(tmp_path, "feb", hourly(*second, close=100.25))
    r = _import(lake_root, jan)
    assert r.exit_code == 0, r.output
    before = _files(lake_root)
    r = _import(lake_root, feb)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert lines[0].startswith(f"error: {feb}: an earlier file named 'export.csv' landed SOLUSDT 1h bars"), (
        r.output
    )
    assert f"would remove {removed} of them, dated {dates}, outside this file's span" in lines[0], r.output
    assert "rename the file" in lines[0] and "--replace" in lines[0], r.output
    assert _files(lake_root) == before  # no bar, no rejection, no raw copy written
    assert (lake_root / "raw" / "csv" / "SOLUSDT" / "1h" / "export.csv").read_bytes() == jan.read_bytes()
    assert query(lake_root, "SELECT count(*), min(ts), max(ts), min(close) FROM bars") == [
        (48, AUG, AUG + 47 * HOUR, 100.5)
    ]


def test_a_second_export_of_the_same_name_with_replace_lands_and_says_what_it_removed(
    tmp_path: Path, lake_root: Path
) -> None:
    jan = _export(tmp_path, "jan", hourly(0, 48))
    feb = _export(tmp_path, "feb", hourly(48, 48, close=100.25))
    assert _import(lake_root, jan).exit_code == 0
    r = _import(lake_root, feb, "--replace")
    assert r.exit_code == 0, r.output
    assert "removes 48 SOLUSDT 1h bars its earlier version landed (2024-08-01 to 2024-08-02)" in r.output
    assert query(lake_root, "SELECT count(*), min(ts), max(ts), min(close) FROM bars") == [
        (48, AUG + 48 * HOUR, AUG + 95 * HOUR, 100.25)
    ]
    assert (lake_root / "raw" / "csv" / "SOLUSDT" / "1h" / "export.csv").read_bytes() == feb.read_bytes()


def test_a_correction_within_the_earlier_span_still_replaces_its_rows(
    tmp_path: Path, lake_root: Path
) -> None:
    """A corrected version of the same file (values changed, a bar inside its span dropped) is what a
    same-name import is for: it replaces the earlier rows, and a note says which bars it removed. One that
    also drops the last bar (outside its own span) is refused unless --replace. A version that only adds
    dates removes nothing and says nothing."""
    f = _export(tmp_path, "x", hourly(0, 48))
    assert _import(lake_root, f).exit_code == 0
    f.write_text(hourly(0, 48, skip=frozenset({10}), close=100.75), encoding="utf-8")
    r = _import(lake_root, f)
    assert r.exit_code == 0, r.output
    assert "removes 1 SOLUSDT 1h bars its earlier version landed (2024-08-01)" in r.output
    assert query(lake_root, "SELECT count(*), min(ts), max(ts), min(close), max(close) FROM bars") == [
        (47, AUG, AUG + 47 * HOUR, 100.75, 100.75)
    ]
    f.write_text(hourly(0, 47, skip=frozenset({10, 11}), close=100.5), encoding="utf-8")
    r = _import(lake_root, f)
    assert r.exit_code == 1, r.output
    assert "would remove 1 of them, dated 2024-08-02, outside this file's span" in r.output, r.output
    assert query(lake_root, "SELECT count(*), max(close) FROM bars") == [(47, 100.75)]
    r = _import(lake_root, f, "--replace")
    assert r.exit_code == 0, r.output
    assert "removes 2 SOLUSDT 1h bars its earlier version landed (2024-08-01 to 2024-08-02)" in r.output
    assert query(lake_root, "SELECT count(*), min(ts), max(ts), min(close), max(close) FROM bars") == [
        (45, AUG, AUG + 46 * HOUR, 100.5, 100.5)
    ]
    f.write_text(hourly(0, 96), encoding="utf-8")
    r = _import(lake_root, f)
    assert r.exit_code == 0, r.output
    assert "removes" not in r.output, r.output
    assert query(lake_root, "SELECT count(*) FROM bars") == [(96,)]


def _sessions(first: dt.date, last: dt.date) -> list[dt.date]:
    """XNYS sessions from `first` to `last`."""
    out = []
    for i in range((last - first).days + 1):
        day = first + dt.timedelta(days=i)
        try:
            session_stamp(day)
        except Exception:
            continue
        out.append(day)
    return out


def test_a_narrower_export_of_the_same_name_is_refused_unless_replace(
    tmp_path: Path, lake_root: Path
) -> None:
    """A year's export.csv (211 sessions) then a quarter's (63) under the same name kept only the quarter's
    63 bars, with a note and exit 0: its span lay within the first's. Any bar the earlier file landed
    outside the new file's span makes it another export: refused, nothing lost; --replace to mean it."""
    year, quarter = (
        _sessions(dt.date(2024, 1, 2), dt.date(2024, 10, 31)),
        _sessions(dt.date(2024, 4, 1), dt.date(2024, 6, 28)),
    )
    assert (len(year), len(quarter)) == (211, 63)
    text = lambda days: "Date,Open,High,Low,Close,Volume\n" + "".join(f"{d},10,12,9,11,100\n" for d in days)  # noqa: E731
    exp1 = _export(tmp_path, "exp1", text(year))
    exp2 = _export(tmp_path, "exp2", text(quarter))

    def run(f: Path, *extra: str) -> Any:
        return _cli(
            "--lake", str(lake_root), "ingest", "csv", str(f), "--symbol", "ABC", "--interval", "1d",
            "--source", "mybroker", *extra,
        )  # fmt: skip

    assert run(exp1).exit_code == 0
    before = _files(lake_root)
    r = run(exp2)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert "would remove 148 of them, dated 2024-01-02 to 2024-03-28 and 2024-07-01 to 2024-10-31" in lines[0]
    assert _files(lake_root) == before
    assert query(lake_root, "SELECT count(*) FROM bars") == [(211,)]
    r = run(exp2, "--replace")
    assert r.exit_code == 0, r.output
    assert query(lake_root, "SELECT count(*) FROM bars") == [(63,)]


def test_a_rejected_row_does_not_widen_the_span_a_same_name_import_may_remove_in(
    tmp_path: Path, lake_root: Path
) -> None:
    """The span is the bars the new file lands: a half-year export whose one stray row, dated at the end of
    the earlier export's range, is rejected (high below low) must not make July..October 'inside' it and let
    those bars go with a note."""
    year, half = (
        _sessions(dt.date(2024, 1, 2), dt.date(2024, 10, 31)),
        _sessions(dt.date(2024, 1, 2), dt.date(2024, 6, 28)),
    )
    head = "Date,Open,High,Low,Close,Volume\n"
    exp1 = _export(tmp_path, "exp1", head + "".join(f"{d},10,12,9,11,100\n" for d in year))
    exp2 = _export(
        tmp_path, "exp2", head + "".join(f"{d},10,12,9,11,100\n" for d in half) + "2024-10-31,10,8,9,11,100\n"
    )

    def run(f: Path) -> Any:
        return _cli(
            "--lake", str(lake_root), "ingest", "csv", str(f), "--symbol", "ABC", "--interval", "1d",
            "--source", "mybroker",
        )  # fmt: skip

    assert run(exp1).exit_code == 0
    r = run(exp2)
    assert r.exit_code == 1, r.output
    assert "2024-07-01 to 2024-10-31" in r.output and "nothing was stored" in r.output, r.output
    assert query(lake_root, "SELECT count(*) FROM bars") == [(len(year),)]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_whole_last_row_without_a_final_newline_lands_without_a_note(tmp_path: Path, newline: str) -> None:
    """Files written with '\\n'.join, or edited by hand, lack the final newline: their whole last row was
    quarantined as 'cut short'. Only a last field shorter than its column ever is (or a missing field) looks
    cut; a whole row lands and nothing is said."""
    rows = ["Date,Open,High,Low,Close,Volume", "2024-03-04,10,12,9,11,1000", "2024-03-05,10,12,9,11.5,1200"]
    f = tmp_path / "joined.csv"
    f.write_bytes(newline.join(rows).encode())
    s = csv_ingest.run(ctx(tmp_path / "a"), f, "ABC", "1d", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (2, 0)
    assert not any("line ending" in n for n in s.notes), s.notes
    assert query(tmp_path / "a", "SELECT close, volume FROM bars ORDER BY ts DESC LIMIT 1") == [
        (11.5, 1200.0)
    ]
    # the real SPY file without its last newline lands every row it lands whole, and says nothing
    spy = write_file(tmp_path, "spy.csv", SPY.read_text(encoding="utf-8").rstrip("\n"))
    s = csv_ingest.run(ctx(tmp_path / "b"), spy, "SPY", "1d", None)
    assert (s.of("SPY").rows_landed, s.of("SPY").rows_rejected) == (2517, 2)
    assert not any("line ending" in n for n in s.notes), s.notes
    # a last line with a field missing is still cut short
    f.write_bytes(newline.join([*rows[:2], "2024-03-05,10,12,9"]).encode())
    s = csv_ingest.run(ctx(tmp_path / "c"), f, "ABC", "1d", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (1, 1)
    assert query(tmp_path / "c", "SELECT reason FROM bars_rejected")[0][0].startswith(
        "no line ending, and 4 fields where the header has 6: the file looks cut short"
    )


def _spy_columns(order: list[str]) -> str:
    """The SPY sample with its columns in `order` (names from its header)."""
    lines = SPY.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    at = [header.index(c) for c in order]
    return "".join(",".join(line.split(",")[i] for i in at) + "\n" for line in lines)


@pytest.mark.parametrize(
    ("order", "cut", "last", "why"),
    [
        (
            ["Date", "Open", "High", "Low", "Volume", "Close"],
            6,
            "266.8",
            "is shorter than in every other row",
        ),
        (["Date", "Open", "High", "Low", "Volume", "Close"], 2, "266.85998", "has fewer decimal places"),
        (["Date", "Open", "High", "Low", "Close", "Volume"], 6, "960", "is shorter than in every other row"),
    ],
)
def test_a_last_field_cut_mid_number_is_still_quarantined(
    tmp_path: Path, order: list[str], cut: int, last: str, why: str
) -> None:
    text = _spy_columns(order)
    f = write_file(tmp_path, "spy.csv", text[:-cut])
    assert f.read_text(encoding="utf-8").endswith("," + last)
    s = csv_ingest.run(ctx(tmp_path / "lake"), f, "SPY", "1d", None)
    assert (s.of("SPY").rows_landed, s.of("SPY").rows_rejected) == (2516, 3)
    assert any("has no line ending: the file looks cut short" in n for n in s.notes), s.notes
    (reason,) = query(tmp_path / "lake", "SELECT reason FROM bars_rejected WHERE ts IS NULL")[0]
    assert f"its last field ({order[-1]}) {why}" in reason, reason
    assert not query(
        tmp_path / "lake", "SELECT 1 FROM bars WHERE close::VARCHAR LIKE '266.8%' OR volume = 960"
    )


def test_a_cut_short_row_imported_under_two_names_is_one_quarantined_bar_in_check(tmp_path: Path) -> None:
    """`check` counts a quarantined bar once per (ts, reason), or (raw, reason) without ts: the cut-short
    reason named the file, so the same cut file imported under two names counted its cut row twice."""
    cut = SPY.read_bytes()[:-6].decode()
    root = tmp_path / "lake"
    for name in ("spy-a.csv", "spy-b.csv"):
        assert csv_ingest.run(ctx(root), write_file(tmp_path, name, cut), "SPY", "1d", None).ok
    assert query(root, "SELECT count(*) FROM bars_rejected") == [(6,)]
    r = _cli("--lake", str(root), "check", "--format", "json")
    assert r.exit_code == 0, r.output
    import json

    (spy,) = [x for x in json.loads(r.stdout) if x["symbol"] == "SPY"]
    assert spy["rejected"] == 3, spy


def _us_daily(days: list[dt.date]) -> str:
    return "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"{d.month}/{d.day}/{d.year},10,12,9,11,100\n" for d in days
    )


def test_a_month_first_file_with_date_order_dmy_is_refused_in_one_line(tmp_path: Path) -> None:
    """A mistaken --date-order dmy on a US M/D/YYYY file was refused as 'on a Saturday or Sunday …: is it
    crypto?' (or, as crypto, landed its dates swapped). The mirror of the day-first check refuses it."""
    us = write_file(tmp_path, "us.csv", _us_daily(yahoo_days(dt.date(2024, 1, 16), dt.date(2024, 2, 16))))
    root = tmp_path / "lake"
    r = _cli(
        "--lake", str(root), "ingest", "csv", str(us), "--symbol", "ABC", "--interval", "1d",
        "--date-order", "dmy",
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        f"error: {us}: dates look month-first: 1/16/2024 on line 2 (16 is not a month; --date-order dmy reads "
        "D/M/YYYY); drop --date-order dmy; nothing was stored"
    ], r.output
    assert landed(root) == 0
    # every number at most 12: the second number counting the days says month-first (crypto: every day)
    early = write_file(
        tmp_path,
        "early.csv",
        _us_daily(yahoo_days(dt.date(2024, 1, 1), dt.date(2024, 1, 12), every_day=True)),
    )
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(root), early, "BTCUSD", "1d", None, asset_class="crypto", date_order="dmy")
    assert str(err.value) == (
        f"{early}: dates look month-first: 1/1/2024 then 1/2/2024 on lines 2-3 (the second number changes "
        "from row to row, the first does not; --date-order dmy reads D/M/YYYY); drop --date-order dmy; "
        "nothing was stored"
    )
    assert landed(root) == 0
    # without the option both land on their days; a day-first file and one day's rows still land with it
    assert csv_ingest.run(ctx(root), early, "BTCUSD", "1d", None, asset_class="crypto").ok
    assert csv_ingest.run(ctx(tmp_path / "us"), us, "ABC", "1d", None).ok
    dmy = write_file(tmp_path, "btc-aug.csv", _aug_2024_btc(day_first=True, days=range(1, 13)))
    assert csv_ingest.run(
        ctx(tmp_path / "d"), dmy, "BTCUSD", "1d", None, asset_class="crypto", date_order="dmy"
    ).ok
    one_day = "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"02/09/2024 {9 + m // 60}:{m % 60:02d},10,12,9,11,100\n" for m in range(30, 120)
    )
    s = csv_ingest.run(
        ctx(tmp_path / "o"), write_file(tmp_path, "oneday.csv", one_day), "BTCUSD", "1m", "UTC",
        asset_class="crypto", date_order="dmy",
    )  # fmt: skip
    assert s.ok and s.of("BTCUSD").rows_landed == 90
    assert query(tmp_path / "o", "SELECT min(ts) FROM bars") == [
        (dt.datetime(2024, 9, 2, 9, 30, tzinfo=dt.UTC),)
    ]


def test_rows_landed_counts_the_bars_new_to_the_lake(tmp_path: Path, lake_root: Path) -> None:
    """A second export holding the bars of the first plus one more day lands 1 row, not 3 (the summary's
    "rows landed" is bars new to the lake, not rows read)."""
    head = "Date,Open,High,Low,Close,Volume\n"
    first = write_file(tmp_path, "a.csv", head + "2024-03-01,5,6,4,5,1\n2024-03-04,5,6,4,5,1\n")
    second = write_file(
        tmp_path, "b.csv", head + "2024-03-01,5,6,4,5,1\n2024-03-04,5,6,4,5,1\n2024-03-05,5,6,4,5,1\n"
    )
    assert csv_ingest.run(ctx(lake_root), first, "ABC", "1d", None).of("ABC").rows_landed == 2
    s = csv_ingest.run(ctx(lake_root), second, "ABC", "1d", None)
    assert s.ok, s.errors
    assert (s.of("ABC").rows_landed, s.of("ABC").files_done) == (1, 1)
    assert query(lake_root, "SELECT count(*) FROM bars") == [(3,)]

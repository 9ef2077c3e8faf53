"""`marketlake ingest csv` (ingest/csv.py): which rows of a file are read as `--symbol`'s bars at `--interval`
(a ticker column, a file mixing intervals, rows with too many or too few fields, repeated times)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import lake
from ingest import csv as csv_ingest
from ingest.common import RunContext
from lake.config import Settings
from lake.errors import MarketlakeError


def ctx(root: Path) -> RunContext:
    return RunContext(root, Settings(), quiet=True)


def query(root: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def write_file(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from cli.main import cli

    return CliRunner().invoke(cli, list(args))


def _landed(root: Path) -> int:
    if not (root / "datasets").exists():
        return 0
    return int(query(root, "SELECT count(*) FROM bars")[0][0])


# --- a ticker column (Kaggle's Name/Symbol/Ticker, Stooq's <TICKER>) ---

KAGGLE = (
    "date,open,high,low,close,volume,Name\n"
    "2024-01-02,100,101,99,100.5,1000,AAL\n"
    "2024-01-02,187.15,188.44,183.89,185.64,82488700,AAPL\n"
    "2024-01-03,101,102,100,101.5,1000,AAL\n"
    "2024-01-03,184.22,185.88,183.43,184.25,58414500,AAPL\n"
    "2024-01-03,50,51,49,50.5,10,ABBV\n"
)


def test_a_file_of_several_tickers_lands_only_the_symbols_rows_and_says_what_it_left_out(
    tmp_path: Path,
) -> None:
    f = write_file(tmp_path, "all_stocks_5yr.csv", KAGGLE)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "AAPL", "1d", None)
    assert s.ok, s.errors
    assert (s.of("AAPL").rows_landed, s.of("AAPL").rows_rejected) == (2, 0)
    got = query(root, "SELECT symbol, ts::DATE, open, close, volume FROM bars ORDER BY ts")
    assert got == [
        ("AAPL", dt.date(2024, 1, 2), 187.15, 185.64, 82488700.0),
        ("AAPL", dt.date(2024, 1, 3), 184.22, 184.25, 58414500.0),
    ]
    assert query(root, "SELECT count(*) FROM bars_rejected") == [(0,)]
    assert any(
        "3 rows of 2 other tickers in its Name column left out (AAL, ABBV): only the rows of AAPL were read"
        in n
        for n in s.notes
    ), s.notes
    assert not any("columns not used" in n for n in s.notes)


@pytest.mark.parametrize(
    ("header", "value", "symbol"),
    [
        ("Symbol", "brk-b", "BRK.B"),
        ("TICKER", "BRK/B", "BRK.B"),
        ("<TICKER>", "AAPL.US", "AAPL"),
        ("ticker", "BTC-USD", "BTC-USD"),
    ],
)
def test_the_ticker_is_compared_as_the_lake_spells_symbols(
    tmp_path: Path, header: str, value: str, symbol: str
) -> None:
    text = (
        f"Date,Open,High,Low,Close,Volume,{header}\n"
        f"2024-01-02,10,11,9,10.5,100,{value}\n2024-01-03,10,11,9,10.5,100,OTHER\n"
    )
    f = write_file(tmp_path, "t.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, symbol, "1d", None)
    assert s.ok and s.of(symbol).rows_landed == 1, (s.errors, s.notes)


def test_a_file_without_the_symbols_rows_is_refused_naming_what_it_holds(tmp_path: Path) -> None:
    f = write_file(tmp_path, "all.csv", KAGGLE)
    root = tmp_path / "lake"
    with pytest.raises(MarketlakeError, match=r"all\.csv: no row's Name is MSFT: the column holds 3 other "
                       r"tickers \('AAL', 'AAPL', 'ABBV'\); nothing was stored"):  # fmt: skip
        csv_ingest.run(ctx(root), f, "MSFT", "1d", None)
    assert _landed(root) == 0


def test_a_file_of_one_other_ticker_is_refused_naming_both(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Volume,Ticker\n2024-01-02,10,11,9,10.5,100,AAL\n2024-01-03,10,11,9,10.5,100,AAL\n"
    f = write_file(tmp_path, "aal.csv", text)
    root = tmp_path / "lake"
    r = _cli("--lake", str(root), "ingest", "csv", str(f), "--symbol", "AAPL", "--interval", "1d")
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        f"error: {f}: its Ticker column holds 'AAL' on every row, not AAPL: is it AAL's file? Import it with "
        "--symbol AAL (or, if that column is not the ticker, remove it); nothing was stored"
    ]
    assert _landed(root) == 0


def test_another_tickers_last_line_cut_short_is_left_out_not_quarantined(tmp_path: Path) -> None:
    text = (
        "Ticker,Date,Open,High,Low,Close,Volume\n"
        "AAPL,2024-01-02,187.15,188.44,183.89,185.64,82488700\n"
        "AAL,2024-01-02,100,101,99,100.5,1000\n"
        "AAPL,2024-01-03,184.22,185.88,183.43,184.25,58414500\n"
        "AAL,2024-01-03,101,102,100,101.5,1"
    )
    f = write_file(tmp_path, "k.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "AAPL", "1d", None)
    assert (s.of("AAPL").rows_landed, s.of("AAPL").rows_rejected) == (2, 0)
    assert any("2 rows of 1 other ticker in its Ticker column left out (AAL)" in n for n in s.notes), s.notes
    assert not any("cut short" in n for n in s.notes)


def test_another_tickers_last_line_cut_before_its_ticker_is_left_out_not_quarantined(tmp_path: Path) -> None:
    """Kaggle's layout (the Name column last): AAL's last line cut before its Name was quarantined as
    AAPL's; its ticker cannot be read, so in a file of several tickers it is left out with the note's
    count. In a file of AAPL's rows only, it is quarantined as cut (most likely AAPL's bar)."""
    text = KAGGLE + "2024-01-04,101,102,100,101.5,1000"  # AAL's, cut before its Name
    f = write_file(tmp_path, "k.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "AAPL", "1d", None)
    assert (s.of("AAPL").rows_landed, s.of("AAPL").rows_rejected) == (2, 0)
    assert any("(cut short)" in n and "left out" in n for n in s.notes), s.notes
    assert not any("looks cut short" in n for n in s.notes), s.notes
    one = (
        "date,open,high,low,close,volume,Name\n"
        "2024-01-02,187.15,188.44,183.89,185.64,82488700,AAPL\n"
        "2024-01-03,184.22,185.88,183.43,184.25,58414500,AAPL\n"
        "2024-01-04,182.15,183.09,180.88,181.91,71983600"
    )
    g = write_file(tmp_path, "one.csv", one)
    s = csv_ingest.run(ctx(tmp_path / "b"), g, "AAPL", "1d", None)
    assert (s.of("AAPL").rows_landed, s.of("AAPL").rows_rejected) == (2, 1)
    # its ticker cut in the middle ("AA" of "AAL"): how AAPL's starts, so it may be AAPL's: quarantined
    h = write_file(tmp_path, "aa.csv", KAGGLE + "2024-01-04,101,102,100,101.5,1000,AA")
    s = csv_ingest.run(ctx(tmp_path / "c"), h, "AAPL", "1d", None)
    assert s.of("AAPL").rows_rejected == 1
    # "AB" of "ABBV": not how AAPL's starts, left out
    h = write_file(tmp_path, "ab.csv", KAGGLE + "2024-01-04,101,102,100,101.5,1000,AB")
    s = csv_ingest.run(ctx(tmp_path / "d"), h, "AAPL", "1d", None)
    assert (s.of("AAPL").rows_landed, s.of("AAPL").rows_rejected) == (2, 0)


# --- a file mixing intervals: each day (intraday) or stretch (daily) judged on its own ---

NY = ZoneInfo("America/New_York")


def _minutes(day: dt.date, step: int, n: int) -> list[dt.datetime]:
    return [dt.datetime.combine(day, dt.time(9, 30), NY) + dt.timedelta(minutes=step * k) for k in range(n)]


def _intraday(times: list[dt.datetime]) -> str:
    return "Datetime,Open,High,Low,Close,Volume\n" + "".join(
        f"{t.isoformat(' ')},10,12,9,11,100\n" for t in times
    )


def test_days_of_5m_bars_in_a_1m_file_are_quarantined_never_landed_as_minutes(tmp_path: Path) -> None:
    """Three days of 5-minute bars then five days of minutes, imported as 1m, landed every 5-minute bar as a
    minute bar available a minute after it opened, its close known only 5 minutes after (look-ahead): the
    whole-file check needs 95% of the file to be coarser."""
    five = [dt.date(2024, 3, d) for d in (4, 5, 6)]
    ones = [dt.date(2024, 3, d) for d in (7, 8, 11, 12, 13)]
    times = [t for d in five for t in _minutes(d, 5, 78)] + [t for d in ones for t in _minutes(d, 1, 390)]
    f = write_file(tmp_path, "mixed.csv", _intraday(times))
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "ABC", "1m", None)
    assert s.ok, s.errors
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (5 * 390, 3 * 78)
    assert query(root, "SELECT DISTINCT ts AT TIME ZONE 'America/New_York' >= '2024-03-07' FROM bars") == [
        (True,)
    ]
    reasons = query(root, "SELECT DISTINCT reason FROM bars_rejected WHERE line_number = 2")
    assert reasons == [
        (
            "the 1m bar at 2024-03-04T14:30:00+00:00: its day's rows (2024-03-04) are 5 minutes apart or a "
            "multiple of it (77 of 77 spacings; coarser days: 2024-03-04 to 2024-03-06): coarser than "
            "--interval 1m, whose bar would be available 1 minute after it opens when its close is known only "
            "5 minutes after",
        )
    ]
    assert query(root, "SELECT count(*), min(line_number), max(line_number) FROM bars_rejected") == [
        (234, 2, 235)
    ]


def test_weekly_rows_before_daily_ones_are_quarantined_never_landed_as_days(tmp_path: Path) -> None:
    weekly = [dt.date(2022, 1, 3) + dt.timedelta(weeks=i) for i in range(52)]
    weekly = [d for d in weekly if d not in (dt.date(2022, 1, 17), dt.date(2022, 2, 21), dt.date(2022, 5, 30),
                                             dt.date(2022, 6, 20), dt.date(2022, 7, 4), dt.date(2022, 9, 5),
                                             dt.date(2022, 12, 26))]  # fmt: skip
    daily = [dt.date(2023, 1, 3) + dt.timedelta(days=i) for i in range(300)]
    daily = [d for d in daily if d.weekday() < 5 and d.year == 2023][:200]
    text = "Date,Open,High,Low,Close,Volume\n" + "".join(f"{d},10,12,9,11,100\n" for d in weekly + daily)
    f = write_file(tmp_path, "dw.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "ABC", "1d", None)
    assert s.ok, s.errors
    assert query(root, "SELECT min(ts)::DATE, count(*) FROM bars") == [
        (dt.date(2023, 1, 3), s.of("ABC").rows_landed)
    ]
    got = query(
        root,
        "SELECT count(*) FILTER (reason NOT LIKE '%not an XNYS trading day'), "
        "count(*) FILTER (reason LIKE '%7 days apart%') FROM bars_rejected",
    )
    assert got == [(len(weekly), len(weekly))]  # 2023's holidays aside
    (reason,) = query(root, "SELECT reason FROM bars_rejected WHERE line_number = 2")[0]
    assert reason == (
        f"the 1d bar at 2022-01-03T14:30:00+00:00: it is one of {len(weekly)} rows from 2022-01-03 to "
        "2022-12-19 that are 7 days apart (the most common spacing, or a multiple of it: 44 of 44 spacings), "
        "none one trading day from the next: "
        "coarser than --interval 1d, whose bar is one day's (it would be stamped as its first day, available "
        "when that day ends, its close known only at the end of its last)"
    )
    # a crypto file of weeks then days: the same
    crypto = write_file(tmp_path, "btc.csv", text)
    s = csv_ingest.run(ctx(tmp_path / "c"), crypto, "BTCUSD", "1d", None, asset_class="crypto")
    assert query(tmp_path / "c", "SELECT min(ts)::DATE FROM bars") == [(dt.date(2023, 1, 3),)]


@pytest.mark.parametrize(("seed", "share"), [(0, 0.1), (3, 0.05)])
def test_a_thinly_traded_stocks_days_are_not_taken_for_a_coarser_stretch(
    tmp_path: Path, seed: int, share: float
) -> None:
    """A stock trading on some 10% (or 5%) of XNYS sessions: its rows are a random number of sessions apart,
    not one cadence; 67 of 217 (74 of 114) real daily bars were quarantined as "14 days apart", or the whole
    file refused as coarser than daily. A session before and after a holiday is one trading day apart."""
    import random

    from ingest.stamping import session

    rng = random.Random(seed)
    sessions = [
        d
        for d in (dt.date(2015, 1, 2) + dt.timedelta(days=i) for i in range(9 * 365))
        if session(d) is not None
    ]
    days = [d for d in sessions if rng.random() < share]
    text = "Date,Open,High,Low,Close,Volume\n" + "".join(f"{d},3,3.1,2.9,3.05,500\n" for d in days)
    f = write_file(tmp_path, "thin.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "ABC", "1d", None)
    assert s.ok, s.errors
    assert query(root, "SELECT reason FROM bars_rejected LIMIT 1") == []
    assert s.of("ABC").rows_landed == len(days)


def test_intraday_bars_of_a_stock_on_an_xnys_holiday_are_quarantined(tmp_path: Path) -> None:
    """Minutes of 2023-07-04 (Independence Day, a Tuesday) landed as a stock's bars; a session day's
    pre-market and after-hours bars (and a crypto file's holiday) land."""
    times = [
        dt.datetime(2023, 7, 3, 9, 30, tzinfo=NY),
        dt.datetime(2023, 7, 3, 9, 31, tzinfo=NY),
        dt.datetime(2023, 7, 4, 9, 30, tzinfo=NY),
        dt.datetime(2023, 7, 4, 9, 31, tzinfo=NY),
        dt.datetime(2023, 7, 5, 4, 0, tzinfo=NY),
        dt.datetime(2023, 7, 5, 9, 30, tzinfo=NY),
        dt.datetime(2023, 7, 5, 19, 59, tzinfo=NY),
    ]
    text = "Datetime,Open,High,Low,Close,Volume\n" + "".join(
        f"{t:%Y-%m-%d %H:%M:%S},10,10.1,9.9,10,100\n" for t in times
    )
    f = write_file(tmp_path, "hol.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "ABC", "1m", "America/New_York")
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (5, 2)
    assert query(root, "SELECT line_number, reason FROM bars_rejected ORDER BY 1") == [
        (
            line,
            f"time 2023-07-04T13:{m}:00+00:00 is on 2023-07-04 in New York, a Tuesday the exchange did not "
            "trade (not an XNYS session): no stock trades then",
        )
        for line, m in ((4, 30), (5, 31))
    ]
    c = csv_ingest.run(ctx(tmp_path / "c"), f, "BTCUSD", "1m", "America/New_York", asset_class="crypto")
    assert (c.of("BTCUSD").rows_landed, c.of("BTCUSD").rows_rejected) == (7, 0)


def test_quiet_days_holidays_and_gaps_of_a_file_of_its_interval_are_not_quarantined(tmp_path: Path) -> None:
    """A quiet day of an illiquid minute file (a few bars, 5 minutes apart) among busy ones, a daily file
    with holidays and a month missing, a lone row between two gaps: every row lands."""
    busy = [t for d in (4, 5, 7) for t in _minutes(dt.date(2024, 3, d), 1, 390)]
    quiet = _minutes(dt.date(2024, 3, 6), 5, 8)
    f = write_file(tmp_path, "quiet.csv", _intraday(sorted(busy + quiet)))
    s = csv_ingest.run(ctx(tmp_path / "a"), f, "ABC", "1m", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (len(busy) + 8, 0)
    days = [dt.date(2023, 1, 3) + dt.timedelta(days=i) for i in range(365)]
    days = [d for d in days if d.weekday() < 5 and not (dt.date(2023, 5, 1) <= d <= dt.date(2023, 5, 31))]
    days = [d for d in days if d != dt.date(2023, 6, 14)] + [dt.date(2023, 6, 14)]  # out of order
    days = [d for d in days if d not in (dt.date(2023, 6, 13), dt.date(2023, 6, 15))]  # a lone row
    text = "Date,Open,High,Low,Close,Volume\n" + "".join(f"{d},10,12,9,11,100\n" for d in days)
    g = write_file(tmp_path, "d.csv", text)
    s = csv_ingest.run(ctx(tmp_path / "b"), g, "ABC", "1d", None)
    assert not query(tmp_path / "b", "SELECT reason FROM bars_rejected WHERE reason NOT LIKE '%not an XNYS%'")
    assert s.of("ABC").rows_landed > 200


# --- rows with more or fewer fields than the header ---


def test_a_row_with_extra_fields_is_rejected_never_landed_shifted(tmp_path: Path) -> None:
    """An unquoted thousands separator (`…,185.64,82,488,700`) landed a volume of 82."""
    text = (
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-02,187.15,188.44,183.89,185.64,82,488,700\n"
        "2024-01-03,184.22,185.88,183.43,184.25,58414500\n"
        "2024-01-04,182.15,183.09,180.88,181.91,71983600,,\n"  # empty extra fields: a trailing delimiter
    )
    f = write_file(tmp_path, "thou.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "ABC", "1d", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (2, 1)
    assert query(root, "SELECT volume FROM bars ORDER BY ts") == [(58414500.0,), (71983600.0,)]
    assert query(root, "SELECT line_number, reason FROM bars_rejected") == [
        (2, "8 fields where the header has 6 (an unquoted thousands separator?)")
    ]
    semi = write_file(tmp_path, "semi.csv", text.replace(",", ";"))
    s = csv_ingest.run(ctx(tmp_path / "b"), semi, "ABC", "1d", None)
    assert query(tmp_path / "b", "SELECT reason FROM bars_rejected") == [
        ("8 fields where the header has 6 (an unquoted delimiter in a field?)",)
    ]


@pytest.mark.parametrize("end", ["\n", ""])
def test_rows_without_the_trailing_columns_the_import_does_not_read_land(tmp_path: Path, end: str) -> None:
    """A header ending with a delimiter, Yahoo's `Dividends,Stock Splits` left empty: the rows land (they were
    rejected as `6 fields where the header has 7`), even as a last line without a line ending; a row
    missing a column the import reads is still rejected."""
    trailing = (
        "Date,Open,High,Low,Close,Volume,\n"
        "2024-01-02,187.15,188.44,183.89,185.64,82488700\n"
        "2024-01-03,184.22,185.88,183.43,184.25,58414500" + end
    )
    optional = (
        "Date,Open,High,Low,Close,Volume,Dividends,Stock Splits\n"
        "2024-01-02,187.15,188.44,183.89,185.64,82488700\n"
        "2024-01-03,184.22,185.88,183.43,184.25,58414500,0.24,0\n"
        "2024-01-04,182.15,183.09,180.88,181.91\n"
        "2024-01-05,181.99,182.76,180.17,181.18,62303300" + end
    )
    for name, text, landed, rejected in (("t.csv", trailing, 2, 0), ("o.csv", optional, 3, 1)):
        f = write_file(tmp_path, name, text)
        root = tmp_path / f"lake-{name}"
        s = csv_ingest.run(ctx(root), f, "ABC", "1d", None)
        assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (landed, rejected), (name, s.notes)
        assert not any("cut short" in n for n in s.notes)
    assert query(tmp_path / "lake-o.csv", "SELECT line_number, reason FROM bars_rejected") == [
        (4, "5 fields where the header has 8")
    ]


# --- a time the file holds more than once ---


def test_copies_of_a_time_that_disagree_are_all_quarantined_none_chosen(tmp_path: Path) -> None:
    text = (
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-02,187.15,188.44,183.89,185.64,82488700\n"
        "2024-01-03,184.22,185.88,183.43,184.25,58414500\n"
        "2024-01-03,100,101,99,100.5,1000\n"
        "2024-01-04,182.15,183.09,180.88,181.91,71983600\n"
        "2024-01-03,184.22,185.88,183.43,184.25,58414500\n"
    )
    f = write_file(tmp_path, "dup.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "ABC", "1d", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (2, 3)
    assert query(root, "SELECT ts::DATE FROM bars ORDER BY ts") == [
        (dt.date(2024, 1, 2),),
        (dt.date(2024, 1, 4),),
    ]
    why = "3 rows for the bar at 2024-01-03, on lines 3, 4, 6, with different values: none of them landed"
    assert query(root, "SELECT line_number, reason FROM bars_rejected ORDER BY line_number") == [
        (3, why),
        (4, why),
        (6, why),
    ]


def test_copies_of_an_intraday_time_are_named_as_the_file_wrote_them(tmp_path: Path) -> None:
    text = (
        "Datetime,Open,High,Low,Close,Volume\n"
        "2024-01-03 09:30:00,10,11,9,10,100\n"
        "2024-01-03 09:30:00,10,11,9,10.5,100\n"
        "2024-01-03 09:31:00,10,11,9,10,100\n"
    )
    f = write_file(tmp_path, "dup1m.csv", text)
    root = tmp_path / "lake"
    csv_ingest.run(ctx(root), f, "ABC", "1m", "America/New_York")
    assert query(root, "SELECT DISTINCT reason FROM bars_rejected") == [
        (
            "2 rows for the bar at 2024-01-03 09:30:00, on lines 2, 3, with different values: none of them landed",
        )
    ]


def test_identical_copies_of_a_time_land_once_and_are_not_rejections(tmp_path: Path) -> None:
    text = (
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-02,187.15,188.44,183.89,185.64,82488700\n"
        "2024-01-03,184.22,185.88,183.43,184.25,58414500\n"
        "2024-01-03,184.22,185.880,183.43,184.25,58414500.0\n"
        "2024-01-04,182.15,183.09,180.88,181.91,71983600\n"
    )
    f = write_file(tmp_path, "dup.csv", text)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "ABC", "1d", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (3, 0)
    assert query(root, "SELECT count(*) FROM bars_rejected") == [(0,)]
    assert query(root, "SELECT close FROM bars WHERE ts::DATE = '2024-01-03'") == [(184.25,)]
    assert any("1 row repeat an earlier row exactly" in n for n in s.notes), s.notes


def test_tz_with_a_daily_file_is_refused_in_one_line_saying_how_days_are_read(tmp_path: Path) -> None:
    """--tz was silently ignored for daily files: a crypto file of New York days landed as UTC days, each
    available 5 hours before it closed."""
    text = "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"2024-01-0{d},40000,40500,39500,40100,1000\n" for d in range(1, 5)
    )
    f = write_file(tmp_path, "btcd.csv", text)
    root = tmp_path / "lake"
    r = _cli(
        "--lake", str(root), "ingest", "csv", str(f), "--symbol", "BTCUSD", "--interval", "1d",
        "--asset-class", "crypto", "--tz", "America/New_York",
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        f"error: {f}: --tz America/New_York with --interval 1d for BTCUSD: --tz is the zone of an intraday file's times; a "
        "daily row's date as written is its day, whatever the zone (a stock's or ETF's is that XNYS session, "
        "a crypto day runs 00:00 to 00:00 UTC): drop --tz (a crypto file of days that end at another zone's "
        "midnight cannot be imported as 1d); nothing was stored"
    ]
    assert _landed(root) == 0
    assert csv_ingest.run(ctx(root), f, "BTCUSD", "1d", None, asset_class="crypto").ok


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (
            "187,15",
            "(a decimal comma? numbers are read with a decimal point and no thousands separator: 187.15)",
        ),
        (
            "1.187,15",
            "(a decimal comma? numbers are read with a decimal point and no thousands separator: 187.15)",
        ),
        ('"82,488,700"', "(a thousands separator? numbers are read without one: 82488700, 187.15)"),
        ("82.488.700", "(a thousands separator? numbers are read without one: 82488700, 187.15)"),
        (
            '"1,000"',
            "(a thousands separator or a decimal comma? numbers are read as 1234.56, without separators)",
        ),
    ],
)
def test_a_decimal_comma_or_thousands_separator_is_named_in_the_reason(
    tmp_path: Path, value: str, hint: str
) -> None:
    text = f"Date;Open;High;Low;Close;Volume\n2024-01-02;1;2000;0.5;1;{value}\n2024-01-03;1;2;0.5;1;100\n"
    f = write_file(tmp_path, "euro.csv", text)
    root = tmp_path / "lake"
    csv_ingest.run(ctx(root), f, "ABC", "1d", None)
    (reason,) = query(root, "SELECT reason FROM bars_rejected")[0]
    assert reason == f"volume {value.strip(chr(34))!r} is not a number {hint}"
    # a field that is no number at all gets no hint
    g = write_file(tmp_path, "x.csv", text.replace(value, "n/a"))
    csv_ingest.run(ctx(tmp_path / "x"), g, "ABC", "1d", None)
    assert query(tmp_path / "x", "SELECT reason FROM bars_rejected") == [("volume 'n/a' is not a number",)]


TIINGO = (
    "date,close,high,low,open,volume,adjClose,adjHigh,adjLow,adjOpen,adjVolume,divCash,splitFactor\n"
    "2024-01-02T00:00:00.000Z,185.64,188.44,183.89,187.15,82488674,184.9,187.7,183.2,186.4,82488674,0.0,1.0\n"
    "2024-01-03T00:00:00.000Z,184.25,185.88,183.43,184.22,58414460,183.5,185.1,182.7,183.5,58414460,0.0,1.0\n"
)


def test_daily_stamps_utc_date_reads_tiingos_midnight_utc_stamps_as_their_trading_days(
    tmp_path: Path,
) -> None:
    """Tiingo stamps each day at 00:00:00Z: the evening before in New York, so every row was rejected as
    ambiguous with no way out."""
    f = write_file(tmp_path, "tiingo.csv", TIINGO)
    root = tmp_path / "lake"
    s = csv_ingest.run(ctx(root), f, "ABC", "1d", None)
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (0, 2)
    (reason,) = query(root, "SELECT reason FROM bars_rejected WHERE line_number = 2")[0]
    assert reason.endswith(
        "which trading day it is cannot be told (if each row's UTC date is its trading day, as in Tiingo's "
        "files stamped at 00:00:00Z, import it with --daily-stamps utc-date)"
    )
    r = _cli(
        "--lake", str(root), "-q", "ingest", "csv", str(f), "--symbol", "ABC", "--interval", "1d",
        "--daily-stamps", "utc-date",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    ny = [
        (t.astimezone(NY).isoformat(), a.astimezone(NY).isoformat(), o, c)
        for t, a, o, c in query(root, "SELECT ts, available_at, open, close FROM bars ORDER BY ts")
    ]
    assert ny == [
        ("2024-01-02T09:30:00-05:00", "2024-01-02T20:00:00-05:00", 187.15, 185.64),
        ("2024-01-03T09:30:00-05:00", "2024-01-03T20:00:00-05:00", 184.22, 184.25),
    ]
    assert query(root, "SELECT count(*) FROM bars_rejected") == [(0,)]


def test_daily_stamps_with_an_intraday_interval_is_refused_in_one_line(tmp_path: Path) -> None:
    f = write_file(
        tmp_path, "m.csv", "Datetime,Open,High,Low,Close,Volume\n2024-01-02T14:30:00Z,1,2,0.5,1,10\n"
    )
    root = tmp_path / "lake"
    r = _cli(
        "--lake", str(root), "ingest", "csv", str(f), "--symbol", "ABC", "--interval", "1m",
        "--daily-stamps", "utc-date",
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        "error: --daily-stamps utc-date with --interval 1m: it says how a daily file's stamps are read; an "
        "intraday bar's stamp is its open (drop --daily-stamps); nothing was stored"
    ]
    assert _landed(root) == 0


def test_days_of_a_few_bars_are_not_judged_coarser_on_their_own(tmp_path: Path) -> None:
    """A stock that traded at the open and the closing auction only for a month (one spacing a day, 389
    minutes, a multiple of itself) among days of minutes: every bar lands."""
    busy = [t for d in (1, 2) for t in _minutes(dt.date(2024, 4, d), 1, 390)]
    days = [dt.date(2024, 4, 3) + dt.timedelta(days=i) for i in range(40)]
    days = [d for d in days if d.weekday() < 5 and d != dt.date(2024, 5, 27)]
    quiet = [t for d in days for t in (_minutes(d, 389, 2))]
    f = write_file(tmp_path, "auctions.csv", _intraday(busy + quiet))
    s = csv_ingest.run(
        ctx(tmp_path / "lake"), f, "ABC", "1m", None, now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    assert (s.of("ABC").rows_landed, s.of("ABC").rows_rejected) == (len(busy) + len(quiet), 0)


def test_a_row_without_its_ticker_is_left_out_and_named_empty(tmp_path: Path) -> None:
    text = KAGGLE + "2024-01-04,182.15,183.09,180.88,181.91,71983600,\n"
    f = write_file(tmp_path, "k.csv", text)
    s = csv_ingest.run(ctx(tmp_path / "lake"), f, "AAPL", "1d", None)
    assert s.of("AAPL").rows_landed == 2
    assert any(
        "4 rows of 3 other tickers in its Name column left out (AAL, ABBV, (empty))" in n for n in s.notes
    )

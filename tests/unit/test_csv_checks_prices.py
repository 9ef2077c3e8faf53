"""`ingest csv` compares a file's closes with the lake's bars of the same symbol, interval and times
(ingest/csv_checks.py, sql/ingest/csv_price_agreement.sql): an adjusted file over traded prices is refused,
with --allow-price-mismatch it lands with a note; a file that agrees, or shares no bar, lands as ever."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest import csv as csv_ingest
from ingest.common import RunContext
from ingest.stamping import NEW_YORK, stamp_daily
from lake.config import Settings
from lake.errors import MarketlakeError
from lake.writer import LakeWriter
from tests.conftest import bars_table

POLYGON_DAYS = [dt.date(2020, 8, 3), dt.date(2020, 8, 4), dt.date(2020, 8, 6), dt.date(2020, 8, 7)]
POLYGON_CLOSES = [435.75, 438.66, 455.61, 444.45]  # traded prices, before AAPL's 4:1 split of 2020-08-31
YAHOO_ADJUSTED = (  # the five days split-adjusted, as Yahoo's export has them
    "Date,Open,High,Low,Close,Adj Close,Volume\n"
    "2020-08-03,108.20,111.64,107.89,108.94,107.3,308151200\n"
    "2020-08-04,108.90,110.79,108.39,109.67,108.0,173071600\n"
    "2020-08-05,109.38,110.39,108.90,110.06,108.4,121992000\n"
    "2020-08-06,110.41,114.41,109.80,113.90,112.2,202428800\n"
    "2020-08-07,113.21,113.68,110.29,111.11,109.6,198045600\n"
)


def polygon_days(root: Path) -> None:
    """Polygon's daily AAPL bars of 2020-08-03..07 without 08-05 (a gap a CSV would fill)."""
    with LakeWriter.open(root) as w:
        for day, close in zip(POLYGON_DAYS, POLYGON_CLOSES, strict=True):
            ts, available_at = stamp_daily(day, dt.datetime.combine(day, dt.time(12), NEW_YORK))
            t = bars_table(
                ts, [close], interval=dt.timedelta(days=1), asset_class="stock", source_file=f"polygon:{day}"
            )
            i = t.schema.get_field_index("available_at")
            t = t.set_column(i, "available_at", pa.array([available_at], type=t.schema.field(i).type))
            w.write(lake.BARS, {"source": "polygon", "interval": "1d", "symbol": "AAPL", "period": "2020"}, t)


def closes(root: Path) -> list[tuple[str, str, float]]:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        rows = con.execute("SELECT ts, source, close FROM bars WHERE symbol = 'AAPL' ORDER BY ts").fetchall()
    finally:
        con.close()
    return [(str(ts.astimezone(NEW_YORK).date()), source, close) for ts, source, close in rows]


def ctx(root: Path) -> RunContext:
    return RunContext(root, Settings(), quiet=True)


def test_an_adjusted_file_filling_a_vendors_gaps_is_refused_naming_ratio_time_and_prices(
    lake_root: Path, tmp_path: Path
) -> None:
    polygon_days(lake_root)
    path = tmp_path / "aapl.csv"
    path.write_text(YAHOO_ADJUSTED)
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(lake_root), path, "AAPL", "1d")
    message = str(err.value)
    assert "\n" not in message
    assert "AAPL 1d closes disagree with the lake's polygon bars" in message
    assert "typically 0.25x theirs" in message and "the 4 bars both hold" in message
    assert "2020-08-06: 113.9 here, 455.61 in polygon" in message
    assert "adjusted" in message and "nothing was stored" in message and "--allow-price-mismatch" in message
    # nothing of it landed: bars reads Polygon's four days, no fake -75% on 08-05
    assert [c for _, _, c in closes(lake_root)] == POLYGON_CLOSES
    assert not (lake_root / "raw" / "csv").exists()


def test_the_command_refuses_it_with_one_line_and_lands_it_with_the_flag(
    lake_root: Path, tmp_path: Path
) -> None:
    polygon_days(lake_root)
    path = tmp_path / "aapl.csv"
    path.write_text(YAHOO_ADJUSTED)
    args = [
        "--lake",
        str(lake_root),
        "-q",
        "ingest",
        "csv",
        str(path),
        "--symbol",
        "AAPL",
        "--interval",
        "1d",
    ]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert "typically 0.25x" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, [*args, "--allow-price-mismatch"])
    assert r.exit_code == 0, r.output
    assert "landed anyway (--allow-price-mismatch)" in r.output
    assert closes(lake_root)[2] == ("2020-08-05", "csv", 110.06)


def test_a_file_of_traded_prices_or_with_no_bar_in_common_lands(lake_root: Path, tmp_path: Path) -> None:
    polygon_days(lake_root)
    agreeing = tmp_path / "traded.csv"  # closes within a few cents of Polygon's, and the missing 08-05
    agreeing.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2020-08-03,432.8,446.55,431.57,435.75,308151200\n"
        "2020-08-04,436.53,443.16,433.55,438.7,173071600\n"
        "2020-08-05,437.51,441.57,435.59,440.25,121992000\n"
        "2020-08-06,441.62,457.65,439.19,455.6,202428800\n"
    )
    summary = csv_ingest.run(ctx(lake_root), agreeing, "AAPL", "1d")
    assert summary.ok and not [n for n in summary.notes if "disagree" in n]
    assert closes(lake_root)[2] == ("2020-08-05", "csv", 440.25)
    elsewhere = tmp_path / "july.csv"  # adjusted, but no bar the lake holds: nothing to compare
    elsewhere.write_text(
        "Date,Open,High,Low,Close,Volume\n2020-07-31,102.88,106.42,100.83,106.26,374336800\n"
    )
    assert csv_ingest.run(ctx(lake_root), elsewhere, "AAPL", "1d").ok


def test_another_csv_file_of_the_same_symbol_is_compared_too(lake_root: Path, tmp_path: Path) -> None:
    traded = (
        tmp_path / "traded.csv"
    )  # three days of traded prices: an adjusted file's 0.25 on all three is judged
    traded.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2020-08-03,432.8,446.55,431.57,435.75,308151200\n"
        "2020-08-04,436.53,443.16,433.55,438.66,173071600\n"
        "2020-08-06,441.62,457.65,439.19,455.61,202428800\n"
    )
    assert csv_ingest.run(ctx(lake_root), traded, "AAPL", "1d").ok
    adjusted = tmp_path / "adjusted.csv"
    adjusted.write_text(YAHOO_ADJUSTED)
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(lake_root), adjusted, "AAPL", "1d")
    assert "bars of other csv files: this file's are typically 0.25" in str(err.value)
    assert "2020-08-03: 108.94 here, 435.75 in traded.csv" in str(err.value)


def _days(n: int) -> list[dt.date]:
    """The first `n` weekdays from 2021-03-01 (no US holiday among the first 30)."""
    out: list[dt.date] = []
    day = dt.date(2021, 3, 1)
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def _daily(path: Path, days: list[dt.date], closes: list[float]) -> Path:
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        + "".join(f"{d},{c},{c},{c},{c},1000\n" for d, c in zip(days, closes, strict=True))
    )
    return path


def test_one_shared_bar_that_differs_is_too_few_to_judge_the_file_lands_with_a_note(
    lake_root: Path, tmp_path: Path
) -> None:
    days = _days(20)
    broker = _daily(tmp_path / "broker.csv", days[:1], [101.0])  # one day, its close 1% off the other's
    assert csv_ingest.run(ctx(lake_root), broker, "SPY", "1d", source="broker").ok
    spy = _daily(tmp_path / "spy.csv", days, [100.0 + i for i in range(20)])
    summary = csv_ingest.run(ctx(lake_root), spy, "SPY", "1d")
    assert summary.ok
    (note,) = [n for n in summary.notes if "too few shared bars to judge" in n]
    assert "1 of the 1 SPY 1d bar it shares with the lake's broker bars closes differently" in note
    assert "it landed" in note


def test_a_cheap_stock_a_cent_off_on_every_shared_bar_lands(lake_root: Path, tmp_path: Path) -> None:
    days = _days(30)  # $1.50 in one vendor's file, $1.51 in the other's: 0.7%, within two cents
    assert csv_ingest.run(
        ctx(lake_root), _daily(tmp_path / "a.csv", days, [1.5] * 30), "PENY", "1d", source="a"
    ).ok
    summary = csv_ingest.run(ctx(lake_root), _daily(tmp_path / "b.csv", days, [1.51] * 30), "PENY", "1d")
    assert summary.ok and not [n for n in summary.notes if "disagree" in n or "differ" in n]


def test_a_steady_one_percent_is_refused_scattered_differences_land(lake_root: Path, tmp_path: Path) -> None:
    days = _days(20)
    theirs = [100.0 + i for i in range(20)]
    assert csv_ingest.run(
        ctx(lake_root), _daily(tmp_path / "v.csv", days, theirs), "XYZ", "1d", source="v"
    ).ok
    steady = _daily(tmp_path / "adj.csv", days, [round(c * 0.99, 2) for c in theirs])  # dividend-adjusted
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(lake_root), steady, "XYZ", "1d")
    assert "typically 0.99x theirs (20 of the 20 bars both hold differ alike" in str(err.value)
    # 1% off on 3 of 20 days, the other way on 3 more: not steady, lands
    scattered = [c * (1.01 if i < 3 else 0.99 if i < 6 else 1) for i, c in enumerate(theirs)]
    summary = csv_ingest.run(ctx(lake_root), _daily(tmp_path / "other.csv", days, scattered), "XYZ", "1d")
    assert summary.ok and not [n for n in summary.notes if "disagree" in n]


def test_two_shared_bars_a_quarter_of_theirs_are_too_few(lake_root: Path, tmp_path: Path) -> None:
    days = _days(5)
    assert csv_ingest.run(
        ctx(lake_root), _daily(tmp_path / "v.csv", days[:2], [400.0, 404.0]), "Q", "1d", source="v"
    ).ok
    summary = csv_ingest.run(
        ctx(lake_root), _daily(tmp_path / "q.csv", days, [100.0, 101, 102, 103, 104]), "Q", "1d"
    )
    assert summary.ok and [n for n in summary.notes if "2 of the 2 Q 1d bars" in n and "too few" in n]


def test_a_crypto_file_steadily_off_names_another_venue_or_quote_currency(
    lake_root: Path, tmp_path: Path
) -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(14)]  # every day, weekends too
    theirs = [40_000.0 + 100 * i for i in range(14)]
    binance = _daily(tmp_path / "binance.csv", days, theirs)
    assert csv_ingest.run(ctx(lake_root), binance, "BTCUSDT", "1d", source="bn", asset_class="crypto").ok
    coinbase = _daily(tmp_path / "coinbase.csv", days, [round(c * 1.006, 2) for c in theirs])  # a USD premium
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(lake_root), coinbase, "BTCUSDT", "1d", asset_class="crypto")
    message = str(err.value)
    assert "typically 1.006x theirs" in message
    assert "another venue or quote currency (USD vs USDT" in message
    assert "Yahoo" not in message

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
    traded = tmp_path / "traded.csv"
    traded.write_text("Date,Open,High,Low,Close,Volume\n2020-08-04,436.53,443.16,433.55,438.66,173071600\n")
    assert csv_ingest.run(ctx(lake_root), traded, "AAPL", "1d").ok
    adjusted = tmp_path / "adjusted.csv"
    adjusted.write_text(YAHOO_ADJUSTED)
    with pytest.raises(MarketlakeError) as err:
        csv_ingest.run(ctx(lake_root), adjusted, "AAPL", "1d")
    assert "bars of other csv files: this file's are typically 0.25" in str(err.value)
    assert "2020-08-04: 109.67 here, 438.66 in traded.csv" in str(err.value)

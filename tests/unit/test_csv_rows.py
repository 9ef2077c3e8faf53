"""`marketlake ingest csv` (ingest/csv.py): which rows of a file are read as `--symbol`'s bars at `--interval`
(a ticker column, a file mixing intervals, rows with too many or too few fields, repeated times)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

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

"""`marketlake check`: per-symbol report that explains eligibility, as a table and as JSON; --strict."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest.sessions import land
from tests.conftest import bars_table

UTC = dt.UTC


@pytest.fixture
def checked_lake(lake_root: Path, tmp_path: Path) -> Path:
    """BTCUSDT: one full day (eligible with min 1000); ETHUSDT: 300 bars (too few); AAPL: half a session,
    one OHLC violation and bars on a holiday."""
    day = dt.datetime(2024, 7, 2, tzinfo=UTC)
    aapl = bars_table(dt.datetime(2024, 7, 2, 13, 30, tzinfo=UTC), [100.0] * 195, asset_class="stock")
    high = aapl.column("high").to_pylist()
    high[3] = 1.0
    aapl = aapl.set_column(aapl.schema.get_field_index("high"), "high", pa.array(high))
    holiday = bars_table(dt.datetime(2024, 7, 4, 14, 0, tzinfo=UTC), [100.0] * 2, asset_class="stock")
    with land(lake_root) as w:
        w.write(lake.BARS, _part("binance", "BTCUSDT"), bars_table(day, [1.0] * 1440))
        w.write(lake.BARS, _part("binance", "ETHUSDT"), bars_table(day, [1.0] * 300))
        w.write(lake.BARS, _part("polygon", "AAPL"), pa.concat_tables([aapl, holiday]))
    (tmp_path / "marketlake.toml").write_text(
        '[data]\nmin_bars_per_symbol = 1000\nmax_missing_ratio = 0.05\n\n[binance]\nsymbols = ["BTCUSDT", "ETHUSDT"]\n'
        'interval = "1m"\n\n[polygon]\nsymbols = []\n\n[yahoo]\nsymbols = []\n'
    )
    return lake_root


def _part(source: str, symbol: str) -> dict[str, str]:
    return {"source": source, "interval": "1m", "symbol": symbol, "period": "2024-07"}


def test_json_report_explains_every_symbol(runner: CliRunner, checked_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["symbol"], x["interval"]): x for x in json.loads(r.stdout)}
    assert set(rows) == {("AAPL", "1m"), ("BTCUSDT", "1m"), ("ETHUSDT", "1m")}
    btc = rows[("BTCUSDT", "1m")]
    assert btc["eligible"] is True and btc["configured"] is True
    assert (btc["bars"], btc["expected_bars"], btc["missing_pct"], btc["longest_gap_minutes"]) == (
        1440,
        1440,
        0.0,
        0.0,
    )
    assert btc["first_ts"] == "2024-07-02T00:00:00+00:00" and btc["last_ts"] == "2024-07-02T23:59:00+00:00"
    assert "1440 bars >= 1000" in btc["why"]
    eth = rows[("ETHUSDT", "1m")]
    assert eth["eligible"] is False
    assert eth["why"].startswith("only 300 bars in session (< min_bars_per_symbol 1000)")
    assert "trading time missing" in eth["why"]  # 1140 of 1440 minutes missing as well
    assert eth["missing_pct"] == pytest.approx(100 * 1140 / 1440, abs=1e-3)
    assert eth["longest_gap_minutes"] == 1140.0
    aapl = rows[("AAPL", "1m")]
    assert aapl["eligible"] is False and aapl["configured"] is False
    assert (aapl["bars"], aapl["expected_bars"]) == (195, 390 + 210)  # July 2, early close July 3
    assert aapl["ohlc_violations"] == 1
    assert aapl["bars_outside_any_session"] == 2
    assert aapl["checks"] == {"bars_outside_session": 2, "ohlc_violations": 1}


def test_table_report_is_readable_and_says_why(runner: CliRunner, checked_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check"])
    assert r.exit_code == 0, r.output
    assert "BTCUSDT 1m: eligible: 1440 bars >= 1000 and 0.00% of trading time missing <= 5.00%" in r.stdout
    assert "ETHUSDT 1m: NOT eligible: only 300 bars in session (< min_bars_per_symbol 1000)" in r.stdout
    assert "AAPL 1m: NOT eligible" in r.stdout and "ohlc_violations 1" in r.stdout
    for header in ("symbol", "bars", "missing %", "longest gap", "violations", "eligible"):
        assert header in r.stdout


def test_strict_fails_on_an_ineligible_configured_symbol(runner: CliRunner, checked_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--strict"])
    assert r.exit_code == 1, r.output
    assert "ETHUSDT" in r.output and "min_bars_per_symbol" in r.output
    assert "BTCUSDT (" not in r.output  # eligible, and AAPL is not configured
    assert "Traceback" not in r.output


def test_strict_passes_when_every_configured_symbol_is_eligible(
    runner: CliRunner, checked_lake: Path, tmp_path: Path
) -> None:
    (tmp_path / "marketlake.toml").write_text(
        '[binance]\nsymbols = ["BTCUSDT"]\n\n[polygon]\nsymbols = []\n\n[yahoo]\nsymbols = []\n'
    )
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--strict", "--format", "json"])
    assert r.exit_code == 0, r.output


def test_a_configured_symbol_without_bars_is_reported_and_fails_strict(
    runner: CliRunner, checked_lake: Path, tmp_path: Path
) -> None:
    (tmp_path / "marketlake.toml").write_text(
        '[binance]\nsymbols = ["BTCUSDT", "SOLUSDT"]\n\n[polygon]\nsymbols = []\n\n[yahoo]\nsymbols = []\n'
    )
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    sol = [x for x in json.loads(r.stdout) if x["symbol"] == "SOLUSDT"]
    assert sol and sol[0]["eligible"] is False and "no 1m bars in the lake" in sol[0]["why"]
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--strict"])
    assert r.exit_code == 1 and "SOLUSDT" in r.output, r.output


def test_check_on_an_empty_lake(runner: CliRunner, lake_root: Path, tmp_path: Path) -> None:
    (tmp_path / "marketlake.toml").write_text(
        "[binance]\nsymbols = []\n[polygon]\nsymbols = []\n[yahoo]\nsymbols = []\n"
    )
    with land(lake_root):
        pass  # a lake with nothing in it yet (a missing lake is an error: test_sql_confined.py)
    r = runner.invoke(cli, ["--lake", str(lake_root), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == []


def test_strict_keys_on_the_configured_symbol_and_interval(
    runner: CliRunner, checked_lake: Path, tmp_path: Path
) -> None:
    """BTCUSDT 1m is eligible, but marketlake.toml asks for BTCUSDT 1h, of which the lake holds 3 bars:
    an eligible other interval does not make the configured pair usable."""
    with land(checked_lake) as w:
        part = {"source": "binance", "interval": "1h", "symbol": "BTCUSDT", "period": "2024-07"}
        w.write(
            lake.BARS,
            part,
            bars_table(dt.datetime(2024, 7, 2, tzinfo=UTC), [1.0] * 3, interval=dt.timedelta(hours=1)),
        )
    (tmp_path / "marketlake.toml").write_text(
        '[data]\nmin_bars_per_symbol = 1000\n\n[binance]\nsymbols = ["BTCUSDT"]\ninterval = "1h"\n\n'
        "[polygon]\nsymbols = []\n\n[yahoo]\nsymbols = []\n"
    )
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--strict"])
    assert r.exit_code == 1, r.output
    assert "BTCUSDT 1h (only 3 bars" in r.output
    assert "BTCUSDT 1m (" not in r.output  # not configured: not a strict failure


def test_failing_checks_are_counted_per_symbol_and_interval(runner: CliRunner, checked_lake: Path) -> None:
    """AAPL 1m has an OHLC violation and bars on a holiday; AAPL 1h is clean and must not inherit them."""
    with land(checked_lake) as w:
        part = {"source": "polygon", "interval": "1h", "symbol": "AAPL", "period": "2024-07"}
        hourly = bars_table(
            dt.datetime(2024, 7, 2, 13, 30, tzinfo=UTC),
            [100.0] * 6,
            asset_class="stock",
            interval=dt.timedelta(hours=1),
        )
        w.write(lake.BARS, part, hourly)
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["symbol"], x["interval"]): x for x in json.loads(r.stdout)}
    assert rows[("AAPL", "1m")]["checks"] == {"bars_outside_session": 2, "ohlc_violations": 1}
    assert rows[("AAPL", "1h")]["checks"] == {}
    assert rows[("AAPL", "1h")]["bars_outside_any_session"] == 0


def test_a_symbol_whose_every_row_was_quarantined_is_reported(runner: CliRunner, checked_lake: Path) -> None:
    from lake.schemas import UTC_TS

    rejected = pa.table(
        {
            "symbol": ["XRPUSDT", "XRPUSDT"],
            "interval": ["1m", "1m"],
            "source_file": ["x.csv", "x.csv"],
            "line_number": pa.array([1, 2], type=pa.int64()),
            "raw": ["a", "b"],
            "ts": pa.array(
                [dt.datetime(2024, 7, 2, tzinfo=UTC), dt.datetime(2024, 7, 2, 0, 1, tzinfo=UTC)], type=UTC_TS
            ),
            "open": [1.0, 1.0],
            "high": [0.5, 0.5],
            "low": [1.0, 1.0],
            "close": [1.0, 1.0],
            "volume": [1.0, 1.0],
            "reason": ["high below open", "high below open"],
        }
    )
    with land(checked_lake) as w:
        w.write(lake.BARS_REJECTED, {"source": "binance", "period": "2024-07"}, rejected)
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["symbol"], x["interval"]): x for x in json.loads(r.stdout)}
    xrp = rows[("XRPUSDT", "1m")]
    assert xrp["eligible"] is False and xrp["configured"] is False and xrp["rejected"] == 2
    assert "all 2 bar(s) were quarantined" in xrp["why"]


def table_rows(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """The check table's rows by (symbol, interval), each as {column header: cell} (printed wide enough
    that no cell wraps)."""
    lines = output.splitlines()
    header = [c.strip() for c in next(line for line in lines if "symbol" in line).strip("┃").split("┃")]
    out = {}
    for line in lines:
        if line.startswith("│"):
            cells = dict(zip(header, (c.strip() for c in line.strip("│").split("│")), strict=True))
            out[(cells["symbol"], cells["interval"])] = cells
    return out


def test_the_table_shows_bars_not_in_session_and_outside_all_sessions_as_the_json_counts_them(
    runner: CliRunner, lake_root: Path, tmp_path: Path
) -> None:
    """The S&P 500 sample's three 16:00 bars are in the extended session but not the regular one: the table
    said `off-session 0` (the bars outside every session only) while the JSON said 3."""
    from ingest import csv as csv_ingest
    from lake.config import Settings
    from lake.context import RunContext

    sample = Path(__file__).resolve().parents[2] / "samples" / "SP500_NOV2019_IDay.csv"
    assert csv_ingest.run(
        RunContext(lake_root, Settings(), quiet=True), sample, "SPX", "1m", "America/New_York"
    ).ok
    (tmp_path / "marketlake.toml").write_text(
        "[binance]\nsymbols = []\n[polygon]\nsymbols = []\n[yahoo]\nsymbols = []\n"
    )
    r = runner.invoke(cli, ["--lake", str(lake_root), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    (spx,) = json.loads(r.stdout)
    assert (spx["bars"], spx["bars_not_in_session"], spx["bars_outside_any_session"]) == (1560, 3, 0)
    r = runner.invoke(cli, ["--lake", str(lake_root), "check"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "marketlake check (session: regular)" in r.stdout, r.stdout
    row = table_rows(r.stdout)[("SPX", "1m")]
    assert (row["bars"], row["not in session"]) == ("1560", "3"), row
    assert "outside all sessions 0," in row["violations"], row
    assert "bars: bars in the session named above" in r.stdout and "not in session: " in r.stdout, r.stdout


def test_the_table_counts_match_the_json_for_every_row(runner: CliRunner, checked_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    want = {(x["symbol"], x["interval"]): x for x in json.loads(r.stdout)}
    assert want[("AAPL", "1m")]["bars_outside_any_session"] == 2
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    got = table_rows(r.stdout)
    assert set(got) == set(want)
    for key, row in got.items():
        assert row["bars"] == str(want[key]["bars"]), key
        assert row["not in session"] == str(want[key]["bars_not_in_session"]), key
        assert f"outside all sessions {want[key]['bars_outside_any_session']}," in row["violations"], key


def test_configured_pairs_with_no_bar_are_one_line_and_the_lakes_pairs_stay_in_full(
    runner: CliRunner, checked_lake: Path, tmp_path: Path
) -> None:
    """A lake built from a few files, under a marketlake.toml configuring many pairs: the absent pairs were a
    table row and a verdict line each (hundreds of lines burying the lake's own). They are one line; the
    JSON keeps a row for each, and --strict still names each."""
    absent = ["ADAUSDT", "DOGEUSDT", "SOLUSDT", "XRPUSDT"]
    symbols = ", ".join(f'"{s}"' for s in ["BTCUSDT", "ETHUSDT", *absent])
    (tmp_path / "marketlake.toml").write_text(
        f'[binance]\nsymbols = [{symbols}]\ninterval = "1m"\n\n[polygon]\nsymbols = ["MSFT"]\n'
        'interval = "1m"\n\n[yahoo]\nsymbols = ["MSFT"]\ninterval = "1d"\n'
    )
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert set(table_rows(r.stdout)) == {("AAPL", "1m"), ("BTCUSDT", "1m"), ("ETHUSDT", "1m")}, r.stdout
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("not in the lake")]
    assert line == (
        "not in the lake (6 configured pair(s), no bar at all; NOT eligible): 1d: MSFT; "
        "1m: ADAUSDT, DOGEUSDT, MSFT, SOLUSDT, XRPUSDT"
    ), line
    assert not any(x.startswith(("SOLUSDT", "MSFT")) for x in r.stdout.splitlines()), r.stdout
    assert "ETHUSDT 1m: NOT eligible: only 300 bars" in r.stdout and "AAPL 1m: NOT eligible" in r.stdout

    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)) == 3 + 6
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--strict"])
    assert r.exit_code == 1, r.output
    assert all(f"{s} 1m (no 1m bars in the lake" in r.output for s in [*absent, "MSFT"]), r.output


def test_rejected_is_counted_per_symbol_and_interval_and_each_quarantined_bar_once(
    runner: CliRunner, lake_root: Path, tmp_path: Path
) -> None:
    """The real SPY daily file (2 rows quarantined: a low above the open) imported, then imported again under
    another name: `rejected` said 4 for SPY 1d and 4 for SPY 1m (configured, no 1m row at all), summing
    every interval of the symbol and every file that carried the same bar. It is 2 for SPY 1d, 0 for 1m."""
    import shutil

    from ingest import csv as csv_ingest
    from lake.config import Settings
    from lake.context import RunContext

    sample = Path(__file__).resolve().parents[2] / "samples" / "yahoofinance-SPY-20080101-20180101.csv"
    copy = tmp_path / "spy-again.csv"
    shutil.copyfile(sample, copy)
    ctx = RunContext(lake_root, Settings(), quiet=True)
    assert csv_ingest.run(ctx, sample, "SPY", "1d", None).ok
    assert csv_ingest.run(ctx, copy, "SPY", "1d", None).ok
    (tmp_path / "marketlake.toml").write_text(
        '[binance]\nsymbols = []\n[polygon]\nsymbols = ["SPY"]\ninterval = "1m"\n[yahoo]\nsymbols = []\n'
    )
    r = runner.invoke(cli, ["--lake", str(lake_root), "sql", "SELECT count(*) AS n FROM bars_rejected"])
    assert r.exit_code == 0 and "4" in r.stdout, r.output  # two rows per file, as stored
    r = runner.invoke(cli, ["--lake", str(lake_root), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["symbol"], x["interval"]): x for x in json.loads(r.stdout)}
    assert rows[("SPY", "1d")]["rejected"] == 2, rows[("SPY", "1d")]
    assert rows[("SPY", "1m")]["rejected"] == 0 and rows[("SPY", "1m")]["bars"] == 0, rows[("SPY", "1m")]
    r = runner.invoke(cli, ["--lake", str(lake_root), "check"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "rejected 2" in table_rows(r.stdout)[("SPY", "1d")]["violations"], r.stdout
    assert ("SPY", "1m") not in table_rows(r.stdout)  # no bar and nothing quarantined: the absent line
    assert "not in the lake (1 configured pair(s)" in r.stdout and "1m: SPY" in r.stdout, r.stdout


def test_a_quarantined_bar_is_counted_once_per_ts_and_reason_and_unreadable_rows_by_raw_text(
    runner: CliRunner, checked_lake: Path
) -> None:
    """bars_rejected keeps a row per (source_file, line_number). A bar is its (symbol, interval, ts, reason):
    the same in two files counts once, a different reason or ts is another; a row without a ts is its raw
    text and reason."""
    from lake.schemas import UTC_TS

    t0 = dt.datetime(2024, 7, 2, tzinfo=UTC)
    t1 = dt.datetime(2024, 7, 2, 0, 1, tzinfo=UTC)
    files = ["a.csv", "b.csv", "a.csv", "b.csv", "a.csv", "b.csv", "a.csv", "c.csv"]
    rejected = pa.table(
        {
            "symbol": ["XRPUSDT"] * 8,
            "interval": ["1m"] * 7 + ["1h"],
            "source_file": files,
            "line_number": pa.array([1, 1, 2, 2, 3, 3, 4, 1], type=pa.int64()),
            "raw": ["r0", "r0", "r1", "r1b", "bad,ts", "bad,ts", "other,ts", "r0"],
            "ts": pa.array([t0, t0, t1, t1, None, None, None, t0], type=UTC_TS),
            "open": [1.0] * 8,
            "high": [0.5] * 8,
            "low": [1.0] * 8,
            "close": [1.0] * 8,
            "volume": [1.0] * 8,
            "reason": ["high below open"] * 2
            + ["volume negative", "high below open"]
            + ["bad ts"] * 3
            + ["high below open"],
        }
    )
    with land(checked_lake) as w:
        w.write(lake.BARS_REJECTED, {"source": "binance", "period": "2024-07"}, rejected)
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["symbol"], x["interval"]): x for x in json.loads(r.stdout)}
    # 1m: t0 once (two files), t1 twice (two reasons), 'bad,ts' once (two files), 'other,ts' once
    assert rows[("XRPUSDT", "1m")]["rejected"] == 5
    assert rows[("XRPUSDT", "1h")]["rejected"] == 1
    assert "all 5 bar(s) were quarantined" in rows[("XRPUSDT", "1m")]["why"]

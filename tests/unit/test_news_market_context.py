"""market_context: SPY/QQQ returns come from bar_features (inside the selected session, within SPY's
segment), and nothing older than one bar of the interval plus max_gap_minutes at the bar's available_at
is carried."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import lake
from ingest.sessions import land
from lake.config import Settings
from tests.conftest import bars_table

NY = ZoneInfo("America/New_York")
MIN = dt.timedelta(minutes=1)


def ny(m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2024, m, d, hh, mm, tzinfo=NY).astimezone(dt.UTC)


def spy_close(t: dt.datetime) -> float:
    """A distinct close per minute, so that returns against different bars differ."""
    return 400.0 + (t - ny(1, 5, 4)).total_seconds() / 60 * 0.01


def write(root: Path) -> None:
    with land(root) as w:
        for day in (5, 8):  # Friday 2024-01-05 and Monday 2024-01-08, extended hours 04:00-20:00 (winter)
            t0 = ny(1, day, 4)
            closes = [spy_close(t0 + i * MIN) for i in range(960)]
            part = {"source": "polygon", "interval": "1m", "symbol": "SPY", "period": "2024-01"}
            w.write(lake.BARS, part, bars_table(t0, closes, asset_class="etf"), mode="merge")
        aapl = bars_table(ny(1, 8, 9, 30), [180.0, 181.0, 182.0], asset_class="stock")
        w.write(
            lake.BARS, {"source": "polygon", "interval": "1m", "symbol": "AAPL", "period": "2024-01"}, aapl
        )
        btc = [
            bars_table(ny(1, 8, 4), [42000.0, 42010.0]),
            bars_table(dt.datetime(2024, 1, 6, 12, tzinfo=dt.UTC), [43000.0]),
        ]
        for t in btc:
            w.write(
                lake.BARS,
                {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"},
                t,
                mode="merge",
            )


def context(root: Path, session: str) -> dict[tuple[str, dt.datetime], dict[str, Any]]:
    con = lake.connect(root, read_only=True, settings=Settings(session=session))
    rel = con.sql("SELECT * FROM market_context")
    return {(r[0], r[2]): dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()}


def test_crypto_before_the_regular_open_gets_no_pre_market_spy_in_regular_mode(lake_root: Path) -> None:
    write(lake_root)
    row = context(lake_root, "regular")[("BTCUSDT", ny(1, 8, 4))]
    # the latest regular-hours SPY bar is Friday's 15:59: far older than max_gap_minutes
    assert row["spy_available_at"] is None and row["spy_log_ret_1"] is None
    ext = context(lake_root, "extended")[("BTCUSDT", ny(1, 8, 4))]
    # extended hours: the 04:00 SPY bar is known at 04:01, its return is against Friday's 19:59 close
    assert ext["spy_available_at"] == ny(1, 8, 4, 1)
    assert math.isclose(ext["spy_log_ret_1"], math.log(spy_close(ny(1, 8, 4)) / spy_close(ny(1, 5, 19, 59))))


def test_first_regular_bar_gets_spys_regular_return_not_a_pre_market_one(lake_root: Path) -> None:
    write(lake_root)
    row = context(lake_root, "regular")[("AAPL", ny(1, 8, 9, 30))]
    assert row["spy_available_at"] == ny(1, 8, 9, 31)
    want = math.log(spy_close(ny(1, 8, 9, 30)) / spy_close(ny(1, 5, 15, 59)))  # previous session's close
    assert math.isclose(row["spy_log_ret_1"], want), (row["spy_log_ret_1"], want)


def test_weekend_crypto_rows_carry_no_friday_spy_state(lake_root: Path) -> None:
    write(lake_root)
    for session in ("regular", "extended"):
        row = context(lake_root, session)[("BTCUSDT", dt.datetime(2024, 1, 6, 12, tzinfo=dt.UTC))]
        assert row["spy_available_at"] is None and row["spy_log_ret_1"] is None, session
        assert row["qqq_available_at"] is None


def test_spy_state_within_max_gap_is_kept_and_beyond_it_dropped(lake_root: Path) -> None:
    write(lake_root)
    # BTC's second bar (04:01 NY, known 04:02) sees SPY's 04:01 bar in extended mode
    assert context(lake_root, "extended")[("BTCUSDT", ny(1, 8, 4, 1))]["spy_available_at"] == ny(1, 8, 4, 2)
    con = lake.connect(
        lake_root, read_only=True, settings=Settings(session="regular", max_gap_minutes=100000)
    )
    (got,) = con.execute(
        "SELECT spy_available_at FROM market_context WHERE symbol = 'BTCUSDT' AND ts = ?", [ny(1, 8, 4)]
    ).fetchone() or (None,)
    assert got == ny(1, 5, 16)  # a wide max_gap_minutes keeps Friday's close: the rule is the setting's


def test_daily_crypto_bars_take_spys_latest_daily_bar_in_winter_too(lake_root: Path, tmp_path: Path) -> None:
    """A daily crypto bar is known at midnight UTC; SPY's daily bar at its close, 01:00 UTC in winter (00:00
    in summer). Within one bar plus max_gap_minutes, the crypto bar takes SPY's bar of the session before
    (it took none all winter when only max_gap_minutes was allowed); never one not yet known."""
    from click.testing import CliRunner

    from cli.main import cli

    days = [dt.date(2024, 1, 8) + dt.timedelta(days=i) for i in range(21)]
    sessions = [d for d in days if d.weekday() < 5 and d != dt.date(2024, 1, 15)]  # MLK day: no session
    for symbol, ds, extra in (("SPY", sessions, []), ("BTCUSD", days, ["--asset-class", "crypto"])):
        lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
        lines += [f"{d},{99 + i},{101 + i},{98 + i},{100 + i},{100 + i},1000" for i, d in enumerate(ds)]
        path = tmp_path / f"{symbol}.csv"
        path.write_text("\n".join(lines) + "\n")
        args = ["--lake", str(lake_root), "-q", "ingest", "csv", "--interval", "1d", "--symbol", symbol]
        r = CliRunner().invoke(cli, [*args, *extra, str(path)])
        assert r.exit_code == 0, r.output
    con = lake.connect(lake_root, read_only=True)
    rows = con.execute(
        "SELECT ts, available_at, spy_available_at FROM features WHERE symbol = 'BTCUSD' ORDER BY ts"
    ).fetchall()
    con.close()
    assert rows and all(spy is None or spy <= av for _, av, spy in rows)  # never a SPY bar not yet known
    by_day = {ts.date(): spy for ts, _, spy in rows}
    # Wednesday 17 January's bar, known at 00:00 UTC on the 18th: Tuesday's SPY bar, known at 20:00 New York
    # (01:00 UTC on the 17th); Wednesday's is known only at 01:00 UTC on the 18th, after it
    assert by_day[dt.date(2024, 1, 17)] == ny(1, 16, 20), by_day[dt.date(2024, 1, 17)]
    # the bar of Sunday 14 January, known Monday 00:00 UTC: SPY's last bar is Friday's, more than a day old
    assert by_day[dt.date(2024, 1, 14)] is None
    assert sum(spy is not None for spy in by_day.values()) >= 10

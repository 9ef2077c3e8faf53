"""One OHLC consistency rule for every source (ingest.common.ohlcv_problem): a bar that cannot have traded
goes to bars_rejected with the reason, whichever vendor served it."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest import binance, yahoo
from ingest.common import ohlcv_problem
from ingest.polygon import parse_day_file
from tests.s3_server import day_file, ns
from tests.yahoo_replay import chart_payload

NY = ZoneInfo("America/New_York")
DAY = dt.date(2024, 1, 2)
T = dt.datetime.combine(DAY, dt.time(9, 30), NY).astimezone(dt.UTC)
INF = math.inf


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ((100.0, 90.0, 95.0, 200.0, 5.0), "high 90.0 < low 95.0"),
        ((100.0, 110.0, 95.0, 200.0, 5.0), "high 110.0 is below open 100.0 or close 200.0"),
        ((100.0, 110.0, 99.0, 98.0, 5.0), "low 99.0 is above open 100.0 or close 98.0"),
        ((1.0, 1.0, 0.0, 1.0, 5.0), "low 0.0 is not positive"),
        ((1.0, 1.0, 1.0, 1.0, -1.0), "volume -1.0 is negative"),
        ((1.0, INF, 1.0, 1.0, 5.0), "high inf is not finite"),
        ((1.0, 1.0, 1.0, 1.0, INF), "volume inf is not finite"),
        ((1.0, 1.0, 1.0, math.nan, 1.0), "close nan is not finite"),
    ],
)
def test_inconsistent_bars_are_named(values: tuple[float, ...], reason: str) -> None:
    assert ohlcv_problem(values) == reason


def test_consistent_bars_pass() -> None:
    assert ohlcv_problem((10.0, 12.0, 9.0, 11.0, 0.0)) is None
    assert ohlcv_problem((10.0, 10.0, 10.0, 10.0, 3.0)) is None


def test_polygon_rejects_an_inconsistent_row(tmp_path: Path) -> None:
    p = tmp_path / "f.csv.gz"
    # ticker,volume,open,close,high,low: high 90 < low 95, close 200 > high
    p.write_bytes(
        day_file([("AAPL", 10, 100, 200, 90, 95, ns(T), 3), ("AAPL", 10, 1, 1, 2, 1, ns(T) + 60 * 10**9, 3)])
    )
    out = parse_day_file(p, source_file="s3://b/k", day=DAY, interval="1m", tickers=["AAPL"])
    assert [b["close"] for b in out.bars["AAPL"]] == [1.0]
    assert [r["reason"] for r in out.rejected["AAPL"]] == ["high 90 < low 95"]


def test_polygon_rejects_an_infinite_value(tmp_path: Path) -> None:
    p = tmp_path / "f.csv.gz"
    p.write_bytes(day_file([("AAPL", "1e400", 1, 1, "1e400", 1, ns(T), 3)]))
    out = parse_day_file(p, source_file="s3://b/k", day=DAY, interval="1m", tickers=["AAPL"])
    assert not out.bars.get("AAPL")
    assert [r["reason"] for r in out.rejected["AAPL"]] == ["high 1e400 is not finite"]


def test_yahoo_rejects_an_inconsistent_row() -> None:
    t = int(T.timestamp())
    payload = chart_payload(
        "AAPL",
        "1m",
        [t, t + 60],
        open=[100.0, 1.0],
        high=[90.0, 2.0],
        low=[95.0, 1.0],
        close=[200.0, 1.5],
        volume=[5, 6],
    )
    day0 = yahoo._midnight(DAY)
    win = yahoo.Window(DAY, DAY, day0, day0 + 86400)
    r = yahoo.parse_chart(
        payload,
        symbol="AAPL",
        interval="1m",
        window=win,
        source_file="x",
        now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    assert [b["close"] for b in r.bars] == [1.5]
    assert [x["reason"] for x in r.rejected] == ["high 90.0 < low 95.0"]


def test_binance_uses_the_same_rule_with_the_values_as_written() -> None:
    start = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    ms = int(start.timestamp() * 1000)
    good = f"{ms},1.0,2.0,1.0,1.5,3.0,{ms + 59999},4.5,7,1.0,1.0,0"
    bad = f"{ms + 60000},100.0,90.0,95.0,200.0,3.0,{ms + 119999},4.5,7,1.0,1.0,0"
    huge = f"{ms + 120000},1.0,{'9' * 400},1.0,1.0,3.0,{ms + 179999},4.5,7,1.0,1.0,0"
    parsed = binance.parse_klines(
        "\n".join([good, bad, huge]).encode() + b"\n",
        symbol="BTCUSDT",
        interval="1m",
        source_file="f.zip",
        start=start,
        end=start + dt.timedelta(days=1),
    )
    assert parsed.bars.num_rows == 1
    reasons = parsed.rejected.column("reason").to_pylist()
    assert reasons[0] == "high 90.0 < low 95.0"
    assert reasons[1] == f"high {'9' * 400} is not finite"

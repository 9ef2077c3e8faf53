"""The one precedence rule of `bars` (sql/views/020_bars.sql): Yahoo fills gaps, never overwrites."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lake
from ingest.sessions import land
from lake.config import Settings
from tests.conftest import bars_table

T0 = dt.datetime(2024, 11, 29, 14, 30, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)
RANK = {"polygon": 1, "binance": 1, "yahoo": 2}


def write(root: Path, source: str, minutes: list[int], price: float, symbol: str = "AAPL") -> None:
    with land(root) as w:
        for i in sorted(minutes):
            t = bars_table(T0 + i * M, [price + i], asset_class="stock", source_file=f"{source}.csv")
            part = {"source": source, "interval": "1m", "symbol": symbol, "period": "2024-11"}
            w.write(lake.BARS, part, t)


def bars(root: Path) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        return con.execute("SELECT symbol, ts, source, close FROM bars ORDER BY symbol, ts").fetchall()
    finally:
        con.close()


def test_polygon_wins_where_it_has_the_bar_and_yahoo_fills_the_gaps(lake_root: Path) -> None:
    write(lake_root, "polygon", [0, 1, 3], 100.0)
    write(lake_root, "yahoo", [0, 1, 2, 3, 4], 200.0)
    got = bars(lake_root)
    assert got == [
        ("AAPL", T0, "polygon", 100.0),
        ("AAPL", T0 + M, "polygon", 101.0),
        ("AAPL", T0 + 2 * M, "yahoo", 202.0),  # a gap in Polygon: Yahoo's bar, marked as Yahoo's
        ("AAPL", T0 + 3 * M, "polygon", 103.0),
        ("AAPL", T0 + 4 * M, "yahoo", 204.0),
    ]
    # nothing is lost underneath: every stored bar is still in lake_bars
    con = lake.connect(lake_root, read_only=True, settings=Settings())
    assert con.execute("SELECT count(*) FROM lake_bars").fetchone() == (8,)
    con.close()


def test_the_rule_does_not_mix_symbols_or_intervals(lake_root: Path) -> None:
    write(lake_root, "polygon", [0], 100.0, symbol="AAPL")
    write(lake_root, "yahoo", [0], 200.0, symbol="MSFT")
    assert [(s, src) for s, _, src, _ in bars(lake_root)] == [("AAPL", "polygon"), ("MSFT", "yahoo")]


minute_sets = st.lists(st.integers(0, 15), max_size=10, unique=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(polygon=minute_sets, yahoo=minute_sets, other=minute_sets)
def test_bars_matches_a_brute_force_reference(polygon: list[int], yahoo: list[int], other: list[int]) -> None:
    stored = {"polygon": (polygon, 100.0), "yahoo": (yahoo, 200.0), "vendorx": (other, 300.0)}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "lake"
        for source, (minutes, price) in stored.items():
            if minutes:
                write(root, source, minutes, price)
        got = bars(root) if root.exists() else []
    expected = []
    for i in sorted(set(polygon) | set(yahoo) | set(other)):
        holders = [s for s, (mins, _) in stored.items() if i in mins]
        best = min(holders, key=lambda s: (RANK.get(s, 9), s))
        expected.append(("AAPL", T0 + i * M, best, stored[best][1] + i))
    assert got == expected

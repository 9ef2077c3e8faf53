"""bar_features in two window passes (sql/views/049_bar_features_priced.sql) against the four-pass definition it
replaced (tests/unit/sql/bar_features_reference.sql, windows partitioned by segment): the same rows and the
same values, on generated lakes with gaps, skipped sessions, both session modes, two symbols and hourly
bars. A frame or lag that reached into an earlier segment would show here as a changed value."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lake
from lake.config import Settings
from tests.unit.test_features_point_in_time import MIN, make_bars, series, write

REFERENCE = Path(__file__).parent / "sql" / "bar_features_reference.sql"


def same(a: Any, b: Any) -> bool:
    """Equal; floats to 1e-12 relative (a frame's sum may be combined in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b) if a is not None and b is not None else a is None and b is None


def assert_same_as_reference(root: Path, s: Settings) -> int:
    con = lake.connect(root, settings=s)
    try:
        con.execute(REFERENCE.read_text(encoding="utf-8"))
        order = 'ORDER BY symbol, "interval", ts'
        got = con.sql(f"SELECT * FROM bar_features_priced {order}")
        want = con.sql(f"SELECT * FROM bar_features_reference {order}")
        assert got.columns == want.columns
        cols, rows_got, rows_want = got.columns, got.fetchall(), want.fetchall()
    finally:
        con.close()
    assert len(rows_got) == len(rows_want)
    for rg, rw in zip(rows_got, rows_want, strict=True):
        for c, vg, vw in zip(cols, rg, rw, strict=True):
            assert same(vg, vw), f"bar_features.{c} of {rw[0]} at {rw[2]}: {vg!r}, reference {vw!r}"
    return len(rows_got)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series(), st.sampled_from(["1m", "1h"]), st.sampled_from([15, 40]))
def test_two_passes_give_the_four_pass_reference(case: dict[str, Any], interval: str, max_gap: int) -> None:
    asset = "crypto" if case["kind"] == "crypto" else "stock"
    s = Settings(session=case["session"], max_gap_minutes=max_gap)
    k = 1 if interval == "1m" else 60
    ts = [case["ts"][0] + (t - case["ts"][0]) * k for t in case["ts"]]
    step = MIN * k
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        source = "binance" if asset == "crypto" else "polygon"
        bars = make_bars(ts, case["closes"], case["volumes"], asset_class=asset, interval=step)
        write(root, "SYM", bars, source=source, interval=interval)
        # a second symbol on the same partition key, its rows shifted: windows never mix symbols
        other = make_bars(
            [t + 3 * step for t in ts], [c * 1.7 for c in case["closes"]], asset_class=asset, interval=step
        )
        write(root, "TWO", other, source=source, interval=interval)
        assert assert_same_as_reference(root, s) > 0

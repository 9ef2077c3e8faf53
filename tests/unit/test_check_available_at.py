"""The available_at data check agrees with how daily bars of exchange symbols are stamped (close + 4 h)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

import lake
from ingest.sessions import land
from ingest.stamping import stamp_daily
from lake.connect import check_files
from lake.schemas import UTC_TS


def test_a_calendar_stamped_daily_bar_passes_and_one_known_at_the_close_fails(lake_root: Path) -> None:
    days = [dt.date(2024, 11, 26), dt.date(2024, 11, 29)]  # a normal day and an early close
    stamps = [stamp_daily(d, dt.datetime.combine(d, dt.time(21), dt.UTC)) for d in days]
    ts = [t for t, _ in stamps]
    right = [a for _, a in stamps]
    wrong = [right[0], right[1] - dt.timedelta(hours=4)]  # the second one at the regular close
    n = len(days)
    table = pa.table(
        {
            "asset_class": ["etf"] * n,
            "ts": pa.array(ts, type=UTC_TS),
            "available_at": pa.array(wrong, type=UTC_TS),
            "open": [1.0] * n,
            "high": [1.0] * n,
            "low": [1.0] * n,
            "close": [1.0] * n,
            "volume": [1.0] * n,
            "trades": pa.array([1] * n, type=pa.int64()),
            "source_file": ["t.csv"] * n,
        }
    )
    with land(lake_root) as w:
        w.write(lake.BARS, {"source": "csv", "interval": "1d", "symbol": "SPY", "period": "2024"}, table)
    sql = dict(check_files())["available_at_mismatch"].read_text()
    con = lake.connect(lake_root, read_only=True)
    failing = con.sql(sql.strip().rstrip(";")).fetchall()
    con.close()
    assert [r[3].date() for r in failing] == [dt.date(2024, 11, 29)]

"""`make bench`: the lake's costs as ratios against a reference run in the same process.

Each line times our path and a plain reference doing the same work (best of N), and prints the ratio,
so that numbers compare across machines. Benchmark data is made here (a random walk, never written to a
user's lake); it measures machinery, not markets.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import lake
from ingest.sessions import land
from lake.schemas import UTC_TS
from lake.writer import PARQUET_OPTIONS


def best_of(fn: Callable[[], object], n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def month_of_minutes(seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = 31 * 1440
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ts = pa.array([t0 + dt.timedelta(minutes=i) for i in range(n)], type=UTC_TS)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pa.table(
        {
            "asset_class": ["crypto"] * n,
            "ts": ts,
            "available_at": pa.compute.add(ts, pa.scalar(dt.timedelta(minutes=1))),
            "open": open_,
            "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995,
            "close": close,
            "volume": rng.uniform(0, 10, n),
            "trades": pa.array(rng.integers(0, 100, n), type=pa.int64()),
            "source_file": ["bench"] * n,
        }
    )


def main() -> None:
    table = month_of_minutes()
    part = {"source": "binance", "interval": "1m", "symbol": "BENCH", "period": "2024-01"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        ref_file = Path(tmp) / "ref.parquet"

        def ours_write() -> None:
            with land(root) as w:
                w.write(lake.BARS, part, table, mode="replace")

        def ref_write() -> None:
            pq.write_table(table, ref_file, **PARQUET_OPTIONS)

        ours = best_of(ours_write)
        ref = best_of(ref_write)
        print(
            f"re-write an unchanged symbol-month (44,640 bars): lake writer / pq.write_table = {ours / ref:5.2f}x"
        )

        other = table.set_column(6, "close", pa.compute.multiply(table.column("close"), 1.0001))
        flip = [table, other]

        def ours_changed_write() -> None:
            flip.reverse()
            with land(root) as w:
                w.write(lake.BARS, part, flip[0], mode="replace")

        ours_changed = best_of(ours_changed_write)
        print(
            f"write a changed symbol-month: lake writer (validate, dedup, fsync, manifest) / pq.write_table = {ours_changed / ref:5.2f}x"
        )

        def ours_merge() -> None:
            with land(root) as w:
                w.write(lake.BARS, part, table.slice(0, 1440))

        print(
            f"merge one day into a month (idempotent): lake writer / plain write  = {best_of(ours_merge) / ref:5.2f}x"
        )

        con = lake.connect(root)
        q_ours = "SELECT avg(close) FROM bars WHERE symbol = 'BENCH'"
        q_ref = f"SELECT avg(close) FROM read_parquet('{ref_file}')"
        ours_q = best_of(lambda: con.sql(q_ours).fetchall())
        ref_q = best_of(lambda: con.sql(q_ref).fetchall())
        print(f"scan one symbol-month: bars view / read_parquet of one file         = {ours_q / ref_q:5.2f}x")

        q_f = "SELECT count(*) FROM features WHERE symbol = 'BENCH'"
        print(
            f"features over one symbol-month: features / bars scan               = {best_of(lambda: con.sql(q_f).fetchall(), 3) / ours_q:5.2f}x"
        )


if __name__ == "__main__":
    main()

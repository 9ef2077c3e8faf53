"""`make bench`: the costs that matter, each as a ratio against a reference run in the same process.

    make bench                      # the table; exit status 1 if a target is missed
    .venv/bin/python -m tests.bench --json
    .venv/bin/python -m tests.bench --quick    # smaller sizes, for a smoke run

Every row: benchmark, our figure, the reference's figure, the ratio, the target and whether it is met, and
the peak memory where memory is a target (measured in a child process of its own). Benchmark data is made
here, in the vendors' exact formats where a vendor file is read (a random walk: it measures machinery, not
markets) and never written to a user's lake. The test suite does not run this.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import io
import itertools
import json
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import lake
from lake.schemas import UTC_TS
from lake.writer import LakeWriter, parquet_options


@dataclass
class Row:
    """One line of the table."""

    benchmark: str
    figure: str
    reference: str
    ratio: float | None
    target: str
    ok: bool | None
    peak_mib: float | None = None


def best_of(fn: Callable[[], object], n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_of_pair(ref: Callable[[], object], ours: Callable[[], object], n: int = 15) -> tuple[float, float]:
    """The best of n runs of each of two functions, run in turn (ref, ours, ref, ...): for timings of a
    few milliseconds, where three runs on a shared machine measure mostly the load, both sides see the same
    moments of it."""
    r: list[float] = []
    o: list[float] = []
    for _ in range(n):
        for fn, out in ((ref, r), (ours, o)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return min(r), min(o)


def _peak_mib() -> float:
    """This process's peak resident memory: VmHWM (reset when a process execs, unlike ru_maxrss, which Linux
    carries over from the parent that spawned it), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], imports: tuple[str, ...]) -> None:
    try:
        for name in imports:
            importlib.import_module(name)
        t = time.perf_counter()
        out = fn(*args)
        seconds = time.perf_counter() - t
        conn.send((seconds, _peak_mib(), out))
    except BaseException:
        import traceback

        conn.send(("failed", traceback.format_exc()))
        raise
    finally:
        conn.close()


def in_child(fn: Callable[..., Any], *args: Any, imports: tuple[str, ...] = ()) -> tuple[float, float, Any]:
    """Run fn(*args) in a fresh process: (seconds, peak resident MiB of that process, fn's result). The
    modules `imports` are imported in that process before the clock starts (a benchmark measures the work,
    not the interpreter's start-up, as it would in one long-lived process)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, fn, args, imports))
    p.start()
    child.close()
    try:
        got = parent.recv()
    except EOFError:
        p.join()
        got = ("failed", f"the process ended (exit code {p.exitcode}) without a result")
    p.join()
    if got[0] == "failed":
        raise RuntimeError(
            f"benchmark {getattr(fn, '__name__', fn)}{args!r} failed in its process:\n{got[1]}"
        )
    result: tuple[float, float, Any] = got
    return result


# --- data ----------------------------------------------------------------------------------------------


def month_of_minutes(seed: int = 0, year: int = 2024, month: int = 1, n: int | None = None) -> pa.Table:
    """A BARS table of one month of 1m crypto bars (random walk)."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    nxt = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
    n = n or int((nxt - t0).total_seconds() // 60)
    ts_us = np.int64(t0.timestamp() * 1_000_000) + np.arange(n, dtype=np.int64) * 60_000_000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    ts = pa.array(ts_us, type=pa.int64()).cast(UTC_TS)
    return pa.table(
        {
            "asset_class": pa.array(["crypto"] * n),
            "ts": ts,
            "available_at": pa.array(ts_us + 60_000_000, type=pa.int64()).cast(UTC_TS),
            "open": open_,
            "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995,
            "close": close,
            "volume": rng.uniform(0, 10, n),
            "trades": pa.array(rng.integers(0, 100, n), type=pa.int64()),
            "source_file": pa.array(["bench"] * n),
        }
    )


def news_of(symbol: str, seed: int, months: int) -> pa.Table:
    """A NEWS table: about one article every 100 minutes over `months` months (made-up headlines)."""
    rng = np.random.default_rng(seed)
    t0 = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1_000_000)
    n = months * 31 * 1440 // 100
    published = np.sort(
        t0 + rng.integers(0, months * 31 * 1440, n) * 60_000_000 + rng.integers(0, 60, n) * 1_000_000
    )
    ts = pa.array(published, type=pa.int64()).cast(UTC_TS)
    return pa.table(
        {
            "id": pa.array([f"{symbol}-{i}" for i in range(n)]),
            "published_at": ts,
            "ingested_at": ts,
            "title": pa.array([f"headline {i}" for i in range(n)]),
            "summary": pa.nulls(n, pa.string()),
            "publisher": pa.nulls(n, pa.string()),
            "url": pa.nulls(n, pa.string()),
            "sentiment": np.round(rng.uniform(-1, 1, n), 4),
            "source": pa.array(["bench"] * n),
        }
    )


def build_lake(root: Path, symbols: int, months: int) -> int:
    """A lake of `symbols` x `months` of 1m crypto bars, with news for each symbol; returns the number of
    bars."""
    n = 0
    with LakeWriter.open(root) as w:
        for s in range(symbols):
            for m in range(months):
                t = month_of_minutes(seed=s * 100 + m, year=2024 + m // 12, month=m % 12 + 1)
                part = {"source": "binance", "interval": "1m", "symbol": f"SYM{s:02d}", "period": t_period(m)}
                w.write(lake.BARS, part, t, mode="replace")
                n += t.num_rows
            w.write(lake.NEWS, {"symbol": f"SYM{s:02d}"}, news_of(f"SYM{s:02d}", s, months), mode="replace")
    return n


def t_period(m: int) -> str:
    return f"{2024 + m // 12:04d}-{m % 12 + 1:02d}"


# --- benchmarks ----------------------------------------------------------------------------------------


def bench_writer(tmp: Path) -> list[Row]:
    table = month_of_minutes()
    part = {"source": "binance", "interval": "1m", "symbol": "BENCH", "period": "2024-01"}
    root = tmp / "writer-lake"
    ref_file = tmp / "ref.parquet"

    def ours() -> None:
        with LakeWriter.open(root) as w:
            w.write(lake.BARS, part, table, mode="replace")

    def ref() -> None:
        pq.write_table(table, ref_file, **parquet_options(table.schema))

    ours()
    o, r = best_of(ours), best_of(ref)
    return [
        Row(
            "lake writer: re-write an unchanged symbol-month (44,640 bars)",
            f"{o * 1000:.0f} ms",
            f"pq.write_table {r * 1000:.0f} ms",
            o / r,
            "",
            None,
        )
    ]


def bench_scans(root: Path) -> list[Row]:
    """A query on one symbol against reading that symbol's own Parquet files, both sides through `execute`.
    (The relation API, `con.sql`, binds a query twice, once to make the relation and once to run it: for a
    view over a glob that is a second listing of the folders, about 0.9 ms more here, against 0.3 ms more
    for the reference's list of files; measured with `con.sql` on one side only, the ratio was the API's.)"""
    con = lake.connect(root, read_only=True)
    files = sorted(str(p) for p in (root / "datasets/bars").glob("*/*/symbol=SYM00/*/data.parquet"))
    rows = []
    ref, ours = best_of_pair(
        lambda: con.execute("SELECT avg(close), count(*) FROM read_parquet(?)", [files]).fetchall(),
        lambda: con.execute("SELECT avg(close), count(*) FROM bars WHERE symbol = 'SYM00'").fetchall(),
    )
    rows.append(
        Row(
            "bars filtered by one symbol",
            f"{ours * 1000:.1f} ms",
            f"read_parquet of its files {ref * 1000:.1f} ms",
            ours / ref,
            "ratio <= 2x",
            ours / ref <= 2,
        )
    )
    stored = sorted(str(p) for p in (root / "datasets/features").glob("*/symbol=SYM00/*/data.parquet"))
    sref, sours = best_of_pair(
        lambda: con.execute("SELECT avg(ret_1), count(*) FROM read_parquet(?)", [stored]).fetchall(),
        lambda: con.execute(
            "SELECT avg(ret_1), count(*) FROM features_store WHERE symbol = 'SYM00'"
        ).fetchall(),
    )
    rows.append(
        Row(
            "features_store (the stored features) filtered by one symbol",
            f"{sours * 1000:.1f} ms",
            f"read_parquet of its files {sref * 1000:.1f} ms",
            sours / sref,
            "ratio <= 2x",
            sours / sref <= 2,
        )
    )
    feat = best_of(
        lambda: con.sql("SELECT avg(ret_1), count(*) FROM features WHERE symbol = 'SYM00'").fetchall(), 1
    )
    rows.append(
        Row(
            "features (the live view, recomputed) filtered by one symbol",
            f"{feat * 1000:.0f} ms",
            f"read_parquet of its bars {ref * 1000:.0f} ms",
            feat / ref,
            "(none: readers use features_store)",
            None,
        )
    )
    con.close()
    return rows


def _check_seconds(root: str) -> float:
    from features import check
    from lake.config import Settings
    from lake.context import RunContext

    ctx = RunContext(root=Path(root), settings=Settings(), quiet=True)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        check.report(ctx)
    return time.perf_counter() - t


def bench_check(root: Path, n_bars: int) -> list[Row]:
    seconds = _check_seconds(str(root))
    target = 3.0 * n_bars / 2_000_000
    return [
        Row(
            f"marketlake check on {n_bars:,} bars",
            f"{seconds:.2f} s",
            "",
            None,
            f"<= {target:.2f} s (3 s per 2M bars)",
            seconds <= target,
        )
    ]


def _store_build(root: str) -> int:
    """The feature store built from nothing (every chunk stale): the whole lake's features written."""
    from features import store
    from lake.config import Settings

    return store.refresh(root, Settings(), force=True).rows


def _asof_out(root: str, out: str) -> int:
    """The reference: a bare ASOF join of every bar to a per-symbol running news table, written out."""
    import duckdb

    con = duckdb.connect()
    files = str(Path(root) / "datasets/bars/*/*/*/*/data.parquet")
    con.execute(
        "CREATE TABLE n AS SELECT symbol, ts AS news_at, row_number() OVER (PARTITION BY symbol ORDER BY ts) AS k "
        "FROM read_parquet(?, hive_partitioning = true) USING SAMPLE 1%",
        [files],
    )
    con.execute(
        "COPY (SELECT b.*, n.k FROM read_parquet(?, hive_partitioning = true) b "
        "ASOF LEFT JOIN n ON n.symbol = b.symbol AND n.news_at < b.available_at) TO '"
        + out.replace("'", "''")
        + "' (FORMAT parquet)",
        [files],
    )
    return int(con.execute("SELECT count(*) FROM read_parquet(?)", [out]).fetchone()[0])  # type: ignore[index]


STORE_IMPORTS = ("features.store", "lake.config", "pandas")
"""What the store's build imports (duckdb, pyarrow and numpy with it; pandas, which pyarrow imports at its
first table made from a dict): imported before the clock starts, as the reference's are."""
ASOF_IMPORTS = ("duckdb",)
"""What the reference imports."""

BUILD_RUNS = 2
"""Runs of the feature store's full build and of its reference (the best of each is the figure)."""


def bench_features(root: Path, tmp: Path, n_bars: int, incremental: bool = True) -> list[Row]:
    """The feature store: a full build (every chunk), against a bare ASOF join of every bar to a news table
    written out, each the best of BUILD_RUNS runs in fresh processes, taken in turn (the file system's
    writeback and the kernel's reclaim weigh on one run more than another), with the larger peak memory;
    then a refresh with nothing changed, and one after a new month of one symbol."""
    from features import store
    from lake.config import Settings

    ours: list[tuple[float, float, int]] = []
    refs: list[tuple[float, float, Any]] = []
    for _ in range(BUILD_RUNS):
        # from nothing: a store left behind (by the scans, or the run before) would be read and compared,
        # not written
        shutil.rmtree(root / "datasets" / "features", ignore_errors=True)
        ours.append(in_child(_store_build, str(root), imports=STORE_IMPORTS))
        refs.append(in_child(_asof_out, str(root), str(tmp / "asof.parquet"), imports=ASOF_IMPORTS))
    ours_s, rows = min(o[0] for o in ours), ours[0][2]
    ours_mib = max(o[1] for o in ours)
    ref_s, ref_mib = min(r[0] for r in refs), max(r[1] for r in refs)
    out = [
        Row(
            f"feature store built from nothing, {n_bars:,} bars ({rows:,} rows)",
            f"{ours_s:.1f} s, {ours_mib:.0f} MiB",
            f"bare ASOF join {ref_s:.1f} s, {ref_mib:.0f} MiB",
            ours_s / ref_s,
            "ratio <= 3x and peak < 1536 MiB",
            ours_s / ref_s <= 3 and ours_mib < 1536,
            ours_mib,
        )
    ]
    if not incremental:
        return out
    t = time.perf_counter()
    nothing = store.refresh(root, Settings())
    idle = time.perf_counter() - t
    out.append(
        Row(
            "feature store refresh, nothing changed",
            f"{idle * 1000:.0f} ms ({len(nothing.fresh)} pairs up to date)",
            "",
            None,
            "<= 500 ms, nothing rebuilt",
            idle <= 0.5 and not nothing.built,
        )
    )
    with LakeWriter.open(root) as w:
        t_new = month_of_minutes(seed=999, year=2025, month=1)
        part = {"source": "binance", "interval": "1m", "symbol": "SYM00", "period": "2025-01"}
        w.write(lake.BARS, part, t_new, mode="replace")
    t = time.perf_counter()
    one = store.refresh(root, Settings())
    inc = time.perf_counter() - t
    out.append(
        Row(
            "feature store refresh after a new month of one symbol",
            f"{inc:.2f} s ({len(one.built)} pair rebuilt, {one.rows:,} rows)",
            f"full build {ours_s:.1f} s",
            inc / ours_s,
            "one pair rebuilt",
            one.built == [("SYM00", "1m")],
        )
    )
    return out


@contextlib.contextmanager
def _binance_server() -> Iterator[Any]:
    from tests.binance_server import serve

    gen: Any = serve()
    try:
        yield next(gen)
    finally:
        gen.close()


_RUN = itertools.count()
"""Numbers the reference runs' outputs: each writes new files, as ours do."""


def _cold_caches() -> None:
    """Forget what an earlier run in this process computed (the XNYS calendar by year, the stamping
    calendar), so that each measured run pays for its calendar as a fresh `marketlake ingest` does."""
    from features.calendars import _make_wide_xnys, xnys_year
    from ingest import stamping

    xnys_year.cache_clear()
    _make_wide_xnys.cache_clear()
    stamping._calendar.cache_clear()
    stamping.session.cache_clear()


def bench_binance(tmp: Path, symbols: int, repeat: int = 3) -> list[Row]:
    """Binance end to end from a local Data Vision (one month of 1m klines per symbol) into a lake: every
    zip and its .CHECKSUM over HTTP, verified, unzipped, parsed and checked, landed with manifests, the
    calendar brought up to date; against DuckDB's read_csv of the same CSVs (unzipped, on local disk) and
    a COPY per symbol. Each side the best of `repeat` runs, ours each into a new lake with cold caches."""
    import os

    import duckdb

    from ingest import binance
    from lake.config import Settings
    from lake.context import RunContext
    from tests.binance_server import Kline, csv_bytes

    rng = np.random.default_rng(1)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    n = 31 * 1440
    csvs: dict[str, bytes] = {}
    for s in range(symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        rows = [
            Kline(
                ts=start + dt.timedelta(minutes=i),
                open=f"{open_[i]:.8f}",
                high=f"{max(open_[i], close[i]) * 1.0005:.8f}",
                low=f"{min(open_[i], close[i]) * 0.9995:.8f}",
                close=f"{close[i]:.8f}",
                volume=f"{rng.uniform(0, 10):.8f}",
                count=int(rng.integers(0, 100)),
            )
            for i in range(n)
        ]
        csvs[f"BENCH{s:02d}USDT"] = csv_bytes(rows)
    total = n * symbols
    with _binance_server() as dv:
        for sym, data in csvs.items():
            dv.publish(sym, "1m", dt.date(2024, 1, 1), "monthly", csv=data)
        os.environ["BINANCE_BASE_URL"] = dv.base_url
        times = []
        for i in range(repeat):
            ctx = RunContext(root=tmp / f"binance-lake-{i}", settings=Settings(), quiet=True)
            _cold_caches()
            t = time.perf_counter()
            summary = binance.run(ctx, list(csvs), "1m", dt.date(2024, 1, 1), dt.date(2024, 1, 31))
            times.append(time.perf_counter() - t)
            if not summary.ok:
                raise SystemExit(f"binance bench failed: {summary.errors}")
            landed = sum(s.rows_landed for s in summary.symbols.values())
            if landed != total:
                raise SystemExit(f"binance bench: {landed} rows landed, expected {total}")
        ours = min(times)
    csv_dir = tmp / "csv"
    csv_dir.mkdir(exist_ok=True)
    for sym, data in csvs.items():
        (csv_dir / f"{sym}.csv").write_bytes(data)

    def ref() -> None:
        con = duckdb.connect()
        run = next(_RUN)  # new files each time, as ours are
        for sym in csvs:
            con.execute(
                "COPY (SELECT * FROM read_csv(?, header = false)) TO '"
                + str(tmp / f"ref-{sym}-{run}.parquet").replace("'", "''")
                + "' (FORMAT parquet)",
                [str(csv_dir / f"{sym}.csv")],
            )

    r = best_of(ref, repeat)
    rate = total / ours
    return [
        Row(
            f"Binance ingest, {symbols} symbols x one month of 1m ({total:,} rows), HTTP to lake",
            f"{ours:.1f} s ({rate:,.0f} rows/s)",
            f"read_csv + COPY {r:.2f} s",
            ours / r,
            "ratio <= 2x and >= 500,000 rows/s",
            ours / r <= 2 and rate >= 500_000,
        )
    ]


def _polygon_day(tickers: int, minutes: int, day: dt.date) -> bytes:
    """A Polygon minute day file in the vendor's exact format (header, close before high and low, epoch
    nanoseconds, CRLF, no final newline), gzip: `tickers` x `minutes` bars from 09:30 New York on."""
    import gzip

    from ingest.stamping import NEW_YORK

    rng = np.random.default_rng(2)
    t0 = dt.datetime.combine(day, dt.time(9, 30), NEW_YORK).astimezone(dt.UTC)
    ns0 = int(t0.timestamp()) * 1_000_000_000
    lines = ["ticker,volume,open,close,high,low,window_start,transactions"]
    for m in range(minutes):  # the vendor's order: by minute, then ticker
        ws = ns0 + m * 60_000_000_000
        closes = 10 + 90 * rng.random(tickers)
        opens = closes * (1 + rng.normal(0, 1e-3, tickers))
        highs = np.maximum(opens, closes) * 1.0005
        lows = np.minimum(opens, closes) * 0.9995
        vols = rng.integers(100, 100_000, tickers)
        trades = rng.integers(1, 500, tickers)
        for t in range(tickers):
            lines.append(
                f"T{t:04d},{vols[t]},{opens[t]:.4f},{closes[t]:.4f},{highs[t]:.4f},{lows[t]:.4f},{ws},{trades[t]}"
            )
    return gzip.compress("\r\n".join(lines).encode(), compresslevel=6, mtime=0)


def bench_polygon(tmp: Path, tickers: int, minutes: int, repeat: int = 2) -> list[Row]:
    """Polygon end to end from a local S3 (moto) into a lake, all tickers and a 50-ticker filter, against
    DuckDB's read_csv of the same day file and a COPY partitioned by ticker (filtered by `IN` for 50).
    The rate is the day file's rows over the whole run (download, parse, checks, landing, calendar). Each
    side the best of `repeat` runs, taken in turn, each after `os.sync()` (what the benchmarks before it
    wrote is on disk first, for both sides); ours each into a new lake with cold caches."""
    import logging
    import os

    import duckdb

    from ingest import polygon
    from lake.config import Settings
    from lake.context import RunContext
    from tests.s3_server import BUCKET, minute_key, running_s3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    day = dt.date(2024, 7, 2)
    body = _polygon_day(tickers, minutes, day)
    raw = tmp / "polygon-day.csv.gz"
    raw.write_bytes(body)
    names = [f"T{t:04d}" for t in range(tickers)]
    fifty = names[:: max(1, tickers // 50)][:50]
    total = tickers * minutes
    rows = []
    with running_s3() as server:
        server.client().create_bucket(Bucket=BUCKET)
        server.client().put_object(Bucket=BUCKET, Key=minute_key(day), Body=body)
        os.environ["POLYGON_S3_ENDPOINT"] = server.endpoint
        os.environ["POLYGON_S3_ACCESS_KEY"] = "test-access"
        os.environ["POLYGON_S3_SECRET_KEY"] = "test-secret"
        for label, wanted in (("all tickers", names), ("50-ticker filter", fifty)):

            def ours(i: int, wanted: list[str] = wanted) -> float:
                ctx = RunContext(
                    root=tmp / f"polygon-lake-{len(wanted)}-{i}", settings=Settings(), quiet=True
                )
                _cold_caches()
                t = time.perf_counter()
                summary = polygon.run(ctx, wanted, "1m", day, day, today=day + dt.timedelta(days=5))
                took = time.perf_counter() - t
                if not summary.ok:
                    raise SystemExit(f"polygon bench failed: {summary.errors}")
                landed = sum(s.rows_landed for s in summary.symbols.values())
                if landed != len(wanted) * minutes:
                    raise SystemExit(f"polygon bench: {landed} rows landed, expected {len(wanted) * minutes}")
                return took

            def ref(wanted: list[str] = wanted) -> float:
                con = duckdb.connect()
                out = str(tmp / f"ref-polygon-{len(wanted)}-{next(_RUN)}").replace("'", "''")  # a new folder
                where = "" if len(wanted) == len(names) else " WHERE ticker IN (SELECT unnest(?))"
                t = time.perf_counter()
                con.execute(
                    "COPY (SELECT * FROM read_csv(?, header = true)"
                    + where
                    + ") TO '"
                    + out
                    + "' (FORMAT parquet, PARTITION_BY (ticker), OVERWRITE_OR_IGNORE)",
                    [str(raw)] + ([wanted] if where else []),
                )
                return time.perf_counter() - t

            # in turn, each after the file system has written back what came before (the earlier
            # benchmarks' files, the other side's): both sides start from the same state of the disk
            times: list[float] = []
            refs: list[float] = []
            for i in range(repeat):
                os.sync()
                times.append(ours(i))
                os.sync()
                refs.append(ref())
            ours_s, r = min(times), min(refs)
            n = len(wanted) * minutes
            rate = total / ours_s
            target = "ratio <= 2x and >= 500,000 file rows/s"
            rows.append(
                Row(
                    f"Polygon ingest, one minute day file of {total:,} rows, {label} ({n:,} rows landed)",
                    f"{ours_s:.1f} s ({rate:,.0f} file rows/s)",
                    f"read_csv + COPY {r:.2f} s",
                    ours_s / r,
                    target,
                    ours_s / r <= 2 and rate >= 500_000,
                )
            )
    return rows


def _module_rows(module: str) -> list[dict[str, Any]] | None:
    """The rows of a benchmark module that has a `rows() -> list[Row]`, as dicts (None: no such module)."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError:
        return None
    return [r if isinstance(r, dict) else asdict(r) for r in mod.rows()]


def _optional(module: str) -> list[Row]:
    """Rows of a benchmark module that has a `rows() -> list[Row]` (the env and PPO benchmarks), run in a
    fresh process of its own (`in_child`): what the benchmarks before it left behind in this one (a heap
    grown and fragmented by the feature and ingest runs, their threads) is not measured with it. Its
    references still run in the same process as what they are compared with."""
    _, _, got = in_child(_module_rows, module)
    return [Row(**r) for r in got or []]


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title="marketlake benchmarks (2 cores reference machine; ratios compare to a reference run here)"
    )
    for c in ("benchmark", "figure", "reference", "ratio", "target", "ok", "peak MiB"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            r.benchmark,
            r.figure,
            r.reference,
            "" if r.ratio is None else f"{r.ratio:.2f}x",
            r.target,
            "" if r.ok is None else ("pass" if r.ok else "FAIL"),
            "" if r.peak_mib is None else f"{r.peak_mib:.0f}",
        )
    Console(width=200).print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument(
        "--only", default="", help="comma separated: writer,scan,check,features,binance,polygon,env,ppo"
    )
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s}

    def want(name: str) -> bool:
        return not only or name in only

    rows: list[Row] = []
    symbols, months = (4, 1) if args.quick else (15, 3)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if want("writer"):
            rows += bench_writer(tmp)
        if want("scan") or want("check") or want("features"):
            root = tmp / "lake"
            n_bars = build_lake(root, symbols, months)
            if want("check"):
                rows += bench_check(root, n_bars)
            if want("scan"):
                from features import store
                from lake.config import Settings

                store.refresh(root, Settings())  # features_store is read by the scans
                rows += bench_scans(root)
            if want("features"):
                rows += bench_features(root, tmp, n_bars)
                if not args.quick:  # how cost grows: the same build on half the symbols
                    half = tmp / "half"
                    n_half = build_lake(half, symbols // 2 + 1, months)
                    rows += bench_features(half, tmp, n_half, incremental=False)
        if want("binance"):
            rows += bench_binance(tmp, 2 if args.quick else 10, 1 if args.quick else 3)
        if want("polygon"):
            rows += bench_polygon(tmp, 200 if args.quick else 2000, 390, 1 if args.quick else 2)
    if want("env"):
        rows += _optional("tests.bench_env")
    if want("ppo"):
        rows += _optional("tests.bench_ppo")
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print_table(rows)
    return 1 if any(r.ok is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

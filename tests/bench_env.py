"""Benchmarks of the trading environment (rl/), reported against references run in the same process.

    .venv/bin/python -m tests.bench_env

Rows: benchmark, figure, reference, ratio, target, pass/fail.
- vector env: steps/s of VecTradingEnv (64 envs, 60-row window) against a bare numpy loop doing the same
  indexing (the observation windows, the next bar's prices); targets >= 1,000,000 steps/s and within 2x.
- episode streaming: one-session episodes (390 one-minute bars) per second out of the lake, through
  rl.episodes.load_period: the train period's rows read from the feature store (its files' row groups of
  the period decoded by pyarrow, their rows copied into the MarketData arrays, normalised; every array
  kept, as training keeps them), timed apart from the period's set-up (connecting to DuckDB and closing
  it again, which the store's read does not use; bounds, symbols, freshness: once per period, whatever
  its size), against pyarrow reading the same files' columns straight into numpy, every row group (the
  floor for any reader of all of them); target >= 10,000 episodes/s. Steady streaming: each side's best
  of 5 after one untimed read, each read's period released before the next (its arena then reused); the
  process's first read, into fresh memory, is shown beside it. The live view's rate (the fallback when
  the store is stale) is shown without a target. Periods are read as rl/train.py reads them: the symbols
  given, their eligibility decided once before (no eligibility scan of the bars in each set-up).
- episode serving: episodes started per second from a loaded period (VecTradingEnv.reset of 4,096 envs).
Benchmark data is a random walk written to a temporary lake: it measures machinery, not markets.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

import lake
from features.calendars import xnys_year
from ingest.sessions import land
from lake.config import Settings
from lake.schemas import UTC_TS
from rl.episodes import STORE_READ, MarketData, load_period
from rl.market import EnvConfig, Market, window_view
from rl.vector import VecTradingEnv
from tests.bench import Row, best_of, print_table

NY = ZoneInfo("America/New_York")
NUM_ENVS = 64
WINDOW = 60
STREAM_SYMBOLS, STREAM_DAYS = 8, 60


def stock_sessions(symbol_seed: int, days: int) -> pa.Table:
    """Regular-session 1m bars of XNYS days from 2024-01-02 on, a random walk."""
    sessions = [r for r in xnys_year(2024).to_pylist() if r["day"] >= dt.date(2024, 1, 2)][:days]
    ts: list[dt.datetime] = []
    for r in sessions:
        n = int((r["close_at"] - r["open_at"]).total_seconds() // 60)
        ts += [r["open_at"] + dt.timedelta(minutes=i) for i in range(n)]
    rng = np.random.default_rng(symbol_seed)
    n = len(ts)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, 2e-4, n))
    tsa = pa.array(ts, type=UTC_TS)
    return pa.table(
        {
            "asset_class": ["stock"] * n,
            "ts": tsa,
            "available_at": pa.compute.add(tsa, pa.scalar(dt.timedelta(minutes=1))),
            "open": open_,
            "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995,
            "close": close,
            "volume": rng.uniform(1, 10, n),
            "trades": pa.array(rng.integers(1, 100, n), type=pa.int64()),
            "source_file": ["bench"] * n,
        }
    )


def write_lake(root: Path, symbols: int, days: int) -> None:
    with land(root) as w:
        for i in range(symbols):
            t = stock_sessions(i, days)
            part = {"source": "polygon", "interval": "1m", "symbol": f"BENCH{i}", "period": "2024-01"}
            w.write(lake.BARS, part, t)


def bench_vector(data: MarketData) -> tuple[float, float]:
    cfg = EnvConfig(window=WINDOW, episode_length=300)
    env = VecTradingEnv(data, cfg, NUM_ENVS, seed=0, copy=False)  # as the learner steps it (rl/train.py)
    env.reset()
    steps = 2000
    actions = np.random.default_rng(0).integers(0, 2, size=(steps, NUM_ENVS))

    def ours() -> None:
        for i in range(steps):
            env.step(actions[i])

    market = Market(data, cfg)
    windows = window_view(data.features, WINDOW)
    buf = np.empty((NUM_ENVS, windows.shape[1] + 2), np.float32)
    rows0 = env.starts[np.random.default_rng(1).integers(0, len(env.starts), NUM_ENVS)]

    def reference() -> None:  # the same gathers, without the bookkeeping
        rows = rows0.copy()
        for _ in range(steps):
            nxt = rows + 1
            _ = market.gap_ret[nxt], market.bar_ret[nxt], market.fill_cost[nxt]
            buf[:, : windows.shape[1]] = windows[nxt - (WINDOW - 1)]
            rows = nxt
            if rows.max() >= len(windows) + WINDOW - 2:
                rows = rows0.copy()

    t_ours = best_of(ours, 3)
    t_ref = best_of(reference, 3)
    return NUM_ENVS * steps / t_ours, NUM_ENVS * steps / t_ref


def _raw_store_read(files: list[str]) -> int:
    """The reference: the store's files read straight into numpy by pyarrow, the columns the episode source
    needs, nothing filtered, normalised or ordered: the floor for any reader of these files. Rows read."""
    import pyarrow.parquet as pq

    from rl.episodes import FEATURES, PRICES

    stored = set(pq.read_schema(files[0]).names)
    cols = ["ts", "available_at", "segment_no", "segment_pos", "trading_day", "warmup", *PRICES]
    cols += [c for c in FEATURES if c in stored]
    n = 0
    for f in files:
        t = pq.read_table(f, columns=cols)
        for c in cols:
            t.column(c).to_numpy()
        n += t.num_rows
    return n


def rows() -> list[Row]:
    """The environment's rows of `make bench`."""
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        # large enough that a period's rows, not the per-period set-up, are what is measured
        symbols, days = STREAM_SYMBOLS, STREAM_DAYS
        write_lake(root, symbols, days)
        s = Settings(min_bars_per_symbol=100)
        names = [f"BENCH{i}" for i in range(symbols)]
        # episode streaming out of the lake: the live view (the store is stale or missing)
        live: list[MarketData] = []
        t_live = best_of(lambda: live.append(load_period(root, s, names, "1m", "train")), 1)
        assert not any(STORE_READ in q for q in live[-1].queries)
        live_eps = live[-1].n_rows / 390 / t_live
        out.append(
            Row(
                "episode streaming (390-bar sessions/s, lake -> numpy), live features view (store stale)",
                f"{live_eps:,.0f}/s ({live[-1].n_rows / t_live:,.0f} rows/s)",
                "",
                None,
                "(none: the fallback when the store is stale)",
                None,
            )
        )
        # the same through the feature store, as training reads it once refreshed
        from features import store

        store.refresh(root, s)

        # Steady streaming: one read first, not timed, on both sides (the reference's is its row count
        # below: the first read of a process faults in pages later reads find in place), then the best of 5,
        # each read's period released before the next (as a consumer that moves on: its arena is reused,
        # rl/episodes.py ARENAS), where holding every one of them would measure fresh memory instead.
        # As rl/train.py reads a period: its symbols given, their eligibility decided once before the run's
        # reads (warn_ineligible=False: no eligibility scan of the bars in each period's set-up)
        def read() -> MarketData:
            return load_period(root, s, names, "1m", "train", warn_ineligible=False)

        stored: list[MarketData] = [read()]
        t_first = stored[0].seconds["read"]
        t_read = t_setup = t_stored = math.inf
        for _ in range(5):
            stored.clear()
            t = time.perf_counter()
            stored.append(read())
            t_stored = min(t_stored, time.perf_counter() - t)
            t_read = min(t_read, stored[-1].seconds["read"])
            t_setup = min(t_setup, stored[-1].seconds["setup"])
        data = stored[-1]
        assert any(STORE_READ in q for q in data.queries)
        episodes = data.n_rows / 390
        files = sorted(str(p) for p in (root / "datasets" / "features").glob("interval=1m/*/*/data.parquet"))
        raw_rows = _raw_store_read(files)
        t_raw = best_of(lambda: _raw_store_read(files), 5)
        eps, raw_eps = episodes / t_read, raw_rows / 390 / t_raw
        out.append(
            Row(
                f"episode streaming from the feature store ({symbols} symbols x {days} days, train "
                f"{data.n_rows:,} rows): read, after the period's set-up (DuckDB connected, queried, closed)",
                f"{eps:,.0f}/s ({data.n_rows / t_read:,.0f} rows/s; the process's first read "
                f"{episodes / t_first:,.0f}/s); end to end {episodes / t_stored:,.0f}/s (set-up {t_setup * 1000:.0f} ms)",
                f"{raw_eps:,.0f}/s pyarrow read of the store's files",
                raw_eps / eps,
                ">= 10,000/s",
                eps >= 10_000,
            )
        )
        # the serving and vector env rows run on the small lake they always ran on (4 symbols x 20 days)
        small = Path(tmp) / "small"
        write_lake(small, 4, 20)
        data = load_period(small, s, [f"BENCH{i}" for i in range(4)], "1m", "train")
        # episodes served from a loaded period
        cfg = EnvConfig(window=WINDOW, episode_length=300)
        big = VecTradingEnv(data, cfg, 4096, seed=0, copy=False)  # (the starts served, not a copy of them)
        t_reset = best_of(lambda: big.reset(), 5)
        out.append(
            Row(
                "episode serving (starts/s from a loaded period)",
                f"{4096 / t_reset:,.0f}/s",
                "",
                None,
                ">= 10,000/s",
                4096 / t_reset >= 10_000,
            )
        )
        ours, ref = bench_vector(data)
        out.append(
            Row(
                f"vector env steps/s ({NUM_ENVS} envs, window {WINDOW}, {data.features.shape[1]} features, "
                "copy=False, as the learner steps it)",
                f"{ours:,.0f}/s",
                f"{ref:,.0f}/s bare numpy",
                ref / ours,
                ">= 1,000,000/s, <= 2x",
                ours >= 1_000_000 and ref / ours <= 2,
            )
        )
    return out


def main() -> None:
    print_table(rows())


if __name__ == "__main__":
    main()

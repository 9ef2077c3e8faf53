"""Benchmarks of the trading environment (rl/), reported against references run in the same process.

    .venv/bin/python -m tests.bench_env

Rows: benchmark, figure, reference, ratio, target, pass/fail.
- vector env: steps/s of VecTradingEnv (64 envs, 60-row window) against a bare numpy loop doing the same
  indexing (the observation windows, the next bar's prices); targets >= 1,000,000 steps/s and within 2x.
- episode streaming: one-session episodes (390 one-minute bars) per second out of the lake, through
  rl.episodes.load_period (features view + prices, Arrow -> numpy), against reading the same bars' Parquet
  straight into numpy; target >= 10,000 episodes/s.
- episode serving: episodes started per second from a loaded period (VecTradingEnv.reset of 4,096 envs).
Benchmark data is a random walk written to a temporary lake: it measures machinery, not markets.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

import lake
from features.calendars import xnys_year
from ingest.sessions import land
from lake.config import Settings
from lake.schemas import UTC_TS
from rl.episodes import MarketData, load_period
from rl.market import EnvConfig, Market, window_view
from rl.vector import VecTradingEnv
from tests.bench import Row, best_of, print_table

NY = ZoneInfo("America/New_York")
NUM_ENVS = 64
WINDOW = 60


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
    env = VecTradingEnv(data, cfg, NUM_ENVS, seed=0)
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


def rows() -> list[Row]:
    """The environment's rows of `make bench`."""
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        symbols, days = 4, 20
        write_lake(root, symbols, days)
        s = Settings(min_bars_per_symbol=100)
        names = [f"BENCH{i}" for i in range(symbols)]
        # episode streaming out of the lake
        loaded: list[MarketData] = []
        t_load = best_of(lambda: loaded.append(load_period(root, s, names, "1m", "train")), 3)
        data = loaded[-1]
        episodes = data.n_rows / 390
        con = lake.connect(root, read_only=True, settings=s)
        files = [str(p) for p in sorted((root / "datasets" / "bars").rglob("*.parquet"))]

        def read_raw() -> None:
            import pyarrow.parquet as pq

            for f in files:
                t = pq.read_table(f, columns=["ts", "open", "high", "low", "close", "volume"])
                np.stack([t.column(c).to_numpy() for c in ("open", "high", "low", "close", "volume")])

        t_raw = best_of(read_raw, 3)
        con.close()
        eps = episodes / t_load
        raw_eps = episodes / t_raw
        out.append(
            Row(
                "episode streaming (390-bar sessions/s, lake -> numpy), live features view",
                f"{eps:,.0f}/s ({data.n_rows / t_load:,.0f} rows/s)",
                f"{raw_eps:,.0f}/s raw Parquet",
                raw_eps / eps,
                ">= 10,000/s",
                eps >= 10_000,
            )
        )
        # the same through the stored features (features_store), as training reads them once refreshed
        from features import store

        store.refresh(root, s)
        stored: list[MarketData] = []
        t_stored = best_of(lambda: stored.append(load_period(root, s, names, "1m", "train")), 3)
        assert any(q.rstrip().endswith("FROM features_store") for q in stored[-1].queries)
        s_eps = stored[-1].n_rows / 390 / t_stored
        out.append(
            Row(
                "episode streaming from the stored features (features_store)",
                f"{s_eps:,.0f}/s ({stored[-1].n_rows / t_stored:,.0f} rows/s)",
                f"{raw_eps:,.0f}/s raw Parquet",
                raw_eps / s_eps,
                ">= 10,000/s",
                s_eps >= 10_000,
            )
        )
        # episodes served from a loaded period
        cfg = EnvConfig(window=WINDOW, episode_length=300)
        big = VecTradingEnv(data, cfg, 4096, seed=0)
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
                f"vector env steps/s ({NUM_ENVS} envs, window {WINDOW}, {data.features.shape[1]} features)",
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

"""rl.evaluate: the agent and the baselines on the same bars, per symbol and overall, the files, the run row."""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import lake
from ingest.common import bar_period
from ingest.sessions import land
from lake.config import Settings
from lake.errors import MarketlakeError
from rl import runlog
from rl.episodes import EmptyPeriod, MarketData, load_period, market_data_from_arrays
from rl.evaluate import (
    EvalReport,
    evaluate,
    gap_lines,
    gap_summary,
    judge,
    portfolio_series,
    record_training,
    render_table,
    summary,
)
from rl.market import EnvConfig
from rl.walk import Walk
from tests.conftest import bars_table

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
COSTLESS = EnvConfig(window=2, commission=0.0, slippage_bps=0.0)


def _walk(ts: list[int], sym: list[int], ret: list[float], pos: list[float], turn: list[float]) -> Walk:
    n = len(ts)
    return Walk(
        symbols=["A", "B"],
        symbol_idx=np.array(sym, np.int32),
        ts=np.array(ts, np.int64),
        position=np.array(pos),
        log_return=np.array(ret),
        cost=np.zeros(n),
        turnover=np.array(turn),
        segment_id=np.array(sym, np.int64),
        row=np.arange(n, dtype=np.int64),
        fill_price=np.ones(n),
        exit_price=np.full(n, np.nan),
        cost_prev=np.zeros(n),
    )


def test_portfolio_gives_each_symbol_an_equal_share_and_never_rebalances() -> None:
    w = _walk(
        ts=[0, 60, 0, 60, 120],
        sym=[0, 0, 1, 1, 1],
        ret=[math.log(1.1), 0.0, math.log(0.9), math.log(1.2), math.log(1.05)],
        pos=[1, 1, 1, 0, 1],
        turn=[1, 0, 1, 1, 0],
    )
    s = portfolio_series(w)
    assert s.ts.tolist() == [0, 60, 120]
    # shares of 0.5 each: A 0.55 -> 0.55 -> 0.55 (carried at t=120, no bar); B 0.45 -> 0.54 -> 0.567
    equity = [1.0, 0.55 + 0.54, 0.55 + 0.567]
    assert np.exp(np.cumsum(s.log_return)) == pytest.approx(equity, rel=1e-12)
    # |position| held at each time (A's carried at t=120, where it has no bar), weighted by its share's equity
    # before the time; turnover of the steps, weighted alike
    assert s.position == pytest.approx([1.0, 0.55 / 1.0, (0.55 + 0.54) / 1.09], rel=1e-12)
    assert s.turnover == pytest.approx([1.0, 0.45 / 1.0, 0.0], rel=1e-12)
    assert s.trades == 3


def test_portfolio_of_a_stock_and_a_crypto_earns_what_half_in_each_earns() -> None:
    """A stock (flat price, no bars at night) and a crypto that gains 10% only while the stock market is
    closed, both held: a real half-and-half portfolio earns +5%. (The mean of the returns of the symbols
    with a bar at each time earned +10%: the whole capital in crypto at night, the stock's night besides.)"""
    day, night = [0, 60, 120], [180, 240, 300]
    crypto_ret = [0.0, 0.0, 0.0] + [math.log(1.1) / 3] * 3 + [0.0, 0.0]
    w = _walk(
        ts=[*day, 360, 420] + [*day, *night, 360, 420],
        sym=[0] * 5 + [1] * 8,
        ret=[0.0] * 5 + crypto_ret,
        pos=[1.0] * 13,
        turn=[1.0] + [0.0] * 4 + [1.0] + [0.0] * 7,
    )
    s = portfolio_series(w)
    assert s.ts.tolist() == [0, 60, 120, 180, 240, 300, 360, 420]
    assert math.expm1(float(s.log_return.sum())) == pytest.approx(0.05, rel=1e-12)
    # at night only the crypto's share has a step, but the stock held overnight is invested too
    assert s.position[3] == pytest.approx(1.0, rel=1e-12)
    assert s.position[0] == 1.0 and s.turnover[0] == 1.0


def _arrays_market(closes: list[float]) -> tuple[object, EnvConfig]:
    c = np.array(closes)
    o = np.concatenate([[c[0]], c[:-1]])
    data = market_data_from_arrays(o, np.maximum(o, c), np.minimum(o, c), c, np.zeros((len(c), 1)))
    return data, COSTLESS


def test_judge_flat_is_zero_and_buy_and_hold_earns_the_price_move() -> None:
    closes = [100.0, 101.0, 99.0, 102.0, 104.0, 103.0, 105.0, 107.0]
    data, cfg = _arrays_market(closes)
    metrics, cis, per_year, curves = judge(data, cfg, lambda obs: np.ones(len(obs), np.int64), resamples=400)  # type: ignore[arg-type]
    flat = metrics["overall"]["flat"].to_dict()
    assert flat.pop("hit_rate") is None and flat.pop("bars") == len(curves["flat"].ts)
    assert all(v == 0 for v in flat.values())
    # buy-and-hold decides at row window-1 = 1, fills at row 2's open (= row 1's close, 101), holds to 107
    bh = metrics["TEST"]["buy_and_hold"]
    assert bh.total_return == pytest.approx(107.0 / 101.0 - 1)
    assert bh.trades == 1 and bh.exposure == 1.0
    # an agent that always holds is buy-and-hold: same numbers, interval around 0 and said so
    assert metrics["TEST"]["agent"] == bh
    assert cis["overall"] is not None and cis["overall"].difference == 0.0
    assert "not distinguishable from luck" in cis["overall"].sentence
    assert per_year["overall"] == 365 * 1440
    # one symbol: the portfolio is the symbol
    assert metrics["overall"]["agent"].total_return == pytest.approx(bh.total_return, rel=1e-12)


def test_judge_random_baseline_is_seeded() -> None:
    closes = [100.0 + math.sin(i / 3) for i in range(60)]
    data, cfg = _arrays_market(closes)
    agent = lambda obs: np.zeros(len(obs), np.int64)  # noqa: E731
    one = judge(data, cfg, agent, seed=1, resamples=400)[0]["overall"]["random"]  # type: ignore[arg-type]
    two = judge(data, cfg, agent, seed=1, resamples=400)[0]["overall"]["random"]  # type: ignore[arg-type]
    other = judge(data, cfg, agent, seed=2, resamples=400)[0]["overall"]["random"]  # type: ignore[arg-type]
    assert one == two and one != other and 0 < one.exposure < 1


# --- on a lake --------------------------------------------------------------------------------------------


def walk_closes(n: int, seed: int, start: float) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in start * np.exp(np.cumsum(rng.normal(0, 0.001, n)))]


def write_bars(root: Path, symbol: str, table: pa.Table) -> None:
    ts = table.column("ts").to_pylist()
    with land(root) as w:
        for p in sorted({bar_period("1m", t) for t in ts}):
            mask = pa.array([bar_period("1m", t) == p for t in ts])
            part = {"source": "binance", "interval": "1m", "symbol": symbol, "period": p}
            w.write(lake.BARS, part, table.filter(mask))


@pytest.fixture
def two_symbols(lake_root: Path) -> Path:
    write_bars(lake_root, "BTCUSDT", bars_table(T0, walk_closes(1440, 1, 60000.0)))
    write_bars(lake_root, "ETHUSDT", bars_table(T0, walk_closes(1440, 2, 3000.0)))
    return lake_root


def momentum(obs: np.ndarray) -> np.ndarray:
    """A fixed policy: long when the first feature of the last window row is positive."""
    return (obs[:, 0] > 0).astype(np.int64)


def test_evaluate_a_fixed_policy_writes_files_and_a_run_and_repeats_itself(
    two_symbols: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    settings = Settings()
    said: list[str] = []
    kw = {"policy": momentum, "symbols": ["BTCUSDT", "ETHUSDT"], "interval": "1m", "resamples": 400}
    report = evaluate(two_symbols, settings, run_dir, "test", say=said.append, **kw)  # type: ignore[arg-type]
    assert set(report.metrics) == {"overall", "BTCUSDT", "ETHUSDT"}
    assert all(set(by) == {"agent", "buy_and_hold", "flat", "random"} for by in report.metrics.values())
    bars = report.metrics["BTCUSDT"]["agent"].bars + report.metrics["ETHUSDT"]["agent"].bars
    assert bars > 100 and report.metrics["overall"]["agent"].bars == report.metrics["BTCUSDT"]["agent"].bars
    ci = report.sharpe_ci["overall"]
    assert ci is not None and ci.bars == report.metrics["overall"]["agent"].bars and ci.low <= ci.high

    saved = json.loads((run_dir / "evaluation-test.json").read_text())
    assert saved["overall"]["agent"] == report.metrics["overall"]["agent"].to_dict()
    assert saved["per_symbol"]["ETHUSDT"]["random"] == report.metrics["ETHUSDT"]["random"].to_dict()
    assert saved["sharpe_ci"]["bars"] == ci.bars and saved["sentence"] == report.sentence
    png = (run_dir / "evaluation-test.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    (row,) = runlog.list_runs(two_symbols)
    assert row["kind"] == "evaluate" and row["status"] == "finished" and row["run_id"] == report.run_id
    assert row["metrics"]["overall"]["agent"]["sharpe"] == report.metrics["overall"]["agent"].sharpe
    assert (
        row["data_snapshot"]
        == runlog.snapshot_for_run(two_symbols, settings, ["BTCUSDT", "ETHUSDT"], "1m", ["test"]).hash
    )
    assert row["config"]["period"] == "test" and row["run_dir"] == str(run_dir)

    again = evaluate(two_symbols, settings, run_dir, "test", record=False, **kw)  # type: ignore[arg-type]
    assert again.metrics == report.metrics
    assert again.sharpe_ci == report.sharpe_ci

    table = render_table(report)
    assert "buy & hold" in table and "BTCUSDT" in table and report.sentence[:40] in table.replace("\n", " ")


def test_evaluate_refuses_a_missing_run_folder_and_the_train_period(
    two_symbols: Path, tmp_path: Path
) -> None:
    with pytest.raises(MarketlakeError, match="does not exist"):
        evaluate(two_symbols, Settings(), tmp_path / "nope", policy=momentum)
    with pytest.raises(MarketlakeError, match="test or validation"):
        evaluate(two_symbols, Settings(), tmp_path, "train", policy=momentum)


@pytest.mark.parametrize(
    ("saved", "recorded"),
    [
        ("finished", "finished"),
        ("completed", "finished"),
        ("interrupted", "interrupted"),
        ("failed", "failed"),
    ],
)  # completed: a folder written before status.json took the runs table's words
def test_record_training_reads_the_run_folder(
    two_symbols: Path, tmp_path: Path, saved: str, recorded: str
) -> None:
    run_dir = tmp_path / "r-train"
    run_dir.mkdir()
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    settings_json = {
        "run_id": "r-train",
        "started_at": started.isoformat(),
        "symbols": ["BTCUSDT"],
        "interval": "1m",
    }
    (run_dir / "settings.json").write_text(json.dumps(settings_json))
    status = {"status": saved, "iterations": 3, "env_steps": 300, "best_iteration": 2, "best_score": 0.01}
    if saved != "failed":
        status["finished_at"] = (started + dt.timedelta(minutes=5)).isoformat()
    (run_dir / "status.json").write_text(json.dumps(status))
    record = record_training(two_symbols, Settings(), run_dir)
    (row,) = runlog.list_runs(two_symbols)
    assert (
        row["run_id"] == record.run_id == "r-train" and row["kind"] == "train" and row["status"] == recorded
    )
    assert row["started_at"] == started and row["metrics"]["best_score"] == 0.01
    assert row["config"]["symbols"] == ["BTCUSDT"] and row["run_dir"] == str(run_dir)
    expected = runlog.snapshot_for_run(two_symbols, Settings(), ["BTCUSDT"], "1m", ["train", "validation"])
    assert row["data_snapshot"] == expected.hash


def test_the_period_line_says_the_span_of_the_bars_held_and_each_symbols_count() -> None:
    """A period's bounds come from the whole lake's range: the line beside them says where this interval's
    bars of the period start and end, and how many each symbol has (the table counts time steps)."""
    from rl.episodes import market_data_from_arrays
    from rl.evaluate import _period_line

    n = 5
    prices = np.full(n, 100.0)
    day = 86_400_000_000
    ts = np.array([0, day, 2 * day, 0, day], dtype=np.int64) + 1_600_000_000_000_000
    data = market_data_from_arrays(
        prices, prices, prices, prices, np.zeros((n, 2), np.float32), ts=ts, symbols=["AAA", "BBB"],
        symbol_idx=np.array([0, 0, 0, 1, 1]), interval="1d", period="test",
    )  # fmt: skip
    data.bounds = (ts.min() - day, ts.max() + 10 * day)
    line = _period_line(data)
    assert line.startswith("test: 2020-09-12T12:26:40+00:00 .. 2020-09-25T12:26:40+00:00 "), line
    assert "(its 1d bars 2020-09-13T12:26:40+00:00 .. 2020-09-15T12:26:40+00:00)" in line, line
    assert line.endswith("5 bars: AAA 3, BBB 2"), line


def test_evaluate_keeps_clear_of_the_periods_its_run_trained_on_when_older_bars_arrive(
    lake_root: Path, tmp_path: Path
) -> None:
    """The lake's periods are cut from its whole range: bars added before it move every boundary earlier.
    A run's test period must then still start after what the run trained and chose its model on (its
    recorded periods) plus their embargo, and say so; the lake's own test period would hold them."""
    settings = Settings(min_bars_per_symbol=100)
    closes = walk_closes(3 * 1440, 1, 60000.0)
    write_bars(lake_root, "BTCUSDT", bars_table(T0, closes))
    train = load_period(lake_root, settings, ["BTCUSDT"], "1m", "train")
    val = load_period(lake_root, settings, ["BTCUSDT"], "1m", "validation", train.norm)
    iso = {p.period: {"start_at": _iso(p.bounds[0]), "end_at": _iso(p.bounds[1])} for p in (train, val)}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "settings.json").write_text(
        json.dumps(
            {"run_id": "r1", "symbols": ["BTCUSDT"], "interval": "1m", "periods": iso, "data_settings": {}}
        )
    )
    kw = {"policy": momentum, "symbols": ["BTCUSDT"], "interval": "1m", "resamples": 400, "record": False}
    # the lake as the run saw it: its test period is already clear of the run's periods, nothing is said
    quiet: list[str] = []
    same = evaluate(lake_root, settings, run_dir, "test", norm=train.norm, say=quiet.append, **kw)  # type: ignore[arg-type]
    assert not [m for m in quiet if m.startswith("note:")], quiet
    assert same.bounds[0] == _iso(val.bounds[1] + (val.bounds[0] - train.bounds[1]))
    # four older days backfilled, the three days as they were
    older = T0 - dt.timedelta(days=4)
    write_bars(lake_root, "BTCUSDT", bars_table(older, walk_closes(4 * 1440, 2, 60000.0) + closes))
    bare = tmp_path / "bare"  # a policy with no recorded periods: the lake's test period as it is now
    bare.mkdir()
    moved = evaluate(lake_root, settings, bare, "test", norm=train.norm, **kw)  # type: ignore[arg-type]
    assert moved.bounds[0] < iso["validation"]["end_at"], "the backfill did not move the lake's periods"

    said: list[str] = []
    report = evaluate(lake_root, settings, run_dir, "test", norm=train.norm, say=said.append, **kw)  # type: ignore[arg-type]
    embargo = val.bounds[0] - train.bounds[1]
    assert report.bounds[0] == _iso(val.bounds[1] + embargo), said
    assert report.bounds[1] == moved.bounds[1]
    assert any(m.startswith("note: the lake's test period now starts at") for m in said), said
    # the runs row (its metrics: summary) says where the evaluation started and why
    kept = summary(report)
    assert kept["evaluated_from"] == report.bounds[0] and kept["bounds"] == list(report.bounds)
    assert f"evaluated from {report.bounds[0]} only" in kept["clear_of_training"]
    assert kept["period"] == "test" and kept["out_of_sample"] is True
    assert summary(same)["evaluated_from"] is None
    # the lake's validation period now lies wholly inside the run's train period: nothing is left of it
    with pytest.raises(
        EmptyPeriod, match=r"holds no 1m row .* now starts at .*, before the end of what this run"
    ):
        evaluate(lake_root, settings, run_dir, "validation", norm=train.norm, **kw)  # type: ignore[arg-type]


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))).isoformat()


# --- the overall's annualisation when the symbols' bars fall at different times -----------------------------

DAY_US = 86_400_000_000


def _mixed_calendar_market(interval: str) -> MarketData:
    """The reviewer's case: a stock with weekday bars at 14:30 UTC (1d) or on the half hour 13:30-19:30 UTC
    (1h), and a crypto with bars every day at 00:00 UTC (1d) or on every hour (1h), over two years (1d) or
    three weeks (1h); each a random walk whose next open is its close."""
    rng = np.random.default_rng(0)
    start = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
    if interval == "1d":
        crypto = [start + dt.timedelta(days=i) for i in range(730)]
        stock = [d + dt.timedelta(hours=14, minutes=30) for d in crypto if d.weekday() < 5]
    else:
        crypto = [start + dt.timedelta(hours=i) for i in range(21 * 24)]
        stock = [t + dt.timedelta(minutes=30) for t in crypto if t.weekday() < 5 and 13 <= t.hour <= 19]

    def path(n: int, sd: float) -> tuple[np.ndarray, np.ndarray]:
        c = 100 * np.exp(np.cumsum(rng.normal(0.0, sd, n)))
        return np.concatenate([[100.0], c[:-1]]), c

    so, sc = path(len(stock), 0.0126)
    co, cc = path(len(crypto), 0.0314)
    o, c = np.concatenate([so, co]), np.concatenate([sc, cc])
    ts = np.array([int(t.timestamp() * 1e6) for t in [*stock, *crypto]], np.int64)
    idx = np.concatenate([np.zeros(len(stock), np.int32), np.ones(len(crypto), np.int32)])
    return market_data_from_arrays(
        o, np.maximum(o, c), np.minimum(o, c), c, np.zeros((len(c), 1)), ts=ts, symbols=["STK", "BTC"],
        symbol_idx=idx, segment_id=idx.astype(np.int64), asset_classes=["stock", "crypto"],
        interval=interval, period="test",
    )  # fmt: skip


def _by_hand_daily_sharpe(d: MarketData, window: int) -> tuple[float, int]:
    """Buy-and-hold of each symbol with half the capital, costless, by brute force from the prices: bought at
    the open of its row `window` (= the close of row window-1), each share worth half its close over that
    price after each of its bars; the portfolio valued at the end of every UTC day from the day of the first
    bar held to the day of the last; the Sharpe of its day-on-day (simple) returns times sqrt(365)."""
    rows = {s: np.flatnonzero(d.symbol_idx == s) for s in (0, 1)}
    held = {s: r[window:] for s, r in rows.items()}  # the bars a position is held over
    entry = {s: d.open[held[s][0]] for s in held}
    first = min(int(d.ts[h[0]]) for h in held.values()) // DAY_US
    last = max(int(d.ts[h[-1]]) for h in held.values()) // DAY_US
    values = [1.0]
    for day in range(first, last + 1):
        total = 0.0
        for s, h in held.items():
            done = [k for k in h if int(d.ts[k]) < (day + 1) * DAY_US]
            total += 0.5 * (d.close[done[-1]] / entry[s] if done else 1.0)
        values.append(total)
    day_returns = [b / a - 1 for a, b in zip(values, values[1:], strict=False)]
    return statistics.mean(day_returns) / statistics.stdev(day_returns) * math.sqrt(365), len(day_returns)


@pytest.mark.parametrize("interval", ["1d", "1h"])
def test_overall_of_a_stock_and_a_crypto_is_annualised_on_calendar_days(interval: str) -> None:
    """The overall portfolio has a step at every bar time of any symbol: 14:30 for the stock, 00:00 for the
    crypto at 1d (about 617 steps a year, not 365), and at 1h the stock's half hours between the crypto's
    hours. Its Sharpe is taken on its calendar-day returns, annualised by 365, and so is the interval."""
    data = _mixed_calendar_market(interval)
    flat_agent = lambda obs: np.zeros(len(obs), np.int64)  # noqa: E731
    metrics, cis, per_year, _ = judge(data, COSTLESS, flat_agent, resamples=400)
    want, days = _by_hand_daily_sharpe(data, COSTLESS.window)
    bh = metrics["overall"]["buy_and_hold"]
    assert bh.sharpe == pytest.approx(want, rel=1e-9)
    assert bh.ratios_on_calendar_days and per_year["overall"] == 365
    ci = cis["overall"]
    assert ci is not None and ci.bars == days and ci.unit == "days"
    assert ci.difference == pytest.approx(0.0 - want, rel=1e-9)  # the agent is flat: Sharpe 0
    assert f"{days} days" in ci.sentence
    # the symbols themselves are on one grid each: per step, by their own calendar
    assert not metrics["STK"]["buy_and_hold"].ratios_on_calendar_days
    assert per_year["STK"] == (252 if interval == "1d" else 252 * 7)


def _two_stocks_hours_market() -> MarketData:
    """The reviewer's case: two stocks' hourly bars over three weeks of regular sessions (January: New York
    is UTC-5), STK at half past (yfinance: 14:30 .. 20:30 UTC), HR on the hour (a clock-hour export as the
    lake keeps it: 15:00 .. 20:00 UTC); each a random walk whose next open is its close."""
    rng = np.random.default_rng(3)
    days = [dt.datetime(2022, 1, 3, tzinfo=dt.UTC) + dt.timedelta(days=i) for i in range(21)]
    days = [d for d in days if d.weekday() < 5]
    stock = [d + dt.timedelta(hours=14, minutes=30 + 60 * k) for d in days for k in range(7)]
    hours = [d + dt.timedelta(hours=15 + k) for d in days for k in range(6)]

    def path(n: int) -> tuple[np.ndarray, np.ndarray]:
        c = 100 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
        return np.concatenate([[100.0], c[:-1]]), c

    (so, sc), (ho, hc) = path(len(stock)), path(len(hours))
    o, c = np.concatenate([so, ho]), np.concatenate([sc, hc])
    ts = np.array([int(t.timestamp() * 1e6) for t in [*stock, *hours]], np.int64)
    idx = np.concatenate([np.zeros(len(stock), np.int32), np.ones(len(hours), np.int32)])
    return market_data_from_arrays(
        o, np.maximum(o, c), np.minimum(o, c), c, np.zeros((len(c), 1)), ts=ts, symbols=["STK", "HR"],
        symbol_idx=idx, segment_id=idx.astype(np.int64), asset_classes=["stock", "stock"],
        interval="1h", period="test",
    )  # fmt: skip


def test_two_stocks_whose_hours_start_at_different_times_are_annualised_on_calendar_days() -> None:
    """Half past beside on the hour: the overall has 13 steps a session, not 7; its Sharpe is of its
    calendar-day returns, annualised by 365 (brute force from the prices). Each stock is annualised by the
    bars its own sessions hold: 7 at half past, 6 on the hour."""
    data = _two_stocks_hours_market()
    flat_agent = lambda obs: np.zeros(len(obs), np.int64)  # noqa: E731
    metrics, cis, per_year, _ = judge(data, COSTLESS, flat_agent, resamples=400)
    want, days = _by_hand_daily_sharpe(data, COSTLESS.window)
    bh = metrics["overall"]["buy_and_hold"]
    assert bh.ratios_on_calendar_days and per_year["overall"] == 365
    assert bh.sharpe == pytest.approx(want, rel=1e-9)
    assert cis["overall"] is not None and cis["overall"].bars == days
    assert (per_year["STK"], per_year["HR"]) == (252 * 7, 252 * 6)
    hr = metrics["HR"]["buy_and_hold"]
    r = np.diff(np.log(data.close[data.symbol_idx == 1][COSTLESS.window - 1 :]))  # held from row window on
    simple = np.expm1(r)
    assert hr.sharpe == pytest.approx(simple.mean() / simple.std(ddof=1) * math.sqrt(252 * 6), rel=1e-9)


def _stock_and_unscored_crypto(days: int, seed: int) -> MarketData:
    """A stock's weekday daily bars (14:30 UTC) over `days` calendar days, and a crypto of 2 daily rows (no
    bar to decide on with window 2): each a random walk whose next open is its close."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2022, 1, 3, 14, 30, tzinfo=dt.UTC)
    stock = [
        start + dt.timedelta(days=i) for i in range(days) if (start + dt.timedelta(days=i)).weekday() < 5
    ]
    crypto = [dt.datetime(2022, 1, 3, tzinfo=dt.UTC), dt.datetime(2022, 1, 4, tzinfo=dt.UTC)]
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(stock) + 2)))
    o = np.concatenate([[100.0], c[:-1]])
    ts = np.array([int(t.timestamp() * 1e6) for t in [*stock, *crypto]], np.int64)
    idx = np.array([0] * len(stock) + [1, 1], np.int32)
    return market_data_from_arrays(
        o, np.maximum(o, c), np.minimum(o, c), c, np.zeros((len(c), 1)), ts=ts, symbols=["STK", "BTC"],
        symbol_idx=idx, segment_id=idx.astype(np.int64), asset_classes=["stock", "crypto"], interval="1d",
        period="test",
    )  # fmt: skip


def _hold(obs: np.ndarray) -> np.ndarray:
    return np.ones(len(obs), np.int64)


def test_the_overall_is_annualised_by_the_symbols_scored_and_says_which_they_are() -> None:
    """A crypto named in the evaluation but with no bar to decide on (2 rows, window 2) is not scored: the
    overall holds the stock only, annualised by the stock's 252 sessions (its calendar, not the crypto's)."""
    from rl.metrics import scored_symbols

    metrics, _, per_year, _ = judge(_stock_and_unscored_crypto(60, 1), COSTLESS, _hold, resamples=400)
    assert scored_symbols({s: metrics[s]["agent"] for s in ("STK", "BTC")}) == ["STK"]
    assert metrics["BTC"]["agent"].bars == 0 and metrics["BTC"]["agent"].sharpe is None
    assert per_year["overall"] == 252 and not metrics["overall"]["agent"].ratios_on_calendar_days
    assert metrics["overall"]["agent"].sharpe == pytest.approx(metrics["STK"]["agent"].sharpe, rel=1e-9)


def test_the_table_marks_ratios_from_too_few_bars_and_names_the_symbols_not_scored() -> None:
    """The same unscored crypto, and a stock of 7 bars: its Sharpe and Sortino are marked * with the note, the
    crypto is named as not scored; with enough bars and one calendar, no note at all."""

    def report(days: int) -> EvalReport:
        metrics, cis, per_year, _ = judge(_stock_and_unscored_crypto(days, 2), COSTLESS, _hold, resamples=400)
        return EvalReport(
            run_id="r-x", parent_run_id=None, period="test", interval="1d", symbols=["STK", "BTC"],
            bounds=("2022-01-03T00:00:00+00:00", "2022-12-31T00:00:00+00:00"), bars_per_year=per_year,
            metrics=metrics, sharpe_ci=cis, seed=0, env={},
        )  # fmt: skip

    few = report(10)
    assert few.metrics["STK"]["agent"].too_few_to_annualise
    table = render_table(few)
    assert "too few bars for an annualised figure" in table, table
    assert "not scored (no bar to decide on in the period; not in the overall): BTC" in table, table
    assert few.to_json()["symbols_scored"] == ["STK"]
    stk_agent = next(line for line in table.splitlines() if "STK" in line)
    assert stk_agent.count("*") == 3, table  # its annualised return, its Sharpe and its Sortino
    many = render_table(report(400))
    assert "too few bars" not in many and "calendar-day" not in many, many


# --- what the evaluation writes beside its numbers: the steps, the costs, the gaps, the row's period -----


@pytest.fixture
def gapped(lake_root: Path) -> Path:
    """Three days of BTCUSDT and ETHUSDT minute bars; BTCUSDT misses 20 minutes inside the test period (more
    than max_gap_minutes = 15: its features restart their warm-up after it)."""
    n = 3 * 1440
    btc = bars_table(T0, walk_closes(n, 1, 60000.0))
    hole = pa.array([not (3900 <= i < 3920) for i in range(n)])
    write_bars(lake_root, "BTCUSDT", btc.filter(hole))
    write_bars(lake_root, "ETHUSDT", bars_table(T0, walk_closes(n, 2, 3000.0)))
    return lake_root


def _evaluate_gapped(root: Path, run_dir: Path) -> tuple[EvalReport, dict[str, Any]]:
    run_dir.mkdir()
    settings = Settings(min_bars_per_symbol=100)
    kw = {"policy": momentum, "symbols": ["BTCUSDT", "ETHUSDT"], "interval": "1m", "resamples": 400}
    report = evaluate(root, settings, run_dir, "test", env_config=EnvConfig(window=8), **kw)  # type: ignore[arg-type]
    return report, json.loads((run_dir / "evaluation-test.json").read_text())


def test_the_steps_file_gives_back_every_return_and_cost_of_the_report(gapped: Path, tmp_path: Path) -> None:
    """evaluation-<period>.parquet (and the evaluation's own evaluations/<run id>-<period>.parquet) holds every
    step of every policy, per symbol and overall: the total returns and costs paid of the JSON are summed
    back from it, and its fills are the trades."""
    import pyarrow.parquet as pq

    run_dir = tmp_path / "run"
    report, saved = _evaluate_gapped(gapped, run_dir)
    own = run_dir / "evaluations" / f"{report.run_id}-test.parquet"
    assert saved["files"]["steps"] == str(own)
    latest = pq.read_table(run_dir / "evaluation-test.parquet")
    assert latest.equals(pq.read_table(own))
    assert latest.column_names == [
        "ts", "symbol", "policy", "segment", "position", "fill_price", "exit_price", "log_return", "cost",
        "cost_of_capital", "turnover", "equity",
    ]  # fmt: skip
    assert str(latest.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    steps = latest.to_pandas()
    scopes = {"overall": saved["overall"], **saved["per_symbol"]}
    costs = {"overall": saved["costs_paid"]["overall"], **saved["costs_paid"]["per_symbol"]}
    capital = {"overall": saved["costs_of_capital"]["overall"], **saved["costs_of_capital"]["per_symbol"]}
    for scope, by_policy in scopes.items():
        for policy, m in by_policy.items():
            s = steps[(steps.symbol == scope) & (steps.policy == policy)]
            assert len(s) == m["bars"], (scope, policy)
            assert s.ts.is_monotonic_increasing
            assert math.expm1(s.log_return.sum()) == pytest.approx(m["total_return"], rel=1e-9, abs=1e-12)
            assert s.equity.iloc[-1] - 1 == pytest.approx(m["total_return"], rel=1e-9, abs=1e-12)
            assert s.cost.sum() == pytest.approx(costs[scope][policy], rel=1e-12, abs=1e-15)
            assert s.cost_of_capital.sum() == pytest.approx(capital[scope][policy], rel=1e-12, abs=1e-15)
            # the money the costs took, over the start: each step's costs x the equity before it, whose
            # base is the equity at the open (or before a forced exit): a little below `cost` summed when
            # the equity fell, here where every step's costs are a fraction of less than the start
            if scope != "overall":
                before = np.exp(np.cumsum(s.log_return) - s.log_return)
                approx_money = float((s.cost * before).sum())
                assert capital[scope][policy] == pytest.approx(approx_money, rel=1e-2, abs=1e-15)
            assert s.turnover.sum() == pytest.approx(m["turnover"], rel=1e-9, abs=1e-12)
            # the trades: the fills, a symbol's among its rows, the overall's among all its symbols' rows
            fills = steps[(steps.symbol != "overall") & (steps.policy == policy)] if scope == "overall" else s
            assert int((fills.turnover > 0).sum()) == m["trades"], (scope, policy)
    assert costs["overall"]["flat"] == 0 and costs["BTCUSDT"]["random"] > costs["BTCUSDT"]["buy_and_hold"] > 0
    # the portfolio starts with an equal share in each symbol: its costs of capital are their mean
    for policy in ("agent", "random", "buy_and_hold"):
        each = [capital[s][policy] for s in saved["per_symbol"]]
        assert capital["overall"][policy] == pytest.approx(sum(each) / len(each), rel=1e-12)
    assert capital["BTCUSDT"]["random"] < costs["BTCUSDT"]["random"]  # it lost money: less than the sum
    # buy-and-hold buys once in each of BTCUSDT's two segments, at the open of the step
    bh = steps[(steps.symbol == "BTCUSDT") & (steps.policy == "buy_and_hold")]
    fills = bh[bh.fill_price.notna()]
    assert fills.segment.tolist() == [0, 1] and (fills.position == 1).all()
    assert steps[steps.symbol == "overall"].fill_price.isna().all()
    # and sells at the close of segment 0's last bar (a forced exit before the gap), at its own price
    exits = bh[bh.exit_price.notna()]
    assert exits.segment.tolist() == [0] and exits.ts.tolist() == [bh[bh.segment == 0].ts.max()]
    # every trade of every policy is a fill at an open or an exit at a close (a trade log can be rebuilt)
    rows = steps[steps.symbol != "overall"]
    traded = rows.fill_price.notna() | rows.exit_price.notna()
    assert (traded == (rows.turnover > 0)).all()
    assert steps[steps.symbol == "overall"].exit_price.isna().all()
    table = render_table(report)
    assert "costs Σ%eq" in table and "costs %cap" in table
    assert "costs %cap: the costs paid as a % of the starting capital" in " ".join(table.split())


def test_the_report_says_what_each_symbols_gaps_took(gapped: Path, tmp_path: Path) -> None:
    """One line per symbol: its segments, the bars of the period the features' warm-up after a gap took
    (60 a segment), and the positions closed at a segment's end; in the table, the JSON and the runs row."""
    report, saved = _evaluate_gapped(gapped, tmp_path / "run")
    start, end = (dt.datetime.fromisoformat(b) for b in saved["bounds"])
    btc = (
        lake.connect(gapped, read_only=True)
        .execute(
            "SELECT count(*) FROM bars WHERE symbol = 'BTCUSDT' AND ts >= ? AND available_at <= ?",
            [start, end],
        )
        .fetchone()
    )
    g = saved["gaps"]["BTCUSDT"]
    assert (g["segments"], g["gaps"], g["too_short"]) == (2, 1, 0), g
    assert btc is not None and g["bars_in_period"] == btc[0] and g["warmup_lost"] == 60, g
    assert g["rows"] == g["bars_in_period"] - 60 and g["history_only"] == 2 * 8
    assert g["steps"] == saved["per_symbol"]["BTCUSDT"]["agent"]["bars"]
    assert g["forced_exits"]["buy_and_hold"] == 1 and g["forced_exits"]["flat"] == 0
    assert saved["per_symbol"]["BTCUSDT"]["buy_and_hold"]["trades"] == 3  # two entries and the forced exit
    e = saved["gaps"]["ETHUSDT"]
    assert (e["segments"], e["gaps"], e["warmup_lost"], e["forced_exits"]["buy_and_hold"]) == (1, 0, 0, 0), e
    lines = saved["gap_lines"]
    assert len(lines) == 2 and lines[0].startswith("BTCUSDT: 2 segments (1 gap); 60 of its "), lines
    assert "lost to warm-up" in lines[0] and "forced exits at segment ends before a gap: agent" in lines[0], (
        lines
    )
    assert "buy & hold 1" in lines[0] and lines[1].startswith("ETHUSDT: 1 segment (no gap); 0 of its ")
    assert lines[1].endswith("; no forced exit at a segment end before a gap"), lines
    assert not any(n for s in saved["gaps"].values() for n in s["session_closes"].values())  # crypto
    table = " ".join(render_table(report).split())
    assert " ".join(lines[0].split()) in table
    (row,) = runlog.list_runs(gapped)
    assert row["metrics"]["gaps"] == saved["gaps"]


def test_the_gap_line_counts_exits_at_segment_ends_and_closes_at_session_ends_apart() -> None:
    """With hold_overnight = false buy-and-hold is closed at every session's end; the gap line said "no
    forced exit" then, as it counted only exits at segment ends before a gap. Now it says what it counts, and
    the session ends' closes are counted apart (`session_closes` in the JSON)."""
    from rl.baselines import buy_and_hold
    from rl.walk import walk

    n = 40
    closes = 100 + np.sin(np.arange(n))
    ends = np.isin(np.arange(n), [9, 19, 29, 39])  # sessions end at rows 9, 19, 29, 39
    data = market_data_from_arrays(
        closes, closes + 0.5, closes - 0.5, closes, np.zeros((n, 2)), asset_classes=["stock"],
        segment_id=np.repeat([0, 1], 20), session_end=ends,
    )  # fmt: skip
    for overnight, sessions in ((True, 0), (False, 3)):
        cfg = EnvConfig(window=2, hold_overnight=overnight)
        walks = {
            "buy_and_hold": walk(data, cfg, buy_and_hold(cfg)),
            "flat": walk(data, cfg, lambda o: 0 * o[:, 0]),
        }
        g = gap_summary(data, cfg, walks)["TEST"]
        # row 19 ends segment 0 before the gap (and a session): an exit at a segment's end, counted there once
        assert g["forced_exits"] == {"buy_and_hold": 1, "flat": 0}, g
        assert g["session_closes"] == {"buy_and_hold": sessions, "flat": 0}, g
        (line,) = gap_lines({"TEST": g})
        assert "forced exits at segment ends before a gap: buy & hold 1" in line, line
        said = "; closed at session ends (hold_overnight = false): buy & hold 3"
        assert line.endswith(said) if sessions else "session ends" not in line, line


def test_the_json_and_the_runs_row_say_which_definition_of_the_metrics_they_hold(
    gapped: Path, tmp_path: Path
) -> None:
    """`metrics_version` (rl.metrics.METRICS_VERSION, 4: simple-return Sharpe, calendar-day overall across
    grids, the data's end not sold, intraday stocks by the bars their sessions hold, exposure the capital
    invested, positions carried) in the JSON file and the runs row: old rows have none (version 1)."""
    from rl.metrics import METRICS_VERSION

    report, saved = _evaluate_gapped(gapped, tmp_path / "run")
    (row,) = runlog.list_runs(gapped)
    assert METRICS_VERSION == 4
    assert saved["metrics_version"] == row["metrics"]["metrics_version"] == METRICS_VERSION
    assert summary(report)["metrics_version"] == METRICS_VERSION


def test_the_runs_row_says_which_bars_were_measured(gapped: Path, tmp_path: Path) -> None:
    """The evaluation's row (mirrored to Supabase) keeps the period's bounds, the span of its bars, where the
    evaluation started (`evaluated_from`, None when the lake's own period start), whether it is out of
    sample, and the costs paid."""
    report, saved = _evaluate_gapped(gapped, tmp_path / "run")
    (row,) = runlog.list_runs(gapped)
    m = row["metrics"]
    assert m["period"] == "test" and m["out_of_sample"] is True and m["interval"] == "1m"
    assert m["bounds"] == saved["bounds"] == list(report.bounds)
    assert m["bars_span"] == saved["bars_span"] and m["bars_span"][0] >= m["bounds"][0]
    assert m["evaluated_from"] is None and m["clear_of_training"] is None
    assert (
        m["costs_paid"] == saved["costs_paid"]
        and m["overall"]["buy_and_hold"] == saved["overall"]["buy_and_hold"]
    )
    assert m["files"]["steps"] == saved["files"]["steps"]


STEPS_MEMORY = """
import json, sys, tracemalloc
from pathlib import Path
import numpy as np, pyarrow as pa
import pyarrow.parquet
from rl.episodes import market_data_from_arrays
from rl.evaluate import Judged, portfolio_series, run_walks, write_steps
from rl.market import EnvConfig

S, N = 8, 20_000
rng = np.random.default_rng(0)
n = S * N
c = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
o = c * (1 + rng.normal(0, 1e-4, n))
ts = np.tile(np.arange(N, dtype=np.int64) * 60_000_000, S) + 1_600_000_000_000_000
data = market_data_from_arrays(
    o, np.maximum(o, c) * 1.0005, np.minimum(o, c) * 0.9995, c, rng.normal(size=(n, 4)).astype(np.float32),
    ts=ts, symbols=[f"S{i}" for i in range(S)], symbol_idx=np.repeat(np.arange(S), N),
    segment_id=np.repeat(np.arange(S), N), period="test",
)
walks = run_walks(data, EnvConfig(window=8), lambda obs: (obs[:, -1] > 0).astype(np.int64), seed=0)
judged = Judged({}, {}, {}, {"overall": {k: portfolio_series(w) for k, w in walks.items()}}, walks)
# the modules pyarrow imports on first use (pandas, for a time zone), before the measure: not the steps'
pa.array(np.zeros(1, np.int64), pa.timestamp("us", tz="UTC"))
pool = pa.default_memory_pool()
arrow_before = pool.bytes_allocated()
tracemalloc.start()
write_steps(Path(sys.argv[1]), data, judged)
python_peak = tracemalloc.get_traced_memory()[1]
rows = sum(len(s.ts) for s in judged.series["overall"].values()) + sum(len(w.ts) for w in walks.values())
print(json.dumps({"peak": python_peak + pool.max_memory() - arrow_before, "rows": rows}))
"""


def test_the_steps_file_is_written_in_pieces_not_built_whole_in_memory(tmp_path: Path) -> None:
    """8 symbols x 20,000 minute bars, 4 policies: 720,000 rows, about 58 MB as one table (8 float64 and
    int64 columns and two labels: 80 bytes a row). Writing the file (in a fresh process) holds one policy's
    steps on one scope at a time: its peak memory (numpy and Python allocations, tracemalloc, plus Arrow's
    pool) stays below a quarter of the whole table. Building the whole table, then the file's bytes, took
    more than the table."""
    import subprocess
    import sys

    import pyarrow.parquet as pq

    path = tmp_path / "steps.parquet"
    done = subprocess.run(
        [sys.executable, "-c", STEPS_MEMORY, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["rows"] > 700_000, got  # 4 policies x (8 symbols + overall) x about 20,000 steps
    table_bytes = got["rows"] * 80
    assert got["peak"] < table_bytes / 4, (got, table_bytes)
    assert pq.ParquetFile(path).metadata.num_rows == got["rows"]
    assert [p.name for p in tmp_path.iterdir()] == ["steps.parquet"]  # no temporary file left


def test_the_latest_files_are_the_evaluations_own_not_second_copies(
    gapped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorded evaluation's evaluation-<period>.parquet and .png are hard links to its own
    evaluations/<run id>-<period>.* (one copy on disk); the next evaluation replaces the latest names and
    leaves the earlier one's files as they were. Where no hard link can be made: a copy, the same bytes."""
    import os

    import rl.evaluate as ev

    run_dir = tmp_path / "run"
    first, _ = _evaluate_gapped(gapped, run_dir)
    assert first.steps_path is not None and first.png_path is not None
    for ext, own in (("parquet", first.steps_path), ("png", first.png_path)):
        assert os.path.samefile(run_dir / f"evaluation-test.{ext}", own), ext
    before = first.steps_path.read_bytes()

    def no_links(*_a: Any, **_k: Any) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(ev.os, "link", no_links)
    settings = Settings(min_bars_per_symbol=100)
    second = evaluate(
        gapped, settings, run_dir, "test", env_config=EnvConfig(window=8, commission=0.002), policy=momentum,
        symbols=["BTCUSDT", "ETHUSDT"], interval="1m", resamples=400,
    )  # fmt: skip
    assert second.steps_path is not None and second.steps_path != first.steps_path
    latest = run_dir / "evaluation-test.parquet"
    assert not os.path.samefile(latest, second.steps_path)  # copied
    assert latest.read_bytes() == second.steps_path.read_bytes() != before
    assert first.steps_path.read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir() if ".tmp-" in p.name) == []


# --- what an evaluation of a saved run says about the run and the settings it used ----------------------------

RUN_ID = "20261130-235222-62515d"
RUN_ENV = {"window": 8, "commission": 0.001, "slippage": "bps", "slippage_bps": 1.0, "allow_short": False}


def _saved_run_folder(root: Path, run_dir: Path, status: str = "finished") -> Any:
    """A training run's folder as `train` leaves it (settings.json, status.json) with no checkpoint: its
    periods cut from the lake's three days of BTCUSDT minute bars, its trading settings RUN_ENV, its lake
    another one. Returns the train period's normalisation."""
    settings = Settings(min_bars_per_symbol=100)
    write_bars(root, "BTCUSDT", bars_table(T0, walk_closes(3 * 1440, 1, 60000.0)))
    train = load_period(root, settings, ["BTCUSDT"], "1m", "train")
    val = load_period(root, settings, ["BTCUSDT"], "1m", "validation", train.norm)
    iso = {p.period: {"start_at": _iso(p.bounds[0]), "end_at": _iso(p.bounds[1])} for p in (train, val)}
    run_dir.mkdir(parents=True)
    (run_dir / "settings.json").write_text(
        json.dumps(
            {
                "run_id": RUN_ID,
                "symbols": ["BTCUSDT"],
                "interval": "1m",
                "periods": iso,
                "data_settings": {},
                "env": RUN_ENV,
                "lake": str(root.parent / "another-lake"),
                "ppo": {"num_iterations": 200},
            }  # fmt: skip
        )
    )
    (run_dir / "status.json").write_text(
        json.dumps(
            {"status": status, "iterations": 10, "env_steps": 1000, "best_iteration": 6, "best_score": 0.0}
        )
    )
    return train.norm


def test_evaluate_says_which_of_the_given_trading_settings_it_does_not_use(
    lake_root: Path, tmp_path: Path
) -> None:
    """A run is evaluated with its own costs and rules (the model was trained and chosen with them): a trading
    setting the given settings set otherwise is named, with both values, as a note (not progress); the table's
    title says the costs used. (was: the costs of the settings were replaced silently, the title said none)"""
    run_dir = tmp_path / "runs" / RUN_ID
    norm = _saved_run_folder(lake_root, run_dir)
    kw = {"policy": momentum, "norm": norm, "resamples": 400, "record": False, "write": False}
    dearer = Settings(
        min_bars_per_symbol=100, train={"window": 8, "commission": 0.01, "slippage_range_fraction": 0.5}
    )
    said: list[str] = []
    noted: list[str] = []
    report = evaluate(lake_root, dearer, run_dir, "test", say=said.append, note=noted.append, **kw)
    assert report.env["commission"] == 0.001 and report.env["window"] == 8
    own = [m for m in noted if "trading settings" in m]
    # slippage_range_fraction is not named: both settings use bps slippage, which it plays no part in
    assert own == [
        "note: evaluating with the run's own trading settings: commission 0.001 (your settings say 0.01)"
    ], noted
    assert not [m for m in said if "trading settings" in m], said
    title = " ".join(render_table(report).split())
    assert "commission 0.001, slippage 1 bps of the open" in title, title
    # the same settings as the run's (a window of 8 given, the rest the defaults): nothing to say
    same: list[str] = []
    evaluate(
        lake_root,
        Settings(min_bars_per_symbol=100, train={"window": 8}),
        run_dir,
        "test",
        note=same.append,
        **kw,
    )
    assert not [m for m in same if "trading settings" in m], same
    # every setting that differs is named, in the settings file's words; the window is the model's input
    # (it can be no other): not named
    other: list[str] = []
    shorts = Settings(
        min_bars_per_symbol=100,
        train={
            "allow_short": True,
            "slippage": "range",
            "slippage_range_fraction": 0.2,
            "slippage_bps": 4.0,
            "hold_overnight": False,
        },
    )
    evaluate(lake_root, shorts, run_dir, "test", note=other.append, **kw)
    (line,) = [m for m in other if "trading settings" in m]
    # the modes differ: each side's own parameter, never the one its mode does not use (slippage_bps 4 there)
    assert line == (
        "note: evaluating with the run's own trading settings: slippage bps, slippage_bps 1 (your settings "
        "say range, slippage_range_fraction 0.2), allow_short false (your settings say true), hold_overnight "
        "true (your settings say false)"
    ), line
    # a setting's value as it reads back: two commissions that differ never print alike
    fine: list[str] = []
    close = Settings(min_bars_per_symbol=100, train={"window": 8, "commission": 0.0010000001})
    evaluate(lake_root, close, run_dir, "test", note=fine.append, **kw)
    (line,) = [m for m in fine if "trading settings" in m]
    assert line.endswith("commission 0.001 (your settings say 0.0010000001)"), line


def test_evaluate_prints_its_notes_even_with_quiet(lake_root: Path, tmp_path: Path, monkeypatch: Any) -> None:
    """--quiet hides progress, not what changes how the result is read: an interrupted run, one trained on
    another lake, the run's own trading settings used. (was: every note went through run.say, silenced)"""
    from click.testing import CliRunner

    import rl.evaluate as ev
    from cli.main import cli

    run_dir = runlog.own_run_dir(lake_root, RUN_ID)
    norm = _saved_run_folder(lake_root, run_dir, status="interrupted")
    monkeypatch.setattr(ev, "_load_judged", lambda _d: (momentum, EnvConfig(**RUN_ENV), norm, None))  # type: ignore[arg-type]
    config = tmp_path / "cost.toml"
    config.write_text("[data]\nmin_bars_per_symbol = 100\n[train]\nwindow = 8\ncommission = 0.01\n")
    r = CliRunner().invoke(cli, ["-q", "--lake", str(lake_root), "--config", str(config), "evaluate", RUN_ID])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert any(f"run {RUN_ID} was interrupted after 10 of 200 iterations" in n for n in notes), r.stderr
    assert any(f"run {RUN_ID} was trained on the lake at " in n for n in notes), r.stderr
    assert (
        "note: evaluating with the run's own trading settings: commission 0.001 (your settings say 0.01)"
        in notes
    )
    assert "wrote " not in r.stderr and "test: " not in r.stderr, r.stderr  # progress stays quiet
    assert "commission 0.001" in r.stdout


def test_a_segment_the_warm_up_took_whole_is_still_a_segment_and_its_gap_a_gap(
    lake_root: Path, tmp_path: Path
) -> None:
    """Two gaps in the test period, 30 bars apart: the segment between them is shorter than the features'
    warm-up (60), so none of its rows is read. It is still a segment (too short to trade) and its gap still a
    gap: 3 segments, 2 gaps, its 30 bars and the next segment's 60 lost to warm-up, and the bars in the
    period minus those are the rows read, the period line's count. (was: "2 segments (1 gap)", counted from
    the rows read, beside 90 bars lost)"""
    n = 3 * 1440
    btc = bars_table(T0, walk_closes(n, 1, 60000.0))
    holes = pa.array([not (3900 <= i < 3920 or 3950 <= i < 3970) for i in range(n)])
    write_bars(lake_root, "BTCUSDT", btc.filter(holes))
    write_bars(lake_root, "ETHUSDT", bars_table(T0, walk_closes(n, 2, 3000.0)))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    settings = Settings(min_bars_per_symbol=100)
    said: list[str] = []
    kw = {"policy": momentum, "symbols": ["BTCUSDT", "ETHUSDT"], "interval": "1m", "resamples": 400}
    report = evaluate(
        lake_root,
        settings,
        run_dir,
        "test",
        env_config=EnvConfig(window=8),
        say=said.append,
        record=False,
        **kw,  # type: ignore[arg-type]
    )
    start, end = (dt.datetime.fromisoformat(b) for b in report.bounds)
    assert start < T0 + dt.timedelta(minutes=3900) and T0 + dt.timedelta(minutes=3970) < end
    g = report.gaps["BTCUSDT"]
    assert (g["segments"], g["gaps"], g["warmup_segments"], g["too_short"]) == (3, 2, 1, 1), g
    assert g["warmup_lost"] == 30 + 60 and g["rows"] == g["bars_in_period"] - 90, g
    assert g["history_only"] == 2 * 8 and g["forced_exits"]["buy_and_hold"] == 1, g
    line = gap_lines(report.gaps)[0]
    assert line.startswith(
        f"BTCUSDT: 3 segments (2 gaps); 90 of its {g['bars_in_period']} bars in the period lost to warm-up "
        "(60 a segment; 1 segment lost whole), 16 history only (8 a segment; 1 segment too short to trade)"
    ), line
    # the period line counts the rows read, after the warm-up: the bars in the period less those it took
    (period_line,) = [m for m in said if m.startswith("test: ")]
    assert (
        f"BTCUSDT {g['rows']}, ETHUSDT " in period_line and " bars read, after each segment's" in period_line
    )
    e = report.gaps["ETHUSDT"]
    assert (e["segments"], e["gaps"], e["warmup_segments"], e["too_short"], e["warmup_lost"]) == (
        1,
        0,
        0,
        0,
        0,
    )
    # read from the fresh feature store, the period's bars are counted there: the same counts
    from features import store
    from rl.evaluate import period_bar_counts

    store.refresh(lake_root, settings)
    again = evaluate(lake_root, settings, run_dir, "test", env_config=EnvConfig(window=8), record=False, **kw)  # type: ignore[arg-type]
    assert again.gaps == report.gaps
    bounds = (int(start.timestamp() * 1e6), int(end.timestamp() * 1e6))
    live = period_bar_counts(lake_root, settings, ["BTCUSDT", "ETHUSDT"], "1m", bounds)
    assert live["BTCUSDT"] == (g["bars_in_period"], 3) and live["ETHUSDT"][1] == 1, live
    stored = period_bar_counts(lake_root, settings, ["BTCUSDT", "ETHUSDT"], "1m", bounds, from_store=True)
    assert stored == live


def test_a_run_evaluated_after_training_with_overrides_has_no_note_about_its_own_costs(
    two_symbols: Path, tmp_path: Path
) -> None:
    """`marketlake train --window 8 --commission 0.002`: the evaluation that follows trades with the run's own
    settings, which are the settings with the command line's overrides: nothing to note (it compared them
    with the file's alone, and named the overrides as settings it did not use)."""
    from rl.evaluate import train_and_evaluate

    tiny = {
        "num_iterations": 1, "episodes_per_iteration": 2, "batch_size": 32, "validate_every": 1,
        "episode_length": 30, "symbols": ["BTCUSDT"], "interval": "1m", "seed": 1, "device": "cpu",
        "window": 8, "commission": 0.002,
    }  # fmt: skip
    said: list[str] = []
    result, report = train_and_evaluate(
        two_symbols, Settings(), tiny, runs_dir=tmp_path / "runs", say=said.append
    )
    assert report is not None and report.env["window"] == 8 and report.env["commission"] == 0.002
    assert not [m for m in said if "trading settings" in m], said

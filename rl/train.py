"""The training run: PPO (rl/ppo.py) on the train period of the eligible symbols, the model chosen on the
validation period, everything written under one run folder. The test period is never read here: the
evaluation (rl/evaluate.py) loads the chosen policy with `load_policy(run_dir)` and walks the test period.

    train(root, settings, overrides) -> TrainResult

1. Settings: the `[train]` table of marketlake.toml plus command-line `overrides`, split into the learner's
   (`PPOConfig`), the market's (`EnvConfig`) and the run's (`RunOptions`); a key nobody knows is a
   ConfigError naming it.
2. Data: which symbols are eligible in the TRAIN period (and which are skipped, and why), the train period
   (normalisation statistics computed on it alone) and the validation period (normalised with the train
   statistics). Nothing else is read. What changes the experiment (a symbol asked for and skipped, a
   validation period with no bar, an embargo holding fewer than embargo_bars bars, no model choice on
   validation) is a warning of the `marketlake.train` logger, which the CLI shows even with --quiet.
3. The run folder `<runs_dir>/<run_id>/`:

       settings.json      every setting, symbols, periods, device, threads, versions
       norm.json          the train period's normalisation statistics (NormStats.to_json)
       metrics.jsonl      one line per iteration; deterministic numbers only (the same seed repeats it)
       timing.jsonl       one line per iteration: wall time and env steps/s (never deterministic)
       checkpoints/best.pt   the checkpoint with the best validation score so far
       checkpoints/last.pt   the latest validated checkpoint
       status.json        running | finished | interrupted | failed (the `runs` table's words; folders
                          of older versions say completed for finished), best iteration and score

4. The loop: iterate PPO; every `validate_every` iterations (and at the last) walk the validation period
   with the deterministic (argmax) policy, score it (mean over symbols of the total net log return) and
   keep the best checkpoint. Ctrl-C (KeyboardInterrupt) stops cleanly: the best checkpoint so far stays,
   status.json says interrupted, and train() returns status "interrupted" (the CLI exits 130).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import math
import os
import platform
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lake.config import Settings, lines_of
from lake.connect import sql_dir
from lake.errors import ConfigError, MarketlakeError, Terminated
from lake.paths import resolve_lake_root, validate_symbol
from lake.writer import atomic_write_bytes
from rl.episodes import INTERVAL_MINUTES, EmptyPeriod, MarketData, NormStats, load_period
from rl.market import EnvConfig
from rl.ppo import PPO, Agent, IterationStats, PPOConfig, greedy_policy, now, resolve_device, seed_everything
from rl.vector import VecTradingEnv
from rl.walk import decision_steps, walk

Policy = Callable[[np.ndarray], np.ndarray]
STATUS_FILE, SETTINGS_FILE, NORM_FILE = "status.json", "settings.json", "norm.json"
METRICS_FILE, TIMING_FILE, CHECKPOINTS = "metrics.jsonl", "timing.jsonl", "checkpoints"
log = logging.getLogger("marketlake.train")
"""A fact that changes the experiment (a symbol asked for and skipped, a period with no bar, an embargo
holding fewer than embargo_bars bars, no model choice on validation) is a warning here: the CLI's log
handler shows it on stderr even with --quiet, which hides only progress (`say`)."""


# --- 1. settings ------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    """The run's own `[train]` keys (neither the learner's nor the market's)."""

    symbols: list[str] | None = None
    """Symbols to train on; None (or `all` on the command line): every symbol eligible in the train period.
    The run trains on them in sorted order, whatever order they are given in (the same seed and the same
    symbols give the same run)."""
    interval: str = "1m"
    """Bar interval to train on (1m, 1h, 1d, ...)."""
    runs_dir: str | None = None
    """Where run folders go; None: `runs/` beside the lake (`<lake>/../runs`)."""


RUN_KEYS = tuple(f.name for f in dataclasses.fields(RunOptions))
ALL_SYMBOLS = "all"
"""`--symbols all` / `--set symbols=all`: every symbol eligible in the train period (undoes [train] symbols
of the config file)."""
ENV_KEYS = tuple(f.name for f in dataclasses.fields(EnvConfig))


def train_keys() -> tuple[str, ...]:
    """Every key the `[train]` table may hold."""
    return (*PPOConfig.keys(), *ENV_KEYS, *RUN_KEYS)


def read_train_settings(
    settings: Settings, overrides: Mapping[str, Any] | None = None
) -> tuple[PPOConfig, EnvConfig, RunOptions]:
    """The `[train]` table with `overrides` on top (None values are ignored), split three ways."""
    where = f"{settings.path or 'settings'} [train]"
    table = {**settings.train, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    known = set(train_keys())
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}: key {key!r}: unknown setting (known: {', '.join(sorted(known))})")
    try:
        ppo = PPOConfig.from_table(table, where=where)
    except ConfigError as exc:  # a value given on the command line is named as the command line's
        if any(v is not None and f"key {k!r}" in str(exc) for k, v in (overrides or {}).items()):
            raise ConfigError(str(exc).replace(where, "the command line", 1)) from None
        raise
    env = EnvConfig.from_settings({k: v for k, v in table.items() if k in ENV_KEYS})
    run = RunOptions()
    if table.get("symbols") is not None and table["symbols"] != ALL_SYMBOLS:
        raw = table["symbols"]
        if isinstance(raw, str):
            raw = [s.strip() for s in raw.split(",") if s.strip()]
        if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
            raise ConfigError(
                f"{where}: key 'symbols': expected a non-empty list of symbols (or {ALL_SYMBOLS!r}: every "
                f"eligible symbol), got {raw!r}"
            )
        try:
            run.symbols = [validate_symbol(s) for s in raw]
        except ValueError as exc:
            raise ConfigError(f"{where}: key 'symbols': {exc}") from exc
        twice = sorted({s for s in run.symbols if run.symbols.count(s) > 1})
        if twice:  # (the file and the command line refuse it first: lake.config.check_train_value)
            raise ConfigError(
                f"{where}: key 'symbols': {', '.join(twice)} given twice: list each symbol once"
            )
    if "interval" in table:
        if not isinstance(table["interval"], str) or not table["interval"]:
            raise ConfigError(
                f"{where}: key 'interval': expected a string such as 1m, got {table['interval']!r}"
            )
        run.interval = table["interval"]
    if table.get("runs_dir") is not None:
        if not isinstance(table["runs_dir"], str | os.PathLike):
            raise ConfigError(f"{where}: key 'runs_dir': expected a path, got {table['runs_dir']!r}")
        run.runs_dir = os.fspath(table["runs_dir"])
    problem = ppo.batch_size_problem(env.episode_length) if env.episode_length is not None else None
    if problem is not None:  # (an automatic episode length is known when the data is read: `train` warns)
        raise ConfigError(
            f"{_batch_size_origin(settings, overrides or {}, where)}: {problem} or episode_length"
        )
    if not env.hold_overnight:  # the env's one rule (EnvConfig.check_interval), said before any work is done
        flags = [k for k in ("hold_overnight", "interval") if (overrides or {}).get(k) is not None]
        origin = [] if len(flags) == 2 else [where]
        if flags:
            origin.append(f"the command line ({', '.join(flags)})")
        env.check_interval(run.interval, " and ".join(origin))
    return ppo, env, run


def _batch_size_origin(settings: Settings, overrides: Mapping[str, Any], where: str) -> str:
    """Where the keys a batch_size refusal rests on came from, with the key: the file with the line of each
    key it gave (`cfg.toml, line 4 (episode_length), line 5 (batch_size)`) and the command line with its keys
    (it named only the command line when both gave some, and the file without lines)."""
    keys = ("batch_size", "episodes_per_iteration", "num_envs", "episode_length")
    on_line = [k for k in keys if overrides.get(k) is not None]
    in_file = [k for k in keys if k in settings.train and k not in on_line]
    lines = lines_of(settings, [f"train.{k}" for k in in_file])
    origin = []
    if in_file and len(lines) == len(in_file):
        by_line = sorted(in_file, key=lambda k: lines[f"train.{k}"])
        origin.append(f"{settings.path}, " + ", ".join(f"line {lines[f'train.{k}']} ({k})" for k in by_line))
    elif in_file or not on_line:
        origin.append(where)
    if on_line:
        origin.append(f"the command line ({', '.join(on_line)})")
    return f"{' and '.join(origin)}: key 'batch_size'"


def symbols_origin(settings: Settings, overrides: Mapping[str, Any] | None) -> str:
    """Where the run's symbols came from, for a message about them: `the command line` (--symbols or --set
    symbols=...), `from cfg.toml [train] symbols, line 12; ...`, or `none given: ...`."""
    if (overrides or {}).get("symbols") is not None:
        return "from the command line"
    if settings.train.get("symbols") is not None:
        line = lines_of(settings, ["train.symbols"]).get("train.symbols")
        at = f", line {line}" if line is not None else ""
        return f"from {settings.path or 'the settings'} [train] symbols{at}; --symbols all for every eligible one"
    return "none given: every eligible symbol"


UNUSED_BY_MODE = {"slippage_bps": "bps", "slippage_range_fraction": "range"}
"""Each slippage parameter and the `slippage` mode that reads it."""


def unused_settings(settings: Settings, overrides: Mapping[str, Any] | None = None) -> list[str]:
    """Warnings, one line each, for a [train] key given (in the file or on the command line) that the run
    will not read: the slippage parameter of the mode not chosen (`--set slippage=range --set
    slippage_bps=5` moves no fill by 5 bps)."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    table = {**settings.train, **given}
    mode = table.get("slippage", EnvConfig.slippage)
    out = []
    for key, reads in UNUSED_BY_MODE.items():
        if key in table and mode != reads:
            came = "the command line" if key in given else f"{settings.path or 'the settings'} [train]"
            how = (
                "the command line"
                if "slippage" in given
                else (f"{settings.path} [train]" if "slippage" in settings.train else "the default")
            )
            out.append(
                f"{key} = {table[key]!r} (from {came}) is not used: slippage = {mode!r} (from {how}) reads "
                f"only {next(k for k, m in UNUSED_BY_MODE.items() if m == mode)}; set slippage = {reads!r} "
                f"to use {key}, or leave {key} out"
            )
    return out


def default_runs_dir(root: Path) -> Path:
    """`runs/` beside the lake: ./data/lake -> ./data/runs (rl.runlog.default_runs_dir)."""
    from rl.runlog import default_runs_dir as beside

    return beside(root)


# --- 2. data ----------------------------------------------------------------------------------------------


@dataclass
class Eligibility:
    """Which symbols train, and which are skipped with the reason (eligibility in the TRAIN period)."""

    used: list[str]
    skipped: dict[str, str]


def _read_rl_sql(
    root: Path, settings: Settings, name: str, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of sql/rl/`name` with `params` bound, read consistently (again if an ingest replaced a file
    meanwhile), on a read-only connection with only the views the statement needs (registering all of them
    is most of a connection's cost)."""
    import lake
    from lake.connect import views_needed

    sql = (sql_dir() / "rl" / name).read_text(encoding="utf-8")

    def read() -> list[tuple[Any, ...]]:
        con = lake.connect(root, read_only=True, settings=settings, views=views_needed([sql]))
        try:
            return con.execute(sql, dict(params)).fetchall()
        finally:
            con.close()

    return lake.consistent(root, read)


def check_in_lake(
    root: Path, settings: Settings, interval: str, wanted: list[str] | None, origin: str | None = None
) -> None:
    """The lake holds bars of `interval` (and of every symbol in `wanted`, which came from `origin`:
    symbols_origin); else a MarketlakeError saying what it holds. For the command line, before a run is
    recorded: a mistyped symbol or interval is refused, not recorded as a failed run (a symbol stored but
    not eligible in the train period is the run's to skip)."""
    import lake
    from lake.connect import views_needed

    sql = (sql_dir() / "rl" / "lake_symbols.sql").read_text(encoding="utf-8")
    con = lake.connect(root, read_only=True, settings=settings, views=views_needed([sql]))
    try:
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    held: dict[str, list[str]] = {}
    for iv, symbol in rows:
        held.setdefault(str(iv), []).append(str(symbol))
    if interval not in held:
        has = "; ".join(f"{iv}: {', '.join(syms)}" for iv, syms in sorted(held.items())) or "no bars at all"
        raise MarketlakeError(
            f"interval {interval}: the lake at {root} has no {interval} bars (it has {has})"
        )
    missing = [s for s in wanted or [] if s not in held[interval]]
    if missing:
        came = f" ({origin})" if origin else ""
        cased = [s.upper() for s in missing if s != s.upper() and s.upper() in held[interval]]
        hint = f"; symbols are upper case: {', '.join(cased)}?" if cased else ""
        raise MarketlakeError(
            f"symbol(s) {', '.join(missing)}{came}: no {interval} bars in the lake at {root} "
            f"(its {interval} symbols: {', '.join(held[interval])}){hint}"
        )


def test_period_problem(
    root: Path, settings: Settings, interval: str, wanted: list[str] | None
) -> str | None:
    """Why the test period cannot judge a run (it is missing, or holds no bar of `interval` of `wanted`,
    when given), or None when it holds bars. Counts its bars; reads none of them."""
    rows = _read_rl_sql(root, settings, "test_period_rows.sql", {"interval": interval, "symbols": wanted})
    of = f"{interval} bar of {', '.join(wanted)}" if wanted else f"{interval} bar"
    if not rows:
        return f"the lake at {root} has no test period"
    start_at, end_at, n = rows[0]
    if not n:
        return (
            f"the test period ({start_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} .. "
            f"{end_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC) holds no {of}"
        )
    return None


def check_test_period(root: Path, settings: Settings, interval: str, wanted: list[str] | None) -> None:
    """The test period holds bars of `interval` (of `wanted`, when given); else a MarketlakeError before
    any work: a run to be evaluated would otherwise train in full, then have nothing to be judged on."""
    problem = test_period_problem(root, settings, interval, wanted)
    if problem is None:
        return
    fix = (
        'move [splits] train_end / validation_end before the data\'s end (or use method = "fraction"), '
        "or train with --no-evaluate"
    )
    if problem.endswith("has no test period"):
        raise MarketlakeError(f"{problem}: nothing to evaluate a run on; {fix}")
    raise MarketlakeError(f"{problem}: a run would train in full and have nothing to be judged on; {fix}")


def test_segments(
    root: Path, settings: Settings, interval: str, symbols: list[str]
) -> dict[str, tuple[int, int]]:
    """Each of `symbols` with test-period bars after the features' warm-up: (those bars, the bars of its
    longest segment among them) (sql/rl/test_segments.sql). Counts bars; reads none of their prices."""
    rows = _read_rl_sql(root, settings, "test_segments.sql", {"interval": interval, "symbols": symbols})
    return {str(s): (int(n), int(longest)) for s, n, longest in rows}


def test_window_problem(
    root: Path, settings: Settings, interval: str, symbols: list[str], window: int
) -> tuple[str | None, list[str]]:
    """Whether the test period can score a model of `window` on `symbols`: a decision needs `window` rows of
    history in its segment (after the warm-up) and a next bar to fill at, so a segment of n rows gives
    n - window decisions. Returns (why no symbol can be scored, or None; the symbols that cannot be, when
    others can)."""
    segs = test_segments(root, settings, interval, symbols)
    short = [s for s in symbols if segs.get(s, (0, 0))[1] <= window]
    if len(short) < len(symbols):
        return None, short
    longest = ", ".join(f"{s} {segs[s][1]}" if s in segs else f"{s} none" for s in symbols)
    best = max((n for _, n in segs.values()), default=0)
    lower = f"--set window={best - 1} or lower" if best > 1 else "a lower window"
    return (
        f"window {window}: no test-period segment of {', '.join(symbols)} is longer than the window (the "
        f"longest after the features' warm-up, in {interval} bars: {longest}; a decision needs {window} rows of "
        f"history in its segment and a next bar to fill at), so the evaluation would have nothing to score "
        f"after the run has trained in full; lower train.window ({lower}), give the test period more data, "
        "or train with --no-evaluate",
        short,
    )


def train_eligibility(
    root: Path, settings: Settings, interval: str, wanted: list[str] | None, origin: str | None = None
) -> Eligibility:
    """Every symbol of the interval with its train-period eligibility (sql/rl/train_setup.sql: the
    `symbol_quality_by_split` view, the split 'train' only, and the train period's bounds). The symbols used
    are sorted, whatever order `wanted` gives them in: the same seed and the same symbols give the same run.
    Nothing eligible is a MarketlakeError naming each symbol and why (with the train period's dates, and why
    a symbol has no bar in it), and where the symbols came from (`origin`: symbols_origin)."""
    rows = _read_rl_sql(root, settings, "train_setup.sql", {"interval": interval})
    status = {str(s): (bool(ok), str(reason or "")) for s, _ac, ok, reason, _a, _b in rows}
    used: list[str] = []
    skipped: dict[str, str] = {}
    for symbol in sorted(wanted) if wanted is not None else sorted(status):
        if symbol not in status:
            skipped[symbol] = f"no {interval} bars in the lake"
        elif status[symbol][0]:
            used.append(symbol)
        else:
            skipped[symbol] = status[symbol][1] or "not eligible in the train period"
    if not used:
        why = "; ".join(f"{s}: {r}" for s, r in skipped.items()) or f"the lake has no {interval} bars"
        came = f" (symbols {origin})" if origin and wanted is not None else ""
        period = ""
        if rows and any(r.startswith("no bar in the train period") for r in skipped.values()):
            start_at, end_at = rows[0][4].astimezone(dt.UTC), rows[0][5].astimezone(dt.UTC)
            if settings.split_method == "date":
                cut = f"it ends at the end of [splits] train_end = {settings.train_end}"
                fix = f"set [splits] train_end and validation_end inside the {interval} bars' dates"
            else:
                cut = f"[splits] method = {settings.split_method!r} cuts it as a share of that range"
                fix = (
                    f'use [splits] method = "date" with train_end and validation_end inside the {interval} '
                    "bars' dates"
                )
            period = (
                f". The train period is {start_at:%Y-%m-%d %H:%M} .. {end_at:%Y-%m-%d %H:%M} UTC: the periods "
                f"are cut from the whole lake's range (every interval and symbol, not the {interval} bars "
                f"alone), and {cut}; {fix}"
            )
        raise MarketlakeError(
            f"nothing to train on: no {interval} symbol{came} is eligible in the train period ({why}){period}"
        )
    return Eligibility(used, skipped)


@dataclass(frozen=True)
class PeriodCount:
    """A period's bounds (UTC) and how many bars of the training symbols and interval it holds."""

    name: str
    start_at: dt.datetime
    end_at: dt.datetime
    bars: int


def train_period_counts(
    root: Path, settings: Settings, interval: str, symbols: list[str]
) -> dict[str, PeriodCount]:
    """The train and validation periods with their bars of `symbols` at `interval` (sql/rl/train_periods.sql);
    the test period is not counted (training never reads it)."""
    rows = _read_rl_sql(root, settings, "train_periods.sql", {"interval": interval, "symbols": symbols})
    return {
        str(n): PeriodCount(str(n), a.astimezone(dt.UTC), b.astimezone(dt.UTC), int(c)) for n, a, b, c in rows
    }


def _span(minutes: float) -> str:
    if minutes >= 1440 and minutes % 1440 == 0:
        return f"{minutes / 1440:g} day(s)"
    return f"{minutes:g} minute(s)"


def split_fix(settings: Settings) -> str:
    """What to change when a period falls where the training symbols have no bar."""
    if settings.split_method == "date":
        return "move [splits] train_end / validation_end so that each period holds bars"
    return (
        "fraction splits cut the lake's range by time (session time on a lake of stocks alone; on a lake "
        "that also holds crypto, clock time, so a short period can fall outside a stock's sessions, "
        'overnight): use [splits] method = "date" with train_end and validation_end'
    )


@dataclass(frozen=True)
class EmbargoGap:
    """The embargo between two consecutive periods (UTC bounds) and how many bars of one training symbol at
    the run's interval lie in it (the symbol has bars on both sides)."""

    before: str
    after: str
    start_at: dt.datetime
    end_at: dt.datetime
    symbol: str
    asset_class: str
    bars: int


def embargo_gaps(root: Path, settings: Settings, interval: str, symbols: list[str]) -> list[EmbargoGap]:
    """The embargoes train -> validation and validation -> test with the bars of each of `symbols` at
    `interval` in them (sql/rl/embargo_gaps.sql; a symbol without bars on both sides of a gap is left out).
    Counts bars; reads none of them."""
    rows = _read_rl_sql(root, settings, "embargo_gaps.sql", {"interval": interval, "symbols": symbols})
    return [
        EmbargoGap(
            str(a), str(b), s.astimezone(dt.UTC), e.astimezone(dt.UTC), str(sym), str(ac or ""), int(n)
        )
        for a, b, s, e, sym, ac, n in rows
    ]


SESSION_MINUTES = 390
"""A stock's regular session (09:30-16:00 New York): the minutes of bars it trades a day."""


def embargo_days_for(bars: int, interval: str, stock: bool) -> int:
    """Whole days an embargo needs to hold `bars` bars of `interval`: of crypto (24/7) the clock time; of a
    stock the trading days its sessions need, as calendar days (5 trading days a week) plus 2 for a weekend
    or a holiday at the start (an estimate: a long run of holidays can still hold fewer)."""
    minutes = INTERVAL_MINUTES.get(interval, 1)
    if not stock:
        return max(1, math.ceil(bars * minutes / 1440))
    per_day = max(1, SESSION_MINUTES // minutes) if minutes < 1440 else 1
    trading_days = math.ceil(bars / per_day) * max(1, minutes // 1440)
    return math.ceil(trading_days * 7 / 5) + 2


def period_warnings(
    periods: Mapping[str, PeriodCount],
    settings: Settings,
    interval: str,
    symbols: list[str],
    gaps: list[EmbargoGap] | None = None,
) -> list[str]:
    """The warnings a run's periods call for, one line each: an embargo (`gaps`) that holds fewer than
    `embargo_bars` bars of `interval` of a training symbol with bars on both sides of it (the embargo is
    `embargo_bars` bars of the lake's shortest interval in trading time: it holds fewer where the symbol
    has no bars, and a lake that also holds minute bars makes it minutes for a daily model; with
    `embargo_days` set the promise is whole days, not bars, and nothing is said), and a validation period
    with no bar of `symbols`."""
    out: list[str] = []
    val = periods.get("validation")
    if settings.embargo_days is None:
        by_gap: dict[tuple[str, str], list[EmbargoGap]] = {}
        for g in gaps or []:
            if g.bars < settings.embargo_bars:
                by_gap.setdefault((g.before, g.after), []).append(g)
        for (before, after), short in by_gap.items():
            g0 = short[0]
            gap = (g0.end_at - g0.start_at).total_seconds() / 60
            held = ", ".join(f"{g.symbol} {g.bars}" for g in short)
            days = max(
                embargo_days_for(settings.embargo_bars, interval, g.asset_class != "crypto") for g in short
            )
            out.append(
                f"the embargo between the {before} and {after} periods ({g0.start_at:%Y-%m-%d %H:%M} .. "
                f"{g0.end_at:%Y-%m-%d %H:%M} UTC, {_span(gap)}: [splits] embargo_bars = {settings.embargo_bars} "
                f"is that many bars of the lake's shortest interval in trading time) holds fewer than "
                f"{settings.embargo_bars} {interval} bars of the training symbols ({interval} bars in it: "
                f"{held}): the last {before} bar and the first {after} bar are that close, and the {after} "
                f"bars' features reach back into {before}; set [splits] embargo_days = {days} (whole days, "
                f"enough for {settings.embargo_bars} {interval} bars of "
                + (
                    "a stock, which trades only in its sessions"
                    if any(g.asset_class != "crypto" for g in short)
                    else "crypto"
                )
                + ")"
                + (
                    "; the embargo then starts where train_end (validation_end) ends: keep the next period's "
                    "end after it"
                    if settings.split_method == "date"
                    else ""
                )
            )
    if val is not None and val.bars == 0:
        out.append(
            f"the validation period ({val.start_at:%Y-%m-%d %H:%M} .. {val.end_at:%Y-%m-%d %H:%M} UTC) holds "
            f"no {interval} bar of {', '.join(symbols)}: no model can be chosen on it, the last checkpoint "
            f"is kept as the chosen one; {split_fix(settings)}"
        )
    return out


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))).isoformat()


def validation_score(data: MarketData, env: EnvConfig, policy: Policy) -> dict[str, float]:
    """The deterministic policy walked over every valid bar of `data`: `score` is the mean over symbols of
    the total net log return (the model-choice criterion); exposure and turnover for the record."""
    w = walk(data, env, policy)
    if len(w) == 0:
        return {"score": float("nan"), "steps": 0.0}
    n = len(data.symbols)
    per_symbol = np.bincount(w.symbol_idx, weights=w.log_return, minlength=n)
    has_steps = np.bincount(w.symbol_idx, minlength=n) > 0
    return {
        "score": float(per_symbol[has_steps].mean()),
        "steps": float(len(w)),
        "exposure": float(np.abs(w.position).mean()),
        "turnover": float(w.turnover.sum()),
    }


# --- 3. the run folder ------------------------------------------------------------------------------------


def _write_json(path: Path, obj: Any) -> None:
    """Durable and atomic: the temporary file is fsynced before its rename (and the folder after it), so a
    crash or a power cut leaves the old file or the new one, never an empty or half-written one."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode("utf-8"))


def _append_jsonl(path: Path, obj: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")


def _new_run_dir(runs_dir: Path, started: dt.datetime) -> tuple[str, Path]:
    runs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = f"{started:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        path = runs_dir / run_id
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return run_id, path


def save_checkpoint(path: Path, agent: Agent, iteration: int, score: float) -> None:
    """Atomic and durable: a reader (or a crash, or a power cut) never sees half a checkpoint (the temporary
    file is fsynced before its rename, lake/writer.py atomic_write_bytes)."""
    buf = io.BytesIO()
    torch.save(
        {
            "agent": agent.state_dict(),
            "spec": agent.spec(),
            "iteration": iteration,
            "score": score,
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def _best_from_file(best: Path, state: dict[str, Any]) -> None:
    """The state's best iteration and score as best.pt itself says (the file is what evaluate loads)."""
    if not best.is_file():
        return
    try:
        ckpt = torch.load(best, map_location="cpu", weights_only=True)
        iteration, score = int(ckpt["iteration"]), float(ckpt["score"])
    except Exception:  # unreadable: the state stays as it was (evaluate will say what is wrong with the file)
        return
    state |= {"best_iteration": iteration, "best_checkpoint": str(best)}
    state["best_score"] = score if np.isfinite(score) else None


REDO = "restore it from a copy, or train the run again (`marketlake train`)"
"""What to do about a damaged file of a run folder: said with every one."""


def damaged(run_dir: Path, name: str, why: str) -> MarketlakeError:
    """The error for a run folder's file `name` that is missing or wrong: one line naming the run, the
    file and the reason, and what to do."""
    return MarketlakeError(f"run {run_dir.name}: {run_dir / name} {why}: {REDO}")


def read_json_object(run_dir: Path, name: str) -> dict[str, Any]:
    """The JSON object in the run folder's file `name`; a MarketlakeError naming the file when it is missing,
    unreadable, not JSON or not an object."""
    path = run_dir / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise damaged(run_dir, name, "is missing (every training run writes it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise damaged(run_dir, name, f"cannot be read ({why})") from None
    try:
        got = json.loads(text)
    except ValueError as exc:
        raise damaged(run_dir, name, f"is not JSON ({exc})") from None
    if not isinstance(got, dict):
        raise damaged(run_dir, name, f"holds a JSON {type(got).__name__}, not an object") from None
    return got


def _first_sentence(exc: BaseException) -> str:
    """The start of an exception's message: its first line up to its first sentence's end (torch's run on)."""
    line = (str(exc).splitlines() or [""])[0]
    head, dot, _ = line.partition(". ")
    return (head + dot.strip())[:200]


def _checkpoint_name(run_dir: Path, path: Path) -> str:
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)


def load_agent(
    path: Path, device: torch.device | None = None, *, run_dir: Path | None = None
) -> tuple[Agent, dict[str, Any]]:
    """The agent of a checkpoint file; a MarketlakeError naming the file when it is not one this version
    wrote (truncated, garbage, empty, a folder, another network)."""
    folder = run_dir if run_dir is not None else path.parent
    name = _checkpoint_name(folder, path)
    if path.is_dir():
        raise damaged(folder, name, "is a folder, not a checkpoint file")
    try:
        ckpt = torch.load(path, map_location=device or "cpu", weights_only=True)
    except FileNotFoundError:
        raise damaged(folder, name, "is missing") from None
    # (torch raises many kinds for a damaged file: RuntimeError, EOFError, UnpicklingError, KeyError, …)
    except Exception as exc:
        first = _first_sentence(exc)
        raise damaged(
            folder,
            name,
            f"is not a readable checkpoint ({type(exc).__name__}{': ' + first if first else ''})",
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("spec"), dict) or "agent" not in ckpt:
        raise damaged(folder, name, "is not a checkpoint of a training run (no network spec and weights)")
    try:
        agent = Agent.from_spec(ckpt["spec"])
        agent.load_state_dict(ckpt["agent"])
    except Exception as exc:
        first = _first_sentence(exc)
        raise damaged(folder, name, f"holds a network this version cannot rebuild ({first})") from None
    agent.eval()
    return agent, ckpt


def _norm_stats(run_dir: Path) -> NormStats:
    """norm.json checked: feature names (strings), and a finite mean and a positive finite standard
    deviation for each."""
    d = read_json_object(run_dir, NORM_FILE)
    names, mean, std = d.get("feature_names"), d.get("mean"), d.get("std")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise damaged(run_dir, NORM_FILE, "has no list of feature names ('feature_names')")
    for key, values in (("mean", mean), ("std", std)):
        if (
            not isinstance(values, list)
            or len(values) != len(names)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        ):
            raise damaged(
                run_dir, NORM_FILE, f"'{key}' is not a list of {len(names)} numbers, one per feature"
            )
    for name, m, sd in zip(names, mean, std, strict=True):  # type: ignore[arg-type]
        if not math.isfinite(m):
            raise damaged(run_dir, NORM_FILE, f"has a mean of {m} for {name}")
        if not (math.isfinite(sd) and sd > 0):
            raise damaged(
                run_dir, NORM_FILE, f"has a standard deviation of {sd} for {name} (must be above 0)"
            )
    return NormStats(list(names), np.asarray(mean, float), np.asarray(std, float))


def env_of_run(run_dir: Path, saved: Mapping[str, Any]) -> EnvConfig:
    """The EnvConfig of settings.json's `env` table; a MarketlakeError naming the file when it is not one."""
    env = saved.get("env")
    if not isinstance(env, dict):
        raise damaged(run_dir, SETTINGS_FILE, "has no 'env' table (the market settings the run trained with)")
    try:
        return EnvConfig(**env)
    except (TypeError, ValueError) as exc:  # an unknown key; a bad value (ConfigError is a ValueError)
        raise damaged(
            run_dir, SETTINGS_FILE, f"has an 'env' table this version cannot read ({exc})"
        ) from None


def load_policy(run_dir: Path | str, checkpoint: str = "best") -> tuple[Policy, EnvConfig, NormStats]:
    """The chosen model of a run as a deterministic (argmax) numpy policy, with the EnvConfig and the train
    period's NormStats it was trained with (what rl/evaluate.py needs to walk another period). A missing or
    damaged file of the folder (settings.json, norm.json, the checkpoint), or files that do not belong
    together (a window or features the checkpoint's network was not built for), is a MarketlakeError naming
    the file and the reason."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINTS / f"{checkpoint}.pt"
    if not path.exists():
        raise MarketlakeError(
            f"run {run_dir.name}: no checkpoint {path} (was the run stopped before validating?)"
        )
    env = env_of_run(run_dir, read_json_object(run_dir, SETTINGS_FILE))
    norm = _norm_stats(run_dir)
    agent, _ = load_agent(path, run_dir=run_dir)
    name = _checkpoint_name(run_dir, path)
    if agent.layout is not None and agent.layout[0] != env.window:
        raise damaged(
            run_dir,
            SETTINGS_FILE,
            f"says window {env.window}, but {name}'s network was built for windows of {agent.layout[0]} bars "
            "(the files do not belong together)",
        )
    if agent.layout is not None and agent.layout[1] != len(norm.feature_names):
        raise damaged(
            run_dir,
            NORM_FILE,
            f"holds {len(norm.feature_names)} features, but {name}'s network reads {agent.layout[1]} "
            "(the files do not belong together)",
        )
    if agent.n_actions != env.n_actions:
        raise damaged(
            run_dir,
            SETTINGS_FILE,
            f"says allow_short = {str(env.allow_short).lower()} ({env.n_actions} actions), but {name}'s "
            f"network chooses among {agent.n_actions} (the files do not belong together)",
        )
    return greedy_policy(agent, torch.device("cpu")), env, norm


def read_run(run_dir: Path | str) -> dict[str, Any]:
    """settings.json and status.json of a run, merged (symbols, interval, periods, configs, best score …);
    a MarketlakeError naming the file when one is missing (status.json may be), not JSON or not an object."""
    run_dir = Path(run_dir)
    out = read_json_object(run_dir, SETTINGS_FILE)
    if (run_dir / STATUS_FILE).exists():
        out["status"] = read_json_object(run_dir, STATUS_FILE)
    return out


# --- 4. the loop ------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a training run produced; rl/evaluate.py takes it from here (load_policy(run_dir))."""

    run_id: str
    run_dir: Path
    best_checkpoint: Path | None  # None when the run stopped before its first validation
    status: str  # finished | interrupted
    symbols: list[str]
    interval: str
    iterations: int  # iterations completed
    env_steps: int
    best_iteration: int | None
    best_score: float | None
    skipped: dict[str, str] = field(default_factory=dict)
    signal: int | None = None
    """The signal that stopped it: SIGINT (Ctrl-C), or SIGTERM/SIGHUP (lake.errors.Terminated)."""

    @property
    def exit_code(self) -> int:
        """What the command line exits with: 0, or 128 + the signal that stopped it (the shell's convention:
        130 after Ctrl-C, 143 after SIGTERM)."""
        if self.status != "interrupted":
            return 0
        return 128 + (self.signal or 2)


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lake.context import stderr_console

    return Progress(
        TextColumn("iteration"),
        MofNCompleteColumn(),
        BarColumn(bar_width=10),
        TimeElapsedColumn(),
        TextColumn("{task.fields[line]}"),
        console=stderr_console(),  # a log or a pipe gets the whole line, not 80 columns
        disable=not enabled,
        transient=False,
    )


def train(
    root: Path | str | None,
    settings: Settings,
    overrides: Mapping[str, Any] | None = None,
    *,
    runs_dir: Path | str | None = None,
    say: Callable[[str], None] | None = None,
    progress: bool = False,
    on_iteration: Callable[[IterationStats], None] | None = None,
    on_start: Callable[[str, Path], None] | None = None,
) -> TrainResult:
    """Train PPO on the train period, choose the model on the validation period; never read the test period.

    overrides: `[train]` keys from the command line (num_iterations, seed, device, symbols, interval, …;
    None values are ignored). runs_dir: wins over the `runs_dir` setting. on_iteration: called after every
    iteration (tests use it to stop a run). on_start: called with the run id and folder once the folder
    exists (so a caller can record a run that fails later). Returns the run id and folder and the best checkpoint; after
    Ctrl-C returns status "interrupted" (exit_code 130) with the best checkpoint so far."""
    say = say or (lambda _m: None)
    root = resolve_lake_root(root)
    cfg, env_cfg, opts = read_train_settings(settings, overrides)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.torch_threads)

    # 2. data: train and validation only
    elig = train_eligibility(root, settings, opts.interval, opts.symbols, symbols_origin(settings, overrides))
    say(f"symbols ({opts.interval}): {', '.join(elig.used)}")
    for symbol, why in elig.skipped.items():
        if opts.symbols is not None:  # asked for by name: the run is not the one asked for
            log.warning(
                "skipped %s (asked for by name): %s; the run trains on %s only",
                symbol,
                why,
                ", ".join(elig.used),
            )
        else:
            say(f"skipped {symbol}: {why}")
    periods = train_period_counts(root, settings, opts.interval, elig.used)
    gaps = embargo_gaps(root, settings, opts.interval, elig.used) if settings.embargo_days is None else []
    for note in period_warnings(periods, settings, opts.interval, elig.used, gaps):
        log.warning(note)
    val_said = "validation" in periods and periods["validation"].bars == 0  # its warning is given
    # eligibility is decided above: the periods are read without asking it again
    train_data = load_period(
        root, settings, elig.used, opts.interval, "train", say=say, config=env_cfg, warn_ineligible=False
    )
    try:
        val_data = load_period(
            root,
            settings,
            elig.used,
            opts.interval,
            "validation",
            train_data.norm,
            say=say,
            config=env_cfg,
            warn_ineligible=False,
        )
    except EmptyPeriod as exc:  # a small lake: the last checkpoint is kept, said below
        say(f"validation: {exc}")
        val_data = None
    for d in (train_data, *([val_data] if val_data is not None else [])):
        say(f"{d.period}: {_iso(d.bounds[0])} .. {_iso(d.bounds[1])}, {d.n_rows} bars")
    say("test: not read (the evaluation's)")
    # copy=False: the learner copies each observation into its rollout before the next step (rl/ppo.py)
    envs = VecTradingEnv(train_data, env_cfg, num_envs=cfg.envs, seed=cfg.seed, copy=False)
    minibatch = min(cfg.batch_size, cfg.rollout_size(envs.episode_length))  # what PPO.update takes
    problem = cfg.batch_size_problem(envs.episode_length)
    if problem is not None:  # the episode length came from the data (automatic, or shortened to fit it)
        log.warning(f"batch_size {problem}; the run goes on with minibatches of {minibatch}")
    learner = PPO(envs, cfg, device, layout=(env_cfg.window, train_data.features.shape[1]))

    # 3. the run folder
    started = dt.datetime.now(dt.UTC)
    out_dir = Path(runs_dir or opts.runs_dir or default_runs_dir(root)).absolute()  # found from any folder
    run_id, run_dir = _new_run_dir(out_dir, started)
    (run_dir / CHECKPOINTS).mkdir()
    _write_json(
        run_dir / SETTINGS_FILE,
        {
            "run_id": run_id,
            "started_at": started.isoformat(),
            "lake": str(root),
            "symbols": elig.used,
            "skipped": elig.skipped,
            "interval": opts.interval,
            "periods": {
                d.period: {"start_at": _iso(d.bounds[0]), "end_at": _iso(d.bounds[1]), "bars": d.n_rows}
                for d in (train_data, *([val_data] if val_data is not None else []))
            },
            "ppo": cfg.to_json(),
            "env": env_cfg.to_dict(),
            "episode_length": envs.episode_length,
            "num_envs": envs.num_envs,
            "minibatch": minibatch,
            "obs_dim": envs.obs_dim,
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "data_settings": settings.sql_settings(),
            "config_file": str(settings.path.absolute()) if settings.path else None,  # as "lake" is
            "overrides": {k: v for k, v in (overrides or {}).items() if v is not None},
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": np.__version__,
                "machine": platform.machine(),
            },
        },
    )
    atomic_write_bytes(run_dir / NORM_FILE, (train_data.norm.to_json() + "\n").encode("utf-8"))
    say(f"run {run_id}: {run_dir}")
    say(
        f"{cfg.num_iterations} iterations of >= {cfg.episodes_per_iteration} episodes of {envs.episode_length} "
        f"steps, {envs.num_envs} envs, device {device}, {torch.get_num_threads()} torch thread(s), seed {cfg.seed}"
    )

    best = run_dir / CHECKPOINTS / "best.pt"
    state: dict[str, Any] = {"status": "running", "iterations": 0, "env_steps": 0}
    state |= {"best_iteration": None, "best_score": None, "best_checkpoint": None}

    def write_status(**kw: Any) -> None:
        state.update(kw)
        _write_json(run_dir / STATUS_FILE, state)

    write_status()
    if on_start is not None:
        on_start(run_id, run_dir)
    policy = greedy_policy(learner.agent, device)
    can_validate = val_data is not None and val_data.n_rows > 0
    if not can_validate:
        if not val_said:
            log.warning("validation period is empty: the last checkpoint is kept as the chosen one")
    elif val_data is not None and decision_steps(val_data, env_cfg) == 0:
        can_validate = False
        log.warning(
            f"validation period: none of its {val_data.n_rows} bars has {env_cfg.window} rows of history in its "
            "segment and a next bar to fill at, so no model can be scored on it: the last checkpoint is kept as "
            "the chosen one (lower train.window, or give validation more data)"
        )
    t_start = now()
    bar = _progress(progress)
    try:
        with bar:
            task = bar.add_task("train", total=cfg.num_iterations, line="")
            for _ in range(cfg.num_iterations):
                t0 = now()
                stats = learner.iterate()
                t1 = now()
                # the iteration is done: a Ctrl-C in its validation below still counts it
                state["iterations"], state["env_steps"] = (
                    stats.iteration,
                    state["env_steps"] + stats.env_steps,
                )
                record = stats.to_json()
                it = stats.iteration
                if it % cfg.validate_every == 0 or it == cfg.num_iterations:
                    learner.agent.eval()
                    val = (
                        validation_score(val_data, env_cfg, policy)
                        if val_data is not None and can_validate
                        else {"score": float("nan")}
                    )
                    learner.agent.train()
                    record |= {f"val_{k}": v for k, v in val.items()}
                    score = val["score"]
                    save_checkpoint(run_dir / CHECKPOINTS / "last.pt", learner.agent, it, score)
                    better = state["best_score"] is None or (
                        np.isfinite(score) and score > state["best_score"]
                    )
                    if better or not can_validate:
                        save_checkpoint(best, learner.agent, it, score)
                        state |= {"best_iteration": it, "best_checkpoint": str(best)}
                        state["best_score"] = score if np.isfinite(score) else None
                    record["best_score"] = state["best_score"]
                _append_jsonl(run_dir / METRICS_FILE, _finite(record))
                t2 = now()
                _append_jsonl(
                    run_dir / TIMING_FILE,
                    {
                        "iteration": it,
                        "seconds": t2 - t0,
                        "train_seconds": t1 - t0,
                        "steps_per_s": stats.env_steps / max(t1 - t0, 1e-9),
                        "elapsed": t2 - t_start,
                    },
                )
                write_status()
                bar.update(task, advance=1, line=_line(stats, stats.env_steps / max(t2 - t0, 1e-9), record))
                if on_iteration is not None:
                    on_iteration(stats)
    except KeyboardInterrupt as stop:
        stopped_by = stop.signum if isinstance(stop, Terminated) else None
        _best_from_file(best, state)  # a Ctrl-C may land between best.pt's replacement and the state's update
        write_status(status="interrupted", finished_at=dt.datetime.now(dt.UTC).isoformat())
        kept = (
            f"best checkpoint kept: {state['best_checkpoint']} (iteration {state['best_iteration']})"
            if state["best_checkpoint"]
            else (
                f"no checkpoint yet (the first validation is at iteration "
                f"{min(cfg.validate_every, cfg.num_iterations)}): nothing to evaluate"
            )
        )
        say(f"run {run_id} interrupted after {state['iterations']} iteration(s); {kept}")
        # (the command line prints the run id last, after the evaluation)
        stopped = _result(run_id, run_dir, state, elig, opts.interval)
        stopped.signal = stopped_by
        return stopped
    except BaseException as exc:
        write_status(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    write_status(status="finished", finished_at=dt.datetime.now(dt.UTC).isoformat())
    seconds = now() - t_start
    say(
        f"run {run_id} done: {state['env_steps']} env steps in {seconds:.1f}s "
        f"({state['env_steps'] / max(seconds, 1e-9):,.0f}/s); best validation score {_fmt(state['best_score'])} "
        f"at iteration {state['best_iteration']}"
    )  # (the command line prints the run id last, after the evaluation)
    return _result(run_id, run_dir, state, elig, opts.interval)


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:+.5f}"


def _finite(record: Mapping[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: written as null."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in record.items()}


def _line(stats: IterationStats, sps: float, record: Mapping[str, Any]) -> str:
    """The progress bar's numbers: env steps/s, mean episodic return, policy and value loss, entropy, KL
    (and the validation score when this iteration validated)."""
    val = record.get("val_score")
    v = f" val {val:+.4f}" if isinstance(val, float) and np.isfinite(val) else ""
    return (
        f"{sps:,.0f} steps/s ret {stats.mean_return:+.4f} pi {stats.policy_loss:+.1e} "
        f"v {stats.value_loss:.1e} ent {stats.entropy:.2f} kl {stats.approx_kl:.1e}{v}"
    )


def _result(
    run_id: str, run_dir: Path, state: dict[str, Any], elig: Eligibility, interval: str
) -> TrainResult:
    best = state["best_checkpoint"]
    return TrainResult(
        run_id=run_id,
        run_dir=run_dir,
        best_checkpoint=Path(best) if best else None,
        status=state["status"],
        symbols=elig.used,
        interval=interval,
        iterations=state["iterations"],
        env_steps=state["env_steps"],
        best_iteration=state["best_iteration"],
        best_score=state["best_score"],
        skipped=elig.skipped,
    )

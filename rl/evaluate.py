"""Judge a trained run on a period it never saw (the test period by default), beside baselines.

    evaluate(root, settings, run_dir, period="test", *, say) -> EvalReport
    evaluate_policy(policy, lake, symbols, interval, period="test", *, out=None, trained_on=None, **env keywords)

The run's chosen policy (deterministic) and three baselines, buy-and-hold, flat and a seeded random policy,
are walked by `rl.walk.walk` over every valid bar of the period, with the same costs (the run's EnvConfig)
and the same bars. Per symbol and overall: the metrics of rl/metrics.py, annualised by the bar interval and
each symbol's calendar (the overall's by `portfolio_annualisation`: on calendar days when its symbols' bars
fall at different times); and a circular moving-block bootstrap interval of the agent's Sharpe minus buy-and-hold's on
the same bars, in words when it contains 0 or when 0 is within its ends' Monte-Carlo error (borderline); the
costs each policy paid; and per symbol, its segments, the bars the features' warm-up after each gap took and
the walk's forced exits at a segment's end (`gap_summary`).
Into the run's folder go `evaluation-<period>.json` (the report), `evaluation-<period>.png` (equity curves
and drawdowns) and `evaluation-<period>.parquet` (every step of every policy, per symbol and overall:
`step_tables`, streamed into the file by `write_steps`), and a recorded evaluation's own files
`evaluations/<run id>-<period>.*` (the latest .png and .parquet are hard links to them, not second copies);
the evaluation is a row of the lake's `runs` (kind `evaluate`, parent_run_id the training run; its metrics:
`summary`). The report names the checkpoint it judged (file, iteration, score, sha256: `_load_judged`) and the
training run's status then (`parent_status`): a run still training has a best checkpoint that may change.

Overall = the portfolio of the symbols' strategies that gives each an equal share of the capital at the start
and never moves money between them (`portfolio_series`): a share's equity is carried while its symbol has no
bar; turnover and costs are the steps', weighted by their share's equity; exposure is the equity-weighted share
of the capital invested at each of its times, each symbol's position carried between its bars (a stock held
overnight is invested; a symbol whose data ended with its position closed is not); its trades the sum. An
evaluation never starts before the end of what its run trained and chose its model on (`_clear_of_training`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lake.config import Settings
from lake.errors import MarketlakeError, deferred_interrupts, is_interrupt
from lake.paths import resolve_lake_root
from lake.writer import TMP_MARK, atomic_write, atomic_write_bytes, fsync_dir
from rl import runlog
from rl.baselines import buy_and_hold, flat, random_policy
from rl.episodes import STORE_READ, EmptyPeriod, MarketData, NormStats, load_period
from rl.market import EnvConfig
from rl.metrics import (
    METRICS_VERSION,
    RESAMPLES,
    TOO_FEW_NOTE,
    Metrics,
    SharpeDiffCI,
    bootstrap_sharpe_difference,
    calendar_day_returns,
    calendar_of,
    compute_metrics,
    portfolio_annualisation,
    scored_symbols,
    symbol_bars_per_year,
)
from rl.walk import Walk, decision_steps, walk

Policy = Callable[[np.ndarray], np.ndarray]
Say = Callable[[str], None]
POLICIES = ("agent", "buy_and_hold", "flat", "random")
LABELS = {"agent": "agent", "buy_and_hold": "buy & hold", "flat": "flat", "random": "random"}
COLORS = {"agent": "tab:blue", "buy_and_hold": "tab:orange", "flat": "tab:gray", "random": "tab:green"}


class NothingToScore(MarketlakeError):
    """The evaluated period has no bar a decision can be made and filled at (every segment shorter than the
    run's window plus one): refused before anything is recorded."""


@dataclass
class Series:
    """One policy's per-step series on one scope (a symbol, or the overall portfolio)."""

    ts: np.ndarray  # int64 microseconds
    log_return: np.ndarray
    position: np.ndarray
    turnover: np.ndarray
    trades: int
    cost: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The costs paid in each step (commission and slippage), as a fraction of the equity (the share's, in
    the portfolio: weighted as turnover is)."""
    cost_of_capital: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The money the costs of each step took, as a fraction of the starting capital (the symbol's: 1; the
    portfolio's: its symbols' shares together): the step's costs as a fraction of the equity before it x
    that equity. Its sum is the costs paid as a share of the starting capital."""
    started: np.ndarray | None = None
    """The portfolio's: per time, the share of its equity whose symbol has had a step by then (its shares'
    equity before the time over the portfolio's): a share before its symbol's first bar is not counted, as
    invested or flat; exposure is sum(position) / sum(started). None: a symbol's, every step counts."""
    traded: np.ndarray | None = None
    """The portfolio's: per time, whether a symbol with a step then held a position (the steps its hit rate is
    taken over: a position carried while its market is closed returns 0 there, no miss). None: a symbol's,
    its steps with a position."""


@dataclass
class EvalReport:
    """What an evaluation found; `to_json()` is what the JSON file and the runs row hold."""

    run_id: str
    """The evaluation's own run id (a row of `runs`, kind evaluate)."""
    parent_run_id: str | None
    """The training run evaluated."""
    period: str
    interval: str
    symbols: list[str]
    bounds: tuple[str, str]
    """The period's [start_at, end_at) in ISO 8601 UTC."""
    bars_per_year: dict[str, float]
    """Per scope (overall and each symbol), what the Sharpe and Sortino are annualised by."""
    metrics: dict[str, dict[str, Metrics]]
    """scope (`overall` or a symbol) -> policy (agent, buy_and_hold, flat, random) -> metrics."""
    sharpe_ci: dict[str, SharpeDiffCI | None]
    """scope -> the bootstrap interval of agent Sharpe - buy-and-hold Sharpe (None: too few bars)."""
    seed: int
    env: dict[str, Any]
    data_snapshot: str = ""
    data_files: list[dict[str, Any]] = field(default_factory=list, repr=False)
    json_path: Path | None = None
    png_path: Path | None = None
    curves: dict[str, Series] = field(default_factory=dict, repr=False)
    """The overall series of each policy, for the picture."""
    span: tuple[str, str] | None = None
    """The first and last bar of the interval in the period (ISO 8601 UTC): the period's bounds come from
    the whole lake's range, every interval's, so its bars may cover much less of it."""
    costs: dict[str, dict[str, float]] = field(default_factory=dict)
    """scope -> policy -> the costs paid, summed over the steps as fractions of the equity at each (Judged.costs)."""
    costs_of_capital: dict[str, dict[str, float]] = field(default_factory=dict)
    """scope -> policy -> the costs paid as a fraction of the starting capital (Judged.costs_of_capital)."""
    gaps: dict[str, dict[str, Any]] = field(default_factory=dict)
    """symbol -> its segments, the bars lost to warm-up after gaps, the forced exits (`gap_summary`)."""
    evaluated_from: str | None = None
    """The start `_clear_of_training` moved the period to (ISO 8601 UTC; None: the lake's own start)."""
    clear_of_training: str = ""
    """Why it was moved (the note the evaluation prints), "" when it was not."""
    steps_path: Path | None = None
    """The per-step file written beside the JSON (`write_steps`; read it with pyarrow.parquet.read_table),
    None when nothing was written."""
    checkpoint: dict[str, Any] | None = None
    """The checkpoint judged (`_checkpoint_facts`): its file in the run folder, the training iteration and
    validation score it was saved at, and the sha256 of the file's bytes; None for a policy given in code."""
    parent_status: str | None = None
    """The training run's status when it was evaluated, in the `runs` table's words (running, finished,
    interrupted, failed; `_parent_status`); None with no training run folder."""
    ruins: dict[str, dict[str, str]] = field(default_factory=dict)
    """policy -> symbol -> the open (ISO 8601 UTC) of the bar its account was wiped out over (`Walk.ruins`):
    that symbol was held flat from then to the period's end. Empty when no account was ruined."""
    training_data: dict[str, Any] | None = None
    """Whether the lake's train and validation bars are still those the training run read
    (`_training_data_check`): its row's data_snapshot (`recorded`), the same snapshot taken now (`now`),
    `changed`, and the note said when they differ; None when it could not be compared (no training row in
    this lake, a policy given in code)."""

    @property
    def out_of_sample(self) -> bool:
        """False for the validation period: it chose the model among the run's checkpoints."""
        return self.period != "validation"

    @property
    def sentence(self) -> str:
        ci = self.sharpe_ci.get("overall")
        return ci.sentence if ci is not None else "Too few bars for a confidence interval of the Sharpe edge."

    @property
    def symbols_scored(self) -> list[str]:
        """The symbols with at least one bar to decide on: the only ones the overall holds."""
        return scored_symbols(
            {s: by["agent"] for s, by in self.metrics.items() if s != "overall" and "agent" in by}
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics_version": METRICS_VERSION,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "period": self.period,
            "interval": self.interval,
            "symbols": self.symbols,
            "symbols_scored": self.symbols_scored,
            "bounds": list(self.bounds),
            "bars_span": list(self.span) if self.span else None,
            "evaluated_from": self.evaluated_from,
            "clear_of_training": self.clear_of_training or None,
            "out_of_sample": self.out_of_sample,
            "bars": self.metrics["overall"]["agent"].bars if "overall" in self.metrics else 0,
            "bars_per_year": self.bars_per_year,
            "seed": self.seed,
            "env": self.env,
            "data_snapshot": self.data_snapshot,
            "checkpoint": self.checkpoint,
            "parent_status": self.parent_status,
            "overall": {p: m.to_dict() for p, m in self.metrics.get("overall", {}).items()},
            "per_symbol": {
                s: {p: m.to_dict() for p, m in by.items()} for s, by in self.metrics.items() if s != "overall"
            },
            "sharpe_ci": _ci_json(self.sharpe_ci.get("overall")),
            "sharpe_ci_per_symbol": {s: _ci_json(c) for s, c in self.sharpe_ci.items() if s != "overall"},
            "sentence": self.sentence,
            "costs_paid": {
                "overall": self.costs.get("overall", {}),
                "per_symbol": {s: by for s, by in self.costs.items() if s != "overall"},
            },
            "costs_of_capital": {
                "overall": self.costs_of_capital.get("overall", {}),
                "per_symbol": {s: by for s, by in self.costs_of_capital.items() if s != "overall"},
            },
            "ruins": self.ruins,
            "training_data": self.training_data,
            "gaps": self.gaps,
            "gap_lines": gap_lines(self.gaps),
            "files": {
                "json": str(self.json_path) if self.json_path else None,
                "png": str(self.png_path) if self.png_path else None,
                "steps": str(self.steps_path) if self.steps_path else None,
            },
        }


def _ci_json(ci: SharpeDiffCI | None) -> dict[str, Any] | None:
    return ci.to_dict() if ci is not None else None


# --- the walks and the series -----------------------------------------------------------------------------


def run_walks(data: MarketData, config: EnvConfig, agent: Policy, *, seed: int) -> dict[str, Walk]:
    """The agent and the three baselines walked over the same bars with the same costs."""
    policies: dict[str, Policy] = {
        "agent": agent,
        "buy_and_hold": buy_and_hold(config),
        "flat": flat(config),
        "random": random_policy(config, seed),
    }
    walks = {name: walk(data, config, p) for name, p in policies.items()}
    ref = walks["agent"]
    for name, w in walks.items():
        if not (np.array_equal(w.ts, ref.ts) and np.array_equal(w.symbol_idx, ref.symbol_idx)):
            raise MarketlakeError(f"evaluation: the {name} walk did not cover the same bars as the agent's")
    return walks


def _cost_of_capital(log_return: np.ndarray, cost_prev: np.ndarray) -> np.ndarray:
    """One strategy's steps (in time order, equity 1 at the start): the money each step's costs took, over
    the starting capital: the costs as a fraction of the equity before the step x that equity."""
    return cost_prev * np.exp(np.cumsum(log_return) - log_return)


def symbol_series(w: Walk, i: int) -> Series:
    m = w.symbol_idx == i
    turnover = w.turnover[m]
    return Series(
        w.ts[m],
        w.log_return[m],
        w.position[m],
        turnover,
        int(np.count_nonzero(turnover)),
        w.cost[m],
        _cost_of_capital(w.log_return[m], w.cost_prev[m]),
    )


def portfolio_series(w: Walk) -> Series:
    """The portfolio of the symbols' strategies, one step per distinct bar time of any symbol: each symbol's
    strategy gets an equal share of the capital at the start, and no money moves between the shares
    afterwards (no rebalancing, whose trades nobody would pay for). A share's equity is carried unchanged
    through the times its symbol has no step (a stock's share while its market is closed, a symbol's
    share before its first bar), and the portfolio's equity is the sum of the shares'. (The mean of the
    simple returns of only the symbols with a step at a time would hold the whole capital in crypto while
    stocks are closed, then add a stock's overnight move at 1/N besides: more than the capital.)
    position: at each time, the share of the capital invested: every symbol's |position| held then (its step's
    at that time, else its latest step's, carried between its bars: a stock held overnight is invested while
    its market is closed; 0 before its first step, and after its last step the position that step left, 0 if
    it closed), weighted by its share's equity before the time over the portfolio's; exposure is its sum over
    the times over the sum of `started` (a share before its symbol's first bar counts neither way). turnover and cost: the steps' turnover and cost, weighted alike, as fractions of
    the portfolio's equity then. cost_of_capital: the money the steps' costs took, over the portfolio's
    starting capital."""
    if len(w) == 0:
        empty = np.zeros(0)
        return Series(np.zeros(0, np.int64), empty, empty, empty, 0, empty, empty, empty)
    ts = np.unique(w.ts)
    at = np.searchsorted(ts, w.ts)  # each step's place on the portfolio's time line
    symbols = np.unique(w.symbol_idx)
    equity = np.zeros(len(ts))  # sum of the shares' equities after each time (times the number of shares)
    invested = np.zeros(len(ts))  # sum of the shares' equities before each time x |position| held then
    traded = np.zeros(len(ts), bool)  # a symbol with a step at the time held a position then
    started = np.zeros(len(ts))  # sum of the equities before each time of the shares whose symbol has begun
    before = np.zeros(len(w))  # each step's share equity before it (same scale)
    for i in symbols:
        rows = np.flatnonzero(w.symbol_idx == i)
        rows = rows[np.argsort(w.ts[rows], kind="stable")]
        log_eq = np.cumsum(w.log_return[rows])  # the share's log equity after each of its steps
        before[rows] = np.exp(log_eq - w.log_return[rows])
        last = np.searchsorted(w.ts[rows], ts, side="right") - 1  # its latest step at or before each time
        prior = np.searchsorted(w.ts[rows], ts, side="left") - 1  # its latest step before each time
        equity += np.where(last >= 0, np.exp(log_eq[np.maximum(last, 0)]), 1.0)
        held = np.where(last >= 0, np.abs(w.position[rows])[np.maximum(last, 0)], 0.0)
        share = np.where(prior >= 0, np.exp(log_eq[np.maximum(prior, 0)]), 1.0)
        invested += held * share
        started += np.where(last >= 0, share, 0.0)
        traded[at[rows[w.position[rows] != 0]]] = True
    prev = np.concatenate([[float(len(symbols))], equity[:-1]])  # the portfolio's equity before each time
    weight = before / prev[at]
    return Series(
        ts=ts,
        log_return=np.diff(np.log(equity), prepend=math.log(len(symbols))),
        position=invested / prev,
        turnover=np.bincount(at, weights=weight * w.turnover, minlength=len(ts)),
        trades=int(np.count_nonzero(w.turnover)),
        cost=np.bincount(at, weights=weight * w.cost, minlength=len(ts)),
        cost_of_capital=np.bincount(at, weights=before * w.cost_prev, minlength=len(ts)) / len(symbols),
        started=started / prev,
        traded=traded,
    )


def _metrics(s: Series, per_year: float, calendar_days: bool = False) -> Metrics:
    return compute_metrics(
        s.log_return,
        s.position,
        s.turnover,
        bars_per_year=per_year,
        trades=s.trades,
        ts=s.ts,
        calendar_days=calendar_days,
        tradable=s.started,
        traded=s.traded,
    )


def _ci(
    agent: Series, bh: Series, per_year: float, seed: int, resamples: int, calendar_days: bool = False
) -> SharpeDiffCI | None:
    """The interval on the series the Sharpe is taken on: the steps', or their calendar days'."""
    a, b = agent.log_return, bh.log_return
    if calendar_days:
        a, b = calendar_day_returns(agent.ts, a), calendar_day_returns(bh.ts, b)
    if len(a) < 3:
        return None
    return bootstrap_sharpe_difference(
        a, b, bars_per_year=per_year, seed=seed, resamples=resamples, unit="days" if calendar_days else "bars"
    )


@dataclass
class Judged:
    """Everything `judge_all` computes: the numbers, the series they come from, and the walks."""

    metrics: dict[str, dict[str, Metrics]]
    sharpe_ci: dict[str, SharpeDiffCI | None]
    bars_per_year: dict[str, float]
    series: dict[str, dict[str, Series]]
    """scope (`overall` or a symbol) -> policy -> its per-step series."""
    walks: dict[str, Walk]

    @property
    def curves(self) -> dict[str, Series]:
        """The overall series of each policy."""
        return self.series["overall"]

    @property
    def costs(self) -> dict[str, dict[str, float]]:
        """scope -> policy -> the costs paid over the period: the sum of the steps' costs, each a fraction of
        the equity then (the portfolio's: weighted by the shares' equity, as turnover is)."""
        return {scope: {p: float(s.cost.sum()) for p, s in by.items()} for scope, by in self.series.items()}

    @property
    def costs_of_capital(self) -> dict[str, dict[str, float]]:
        """scope -> policy -> the costs paid over the period as a fraction of the starting capital: the sum
        of each step's costs x the equity before it, over the equity at the start (the portfolio's: its
        symbols' shares together)."""
        return {
            scope: {p: float(s.cost_of_capital.sum()) for p, s in by.items()}
            for scope, by in self.series.items()
        }


def judge_all(
    data: MarketData,
    config: EnvConfig,
    agent: Policy,
    *,
    session: str = "regular",
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> Judged:
    """The walks, the series per scope and policy, their metrics, the bootstrap intervals per scope and
    the bars per year per scope. No files, no lake: the numbers only."""
    walks = run_walks(data, config, agent, seed=seed)
    calendars = [calendar_of(a) for a in data.asset_classes]
    per_year: dict[str, float] = {}
    metrics: dict[str, dict[str, Metrics]] = {}
    cis: dict[str, SharpeDiffCI | None] = {}
    # the overall has a step at every bar time of any symbol scored: annualised on their common grid, or
    # on calendar days when their bars fall at different times (a stock's 14:30 beside a crypto's 00:00)
    ref = walks["agent"]
    scored = [i for i in range(len(data.symbols)) if bool((ref.symbol_idx == i).any())]
    overall = portfolio_annualisation(
        [ref.ts[ref.symbol_idx == i] for i in scored], [calendars[i] for i in scored], data.interval, session
    )
    per_year["overall"] = overall.per_year
    curves = {name: portfolio_series(w) for name, w in walks.items()}
    series = {"overall": curves}
    metrics["overall"] = {
        name: _metrics(s, per_year["overall"], overall.calendar_days) for name, s in curves.items()
    }
    cis["overall"] = _ci(
        curves["agent"], curves["buy_and_hold"], per_year["overall"], seed, resamples, overall.calendar_days
    )
    for i, symbol in enumerate(data.symbols):
        per_year[symbol] = symbol_bars_per_year(
            ref.ts[ref.symbol_idx == i], calendars[i], data.interval, session
        )
        series[symbol] = {name: symbol_series(w, i) for name, w in walks.items()}
        metrics[symbol] = {name: _metrics(s, per_year[symbol]) for name, s in series[symbol].items()}
        cis[symbol] = _ci(
            series[symbol]["agent"], series[symbol]["buy_and_hold"], per_year[symbol], seed, resamples
        )
    return Judged(metrics, cis, per_year, series, walks)


def judge(
    data: MarketData,
    config: EnvConfig,
    agent: Policy,
    *,
    session: str = "regular",
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> tuple[
    dict[str, dict[str, Metrics]], dict[str, SharpeDiffCI | None], dict[str, float], dict[str, Series]
]:
    """Metrics per scope and policy, bootstrap intervals per scope, bars per year per scope, and the
    overall series per policy (`judge_all`'s)."""
    j = judge_all(data, config, agent, session=session, seed=seed, resamples=resamples)
    return j.metrics, j.sharpe_ci, j.bars_per_year, j.curves


# --- gaps and the per-step table --------------------------------------------------------------------------

WARMUP_BARS = 60
"""The rows at the start of every segment whose features still lack history (bar_features' `warmup`,
segment_pos < 60): never read into an episode, so a gap costs them on top of the missing bars."""


def period_bar_counts(
    root: str | os.PathLike[str] | None,
    settings: Settings,
    symbols: list[str],
    interval: str,
    bounds: tuple[int, int],
    *,
    from_store: bool = False,
) -> dict[str, tuple[int, int]]:
    """The in-session bars of each symbol whose whole life lies in the period [bounds) (microseconds), and
    the segments they fall in: what the period held before the features' warm-up after each gap
    (sql/rl/period_bar_counts.sql); a segment the warm-up took whole is one of them. `from_store`: the
    period was read from the fresh feature store, so its rows are counted there (the same rows, a scan of
    the symbols' files; the live `bar_features` computes every symbol's windows over its whole history)."""
    import lake
    from lake.connect import sql_dir, views_needed

    name = "period_bar_counts_store.sql" if from_store else "period_bar_counts.sql"
    sql = (sql_dir() / "rl" / name).read_text(encoding="utf-8")
    params = {
        "symbols": list(symbols),
        "interval": interval,
        "start_at": _instant(bounds[0]),
        "end_at": _instant(bounds[1]),
    }

    def read() -> list[tuple[Any, ...]]:
        con = lake.connect(root, read_only=True, settings=settings, views=views_needed([sql]))
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    return {str(r[0]): (int(r[1]), int(r[2])) for r in lake.consistent(root, read)}


def gap_summary(
    data: MarketData,
    config: EnvConfig,
    walks: Mapping[str, Walk],
    lake_bars: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per symbol, what the gaps in its data took from the evaluation: its segments (a gap, or a dropped row,
    starts a new one) and how many are too short to trade (fewer than window + 1 rows); `bars_in_period`
    (`lake_bars`: its in-session bars in the period) and `warmup_lost`, those of them not read because the
    features' warm-up after a gap (the first WARMUP_BARS rows of every segment) had them (and, rarely, a row
    the reader dropped for an incomplete feature: it too breaks the segment); `history_only`,
    the rows read that no step earns over (each segment's first `window` rows, whole too-short segments);
    `steps`; and per policy the `forced_exits`: positions closed at a segment's end because a gap followed
    (the walk's rule, rl/walk.py), and the `session_closes`: positions closed at a session's last bar by
    `hold_overnight = false` (elsewhere than at such a segment's end; 0 when positions are held overnight).
    Both are steps with an exit price (Walk.exit_price). `lake_bars`: symbol -> (its bars in the period, the
    segments they fall in: `period_bar_counts`); a segment none of whose rows was read (shorter than the
    warm-up, which took it whole) is still a segment, its gap a gap, and it is too short to trade
    (`warmup_segments` counts them); without `lake_bars`, the segments of the rows read. The trading rules
    are not changed by this: it only counts."""
    first, end = data.segment_bounds()
    lengths = end - first
    seg_sym = data.symbol_idx[first] if len(first) else np.zeros(0, np.int32)
    walked = lengths >= config.window + 1
    last = end - 1
    followed = np.zeros(len(first), dtype=bool)
    if len(first):
        nxt = np.minimum(end, data.n_rows - 1)
        followed = (end < data.n_rows) & (data.symbol_idx[nxt] == data.symbol_idx[last])
    close_rows = np.zeros(data.n_rows, dtype=bool)
    close_rows[last[walked & followed]] = True
    out: dict[str, dict[str, Any]] = {}
    for i, symbol in enumerate(data.symbols):
        mine = seg_sym == i
        rows = int(lengths[mine].sum())
        steps = int(np.count_nonzero(walks["agent"].symbol_idx == i)) if "agent" in walks else 0
        exits, session_closes = {}, {}
        for name, w in walks.items():
            closed = (w.symbol_idx == i) & ~np.isnan(w.exit_price)
            at_gap = close_rows[w.row]
            exits[name] = int(np.count_nonzero(closed & at_gap))
            session_closes[name] = int(np.count_nonzero(closed & ~at_gap))
        read = int(np.count_nonzero(mine))
        in_lake, segments = (None, read) if lake_bars is None else lake_bars.get(symbol, (rows, read))
        segments = max(int(segments), read)  # (a row the reader dropped breaks a segment too: rarely more)
        out[symbol] = {
            "segments": segments,
            "gaps": max(segments - 1, 0),
            "too_short": int(np.count_nonzero(mine & ~walked)) + segments - read,
            "warmup_segments": segments - read,
            "bars_in_period": in_lake,
            "warmup_lost": None if in_lake is None else max(in_lake - rows, 0),
            "rows": rows,
            "history_only": rows - steps,
            "steps": steps,
            "window": config.window,
            "forced_exits": exits,
            "session_closes": session_closes,
        }
    return out


def gap_lines(gaps: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per symbol: its segments, the bars lost to warm-up after gaps, the forced exits at segment
    ends before a gap, and (when any) the positions closed at sessions' ends by `hold_overnight = false`."""
    lines = []
    for symbol, g in gaps.items():
        segs, n_gaps, short = g["segments"], g["gaps"], g["too_short"]
        head = f"{symbol}: {segs} segment{'s' if segs != 1 else ''}"
        head += f" ({n_gaps} gap{'s' if n_gaps != 1 else ''})" if n_gaps else " (no gap)"
        whole = int(g.get("warmup_segments") or 0)
        if g.get("warmup_lost") is not None:
            lost = (
                f"{g['warmup_lost']} of its {g['bars_in_period']} bars in the period lost to warm-up "
                f"({WARMUP_BARS} a segment"
                + (f"; {whole} segment{'s' if whole != 1 else ''} lost whole)" if whole else ")")
            )
        else:
            lost = "bars lost to warm-up unknown"
        history = f"{g['history_only']} history only ({g['window']} a segment"
        history += f"; {short} segment{'s' if short != 1 else ''} too short to trade)" if short else ")"
        exits = {p: n for p, n in g["forced_exits"].items() if p != "flat"}
        if any(exits.values()):
            forced = "forced exits at segment ends before a gap: " + ", ".join(
                f"{LABELS.get(p, p)} {n}" for p, n in exits.items()
            )
        else:
            forced = "no forced exit at a segment end before a gap"
        closes = {p: n for p, n in (g.get("session_closes") or {}).items() if p != "flat"}
        if any(closes.values()):
            forced += "; closed at session ends (hold_overnight = false): " + ", ".join(
                f"{LABELS.get(p, p)} {n}" for p, n in closes.items()
            )
        lines.append(f"{head}; {lost}, {history}; {forced}")
    return lines


STEP_COLUMNS = (
    "ts",
    "symbol",
    "policy",
    "segment",
    "position",
    "fill_price",
    "exit_price",
    "log_return",
    "cost",
    "cost_of_capital",
    "turnover",
    "equity",
)


def step_tables(data: MarketData, judged: Judged) -> Iterator[Any]:
    """Every step of every policy, per symbol and for the overall portfolio (symbol `overall`), as pyarrow
    Tables of STEP_COLUMNS, one per policy and scope, in the order of the file: (policy, symbol, ts), each
    policy's overall before its symbols. Made one at a time (`write_steps` streams them into the file, so
    neither the whole table nor the file is ever in memory); `pyarrow.concat_tables` of them is the file's
    table. Columns:

    - ts: the open (UTC) of the bar the step's return is earned over (its order fills at that open);
    - segment: the symbol's segment (0, 1, ... in the period; a gap starts the next), null for overall;
    - position: the side held over the step (-1, 0, 1); overall: the exposure, |position| weighted by the
      shares' equity as a fraction of the portfolio's;
    - fill_price: the price the step's order filled at (the open, moved by slippage), null when nothing
      filled at the open (the side did not change there);
    - exit_price: the price a forced exit at the bar's close sold at (the close moved against the trader by
      slippage: `hold_overnight = false` at a session's last bar, or a segment's end before a gap), null when
      none; a step may have both (an entry at the open closed at the close), and its cost is in `cost`;
    - log_return: the net log change of equity over the step (after costs);
    - cost: the costs paid in the step (commission and slippage), as a fraction of the equity: the open's of
      the equity at the open, plus a forced exit's of the equity at the close before it; turnover: the
      weight traded; overall: both weighted as exposure;
    - cost_of_capital: the money the step's costs took as a fraction of the starting capital (the symbol's
      strategy's alone; overall: the portfolio's), the step's costs x the equity before it / the equity at
      the start;
    - equity: after the step, 1 at the start (per symbol: that symbol's strategy alone).

    So the JSON's total_return is equity's last value - 1 = expm1(sum(log_return)), costs_paid is the sum
    of cost and costs_of_capital the sum of cost_of_capital, per symbol and policy (and overall)."""
    for policy in POLICIES:
        if policy not in judged.walks:
            continue
        s = judged.series["overall"][policy]
        yield _step_table(
            "overall",
            policy,
            ts=s.ts,
            segment=np.full(len(s.ts), -1, np.int64),
            position=s.position,
            fill_price=np.full(len(s.ts), np.nan),
            exit_price=np.full(len(s.ts), np.nan),
            log_return=s.log_return,
            cost=s.cost,
            cost_of_capital=s.cost_of_capital,
            turnover=s.turnover,
            equity=np.exp(np.cumsum(s.log_return)),
        )
        w = judged.walks[policy]
        for i, symbol in enumerate(data.symbols):
            m = np.flatnonzero(w.symbol_idx == i)
            if not len(m):
                continue
            seg = w.segment_id[m]
            yield _step_table(
                symbol,
                policy,
                ts=w.ts[m],
                segment=seg - data.segment_id[np.flatnonzero(data.symbol_idx == i)[0]],
                position=w.position[m],
                fill_price=w.fill_price[m],
                exit_price=w.exit_price[m],
                log_return=w.log_return[m],
                cost=w.cost[m],
                cost_of_capital=_cost_of_capital(w.log_return[m], w.cost_prev[m]),
                turnover=w.turnover[m],
                equity=np.exp(np.cumsum(w.log_return[m])),
            )


def step_schema() -> Any:
    """The pyarrow schema of the per-step file (STEP_COLUMNS)."""
    import pyarrow as pa

    floats = [(c, pa.float64()) for c in STEP_COLUMNS[4:]]
    return pa.schema(
        [("ts", pa.timestamp("us", tz="UTC")), ("symbol", pa.string()), ("policy", pa.string())]
        + [("segment", pa.int64()), *floats]
    )


def _step_table(symbol: str, policy: str, **values: np.ndarray) -> Any:
    """The steps of one policy on one scope as a Table of `step_schema()`: a null segment where it is < 0,
    a null fill or exit price where it is NaN."""
    import pyarrow as pa

    n = len(values["ts"])
    columns: dict[str, Any] = {
        "ts": pa.array(np.asarray(values["ts"], np.int64), pa.timestamp("us", tz="UTC")),
        "symbol": pa.repeat(pa.scalar(symbol, pa.string()), n),
        "policy": pa.repeat(pa.scalar(policy, pa.string()), n),
    }
    segment = np.asarray(values["segment"], np.int64)
    columns["segment"] = pa.array(segment, pa.int64(), mask=segment < 0)
    for name in STEP_COLUMNS[4:]:
        v = np.asarray(values[name], np.float64)
        columns[name] = pa.array(v, pa.float64(), mask=np.isnan(v) if name.endswith("_price") else None)
    return pa.table(columns, schema=step_schema())


def write_steps(path: Path, data: MarketData, judged: Judged) -> None:
    """The per-step file (`step_tables`) streamed into `path` one policy and scope at a time (never the
    whole table nor the file in memory): written under a temporary name beside it, fsynced, renamed over it
    and its folder fsynced, as the run's other files (lake.writer.atomic_write_bytes)."""
    import pyarrow.parquet as pq

    def write(f: BinaryIO) -> None:
        with pq.ParquetWriter(f, step_schema(), compression="zstd") as writer:
            for table in step_tables(data, judged):
                writer.write_table(table)

    atomic_write(path, write)


def _same_file(src: Path, dst: Path) -> None:
    """Make `dst` the file `src` is: a hard link (no second copy on disk) made under a temporary name and
    renamed over `dst`, so a reader sees the old file or the new one; where a hard link cannot be made (a
    file system without them), a copy streamed from `src`, fsynced. The files are never changed in place
    (each write replaces its name by a rename), so a later evaluation replacing `dst` leaves `src` as it
    was."""
    tmp = dst.with_name(f"{dst.name}{TMP_MARK}{uuid.uuid4().hex}")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            with open(src, "rb") as a, open(tmp, "wb") as b:
                shutil.copyfileobj(a, b, 1 << 20)
                b.flush()
                os.fsync(b.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dst.parent)


# --- the evaluation ---------------------------------------------------------------------------------------


def _instant(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))


def _iso(us: int) -> str:
    return _instant(us).isoformat()


def ruins_of(walks: Mapping[str, Walk]) -> dict[str, dict[str, str]]:
    """policy -> symbol -> the open (ISO 8601 UTC) of the bar its account was wiped out over, for the
    policies that ruined one (EvalReport.ruins)."""
    return {
        name: {sym: _iso(us) for sym, us in sorted(w.ruins().items())}
        for name, w in walks.items()
        if w.ruins()
    }


def _span(data: MarketData) -> tuple[str, str] | None:
    return (_iso(int(data.ts.min())), _iso(int(data.ts.max()))) if data.n_rows else None


def _period_line(data: MarketData, decisions: int | None = None, window: int | None = None) -> str:
    """What an evaluation reads: the period (its bounds come from the whole lake's range, every interval's),
    the span of the bars it holds of this interval, the bars of each symbol read (after the warm-up of each
    segment's features: the gap lines' `bars_in_period` count them before it), and how many of them are
    decided on (the table's `bars`: the first `window` rows of each segment are only its history)."""
    counts = np.bincount(data.symbol_idx, minlength=len(data.symbols))
    each = ", ".join(f"{s} {int(n)}" for s, n in zip(data.symbols, counts, strict=True))
    span = _span(data)
    held = f"its {data.interval} bars {span[0]} .. {span[1]}" if span else ""
    decided = (
        f" read, after each segment's features' warm-up (the gap lines count the period's bars before it; "
        f"{decisions} decided on, the table's bars: the first {window} of each segment are its history only)"
        if decisions is not None and window is not None
        else ""
    )
    return (
        f"{data.period}: {_iso(data.bounds[0])} .. {_iso(data.bounds[1])} ({held}), {data.n_rows} bars"
        f"{decided}: {each}"
    )


def evaluate(
    root: str | os.PathLike[str] | None,
    settings: Settings,
    run_dir: str | os.PathLike[str],
    period: str = "test",
    *,
    say: Say | None = None,
    policy: Policy | None = None,
    env_config: EnvConfig | None = None,
    norm: NormStats | None = None,
    symbols: list[str] | None = None,
    interval: str | None = None,
    seed: int | None = None,
    resamples: int = RESAMPLES,
    record: bool = True,
    write: bool = True,
    note: Say | None = None,
) -> EvalReport:
    """Evaluate the run in `run_dir` on `period` (test or validation) beside the baselines.

    By default the run's chosen policy, EnvConfig, normalisation, symbols and interval come from its folder
    (rl.train.load_policy / read_run). `policy` (with optionally `env_config`, `norm`, `symbols`,
    `interval`) evaluates any policy instead; without `env_config` it is the run's, else the trading settings
    of `settings` ([train], as the env builds it: rl.env.settings_with); without `norm`, the train period's
    statistics are computed. `seed` (default: the run's [train] seed, else 0) seeds the random baseline and
    the bootstrap. Writes evaluation-<period>.json and .png into `run_dir`; records an `evaluate` run unless
    record=False; write=False (with record=False) writes nothing either: the report only, the run folder's
    files (a recorded evaluation's, and the latest names linked to them) left as they are. (A policy of your
    own, with no run folder: `evaluate_policy`.)
    `say`: progress; `note` (default: `say`): what changes how the result is to be read (the run did not
    finish, was trained on another lake, the period moved clear of its training, the run's own data or
    trading settings used where `settings` differ), each a line starting "note: ". The command line prints
    the notes even with --quiet, which silences `say`.
    """
    say = say or (lambda _m: None)
    note = note or say
    if period not in ("test", "validation"):
        raise MarketlakeError(f"evaluate: period must be test or validation, got {period!r}")
    root = resolve_lake_root(root)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MarketlakeError(f"evaluate: run folder {run_dir} does not exist")
    saved = _saved_run(run_dir)
    parent = saved.get("run_id") or (run_dir.name if saved else None)
    for line in _provenance_notes(saved, root, period):
        note(line)
    given = settings
    if isinstance(saved.get("data_settings"), dict):  # the periods and rules the run was trained with
        own = settings.with_sql_settings(saved["data_settings"])
        differs = _own_data_note(own, settings)
        if differs:
            note(differs)
        settings = own
    env_given = env_config is not None
    judged: dict[str, Any] | None = None
    training_data: dict[str, Any] | None = None
    if policy is None:
        training_data = _training_data_check(root, settings, run_dir, saved)
        if training_data is not None and training_data["changed"]:
            note(training_data["note"])
        policy, saved_env, saved_norm, judged = _load_judged(run_dir)
        env_config = env_config or saved_env
        norm = norm or saved_norm
    parent_status = _parent_status(run_dir, saved) if saved else None
    if env_config is None:
        env_config = EnvConfig(**saved["env"]) if "env" in saved else _trading_settings(settings, {})[1]
    if not env_given and "env" in saved:  # the run's own costs and rules, whatever `settings` say: said
        differs = _own_trading_note(env_config, given)
        if differs:
            note(differs)
    symbols = symbols or saved.get("symbols")
    interval = interval or saved.get("interval") or "1m"
    env_config.check_interval(interval)  # (the env's one rule, before anything is read)
    if seed is None:
        seed = int((saved.get("ppo") or {}).get("seed", settings.train.get("seed", 0)) or 0)
    clear_from, moved = _clear_of_training(
        saved, _lake_periods(root, settings, period), period, _embargo_after(root, settings)
    )
    config = {
        "period": period,
        "symbols": symbols,
        "interval": interval,
        "seed": seed,
        "resamples": resamples,
        "env": env_config.to_dict(),
        "evaluated_run_dir": str(run_dir),
        "data_settings": settings.sql_settings(),
    }
    data = _read_evaluated(root, settings, symbols, interval, period, env_config, norm, clear_from, moved)

    def work(run_id: str) -> EvalReport:
        report, steps = _report(
            root, settings, data, env_config, policy, run_id=run_id, parent=parent, seed=seed,
            resamples=resamples, clear_from=clear_from, moved=moved, say=say, note=note,
        )  # fmt: skip
        report.checkpoint, report.parent_status = judged, parent_status
        report.training_data = training_data
        if record or write:
            _write(report, data, steps, run_dir, run_id if record else None, say)
        return report

    if not record:
        return work(runlog.new_run_id("evaluate"))
    with runlog.recorded_run(root, "evaluate", config, run_dir=run_dir, parent_run_id=parent, say=say) as run:
        report = work(run.run_id)
        run.data_snapshot, run.data_files = report.data_snapshot, report.data_files
        run.metrics = summary(report)
    return report


TRADING_KEYS = (
    "commission",
    "slippage",
    "slippage_bps",
    "slippage_range_fraction",
    "allow_short",
    "hold_overnight",
)
"""The [train] settings an evaluation trades by that a reader could expect the given settings to change, each
named when they differ from the run's own (`_own_trading_note`): EnvConfig's fields but `window` (the
model's input: it can be no other) and `episode_length` (the evaluation walks every segment whole)."""


def _own_data_note(own: Settings, given: Settings) -> str | None:
    """A note naming each data setting (the SQL settings: periods, eligibility, features) whose value in
    `given` differs from the run's own (`own`), which the evaluation uses (its periods and bars are those the
    model was trained and chosen on); None when they agree."""
    mine, yours = own.sql_settings(), given.sql_settings()
    diffs = [
        f"{_data_key(key)} {_data_value(mine.get(key))} (your settings say {_data_value(yours.get(key))})"
        for key in mine
        if mine.get(key) != yours.get(key)
    ]
    if not diffs:
        return None
    return "note: evaluating with the run's own data settings (periods, eligibility): " + ", ".join(diffs)


def _data_key(key: str) -> str:
    """A data setting (a key of Settings.sql_settings) in the settings file's words: [splits] method and its
    cut points, [data] the rest."""
    if key == "split_method":
        return "splits.method"
    if key in ("train_fraction", "validation_fraction", "train_end", "validation_end") or key.startswith(
        "embargo_"
    ):
        return f"splits.{key}"
    return f"data.{key}"


def _data_value(value: Any) -> str:
    """A data setting's value as the file writes it (a date as its day), `unset` for none."""
    return "unset" if value is None else _toml(value)


def _training_data_check(
    root: Path, settings: Settings, run_dir: Path, saved: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Whether the lake's train and validation data are still what the training run read: the data
    snapshot its `runs` row recorded beside the same snapshot taken now (`training_snapshot`, with the run's
    own data settings, `settings`, and its recorded periods: only the lake files can differ). A re-import
    that changed a bar of those periods changes it; the model and its normalisation statistics then come from
    other bars than those the lake holds. Returns the hashes (`recorded`, `now`), `changed`, the lake files
    added, removed or rewritten since (`files`, paths under the datasets folder) and the `note`; None when it
    cannot be compared: no run id or no data settings in the folder (a run recorded before they were kept),
    no training row with a snapshot in this lake, or no snapshot to take now."""
    run_id = saved.get("run_id")
    if not isinstance(run_id, str) or not isinstance(saved.get("data_settings"), dict):
        return None
    try:
        recorded = runlog.recorded_snapshot(root, run_id)
        if recorded is None:
            return None
        now = training_snapshot(root, settings, run_dir)
    except MarketlakeError:  # another lake's run, or its periods hold no file any more: nothing to compare
        return None
    then_hash, then_files = recorded
    changed = now.hash != then_hash
    files: list[str] = []
    if changed and then_files is not None:
        before = {str(f.get("path")): f.get("sha256") for f in then_files if isinstance(f, dict)}
        after = {str(f["path"]): f["sha256"] for f in now.files}
        files = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    said = ""
    if changed:
        which = ""
        if files:
            shown = ", ".join(files[:2]) + (f" and {len(files) - 2} more" if len(files) > 2 else "")
            which = f"; its periods' lake files rewritten, added or removed since: {shown}"
            ends = [r[1] for r in map(runlog.file_range, files) if r is not None]
            last = max((b[1] for b in _read_bounds(saved).values()), default=None)
            if last is not None and (len(ends) < len(files) or any(e > last for e in ends)):
                which += " (a file that also holds bars after its periods changes with those too)"
        said = (
            f"note: the train/validation data of run {run_id} changed since it trained (its normalisation "
            "statistics and model come from other bars than the lake holds now: bars of its periods were "
            f"re-imported, revised or added; data_snapshot {then_hash[:12]} then, {now.hash[:12]} now{which})"
        )
    return {"recorded": then_hash, "now": now.hash, "changed": changed, "files": files, "note": said}


def _toml(value: Any) -> str:
    """A setting's value as the settings file writes it; a float as short as it reads back the same (`:g`
    when it keeps the value, else Python's shortest round-trip form: 0.0001234567 is not 0.000123457)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def _slippage_text(env: EnvConfig) -> str:
    if env.slippage == "range":
        return f"range, slippage_range_fraction {_toml(env.slippage_range_fraction)}"
    return f"bps, slippage_bps {_toml(env.slippage_bps)}"


def _own_trading_note(run_env: EnvConfig, settings: Settings) -> str | None:
    """A note naming each trading setting whose value in `settings` ([train], as an env builds it) differs
    from the run's own, which the evaluation uses (the model was trained and chosen with those costs and
    rules); None when they agree. A slippage parameter of the mode neither uses is not named."""
    try:
        yours = EnvConfig.from_settings(dict(settings.train))
    except MarketlakeError:  # (the settings were checked when read; nothing to compare with otherwise)
        return None
    unused = {"bps": "slippage_range_fraction", "range": "slippage_bps"}
    same_mode = run_env.slippage == yours.slippage
    skip = {unused[run_env.slippage]} if same_mode else {"slippage_bps", "slippage_range_fraction"}
    diffs = [
        f"{key} {_toml(getattr(run_env, key))} (your settings say {_toml(getattr(yours, key))})"
        if key != "slippage"
        # the modes differ: each side's own parameter, never one its mode does not use
        else f"slippage {_slippage_text(run_env)} (your settings say {_slippage_text(yours)})"
        for key in TRADING_KEYS
        if key not in skip and getattr(run_env, key) != getattr(yours, key)
    ]
    if not diffs:
        return None
    return "note: evaluating with the run's own trading settings: " + ", ".join(diffs)


def costs_label(env: Mapping[str, Any]) -> str:
    """The costs and rules an evaluation traded with, for the table's title (its JSON's `env`)."""
    commission = env.get("commission")
    text = f"commission {_toml(commission)}" if commission is not None else "commission ?"
    if env.get("slippage") == "range":
        text += f", slippage {_toml(env.get('slippage_range_fraction'))} of the fill bar's range"
    else:
        text += f", slippage {_toml(env.get('slippage_bps'))} bps of the open"
    if env.get("allow_short"):
        text += ", shorting allowed"
    if env.get("hold_overnight") is False:
        text += ", hold_overnight = false"
    return text


CHECKPOINT = "best"
"""The checkpoint of a training run an evaluation judges: `checkpoints/best.pt`, its chosen model."""


def _checkpoint_facts(path: Path) -> dict[str, Any] | None:
    """What identifies a checkpoint file: its name in the run folder, the training iteration and validation
    score it holds, and the sha256 of its bytes (all from one read of the file); None when there is no file
    (load_policy says what is wrong with it, as with one it cannot read: iteration and score None then)."""
    import torch

    try:
        raw = path.read_bytes()
    except OSError:
        return None
    iteration: int | None = None
    score: float | None = None
    try:
        ckpt = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        iteration = int(ckpt["iteration"])
        score = float(ckpt["score"])
    except Exception:  # unreadable: load_policy names the damage
        pass
    return {
        "file": f"{path.parent.name}/{path.name}",
        "iteration": iteration,
        "score": score if score is not None and math.isfinite(score) else None,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def _load_judged(run_dir: Path, tries: int = 5) -> tuple[Policy, EnvConfig, NormStats, dict[str, Any]]:
    """The run's chosen policy (rl.train.load_policy) and the facts of the checkpoint file it was loaded from
    (`_checkpoint_facts`): the file read before and after the load must be the same bytes, else a training
    still running replaced it meanwhile (a new best), and it is loaded again."""
    from rl.train import CHECKPOINTS, load_policy

    path = run_dir / CHECKPOINTS / f"{CHECKPOINT}.pt"
    for _ in range(tries):
        before = _checkpoint_facts(path)
        policy, env, norm = load_policy(run_dir, CHECKPOINT)
        after = _checkpoint_facts(path)
        if before is not None and before == after:
            return policy, env, norm, after
    raise MarketlakeError(
        f"evaluate: {path} was replaced {tries} times while it was read (its training run is still saving new "
        "best models): evaluate again once it has finished"
    )


def _parent_status(run_dir: Path, saved: Mapping[str, Any]) -> str | None:
    """The training run's status now, in the `runs` table's words: its folder's status.json (read again: it
    may have moved on since the evaluation started), `completed` of older folders read as finished; a
    `running` one whose liveness lock nobody holds is `interrupted`, as `runs` lists it; None when the folder
    has no status."""
    from rl.train import read_run

    try:
        state = read_run(run_dir).get("status")
    except MarketlakeError:
        state = saved.get("status")
    status = state.get("status") if isinstance(state, dict) else None
    if not isinstance(status, str):
        return None
    if status == "running":
        return "interrupted" if _lock_of(saved, saved.get("run_id", run_dir.name)) == "free" else "running"
    return _TRAIN_STATUS.get(status)


def evaluate_policy(
    policy: Policy,
    lake: str | os.PathLike[str] | None = None,
    symbols: list[str] | str | None = None,
    interval: str | None = None,
    period: str = "test",
    *,
    settings: Settings | None = None,
    config: EnvConfig | str | os.PathLike[str] | None = None,
    norm: NormStats | None = None,
    trained_on: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    resamples: int = RESAMPLES,
    say: Say | None = None,
    **settings_keywords: Any,
) -> EvalReport:
    """Judge a policy of your own on `period` (test or validation) beside the flat, buy-and-hold and random
    baselines, on the same bars with the same costs: the report `evaluate` gives a training run, for any
    callable `policy(obs) -> actions` (float32 [B, obs_dim] -> int64 [B], B observations as the env gives
    them; it may be asked about several bars at once, and about each side for the same bar).

    The keywords are the env's (`gymnasium.make("marketlake/Trading-v0", ...)`): lake, symbols, interval,
    period, `settings` (default: ./marketlake.toml or the built-in defaults, as the env), `config` (a settings
    file's path, read instead of `settings`; or an EnvConfig, the trading settings as they are), `norm`, and
    every [train] trading setting or [data] / [splits] setting by its name, made into Settings and EnvConfig
    by the same function as the env's (rl.env.env_settings): the window, costs and periods are those of the
    env built with the same arguments. Without `norm` the train period's statistics are computed, as the env
    does.

    `trained_on`: what the policy was trained and chosen on, so that the evaluation starts clear of it (after
    its end plus the embargo) even when bars added to the lake since have moved the lake's periods: a
    training run's folder (its settings.json) or a mapping of period name to (start, end), e.g.
    `{"train": train_env.unwrapped.data.bounds}` (microseconds, datetimes or ISO strings). Without it a
    warning says so; the validation period gets a warning too (not out of sample when it chose the policy).
    `out`: a folder to write evaluation-<period>.json, .png and .parquet into (created), None: nothing written.
    Nothing is recorded in the lake's `runs`."""
    import warnings

    say = say or (lambda _m: None)
    if period not in ("test", "validation"):
        raise MarketlakeError(f"evaluate_policy: period must be test or validation, got {period!r}")
    from rl.env import env_settings

    settings, env_config = env_settings(
        settings,
        Path(config) if isinstance(config, str | os.PathLike) else config,
        dict(settings_keywords),
        announce=False,
    )
    from rl.vector import env_symbols_interval

    # symbols and interval as the env takes them: given, else the settings' [train] ones (rl.vector)
    symbols, interval = env_symbols_interval(settings, symbols, interval)
    env_config.check_interval(interval)  # (the env's one rule, before anything is read)
    root = resolve_lake_root(lake)
    saved = _trained_record(trained_on)
    notes = []
    if not saved.get("periods"):
        notes.append(
            f"no training record says what this policy was trained on (trained_on=): judged on the lake's "
            f"{period} period as its splits cut it now, which bars added to the lake since training may have "
            "moved into what it trained on"
        )
    if period == "validation":
        notes.append(
            "judged on the validation period: if it chose this policy (or its settings), its result there is "
            "not out of sample (the test period is)"
        )
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
        say(f"note: {note}")
    clear_from, moved = _clear_of_training(
        saved, _lake_periods(root, settings, period), period, _embargo_after(root, settings)
    )
    data = _read_evaluated(root, settings, symbols, interval, period, env_config, norm, clear_from, moved)
    report, judged = _report(
        root, settings, data, env_config, policy, run_id=runlog.new_run_id("evaluate"),
        parent=saved.get("run_id"), seed=seed, resamples=resamples, clear_from=clear_from, moved=moved, say=say,
    )  # fmt: skip
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        _write(report, data, judged, folder, None, say)
    return report


def _trained_record(trained_on: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """What `evaluate_policy` knows of the training: a run folder's settings.json (`_saved_run`), or
    {"periods": {name: {"start_at", "end_at"}}} from a mapping of period name to (start, end)."""
    if trained_on is None:
        return {}
    if not isinstance(trained_on, Mapping):
        folder = Path(trained_on)
        saved = _saved_run(folder) if folder.is_dir() else {}
        if not saved.get("periods"):
            raise MarketlakeError(
                f"evaluate_policy: trained_on={str(folder)!r} is not a training run's folder with its periods "
                "(settings.json): give the run's folder, or the periods as {'train': (start, end)}"
            )
        return saved
    periods: dict[str, dict[str, str]] = {}
    for name, bounds in trained_on.items():
        if name not in ("train", "validation"):
            raise MarketlakeError(
                f"evaluate_policy: trained_on names a period {name!r} (train or validation)"
            )
        pair = (bounds.get("start_at"), bounds.get("end_at")) if isinstance(bounds, Mapping) else bounds
        try:
            start, end = (_as_instant(x) for x in pair)
        except (TypeError, ValueError) as exc:
            raise MarketlakeError(
                f"evaluate_policy: trained_on[{name!r}] is not a (start, end) pair of instants ({exc})"
            ) from None
        periods[name] = {"start_at": start.isoformat(), "end_at": end.isoformat()}
    if "train" not in periods:
        raise MarketlakeError("evaluate_policy: trained_on has no 'train' period")
    return {"periods": periods}


def _as_instant(x: Any) -> dt.datetime:
    """An instant from microseconds since the epoch (MarketData.bounds), a datetime (naive: UTC) or ISO text."""
    if isinstance(x, bool):
        raise TypeError(f"{x!r} is not an instant")
    if isinstance(x, int | np.integer):
        return _instant(int(x))
    if isinstance(x, dt.datetime):
        return x if x.tzinfo is not None else x.replace(tzinfo=dt.UTC)
    if isinstance(x, str):
        t = _parse_instant(x)
        if t is not None:
            return t
    raise ValueError(f"{x!r} is not an instant")


def _trading_settings(settings: Settings, keywords: Mapping[str, Any]) -> tuple[Settings, EnvConfig]:
    """The settings and EnvConfig an env builds from `settings` and its keywords: rl.env.settings_with, the
    one function that does it (so an evaluation trades with the costs and window the env trained with)."""
    from rl.env import settings_with

    return settings_with(settings, dict(keywords))


def _lake_periods(root: Path, settings: Settings, period: str) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    try:
        return runlog.period_bounds(root, settings, ["train", "validation", period])
    except MarketlakeError:  # no bars: the period's read says what is missing
        return {}


def _read_evaluated(
    root: Path,
    settings: Settings,
    symbols: list[str] | None,
    interval: str,
    period: str,
    env_config: EnvConfig,
    norm: NormStats | None,
    clear_from: dt.datetime | None,
    moved: str,
) -> MarketData:
    """The period's bars, refused (before any run is recorded) when no model can be scored on them."""
    if norm is None:
        # the statistics only: the period read below says which symbols are not eligible, once
        norm = load_period(
            root, settings, symbols, interval, "train", config=env_config, warn_ineligible=False
        ).norm
    try:
        data = load_period(
            root, settings, symbols, interval, period, norm, config=env_config, not_before=clear_from
        )
    except EmptyPeriod as exc:
        if clear_from is None:
            raise
        raise EmptyPeriod(f"{exc}: {moved}") from exc
    if decision_steps(data, env_config) == 0:
        raise NothingToScore(
            f"{period} period: none of its {data.n_rows} {interval} bars has {env_config.window} rows of "
            "history in its segment and a next bar to fill at, so no model can be scored on it: no "
            f"evaluation was run or recorded (the run's window is {env_config.window}: train with a lower "
            f"train.window, or give the {period} period more data)"
        )
    return data


def _report(
    root: Path,
    settings: Settings,
    data: MarketData,
    env_config: EnvConfig,
    policy: Policy,
    *,
    run_id: str,
    parent: str | None,
    seed: int,
    resamples: int,
    clear_from: dt.datetime | None,
    moved: str,
    say: Say,
    note: Say | None = None,
) -> tuple[EvalReport, Judged]:
    """The policy and the baselines judged on the period's bars: the report and what it was judged from (for
    the per-step file: `_write`), no file written."""
    period, interval = data.period, data.interval
    if clear_from is not None:
        (note or say)(f"note: {moved}")
    say(_period_line(data, decision_steps(data, env_config), env_config.window))
    # the data read, hashed now (an ingest while the walks run must not change what it says was read)
    snapshot = runlog.snapshot_for_run(
        root,
        settings,
        list(data.symbols),
        interval,
        [period],
        bounds={period: (_instant(data.bounds[0]), _instant(data.bounds[1]))},
    )
    judged = judge_all(data, env_config, policy, session=settings.session, seed=seed, resamples=resamples)
    from_store = any(STORE_READ in q for q in data.queries)
    lake_bars = period_bar_counts(
        root, settings, list(data.symbols), interval, data.bounds, from_store=from_store
    )
    report = EvalReport(
        run_id=run_id,
        parent_run_id=parent,
        period=period,
        interval=interval,
        symbols=list(data.symbols),
        bounds=(_iso(data.bounds[0]), _iso(data.bounds[1])),
        bars_per_year=judged.bars_per_year,
        metrics=judged.metrics,
        sharpe_ci=judged.sharpe_ci,
        seed=seed,
        env=env_config.to_dict(),
        curves=judged.curves,
        span=_span(data),
        costs=judged.costs,
        costs_of_capital=judged.costs_of_capital,
        gaps=gap_summary(data, env_config, judged.walks, lake_bars),
        evaluated_from=clear_from.isoformat() if clear_from is not None else None,
        clear_of_training=moved if clear_from is not None else "",
        ruins=ruins_of(judged.walks),
    )
    report.data_snapshot, report.data_files = snapshot.hash, snapshot.files
    return report, judged


def _write(
    report: EvalReport, data: MarketData, judged: Judged, folder: Path, recorded_as: str | None, say: Say
) -> None:
    """evaluation-<period>.json/.png/.parquet into `folder`: the latest; a recorded evaluation (its run id
    `recorded_as`) also keeps its own, which its row names (a later evaluation, e.g. after the lake grew,
    must not change what an earlier row shows). The .parquet file: every step of every policy (`write_steps`,
    streamed from `data` and `judged`). The own .png and .parquet are written, and the latest names are hard
    links to them (`_same_file`: one copy on disk; a copy only where links are impossible): a later
    evaluation renames its own files over the latest names, which leaves this one's as they are."""
    period = report.period
    latest = tuple(folder / f"evaluation-{period}.{ext}" for ext in ("json", "png", "parquet"))
    own = folder / "evaluations"
    kept = (
        tuple(own / f"{recorded_as}-{period}.{ext}" for ext in ("json", "png", "parquet"))
        if recorded_as is not None
        else latest
    )
    report.json_path, report.png_path, report.steps_path = kept
    if recorded_as is not None:
        own.mkdir(exist_ok=True)
    write_png(report, report.png_path)
    write_steps(report.steps_path, data, judged)
    text = (json.dumps(report.to_json(), indent=1) + "\n").encode()
    atomic_write_bytes(report.json_path, text)
    if recorded_as is not None:
        atomic_write_bytes(latest[0], text)
        _same_file(report.png_path, latest[1])
        _same_file(report.steps_path, latest[2])
    say(
        f"wrote {latest[0]}, {latest[1]} and {latest[2]} (every step)"
        + (f" (this evaluation's own: {own})" if recorded_as is not None else "")
    )


def find_run_dir(root: str | os.PathLike[str] | None, run_id: str, settings: Settings | None = None) -> Path:
    """The folder of a training run: `<runs_dir>/<run_id>` (the [train] runs_dir setting, default `runs/`
    beside the lake) when it exists, else the `run_dir` of its row in `runs` when that folder is this lake's
    (runlog.run_folder). This lake's own runs folder comes first: a lake copied with its runs folder records
    the original's absolute folders, and an evaluation in the copy must read and write the copy's run, not
    the original's; a recorded folder of another lake (the lake copied without it) is refused, saying so."""
    runlog.validate_run_id(run_id)
    root = resolve_lake_root(root)
    tried: list[str] = []
    candidate = runlog.own_run_dir(root, run_id, settings)  # the rule the repair of dead runs follows too
    if candidate.is_dir():
        return candidate
    tried.append(str(candidate))
    rows = [r for r in runlog.list_runs(root, settings) if r["run_id"] == run_id] if root.exists() else []
    for r in rows:
        if r["run_dir"] and r["kind"] == "train" and r["run_dir"] not in tried:
            folder = runlog.run_folder(
                root, r, settings
            )  # only a folder of this lake (not a copy's original)
            if folder is not None:
                return folder
            foreign = runlog.foreign_run_folder(root, r, settings)
            if foreign is not None:
                raise MarketlakeError(f"evaluate: {foreign}")
            tried.append(r["run_dir"])
    known = rows[0] if rows else None
    if known is not None and known["kind"] != "train":
        of = f" of training run {known['parent_run_id']}" if known.get("parent_run_id") else ""
        raise MarketlakeError(
            f"run {run_id!r} is an {known['kind']} run{of}, not a training run: evaluate takes the id of a "
            "finished training run (see `marketlake runs --kind train`)"
        )
    if known is not None and known["status"] != "finished":
        raise MarketlakeError(
            f"training run {run_id!r} is {known['status']} and kept no model to evaluate (no folder at "
            f"{' or '.join(tried)}); see `marketlake runs --kind train` for the finished ones"
        )
    raise MarketlakeError(
        f"no training run {run_id!r}: no folder at {' or '.join(tried)} (see `marketlake runs`)"
    )


def evaluate_run(
    root: str | os.PathLike[str] | None,
    settings: Settings,
    run_id: str,
    period: str = "test",
    *,
    say: Say | None = None,
    note: Say | None = None,
) -> EvalReport:
    """`marketlake evaluate RUN_ID [--period test|validation]`: find the run's folder, evaluate it (`say`:
    progress, `note`: what changes how the result is read, as `evaluate`)."""
    return evaluate(root, settings, find_run_dir(root, run_id, settings), period, say=say, note=note)


def _parse_instant(text: Any) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _embargo_after(root: Path, settings: Settings) -> Callable[[dt.datetime], dt.datetime | None]:
    """The end of the embargo the lake's `splits` would put after an instant (features.splits.embargo_end_us
    over what the lake holds: its calendars and shortest interval; read when called), None on a lake with
    no bar."""
    import lake
    from features.splits import embargo_end_us, lake_inputs

    def read() -> Any:
        with lake.connect(root, read_only=True, settings=settings) as con:
            return lake_inputs(con)

    def after(t: dt.datetime) -> dt.datetime | None:
        got = lake.consistent(root, read)  # (read only when asked: a clamp is rare)
        if got is None:
            return None
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        us = (t - epoch) // dt.timedelta(microseconds=1)
        end = (got.end - epoch) // dt.timedelta(microseconds=1)
        out = embargo_end_us(
            us, max(end, us), settings, got.bar_minutes, clock=got.clock, sessions=got.sessions
        )
        return epoch + dt.timedelta(microseconds=out)

    return after


def _clear_of_training(
    saved: Mapping[str, Any],
    lake_periods: Mapping[str, tuple[dt.datetime, dt.datetime]],
    period: str,
    embargo_after: Callable[[dt.datetime], dt.datetime | None] | None = None,
) -> tuple[dt.datetime | None, str]:
    """The instant the evaluated period must start at instead of the lake's own start, and why, or (None, "")
    when the lake's period already starts clear of what the run trained and chose its model on: after the
    end of its recorded periods (settings.json) and the embargo the lake's splits put after that end
    (`embargo_after`, `_embargo_after`; without it, the clock length of the run's own embargo between its
    periods, which in trading time can differ from one boundary to another). The lake's periods are cut
    from its whole range, so bars added before it (a backfill, another symbol's longer history) move every
    boundary earlier, and the test period would then hold bars the run trained on. `lake_periods`: the
    lake's own periods now (runlog.period_bounds). No clamp for a run with no recorded periods (a policy
    evaluated alone)."""
    got = saved.get("periods")
    periods: dict[str, Any] = got if isinstance(got, dict) else {}
    seen = ["train"] if period == "validation" else ["train", "validation"]
    ends = [
        e
        for e in (_parse_instant(periods[p].get("end_at")) for p in seen if isinstance(periods.get(p), dict))
        if e is not None
    ]
    if not ends or period not in lake_periods:
        return None, ""
    train, val = (periods[p] if isinstance(periods.get(p), dict) else {} for p in ("train", "validation"))
    t_end, v_start = _parse_instant(train.get("end_at")), _parse_instant(val.get("start_at"))
    if t_end is not None and v_start is not None and v_start >= t_end:
        embargo = v_start - t_end  # the run's own embargo
    elif "train" in lake_periods and "validation" in lake_periods:  # the lake's, as its splits cut it now
        embargo = max(lake_periods["validation"][0] - lake_periods["train"][1], dt.timedelta(0))
    else:
        embargo = dt.timedelta(0)
    last = max(ends)
    # the lake's own rule after the run's last instant (the embargo is trading time: its clock length after
    # one boundary says nothing of another's); the run's own embargo's clock length where it cannot be read
    later = embargo_after(last) if embargo_after is not None else None
    clear = later if later is not None else last + embargo
    embargo = clear - last
    start = lake_periods[period][0]
    if start >= clear:
        return None, ""
    return clear, (
        f"the lake's {period} period now starts at {start.isoformat()}, before the end of what this run "
        f"trained and chose its model on ({', '.join(seen)} up to {last.isoformat()}, embargo {embargo}): "
        f"evaluated from {clear.isoformat()} only (bars added before the run's periods moved the lake's; "
        '[splits] method = "date" fixes where train and validation end)'
    )


def _provenance_notes(saved: Mapping[str, Any], root: Path, period: str) -> list[str]:
    """What a reader of the evaluation must know about the model it judges: that its run did not finish
    (interrupted, failed, still running, or left `running` by a killed process), that it was trained on another lake,
    that the validation period chose it (so it is not out of sample)."""
    notes = []
    run_id = saved.get("run_id", "?")
    got = saved.get("status")
    state: Mapping[str, Any] = got if isinstance(got, dict) else {}
    status = state.get("status")
    done = f"after {state.get('iterations', '?')} of {(saved.get('ppo') or {}).get('num_iterations', '?')} iterations"
    best = f"its best checkpoint, from iteration {state.get('best_iteration', '?')}"
    if status == "interrupted":
        notes.append(f"note: run {run_id} was interrupted {done}: the model evaluated is {best}")
    elif status == "running":
        alive = _lock_of(saved, run_id)
        if alive == "held":
            notes.append(
                f"note: run {run_id} is still running ({done} so far): the model evaluated is {best}"
            )
        elif alive == "free":
            notes.append(
                f"note: run {run_id} never finished (its status is still `running` {done}: its process was "
                f"stopped without a word, e.g. killed): the model evaluated is {best}"
            )
        else:
            notes.append(
                f"note: run {run_id} did not finish (its status is still `running` {done}; whether its process "
                f"still runs cannot be told: {alive}): the model evaluated is {best}"
            )
    elif status == "failed":
        notes.append(f"note: run {run_id} failed {done}: the model evaluated is {best}")
    lake_then = saved.get("lake")
    if isinstance(lake_then, str) and lake_then and Path(lake_then).resolve() != root.resolve():
        notes.append(
            f"note: run {run_id} was trained on the lake at {lake_then}; this evaluation reads the lake at "
            f"{root} (its periods and bars, not those the run was trained and chosen on)"
        )
    if period == "validation" and saved:
        notes.append(
            "note: the validation period chose this model among the run's checkpoints: its result there is "
            "not out of sample (the test period is)"
        )
    return notes


def _lock_of(saved: Mapping[str, Any], run_id: Any) -> str:
    """The training run's liveness lock (runlog.RunLock) in the lake it was recorded in (its settings.json's
    `lake`, whatever lake is evaluated now): "held", "free", else why it cannot be told."""
    lake_then = saved.get("lake")
    if not isinstance(lake_then, str) or not lake_then:
        return "its folder does not name the lake it was recorded in"
    try:
        state = runlog.lock_state(lake_then, str(run_id))
    except MarketlakeError:  # not a run id, or not a lake path: no lock to ask
        state = "unknown"
    if state is None:
        return f"no lock file in the lake at {lake_then} (recorded by a version without run locks?)"
    if state == "unknown":
        return f"its lock in the lake at {lake_then} cannot be checked here"
    return state


def _saved_run(run_dir: Path) -> dict[str, Any]:
    """settings.json (and status.json) of a training run folder, {} when there is none (a policy evaluated
    alone). What the evaluation takes from it is checked here, and a wrong value is a MarketlakeError naming
    the file and the reason, never a silent default: `periods` above all (a garbage entry would turn off the
    guard that keeps the evaluation clear of the bars the run trained on, `_clear_of_training`)."""
    from rl.train import SETTINGS_FILE, damaged, read_run

    if not (run_dir / SETTINGS_FILE).exists():
        return {}
    try:
        saved = read_run(run_dir)
    except OSError as exc:
        raise MarketlakeError(f"evaluate: cannot read the run in {run_dir}: {exc}") from exc

    def bad(why: str) -> MarketlakeError:
        return damaged(run_dir, SETTINGS_FILE, why)

    periods = saved.get("periods")
    if periods is None and "env" in saved:  # (a training run writes its periods beside its env)
        raise bad("has no 'periods' (what the run trained and chose its model on)")
    if periods is not None:
        if not isinstance(periods, dict) or not isinstance(periods.get("train"), dict):
            raise bad(f"has no train period in its 'periods' ({json.dumps(periods)[:120]})")
        for name, p in periods.items():
            if not isinstance(p, dict) or not all(
                isinstance(p.get(k), str) and _parse_instant(p[k]) is not None for k in ("start_at", "end_at")
            ):
                raise bad(
                    f"has a 'periods.{name}' that is not a period with an ISO start_at and end_at "
                    f"({json.dumps(p)[:120]})"
                )
    data_settings = saved.get("data_settings")
    if data_settings is not None:
        if not isinstance(data_settings, dict):
            raise bad(f"has a 'data_settings' that is not a table ({json.dumps(data_settings)[:120]})")
        try:
            Settings().with_sql_settings(data_settings)
        except ValueError as exc:
            raise bad(f"has a wrong 'data_settings' ({exc})") from None
    symbols = saved.get("symbols")
    if symbols is not None and (
        not isinstance(symbols, list) or not symbols or not all(isinstance(x, str) for x in symbols)
    ):
        raise bad(f"has a 'symbols' that is not a list of symbols ({json.dumps(symbols)[:120]})")
    if "interval" in saved and not (isinstance(saved["interval"], str) and saved["interval"]):
        raise bad(f"has an 'interval' that is not an interval ({json.dumps(saved['interval'])[:120]})")
    ppo = saved.get("ppo")
    if ppo is not None and not isinstance(ppo, dict):
        raise bad(f"has a 'ppo' that is not a table ({json.dumps(ppo)[:120]})")
    seed = (ppo or {}).get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise bad(f"has a 'ppo.seed' that is not a whole number >= 0 ({json.dumps(seed)[:120]})")
    return saved


SUMMARY_KEYS = (
    "metrics_version",
    "period",
    "out_of_sample",
    "interval",
    "bounds",
    "bars_span",
    "evaluated_from",
    "clear_of_training",
    "bars",
    "overall",
    "per_symbol",
    "sharpe_ci",
    "sentence",
    "costs_paid",
    "costs_of_capital",
    "gaps",
    "files",
    "checkpoint",
    "parent_status",
    "training_data",
)


def summary(report: EvalReport) -> dict[str, Any]:
    """What the `runs` row keeps of an evaluation (its metrics JSON, mirrored to Supabase): the period, and
    whether it is out of sample (validation chose the model: not); which bars were measured (the period's
    bounds, the span of its bars, the start `_clear_of_training` moved it to and why); every metric (the
    agent's and the baselines'), the intervals, the sentence, the costs paid, the gaps per symbol, the
    files."""
    full = report.to_json()
    return {k: full[k] for k in SUMMARY_KEYS}


# --- the training run's row -------------------------------------------------------------------------------

_TRAIN_STATUS = {
    "finished": "finished",
    "completed": "finished",  # what status.json said for finished before 2026-11-30 (an older run folder)
    "interrupted": "interrupted",
    "failed": "failed",
    "running": "running",
}


def _read_bounds(saved: Mapping[str, Any]) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """The periods a training run read, as its settings.json records them."""
    got = saved.get("periods")
    out: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for name, p in (got if isinstance(got, dict) else {}).items():
        start = _parse_instant(p.get("start_at")) if isinstance(p, dict) else None
        end = _parse_instant(p.get("end_at")) if isinstance(p, dict) else None
        if start is not None and end is not None:
            out[str(name)] = (start, end)
    return out


def training_snapshot(
    root: str | os.PathLike[str] | None, settings: Settings, run_dir: str | os.PathLike[str]
) -> runlog.DataSnapshot:
    """The data snapshot of a training run: the lake files of the train and validation periods it read
    (as settings.json records them) and the data settings it ran with. Taken as soon as the run's data is
    read (rl.train.train's on_start), so that an ingest during a long run does not change it."""
    from rl.train import read_run

    saved = read_run(Path(run_dir))
    bounds = _read_bounds(saved)
    return runlog.snapshot_for_run(
        resolve_lake_root(root),
        settings,
        saved["symbols"],
        saved["interval"],
        ["train", "validation"],
        bounds=bounds or None,
    )


def record_training(
    root: str | os.PathLike[str] | None,
    settings: Settings,
    run_dir: str | os.PathLike[str],
    *,
    say: Say | None = None,
    snapshot: runlog.DataSnapshot | None = None,
    status: str | None = None,
    error: str | None = None,
) -> runlog.RunRecord:
    """The `runs` row (kind train) of a training run folder written by rl.train.train: its settings,
    status (status.json's, unless `status` is given; `error` is added to its metrics), best validation
    score, and the snapshot of the train and validation data it read (`snapshot`, taken when it read them;
    default: now). Mirrored to Supabase when configured, once the run has ended (a `running` row is not)."""
    from rl.train import read_run

    root = resolve_lake_root(root)
    run_dir = Path(run_dir)
    saved = read_run(run_dir)
    state = dict(saved.pop("status", {}) or {})
    started = dt.datetime.fromisoformat(saved["started_at"])
    finished = state.get("finished_at")
    snapshot = snapshot or training_snapshot(root, settings, run_dir)
    metrics = {
        k: state.get(k)
        for k in ("iterations", "env_steps", "best_iteration", "best_score", "error")
        if k != "error" or state.get(k)
    }
    if error:
        metrics["error"] = error
    record = runlog.RunRecord(
        run_id=str(saved["run_id"]),
        kind="train",
        started_at=started,
        config=json.loads(json.dumps(saved, default=str)),
        status=status or _TRAIN_STATUS.get(str(state.get("status")), "failed"),
        finished_at=dt.datetime.fromisoformat(finished) if finished else None,
        data_snapshot=snapshot.hash,
        metrics=metrics,
        code_version=runlog.code_version(),
        run_dir=str(run_dir),
        data_files=snapshot.files,
    )
    if record.status != "running" and record.finished_at is None:
        record.finished_at = dt.datetime.now(dt.UTC)
    runlog.write_run(root, record)
    if record.status != "running":
        from rl.mirror import mirror_run

        mirror_run(root, record, say=say or (lambda _m: None))
    return record


def _record_failed_training(
    root: Path,
    settings: Settings,
    overrides: Mapping[str, Any] | None,
    run_dir: Path | None,
    exc: BaseException,
    say: Say,
    snapshot: runlog.DataSnapshot | None = None,
) -> bool:
    """The `runs` row of a training run that raised: from its folder when it had one (status.json says
    failed and why), else a row with the overrides and the error. Recording never hides the error. A run
    stopped by Ctrl-C (or SIGTERM) is `interrupted`, with no error. Returns whether the row was written."""
    interrupted = is_interrupt(exc)
    status = "interrupted" if interrupted else "failed"
    error = None if interrupted else f"{type(exc).__name__}: {exc}"
    cause = exc.__context__
    if error and cause is not None and not is_interrupt(cause):  # e.g. a full disk while saying why it failed
        error += f" (while handling {type(cause).__name__}: {cause})"
    try:
        if run_dir is not None:
            from rl.train import read_run

            state = (read_run(run_dir).get("status") or {}).get("status")
            own = None if state in (None, "running") else _TRAIN_STATUS.get(str(state))
            # status.json says how it ended when the loop could write it; else it raised before: say so
            record_training(
                root,
                settings,
                run_dir,
                say=say,
                snapshot=snapshot,
                status=own or status,
                error=None if own else error,
            )
            return True
        config = {"overrides": {k: v for k, v in (overrides or {}).items() if v is not None}}
        record = runlog.start_run(root, "train", config, say=say)
        record.metrics = {"error": error} if error else {}
        runlog.finish_run(root, record, status, say=say)
        return True
    except Exception as again:  # the training error is the one to raise
        say(f"the failed training run could not be recorded in `runs`: {again}")
        return False


def train_and_evaluate(
    root: str | os.PathLike[str] | None,
    settings: Settings,
    overrides: Mapping[str, Any] | None = None,
    *,
    say: Say | None = None,
    note: Say | None = None,
    progress: bool = False,
    runs_dir: str | os.PathLike[str] | None = None,
    evaluate_test: bool = True,
) -> tuple[Any, EvalReport | None]:
    """`marketlake train`: train (rl.train.train), record the training run in `runs` (also when it raises),
    then evaluate the chosen model on the unseen test period (unless evaluate_test is False). An interrupted
    or checkpoint-less run is recorded and not evaluated (the report is None). Returns (TrainResult,
    EvalReport | None). `note`: where the evaluation's notes go (evaluate's `note`; default `say`)."""
    from rl.train import train

    say = say or (lambda _m: None)
    lake_root = resolve_lake_root(root)
    out = Path(runs_dir) if runs_dir is not None else None
    folders: list[Path] = []
    snapshots: list[runlog.DataSnapshot] = []
    locks: list[runlog.RunLock] = []

    def started(run_id: str, run_dir: Path) -> None:
        """The run is listed in `runs` (status running) as soon as its data is read, with its snapshot,
        holding its liveness lock from before that row until after its last one (runlog.RunLock); the rows
        of runs found dead meanwhile are repaired first."""
        folders.append(run_dir)
        snapshots.append(training_snapshot(lake_root, settings, run_dir))
        locks.append(runlog.RunLock.take(lake_root, run_id, say))
        runlog.repair_dead_runs_safely(lake_root, settings, say)
        record_training(lake_root, settings, run_dir, say=say, snapshot=snapshots[0])

    recorded = False
    try:
        try:
            result = train(
                lake_root,
                settings,
                overrides,
                runs_dir=out,
                say=say,
                progress=progress,
                on_start=started,
            )
        except BaseException as exc:  # a run that fails (or is stopped before its loop) is recorded too
            with deferred_interrupts():
                recorded = _record_failed_training(
                    lake_root,
                    settings,
                    overrides,
                    folders[0] if folders else None,
                    exc,
                    say,
                    snapshots[0] if snapshots else None,
                )
            raise
        with deferred_interrupts():  # a Ctrl-C now (to skip the evaluation) waits until the run is recorded
            record_training(
                lake_root, settings, result.run_dir, say=say, snapshot=snapshots[0] if snapshots else None
            )
            recorded = True
    finally:  # the lock file goes only once the last row is written (else the next run repairs the row)
        for lock in locks:
            lock.release(ended=recorded)
    if not evaluate_test:
        return result, None
    if result.status != "finished" or result.best_checkpoint is None:
        later = (
            f"`marketlake evaluate {result.run_id}` later"
            if result.best_checkpoint is not None
            else "no checkpoint was kept: nothing to evaluate"
        )
        say(f"run {result.run_id} {result.status}: not evaluated ({later})")
        return result, None
    try:
        # the settings the run trained with, its overrides on [train]: nothing to note about its own costs
        trained = {k: v for k, v in (overrides or {}).items() if v is not None}
        given = dataclasses.replace(settings, train={**settings.train, **trained}) if trained else settings
        return result, evaluate(lake_root, given, result.run_dir, "test", say=say, note=note)
    except NothingToScore as exc:  # the training itself is done and recorded: name it
        raise NothingToScore(f"run {result.run_id} was trained and recorded, but its {exc}") from None
    except EmptyPeriod as exc:  # the same: the run is kept, only its evaluation found no bar to judge it on
        raise EmptyPeriod(
            f"run {result.run_id} was trained and recorded, but its evaluation found no bar: {exc}; "
            f"`marketlake evaluate {result.run_id}` once the test period holds bars"
        ) from None


# --- what a person sees -----------------------------------------------------------------------------------


def _compact(x: float, sign: str = "+", scale: float = 1.0, unit: str = "", digits: int = 2) -> str:
    """x x scale with `digits` decimals; from 1,000 up (in magnitude) in 3 significant digits with a power of
    ten, `+5.4e9`: a cell of the table never runs wider than 8 characters, and is never cut."""
    v = x * scale
    if abs(v) < 1000:
        return f"{v:{sign}.{digits}f}{unit}"
    mantissa, _, power = f"{v:{sign}.3g}".partition("e")
    return f"{mantissa}e{int(power)}{unit}" if power else f"{mantissa}{unit}"


def _pct(x: float | None) -> str:
    return "—" if x is None else _compact(x, "+", 100, "%")


def _cost(x: float | None) -> str:
    """Costs paid, as a percentage (of the equity at each fill summed, or of the starting capital)."""
    return "—" if x is None else _compact(x, "", 100, "%")


def _count(n: int) -> str:
    """A count of bars or trades: as it is below 100,000, else in thousands or millions (`525.6k`)."""
    if n < 100_000:
        return str(n)
    return f"{n / 1000:.1f}k" if n < 1_000_000 else f"{n / 1_000_000:.2f}M"


COSTS_NOTE = (
    "costs Σ%eq: the sum over the fills of each one's costs as a % of the equity at that fill (it can exceed "
    "100%); costs %cap: the costs paid as a % of the starting capital"
)
"""What the table's two costs columns are (`render_table`)."""


def _num(x: float | None, fmt: str = "+.2f") -> str:
    if x is None:
        return "—"
    return _compact(x, "+" if fmt.startswith("+") else "", digits=int(fmt.rstrip("f").split(".")[-1]))


RISK_COLUMNS = ("scope", "policy", "bars", "return", "ann. return", "ann. vol", "Sharpe", "Sortino", "max DD")
"""The first of the table's two blocks: what each policy earned and how it was risked (`render_table`)."""
TRADING_COLUMNS = (
    "scope",
    "policy",
    "turnover",
    "costs Σ%eq",
    "costs %cap",
    "trades",
    "exposure",
    "hit rate",
)
"""The second: how it traded."""


def _star(m: Metrics, x: float | None, fmt: str = "+.2f") -> str:
    """A figure annualised from too few non-zero returns, marked `*` (TOO_FEW_NOTE)."""
    return _num(x, fmt) + ("*" if m.too_few_to_annualise and x is not None else "")


def _cells(report: EvalReport, scope: str, name: str) -> dict[str, str]:
    m = report.metrics[scope][name]
    return {
        "bars": _count(m.bars),
        "return": _pct(m.total_return),
        "ann. return": _pct(m.annual_return)
        + ("*" if m.too_few_to_annualise and m.annual_return is not None else ""),
        "ann. vol": _cost(m.annual_volatility),
        "Sharpe": _star(m, m.sharpe),
        "Sortino": _star(m, m.sortino),
        "max DD": _pct(-m.max_drawdown) if m.max_drawdown else "0.00%",
        "turnover": _num(m.turnover, ".1f"),
        "costs Σ%eq": _cost(report.costs.get(scope, {}).get(name)),
        "costs %cap": _cost(report.costs_of_capital.get(scope, {}).get(name)),
        "trades": _count(m.trades),
        "exposure": f"{m.exposure:.0%}",
        "hit rate": "—" if m.hit_rate is None else f"{m.hit_rate:.0%}",
    }


def render_table(report: EvalReport, *, width: int = 100) -> str:
    """The report as two terminal tables (rich), each one block per scope: returns and risk (`RISK_COLUMNS`:
    the total and annualised return, the annualised volatility, Sharpe and Sortino, max drawdown), then
    trading (`TRADING_COLUMNS`); each fits in 100 columns. Then the bootstrap sentence and the notes."""
    from rich.console import Console
    from rich.table import Table

    title = (
        f"{report.period} period {report.bounds[0][:16]} .. {report.bounds[1][:16]} UTC, {report.interval} bars"
        + (f" {report.span[0][:16]} .. {report.span[1][:16]}" if report.span else "")
        + ("" if report.out_of_sample else " (validation: not out of sample, it chose the model)")
        + f"\n{costs_label(report.env)}"
    )
    scopes = ["overall", *[s for s in report.metrics if s != "overall"]]
    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True)
    for columns, caption in ((RISK_COLUMNS, title), (TRADING_COLUMNS, None)):
        t = Table(title=caption, show_lines=False)
        for c in columns:
            t.add_column(c, justify="left" if c in ("scope", "policy") else "right", no_wrap=True)
        for k, scope in enumerate(scopes):
            for j, name in enumerate(POLICIES):
                cells = _cells(report, scope, name)
                t.add_row(
                    scope if j == 0 else "",
                    LABELS[name],
                    *(cells[c] for c in columns[2:]),
                    end_section=j == len(POLICIES) - 1 and k < len(scopes) - 1,
                )
        console.print(t)
    console.print(report.sentence, markup=False)
    console.print(COSTS_NOTE, markup=False)
    for line in report_notes(report):
        console.print(line, markup=False)
    if report.gaps:
        console.print(
            "Gaps per symbol (a gap restarts the features' warm-up; the walk exits at a segment's end):",
            markup=False,
        )
        for line in gap_lines(report.gaps):
            console.print(f"  {line}", markup=False)
    return buf.getvalue()


def report_notes(report: EvalReport) -> list[str]:
    """What the table's figures rest on, when it is not the plain case: ratios from too few non-zero returns
    (marked *), an overall annualised on calendar days, accounts wiped out, symbols of the period with no bar
    scored."""
    notes = []
    if any(m.too_few_to_annualise for by in report.metrics.values() for m in by.values()):
        notes.append(TOO_FEW_NOTE)
    overall = report.metrics.get("overall", {}).get("agent")
    if overall is not None and overall.ratios_on_calendar_days:
        notes.append(
            "overall annualised return, volatility, Sharpe and Sortino from the portfolio's UTC calendar-day "
            "returns x 365 (its symbols' bars fall at different times)"
        )
    for name, ruined in report.ruins.items():
        at = ", ".join(f"{sym} at {ts}" for sym, ts in ruined.items())
        notes.append(
            f"{LABELS.get(name, name)} was wiped out (a short lost all its equity) on {at}: that symbol's "
            "account was closed, held flat with no return and no cost to the period's end"
        )
    unscored = [s for s in report.symbols if s not in report.symbols_scored]
    if unscored:
        notes.append(
            f"not scored (no bar to decide on in the period; not in the overall): {', '.join(unscored)}"
        )
    return notes


def write_png(report: EvalReport, path: Path) -> Path:
    """Equity curves of the agent and the three baselines (overall portfolio) and their drawdowns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rl.metrics import drawdown

    fig = Figure(figsize=(11, 7), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    for name in POLICIES:
        s = report.curves.get(name)
        if s is None or len(s.ts) == 0:
            continue
        x = s.ts.astype("datetime64[us]")
        equity = np.exp(np.cumsum(s.log_return))
        label = f"{LABELS[name]} ({_pct(report.metrics['overall'][name].total_return)})"
        top.plot(x, equity, label=label, color=COLORS[name], linewidth=1.2 if name == "agent" else 0.9)
        bottom.plot(x, -drawdown(s.log_return) * 100, color=COLORS[name], linewidth=0.9)
    top.axhline(1.0, color="black", linewidth=0.5, alpha=0.5)
    top.set_ylabel("equity (start = 1)")
    top.set_title(
        f"{report.parent_run_id or report.run_id}: {report.period} period, {', '.join(report.symbols)} "
        f"({report.interval}), same bars and costs",
        fontsize=10,
    )
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown %")
    bottom.set_xlabel("time (UTC)")
    bottom.grid(alpha=0.3)
    fig.text(0.01, 0.005, report.sentence, fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def report_json(report: EvalReport) -> str:
    """The report as JSON text (what `--format json` prints)."""
    return json.dumps(report.to_json(), indent=1) + "\n"


def load_report(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """A saved evaluation JSON file."""
    return dict(json.loads(Path(path).read_text(encoding="utf-8")))

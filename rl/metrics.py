"""Performance metrics of a trading series, and a circular block-bootstrap interval for an edge over buy-and-hold.

Pure numpy: the input is one series of per-step net log returns (after costs), the position held over each
step and the turnover traded at each step's fill, as `rl.walk.walk` returns them. Nothing here reads the lake.
A step is a bar t + 1: the order decided at bar t fills at its open; its return runs from bar t's close to
bar t + 1's close (the gap to the open with the position held before the fill, the rest with the new one).

Conventions (each has a test):
- total return: `exp(sum(log_return)) - 1`.
- Sharpe: `mean / std (ddof=1) * sqrt(bars_per_year)` of the per-step simple returns
  `exp(log_return) - 1` (risk-free rate 0), as pyfolio and empyrical take it.
- Sortino: `mean / downside deviation * sqrt(bars_per_year)` of the simple returns, downside deviation
  `sqrt(mean(min(r, 0)^2))` over all steps (target 0).
- The overall portfolio of symbols whose bars fall at different times (`portfolio_annualisation`; a stock
  whose own bars mix grids too) takes both on its UTC calendar-day returns, annualised by 365
  (`ratios_on_calendar_days`). An intraday stock's bars a year: 252 sessions times the bars its sessions
  hold (`symbol_bars_per_year`: the steps seen per New York day with a bar, the first and last day left out;
  every other minute is 195).
- annual return (CAGR): `exp(sum(r) * per_year / n) - 1` over the n returns the Sharpe is taken on;
  annual volatility: their simple returns' std (ddof=1) * sqrt(per_year): empyrical's annual_return and
  annual_volatility with the Sharpe's annualisation.
- A Sharpe or Sortino from fewer returns than a month's worth (`min_annualised_steps`, at least 30), or from
  fewer than 30 non-zero ones (a flat step returns 0 and adds no information), is kept, and flagged
  `too_few_to_annualise` (`too_few_to_annualise`).
- max drawdown: the largest fall of equity `exp(cumsum(r))` from its running peak (the start counts as a
  peak), as a positive fraction: 0.25 means equity fell to 75% of a previous high.
- the bootstrap's verdict (`SharpeDiffCI.verdict`): beyond luck only when 0 lies outside the interval and
  outside both ends' Monte-Carlo bands (MC_Z standard errors of the order statistic); borderline when 0 is
  within a band (whether the interval holds 0 then depends on the seed): no claim. A resample in which the
  agent's returns are the baseline's on every step is a difference of exactly 0, and returns within rounding
  of the baseline's (`TIE_TOLERANCE`, the overall rebuilt through equity) are the baseline's.
- turnover: the sum of |position change| traded (1.0 = the whole equity bought or sold once).
- trades: the number of steps whose fill traded something (an entry and a later exit are two). A portfolio's
  (the evaluation's overall): its symbols' trades summed, the fills counted per symbol (`trades=`): two
  symbols filling at one time are two trades, though one step of the portfolio.
- exposure: the mean over the steps of |position held from the step's fill to its close|; a portfolio's,
  sum(|position|) / sum(tradable) (`compute_metrics`' `tradable`): the evaluation's overall, the
  equity-weighted share of its capital invested at each time, each symbol's position carried between its
  bars, over the shares whose symbol has begun (`rl.evaluate.portfolio_series`). The step that
  exits counts as flat though its return holds the exited position's gap from the previous close to the
  fill, and the step that enters counts as invested though its gap was flat: a position held from one
  bar's open to another's counts the number of bars between them, its time in the market.
- hit rate: per step, not per trade: the share of the steps counted invested by exposure (position after
  the fill not 0) whose net return was positive; the exit step is not among them. None when never invested.
A ratio whose denominator is 0 is 0 when its numerator is 0 too (a flat series), else None (no value);
so a flat series is exactly 0 on every metric that has a value, and its hit rate has none.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from lake.errors import MarketlakeError

SESSIONS_PER_YEAR = 252
"""Trading sessions in a year of an exchange calendar (NYSE), the usual annualisation."""
DAYS_PER_YEAR_24_7 = 365
"""Days in a year of a 24/7 market (crypto)."""
REGULAR_SESSION_MINUTES = 390
"""09:30-16:00 New York."""
EXTENDED_SESSION_MINUTES = 960
"""04:00-20:00 New York."""
SESSION_OPEN_MINUTE = {"regular": 9 * 60 + 30, "extended": 4 * 60}
"""The session's open, minutes after New York midnight."""
NEW_YORK = ZoneInfo("America/New_York")

METRICS_VERSION = 4
"""The definition of the metrics an evaluation's JSON and runs row hold (`metrics_version`; a row without the
key is version 1: Sharpe and Sortino of log returns, the overall always per step, the data's end a forced
exit). 2: Sharpe and Sortino of simple returns; the overall on calendar days when its symbols' bars start at
different times (stocks at different phases too); intraday stocks annualised by the bars a session holds on
their own grid (on the hour 6 a regular session, half past 7); the data's end marked, not sold. 3: intraday
stocks annualised by the median bars a New York day with a bar holds (every other minute 195, not 390); the
overall's exposure over the (symbol, bar) pairs that exist; a ratio flagged too few under a month's worth
of non-zero returns; the annualised return and volatility; the interval's verdict "borderline" within its
ends' Monte-Carlo bands, from 10,000 resamples of blocks that did not wrap. 4: intraday stocks by the steps
seen over the sessions spanned (`observed_bars_a_session`); the overall's exposure the equity-weighted
capital invested, each symbol's position carried between its bars; flagged too few under a month's worth
of returns or under 30 non-zero ones (`too_few_to_annualise`); the interval of circular blocks, a resample
that is the baseline's own exactly 0 (`TIE_TOLERANCE`)."""


_CALENDARS = {
    "stock": "XNYS",
    "etf": "XNYS",
    "xnys": "XNYS",
    "nyse": "XNYS",
    "crypto": "24/7",
    "24/7": "24/7",
}
_INTERVAL = re.compile(r"^(\d+)([mhdw])$")
_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 7 * 1440}


def interval_minutes(interval: str) -> int:
    """Minutes in a bar interval like `1m`, `15m`, `1h`, `1d`, `1w`."""
    m = _INTERVAL.fullmatch(interval.strip())
    if not m or int(m.group(1)) <= 0:
        raise MarketlakeError(
            f"unknown bar interval {interval!r}: expected a number and m, h, d or w (1m, 1d)"
        )
    return int(m.group(1)) * _MINUTES[m.group(2)]


def calendar_of(calendar_or_asset_class: str) -> str:
    """'XNYS' or '24/7' for a calendar name or an asset class (stock, etf, crypto)."""
    cal = _CALENDARS.get(calendar_or_asset_class.strip().lower())
    if cal is None:
        raise MarketlakeError(
            f"unknown calendar or asset class {calendar_or_asset_class!r}: expected stock, etf, crypto, "
            "XNYS or 24/7"
        )
    return cal


def bars_per_year(
    interval: str, calendar: str, session: str = "regular", phases: frozenset[int] | None = None
) -> float:
    """Bars in a year, to annualise per-bar ratios.

    Exchange calendars (stocks, ETFs): 252 sessions a year times the bars of a session: 390 one-minute
    bars in regular hours (960 in extended hours), one daily bar; a bar longer than a session counts as
    its number of sessions (a weekly bar: 252/5 a year). 24/7 (crypto): 365 days of 1440 minutes.
    `phases` (intraday stocks): the New York start times of the bars within the interval, in microseconds
    (`new_york_phases`): the session's bars are the times on that grid from its open to its close (the lake
    keeps a stock's bars starting in the session): hourly bars on the hour 10:00 .. 15:00, 6 a regular
    session; at half past 09:30 .. 15:30, 7. None: the grid starting at the open, ceil(session / interval).
    """
    minutes = interval_minutes(interval)
    if calendar_of(calendar) == "24/7":
        return DAYS_PER_YEAR_24_7 * 1440 / minutes
    if session not in ("regular", "extended"):
        raise MarketlakeError(f"unknown session {session!r}: expected regular or extended")
    if minutes >= 1440:
        return SESSIONS_PER_YEAR / (minutes / 1440 if minutes < 7 * 1440 else 5 * minutes / (7 * 1440))
    session_minutes = REGULAR_SESSION_MINUTES if session == "regular" else EXTENDED_SESSION_MINUTES
    bars = session_bars(minutes, SESSION_OPEN_MINUTE[session], session_minutes, phases or frozenset())
    return SESSIONS_PER_YEAR * (bars or math.ceil(session_minutes / minutes))


def session_bars(minutes: int, open_minute: int, session_minutes: int, phases: frozenset[int]) -> int:
    """How many bar starts of an interval of `minutes` lie in a session [open, open + length) (minutes after
    midnight) on the grid of the given phases (microseconds within the interval)."""
    step = minutes * 60_000_000
    start, end = open_minute * 60_000_000, (open_minute + session_minutes) * 60_000_000
    count = 0
    for p in phases:
        first = start + (p - start) % step  # the first time of this phase at or after the open
        count += max(0, -(-(end - first) // step))
    return count


def _new_york_offset_us(day: int) -> int:
    """New York's UTC offset (microseconds) at noon UTC of a UTC day (days since 1970-01-01): after the
    02:00 switch of a daylight-saving day, before any session opens (04:00)."""
    noon = dt.datetime(1970, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=day)
    off = noon.astimezone(NEW_YORK).utcoffset()
    return int(off.total_seconds()) * 1_000_000 if off is not None else 0


def _new_york_phase_counts(step_times: np.ndarray, interval: str) -> dict[int, int]:
    """How many bars start at each New York wall-clock time within the interval, in microseconds."""
    t = np.asarray(step_times, dtype=np.int64)
    if t.size == 0:
        return {}
    days, at = np.unique(t // US_PER_DAY, return_inverse=True)
    offset = np.array([_new_york_offset_us(int(d)) for d in days], dtype=np.int64)
    local = t + offset[at]
    phases, counts = np.unique(local % (interval_minutes(interval) * 60_000_000), return_counts=True)
    return dict(zip(phases.tolist(), counts.tolist(), strict=True))


def new_york_phases(step_times: np.ndarray, interval: str) -> frozenset[int]:
    """The distinct New York wall-clock start times of the bars within the interval, in microseconds (a stock's
    hours at half past: {30 minutes}, on the hour: {0}), whatever the daylight-saving shift of their UTC
    times. Empty for no bar. More than one: the symbol's bars mix grids (a file that switches from half past
    to on the hour, or a stray bar at an odd time)."""
    return frozenset(_new_york_phase_counts(step_times, interval))


def session_bar_counts(step_times: np.ndarray) -> np.ndarray:
    """How many distinct bar starts each New York calendar day with a bar holds (a stock's sessions: the
    lake keeps a stock's bars starting in the session, 04:00 .. 20:00 New York at the widest, one date)."""
    t = np.unique(np.asarray(step_times, dtype=np.int64))
    if t.size == 0:
        return np.zeros(0, np.int64)
    days, at = np.unique(t // US_PER_DAY, return_inverse=True)
    offset = np.array([_new_york_offset_us(int(d)) for d in days], dtype=np.int64)
    local_day = (t + offset[at]) // US_PER_DAY
    return np.unique(local_day, return_counts=True)[1]


def observed_bars_a_session(step_times: np.ndarray) -> float | None:
    """The bars a session of these steps holds: the steps seen over the sessions they span, the sessions
    being the New York days with a bar. The first and last of three or more are left out, bars and session
    alike (the warm-up and window cut a segment's first session, and the period may cut its first and last):
    a cut session then counts as the fraction of a session its bars make, not as a whole one. Of one or two
    sessions, the fuller one (None for no bar). The mean over the sessions, not their median: a stock whose
    sessions are sparse on some days and full on others (40 of 30 bars, 21 of 390) holds 152 bars a session
    on the whole, and its annualised return is of the 0.24 year its 61 sessions span (the median, 30, read
    them as 1.24 years). A half day among full sessions counts as the session it is (252 sessions a year hold
    a few), its bars lowering the mean as they lower a year's bars."""
    counts = session_bar_counts(step_times)
    if counts.size == 0:
        return None
    if counts.size < 3:
        return float(counts.max())
    inner = counts[1:-1]
    return float(inner.sum()) / inner.size


def symbol_bars_per_year(
    step_times: np.ndarray, calendar: str, interval: str, session: str = "regular"
) -> float:
    """Bars in a year of one symbol whose steps fall at these times: `bars_per_year`; an intraday stock's,
    252 sessions times the bars its own sessions hold (`observed_bars_a_session`), not the bars a session
    could hold on the interval's grid: a stock with a bar every other minute is 252 x 195 a year, not
    252 x 390 (which reads its Sharpe sqrt(2) high); hourly bars on the hour 252 x 6, at half past 252 x 7; a
    file that switches grids, or has a stray bar, is counted by what its sessions hold, never the grids added
    (7 + 6). No bar: the grid starting at the session's open. (The overall portfolio of symbols whose bars
    start at different times goes to calendar days: `portfolio_annualisation`.)"""
    if calendar_of(calendar) == "24/7" or interval_minutes(interval) >= 1440:
        return bars_per_year(interval, calendar, session)
    bars = observed_bars_a_session(step_times)
    if bars is None:
        return bars_per_year(interval, calendar, session)
    return SESSIONS_PER_YEAR * bars


US_PER_DAY = 86_400_000_000
"""Microseconds in a UTC calendar day."""


@dataclass(frozen=True)
class Annualisation:
    """How the overall portfolio's Sharpe and Sortino are annualised (`portfolio_annualisation`)."""

    per_year: float
    """Returns a year: bars of the symbols' common grid, or 365 calendar days."""
    calendar_days: bool
    """True: the portfolio's per-step returns are first summed per UTC calendar day (`calendar_day_returns`)."""


def calendar_day_returns(ts: np.ndarray, log_return: np.ndarray) -> np.ndarray:
    """The log returns of a series summed per UTC calendar day (a step counts on the day its bar opens), one
    value for every day from the first step's to the last step's: a day without a step returns 0."""
    t = np.asarray(ts, dtype=np.int64)
    r = np.asarray(log_return, dtype=np.float64)
    if t.shape != r.shape or t.ndim != 1:
        raise MarketlakeError(f"calendar days: ts {t.shape} and log_return {r.shape} must be of one length")
    if t.size == 0:
        return np.zeros(0)
    day = t // US_PER_DAY
    first = int(day.min())
    return np.bincount(day - first, weights=r, minlength=int(day.max()) - first + 1)


def portfolio_annualisation(
    step_times: list[np.ndarray], calendars: list[str], interval: str, session: str = "regular"
) -> Annualisation:
    """How to annualise a portfolio whose steps are every distinct bar time of its symbols (each symbol's
    step times and calendar given; symbols without a step left out).

    One grid: when the union of the symbols' step times lies on one grid, the portfolio has that grid's
    steps and is annualised per step like it (`bars_per_year`): all symbols of the exchange calendar whose
    intraday bars start at the same New York times within the interval (`new_york_phases`, whatever the
    daylight-saving shift of their UTC times; by the bars the union's sessions hold,
    `observed_bars_a_session`; daily and longer bars: the sessions), or 24/7 symbols whose
    bars all start at one offset within the interval (UTC midnight for 1d, the hour for 1h) with any
    exchange-calendar symbols' bars starting at that offset too (stocks at 1m, 5m, 15m).
    Otherwise (a stock's daily bar at 14:30 UTC beside a crypto's at 00:00; stock hours at half past beside
    crypto hours on the hour, or beside another stock's hours on the hour: 13 steps a session, not 7; one
    stock whose own bars mix grids, a file switching from half past to on the hour or a stray 10:15 bar) the
    portfolio steps more often than either grid, and at uneven times: its
    returns are summed per UTC calendar day and annualised by 365 days. The equity of a share is carried
    over the days its market is closed, so those days return 0, as a 24/7 asset's calendar counts them;
    for returns independent from step to step, summing them over days and annualising by the days gives
    the same annualised Sharpe as the per-step one (mean and variance both add up over a day)."""
    cals = [calendar_of(c) for c in calendars]
    if len(step_times) != len(cals):
        raise MarketlakeError(
            f"annualisation: {len(step_times)} series of step times for {len(cals)} calendars"
        )
    if not cals:
        return Annualisation(bars_per_year(interval, "24/7", session), False)
    if set(cals) == {"XNYS"}:
        if interval_minutes(interval) >= 1440:
            return Annualisation(bars_per_year(interval, "XNYS", session), False)
        on = [p for p in (new_york_phases(t, interval) for t in step_times) if p]
        if any(p != on[0] or len(p) > 1 for p in on):  # grids differ, or one symbol's bars mix grids
            return Annualisation(float(DAYS_PER_YEAR_24_7), True)
        union = np.concatenate([np.asarray(t, dtype=np.int64) for t in step_times]) if on else None
        bars = observed_bars_a_session(union) if union is not None else None
        if bars is None:
            return Annualisation(bars_per_year(interval, "XNYS", session), False)
        return Annualisation(SESSIONS_PER_YEAR * bars, False)
    step = interval_minutes(interval) * 60_000_000
    phases = [set(np.unique(np.asarray(t, dtype=np.int64) % step).tolist()) for t in step_times]
    grid = set().union(*(p for p, c in zip(phases, cals, strict=True) if c == "24/7"))
    if len(grid) == 1 and all(p <= grid for p in phases):
        return Annualisation(bars_per_year(interval, "24/7", session), False)
    return Annualisation(float(DAYS_PER_YEAR_24_7), True)


@dataclass(frozen=True)
class Metrics:
    """The metrics of one series (a symbol, or the overall portfolio)."""

    bars: int
    total_return: float
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    turnover: float
    trades: int
    exposure: float
    hit_rate: float | None
    too_few_to_annualise: bool = False
    """The Sharpe or Sortino has a value other than 0 but rests on fewer returns than a month's worth, or
    fewer than 30 non-zero ones (`nonzero_returns`; the rule: `too_few_to_annualise`): print it, and the annualised return, with
    TOO_FEW_TO_ANNUALISE beside it."""
    ratios_on_calendar_days: bool = False
    """The Sharpe and Sortino are of the series' UTC calendar-day returns (`calendar_day_returns`), annualised
    by 365 days, not of its steps (the overall portfolio of symbols whose bars fall at different times)."""
    annual_return: float | None = None
    """The annualised return (CAGR): `exp(sum(log_return) x per_year / n) - 1` over the n returns the Sharpe
    is taken on (steps, or calendar days), annualised as it is; None with no return (or beyond a float)."""
    annual_volatility: float | None = None
    """The annualised volatility: the standard deviation (ddof 1) of the simple returns the Sharpe is taken
    on x sqrt(per_year); None with fewer than 2 returns."""
    nonzero_returns: int = 0
    """How many of the returns the Sharpe is taken on are not 0: what the ratios rest on (a flat step returns
    exactly 0, however many of them there are)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MIN_ANNUALISED_STEPS = 30
"""Fewest non-zero returns an annualised figure is given without a warning (see min_annualised_steps)."""
TOO_FEW_TO_ANNUALISE = "too few bars for an annualised figure"
TOO_FEW_NOTE = (
    f"* {TOO_FEW_TO_ANNUALISE}: under a month's worth of bars (at least {MIN_ANNUALISED_STEPS}), or fewer "
    f"than {MIN_ANNUALISED_STEPS} non-zero returns (a flat bar's is 0): an extrapolation, read it with the "
    "return"
)
"""The legend of a figure marked `*` (`evaluate`'s table and the `runs` listing)."""


def too_few_to_annualise(returns: int, nonzero: int, per_year: float) -> bool:
    """The rule of the `*`: fewer returns (bars, or calendar days) than `min_annualised_steps` (a month's
    worth, at least 30), or fewer than MIN_ANNUALISED_STEPS of them not 0. Half a year of one-minute crypto
    invested 8% of the time (21,000 non-zero returns of 262,800) is not flagged: the month is of the bars
    the figure spans, the 30 of the non-zero returns it rests on."""
    return returns < min_annualised_steps(per_year) or nonzero < MIN_ANNUALISED_STEPS


def min_annualised_steps(per_year: float) -> int:
    """The fewest returns an annualised ratio is given without a warning: 30, and a month's worth of
    the calendar (per_year / 12, e.g. 43,800 one-minute crypto bars); of them, at least 30 not 0
    (`too_few_to_annualise`). The standard error of a Sharpe ratio
    annualised from n returns is about sqrt(per_year / n), 1 / sqrt(years): 3.5 for a month, 6 for 7 daily
    bars (where a single non-zero return makes the Sharpe exactly +-sqrt(per_year / n)); below 30 returns
    the sample deviation itself is unsteady, and below a month the figure extrapolates a sample more than
    twelvefold. Only the non-zero returns count: the flat steps between a handful of invested ones add
    zeros, not information (they shrink the deviation and the mean alike). The value is kept, and
    flagged."""
    return max(MIN_ANNUALISED_STEPS, math.ceil(per_year / 12))


def scored_symbols(per_symbol: Mapping[str, Metrics]) -> list[str]:
    """The symbols whose series has at least one step (one policy's metrics per symbol): the ones an
    evaluation scored, and the only ones its overall portfolio holds. A symbol of the period with no bar to
    decide on (fewer than window + 1 rows in each segment) has 0 bars and no Sharpe."""
    return [s for s, m in per_symbol.items() if m.bars > 0]


def _ratio(num: float, den: float) -> float | None:
    if den > 0 and math.isfinite(den):
        return num / den
    return 0.0 if num == 0 else None


def sharpe(log_return: np.ndarray, bars_per_year: float) -> float | None:
    """Annualised Sharpe ratio of the simple returns of the given log returns."""
    r = np.expm1(np.asarray(log_return, dtype=np.float64))
    if r.size < 2:
        return 0.0 if r.size and r[0] == 0 else None
    value = _ratio(float(r.mean()), float(r.std(ddof=1)))
    return None if value is None else value * math.sqrt(bars_per_year)


def sortino(log_return: np.ndarray, bars_per_year: float) -> float | None:
    """Annualised Sortino ratio of the simple returns of the given log returns (target 0)."""
    r = np.expm1(np.asarray(log_return, dtype=np.float64))
    if r.size == 0:
        return None
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    value = _ratio(float(r.mean()), downside)
    return None if value is None else value * math.sqrt(bars_per_year)


def drawdown(log_return: np.ndarray) -> np.ndarray:
    """Per step, the fall of equity below its running peak (start = 1.0 counts as a peak), 0..1."""
    r = np.asarray(log_return, dtype=np.float64)
    log_equity = np.concatenate([[0.0], np.cumsum(r)])
    peak = np.maximum.accumulate(log_equity)
    return np.asarray(-np.expm1(log_equity - peak)[1:], dtype=np.float64)


def max_drawdown(log_return: np.ndarray) -> float:
    dd = drawdown(log_return)
    return float(dd.max()) if dd.size else 0.0


def annual_return(log_return: np.ndarray, per_year: float) -> float | None:
    """The annualised return (CAGR) of these returns, one each 1 / per_year of a year: `exp(sum x per_year /
    n) - 1`; None for no return, or one beyond a float (a few bars' gain extrapolated to a year)."""
    r = np.asarray(log_return, dtype=np.float64)
    if r.size == 0:
        return None
    with np.errstate(over="ignore"):
        value = float(np.expm1(r.sum() * per_year / r.size))
    return value + 0.0 if math.isfinite(value) else None


def annual_volatility(log_return: np.ndarray, per_year: float) -> float | None:
    """The annualised volatility of the simple returns of these log returns: std (ddof 1) x sqrt(per_year)."""
    r = np.expm1(np.asarray(log_return, dtype=np.float64))
    if r.size < 2:
        return None
    return float(r.std(ddof=1)) * math.sqrt(per_year) + 0.0


def compute_metrics(
    log_return: np.ndarray,
    position: np.ndarray,
    turnover: np.ndarray,
    *,
    bars_per_year: float,
    trades: int | None = None,
    ts: np.ndarray | None = None,
    calendar_days: bool = False,
    tradable: np.ndarray | None = None,
    traded: np.ndarray | None = None,
) -> Metrics:
    """Every metric of one series. `trades` overrides the count of steps with turnover (for a portfolio,
    the sum over its symbols). `calendar_days`: the Sharpe, Sortino, annualised return and volatility are of
    the series' UTC calendar-day returns (`calendar_day_returns` of `ts`, the steps' times in microseconds),
    and `bars_per_year` is the days in a year (365); every other metric is of the steps. `tradable`: per
    step, the share of the equity that counts then (a portfolio's: the shares whose symbol has begun, its
    positions carried between bars: `rl.evaluate.portfolio_series`); exposure is then sum(|position|) /
    sum(tradable); None: every step counts (1). `traded`: per step, whether a position was held by a symbol
    with a bar then, the steps the hit rate is taken over (a portfolio's: a position carried while its
    market is closed returns 0 there, which is no miss); None: the steps whose position is not 0."""
    r = np.asarray(log_return, dtype=np.float64)
    pos = np.asarray(position, dtype=np.float64)
    turn = np.asarray(turnover, dtype=np.float64)
    if not (r.shape == pos.shape == turn.shape) or r.ndim != 1:
        raise MarketlakeError(
            f"metrics: log_return {r.shape}, position {pos.shape} and turnover {turn.shape} must be "
            "1-d arrays of one length"
        )
    if not (np.isfinite(r).all() and np.isfinite(pos).all() and np.isfinite(turn).all()):
        raise MarketlakeError("metrics: the series holds NaN or infinite values")
    if calendar_days:
        if ts is None:
            raise MarketlakeError("metrics: calendar-day ratios need the steps' times (ts)")
        per_ratio = calendar_day_returns(ts, r)
    else:
        per_ratio = r
    ratios = _clean(sharpe(per_ratio, bars_per_year)), _clean(sortino(per_ratio, bars_per_year))
    growth = annual_return(per_ratio, bars_per_year)
    nonzero = int(np.count_nonzero(per_ratio))
    few = too_few_to_annualise(per_ratio.size, nonzero, bars_per_year) and any(
        x not in (None, 0.0) for x in ratios
    )
    invested = pos != 0 if traded is None else np.asarray(traded, dtype=bool)
    n_invested = int(invested.sum())
    total = float(np.expm1(r.sum())) if r.size else 0.0
    if tradable is None:
        exposure = float(np.abs(pos).mean()) if pos.size else 0.0
    else:
        could = float(np.asarray(tradable, dtype=np.float64).sum())
        exposure = float(np.abs(pos).sum()) / could if could > 0 else 0.0
    return Metrics(
        bars=int(r.size),
        total_return=total + 0.0,  # -0.0 -> 0.0
        sharpe=ratios[0],
        sortino=ratios[1],
        max_drawdown=max_drawdown(r) + 0.0,
        turnover=float(np.abs(turn).sum()) + 0.0,
        trades=int(np.count_nonzero(turn)) if trades is None else int(trades),
        exposure=exposure + 0.0,
        hit_rate=float((r[invested] > 0).sum() / n_invested) if n_invested else None,
        too_few_to_annualise=bool(few),
        ratios_on_calendar_days=calendar_days,
        annual_return=growth,
        annual_volatility=annual_volatility(per_ratio, bars_per_year),
        nonzero_returns=nonzero,
    )


def _clean(x: float | None) -> float | None:
    return None if x is None else x + 0.0


# --- the bootstrap ----------------------------------------------------------------------------------------

RESAMPLES = 10_000
"""Resamples of an evaluation's bootstrap: enough that the interval's ends move little from one seed to the
next (their Monte-Carlo error is about a third of 1,000 resamples'), and cheap: a resample costs one sum per
block (`bootstrap_sharpe_difference`), about 2 s for 100,000 bars."""
MC_Z = 3.0
"""How many Monte-Carlo standard errors of an interval end its band spans each side (`SharpeDiffCI`): 0 within
the band of an end is "borderline", no claim. 3, not 1.96: a band of 1.96 would leave 0 outside it for 1 seed
in 20 when the end is exactly 0 (3: about 1 in 400). The verdict may still differ with the seed: an end a few
standard errors from 0 is a claim for some seeds and borderline for others; a claim for one seed and "not
distinguishable" for another needs their ends 6 standard errors apart (about 1 seed in 700 each way), so
borderline is the no-claim word between them, not a guarantee that a claim is seed-proof."""


@dataclass(frozen=True)
class SharpeDiffCI:
    """A circular moving-block bootstrap interval of (agent Sharpe - baseline Sharpe) on the same bars."""

    difference: float
    """The point estimate, on the bars as they are (annualised)."""
    low: float
    high: float
    level: float
    bars: int
    """How many paired bars the interval rests on."""
    block_length: int
    resamples: int
    seed: int
    unit: str = "bars"
    """What `bars` counts: bars (steps), or UTC calendar days (the overall of symbols whose bars fall at
    different times: see portfolio_annualisation)."""
    too_few_to_annualise: bool = False
    """Fewer paired returns than min_annualised_steps asks, or fewer than 30 non-zero ones in either series
    (`too_few_to_annualise`): the sentence says so."""
    low_band: tuple[float, float] = (math.nan, math.nan)
    """The Monte-Carlo band of `low`: where another seed's low end would fall (the order statistics MC_Z
    binomial standard errors either side of the percentile's rank among the resamples)."""
    high_band: tuple[float, float] = (math.nan, math.nan)
    """The Monte-Carlo band of `high`, likewise."""
    band_z: float = MC_Z
    """The standard errors each band spans each side."""

    @property
    def contains_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    @property
    def borderline(self) -> bool:
        """0 lies within the Monte-Carlo band of one end: the resampling's own error could put it on either
        side of 0, so whether the interval contains 0 depends on the seed. (A band of one point has no such
        error: every resample gave that end, e.g. an agent that is buy-and-hold, 0 whatever the draws.)"""
        return any(_straddles(band) for band in (self.low_band, self.high_band))

    @property
    def verdict(self) -> str:
        """no interval, borderline, not distinguishable, better or worse (than buy-and-hold)."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "no interval"
        if self.borderline:
            return "borderline"
        if self.contains_zero:
            return "not distinguishable"
        return "better" if self.low > 0 else "worse"

    @property
    def sentence(self) -> str:
        pct = f"{self.level:.0%}"
        head = (
            f"Agent Sharpe minus buy-and-hold Sharpe: {self.difference:+.2f} "
            f"({pct} interval {self.low:+.2f} to {self.high:+.2f}, {self.bars} {self.unit}"
            + (f": {TOO_FEW_TO_ANNUALISE})" if self.too_few_to_annualise else ")")
        )
        verdict = self.verdict
        if verdict == "no interval":
            return f"{head}: no interval (too little variation in the returns): no claim either way."
        if verdict == "borderline":
            end, (lo, hi) = (
                ("lower", self.low_band) if _straddles(self.low_band) else ("upper", self.high_band)
            )
            return (
                f"{head}: borderline at {pct}: 0 is within the resampling's own error of the interval's {end} "
                f"end ({lo:+.2f} to {hi:+.2f} over {self.resamples} resamples), so no claim either way."
            )
        if verdict == "not distinguishable":
            return f"{head}: not distinguishable from luck at {pct}."
        return f"{head}: {verdict} than buy-and-hold beyond luck at {pct}."

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "low_band": list(self.low_band),
            "high_band": list(self.high_band),
            "contains_zero": self.contains_zero,
            "borderline": self.borderline,
            "verdict": self.verdict,
            "sentence": self.sentence,
        }


def _straddles(band: tuple[float, float]) -> bool:
    """0 lies within a band that is more than one point."""
    lo, hi = band
    return lo <= 0.0 <= hi and lo < hi


def default_block_length(n: int) -> int:
    """n^(1/3), rounded, at least 1: the usual rate for a moving-block bootstrap of a mean-like statistic."""
    return max(1, round(n ** (1.0 / 3.0)))


def _sharpe_rows(r: np.ndarray) -> np.ndarray:
    """Sharpe (not annualised) of each row; 0 where a row is constant at 0, NaN where constant elsewhere."""
    mean = r.mean(axis=1)
    std = r.std(axis=1, ddof=1)
    out = np.full(r.shape[0], np.nan)
    ok = std > 0
    out[ok] = mean[ok] / std[ok]
    out[~ok & (mean == 0)] = 0.0
    return out


def _prefix(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The running sums of x and of x^2, from 0: a block's sums are two differences of them."""
    zero = np.zeros(1)
    return np.concatenate([zero, np.cumsum(x)]), np.concatenate([zero, np.cumsum(x * x)])


def _resample_sums(p: np.ndarray, starts: np.ndarray, length: int, n: int) -> np.ndarray:
    """The sum of the values of each resample of n values made of blocks of `length` starting at `starts`
    (one row a resample; its last block cut to what n leaves), from the running sums `p` (`_prefix`)."""
    last = n - (starts.shape[1] - 1) * length
    full, tail = starts[:, :-1], starts[:, -1]
    return np.asarray((p[full + length] - p[full]).sum(axis=1) + (p[tail + last] - p[tail]))


def _block_sharpes(
    prefix: tuple[np.ndarray, np.ndarray], starts: np.ndarray, length: int, n: int
) -> np.ndarray:
    """The Sharpe (not annualised) of each resample of n values made of blocks of `length` starting at
    `starts` (one row a resample; its last block cut to what n leaves), from the blocks' sums (`_prefix`):
    what `_sharpe_rows` gives of the values gathered, without gathering them. A resample constant at 0 is 0;
    one whose deviation is within rounding of 0 (a constant other than 0) has none (NaN)."""
    p1, p2 = prefix
    s1 = _resample_sums(p1, starts, length, n)
    s2 = _resample_sums(p2, starts, length, n)
    mean = s1 / n
    squares = s2 - s1 * mean  # the sum of squared deviations from the mean
    out = np.full(starts.shape[0], np.nan)
    ok = squares > 1e-12 * s2
    out[ok] = mean[ok] / np.sqrt(squares[ok] / (n - 1))
    out[~ok & (s2 == 0)] = 0.0
    return out


def _band(sorted_values: np.ndarray, q: float, z: float) -> tuple[float, float]:
    """The Monte-Carlo band of the q-quantile of m sorted resampled values: the order statistics z binomial
    standard errors, sqrt(m q (1 - q)), either side of its rank q (m - 1)."""
    m = sorted_values.size
    rank, half = q * (m - 1), z * math.sqrt(m * q * (1 - q))
    lo = max(0, math.floor(rank - half))
    hi = min(m - 1, math.ceil(rank + half))
    return float(sorted_values[lo]) + 0.0, float(sorted_values[hi]) + 0.0


TIE_TOLERANCE = 1e-9
"""Paired returns this close, relative to their size (or to the series' mean size, for returns near 0), are
the same return (`tied_to_baseline`): a portfolio rebuilt through equity (the overall) gives an agent that
held what buy-and-hold held a return 1e-16 off buy-and-hold's, which is rounding, not an edge."""


def tied_to_baseline(agent: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """The agent's returns, with each one within TIE_TOLERANCE of the baseline's on its step replaced by the
    baseline's exactly: |a - b| <= 1e-9 x max(|a|, |b|, the mean of |a| and |b| over the series)."""
    a = np.asarray(agent, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    scale = float(np.abs(a).mean() + np.abs(b).mean()) / 2 if a.size else 0.0
    close = np.abs(a - b) <= TIE_TOLERANCE * np.maximum(np.maximum(np.abs(a), np.abs(b)), scale)
    return np.where(close, b, a)


def min_resamples(level: float = 0.95, band_z: float = MC_Z) -> int:
    """The fewest resamples whose interval ends have a Monte-Carlo band within the resamples: the rank of the
    (1 - level) / 2 quantile at least band_z binomial standard errors from the first resample,
    q (m - 1) >= z sqrt(m q (1 - q)); 353 at 95% with a band of 3. Fewer, and the band is cut at the most
    extreme resample, so the end's own error is not measured and a claim could rest on it: 1 resample made
    its band a single point and any interval a claim; 20 would claim "beyond luck" for about 6 seeds in 10
    (0.975^20) of an interval whose end is exactly 0."""
    q = (1 - level) / 2
    m = 2
    while q * (m - 1) < band_z * math.sqrt(m * q * (1 - q)):
        m += 1
    return m


BOOTSTRAP_CELLS = 1_000_000
"""Resampled blocks held at once by bootstrap_sharpe_difference (8 MB a copy, a few copies)."""


def bootstrap_sharpe_difference(
    agent: np.ndarray,
    baseline: np.ndarray,
    *,
    bars_per_year: float,
    seed: int = 0,
    resamples: int = RESAMPLES,
    block_length: int | None = None,
    level: float = 0.95,
    chunk: int | None = None,
    unit: str = "bars",
    band_z: float = MC_Z,
) -> SharpeDiffCI:
    """Resample the paired per-step returns (log returns in, their simple returns resampled) in circular
    moving blocks (starting at any step, wrapping past the last to the first: every step as likely to be
    drawn as any other; the same blocks for both series, so their dependence is kept) and return the percentile interval
    of the annualised Sharpe difference, with each end's Monte-Carlo band (`_band`: where the end would fall
    with other draws; 0 within it is "borderline", `SharpeDiffCI.verdict`).
    A resample's Sharpe is taken from its blocks' sums (`_block_sharpes`: one sum per block, not per value).
    `chunk`: resamples drawn and reduced at once (default: as many as BOOTSTRAP_CELLS blocks allow, so that
    memory stays bounded however long the series); the draws are the same whatever the chunk, and so is the
    interval. `unit`: what a return of the series spans, for the sentence (bars, or days for calendar-day
    returns)."""
    a = np.asarray(agent, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise MarketlakeError(f"bootstrap: paired series of one length needed, got {a.shape} and {b.shape}")
    n = int(a.size)
    if n < 2:
        raise MarketlakeError(f"bootstrap: {n} bar(s) are too few for a Sharpe ratio (need at least 2)")
    if not 0 < level < 1:
        raise MarketlakeError(f"bootstrap: level must be between 0 and 1, got {level}")
    fewest = min_resamples(level, band_z)
    if resamples < fewest:
        raise MarketlakeError(
            f"bootstrap: resamples must be at least {fewest} (rl.metrics.min_resamples at level {level:g}, "
            f"bands of {band_z:g} standard errors: fewer leave an interval end's own error unmeasured), "
            f"got {resamples}"
        )
    few = too_few_to_annualise(n, int(min(np.count_nonzero(a), np.count_nonzero(b))), bars_per_year)
    a = tied_to_baseline(a, b)
    a, b = np.expm1(a), np.expm1(b)  # the Sharpe ratios are of the simple returns
    length = min(n, block_length or default_block_length(n))
    scale = math.sqrt(bars_per_year)
    point = (_sharpe_rows(a[None, :]) - _sharpe_rows(b[None, :]))[0] * scale
    rng = np.random.default_rng(seed)
    blocks = -(-n // length)
    # circular blocks: a block may start at any of the n steps and wrap past the last to the first, so that
    # every step lies in as many blocks as any other (from starts 0 .. n - length, the first and last
    # length - 1 steps lay in fewer, and an edge at the period's start or end weighed less)
    wrap = np.r_[0:n, 0 : length - 1]
    a, b = a[wrap], b[wrap]
    pa, pb = _prefix(a), _prefix(b)
    # how many steps differ, running: a resample of none of them is the baseline's own, a difference of
    # exactly 0 (its block sums, taken from running sums that differ, would be off by rounding, +-1e-15)
    differ = np.concatenate([[0], np.cumsum(a != b)])
    diffs = np.empty(resamples)
    chunk = chunk or max(1, BOOTSTRAP_CELLS // blocks)
    for lo in range(0, resamples, chunk):
        k = min(chunk, resamples - lo)
        starts = rng.integers(0, n, size=(k, blocks))
        sb = _block_sharpes(pb, starts, length, n)
        tie = _resample_sums(differ, starts, length, n) == 0
        diffs[lo : lo + k] = np.where(tie, sb - sb, _block_sharpes(pa, starts, length, n) - sb) * scale
    finite = np.sort(diffs[np.isfinite(diffs)])
    nan = float("nan")
    low = high = nan
    low_band = high_band = (nan, nan)
    if finite.size:
        tail = (1 - level) / 2
        low, high = (float(x) for x in np.percentile(finite, [tail * 100, 100 - tail * 100]))
        low_band, high_band = _band(finite, tail, band_z), _band(finite, 1 - tail, band_z)
    return SharpeDiffCI(
        difference=float(point) + 0.0,
        low=low + 0.0,
        high=high + 0.0,
        level=level,
        bars=n,
        block_length=length,
        resamples=resamples,
        seed=seed,
        unit=unit,
        too_few_to_annualise=bool(few),
        low_band=low_band,
        high_band=high_band,
        band_z=band_z,
    )

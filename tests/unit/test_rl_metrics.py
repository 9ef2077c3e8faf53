"""rl.metrics against values computed by hand on short series, flat is zero, the bootstrap is honest."""

from __future__ import annotations

import datetime as dt
import math
import statistics
import tracemalloc
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from lake.errors import MarketlakeError
from rl import metrics
from rl.metrics import (
    bars_per_year,
    bootstrap_sharpe_difference,
    compute_metrics,
    drawdown,
    interval_minutes,
)

# Five steps of log returns; the Sharpe and Sortino are of their simple returns e^r - 1 (SIMPLE, computed
# here with the math and statistics modules, not numpy).
R = np.array([0.01, -0.01, 0.02, -0.005, 0.005])
SIMPLE = [math.expm1(x) for x in R.tolist()]
POS = np.array([1.0, 1.0, 1.0, 0.0, 1.0])
TURN = np.array([1.0, 0.0, 0.0, 1.0, 1.0])


def test_sharpe_by_hand() -> None:
    m = compute_metrics(R, POS, TURN, bars_per_year=252)
    want = statistics.mean(SIMPLE) / statistics.stdev(SIMPLE) * math.sqrt(252)
    assert m.sharpe == pytest.approx(want, rel=1e-12)
    # not the Sharpe of the log returns (mean 0.004, sample deviation sqrt(0.00057 / 4)): pyfolio's is simple
    assert m.sharpe != pytest.approx(0.004 / math.sqrt(0.00057 / 4) * math.sqrt(252), rel=1e-3)


def test_sortino_by_hand() -> None:
    # downside: min(r, 0) of the simple returns: the 2nd and 4th, e^-0.01 - 1 and e^-0.005 - 1, over 5 steps
    m = compute_metrics(R, POS, TURN, bars_per_year=252)
    downside = math.sqrt((math.expm1(-0.01) ** 2 + math.expm1(-0.005) ** 2) / 5)
    assert m.sortino == pytest.approx(statistics.mean(SIMPLE) / downside * math.sqrt(252), rel=1e-12)


def test_max_drawdown_by_hand() -> None:
    # equity: e^.01, e^0, e^.02, e^.015, e^.02; the deepest fall is from e^.01 to e^0: 1 - e^-.01
    m = compute_metrics(R, POS, TURN, bars_per_year=252)
    assert m.max_drawdown == pytest.approx(1 - math.exp(-0.01), rel=1e-12)
    # a first step that loses counts against the starting equity
    assert compute_metrics(np.array([-0.1, 0.05]), np.ones(2), np.zeros(2), bars_per_year=1).max_drawdown == (
        pytest.approx(1 - math.exp(-0.1))
    )
    assert drawdown(np.array([-0.1, 0.05, 0.05])) == pytest.approx(
        [1 - math.exp(-0.1), 1 - math.exp(-0.05), 0.0], abs=1e-15
    )


def test_turnover_trades_exposure_hit_rate_by_hand() -> None:
    m = compute_metrics(R, POS, np.array([1.0, 0.0, 0.0, 1.0, 2.0]), bars_per_year=252)
    assert m.turnover == 4.0
    assert m.trades == 3
    assert m.exposure == pytest.approx(0.8)
    # invested steps: 0.01, -0.01, 0.02, 0.005 -> 3 of 4 positive
    assert m.hit_rate == pytest.approx(0.75)
    assert m.total_return == pytest.approx(math.exp(0.02) - 1)
    assert m.bars == 5


def test_flat_is_exactly_zero_on_every_metric_with_a_value() -> None:
    zeros = np.zeros(100)
    m = compute_metrics(zeros, zeros, zeros, bars_per_year=525_600).to_dict()
    assert m.pop("bars") == 100
    assert m.pop("hit_rate") is None  # never invested: no value
    assert m == {k: 0 for k in m}
    assert all(v == 0.0 and math.copysign(1, v) == 1 for v in m.values())


def test_constant_nonzero_returns_have_no_sharpe() -> None:
    m = compute_metrics(np.full(4, 0.01), np.ones(4), np.zeros(4), bars_per_year=252)
    assert m.sharpe is None and m.sortino is None


def test_bad_series_are_refused() -> None:
    with pytest.raises(MarketlakeError, match="one length"):
        compute_metrics(R, POS[:3], TURN, bars_per_year=1)
    with pytest.raises(MarketlakeError, match="NaN"):
        compute_metrics(np.array([np.nan, 0.0]), np.zeros(2), np.zeros(2), bars_per_year=1)


@pytest.mark.parametrize(
    ("interval", "calendar", "session", "expected"),
    [
        ("1m", "stock", "regular", 252 * 390),
        ("1m", "XNYS", "extended", 252 * 960),
        ("5m", "etf", "regular", 252 * 78),
        ("1d", "stock", "regular", 252),
        ("1w", "stock", "regular", 252 / 5),
        ("1m", "crypto", "regular", 365 * 1440),
        ("1h", "24/7", "regular", 365 * 24),
        ("1d", "crypto", "regular", 365),
    ],
)
def test_bars_per_year(interval: str, calendar: str, session: str, expected: float) -> None:
    assert bars_per_year(interval, calendar, session) == pytest.approx(expected)


def test_bad_interval_or_calendar_named() -> None:
    with pytest.raises(MarketlakeError, match="'7x'"):
        interval_minutes("7x")
    with pytest.raises(MarketlakeError, match="'forex'"):
        bars_per_year("1m", "forex")


def _paired(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.001, 0.01, n), rng.normal(0.0, 0.01, n)


def test_bootstrap_is_seeded() -> None:
    a, b = _paired(500, 1)
    one = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=7, resamples=400)
    two = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=7, resamples=400)
    other = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=8, resamples=400)
    assert (one.low, one.high) == (two.low, two.high)
    assert (one.low, one.high) != (other.low, other.high)
    assert one.bars == 500 and one.block_length == 8


def test_bootstrap_gives_the_same_interval_whatever_its_chunk_and_bounds_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1e-3, 1e-2, 5000), rng.normal(0, 1e-2, 5000)
    want = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=1, resamples=400, chunk=50)
    for chunk in (1, 7, 120):
        got = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=1, resamples=400, chunk=chunk)
        assert got == want, chunk
    # by default a chunk holds at most BOOTSTRAP_CELLS resampled values: the peak memory stays bounded
    # (50 resamples of 100,000 bars at once would be 40 MB a copy)
    long_a, long_b = rng.normal(1e-3, 1e-2, 100_000), rng.normal(0, 1e-2, 100_000)
    monkeypatch.setattr(metrics, "BOOTSTRAP_CELLS", 200_000)
    tracemalloc.start()
    try:
        bootstrap_sharpe_difference(long_a, long_b, bars_per_year=252, seed=1, resamples=400)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 25_000_000, peak


def test_bootstrap_interval_covers_the_true_difference() -> None:
    # Log returns drawn normal (mean mu, sd 0.01): agent mu 0.001, baseline 0. Their simple returns are
    # lognormal minus 1: mean e^(mu + s^2/2) - 1, variance e^(2 mu + s^2) (e^(s^2) - 1), whence the true
    # per-bar Sharpe of each (about 0.105 and 0.005) and the true annualised difference. Over 40 independent
    # draws, a 95% interval should cover it nearly always.
    def true_sharpe(mu: float, sd: float = 0.01) -> float:
        mean = math.expm1(mu + sd**2 / 2)
        return mean / math.sqrt(math.exp(2 * mu + sd**2) * math.expm1(sd**2))

    true = (true_sharpe(0.001) - true_sharpe(0.0)) * math.sqrt(252)
    covered = 0
    for seed in range(40):
        a, b = _paired(1000, seed)
        ci = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=seed, resamples=400)
        assert ci.low < ci.difference < ci.high
        covered += ci.low <= true <= ci.high
    assert covered >= 34


def test_bootstrap_words_when_zero_is_inside() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, 300)
    same = bootstrap_sharpe_difference(noise, noise + rng.normal(0, 1e-4, 300), bars_per_year=252, seed=0)
    assert same.contains_zero
    assert "not distinguishable from luck at 95%" in same.sentence
    assert "300 bars" in same.sentence
    clear = bootstrap_sharpe_difference(
        rng.normal(0.01, 0.01, 300), rng.normal(-0.01, 0.01, 300), bars_per_year=252, seed=0
    )
    assert not clear.contains_zero and clear.low > 0
    assert "better than buy-and-hold beyond luck" in clear.sentence


def test_bootstrap_of_flat_against_flat_is_zero() -> None:
    z = np.zeros(50)
    ci = bootstrap_sharpe_difference(z, z, bars_per_year=252, seed=0, resamples=400)
    assert (ci.difference, ci.low, ci.high) == (0.0, 0.0, 0.0)


def test_an_interval_that_could_not_be_computed_makes_no_claim() -> None:
    from rl.metrics import SharpeDiffCI

    ci = SharpeDiffCI(
        difference=0.0,
        low=float("nan"),
        high=float("nan"),
        level=0.95,
        bars=3,
        block_length=1,
        resamples=400,
        seed=0,
    )
    assert "no claim" in ci.sentence and "worse" not in ci.sentence and "better" not in ci.sentence


# --- calendar days for the overall of symbols whose bars fall at different times ---------------------------

DAY = metrics.US_PER_DAY
HOUR = DAY // 24


def test_calendar_day_returns_sum_each_utc_day_and_fill_the_days_between_with_zero() -> None:
    t0 = 19_000 * DAY  # a UTC midnight
    ts = np.array([t0 + HOUR, t0 + 23 * HOUR, t0 + 2 * DAY + 5 * HOUR, t0 + 2 * DAY + 14 * HOUR])
    got = metrics.calendar_day_returns(ts, np.array([0.01, -0.02, 0.03, 0.005]))
    assert got.tolist() == pytest.approx([0.01 - 0.02, 0.0, 0.03 + 0.005], abs=1e-15)
    assert metrics.calendar_day_returns(np.zeros(0, np.int64), np.zeros(0)).size == 0


def _times(start_us: int, step_us: int, n: int) -> np.ndarray:
    return start_us + step_us * np.arange(n, dtype=np.int64)


@pytest.mark.parametrize(
    ("interval", "stock_offset", "crypto_offsets", "expected"),
    [
        # daily: stock bars at 14:30 UTC, crypto at midnight -> calendar days
        ("1d", 14 * HOUR + 30 * 60_000_000, [0], (365.0, True)),
        # daily stocks stamped at midnight: on the crypto's grid
        ("1d", 0, [0], (365.0, False)),
        # hourly: stock bars on the half hour, crypto on the hour -> calendar days
        ("1h", 30 * 60_000_000, [0], (365.0, True)),
        # one-minute bars: the stock's minutes are crypto minutes -> per step, 24/7
        ("1m", 30 * 60_000_000, [0], (365 * 1440, False)),
        ("15m", 30 * 60_000_000, [0], (365 * 96, False)),
        # two cryptos stamped at different hours of the day: twice the steps of either -> calendar days
        ("1d", None, [0, 12 * HOUR], (365.0, True)),
        ("1d", None, [0, 0], (365.0, False)),
    ],
)
def test_portfolio_annualisation(
    interval: str, stock_offset: int | None, crypto_offsets: list[int], expected: tuple[float, bool]
) -> None:
    step = metrics.interval_minutes(interval) * 60_000_000
    t0 = 19_000 * DAY
    times = [_times(t0 + off, step, 50) for off in crypto_offsets]
    cals = ["crypto"] * len(crypto_offsets)
    if stock_offset is not None:
        times.append(_times(t0 + stock_offset, step, 20))
        cals.append("stock")
    got = metrics.portfolio_annualisation(times, cals, interval)
    assert (got.per_year, got.calendar_days) == pytest.approx(expected)


def test_portfolio_annualisation_of_stocks_only_is_their_calendar_whatever_the_daylight_saving() -> None:
    summer, winter = _times(19_000 * DAY + 13 * HOUR + 1800 * 10**6, DAY, 5), _times(19_200 * DAY, DAY, 5)
    winter += 14 * HOUR + 1800 * 10**6
    got = metrics.portfolio_annualisation([summer, winter], ["stock", "etf"], "1d")
    assert (got.per_year, got.calendar_days) == (252, False)
    assert metrics.portfolio_annualisation([], [], "1d") == metrics.Annualisation(365, False)


def test_calendar_day_ratios_by_hand() -> None:
    # steps at 00:00 and 14:30 of day 0, then 00:00 of day 2: days 0, 1, 2 return r0 + r1, 0, r2
    ts = np.array([0, 14 * HOUR + 1800 * 10**6, 2 * DAY]) + 19_000 * DAY
    r = np.array([0.01, 0.02, -0.01])
    m = compute_metrics(r, np.ones(3), np.zeros(3), bars_per_year=365, ts=ts, calendar_days=True)
    days = [math.expm1(0.03), 0.0, math.expm1(-0.01)]  # the days' simple returns
    mean = sum(days) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in days) / 2)
    assert m.sharpe == pytest.approx(mean / std * math.sqrt(365), rel=1e-12)
    assert m.sortino == pytest.approx(mean / math.sqrt(days[2] ** 2 / 3) * math.sqrt(365), rel=1e-12)
    assert m.ratios_on_calendar_days and m.bars == 3  # the other metrics are the steps'
    assert m.total_return == pytest.approx(math.exp(0.02) - 1)
    with pytest.raises(MarketlakeError, match="times"):
        compute_metrics(r, np.ones(3), np.zeros(3), bars_per_year=365, calendar_days=True)


# --- too few returns for an annualised figure --------------------------------------------------------------


def test_a_single_trade_in_seven_bars_is_sqrt_of_252_over_7_and_flagged() -> None:
    """One non-zero return among n gives a Sharpe of exactly sqrt(bars_per_year / n) whatever its size:
    seven daily bars, 6.00. Kept, and flagged."""
    r = np.array([0.0, 0.0, 0.0, 0.004, 0.0, 0.0, 0.0])
    m = compute_metrics(r, np.ones(7), np.zeros(7), bars_per_year=252)
    assert m.sharpe == pytest.approx(math.sqrt(252 / 7), rel=1e-12)
    assert m.too_few_to_annualise


@pytest.mark.parametrize(
    ("n", "per_year", "flagged"),
    [
        (29, 252, True),
        (30, 252, False),  # 30 returns, more than a month of sessions (21)
        (30, 365, True),  # a month of calendar days is 31 (365 / 12 = 30.4)
        (31, 365, False),
        (1000, 365 * 1440, True),  # 1000 minutes: much less than a month of crypto minutes (43,800)
        (43_800, 365 * 1440, False),
    ],
)
def test_annualised_ratios_from_fewer_than_30_returns_or_a_month_are_flagged(
    n: int, per_year: float, flagged: bool
) -> None:
    r = np.random.default_rng(n).normal(0.001, 0.01, n)
    m = compute_metrics(r, np.ones(n), np.zeros(n), bars_per_year=per_year)
    assert m.too_few_to_annualise is flagged and m.sharpe is not None  # flagged, not dropped
    assert metrics.min_annualised_steps(per_year) == max(30, math.ceil(per_year / 12))


def test_a_flat_series_is_not_flagged_however_short() -> None:
    """A Sharpe of exactly 0 (never invested) or no Sharpe at all is no extrapolation."""
    assert not compute_metrics(np.zeros(5), np.zeros(5), np.zeros(5), bars_per_year=252).too_few_to_annualise
    const = compute_metrics(np.full(4, 0.01), np.ones(4), np.zeros(4), bars_per_year=252)
    assert const.sharpe is None and const.sortino is None and not const.too_few_to_annualise


def test_the_interval_says_when_it_rests_on_too_few_bars() -> None:
    a, b = _paired(7, 0)
    few = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=0, resamples=400)
    assert few.too_few_to_annualise and "7 bars: too few bars for an annualised figure)" in few.sentence
    a, b = _paired(40, 0)
    enough = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=0, resamples=400, unit="days")
    assert not enough.too_few_to_annualise and "40 days)" in enough.sentence
    assert enough.to_dict()["too_few_to_annualise"] is False


# --- intraday stocks: the bars a session holds on each symbol's own grid ------------------------------------

NEW_YORK = ZoneInfo("America/New_York")


def _stock_bars(first: str, interval: str, days: list[dt.date]) -> np.ndarray:
    """The bar starts (UTC microseconds) of full regular sessions as a source stamps them, built with
    datetime in New York time: `first` (HH:MM) is the session's first bar, then one every interval while
    before 16:00 (yfinance: 09:30, 10:30, ..., 15:30; a clock-hour export as the lake keeps it: 10:00, ...,
    15:00, its 09:30 half hour rejected)."""
    step = dt.timedelta(minutes=interval_minutes(interval))
    hh, mm = (int(x) for x in first.split(":"))
    out = []
    for d in days:
        t = dt.datetime(d.year, d.month, d.day, hh, mm, tzinfo=NEW_YORK)
        close = dt.datetime(d.year, d.month, d.day, 16, tzinfo=NEW_YORK)
        while t < close:
            out.append(int(t.astimezone(dt.UTC).timestamp()) * 1_000_000)
            t += step
    return np.array(sorted(out), np.int64)


# weekdays across the 2024-03-10 daylight-saving switch (UTC offsets -5 then -4)
SESSION_DAYS = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(14) if (4 + i) % 7 not in (2, 3)]
GRIDS = [
    ("09:30", "1h"),
    ("10:00", "1h"),
    ("09:30", "30m"),
    ("09:45", "30m"),
    ("09:30", "15m"),
    ("09:30", "1m"),
]


def _most_bars_a_day(ts: np.ndarray) -> int:
    """Brute force: the most distinct bar starts of any one New York day."""
    per_day: dict[dt.date, set[int]] = {}
    for t in ts.tolist():
        day = dt.datetime.fromtimestamp(t / 1e6, tz=NEW_YORK).date()
        per_day.setdefault(day, set()).add(t)
    return max(len(v) for v in per_day.values())


@pytest.mark.parametrize(("first", "interval"), GRIDS)
def test_an_intraday_stock_is_annualised_by_the_bars_its_sessions_hold(first: str, interval: str) -> None:
    """252 sessions times the bars a full session holds on the symbol's own grid, counted by brute force:
    on-the-hour hours are 6 a session (not ceil(390 / 60) = 7, which read their Sharpe ~8% high)."""
    ts = _stock_bars(first, interval, SESSION_DAYS)
    want = 252 * _most_bars_a_day(ts)
    assert metrics.symbol_bars_per_year(ts, "stock", interval) == want
    assert metrics.portfolio_annualisation([ts, ts[5:]], ["stock", "etf"], interval) == (
        metrics.Annualisation(want, False)
    )


def test_on_the_hour_and_half_past_hours_by_the_numbers() -> None:
    half, hour = (_stock_bars(f, "1h", SESSION_DAYS) for f in ("09:30", "10:00"))
    assert metrics.symbol_bars_per_year(half, "stock", "1h") == 252 * 7
    assert metrics.symbol_bars_per_year(hour, "stock", "1h") == 252 * 6
    # regular-hours bars with session = "extended": 6 a session, the bars its sessions hold (metrics_version
    # 3), not the 16 the extended grid could hold (04:00 .. 19:00), which read the Sharpe sqrt(16 / 6) high
    assert metrics.symbol_bars_per_year(hour, "stock", "1h", "extended") == 252 * 6
    assert metrics.symbol_bars_per_year(hour[:0], "stock", "1h") == 252 * 7  # no bar: the open's grid
    assert metrics.symbol_bars_per_year(hour, "crypto", "1h") == 365 * 24
    assert metrics.symbol_bars_per_year(_stock_bars("09:30", "1d", SESSION_DAYS), "stock", "1d") == 252


@pytest.mark.parametrize(("a", "b"), [(a, b) for a in GRIDS for b in GRIDS if a[1] == b[1]])
def test_stocks_whose_bars_start_at_different_times_are_annualised_on_calendar_days(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    """The reviewer's case (half past beside on the hour: the portfolio has 13 steps a session, not 7): the
    portfolio is annualised per step only when the union of the two stocks' bars holds no more bars a day
    than either (brute force), and then by that count; else on calendar days, as beside a crypto."""
    ta, tb = _stock_bars(*a, SESSION_DAYS), _stock_bars(*b, SESSION_DAYS[3:])
    union = np.union1d(ta, tb)
    got = metrics.portfolio_annualisation([ta, tb], ["stock", "stock"], a[1])
    if _most_bars_a_day(union) == _most_bars_a_day(ta) == _most_bars_a_day(tb):
        assert got == metrics.Annualisation(252 * _most_bars_a_day(union), False)
    else:
        assert got == metrics.Annualisation(365, True)
    assert (a == b) == (not got.calendar_days)


def test_the_reviewers_repro() -> None:
    h = 3_600_000_000
    day = np.arange(5) * DAY + 19675 * DAY
    a = np.concatenate([d + np.array([14.5, 15.5, 16.5, 17.5, 18.5, 19.5, 20.5]) * h for d in day])
    b = np.concatenate([d + np.array([15, 16, 17, 18, 19, 20]) * h for d in day])
    got = metrics.portfolio_annualisation([a.astype(np.int64), b.astype(np.int64)], ["stock", "stock"], "1h")
    assert got == metrics.Annualisation(365, True)


def _grid_of(t_us: int, interval: str) -> int:
    """Brute force: a bar's New York wall-clock start within the interval, in minutes."""
    local = dt.datetime.fromtimestamp(t_us / 1e6, tz=NEW_YORK)
    return (local.hour * 60 + local.minute) % interval_minutes(interval)


def _steps_a_session(ts: np.ndarray) -> float:
    """Brute force: the steps per New York date with a step (datetime), the first and last date left out
    (their sessions may be cut), over the dates between: the steps seen over the sessions spanned."""
    per_day: dict[dt.date, int] = {}
    for t in ts.tolist():
        d = dt.datetime.fromtimestamp(t / 1e6, tz=NEW_YORK).date()
        per_day[d] = per_day.get(d, 0) + 1
    inner = [per_day[d] for d in sorted(per_day)][1:-1]
    return sum(inner) / len(inner)


def _switching(first_a: str, first_b: str, interval: str, switch: int) -> np.ndarray:
    """A file whose first `switch` sessions are on one grid and the rest on another."""
    return np.concatenate(
        [
            _stock_bars(first_a, interval, SESSION_DAYS[:switch]),
            _stock_bars(first_b, interval, SESSION_DAYS[switch:]),
        ]
    )


def _stray(ts: np.ndarray, hhmm: str) -> np.ndarray:
    """The bars and one more at New York `hhmm` on the last of SESSION_DAYS."""
    d = SESSION_DAYS[-1]
    hh, mm = (int(x) for x in hhmm.split(":"))
    extra = int(dt.datetime(d.year, d.month, d.day, hh, mm, tzinfo=NEW_YORK).timestamp()) * 1_000_000
    return np.sort(np.append(ts, np.int64(extra)))


MIXED = [
    # the reviewer's cases: half past then on the hour (was 7 + 6 = 13 a session), and the reverse; the last
    # figure: the most bars a session holds on either grid, never exceeded (the grids not added)
    ("switch half past -> on the hour", _switching("09:30", "10:00", "1h", 6), "1h", 7),
    ("switch, on the hour the more", _switching("09:30", "10:00", "1h", 2), "1h", 7),
    ("switch on the hour -> half past", _switching("10:00", "09:30", "1h", 5), "1h", 7),
    # on the hour and one stray 10:15 bar (was 6 + 6 = 12)
    ("stray bar", _stray(_stock_bars("10:00", "1h", SESSION_DAYS), "10:15"), "1h", 6),
    ("stray bar, half past", _stray(_stock_bars("09:30", "1h", SESSION_DAYS), "12:00"), "1h", 7),
    ("30m switch", _switching("09:30", "09:45", "30m", 4), "30m", 13),
    ("15m stray", _stray(_stock_bars("09:30", "15m", SESSION_DAYS), "11:05"), "15m", 26),
]


@pytest.mark.parametrize(("name", "ts", "interval", "session_bars"), MIXED, ids=[m[0] for m in MIXED])
def test_a_stock_whose_bars_mix_grids_is_annualised_by_its_main_grid_not_the_grids_added(
    name: str, ts: np.ndarray, interval: str, session_bars: int
) -> None:
    """The bars its sessions hold, the steps seen over the sessions spanned (brute force), never more than a
    session holds on either grid (the grids added: 7 + 6 = 13); its overall goes to calendar days, since its
    steps lie on more than one grid (brute force: the distinct New York wall-clock starts within the
    interval)."""
    assert len({_grid_of(t, interval) for t in ts.tolist()}) > 1
    got = metrics.symbol_bars_per_year(ts, "stock", interval)
    assert got == pytest.approx(252 * _steps_a_session(ts), rel=1e-12)
    assert got <= 252 * session_bars
    assert metrics.portfolio_annualisation([ts], ["stock"], interval) == metrics.Annualisation(365, True)
    assert metrics.portfolio_annualisation([ts, ts], ["stock", "etf"], interval) == (
        metrics.Annualisation(365, True)
    )


@pytest.mark.parametrize("clean", ["09:30", "10:00"])
def test_a_portfolio_of_a_switching_stock_and_a_clean_one_is_on_calendar_days(clean: str) -> None:
    switching, other = _switching("09:30", "10:00", "1h", 6), _stock_bars(clean, "1h", SESSION_DAYS)
    got = metrics.portfolio_annualisation([switching, other], ["stock", "stock"], "1h")
    assert got == metrics.Annualisation(365, True)
    # each symbol by the bars its own sessions hold (brute force): 5 inner sessions of 7, then 3 of 6
    for ts in (switching, other):
        assert metrics.symbol_bars_per_year(ts, "stock", "1h") == pytest.approx(252 * _steps_a_session(ts))
    assert metrics.symbol_bars_per_year(switching, "stock", "1h") == pytest.approx(252 * (5 * 7 + 3 * 6) / 8)


def test_the_metrics_version_is_documented() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "trading.md").read_text(encoding="utf-8")
    assert metrics.METRICS_VERSION == 4
    assert f"`metrics_version` {metrics.METRICS_VERSION}" in text

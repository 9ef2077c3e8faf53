"""rl.metrics: figures that do not mislead. The bootstrap's verdict keeps a claim and its absence apart across
seeds (each end's Monte-Carlo band; "borderline" between them), a Sharpe from a handful of non-zero returns is flagged, an intraday stock is annualised by
the bars its sessions hold, and the annualised return and volatility against hand computations."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from rl import metrics
from rl.metrics import bootstrap_sharpe_difference, compute_metrics


def _verdict(sentence: str) -> str:
    """The claim a bootstrap sentence makes, read from its words (as a reader of the report reads it)."""
    for words in ("borderline", "beyond luck", "not distinguishable", "no claim"):
        if words in sentence:
            return sentence.rsplit(": ", 1)[-1] if words == "beyond luck" else words
    raise AssertionError(sentence)


# An agent whose Sharpe edge over buy-and-hold has the interval's upper end at 0 (to 1e-9, found by bisection
# on the agent's mean with 200,000 resamples): the case whose verdict flipped with the seed.
_RNG = np.random.default_rng(11)
_NOISE, _BASE = _RNG.normal(0, 0.01, 500), _RNG.normal(0.0005, 0.01, 500)
BORDERLINE_MU = -0.0009665030079195275


def test_the_borderline_case_is_borderline() -> None:
    ref = bootstrap_sharpe_difference(
        _NOISE + BORDERLINE_MU, _BASE, bars_per_year=252, seed=99, resamples=100_000
    )
    assert abs(ref.high) < 0.01 and ref.high - ref.low > 3


@pytest.mark.parametrize(
    ("mu", "verdict"),
    [(BORDERLINE_MU, "borderline"), (0.002, "better than buy-and-hold beyond luck at 95%.")],
    ids=["borderline", "clear"],
)
def test_the_verdict_is_the_same_whatever_the_seed(mu: float, verdict: str) -> None:
    """40 seeds, the evaluation's resamples: the same claim, or the same absence of one. (With 1,000
    resamples and no band, the borderline case said "worse than buy-and-hold beyond luck" for some seeds and
    "not distinguishable" for others.) An end exactly at 0 falls outside its band 3 standard errors wide
    for about 1 seed in 400 (and 1 of these 40 with circular blocks, an end 3.2 standard errors off): such a
    seed says "not distinguishable", no claim either, never "worse"."""
    got = [
        _verdict(bootstrap_sharpe_difference(_NOISE + mu, _BASE, bars_per_year=252, seed=s).sentence)
        for s in range(40)
    ]
    if verdict == "borderline":
        assert set(got) <= {"borderline", "not distinguishable"}
        assert got.count("borderline") >= 39
    else:
        assert set(got) == {verdict}


def test_opposite_claims_never_meet_across_seeds() -> None:
    """Near the boundary a seed may say borderline where another says not distinguishable (both no claim),
    but never one "beyond luck" where another says "not distinguishable": borderline lies between them."""
    for mu in np.linspace(BORDERLINE_MU - 0.0004, BORDERLINE_MU + 0.0004, 5):
        cis = [
            bootstrap_sharpe_difference(_NOISE + mu, _BASE, bars_per_year=252, seed=s, resamples=2000)
            for s in range(20)
        ]
        kinds = {c.verdict for c in cis}
        assert not ({"worse", "better"} & kinds and "not distinguishable" in kinds), (mu, kinds)


def test_the_interval_records_its_resamples_and_bands() -> None:
    ci = bootstrap_sharpe_difference(_NOISE + BORDERLINE_MU, _BASE, bars_per_year=252, seed=0)
    d = ci.to_dict()
    assert d["resamples"] == metrics.RESAMPLES == 10_000 and d["band_z"] == metrics.MC_Z
    assert (
        d["low_band"][0] <= d["low"] <= d["low_band"][1]
        and d["high_band"][0] <= d["high"] <= d["high_band"][1]
    )
    assert d["borderline"] is True and d["verdict"] == "borderline"
    assert "over 10000 resamples" in d["sentence"] and "upper end" in d["sentence"]
    # by hand: the order statistics 3 binomial standard errors either side of the 97.5th percentile's rank
    again = bootstrap_sharpe_difference(_NOISE + BORDERLINE_MU, _BASE, bars_per_year=252, seed=0, band_z=0.0)
    assert again.high_band[0] <= again.high <= again.high_band[1]
    assert again.high_band[1] - again.high_band[0] < ci.high_band[1] - ci.high_band[0]


def _gathered(a: np.ndarray, b: np.ndarray, seed: int, resamples: int, length: int) -> np.ndarray:
    """The reference: every resample gathered value by value, naively circular (a block starts at any of
    the n steps and its indices wrap modulo n)."""
    a, b = np.expm1(a), np.expm1(b)
    n = a.size
    rng = np.random.default_rng(seed)
    blocks = -(-n // length)
    starts = rng.integers(0, n, size=(resamples, blocks))
    idx = ((starts[:, :, None] + np.arange(length)) % n).reshape(resamples, -1)[:, :n]
    return (metrics._sharpe_rows(a[idx]) - metrics._sharpe_rows(b[idx])) * math.sqrt(252)


@pytest.mark.parametrize("n", [7, 64, 500, 3001])
def test_the_block_sums_give_the_gathered_resamples_sharpes(n: int) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.normal(3e-4, 0.01, n), rng.normal(0, 0.012, n)
    a[rng.random(n) < 0.7] = 0.0  # mostly flat, as an agent often is
    length = metrics.default_block_length(n)
    want = _gathered(a, b, 5, 400, length)
    got = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=5, resamples=400)
    tail = np.percentile(want[np.isfinite(want)], [2.5, 97.5])
    assert (got.low, got.high) == pytest.approx(tuple(tail), rel=1e-9, abs=1e-12)
    # the sums themselves, resample by resample
    r = np.random.default_rng(5)
    starts = r.integers(0, n, size=(400, -(-n // length)))
    wrap = np.r_[0:n, 0 : length - 1]
    pa, pb = metrics._prefix(np.expm1(a)[wrap]), metrics._prefix(np.expm1(b)[wrap])
    mine = (metrics._block_sharpes(pa, starts, length, n) - metrics._block_sharpes(pb, starts, length, n)) * (
        math.sqrt(252)
    )
    assert np.isfinite(mine).tolist() == np.isfinite(want).tolist()
    assert mine[np.isfinite(mine)] == pytest.approx(want[np.isfinite(want)], rel=1e-9, abs=1e-12)


def test_the_block_sums_give_the_gathered_resamples_exact_zeros() -> None:
    """An agent that is buy-and-hold but on 2 bars: the gathered resamples that miss both are exactly 0, and
    so are the block sums' (not +-1e-15), so the interval's ends are the gathered ones."""
    a, b = _near_buy_and_hold(86)
    length = metrics.default_block_length(a.size)
    want = _gathered(a, b, 0, 2000, length)
    got = bootstrap_sharpe_difference(a, b, bars_per_year=252, seed=0, resamples=2000)
    assert (want == 0).mean() > 0.1
    assert (got.low, got.high) == pytest.approx(tuple(np.percentile(want, [2.5, 97.5])), rel=1e-9, abs=1e-12)
    assert got.low == 0.0 and got.verdict != "better"


def test_constant_resamples_by_block_sums_are_zero_or_none() -> None:
    zero, const = np.zeros(40), np.full(40, 0.01)
    starts = np.zeros((1, 10), np.int64)
    assert metrics._block_sharpes(metrics._prefix(zero), starts, 4, 40).tolist() == [0.0]
    assert np.isnan(metrics._block_sharpes(metrics._prefix(const), starts, 4, 40)).all()


# --- a Sharpe from a handful of non-zero returns ---------------------------------------------------------


def test_a_sharpe_from_8_invested_days_of_617_is_flagged() -> None:
    """The demo's AAPL agent: 617 daily bars, invested on 8 of them (exposure 1.3%): its Sharpe rests on the
    returns of those days (and the exits' gaps), not on 617 returns."""
    rng = np.random.default_rng(8)
    pos = np.zeros(617)
    pos[rng.choice(617, 8, replace=False)] = 1.0
    invested = pos != 0
    exits = np.roll(invested, 1) & ~invested  # an exit step carries the last gap
    r = np.where(invested | exits, rng.normal(0.004, 0.01, 617), 0.0)
    m = compute_metrics(r, pos, np.abs(np.diff(pos, prepend=0.0)), bars_per_year=252)
    assert m.sharpe is not None and m.too_few_to_annualise
    assert m.nonzero_returns == int((invested | exits).sum()) < 30
    # buy-and-hold beside it: 617 non-zero returns, not flagged
    hold = compute_metrics(rng.normal(0.0005, 0.01, 617), np.ones(617), np.zeros(617), bars_per_year=252)
    assert not hold.too_few_to_annualise and hold.nonzero_returns == 617


def test_the_interval_is_flagged_when_either_side_rests_on_few_non_zero_returns() -> None:
    rng = np.random.default_rng(2)
    agent = np.zeros(600)
    agent[:10] = rng.normal(0, 0.01, 10)
    ci = bootstrap_sharpe_difference(
        agent, rng.normal(0, 0.01, 600), bars_per_year=252, seed=0, resamples=400
    )
    assert ci.too_few_to_annualise and "too few bars for an annualised figure" in ci.sentence


def test_the_footnote_says_the_rule() -> None:
    assert metrics.TOO_FEW_NOTE.startswith(
        "* too few bars for an annualised figure: under a month's worth of bars (at least 30), or fewer than "
        "30 non-zero returns"
    )


def test_a_long_lightly_invested_series_is_not_flagged() -> None:
    """The reviewer's case: half a year of one-minute crypto (262,800 bars), invested 8% of the minutes:
    21,000 non-zero returns, flagged because they were under a month's worth (43,800). The month is of the
    bars the figure spans; of the non-zero returns it asks 30."""
    rng = np.random.default_rng(0)
    n = 262_800
    pos = (rng.random(n) < 0.08).astype(float)
    bh = rng.normal(0, 8e-4, n)
    m = compute_metrics(bh * pos, pos, np.zeros(n), bars_per_year=525_600)
    assert m.nonzero_returns > 20_000 and not m.too_few_to_annualise
    ci = bootstrap_sharpe_difference(bh * pos, bh, bars_per_year=525_600, resamples=400)
    assert not ci.too_few_to_annualise and "too few" not in ci.sentence
    # still flagged: under a month of bars, every return non-zero; 29 non-zero returns in a year of bars
    short = compute_metrics(rng.normal(0.001, 0.01, 20), np.ones(20), np.zeros(20), bars_per_year=252)
    assert short.too_few_to_annualise
    sparse = np.zeros(252)
    sparse[:29] = rng.normal(0.001, 0.01, 29)
    assert compute_metrics(sparse, sparse != 0, np.zeros(252), bars_per_year=252).too_few_to_annualise
    sparse[29] = 0.002
    assert not compute_metrics(sparse, sparse != 0, np.zeros(252), bars_per_year=252).too_few_to_annualise


# --- intraday stocks: the bars their sessions hold ---------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
DAYS = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(14) if (4 + i) % 7 not in (2, 3)]


def _minutes(every: int, days: list[dt.date] = DAYS) -> np.ndarray:
    """One-minute bar starts of full regular sessions, one every `every` minutes from 09:30 New York."""
    out = []
    for d in days:
        t = dt.datetime(d.year, d.month, d.day, 9, 30, tzinfo=NEW_YORK)
        for k in range(0, 390, every):
            out.append(int((t + dt.timedelta(minutes=k)).timestamp()) * 1_000_000)
    return np.array(out, np.int64)


def test_every_other_minute_is_annualised_by_195_bars_a_session() -> None:
    """A 1m stock with a bar every other minute holds 195 a session: 252 x 195 a year, not 252 x 390 (which
    read its Sharpe sqrt(2) high)."""
    ts = _minutes(2)
    assert metrics.symbol_bars_per_year(ts, "stock", "1m") == 252 * 195
    assert metrics.symbol_bars_per_year(_minutes(1), "stock", "1m") == 252 * 390
    # the warm-up and window cut the first session: the median session is still a whole one
    assert metrics.symbol_bars_per_year(ts[80:], "stock", "1m") == 252 * 195
    # the overall of two such stocks on the same minutes: the same
    got = metrics.portfolio_annualisation([ts, ts[10:]], ["stock", "stock"], "1m")
    assert got == metrics.Annualisation(252 * 195, False)
    # the Sharpe of such a series is its per-bar Sharpe x sqrt(252 x 195)
    r = np.random.default_rng(0).normal(1e-5, 1e-3, ts.size)
    m = compute_metrics(
        r, np.ones(ts.size), np.zeros(ts.size), bars_per_year=metrics.symbol_bars_per_year(ts, "stock", "1m")
    )
    simple = np.expm1(r)
    assert m.sharpe == pytest.approx(simple.mean() / simple.std(ddof=1) * math.sqrt(252 * 195), rel=1e-12)


def test_sparse_sessions_by_brute_force() -> None:
    """Sessions of 100, 150, 390, 100, 150, 390 and 20 bars: the first and last left out (they may be cut),
    the steps of the 5 between over 5 sessions, 236 a session."""
    rng = np.random.default_rng(4)
    ts = []
    for d, k in zip(DAYS, [100, 150, 390, 100, 150, 390, 20], strict=False):
        t0 = dt.datetime(d.year, d.month, d.day, 9, 30, tzinfo=NEW_YORK)
        for m in np.sort(rng.choice(390, k, replace=False)).tolist():
            ts.append(int((t0 + dt.timedelta(minutes=m)).timestamp()) * 1_000_000)
    assert metrics.symbol_bars_per_year(np.array(ts, np.int64), "stock", "1m") == 252 * 236


WEEKDAYS = [d for d in (dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(120)) if d.weekday() < 5]


def _session(d: dt.date, bars: int, every: int = 1, skip: int = 0) -> list[int]:
    """`bars` one-minute bar starts of a regular session, one every `every` minutes from 09:30 + `skip`."""
    t0 = dt.datetime(d.year, d.month, d.day, 9, 30, tzinfo=NEW_YORK) + dt.timedelta(minutes=skip)
    return [int((t0 + dt.timedelta(minutes=every * k)).timestamp()) * 1_000_000 for k in range(bars)]


@pytest.mark.parametrize(("sparse_first", "full", "sparse"), [(True, 21, 40), (False, 40, 21)])
def test_sparse_and_full_sessions_are_annualised_by_the_bars_seen(
    sparse_first: bool, full: int, sparse: int
) -> None:
    """The reviewer's cases: a 1m stock with 30 bars on some sessions and 390 on others. The median session
    read 21 full + 40 sparse sessions as 252 x 30 bars a year, so its 9,390 bars as 1.24 years (not the 0.24
    its 61 sessions span) and a 5% gain as 4.0% a year, not 22%. Now the bars seen over the sessions."""
    days = WEEKDAYS[: full + sparse]
    kinds = [30] * sparse + [390] * full if sparse_first else [390] * full + [30] * sparse
    ts = np.array(
        [t for d, k in zip(days, kinds, strict=True) for t in _session(d, k, 13 if k == 30 else 1)], np.int64
    )
    per_year = metrics.symbol_bars_per_year(ts, "stock", "1m")
    assert per_year == pytest.approx(252 * sum(kinds[1:-1]) / (len(kinds) - 2), rel=1e-12)
    years = ts.size / per_year
    assert years == pytest.approx(len(days) / 252, rel=0.02)
    r = np.full(ts.size, math.log(1.05) / ts.size)
    m = compute_metrics(r, np.ones(ts.size), np.zeros(ts.size), bars_per_year=per_year)
    assert m.annual_return == pytest.approx(1.05 ** (252 / len(days)) - 1, rel=0.02)


def test_a_half_day_counts_as_the_session_it_is_and_a_cut_end_session_as_its_fraction() -> None:
    """Every other minute stays 195 (above); a 13:00 close among 40 full sessions lowers the bars a session
    by its 180 missing minutes over the 38 between the first and last, as it lowers a year's bars; the
    period's first or last session cut (the warm-up took 124 bars) leaves 390; a single cut session is all
    there is."""
    days = WEEKDAYS[:40]
    with_half = np.array(
        [t for i, d in enumerate(days) for t in _session(d, 210 if i == 3 else 390)], np.int64
    )
    assert metrics.symbol_bars_per_year(with_half, "stock", "1m") == pytest.approx(
        252 * (37 * 390 + 210) / 38
    )
    cut = np.array(
        [t for i, d in enumerate(days) for t in _session(d, *((266, 1, 124) if i == 0 else (390,)))], np.int64
    )
    assert metrics.symbol_bars_per_year(cut, "stock", "1m") == 252 * 390
    assert metrics.symbol_bars_per_year(cut[-390:], "stock", "1m") == 252 * 390
    assert metrics.symbol_bars_per_year(cut[:266], "stock", "1m") == 252 * 266


# --- the annualised return and volatility, by hand ---------------------------------------------------------

R = [0.01, -0.01, 0.02, -0.005, 0.005]


def test_annual_return_and_volatility_by_hand() -> None:
    m = compute_metrics(np.array(R), np.ones(5), np.zeros(5), bars_per_year=252)
    # 5 bars of 1/252 of a year: the growth exp(0.02) compounded to a year
    assert m.annual_return == pytest.approx(math.exp(0.02) ** (252 / 5) - 1, rel=1e-12)
    simple = [math.expm1(x) for x in R]
    assert m.annual_volatility == pytest.approx(statistics.stdev(simple) * math.sqrt(252), rel=1e-12)
    # as the Sharpe: mean / volatility, both annualised
    assert m.annual_volatility is not None
    assert m.sharpe == pytest.approx(statistics.mean(simple) * 252 / m.annual_volatility, rel=1e-12)


def test_annual_return_and_volatility_on_calendar_days_by_hand() -> None:
    day = metrics.US_PER_DAY
    ts = np.array([0, 14 * day // 24, 2 * day]) + 19_000 * day
    r = np.array([0.01, 0.02, -0.01])
    m = compute_metrics(r, np.ones(3), np.zeros(3), bars_per_year=365, ts=ts, calendar_days=True)
    days = [math.expm1(0.03), 0.0, math.expm1(-0.01)]  # three calendar days
    assert m.annual_return == pytest.approx(math.exp(0.02) ** (365 / 3) - 1, rel=1e-12)
    assert m.annual_volatility == pytest.approx(statistics.stdev(days) * math.sqrt(365), rel=1e-12)


def test_annual_figures_of_flat_none_and_beyond_a_float() -> None:
    flat = compute_metrics(np.zeros(10), np.zeros(10), np.zeros(10), bars_per_year=252)
    assert (flat.annual_return, flat.annual_volatility) == (0.0, 0.0)
    one = compute_metrics(np.array([0.01]), np.ones(1), np.zeros(1), bars_per_year=252)
    assert one.annual_volatility is None and one.annual_return == pytest.approx(math.exp(2.52) - 1)
    huge = compute_metrics(np.array([0.5, 0.5]), np.ones(2), np.zeros(2), bars_per_year=525_600)
    assert huge.annual_return is None


# --- ties: an agent that is buy-and-hold on every bar of a resample ----------------------------------------


def _near_buy_and_hold(seed: int, n: int = 1919) -> tuple[np.ndarray, np.ndarray]:
    """The reviewer's case: buy-and-hold's returns, with the agent's different on 2 bars only."""
    r = np.random.default_rng(seed)
    b = r.normal(0.0004, 0.01, n)
    a = b.copy()
    a[r.integers(0, n, 2)] += 0.05
    return a, b


def test_an_agent_that_is_buy_and_hold_but_on_two_bars_claims_nothing() -> None:
    """A resample that misses both bars is buy-and-hold's own: its difference is exactly 0 (the block sums
    of two running sums gave +-1e-15, all of one sign, and 9 of these 60 said "better beyond luck")."""
    verdicts = [
        bootstrap_sharpe_difference(*_near_buy_and_hold(s), bars_per_year=252, seed=0).verdict
        for s in range(60)
    ]
    assert not {"better", "worse"} & set(verdicts), verdicts


def test_returns_within_rounding_of_the_baseline_are_ties() -> None:
    b = np.array([0.01, -0.02, 0.0, 1e-14, 0.03])
    a = b + np.array([1e-17, -3e-18, 0.0, 1e-26, 1e-4])
    assert metrics.tied_to_baseline(a, b).tolist() == [*b[:4].tolist(), a[4]]


def test_an_edge_at_the_periods_start_or_end_weighs_as_one_in_its_middle() -> None:
    """The reviewer's case: buy-and-hold crashes 15% on one bar of 252, the agent sat it out and is
    buy-and-hold elsewhere. Blocks that wrap draw every bar alike, so the interval is much the same wherever
    the crash falls (from starts 0 .. n - length, the upper end was 1.08 at bar 0 and 1.23 at the last bar
    against 2.39 mid-period: the first and last bars lay in fewer blocks)."""
    b = np.random.default_rng(3).normal(0.0004, 0.01, 252)
    highs = {}
    for where in (0, 1, 126, 250, 251):
        bb = b.copy()
        bb[where] = -0.15
        a = bb.copy()
        a[where] = 0.0
        highs[where] = bootstrap_sharpe_difference(a, bb, bars_per_year=252, seed=0).high
    assert all(h > 0.8 * highs[126] for h in highs.values()), highs


def test_a_claim_and_borderline_can_be_a_seed_apart_but_not_a_claim_and_its_absence() -> None:
    """The reviewer's case: an agent whose interval's low end is about 4 Monte-Carlo standard errors above 0
    says "better" for some seeds and "borderline" for others (what the docs now say), and "not
    distinguishable" for none (what they guarantee, within about 1 seed in 700)."""
    rng = np.random.default_rng(5)
    b, e = rng.normal(0.0, 0.01, 1000), rng.normal(0, 0.01, 1000)

    def run(d: float, seed: int) -> metrics.SharpeDiffCI:
        return bootstrap_sharpe_difference(b + e + d, b, bars_per_year=252, seed=seed)

    lo, hi = 0.0, 0.01
    for _ in range(30):  # the mean whose low end is 0 at seed 0
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if run(mid, 0).low > 0 else (mid, hi)
    ci = run(hi, 0)
    se = (ci.low_band[1] - ci.low_band[0]) / 6
    slope = (run(hi + 1e-5, 0).low - ci.low) / 1e-5
    verdicts = [run(hi + 4 * se / slope, s).verdict for s in range(30)]
    assert "better" in verdicts and "borderline" in verdicts
    assert "not distinguishable" not in verdicts and "worse" not in verdicts


def test_the_docs_say_what_the_band_guarantees() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "trading.md").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    for text in (docs, readme, metrics.__doc__ or ""):
        assert "never a seed apart" not in text and "does not change with its seed" not in text
    assert "What the band guarantees, and what it does not" in docs
    assert "Borderline\n  is the no-claim word between a claim and its absence" in docs


def test_too_few_resamples_are_refused() -> None:
    """The reviewer's case: 1 resample gave a band of one point and so a claim. The fewest: the band of each
    end within the resamples, 353 at 95% and 3 standard errors."""
    from lake.errors import MarketlakeError

    assert metrics.min_resamples() == 353 and metrics.min_resamples(0.9) < 353
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.002, 0.01, 300), rng.normal(0, 0.01, 300)
    for few in (1, 20, 352):
        with pytest.raises(MarketlakeError, match=r"resamples must be at least 353 .*got " + str(few)):
            bootstrap_sharpe_difference(a, b, bars_per_year=252, resamples=few)
    assert bootstrap_sharpe_difference(a, b, bars_per_year=252, resamples=353).resamples == 353

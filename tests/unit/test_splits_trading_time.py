"""The embargo in bars counts trading time: session time on a stock lake, the clock on a crypto lake, whole
sessions for daily stock bars; and a fraction cut of a stock lake runs on the session clock. Checked against
brute force (a minute-by-minute walk of the sessions; the bars the lake holds in each embargo counted), and
the `splits` view against features/splits.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pyarrow as pa
import pyarrow.compute
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lake
from features.splits import SessionClock, Split, compute_splits, lake_inputs, load_splits
from ingest.sessions import land
from lake.config import Settings
from tests.conftest import SPY_DAILY_SAMPLE, bars_table

UTC = dt.UTC
MIN_US = 60_000_000

# --- the session clock against a minute-by-minute walk ------------------------------------------------------


@st.composite
def sessions_in_minutes(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Disjoint sessions in whole minutes from 0: each a gap then a length."""
    out, at = [], 0
    for _ in range(draw(st.integers(1, 6))):
        at += draw(st.integers(0, 30))
        length = draw(st.integers(1, 20))
        out.append((at, at + length))
        at += length
    return out


def _open_minutes(sessions: list[tuple[int, int]]) -> list[int]:
    return [m for a, z in sessions for m in range(a, z)]


@settings(max_examples=300, deadline=None)
@given(sessions_in_minutes(), st.integers(-5, 200), st.integers(0, 60))
def test_session_time_end_is_where_a_minute_walk_has_counted_the_time(
    sessions: list[tuple[int, int]], t: int, need: int
) -> None:
    clock = SessionClock([(a * MIN_US, z * MIN_US) for a, z in sessions])
    # brute force: the open minutes at or after t, one by one; the need-th ends where the time is reached
    later = [m for m in _open_minutes(sessions) if m >= t]
    want = t if need == 0 else (later[need - 1] + 1 if len(later) >= need else None)
    got = clock.time_end(t * MIN_US, need * MIN_US)
    assert got == (None if want is None else want * MIN_US), (sessions, t, need)
    assert clock.time_at(t * MIN_US) == sum(1 for m in _open_minutes(sessions) if m < t) * MIN_US


@settings(max_examples=200, deadline=None)
@given(sessions_in_minutes(), st.integers(-5, 200), st.integers(1, 8))
def test_sessions_end_is_the_end_of_the_nth_session_starting_at_or_after_t(
    sessions: list[tuple[int, int]], t: int, n: int
) -> None:
    clock = SessionClock([(a * MIN_US, z * MIN_US) for a, z in sessions])
    starting = [z for a, z in sessions if a >= t]
    want = starting[n - 1] * MIN_US if len(starting) >= n else None
    assert clock.sessions_end(t * MIN_US, n) == want


# --- a stock lake with a bar in every session minute ------------------------------------------------------


def xnys_minutes(first: str, last: str, extended: bool = False) -> list[dt.datetime]:
    """The start of every minute of every XNYS session in [first, last] (regular hours, or 04:00-20:00 New
    York with 17:00 on an early close), from exchange_calendars."""
    cal = xcals.get_calendar("XNYS")
    ny = "America/New_York"
    out: list[dt.datetime] = []
    for day in cal.sessions_in_range(first, last):
        if extended:
            local = pd.Timestamp(day.date()).tz_localize(ny)
            lo = local + pd.Timedelta(hours=4)
            hi = local + pd.Timedelta(hours=17 if cal.session_close(day).tz_convert(ny).hour == 13 else 20)
        else:
            lo, hi = cal.session_open(day), cal.session_close(day)
        n = int((hi - lo) / pd.Timedelta(minutes=1))
        start = lo.tz_convert("UTC").to_pydatetime()
        out += [start + dt.timedelta(minutes=i) for i in range(n)]
    return out


def spy_minutes(first: str, last: str, extended: bool = False) -> pa.Table:
    """SPY 1m bars (asset class etf) starting at every `xnys_minutes` minute, each known a minute later."""
    ts = xnys_minutes(first, last, extended)
    table = bars_table(ts[0], [100.0] * len(ts), asset_class="etf")
    kind = table.schema.field("ts").type
    table = table.set_column(1, "ts", pa.array(ts, type=kind))
    return table.set_column(2, "available_at", pa.array([t + dt.timedelta(minutes=1) for t in ts], type=kind))


@pytest.fixture(scope="module")
def stock_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SPY 1m bars in every regular and extended-hours minute of 2024-01-02 .. 2024-02-09 (the extended
    bars lie outside the regular session: `session = "regular"` sees only its own minutes)."""
    root = tmp_path_factory.mktemp("stock") / "lake"
    bars = spy_minutes("2024-01-02", "2024-02-09", extended=True)
    months = pa.array([t.strftime("%Y-%m") for t in bars.column("ts").to_pylist()])
    with land(root) as w:
        for month in ("2024-01", "2024-02"):
            part = {"source": "csv", "interval": "1m", "symbol": "SPY", "period": month}
            w.write(lake.BARS, part, bars.filter(pa.compute.equal(months, month)))
    return root


def _periods_and_counts(root: Path, s: Settings) -> tuple[list[Split], list[Split], dict[str, int]]:
    """(the view's periods, Python's from lake_inputs, the bars of the session setting in each period or
    outside every period ('-'))."""
    with lake.connect(root, read_only=True, settings=s) as con:
        view = load_splits(con)
        li = lake_inputs(con)
        assert li is not None
        py = compute_splits(li.start, li.end, s, li.bar_minutes, clock=li.clock, sessions=li.sessions)
        counts = dict(
            con.execute(
                "SELECT coalesce(p.split, '-'), count(*) FROM bar_splits p "
                'JOIN bar_sessions b USING (symbol, "interval", ts) WHERE b.in_session GROUP BY 1'
            ).fetchall()
        )
    return view, py, counts


@settings(max_examples=12, deadline=None)
@given(
    st.sampled_from(["regular", "extended"]),
    st.integers(0, 25),  # train_end: days after 2024-01-02
    st.integers(0, 8),  # validation_end: days after train_end
    st.sampled_from([1, 7, 60, 390, 500]),
)
def test_each_date_embargo_of_a_stock_lake_holds_exactly_its_bars(
    stock_lake: Path, session: str, train_days: int, val_days: int, bars: int
) -> None:
    """Date splits end at 00:00 UTC, in the closed market: the embargo after each still holds exactly
    `embargo_bars` bars of the session the setting selects, over nights, weekends and a holiday (MLK day,
    2024-01-15), unless it runs past the lake's last bar."""
    train_end = dt.date(2024, 1, 2) + dt.timedelta(days=train_days)
    s = Settings(
        session=session,
        split_method="date",
        train_end=train_end,
        validation_end=train_end + dt.timedelta(days=val_days),
        embargo_bars=bars,
    )
    view, py, counts = _periods_and_counts(stock_lake, s)
    assert view == py
    train, validation, test = view
    everything = sum(counts.values())
    in_train = counts.get("train", 0)
    in_embargoes = counts.get("-", 0)
    if not test.empty:  # neither embargo ran into the end of the range
        assert in_embargoes == 2 * bars, (view, counts)
    else:
        assert in_embargoes == everything - in_train - counts.get("validation", 0)
    assert train.end_at <= validation.start_at <= validation.end_at <= test.start_at


@pytest.mark.parametrize("session", ["regular", "extended"])
@pytest.mark.parametrize("bars", [60, 390])
def test_fraction_splits_of_a_stock_lake_cut_its_session_minutes(
    stock_lake: Path, session: str, bars: int
) -> None:
    """On a lake of stocks alone the fraction cut runs on the session clock: with a bar in every session
    minute, train holds 0.7 x (bars - 2 embargoes) of them rounded down, validation 0.15 x ..., each embargo
    exactly `embargo_bars`, test the rest."""
    s = Settings(session=session, embargo_bars=bars)
    view, py, counts = _periods_and_counts(stock_lake, s)
    assert view == py
    total = sum(counts.values())
    usable = total - 2 * bars
    # (the lengths are rounded down to a whole minute of float arithmetic in microseconds: within one bar)
    assert abs(counts["train"] - 0.7 * usable) <= 1, counts
    assert abs(counts["validation"] - 0.15 * usable) <= 1, counts
    assert counts["-"] == 2 * bars, counts
    assert counts["test"] == total - counts["train"] - counts["validation"] - 2 * bars


def test_a_lake_of_stocks_and_crypto_ends_the_embargo_when_both_have_their_bars(
    stock_lake: Path, tmp_path: Path
) -> None:
    """A lake of stock and crypto minutes: the embargo after a boundary at 00:00 UTC ends at the later of
    the two: 60 clock minutes for BTCUSDT (01:00), 60 session minutes for SPY (15:30 in winter); each
    holds at least its 60 bars, and the view and Python agree."""
    root = tmp_path / "lake"
    start = dt.datetime(2024, 1, 2, tzinfo=UTC)
    with land(root) as w:
        crypto = bars_table(start, [100.0] * (14 * 1440))
        w.write(
            lake.BARS,
            {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"},
            crypto,
        )
        spy = spy_minutes("2024-01-02", "2024-01-12")
        w.write(lake.BARS, {"source": "csv", "interval": "1m", "symbol": "SPY", "period": "2024-01"}, spy)
    s = Settings(split_method="date", train_end=dt.date(2024, 1, 4), validation_end=dt.date(2024, 1, 9))
    view, py, _ = _periods_and_counts(root, s)
    assert view == py
    assert [f"{p.start_at:%m-%d %H:%M}" for p in view] == ["01-02 00:00", "01-05 15:30", "01-10 15:30"], view
    # clock time alone (a crypto lake): one hour
    s_crypto = compute_splits(view[0].start_at, view[2].end_at, s, 1, clock=True, sessions=None)
    assert s_crypto[1].start_at - s_crypto[0].end_at == dt.timedelta(hours=1)


def test_the_embargo_of_a_daily_stock_lake_is_whole_sessions(tmp_path: Path) -> None:
    """SPY daily bars (Yahoo, 2008-2017): embargo_bars = 60 of 1d bars are 60 sessions starting at or after
    the boundary, not 60 calendar days (about 41 sessions): each embargo holds 60 daily bars."""
    from ingest import csv as csv_ingest
    from ingest.common import RunContext

    root = tmp_path / "lake"
    summary = csv_ingest.run(RunContext(root, Settings(), quiet=True), SPY_DAILY_SAMPLE, "SPY", "1d", None)
    assert summary.ok, summary.errors
    s = Settings(split_method="date", train_end=dt.date(2012, 12, 31), validation_end=dt.date(2014, 12, 31))
    view, py, counts = _periods_and_counts(root, s)
    assert view == py
    assert counts["-"] == 2 * 60, counts
    assert view[1].start_at.date() > dt.date(2013, 3, 1)  # 60 sessions: into April, not the start of March


def test_a_stock_lake_without_a_calendar_counts_its_embargo_on_the_clock(tmp_path: Path) -> None:
    """Stock bars written without the trading calendar (by hand, not by ingest): no session to count, so
    the embargo is clock time, as on a crypto lake, rather than running to the end of the range and
    emptying the later periods."""
    from lake.writer import LakeWriter

    root = tmp_path / "lake"
    spy = spy_minutes("2024-01-02", "2024-01-12")
    with LakeWriter.open(root) as w:
        w.write(lake.BARS, {"source": "csv", "interval": "1m", "symbol": "SPY", "period": "2024-01"}, spy)
    s = Settings(split_method="date", train_end=dt.date(2024, 1, 4), validation_end=dt.date(2024, 1, 9))
    view, py, counts = _periods_and_counts(root, s)
    assert view == py
    assert [f"{p.start_at:%m-%d %H:%M}" for p in view] == ["01-02 14:30", "01-05 01:00", "01-10 01:00"], view
    assert all(not p.empty for p in view)


def test_an_evaluation_moved_clear_of_its_runs_periods_keeps_a_trading_time_embargo(stock_lake: Path) -> None:
    """When bars added to the lake move its periods, `evaluate` starts the test period after what the run
    trained and chose its model on plus an embargo. The run's own embargo (Friday's first hour after a
    00:00 UTC boundary: 15.5 hours of clock) added to a validation that ends at Saturday 00:00 would end on
    Saturday, in the closed market, and the test period would start one bar after validation's last: the
    lake's rule counts its 60 session minutes instead, to Monday 15:30."""
    from rl.evaluate import _clear_of_training, _embargo_after

    saved = {
        "periods": {
            "train": {"start_at": "2024-01-02T14:30:00+00:00", "end_at": "2024-01-05T00:00:00+00:00"},
            "validation": {"start_at": "2024-01-05T15:30:00+00:00", "end_at": "2024-01-06T00:00:00+00:00"},
        }
    }
    moved = {"test": (dt.datetime(2024, 1, 4, tzinfo=UTC), dt.datetime(2024, 2, 10, tzinfo=UTC))}
    s = Settings()
    old, _ = _clear_of_training(saved, moved, "test")
    assert old == dt.datetime(2024, 1, 6, 15, 30, tzinfo=UTC)  # the clock length alone: a Saturday
    clear, why = _clear_of_training(saved, moved, "test", _embargo_after(stock_lake, s))
    assert clear == dt.datetime(2024, 1, 8, 15, 30, tzinfo=UTC), why
    assert "embargo 2 days, 15:30:00" in why, why
    with lake.connect(stock_lake, read_only=True, settings=s) as con:
        (held,) = con.execute(
            "SELECT count(*) FROM bar_sessions WHERE in_session AND ts >= ? AND ts < ?",
            [dt.datetime(2024, 1, 6, tzinfo=UTC), clear],
        ).fetchone() or (None,)
    assert held == 60


def test_an_evaluation_on_the_lake_its_run_trained_on_is_never_clamped(stock_lake: Path) -> None:
    """Nothing added since training: the lake's test period starts exactly where the embargo after the run's
    validation ends, so nothing is cut from it, even where the embargo after train spanned a night and the
    one after validation an hour (the clock length of one embargo says nothing of the other's)."""
    from rl.evaluate import _clear_of_training, _embargo_after

    differing = 0
    for fraction in (0.14, 0.25, 0.6, 0.7):  # (0.14, 0.25: the embargo after train spans a night or more)
        s = Settings(train_fraction=fraction, validation_fraction=0.1)
        with lake.connect(stock_lake, read_only=True, settings=s) as con:
            train, validation, test = load_splits(con)
        saved = {
            "periods": {
                p.name: {"start_at": p.start_at.isoformat(), "end_at": p.end_at.isoformat()}
                for p in (train, validation)
            }
        }
        bounds = {p.name: (p.start_at, p.end_at) for p in (train, validation, test)}
        differing += (validation.start_at - train.end_at) > (test.start_at - validation.end_at)
        assert _clear_of_training(saved, bounds, "test", _embargo_after(stock_lake, s)) == (None, "")
        assert _clear_of_training(saved, bounds, "validation", _embargo_after(stock_lake, s)) == (None, "")
    assert differing >= 2  # (the case that matters: the first embargo's clock length is the longer)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(-3 * 1440, 45 * 1440),  # minutes from 2024-01-01 00:00 UTC: before, inside and past the lake
    st.integers(0, 3000),  # minutes of session time
    st.integers(1, 40),  # sessions
    st.sampled_from(["regular", "extended"]),
)
def test_the_session_clock_macros_equal_python(
    stock_lake: Path, minute: int, need: int, n: int, session: str
) -> None:
    """The macros an analyst calls in SQL (docs/views.md) give what features/splits.SessionClock gives."""
    t = int(dt.datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000 + minute * MIN_US
    with lake.connect(stock_lake, read_only=True, settings=Settings(session=session)) as con:
        got = con.execute(
            "SELECT session_time_at($t), session_time_end($t, $need), sessions_end($t, $n)",
            {"t": t, "need": need * MIN_US, "n": n},
        ).fetchone()
        li = lake_inputs(con)
    assert li is not None and li.sessions is not None
    clock = li.sessions
    assert got == (clock.time_at(t), clock.time_end(t, need * MIN_US), clock.sessions_end(t, n))

"""The as-of join of news (and SPY/QQQ) to bars, against a brute-force Python reference.

The rule (DESIGN.md): an article counts for a bar only if its time (published_at, or ingested_at with
news_time = 'ingested') is strictly before the bar's available_at; windows are [available_at - w,
available_at). SPY/QQQ bars count when their available_at <= the bar's available_at.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lake
from ingest.common import bar_period
from ingest.sessions import land
from lake.config import Settings
from lake.schemas import NEWS, UTC_TS
from tests.conftest import bars_table

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
GRID = dt.timedelta(minutes=30)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(hours=24)
MAX_GAP = dt.timedelta(minutes=Settings().max_gap_minutes)
MAX_NEWS_AGE = dt.timedelta(minutes=Settings().max_news_age_minutes)
INTERVALS = {"15m": dt.timedelta(minutes=15), "1h": dt.timedelta(hours=1)}
BAR_NEWS_COLS = [
    "last_news_at",
    "sentiment_last",
    "news_count_1h",
    "news_count_1d",
    "sentiment_mean_1h",
    "sentiment_mean_1d",
]
CONTEXT_COLS = [
    f"{p}_{c}"
    for p in ("spy", "qqq")
    for c in ("available_at", "log_ret_1", "sentiment_last", "news_count_1d", "sentiment_mean_1d")
]


@dataclass(frozen=True)
class Bar:
    symbol: str
    interval: str
    ts: dt.datetime
    available_at: dt.datetime
    close: float


@dataclass(frozen=True)
class Art:
    symbol: str
    id: str
    published_at: dt.datetime
    ingested_at: dt.datetime
    sentiment: float

    def at(self, mode: str) -> dt.datetime:
        # ingested mode: when the lake first saw it, never before it was published
        return max(self.published_at, self.ingested_at) if mode == "ingested" else self.published_at


# --- writing a lake ---------------------------------------------------------------------------------


def write_lake(root: Path, bars: Sequence[Bar], arts: Sequence[Art]) -> None:
    """Bars through conftest's bars_table (one consecutive run per symbol and interval) and articles,
    both through the lake writer."""
    with land(root) as w:
        series: dict[tuple[str, str], list[Bar]] = {}
        for b in bars:
            series.setdefault((b.symbol, b.interval), []).append(b)
        for (symbol, interval), run in series.items():
            run.sort(key=lambda b: b.ts)
            table = bars_table(run[0].ts, [b.close for b in run], interval=INTERVALS[interval])
            assert table.column("ts").to_pylist() == [b.ts for b in run]
            for period in sorted({bar_period(interval, b.ts) for b in run}):
                keep = pa.array([bar_period(interval, b.ts) == period for b in run])
                part = {"source": "binance", "interval": interval, "symbol": symbol, "period": period}
                w.write(lake.BARS, part, table.filter(keep))
        by_symbol: dict[str, list[Art]] = {}
        for a in arts:
            by_symbol.setdefault(a.symbol, []).append(a)
        for symbol, items in by_symbol.items():
            w.write(NEWS, {"symbol": symbol}, news_table(items))


def news_table(items: Sequence[Art]) -> pa.Table:
    n = len(items)
    return pa.table(
        {
            "id": [a.id for a in items],
            "published_at": pa.array([a.published_at for a in items], type=UTC_TS),
            "ingested_at": pa.array([a.ingested_at for a in items], type=UTC_TS),
            "title": [f"headline {a.id}" for a in items],
            "summary": pa.array([None] * n, type=pa.string()),
            "publisher": pa.array([None] * n, type=pa.string()),
            "url": pa.array([None] * n, type=pa.string()),
            "sentiment": [a.sentiment for a in items],
            "source": ["test"] * n,
        }
    )


def connect(root: Path, mode: str) -> duckdb.DuckDBPyConnection:
    return lake.connect(root, read_only=True, settings=Settings(news_time=mode))


def query(
    con: duckdb.DuckDBPyConnection, view: str, cols: Sequence[str]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The view's rows keyed by (symbol, interval, ts), with available_at from bars."""
    select = ", ".join(f'v."{c}"' for c in cols)
    rel = con.sql(
        f'SELECT v.symbol, v."interval", v.ts, b.available_at, {select} FROM {view} v '
        'JOIN bars b USING (symbol, "interval", ts)'
    )
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rel.fetchall():
        key = (r[0], r[1], r[2])
        assert key not in out, f"{view}: two rows for {key}"
        out[key] = dict(zip(["available_at", *cols], r[3:], strict=True))
    return out


@contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder for one generated lake; fsync is skipped (durability is not under test here,
    and it dominates the time of these many small lakes)."""
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(os, "fsync", lambda fd: None):
        yield Path(tmp)


# --- the brute-force reference ----------------------------------------------------------------------


def ref_news(arts: Sequence[Art], symbol: str, until: dt.datetime, mode: str) -> dict[str, Any]:
    known = [a for a in arts if a.symbol == symbol and a.at(mode) < until]
    last = max(known, key=lambda a: (a.at(mode), a.id)) if known else None
    out: dict[str, Any] = {
        "last_news_at": last.at(mode) if last else None,
        "sentiment_last": last.sentiment if last else None,
    }
    for name, width in (("1h", HOUR), ("1d", DAY)):
        window = [a.sentiment for a in known if a.at(mode) >= until - width]
        out[f"news_count_{name}"] = len(window)
        out[f"sentiment_mean_{name}"] = sum(window) / len(window) if window else None
    return out


def ref_bar_news(
    bars: Sequence[Bar], arts: Sequence[Art], mode: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (b.symbol, b.interval, b.ts): {
            "available_at": b.available_at,
            **ref_news(arts, b.symbol, b.available_at, mode),
        }
        for b in bars
    }


def ref_market_context(
    bars: Sequence[Bar], arts: Sequence[Art], mode: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for b in bars:
        row: dict[str, Any] = {"available_at": b.available_at}
        for index in ("SPY", "QQQ"):
            p = index.lower()
            series = sorted(
                (x for x in bars if x.symbol == index and x.interval == b.interval), key=lambda x: x.ts
            )
            seen = [i for i, x in enumerate(series) if x.available_at <= b.available_at]
            i = max(seen, key=lambda i: series[i].available_at) if seen else None
            # stale (older than one bar of the interval plus max_gap_minutes at the bar's available_at):
            # nothing is carried
            if i is not None and b.available_at - series[i].available_at <= INTERVALS[b.interval] + MAX_GAP:
                row[f"{p}_available_at"] = series[i].available_at
                row[f"{p}_log_ret_1"] = math.log(series[i].close / series[i - 1].close) if i > 0 else None
            else:
                row[f"{p}_available_at"] = None
                row[f"{p}_log_ret_1"] = None
            n = ref_news(arts, index, b.available_at, mode)
            # news staleness: nothing when the latest article is older than max_news_age_minutes (or none)
            fresh = n["last_news_at"] is not None and b.available_at - n["last_news_at"] <= MAX_NEWS_AGE
            row[f"{p}_sentiment_last"] = n["sentiment_last"] if fresh else None
            row[f"{p}_news_count_1d"] = n["news_count_1d"] if fresh else None
            row[f"{p}_sentiment_mean_1d"] = n["sentiment_mean_1d"] if fresh else None
        out[(b.symbol, b.interval, b.ts)] = row
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b) and type(a) is type(b)


def assert_rows_equal(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]], what: str) -> None:
    assert set(got) == set(want), f"{what}: keys differ"
    for key in want:
        for col, w in want[key].items():
            g = got[key][col]
            assert same(g, w), f"{what} {key} {col}: SQL {g!r}, reference {w!r}"


# --- generated data ---------------------------------------------------------------------------------

SYMBOLS = ["AAA", "BBB", "SPY", "QQQ"]
NEWS_SYMBOLS = [*SYMBOLS, "CCC"]  # CCC has news and no bars
SENTIMENTS = [-1.0, -0.5859, -0.2263, 0.0, 0.1027, 0.4215, 0.8316, 1.0]


@st.composite
def lakes(draw: st.DrawFn) -> tuple[list[Bar], list[Art]]:
    """Bars of up to four symbols in one or two intervals, and articles on a 30-minute grid from before
    the first bar to after the last, half of them placed exactly on a bar's close or a window's edge
    (ties), some for a symbol without bars, some for SPY/QQQ."""
    bars: list[Bar] = []
    for symbol in draw(st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=4)):
        for interval in draw(
            st.lists(st.sampled_from(sorted(INTERVALS)), unique=True, min_size=1, max_size=2)
        ):
            start = T0 + draw(st.integers(0, 96)) * GRID
            closes = draw(
                st.lists(st.sampled_from([99.0, 100.0, 100.5, 101.0, 103.0]), min_size=1, max_size=8)
            )
            step = INTERVALS[interval]
            bars += [
                Bar(symbol, interval, start + i * step, start + (i + 1) * step, c)
                for i, c in enumerate(closes)
            ]
    edges = sorted({b.available_at - w for b in bars for w in (dt.timedelta(0), HOUR, DAY)})
    on_grid = st.integers(-10, 130).map(lambda k: T0 + k * GRID)  # before the first bar to after the last
    when = st.one_of(on_grid, st.sampled_from(edges)) if edges else on_grid
    arts: list[Art] = []
    specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(NEWS_SYMBOLS),
                when,
                # ingested before published (a clock or a run stamped early): -1, -3
                st.one_of(st.just(0), st.integers(-3, 6), st.sampled_from([48, 2, -1, -3])),
                st.sampled_from(SENTIMENTS),
            ),
            max_size=30,
        )
    )
    if specs:  # several articles of one symbol at one instant: counted together, the greatest id is last
        for j in draw(st.lists(st.integers(0, len(specs) - 1), max_size=5)):
            symbol, published, delay, _ = specs[j]
            specs.append((symbol, published, delay, draw(st.sampled_from(SENTIMENTS))))
    for i, (symbol, published, delay, sentiment) in enumerate(specs):
        arts.append(Art(symbol, f"id{i:03d}", published, published + delay * GRID, sentiment))
    return bars, arts


HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(data=lakes(), mode=st.sampled_from(["published", "ingested"]))
def test_sql_matches_the_brute_force_reference(data: tuple[list[Bar], list[Art]], mode: str) -> None:
    bars, arts = data
    with scratch() as tmp:
        write_lake(tmp / "lake", bars, arts)
        con = connect(tmp / "lake", mode)
        got = query(con, "bar_news", BAR_NEWS_COLS)
        assert_rows_equal(got, ref_bar_news(bars, arts, mode), f"bar_news ({mode})")
        ctx = query(con, "market_context", CONTEXT_COLS)
        assert_rows_equal(ctx, ref_market_context(bars, arts, mode), f"market_context ({mode})")
        feats = query(con, "features", [*BAR_NEWS_COLS, *CONTEXT_COLS])
        con.close()
    assert len(feats) == len(bars)
    for key, row in feats.items():
        assert row == {"available_at": row["available_at"], **got[key], **ctx[key]}
        assert row["last_news_at"] is None or row["last_news_at"] < row["available_at"]


@HYPOTHESIS
@given(data=lakes(), mode=st.sampled_from(["published", "ingested"]), pick=st.data())
def test_truncating_the_future_changes_no_row_known_before(
    data: tuple[list[Bar], list[Art]], mode: str, pick: st.DataObject
) -> None:
    """Delete every bar not known by t (available_at > t) and every article whose time (per news_time) is
    at or after t (stronger than 'after t': an article at exactly t must not count for a bar closing at
    t): no features / bar_news / market_context row of a bar known by t changes."""
    bars, arts = data
    on_grid = st.integers(0, 110).map(lambda k: T0 + k * GRID)
    closes = sorted({b.available_at for b in bars})
    t = pick.draw(st.one_of(on_grid, st.sampled_from(closes)) if closes else on_grid, label="t")
    kept_bars = [b for b in bars if b.available_at <= t]
    kept_arts = [a for a in arts if a.at(mode) < t]
    views = {
        "features": ["ret_1", *BAR_NEWS_COLS, *CONTEXT_COLS],
        "bar_news": BAR_NEWS_COLS,
        "market_context": CONTEXT_COLS,
    }
    with scratch() as tmp:
        write_lake(tmp / "full", bars, arts)
        write_lake(tmp / "cut", kept_bars, kept_arts)
        full, cut_con = connect(tmp / "full", mode), connect(tmp / "cut", mode)
        for view, cols in views.items():
            before = {k: v for k, v in query(full, view, cols).items() if v["available_at"] <= t}
            after = query(cut_con, view, cols)
            assert set(after) == set(before)
            for key in before:
                assert before[key] == after[key], f"{view} {key} changed when the future was deleted"
        full.close()
        cut_con.close()


# --- hand-checked example at bar boundaries ---------------------------------------------------------


def at(hhmm: str) -> dt.datetime:
    h, m = hhmm.split(":")
    return dt.datetime(2024, 3, 4, int(h), int(m), tzinfo=dt.UTC)


@pytest.fixture
def example_lake(lake_root: Path) -> Path:
    """AAPL 1h bars 14:30, 15:30, 16:30 (known at 15:30, 16:30, 17:30); SPY 1h bars 14:30, 15:30 only;
    no QQQ. AAPL articles: 13:00 (+0.5), 15:30 exactly at bar 1's close (-0.4, first seen 16:45),
    15:45 (+0.2), 17:30 exactly at the last close (+0.9), 20:00 after the last bar (-0.9)."""
    with land(lake_root) as w:
        part = {"source": "polygon", "interval": "1h", "symbol": "AAPL", "period": "2024-03"}
        w.write(
            lake.BARS, part, bars_table(at("14:30"), [100.0, 110.0, 99.0], interval=HOUR, asset_class="stock")
        )
        part = {"source": "polygon", "interval": "1h", "symbol": "SPY", "period": "2024-03"}
        w.write(lake.BARS, part, bars_table(at("14:30"), [500.0, 505.0], interval=HOUR, asset_class="etf"))
        arts = [
            Art("AAPL", "n1", at("13:00"), at("13:00"), 0.5),
            Art("AAPL", "n2", at("15:30"), at("16:45"), -0.4),
            Art("AAPL", "n3", at("15:45"), at("15:50"), 0.2),
            Art("AAPL", "n4", at("17:30"), at("17:30"), 0.9),
            Art("AAPL", "n5", at("20:00"), at("20:00"), -0.9),
        ]
        w.write(NEWS, {"symbol": "AAPL"}, news_table(arts))
        w.write(NEWS, {"symbol": "SPY"}, news_table([Art("SPY", "s1", at("15:00"), at("15:00"), -0.3)]))
    return lake_root


def features_rows(root: Path, mode: str, symbol: str) -> list[dict[str, Any]]:
    con = lake.connect(root, read_only=True, settings=Settings(news_time=mode))
    rel = con.sql("SELECT * FROM features WHERE symbol = ? ORDER BY ts", params=[symbol])
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def test_features_carry_the_as_of_values_at_bar_boundaries(example_lake: Path) -> None:
    rows = features_rows(example_lake, "published", "AAPL")
    got = [{c: r[c] for c in ["available_at", *BAR_NEWS_COLS]} for r in rows]
    assert got == [
        # bar 1, known at 15:30: only n1; n2 at exactly 15:30 belongs to the next bar
        dict(
            available_at=at("15:30"),
            last_news_at=at("13:00"),
            sentiment_last=0.5,
            news_count_1h=0,
            news_count_1d=1,
            sentiment_mean_1h=None,
            sentiment_mean_1d=0.5,
        ),
        # bar 2, known at 16:30: n1, n2, n3; the hour [15:30, 16:30) holds n2 and n3
        dict(
            available_at=at("16:30"),
            last_news_at=at("15:45"),
            sentiment_last=0.2,
            news_count_1h=2,
            news_count_1d=3,
            sentiment_mean_1h=pytest.approx(-0.1),
            sentiment_mean_1d=pytest.approx(0.1),
        ),
        # bar 3, known at 17:30: nothing new (n4 at exactly 17:30 is not known yet); empty hour
        dict(
            available_at=at("17:30"),
            last_news_at=at("15:45"),
            sentiment_last=0.2,
            news_count_1h=0,
            news_count_1d=3,
            sentiment_mean_1h=None,
            sentiment_mean_1d=pytest.approx(0.1),
        ),
    ]
    # market context: SPY's latest bar known at each close; after SPY's last bar it is an hour old at
    # 17:30: one bar of 1h, within one bar plus max_gap_minutes, so it is carried; SPY news as of the
    # close, no QQQ in the lake
    ctx = [{c: r[c] for c in CONTEXT_COLS} for r in rows]
    assert [c["spy_available_at"] for c in ctx] == [at("15:30"), at("16:30"), at("16:30")]
    assert ctx[0]["spy_log_ret_1"] is None
    assert ctx[1]["spy_log_ret_1"] == pytest.approx(math.log(505 / 500))
    assert ctx[2]["spy_log_ret_1"] == pytest.approx(math.log(505 / 500))
    assert [c["spy_sentiment_last"] for c in ctx] == [-0.3, -0.3, -0.3]
    assert [c["spy_news_count_1d"] for c in ctx] == [1, 1, 1]
    assert all(c[f"qqq_{k}"] is None for c in ctx for k in ("available_at", "log_ret_1", "sentiment_last"))
    assert [c["qqq_news_count_1d"] for c in ctx] == [None, None, None]  # no QQQ news at all: unknown
    # AAPL's own return is there too (bar_features), untouched by the joins
    assert rows[1]["ret_1"] == pytest.approx(math.log(110 / 100))


def test_news_time_ingested_joins_on_first_seen(example_lake: Path) -> None:
    rows = features_rows(example_lake, "ingested", "AAPL")
    # n2 was published at 15:30 but first seen at 16:45: bar 2 (known 16:30) does not have it, bar 3 does
    assert [
        (r["last_news_at"], r["sentiment_last"], r["news_count_1h"], r["news_count_1d"]) for r in rows
    ] == [
        (at("13:00"), 0.5, 0, 1),
        (at("15:50"), 0.2, 1, 2),
        (at("16:45"), -0.4, 1, 3),
    ]


def test_an_article_stamped_ingested_before_it_was_published_waits_for_its_publication(
    example_lake: Path,
) -> None:
    """ingested_at < published_at (a run stamped before the article existed): in ingested mode the
    article counts from its publication, never for a bar that closed before it was published."""
    with land(example_lake) as w:
        w.write(NEWS, {"symbol": "AAPL"}, news_table([Art("AAPL", "n6", at("16:40"), at("15:00"), 1.0)]))
    rows = features_rows(example_lake, "ingested", "AAPL")
    # bar 2 closes 16:30, before n6 was published at 16:40: n6 must not count; bar 3 (17:30) has it
    assert rows[1]["news_count_1d"] == 2 and rows[1]["sentiment_last"] == 0.2
    assert rows[2]["news_count_1d"] == 4 and rows[2]["news_count_1h"] == 2  # n2 (16:45), n6 (16:40)


def test_articles_at_one_instant_count_together_and_the_greatest_id_is_last(lake_root: Path) -> None:
    with land(lake_root) as w:
        part = {"source": "binance", "interval": "1h", "symbol": "BTCUSDT", "period": "2024-03"}
        w.write(lake.BARS, part, bars_table(at("10:00"), [1.0], interval=HOUR))
        arts = [
            Art("BTCUSDT", i, at("10:30"), at("10:30"), s) for i, s in (("b", 0.25), ("c", -0.5), ("a", 1.0))
        ]
        w.write(NEWS, {"symbol": "BTCUSDT"}, news_table(arts))
    [row] = features_rows(lake_root, "published", "BTCUSDT")
    assert (row["last_news_at"], row["sentiment_last"], row["news_count_1h"]) == (at("10:30"), -0.5, 3)
    assert row["sentiment_mean_1h"] == pytest.approx(0.25)


def test_a_symbol_without_news_gets_zero_counts_and_nulls(example_lake: Path) -> None:
    rows = features_rows(example_lake, "published", "SPY")
    # SPY's one article (15:00) is in bar 1's hour [14:30, 15:30), not in bar 2's [15:30, 16:30)
    assert [(r["news_count_1h"], r["sentiment_mean_1h"], r["news_count_1d"]) for r in rows] == [
        (1, -0.3, 1),
        (0, None, 1),
    ]
    with land(example_lake) as w:
        part = {"source": "binance", "interval": "1h", "symbol": "BTCUSDT", "period": "2024-03"}
        w.write(lake.BARS, part, bars_table(at("00:00"), [1.0, 2.0], interval=HOUR))
    btc = features_rows(example_lake, "published", "BTCUSDT")
    assert [
        (r["last_news_at"], r["sentiment_last"], r["news_count_1h"], r["news_count_1d"]) for r in btc
    ] == [
        (None, None, 0, 0),
        (None, None, 0, 0),
    ]
    assert all(r["sentiment_mean_1h"] is None and r["sentiment_mean_1d"] is None for r in btc)

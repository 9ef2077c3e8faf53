"""bar_features / features: past rows only, segments confined by sessions and gaps, warm-up marked.

The truncation property (change every row after t: nothing at or before t changes) is checked for every
feature column with hypothesis over generated series with gaps; a brute-force Python reference checks
returns, volatility, RSI, volume z-score and range mean.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import lake
from ingest.common import bar_period
from ingest.sessions import land
from lake.config import Settings
from lake.schemas import UTC_TS

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
MIN = dt.timedelta(minutes=1)
KEY = ("symbol", "interval", "ts", "available_at")


def make_bars(
    ts: Sequence[dt.datetime],
    closes: Sequence[float],
    volumes: Sequence[float] | None = None,
    *,
    asset_class: str = "crypto",
    interval: dt.timedelta = MIN,
    opens: Sequence[float] | None = None,
) -> pa.Table:
    opens = list(opens) if opens is not None else [closes[0], *closes[:-1]]
    vols = list(volumes) if volumes is not None else [1.0] * len(closes)
    return pa.table(
        {
            "asset_class": [asset_class] * len(ts),
            "ts": pa.array(list(ts), type=UTC_TS),
            "available_at": pa.array([t + interval for t in ts], type=UTC_TS),
            "open": opens,
            "high": [max(o, c) * 1.001 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) * 0.999 for o, c in zip(opens, closes, strict=True)],
            "close": list(closes),
            "volume": vols,
            "trades": pa.array([None] * len(ts), type=pa.int64()),
            "source_file": ["gen.csv"] * len(ts),
        }
    )


def write(root: Path, symbol: str, table: pa.Table, *, source: str = "binance", interval: str = "1m") -> None:
    ts = table.column("ts").to_pylist()
    with land(root) as w:
        for p in sorted({bar_period(interval, t) for t in ts}):
            mask = pa.array([bar_period(interval, t) == p for t in ts])
            w.write(
                lake.BARS,
                {"source": source, "interval": interval, "symbol": symbol, "period": p},
                table.filter(mask),
                mode="replace",
            )


def features(root: Path, s: Settings, view: str = "bar_features") -> tuple[list[str], list[tuple[Any, ...]]]:
    con = lake.connect(root, settings=s)
    rel = con.sql(f'SELECT * FROM {view} ORDER BY symbol, "interval", ts')
    return rel.columns, rel.fetchall()


def feature_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c not in KEY]


# --- the truncation property ------------------------------------------------------------------------------

STEPS = st.sampled_from([1, 1, 1, 1, 1, 1, 1, 2, 3, 16, 17, 45, 300, 1000])
INNER_STEPS = st.sampled_from([1] * 12 + [2, 3, 16])  # 16: 15 idle minutes, not a gap with the default
GAPS = st.sampled_from([17, 45, 300, 1000, 2000])  # longer than max_gap_minutes, or past a session end
PRICE = st.floats(min_value=50.0, max_value=150.0, allow_nan=False)
VOLUME = st.sampled_from([0.0, 1.0, 1.0, 2.0, 5.0, 10.0, 123.5])


CRYPTO_STARTS = [
    dt.datetime(2024, 7, 2, 23, 30, tzinfo=UTC),  # crosses midnight UTC
    dt.datetime(2024, 1, 12, 14, 50, tzinfo=UTC),  # winter, in New York's regular hours (SPY in session)
]
STOCK_STARTS = [
    dt.datetime(2024, 7, 2, 10, 0, tzinfo=NY).astimezone(UTC),
    dt.datetime(2024, 7, 3, 11, 50, tzinfo=NY).astimezone(UTC),  # crosses the 13:00 early close
    dt.datetime(2024, 1, 9, 15, 0, tzinfo=NY).astimezone(UTC),  # winter (EST)
    dt.datetime(2024, 3, 8, 15, 30, tzinfo=NY).astimezone(UTC),  # Friday before the March DST switch
    dt.datetime(2024, 11, 1, 15, 40, tzinfo=NY).astimezone(UTC),  # Friday before the November switch
    dt.datetime(2024, 11, 29, 12, 30, tzinfo=NY).astimezone(UTC),  # winter early close (13:00)
]


@st.composite
def series(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["crypto", "stock"]))
    start = draw(st.sampled_from(CRYPTO_STARTS if kind == "crypto" else STOCK_STARTS))
    # short segments and segments long enough to fill the 60-bar windows
    lengths = draw(st.lists(st.one_of(st.integers(1, 20), st.integers(55, 150)), min_size=1, max_size=3))
    ts = [start]
    for j, length in enumerate(lengths):
        if j:
            ts.append(ts[-1] + draw(GAPS) * MIN)
        for _ in range(length - 1):
            ts.append(ts[-1] + draw(INNER_STEPS) * MIN)
    n = len(ts)
    closes = draw(st.lists(PRICE, min_size=n, max_size=n))
    volumes = draw(st.lists(VOLUME, min_size=n, max_size=n))
    # the cut anywhere, or late in the series where every window is full
    cut = draw(st.one_of(st.integers(0, n - 1), st.integers(max(0, n - 1 - n // 3), n - 1)))
    tail = n - cut - 1
    # every row after the cut really changes: its close is scaled and its volume raised
    scale = draw(st.lists(st.sampled_from([0.5, 0.9, 1.1, 2.0]), min_size=tail, max_size=tail))
    more = draw(st.lists(st.sampled_from([1.0, 7.5, 100.0]), min_size=tail, max_size=tail))
    new_closes = [c * k for c, k in zip(closes[cut + 1 :], scale, strict=True)]
    new_volumes = [v + d for v, d in zip(volumes[cut + 1 :], more, strict=True)]
    drop = draw(st.sets(st.integers(min_value=cut + 1, max_value=max(cut + 1, n - 1)), max_size=5))
    shift = draw(st.sampled_from([0, 0, 1, 7, 20]))  # the tail may also move later in time
    session = draw(st.sampled_from(["regular", "extended"]))
    # news of SYM and SPY: (symbol, bar index, offset minutes, ingestion delay minutes (may be negative:
    # stamped before publication), sentiment), published at ts[index] + offset
    news = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["SYM", "SPY"]),
                st.one_of(st.integers(0, n - 1), st.sampled_from([cut, min(cut + 1, n - 1)])),  # near t
                st.sampled_from([-30, -1, 0, 1, 2]),
                st.sampled_from([0, 0, 3, -3, -3, 90]),
                st.sampled_from([-0.5, 0.0, 0.25, 0.8]),
            ),
            max_size=12,
        )
    )
    news_time = draw(st.sampled_from(["published", "ingested"]))
    return {
        "kind": kind,
        "ts": ts,
        "closes": closes,
        "volumes": volumes,
        "cut": cut,
        "new_closes": new_closes,
        "new_volumes": new_volumes,
        "drop": drop,
        "shift": shift,
        "session": session,
        "news": news,
        "news_time": news_time,
    }


def news_rows(case: dict[str, Any], after: dt.datetime | None) -> dict[str, list[dict[str, Any]]]:
    """The case's articles per symbol, plus one an hour before the first bar for each symbol (so news
    columns are never NULL for every row); with `after` set, every article known at or after it (by its
    true time: publication, or ingestion when later in ingested mode) is changed or dropped: the future."""
    ts = case["ts"]
    out: dict[str, list[dict[str, Any]]] = {}
    items = [(sym, 0, -60, 0, 0.1) for sym in ("SYM", "SPY")] + list(case["news"])
    for i, (sym, k, offset, delay, sentiment) in enumerate(items):
        published = ts[k] + offset * MIN
        ingested = published + delay * MIN
        known = max(published, ingested) if case["news_time"] == "ingested" else published
        if after is not None and known >= after:
            if i % 3 == 0:
                continue  # dropped
            sentiment = -sentiment - 0.3  # changed
        out.setdefault(sym, []).append(
            {
                "id": f"a{i:03d}",
                "published_at": published,
                "ingested_at": ingested,
                "title": f"headline {i}",
                "summary": None,
                "publisher": None,
                "url": None,
                "sentiment": sentiment,
                "source": "test",
            }
        )
    return out


def write_news(root: Path, by_symbol: dict[str, list[dict[str, Any]]]) -> None:
    from lake.schemas import NEWS

    with land(root) as w:
        for symbol, rows in by_symbol.items():
            w.write(NEWS, {"symbol": symbol}, pa.Table.from_pylist(rows, schema=NEWS.schema))


_T = dt.datetime(2024, 1, 12, 14, 50, tzinfo=UTC)
LOOKAHEAD_CASE = {  # an article published 1 minute after the cut bar's close, stamped ingested 3 minutes earlier
    "kind": "stock",
    "ts": [_T + i * MIN for i in range(10)],
    "closes": [100.0 + i for i in range(10)],
    "volumes": [1.0] * 10,
    "cut": 4,
    "new_closes": [1.0] * 5,
    "new_volumes": [2.0] * 5,
    "drop": set(),
    "shift": 0,
    "session": "regular",
    "news": [("SYM", 4, 1, -3, 0.8)],
    "news_time": "ingested",
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series())
@example(LOOKAHEAD_CASE)
def test_changing_rows_after_t_changes_nothing_at_or_before_t(case: dict[str, Any]) -> None:
    """SYM (crypto or a stock, winter and summer) and SPY (an ETF on the XNYS calendar, its own prices) with
    news of both: every bar after t changes, moves or goes, every article known at or after the cut bar's
    close changes or goes; no features row of a bar at or before t changes."""
    cut = case["cut"]
    ts = case["ts"]
    t_cut = ts[cut]
    known_at = t_cut + MIN  # the cut bar's available_at
    asset = "crypto" if case["kind"] == "crypto" else "stock"
    keep = [i for i in range(cut + 1, len(ts)) if i not in case["drop"]]
    b_ts = ts[: cut + 1] + [ts[i] + case["shift"] * MIN for i in keep]
    tail_closes = [case["new_closes"][i - cut - 1] for i in keep]
    tail_volumes = [case["new_volumes"][i - cut - 1] for i in keep]
    b_closes = case["closes"][: cut + 1] + tail_closes
    b_volumes = case["volumes"][: cut + 1] + tail_volumes
    # no news age limit here: the generated bars may lie days after the articles, and this test is about
    # truncation (the limit itself: test_news_context_freshness.py)
    s = Settings(session=case["session"], news_time=case["news_time"], max_news_age_minutes=10**8)
    with tempfile.TemporaryDirectory() as tmp:
        root_a, root_b = Path(tmp) / "a", Path(tmp) / "b"
        source = "binance" if asset == "crypto" else "polygon"
        write(root_a, "SYM", make_bars(ts, case["closes"], case["volumes"], asset_class=asset), source=source)
        write(root_b, "SYM", make_bars(b_ts, b_closes, b_volumes, asset_class=asset), source=source)
        spy_a = make_bars(ts, [c * 4.1 for c in case["closes"]], asset_class="etf")
        spy_b = make_bars(b_ts, [c * 4.1 for c in b_closes], asset_class="etf")
        write(root_a, "SPY", spy_a, source="polygon")
        write(root_b, "SPY", spy_b, source="polygon")
        write_news(root_a, news_rows(case, None))
        write_news(root_b, news_rows(case, known_at))
        for view in ("bar_features", "features"):
            cols, rows_a = features(root_a, s, view)
            cols_b, rows_b = features(root_b, s, view)
            assert cols == cols_b
            ti, si = cols.index("ts"), cols.index("symbol")
            past_a = [r for r in rows_a if r[ti] <= t_cut]
            past_b = [r for r in rows_b if r[ti] <= t_cut]
            assert len(past_a) == len(past_b)
            for ra, rb in zip(past_a, past_b, strict=True):
                for c, va, vb in zip(cols, ra, rb, strict=True):
                    assert unchanged(va, vb), (
                        f"{view}.{c} of {ra[si]} at {ra[ti]} changed when rows after {t_cut} changed: "
                        f"{va!r} -> {vb!r}"
                    )
            if view == "features":
                # the comparison is not vacuous: news and market context are there in the compared rows
                got = [dict(zip(cols, r, strict=True)) for r in past_a]
                assert got and all(r["last_news_at"] is not None for r in got)
                assert all(r["spy_sentiment_last"] is not None for r in got)
                spy_rows = [r for r in got if r["symbol"] == "SPY"]
                assert all(r["spy_available_at"] == r["available_at"] for r in spy_rows)


def test_the_truncation_test_covers_every_feature_column(lake_root: Path) -> None:
    """Every column the property compares is a feature column: nothing is left out by name."""
    write(lake_root, "SYM", make_bars([dt.datetime(2024, 7, 2, tzinfo=UTC)], [1.0]))
    cols, _ = features(lake_root, Settings(), "features")
    expected = {
        "ret_1", "ret_5", "ret_15", "ret_60", "vol_15", "vol_60", "rsi_14", "volume_z_60", "range_hl",
        "range_mean_15", "body", "gap_open", "idle_minutes", "minute_of_day", "day_of_week", "tod_sin",
        "tod_cos", "minutes_since_open", "minutes_to_close", "warmup", "segment_no", "segment_pos",
    }  # fmt: skip
    assert expected <= set(feature_columns(cols))
    assert not {c for c in cols if c.startswith(("news_", "sentiment_", "spy_", "qqq_"))} & expected


# --- brute-force reference ---------------------------------------------------------------------------------


def reference(
    ts: list[dt.datetime],
    closes: list[float],
    volumes: list[float],
    max_gap: float,
    *,
    opens: list[float] | None = None,
    starts: set[int] | None = None,
) -> list[dict[str, Any]]:
    """Features of consecutive rows, each from its window: segments break on an idle gap > max_gap
    minutes (crypto), or at the given `starts` (row indices, e.g. from `boundaries` for stocks)."""
    out: list[dict[str, Any]] = []
    opens = opens if opens is not None else [closes[0], *closes[:-1]]
    hl = [math.log(max(o, c) * 1.001 / (min(o, c) * 0.999)) for o, c in zip(opens, closes, strict=True)]
    seg_start = 0
    for i in range(len(ts)):
        idle_gap = (ts[i] - (ts[i - 1] + MIN)).total_seconds() / 60 > max_gap if i else True
        if i == 0 or (i in starts if starts is not None else idle_gap):
            seg_start = i
        pos = i - seg_start
        row: dict[str, Any] = {"segment_pos": pos, "warmup": pos < 60}
        for k in (1, 5, 15, 60):
            row[f"ret_{k}"] = math.log(closes[i] / closes[i - k]) if pos >= k else None
        r1 = [math.log(closes[j] / closes[j - 1]) for j in range(i - 59, i + 1) if j - 1 >= seg_start]
        row["vol_15"] = statistics.stdev(r1[-15:]) if pos >= 15 else None
        row["vol_60"] = statistics.stdev(r1[-60:]) if pos >= 60 else None
        if pos >= 14:
            ch = [closes[j] - closes[j - 1] for j in range(i - 13, i + 1)]
            g, lo = sum(c for c in ch if c > 0), sum(-c for c in ch if c < 0)
            row["rsi_14"] = 100 * g / (g + lo) if g + lo > 0 else 50.0
        else:
            row["rsi_14"] = None
        row["range_hl"] = hl[i]
        row["range_mean_15"] = statistics.mean(hl[i - 14 : i + 1]) if pos >= 14 else None
        row["gap_open"] = math.log(opens[i] / closes[i - 1]) if pos >= 1 else None
        row["idle_minutes"] = (ts[i] - ts[i - 1] - MIN).total_seconds() / 60 if pos >= 1 else None
        if pos >= 60:
            prev = volumes[i - 60 : i]
            sd = statistics.stdev(prev)
            row["volume_z_60"] = (volumes[i] - statistics.mean(prev)) / sd if sd > 0 else None
        else:
            row["volume_z_60"] = None
        out.append(row)
    return out


def unchanged(a: Any, b: Any) -> bool:
    """Equal, or floats within 1e-12 relative: DuckDB's windowed aggregates may sum in another order when a
    partition holds more rows (the last bit moves), while a look-ahead moves a value by far more."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return bool(a == b)


def close_enough(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a == b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(STEPS, min_size=200, max_size=200),
    st.lists(PRICE, min_size=201, max_size=201),
    st.lists(VOLUME | st.floats(min_value=0, max_value=1e6), min_size=201, max_size=201),
)
def test_features_match_a_brute_force_reference(
    steps: list[int], closes: list[float], volumes: list[float]
) -> None:
    ts = [dt.datetime(2024, 7, 2, tzinfo=UTC)]
    for s in steps:
        ts.append(ts[-1] + s * MIN)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root, "BTCUSDT", make_bars(ts, closes, volumes))
        cols, rows = features(root, Settings(max_gap_minutes=15))
    ref = reference(ts, closes, volumes, 15)
    assert len(rows) == len(ref)
    for r, want in zip(rows, ref, strict=True):
        got = dict(zip(cols, r, strict=True))
        for name, value in want.items():
            assert close_enough(got[name], value), f"{name} at {got['ts']}: SQL {got[name]!r} != {value!r}"


@st.composite
def stock_sessions(draw: st.DrawFn) -> dict[str, Any]:
    """Minute bars of a stock over four consecutive XNYS sessions (winter, summer, DST weeks, early
    closes), each session used or skipped, each trimmed at its open and close and maybe holed."""
    import random

    from features.calendars import xnys_year

    session = draw(st.sampled_from(["regular", "extended"]))
    first = draw(
        st.sampled_from(
            [
                dt.date(2024, 1, 9),
                dt.date(2024, 3, 7),
                dt.date(2024, 10, 31),
                dt.date(2024, 11, 26),
                dt.date(2024, 7, 1),
            ]
        )
    )
    days = [r for r in sorted(xnys_year(2024).to_pylist(), key=lambda r: r["day"]) if r["day"] >= first][:4]
    used = draw(st.lists(st.sampled_from([True, True, True, False]), min_size=4, max_size=4))
    ts: list[dt.datetime] = []
    for row, use in zip(days, used, strict=True):
        if not use:
            continue
        lo, hi = (
            (row["open_at"], row["close_at"])
            if session == "regular"
            else (row["ext_open_at"], row["ext_close_at"])
        )
        a, b = draw(st.sampled_from([0, 0, 0, 5, 30])), draw(st.sampled_from([0, 0, 0, 5, 30]))
        hole_at, hole_len = draw(st.sampled_from([(0, 0), (0, 0), (60, 10), (100, 20)]))
        n = int((hi - lo).total_seconds() // 60)
        ts += [
            lo + k * MIN for k in range(a, n - b) if not hole_at <= k - a < hole_at + hole_len or not hole_len
        ]
    assume(len(ts) > 1)
    rng = random.Random(draw(st.integers(0, 2**32)))
    closes = [100.0]
    for _ in ts[1:]:
        closes.append(closes[-1] * math.exp(rng.gauss(0, 0.002)))
    volumes = [float(rng.choice([0, 1, 1, 2, 5, 10, 123.5])) for _ in ts]
    return {"ts": ts, "closes": closes, "volumes": volumes, "session": session}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stock_sessions(), st.sampled_from([15, 40]))
def test_stock_features_match_the_brute_force_reference_over_sessions(
    case: dict[str, Any], max_gap: int
) -> None:
    """Stocks over consecutive sessions: segments from the Python rule in `boundaries` (a skipped session,
    or missing session time > max_gap, across the night too), every feature from its window."""
    ts, closes, volumes = case["ts"], case["closes"], case["volumes"]
    opens = [closes[0], *closes[:-1]]
    starts = set(boundaries(ts, "stock", case["session"], max_gap))
    kept = [i for i, t in enumerate(ts) if in_session_py(t, case["session"])]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root, "AAPL", make_bars(ts, closes, volumes, asset_class="stock"), source="polygon")
        cols, rows = features(root, Settings(session=case["session"], max_gap_minutes=max_gap))
    ref = reference(
        [ts[i] for i in kept],
        [closes[i] for i in kept],
        [volumes[i] for i in kept],
        max_gap,
        opens=[opens[i] for i in kept],
        starts={j for j, i in enumerate(kept) if i in starts},
    )
    assert len(rows) == len(ref)
    for r, want in zip(rows, ref, strict=True):
        got = dict(zip(cols, r, strict=True))
        for name, value in want.items():
            assert close_enough(got[name], value), f"{name} at {got['ts']}: SQL {got[name]!r} != {value!r}"


@functools.cache
def xnys_2024() -> dict[dt.date, dict[str, Any]]:
    from features.calendars import xnys_year

    return {r["day"]: r for r in xnys_year(2024).to_pylist()}


def in_session_py(t: dt.datetime, session: str) -> bool:
    row = xnys_2024().get(t.astimezone(NY).date())
    if row is None:
        return False
    lo, hi = (
        (row["open_at"], row["close_at"])
        if session == "regular"
        else (row["ext_open_at"], row["ext_close_at"])
    )
    return bool(lo < t + MIN and t < hi)


# --- boundaries and warm-up ------------------------------------------------------------------------------


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY).astimezone(UTC)


def by_ts(root: Path, s: Settings) -> dict[dt.datetime, dict[str, Any]]:
    cols, rows = features(root, s)
    return {r[cols.index("ts")]: dict(zip(cols, r, strict=True)) for r in rows}


def test_a_sessions_first_bar_looks_back_over_the_previous_session(lake_root: Path) -> None:
    # two full regular sessions of AAPL, with the second day's pre-market at other prices
    day1 = [ny(2024, 7, 1, 9, 30) + i * MIN for i in range(390)]
    pre = [ny(2024, 7, 2, 8, 0) + i * MIN for i in range(90)]
    day2 = [ny(2024, 7, 2, 9, 30) + i * MIN for i in range(390)]
    ts = day1 + pre + day2
    closes = [100 + 0.1 * math.sin(i) for i in range(len(ts))]
    closes[390:480] = [150.0] * 90
    opens = [closes[0], *closes[:-1]]
    opens[480] = 101.0
    write(lake_root, "AAPL", make_bars(ts, closes, asset_class="stock", opens=opens), source="polygon")
    f = by_ts(lake_root, Settings())
    first = f[ny(2024, 7, 2, 9, 30)]
    # the night between two consecutive sessions is no gap: the segment goes on, windows are full
    assert first["segment_pos"] == 390 and first["warmup"] is False
    assert first["segment_no"] == f[ny(2024, 7, 1, 15, 59)]["segment_no"]
    # ret_1 spans the overnight close -> close (not the pre-market, which is outside the session)
    assert first["ret_1"] == math.log(closes[480] / closes[389])
    assert first["gap_open"] == math.log(101.0 / closes[389])  # the overnight gap
    assert first["idle_minutes"] == 17.5 * 60
    for c in ("ret_60", "vol_15", "vol_60", "rsi_14", "range_mean_15"):
        assert first[c] is not None, c
    assert f[ny(2024, 7, 1, 15, 59)]["minutes_to_close"] == 0.0
    assert first["minutes_since_open"] == 0.0
    assert first["minute_of_day"] == 570 and first["day_of_week"] == 2


def test_a_skipped_session_still_breaks_intraday_stock_segments(lake_root: Path) -> None:
    # 2024-07-01 and 2024-07-03 (an early close); 2024-07-02 has no data at all
    day1 = [ny(2024, 7, 1, 9, 30) + i * MIN for i in range(390)]
    day3 = [ny(2024, 7, 3, 9, 30) + i * MIN for i in range(210)]
    ts = day1 + day3
    write(
        lake_root,
        "AAPL",
        make_bars(ts, [100.0 + i % 9 for i in range(len(ts))], asset_class="stock"),
        source="polygon",
    )
    f = by_ts(lake_root, Settings())
    first = f[ny(2024, 7, 3, 9, 30)]
    assert first["segment_pos"] == 0 and first["warmup"] is True
    for c in ("ret_1", "ret_60", "vol_15", "rsi_14", "gap_open", "idle_minutes"):
        assert first[c] is None, c
    assert f[ny(2024, 7, 3, 10, 30)]["warmup"] is False and f[ny(2024, 7, 3, 10, 29)]["ret_60"] is None


def test_session_time_missing_at_the_open_or_close_is_a_gap(lake_root: Path) -> None:
    # day 1 ends 10 minutes early, day 2 starts 10 minutes late: 20 minutes of session time with no bar
    day1 = [ny(2024, 7, 1, 9, 30) + i * MIN for i in range(380)]
    day2 = [ny(2024, 7, 2, 9, 40) + i * MIN for i in range(100)]
    ts = day1 + day2
    write(
        lake_root,
        "AAPL",
        make_bars(ts, [100.0 + i % 9 for i in range(len(ts))], asset_class="stock"),
        source="polygon",
    )
    assert by_ts(lake_root, Settings(max_gap_minutes=19))[ny(2024, 7, 2, 9, 40)]["segment_pos"] == 0
    assert by_ts(lake_root, Settings(max_gap_minutes=20))[ny(2024, 7, 2, 9, 40)]["segment_pos"] == 380


def test_hourly_stock_bars_get_features_after_warm_up(lake_root: Path) -> None:
    from features.calendars import xnys_year

    H = dt.timedelta(hours=1)
    sess = [r for r in xnys_year(2024).to_pylist() if dt.date(2024, 6, 1) <= r["day"] <= dt.date(2024, 8, 31)]
    # Yahoo-style regular-hours bars at 09:30, 10:30, ... (the last one cut by the close)
    ts = [r["open_at"] + i * H for r in sess for i in range(4 if r["is_early_close"] else 7)]
    t = make_bars(ts, [100.0 + (i % 11) * 0.3 for i in range(len(ts))], asset_class="stock", interval=H)
    write(lake_root, "YHO", t, source="yahoo", interval="1h")
    cols, rows = features(lake_root, Settings(session="regular"))
    f = [dict(zip(cols, r, strict=True)) for r in rows]
    assert len(f) == len(ts) > 200
    assert [r["segment_pos"] for r in f] == list(range(len(f)))  # one segment over every session
    assert all(r["warmup"] for r in f[:60]) and not any(r["warmup"] for r in f[60:])
    for c in ("ret_15", "ret_60", "vol_15", "vol_60", "rsi_14", "range_mean_15"):
        assert all(r[c] is not None for r in f[60:]), c
    assert sum(r["vol_60"] is not None for r in f) == len(f) - 60


def test_a_gap_longer_than_max_gap_minutes_starts_a_new_segment(lake_root: Path) -> None:
    t0 = dt.datetime(2024, 7, 2, tzinfo=UTC)
    ts = [t0 + i * MIN for i in range(70)]
    ts += [ts[-1] + 16 * MIN + i * MIN for i in range(70)]  # 15 idle minutes: same segment
    ts += [ts[-1] + 17 * MIN + i * MIN for i in range(70)]  # 16 idle minutes: a new segment
    write(lake_root, "BTCUSDT", make_bars(ts, [100.0 + (i % 7) for i in range(len(ts))]))
    f = by_ts(lake_root, Settings(max_gap_minutes=15))
    assert f[ts[70]]["segment_pos"] == 70 and f[ts[70]]["idle_minutes"] == 15.0
    assert f[ts[70]]["ret_1"] is not None
    assert f[ts[140]]["segment_pos"] == 0 and f[ts[140]]["ret_1"] is None and f[ts[140]]["warmup"] is True
    assert f[ts[140]]["segment_no"] == f[ts[139]]["segment_no"] + 1
    wider = by_ts(lake_root, Settings(max_gap_minutes=16))
    assert wider[ts[140]]["segment_pos"] == 140


def test_crypto_midnight_is_not_a_boundary(lake_root: Path) -> None:
    t0 = dt.datetime(2024, 7, 2, 23, 0, tzinfo=UTC)
    ts = [t0 + i * MIN for i in range(120)]
    write(lake_root, "BTCUSDT", make_bars(ts, [100.0 + i for i in range(120)]))
    f = by_ts(lake_root, Settings())
    assert f[dt.datetime(2024, 7, 3, tzinfo=UTC)]["segment_pos"] == 60


def test_warm_up_rows_are_marked_and_features_null_until_their_window_is_full(lake_root: Path) -> None:
    t0 = dt.datetime(2024, 7, 2, tzinfo=UTC)
    ts = [t0 + i * MIN for i in range(80)]
    write(
        lake_root,
        "BTCUSDT",
        make_bars(ts, [100.0 + (i % 5) for i in range(80)], [float(i % 3) for i in range(80)]),
    )
    cols, rows = features(lake_root, Settings())
    f = [dict(zip(cols, r, strict=True)) for r in rows]
    need = {"ret_1": 1, "ret_5": 5, "ret_15": 15, "ret_60": 60, "vol_15": 15, "vol_60": 60, "rsi_14": 14,
            "volume_z_60": 60, "range_mean_15": 14}  # fmt: skip
    for name, k in need.items():
        assert all(r[name] is None for r in f[:k]), name
        assert all(r[name] is not None for r in f[k:]), name
    assert [r["warmup"] for r in f] == [i < 60 for i in range(80)]


def test_session_setting_decides_which_stock_bars_get_features(lake_root: Path) -> None:
    ts = [ny(2024, 7, 2, 8, 0) + i * MIN for i in range(600)]  # 08:00 .. 17:59 New York
    write(lake_root, "AAPL", make_bars(ts, [100.0] * 600, asset_class="stock"), source="polygon")
    regular = by_ts(lake_root, Settings(session="regular"))
    assert min(regular) == ny(2024, 7, 2, 9, 30) and max(regular) == ny(2024, 7, 2, 15, 59)
    assert len(regular) == 390
    extended = by_ts(lake_root, Settings(session="extended"))
    assert len(extended) == 600
    assert extended[ny(2024, 7, 2, 8, 0)]["minutes_since_open"] == 240.0  # extended hours open at 04:00


def test_daily_stock_bars_continue_over_weekends_and_holidays_but_not_a_missing_session(
    lake_root: Path,
) -> None:
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start="2024-06-01", end="2024-09-30")
    sched = cal.schedule.loc["2024-06-03":"2024-09-30"]
    days = [
        (o.to_pydatetime(), c.to_pydatetime()) for o, c in zip(sched["open"], sched["close"], strict=True)
    ]
    skipped = days[40]
    days = [d for d in days if d != skipped]
    t = make_bars([o for o, _ in days], [100.0 + i for i in range(len(days))], asset_class="stock")
    t = t.set_column(
        t.schema.get_field_index("available_at"), "available_at", pa.array([c for _, c in days], type=UTC_TS)
    )
    write(lake_root, "AAPL", t, source="yahoo", interval="1d")
    f = by_ts(lake_root, Settings())
    positions = [f[o]["segment_pos"] for o, _ in days]
    assert positions[:40] == list(range(40))  # weekends and July 4 are no gaps
    assert positions[40] == 0  # the session before was skipped


# --- nothing crosses a boundary (property) -----------------------------------------------------------------


def boundaries(ts: list[dt.datetime], kind: str, session: str, max_gap: int = 15) -> list[int]:
    """Indices of bars that start a segment, by the documented rule, computed in Python from the calendar:
    stocks keep only bars in the session and break after a skipped session, or when the session time with
    no bar exceeds max_gap (within a session: the idle time; across consecutive sessions: the previous
    session's time after the previous bar plus this session's time before this bar); crypto breaks after
    more than max_gap idle minutes."""
    from features.calendars import xnys_year

    days = sorted(xnys_year(2024).to_pylist(), key=lambda r: r["day"])
    cal = {r["day"]: r for r in days}
    number = {r["day"]: i for i, r in enumerate(days)}

    def window(t: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        row = cal.get(t.astimezone(NY).date())
        if row is None:
            return None
        if session == "regular":
            return row["open_at"], row["close_at"]
        return row["ext_open_at"], row["ext_close_at"]

    def in_session(t: dt.datetime) -> bool:
        if kind == "crypto":
            return True
        w = window(t)
        return w is not None and w[0] < t + MIN and t < w[1]

    kept = [i for i, t in enumerate(ts) if in_session(t)]
    out = []
    for j, i in enumerate(kept):
        if j == 0:
            continue
        prev, cur = ts[kept[j - 1]], ts[i]
        idle = (cur - prev - MIN).total_seconds() / 60
        if kind == "crypto":
            if idle > max_gap:
                out.append(i)
            continue
        n_prev, n_cur = number[prev.astimezone(NY).date()], number[cur.astimezone(NY).date()]
        if n_cur - n_prev > 1:
            out.append(i)
        elif n_cur == n_prev + 1:
            w_prev, w_cur = window(prev), window(cur)
            assert w_prev is not None and w_cur is not None
            missing = max(w_prev[1] - (prev + MIN), dt.timedelta(0)) + max(cur - w_cur[0], dt.timedelta(0))
            if missing.total_seconds() / 60 > max_gap:
                out.append(i)
        elif idle > max_gap:
            out.append(i)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series(), st.data())
def test_changing_everything_before_a_boundary_changes_nothing_after_it(
    case: dict[str, Any], data: st.DataObject
) -> None:
    ts = case["ts"]
    starts = boundaries(ts, case["kind"], case["session"])
    assume(starts)  # a case with no boundary is not a test of this property
    b = data.draw(st.sampled_from(starts))
    asset = "crypto" if case["kind"] == "crypto" else "stock"
    closes = case["closes"]
    opens = [closes[0], *closes[:-1]]
    closes_b = [c * 1.7 if i < b else c for i, c in enumerate(closes)]
    opens_b = [o * 1.7 if i < b else o for i, o in enumerate(opens)]  # bar b keeps its own open
    volumes_b = [v + 9.0 if i < b else v for i, v in enumerate(case["volumes"])]
    s = Settings(session=case["session"])
    with tempfile.TemporaryDirectory() as tmp:
        root_a, root_b = Path(tmp) / "a", Path(tmp) / "b"
        source = "binance" if asset == "crypto" else "polygon"
        write(root_a, "SYM", make_bars(ts, case["closes"], case["volumes"], asset_class=asset), source=source)
        write(
            root_b, "SYM", make_bars(ts, closes_b, volumes_b, asset_class=asset, opens=opens_b), source=source
        )
        cols, rows_a = features(root_a, s)
        _, rows_b = features(root_b, s)
    ti = cols.index("ts")
    after_a = [r for r in rows_a if r[ti] >= ts[b]]
    after_b = [r for r in rows_b if r[ti] >= ts[b]]
    assert after_a and len(after_a) == len(after_b)
    assert dict(zip(cols, after_a[0], strict=True))["segment_pos"] == 0  # the rule in SQL matches Python's
    for ra, rb in zip(after_a, after_b, strict=True):
        for c, va, vb in zip(cols, ra, rb, strict=True):
            assert va == vb, (
                f"{c} at {ra[ti]} depends on a bar before the boundary at {ts[b]}: {va!r} -> {vb!r}"
            )

"""The feature store (features/store.py): the same rows and values as the `features` view, rebuilt only
for the (symbol, interval) pairs whose inputs changed."""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import lake
from features import store
from lake.config import Settings
from lake.schemas import FEATURES
from tests.unit.test_features_point_in_time import (
    LOOKAHEAD_CASE,
    make_bars,
    news_rows,
    series,
    unchanged,
    write,
    write_news,
)

UTC = dt.UTC
MIN = dt.timedelta(minutes=1)
ORDER = 'ORDER BY symbol, "interval", ts'
REFERENCE = Path(__file__).parent / "sql" / "reference" / "features_store.sql"


def rows_of(root: Path, s: Settings, view: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    con = lake.connect(root, read_only=True, settings=s)
    try:
        rel = con.sql(f"SELECT * FROM {view} {ORDER}")
        return rel.columns, rel.fetchall()
    finally:
        con.close()


def same(a: Any, b: Any) -> bool:
    """Equal; floats to the last bits (DuckDB's windowed sums and deviations may round differently from
    one evaluation to the next, as the threads split the work)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b) if a is not None and b is not None else a is None and b is None


def reference_rows(root: Path, s: Settings) -> tuple[list[str], list[tuple[Any, ...]]]:
    """features_store's rows by its former definition (through lake_features)."""
    con = lake.connect(root, read_only=True, settings=s)
    try:
        con.execute(REFERENCE.read_text(encoding="utf-8"))
        rel = con.sql(f"SELECT * FROM reference_features_store {ORDER}")
        return rel.columns, rel.fetchall()
    finally:
        con.close()


def assert_store_equals_view(root: Path, s: Settings) -> int:
    cols, want = rows_of(root, s, "features")
    cols_s, got = rows_of(root, s, "features_store")
    assert cols == cols_s
    cols_r, former = reference_rows(root, s)  # the same stored values, read as before
    assert cols_r == cols_s and len(former) == len(got)
    for rr, rg in zip(former, got, strict=True):
        assert all(
            (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b
            for a, b in zip(rr, rg, strict=True)
        ), f"features_store differs from its former definition at {rr[:3]}"
    assert len(got) == len(want)
    for rw, rg in zip(want, got, strict=True):
        for c, vw, vg in zip(cols, rw, rg, strict=True):
            assert same(vw, vg), f"features_store.{c} of {rw[0]} {rw[1]} at {rw[2]}: {vg!r}, view {vw!r}"
    return len(want)


def crypto(start: dt.datetime, n: int, seed: int = 0) -> pa.Table:
    closes = [100.0 + ((i * 7919 + seed * 31) % 97) / 10 for i in range(n)]
    return make_bars([start + i * MIN for i in range(n)], closes)


def stock(start: dt.datetime, n: int, asset_class: str = "stock", k: float = 1.0) -> pa.Table:
    closes = [k * (50.0 + ((i * 104729) % 89) / 10) for i in range(n)]
    return make_bars([start + i * MIN for i in range(n)], closes, asset_class=asset_class)


def news_of(
    symbol: str, times: list[dt.datetime], sentiment: float = 0.3, tag: str = "a"
) -> dict[str, list[dict[str, Any]]]:
    return {
        symbol: [
            {
                "id": f"{symbol}-{tag}{i}",
                "published_at": t,
                "ingested_at": t + 2 * MIN,
                "title": f"headline {i}",
                "summary": None,
                "publisher": None,
                "url": None,
                "sentiment": sentiment,
                "source": "test",
            }
            for i, t in enumerate(times)
        ]
    }


OPEN = dt.datetime(2024, 1, 9, 14, 30, tzinfo=UTC)  # 09:30 New York, a Tuesday


@pytest.fixture
def small_lake(lake_root: Path) -> Path:
    """Two crypto pairs (one across a year end, two sources), a stock, SPY and QQQ, with news."""
    write(lake_root, "BTCUSDT", crypto(dt.datetime(2023, 12, 31, 22, 0, tzinfo=UTC), 300))
    write(lake_root, "ETHUSDT", crypto(dt.datetime(2024, 1, 9, 14, 0, tzinfo=UTC), 200, seed=3))
    write(
        lake_root, "ETHUSDT", crypto(dt.datetime(2024, 1, 9, 17, 0, tzinfo=UTC), 50, seed=5), source="yahoo"
    )
    write(lake_root, "AAPL", stock(OPEN, 120), source="polygon")
    write(lake_root, "SPY", stock(OPEN - 5 * MIN, 150, "etf", 4.0), source="polygon")
    write(lake_root, "QQQ", stock(OPEN, 100, "etf", 3.0), source="polygon")
    news: dict[str, list[dict[str, Any]]] = {}
    news |= news_of("AAPL", [OPEN + 3 * MIN, OPEN + 30 * MIN, OPEN + 31 * MIN])
    news |= news_of("SPY", [OPEN - 60 * MIN, OPEN + 10 * MIN], -0.4)
    news |= news_of("BTCUSDT", [dt.datetime(2024, 1, 1, 0, 30, tzinfo=UTC)], 0.9)
    write_news(lake_root, news)
    return lake_root


def test_the_store_schema_is_the_view_less_its_partition_columns(lake_root: Path) -> None:
    con = lake.connect(lake_root)
    view = [(r[0], r[1]) for r in con.execute("DESCRIBE features").fetchall()]
    stored = [(r[0], r[1]) for r in con.execute("DESCRIBE features_store").fetchall()]
    con.close()
    assert stored == view
    # the stored file: the view's columns less the partition columns, then the bar's prices
    prices = ["open", "high", "low", "close"]
    assert [n for n, _ in view if n not in ("symbol", "interval")] + prices == FEATURES.schema.names


def test_the_store_holds_the_views_rows_and_values(small_lake: Path) -> None:
    s = Settings()
    result = store.refresh(small_lake, s)
    assert sorted(result.built) == sorted(
        [("AAPL", "1m"), ("BTCUSDT", "1m"), ("ETHUSDT", "1m"), ("QQQ", "1m"), ("SPY", "1m")]
    )
    n = assert_store_equals_view(small_lake, s)
    assert n == result.rows > 0
    years = sorted(p.name for p in (small_lake / "datasets/features/interval=1m/symbol=BTCUSDT").iterdir())
    assert years == ["year=2023", "year=2024"]  # one partition per UTC year of ts
    # the comparison is not vacuous: news and market context reach the stored rows
    con = lake.connect(small_lake, read_only=True)
    got = con.sql(
        "SELECT count(last_news_at), count(spy_log_ret_1), count(qqq_available_at), count(ret_60) "
        "FROM features_store WHERE symbol = 'AAPL'"
    ).fetchone()
    con.close()
    assert got is not None and all(v > 0 for v in got)


def test_a_refresh_with_nothing_changed_rebuilds_nothing(small_lake: Path) -> None:
    s = Settings()
    store.refresh(small_lake, s)
    files = {p: p.stat().st_mtime_ns for p in (small_lake / "datasets/features").rglob("data.parquet")}
    again = store.refresh(small_lake, s)
    assert again.built == [] and len(again.fresh) == 5 and again.partitions_changed == 0
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert store.stale(small_lake, s) == []


def test_only_the_pairs_whose_inputs_changed_are_rebuilt(small_lake: Path) -> None:
    s = Settings()
    store.refresh(small_lake, s)
    # new bars of one crypto pair: only that pair
    write(
        small_lake, "ETHUSDT", crypto(dt.datetime(2024, 1, 10, 0, 0, tzinfo=UTC), 30, seed=9), source="yahoo"
    )
    assert store.stale(small_lake, s) == [("ETHUSDT", "1m")]
    assert store.refresh(small_lake, s).built == [("ETHUSDT", "1m")]
    assert_store_equals_view(small_lake, s)
    # news of AAPL: only AAPL
    write_news(small_lake, news_of("AAPL", [OPEN + 60 * MIN], 0.7, tag="b"))
    assert store.refresh(small_lake, s).built == [("AAPL", "1m")]
    assert_store_equals_view(small_lake, s)
    # SPY's news: every pair of every interval reads it
    write_news(small_lake, news_of("SPY", [OPEN + 61 * MIN], 0.2, tag="b"))
    assert len(store.refresh(small_lake, s).built) == 5
    assert_store_equals_view(small_lake, s)
    # a setting the views read: everything; one they do not read: nothing
    assert store.refresh(small_lake, Settings(min_bars_per_symbol=5)).built == []
    ext = Settings(session="extended")
    assert len(store.refresh(small_lake, ext).built) == 5
    assert_store_equals_view(small_lake, ext)


def test_the_stored_fingerprint_is_in_each_partitions_manifest(small_lake: Path) -> None:
    s = Settings()
    store.refresh(small_lake, s)
    chunk = next(c for c in store.plan(small_lake, s) if c.symbol == "AAPL")
    manifest = json.loads(
        (small_lake / "datasets/features/interval=1m/symbol=AAPL/year=2024/_manifest.json").read_text()
    )
    assert manifest["inputs"] == [
        {"fingerprint": chunk.fingerprint, "store_version": store.STORE_VERSION, "years": ["2024"]}
    ]
    assert chunk.fresh
    # BTCUSDT spans a year end: each of its partitions names both years
    btc = small_lake / "datasets/features/interval=1m/symbol=BTCUSDT"
    for year in ("2023", "2024"):
        recorded = json.loads((btc / f"year={year}/_manifest.json").read_text())["inputs"]
        assert [i["years"] for i in recorded] == [["2023", "2024"]]


def test_the_store_is_written_uncompressed_in_small_row_groups_and_the_bars_with_zstd(
    small_lake: Path,
) -> None:
    """The store is read a period at a time by every training run: uncompressed (plain values decode
    fastest), in row groups of FEATURES.row_group_rows rows whose ts statistics let a period's read skip
    the others; what is kept is small (zstd)."""
    import pyarrow.parquet as pq

    store.refresh(small_lake, Settings())

    def codecs(pattern: str) -> set[str]:
        files = list(small_lake.glob(pattern))
        assert files, pattern
        return {
            pq.ParquetFile(f).metadata.row_group(0).column(i).compression
            for f in files
            for i in range(pq.ParquetFile(f).metadata.num_columns)
        }

    assert codecs("datasets/features/interval=*/symbol=*/year=*/data.parquet") == {"UNCOMPRESSED"}
    assert codecs("datasets/bars/**/data.parquet") == {"ZSTD"}
    assert FEATURES.row_group_rows is not None


def test_the_store_files_hold_row_groups_of_the_datasets_size(
    small_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row groups of FEATURES.row_group_rows rows (64 here, so that the small lake's files hold several),
    the rows unchanged."""
    import dataclasses

    import pyarrow.parquet as pq

    monkeypatch.setattr(store, "FEATURES", dataclasses.replace(FEATURES, row_group_rows=64))
    s = Settings()
    store.refresh(small_lake, s)
    groups = []
    for f in small_lake.glob("datasets/features/interval=*/symbol=*/year=*/data.parquet"):
        if "__empty__" in str(f):
            continue  # the schema anchor
        meta = pq.ParquetFile(f).metadata
        rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        assert all(r == 64 for r in rows[:-1]) and 0 < rows[-1] <= 64, (f, rows)
        groups.append(len(rows))
    assert max(groups) > 1
    assert_store_equals_view(small_lake, s)


def test_a_store_file_of_an_older_layout_is_rewritten_though_its_rows_are_the_same(small_lake: Path) -> None:
    """A store written before the row groups (one LZ4 group a file, an older STORE_VERSION): a refresh
    rewrites every file in the current layout, not only its manifest."""
    import pyarrow.parquet as pq

    s = Settings()
    store.refresh(small_lake, s)
    files = sorted(
        f
        for f in small_lake.glob("datasets/features/interval=*/symbol=*/year=*/data.parquet")
        if "__empty__" not in str(f)  # not the schema anchor (no rows)
    )
    assert files
    for f in files:
        pq.write_table(pq.read_table(f), f, compression="lz4")
    for m in (small_lake / "datasets/features").rglob("_manifest.json"):
        doc = json.loads(m.read_text())
        doc["inputs"] = [{"fingerprint": "from an older store", "store_version": 3}]
        m.write_text(json.dumps(doc))
    assert len(store.refresh(small_lake, s).built) == len(store.plan(small_lake, s))
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert meta.row_group(0).column(0).compression == "UNCOMPRESSED", f
        assert meta.row_group(0).num_rows <= (FEATURES.row_group_rows or 0), f
    assert not store.stale(small_lake, s)
    assert_store_equals_view(small_lake, s)


def test_pairs_whose_bars_are_gone_are_emptied(small_lake: Path) -> None:
    import shutil

    s = Settings()
    store.refresh(small_lake, s)
    shutil.rmtree(small_lake / "datasets/bars/source=binance/interval=1m/symbol=BTCUSDT")
    result = store.refresh(small_lake, s)
    assert result.removed == [("BTCUSDT", "1m")] and result.built == []
    assert_store_equals_view(small_lake, s)
    assert store.refresh(small_lake, s).removed == []


def test_the_store_does_not_change_the_data_snapshot(small_lake: Path) -> None:
    before = lake.snapshot_hash(small_lake)
    store.refresh(small_lake, Settings())
    assert lake.snapshot_hash(small_lake) == before


def test_an_empty_lake_has_an_empty_store(lake_root: Path) -> None:
    result = store.refresh(lake_root, Settings())
    assert result.built == [] and result.rows == 0
    assert rows_of(lake_root, Settings(), "features_store")[1] == []


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series(), st.sampled_from(["1m", "1h"]))
def test_the_store_equals_the_view_on_generated_lakes(case: dict[str, Any], interval: str) -> None:
    """SYM (crypto or a stock) and SPY with gaps, sessions and news of both, in either session mode and news
    time: the store holds exactly the view's rows."""
    asset = "crypto" if case["kind"] == "crypto" else "stock"
    s = Settings(session=case["session"], news_time=case["news_time"])
    step = MIN if interval == "1m" else 60 * MIN
    ts = [case["ts"][0] + (t - case["ts"][0]) * (1 if interval == "1m" else 60) for t in case["ts"]]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        source = "binance" if asset == "crypto" else "polygon"
        write(
            root,
            "SYM",
            make_bars(ts, case["closes"], case["volumes"], asset_class=asset, interval=step),
            source=source,
            interval=interval,
        )
        write(
            root,
            "SPY",
            make_bars(ts, [c * 4.1 for c in case["closes"]], asset_class="etf", interval=step),
            source="polygon",
            interval=interval,
        )
        write_news(root, news_rows(case, None))
        store.refresh(root, s)
        assert assert_store_equals_view(root, s) > 0


def test_the_command_line_refreshes_and_reports(small_lake: Path) -> None:
    from click.testing import CliRunner

    from cli import cli

    runner = CliRunner()
    r = runner.invoke(cli, ["--lake", str(small_lake), "--quiet", "features", "status", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert {(x["symbol"], x["fresh"]) for x in json.loads(r.output)} == {
        (s, False) for s in ("AAPL", "BTCUSDT", "ETHUSDT", "QQQ", "SPY")
    }
    r = runner.invoke(cli, ["--lake", str(small_lake), "--quiet", "features", "refresh", "--symbols", "AAPL"])
    assert r.exit_code == 0, r.output
    assert "1 rebuilt" in r.output
    assert store.stale(small_lake, Settings()) == [
        ("BTCUSDT", "1m"),
        ("ETHUSDT", "1m"),
        ("QQQ", "1m"),
        ("SPY", "1m"),
    ]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series())
@example(LOOKAHEAD_CASE)
def test_stored_rows_at_or_before_t_do_not_change_when_rows_after_t_change(case: dict[str, Any]) -> None:
    """The truncation property of test_features_point_in_time, on the store: two lakes that differ only
    after t (bars changed, moved or gone; articles known at or after the cut bar's close changed or gone),
    each refreshed: no stored row at or before t differs."""
    cut, ts = case["cut"], case["ts"]
    t_cut = ts[cut]
    asset = "crypto" if case["kind"] == "crypto" else "stock"
    keep = [i for i in range(cut + 1, len(ts)) if i not in case["drop"]]
    b_ts = ts[: cut + 1] + [ts[i] + case["shift"] * MIN for i in keep]
    b_closes = case["closes"][: cut + 1] + [case["new_closes"][i - cut - 1] for i in keep]
    b_volumes = case["volumes"][: cut + 1] + [case["new_volumes"][i - cut - 1] for i in keep]
    s = Settings(session=case["session"], news_time=case["news_time"])
    with tempfile.TemporaryDirectory() as tmp:
        root_a, root_b = Path(tmp) / "a", Path(tmp) / "b"
        source = "binance" if asset == "crypto" else "polygon"
        write(root_a, "SYM", make_bars(ts, case["closes"], case["volumes"], asset_class=asset), source=source)
        write(root_b, "SYM", make_bars(b_ts, b_closes, b_volumes, asset_class=asset), source=source)
        write(
            root_a,
            "SPY",
            make_bars(ts, [c * 4.1 for c in case["closes"]], asset_class="etf"),
            source="polygon",
        )
        write(
            root_b, "SPY", make_bars(b_ts, [c * 4.1 for c in b_closes], asset_class="etf"), source="polygon"
        )
        write_news(root_a, news_rows(case, None))
        write_news(root_b, news_rows(case, t_cut + MIN))
        store.refresh(root_a, s)
        store.refresh(root_b, s)
        cols, rows_a = rows_of(root_a, s, "features_store")
        _, rows_b = rows_of(root_b, s, "features_store")
        ti = cols.index("ts")
        past_a = [r for r in rows_a if r[ti] <= t_cut]
        past_b = [r for r in rows_b if r[ti] <= t_cut]
        assert past_a and len(past_a) == len(past_b)
        for ra, rb in zip(past_a, past_b, strict=True):
            for c, va, vb in zip(cols, ra, rb, strict=True):
                assert unchanged(va, vb), f"features_store.{c} of {ra[0]} at {ra[ti]}: {va!r} -> {vb!r}"


def test_a_store_written_before_the_prices_were_stored_is_renewed(small_lake: Path) -> None:
    """An older lake's store: its schema anchor lacks the price columns and its partitions were fingerprinted
    by an older STORE_VERSION. A refresh rebuilds every pair and renews the anchor, so that every file of
    the dataset has one schema."""
    import pyarrow.parquet as pq

    from lake.paths import LakePaths
    from lake.writer import anchor_dir

    s = Settings()
    store.refresh(small_lake, s)
    anchor = anchor_dir(LakePaths(small_lake), FEATURES) / "data.parquet"
    old_schema = pa.schema([f for f in FEATURES.schema if f.name not in ("open", "high", "low", "close")])
    pq.write_table(old_schema.empty_table(), anchor)
    for m in (small_lake / "datasets/features").rglob("_manifest.json"):
        doc = json.loads(m.read_text())
        doc["inputs"] = [{"fingerprint": "from an older store", "store_version": 1}]
        m.write_text(json.dumps(doc))
    assert len(store.stale(small_lake, s)) == 5
    assert len(store.refresh(small_lake, s).built) == 5
    assert pq.read_schema(anchor).equals(FEATURES.schema)
    con = lake.connect(small_lake, read_only=True)
    n = con.sql("SELECT count(open) FROM lake_features").fetchone()
    con.close()
    assert n is not None and n[0] == assert_store_equals_view(small_lake, s)


def test_the_stored_prices_are_the_bars_prices(small_lake: Path) -> None:
    store.refresh(small_lake, Settings())
    con = lake.connect(small_lake, read_only=True)
    got = con.sql(
        "SELECT count(*), count(*) FILTER (WHERE f.open = b.open AND f.high = b.high AND f.low = b.low "
        'AND f.close = b.close) FROM lake_features f JOIN bars b USING (symbol, "interval", ts)'
    ).fetchone()
    total = con.sql("SELECT count(*) FROM features").fetchone()
    con.close()
    assert got is not None and total is not None and got[0] == got[1] == total[0] > 0


US = dt.timedelta(microseconds=1)
BOUNDARY = st.tuples(
    st.sampled_from(["SYM", "SPY", "QQQ"]),
    st.integers(0, 79),  # the bar whose available_at the article's time is measured from
    st.sampled_from([dt.timedelta(0), -dt.timedelta(hours=1), -dt.timedelta(hours=24), -5 * MIN, 3 * MIN]),
    st.sampled_from([-US, dt.timedelta(0), US]),
    st.sampled_from([-0.5, 0.0, 0.25, 0.8]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # SPY/QQQ articles a microsecond over a day before a bar's available_at, when no SPY or QQQ bar
    # is available at that instant (fresher articles keep the day's figures shown): the bar's day counts
    # must already have dropped them
    [
        ("SPY", 40, -dt.timedelta(hours=24), -US, 0.8),
        ("QQQ", 50, -dt.timedelta(hours=24), -US, -0.5),
        ("SPY", 10, dt.timedelta(0), dt.timedelta(0), 0.25),
        ("QQQ", 10, dt.timedelta(0), dt.timedelta(0), 0.25),
    ],
    dt.datetime(2024, 1, 12, 14, 50, tzinfo=UTC),
    15,
    1440,
    {40, 50},
)
@given(
    st.lists(BOUNDARY, min_size=1, max_size=14),
    st.sampled_from([dt.datetime(2024, 1, 12, 14, 50, tzinfo=UTC), OPEN]),
    st.sampled_from([5, 15]),
    st.sampled_from([60, 1440]),
    st.sets(st.integers(0, 79), max_size=20),
)
def test_the_stores_as_of_timelines_equal_the_views_joins_at_their_boundaries(
    articles: list[tuple[str, int, dt.timedelta, dt.timedelta, float]],
    start: dt.datetime,
    max_gap: int,
    max_age: int,
    holes: set[int],
) -> None:
    """The store computes bar_news and market_context through per-instant timelines (sql/store/
    features_chunk.sql): articles exactly at a bar's available_at, one hour or a day before it, and one
    microsecond either side; SPY and QQQ with missing bars (staleness) and news freshness limits; the
    store holds exactly the view's rows."""
    s = Settings(max_gap_minutes=max_gap, max_news_age_minutes=max_age)
    ts = [start + i * MIN for i in range(80)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        write(root, "SYM", crypto(ts[0], 80, seed=7))
        kept = [t for i, t in enumerate(ts) if i not in holes]
        for sym, k in (("SPY", 4.0), ("QQQ", 3.0)):
            bars = stock(ts[0], 80, "etf", k).filter(pa.array([i not in holes for i in range(80)]))
            write(root, sym, bars, source="polygon")
        assert kept
        news: dict[str, list[dict[str, Any]]] = {}
        for i, (sym, k, back, eps, sentiment) in enumerate(articles):
            at = ts[k] + MIN + back + eps  # from the bar's available_at
            news.setdefault(sym, []).append(
                {
                    "id": f"n{i:03d}",
                    "published_at": at,
                    "ingested_at": at,
                    "title": f"headline {i}",
                    "summary": None,
                    "publisher": None,
                    "url": None,
                    "sentiment": sentiment,
                    "source": "test",
                }
            )
        write_news(root, news)
        store.refresh(root, s)
        assert assert_store_equals_view(root, s) > 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=8),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_putting_a_batch_in_order_by_runs_equals_a_take(runs: list[int], seed: int, shuffle: bool) -> None:
    """store._in_order (slices of the runs of consecutive rows) holds exactly table.take(order), for orders
    made of a few runs in any order or of scattered rows, on a table of several chunks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = sum(runs)
    bounds = np.cumsum([0, *runs])
    pieces = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    rng.shuffle(pieces)
    order = rng.permutation(n) if shuffle else np.concatenate(pieces)
    half = n // 2
    table = pa.concat_tables(
        [
            pa.table(
                {
                    "i": pa.array(range(a, b), pa.int64()),
                    "s": pa.array([f"r{i}" for i in range(a, b)], pa.string()),
                }
            )
            for a, b in ((0, half), (half, n))
        ]
    )
    assert store._in_order(table, order).equals(table.take(order))
    assert store._in_order(table.slice(0, 0), order[:0]).num_rows == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from(["binance", "yahoo"]),
            st.lists(st.one_of(st.none(), st.integers(0, 30)), max_size=12),
            st.booleans(),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_files_check_of_keys_held_once_implies_the_querys(
    files: list[tuple[str, str, list[Any], bool]],
) -> None:
    """store._files_hold_keys_once (each file's ts rising, the files' ranges disjoint) says True only where
    sql/store/bars_held_once.sql does, and says it for files of rising, disjoint ts (the usual lake)."""
    import duckdb
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        by_symbol: dict[str, list[tuple[Path, str]]] = {}
        simple = True
        spans: dict[str, list[tuple[int, int]]] = {}
        for i, (symbol, source, minutes, ordered) in enumerate(files):
            values = sorted(set(m for m in minutes if m is not None)) if ordered else minutes
            if not ordered:
                simple = False
            elif values:
                spans.setdefault(symbol, []).append((values[0], values[-1]))
            us = [None if m is None else m * 60_000_000 for m in values]
            f = base / f"source={source}/interval=1m/symbol={symbol}/period=p{i}/data.parquet"
            f.parent.mkdir(parents=True)
            pq.write_table(pa.table({"ts": pa.array(us, pa.timestamp("us", tz="UTC"))}), f)
            by_symbol.setdefault(symbol, []).append((f, ""))
        for ranges in spans.values():
            ranges.sort()
            simple = simple and all(b[0] > a[1] for a, b in zip(ranges, ranges[1:], strict=False))
        fast = store._files_hold_keys_once(by_symbol.values())
        con = duckdb.connect()
        con.execute("SET VARIABLE bar_files = ?", [str(base / "*/*/*/*/data.parquet")])
        con.execute(
            "CREATE VIEW lake_bars AS SELECT * FROM read_parquet(getvariable('bar_files'), hive_partitioning = true)"
        )
        exact = store._bars_held_once(con)
        assert not fast or exact
        if simple:
            assert fast and exact


@given(st.lists(st.integers(0, 500), min_size=0, max_size=30), st.integers(1, 1200))
def test_batches_keep_the_order_and_are_bounded(sizes: list[int], batch_rows: int) -> None:
    """store.batches keeps the chunks' order and puts each interval's chunks in batches of one interval of
    at most batch_rows rows (or one chunk)."""
    chunks = [store.Chunk(f"S{i:02d}", "1m" if i % 3 else "1h", "x", {}) for i in range(len(sizes))]
    rows = {(c.interval, c.symbol): k for c, k in zip(chunks, sizes, strict=True)}
    got = store.batches(chunks, rows, batch_rows)
    for interval in ("1h", "1m"):
        mine = [c for c in chunks if c.interval == interval]
        ours = [b for b in got if b[0].interval == interval]
        assert all(c.interval == interval for b in ours for c in b)
        assert [c for b in ours for c in b] == mine
        assert all(len(b) == 1 or sum(rows[(c.interval, c.symbol)] for c in b) <= batch_rows for b in ours)


@given(st.integers(1, 40), st.integers(1, 8))
def test_batches_of_equal_chunks_are_balanced_the_smaller_last(n: int, per_batch: int) -> None:
    """n chunks of equal size, at most per_batch of them a batch: as few batches as that allows, their
    sizes differing by one at most, the smaller ones last (3, 3, 2 and not 3, 3, 1 or 2, 3, 3)."""
    chunks = [store.Chunk(f"S{i:02d}", "1m", "x", {}) for i in range(n)]
    rows = {("1m", c.symbol): 131_040 for c in chunks}
    got = [len(b) for b in store.batches(chunks, rows, per_batch * 131_040 + 100)]
    assert sum(got) == n and len(got) == -(-n // per_batch)
    assert max(got) - min(got) <= 1 and got == sorted(got, reverse=True)


def test_a_write_that_fails_while_the_next_batch_fails_is_not_lost(
    small_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch k is written while batch k+1 is computed: when both fail, the error names the write's failure
    too (nothing else asks for the write's result), and the compute's error goes with it."""
    import duckdb

    computed: list[int] = []
    compute = store._compute_batch

    def compute_then_fail(*args: Any, **kwargs: Any) -> Any:
        computed.append(1)
        if len(computed) == 2:
            raise duckdb.OutOfMemoryException("out of memory (test)")
        return compute(*args, **kwargs)

    def write_fails(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError(28, "No space left on device (test)")

    monkeypatch.setattr(store, "_compute_batch", compute_then_fail)
    monkeypatch.setattr(store, "_write_batch", write_fails)
    with pytest.raises(lake.MarketlakeError) as err:
        store.refresh(small_lake, Settings(min_bars_per_symbol=5), batch_rows=1)
    assert len(computed) == 2, computed
    message = str(err.value)
    assert "No space left on device (test)" in message, message
    assert "out of memory (test)" in message, message


# --- freshness: a pair is fresh only when every year it should hold is there, from its current inputs ---------


def _new_year_of_btc(root: Path) -> None:
    """New BTCUSDT bars in a year the store does not hold yet (its other years' rows do not change)."""
    write(root, "BTCUSDT", crypto(dt.datetime(2025, 1, 1, 0, 0, tzinfo=UTC), 200, seed=9))


def test_a_refresh_that_fails_writing_a_new_year_leaves_the_pair_stale(
    small_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer stamps the years whose rows are unchanged (2023, 2024) with the new fingerprint at once;
    a full disk on the new year's partition then must not leave the pair fresh without it."""
    import errno

    import lake.writer as writer_mod

    s = Settings()
    store.refresh(small_lake, s)
    _new_year_of_btc(small_lake)
    real = writer_mod._make_durable

    def full(files: Any) -> None:
        if any("datasets/features" in str(f) and "year=2025" in str(f) for f in files):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(files)

    monkeypatch.setattr(writer_mod, "_make_durable", full)
    with pytest.raises(lake.MarketlakeError, match="disk is full"):
        store.refresh(small_lake, s)
    monkeypatch.setattr(writer_mod, "_make_durable", real)
    assert ("BTCUSDT", "1m") in store.stale(small_lake, s)
    assert ("BTCUSDT", "1m") in store.refresh(small_lake, s).built
    assert store.stale(small_lake, s) == []
    assert_store_equals_view(small_lake, s)


def test_a_refresh_interrupted_after_any_file_replacement_is_never_fresh_and_wrong(
    small_lake: Path, tmp_path: Path
) -> None:
    """A KeyboardInterrupt right after the K-th replacement of a store file (data or manifest), for every K
    (raised in whichever thread made it; the writer's other threads may finish theirs): either the refresh
    had done everything (fresh, the view's rows), or the pair is stale; the next refresh makes the store the
    view's."""
    import os
    import shutil

    s = Settings()
    store.refresh(small_lake, s)
    _new_year_of_btc(small_lake)
    real = os.replace
    k = 0
    while True:
        k += 1
        root = tmp_path / f"k{k}"
        shutil.copytree(small_lake, root)  # with the files' mtimes: the copy is as fresh as the lake
        seen = [0]

        def replace(src: Any, dst: Any, *args: Any, _seen: list[int] = seen, _k: int = k, **kw: Any) -> None:
            real(src, dst, *args, **kw)
            if "datasets/features" in str(dst) and "__empty__" not in str(dst):
                _seen[0] += 1
                if _seen[0] == _k:
                    raise KeyboardInterrupt

        os.replace = replace
        try:
            store.refresh(root, s)
            completed = True
        except KeyboardInterrupt:
            completed = False
        finally:
            os.replace = real
        stale = store.stale(root, s)
        if stale:
            assert not completed
        else:
            assert_store_equals_view(root, s)  # fresh: the view's rows
        if not completed and ("BTCUSDT", "1m") not in stale:
            # only when the interrupt came after the pair's last file
            assert_store_equals_view(root, s)
        store.refresh(root, s)
        assert store.stale(root, s) == []
        assert_store_equals_view(root, s)
        shutil.rmtree(root)
        if completed:
            break
    assert k > 4  # the pair's three years, each a data file and a manifest


def test_a_year_folder_deleted_by_hand_leaves_the_pair_stale(small_lake: Path) -> None:
    import shutil

    s = Settings()
    store.refresh(small_lake, s)
    shutil.rmtree(small_lake / "datasets/features/interval=1m/symbol=BTCUSDT/year=2024")
    assert store.stale(small_lake, s) == [("BTCUSDT", "1m")]
    assert store.refresh(small_lake, s).built == [("BTCUSDT", "1m")]
    assert store.stale(small_lake, s) == []
    assert_store_equals_view(small_lake, s)
    # its data file alone: the same
    (small_lake / "datasets/features/interval=1m/symbol=BTCUSDT/year=2023/data.parquet").unlink()
    assert store.stale(small_lake, s) == [("BTCUSDT", "1m")]
    store.refresh(small_lake, s)
    assert_store_equals_view(small_lake, s)


def _damaged(path: Path) -> None:
    """The file rewritten outside the writer (its manifest unchanged): one close raised by 1%."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    closes = t.column("close").to_pylist()
    highs = t.column("high").to_pylist()
    closes[20] *= 1.01
    highs[20] = max(highs[20], closes[20])
    t = t.set_column(t.schema.get_field_index("close"), "close", pa.array(closes))
    t = t.set_column(t.schema.get_field_index("high"), "high", pa.array(highs))
    pq.write_table(t, path)


def test_a_bars_file_replaced_outside_the_writer_leaves_the_pair_stale(small_lake: Path) -> None:
    s = Settings()
    store.refresh(small_lake, s)
    # the same rows landed again through the writer: the file is not rewritten, the store stays fresh
    write(small_lake, "ETHUSDT", crypto(dt.datetime(2024, 1, 9, 14, 0, tzinfo=UTC), 200, seed=3))
    assert store.stale(small_lake, s) == []
    bars = small_lake / "datasets/bars/source=binance/interval=1m/symbol=ETHUSDT/period=2024-01/data.parquet"
    _damaged(bars)
    assert store.stale(small_lake, s) == [("ETHUSDT", "1m")]
    store.refresh(small_lake, s)
    assert_store_equals_view(small_lake, s)


def test_a_bars_file_repaired_after_the_store_was_built_from_it_leaves_the_pair_stale(
    small_lake: Path,
) -> None:
    """The README's repair sequence: a bars file damaged; another input changes, so the store is rebuilt
    from the damaged file; the file is repaired (its former bytes: the manifest's sha256 again)."""
    s = Settings()
    store.refresh(small_lake, s)
    bars = small_lake / "datasets/bars/source=binance/interval=1m/symbol=ETHUSDT/period=2024-01/data.parquet"
    good = bars.read_bytes()
    _damaged(bars)
    write_news(small_lake, news_of("ETHUSDT", [dt.datetime(2024, 1, 9, 15, 0, tzinfo=UTC)], 0.7, tag="z"))
    assert store.refresh(small_lake, s).built == [("ETHUSDT", "1m")]
    bars.write_bytes(good)
    assert lake.verify(small_lake) == []
    assert store.stale(small_lake, s) == [("ETHUSDT", "1m")]
    store.refresh(small_lake, s)
    assert_store_equals_view(small_lake, s)


def test_a_store_file_changed_by_hand_leaves_the_pair_stale(small_lake: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    s = Settings()
    store.refresh(small_lake, s)
    f = small_lake / "datasets/features/interval=1m/symbol=AAPL/year=2024/data.parquet"
    t = pq.read_table(f)
    t = t.set_column(t.schema.get_field_index("ret_1"), "ret_1", pc.multiply(t.column("ret_1"), 2.0))
    pq.write_table(t, f)
    assert store.stale(small_lake, s) == [("AAPL", "1m")]
    assert store.refresh(small_lake, s).built == [("AAPL", "1m")]
    assert store.stale(small_lake, s) == []
    assert_store_equals_view(small_lake, s)


def test_a_pair_with_bars_but_no_feature_rows_is_fresh_once_built(small_lake: Path) -> None:
    """A stock with pre-market bars only, under session = "regular": no rows, and nothing to rebuild."""
    s = Settings()
    write(small_lake, "PRE", stock(OPEN - 90 * MIN, 60), source="polygon")
    assert not [r for r in rows_of(small_lake, s, "features")[1] if r[0] == "PRE"]
    first = store.refresh(small_lake, s)
    assert ("PRE", "1m") in first.built
    assert store.stale(small_lake, s) == []
    again = store.refresh(small_lake, s)
    assert again.built == [] and ("PRE", "1m") in again.fresh and again.partitions_changed == 0
    assert_store_equals_view(small_lake, s)
    # bars in the session later: stale, then its rows
    write(small_lake, "PRE", stock(OPEN, 30), source="polygon")
    assert store.stale(small_lake, s) == [("PRE", "1m")]
    store.refresh(small_lake, s)
    assert store.stale(small_lake, s) == []
    assert_store_equals_view(small_lake, s)
    # and none again (under another session rule, no: its bars gone but the pre-market's)
    import shutil

    shutil.rmtree(small_lake / "datasets/bars/source=polygon/interval=1m/symbol=PRE")
    write(small_lake, "PRE", stock(OPEN - 90 * MIN, 60), source="polygon")
    assert store.stale(small_lake, s) == [("PRE", "1m")]
    store.refresh(small_lake, s)
    assert store.stale(small_lake, s) == []
    assert store.refresh(small_lake, s).built == []
    assert_store_equals_view(small_lake, s)


# --- a large pair, computed in pieces ----------------------------------------------------------------------


def test_the_small_lake_computed_in_pieces_equals_the_view(small_lake: Path) -> None:
    """Every pair of more than piece_rows bars in pieces (BTCUSDT across a year end, ETHUSDT of two
    sources, a stock with SPY/QQQ context and news): the view's rows."""
    s = Settings()
    result = store.refresh(small_lake, s, piece_rows=7)
    assert result.rows == assert_store_equals_view(small_lake, s)
    assert store.stale(small_lake, s) == []
    assert store.refresh(small_lake, s, piece_rows=7).built == []


def _us(ts: list[dt.datetime]) -> Any:
    import numpy as np

    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    return np.array([(t - epoch) // dt.timedelta(microseconds=1) for t in ts], dtype=np.int64)


def _clusters(starts: list[tuple[dt.datetime, int]], gaps: set[int]) -> list[dt.datetime]:
    """Minute bars in clusters (start, bars); the bar at each index of `gaps` 3 minutes after the one
    before (a gap under max_gap_minutes = 1)."""
    ts: list[dt.datetime] = []
    for start, n in starts:
        for j in range(n):
            ts.append(start if j == 0 else ts[-1] + (3 if len(ts) in gaps else 1) * MIN)
    return ts


THREE_YEARS = [
    (dt.datetime(2022, 12, 31, 23, 0, tzinfo=UTC), 150),  # one segment from 2022 into 2023
    (dt.datetime(2023, 6, 1, 0, 0, tzinfo=UTC), 400),
    (dt.datetime(2023, 12, 31, 23, 30, tzinfo=UTC), 100),  # from 2023 into 2024
    (dt.datetime(2024, 3, 1, 0, 0, tzinfo=UTC), 300),
]


def test_a_pair_over_three_years_in_pieces_equals_the_view(lake_root: Path) -> None:
    """A crypto pair over three years in pieces of 50 rows (each year's own), with segments across both year
    ends and gaps placed by the pieces' starts: a segment starting at a piece's first row, at its second, ten
    rows before it (the piece starts in warm-up), and at the first rows of a piece's margin
    (MARGIN_ROWS); a stock across a year end with pre-market bars (not rows of the store), SPY and QQQ
    context, and news; in pieces, the view's rows."""
    piece_rows = 50
    plan = store._pieces(_us(_clusters(THREE_YEARS, set())), piece_rows)
    starts = [a for _, spans in plan for a, _ in spans if 150 + 80 < a < 550]  # inside the 2023 cluster
    assert len(starts) >= 6, plan
    m = store.MARGIN_ROWS
    gaps = {starts[0], starts[1] + 1, starts[2] - 10, starts[3] - m, starts[4] - m + 1, starts[5] - m - 1}
    ts = _clusters(THREE_YEARS, gaps)
    assert store._pieces(_us(ts), piece_rows) == plan  # the gaps moved no piece
    closes = [100.0 + ((i * 7919) % 97) / 10 for i in range(len(ts))]
    volumes = [float(1 + (i * 31) % 7) for i in range(len(ts))]
    write(lake_root, "BTCUSDT", make_bars(ts, closes, volumes))
    days = [dt.datetime(2024, 12, 30, 13, 0, tzinfo=UTC), dt.datetime(2024, 12, 31, 13, 0, tzinfo=UTC)]
    days.append(dt.datetime(2025, 1, 2, 13, 0, tzinfo=UTC))  # 08:00 New York, before the open
    stock_ts = [d + i * MIN for d in days for i in range(500)]
    write(
        lake_root,
        "AAPL",
        make_bars(
            stock_ts, [50.0 + ((i * 104729) % 89) / 10 for i in range(len(stock_ts))], asset_class="stock"
        ),
        source="polygon",
    )
    for sym, k in (("SPY", 4.0), ("QQQ", 3.0)):
        prices = [k * (50.0 + ((i * 7) % 13)) for i in range(len(stock_ts))]
        write(lake_root, sym, make_bars(stock_ts, prices, asset_class="etf"), source="polygon")
    news: dict[str, list[dict[str, Any]]] = {}
    news |= news_of("AAPL", [days[1] + 90 * MIN, days[1] + 200 * MIN, days[2] + 100 * MIN])
    news |= news_of("SPY", [days[0] + 150 * MIN, days[2] + 95 * MIN], -0.4)
    news |= news_of("BTCUSDT", [dt.datetime(2023, 6, 1, 3, 0, tzinfo=UTC), ts[-5]], 0.9)
    write_news(lake_root, news)
    s = Settings(max_gap_minutes=1)
    result = store.refresh(lake_root, s, piece_rows=piece_rows)
    assert assert_store_equals_view(lake_root, s) == result.rows
    cols, rows = rows_of(lake_root, s, "features_store")
    btc = [r for r in rows if r[0] == "BTCUSDT"]
    assert len(btc) == len(ts) and max(r[cols.index("segment_no")] for r in btc) == len(gaps) + 4
    years = {p.name for p in (lake_root / "datasets/features/interval=1m/symbol=BTCUSDT").iterdir()}
    assert years == {"year=2022", "year=2023", "year=2024"}
    assert store.stale(lake_root, s) == []


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, 400), max_size=6),
    st.integers(4, 90),
    st.sampled_from([(dt.datetime(2023, 12, 31, 23, 0, tzinfo=UTC), 350), (dt.datetime(2024, 5, 1), 250)]),
)
def test_a_pair_in_pieces_equals_the_view_wherever_its_gaps_are(
    gaps: list[int], piece_rows: int, start: tuple[dt.datetime, int]
) -> None:
    """A crypto pair (across a year end, or not) with gaps anywhere, in pieces of any size: the view's
    rows."""
    begin, n = start
    begin = begin.replace(tzinfo=UTC)
    ts = _clusters([(begin, n)], {g for g in gaps if 0 < g < n})
    closes = [100.0 + ((i * 7919) % 97) / 10 for i in range(n)]
    volumes = [float(1 + (i * 31) % 7) for i in range(n)]
    s = Settings(max_gap_minutes=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        write(root, "SYM", make_bars(ts, closes, volumes))
        result = store.refresh(root, s, piece_rows=piece_rows)
        assert assert_store_equals_view(root, s) == result.rows == n
        assert store.stale(root, s) == []


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series(), st.integers(2, 70))
def test_the_store_in_pieces_equals_the_view_on_generated_lakes(
    case: dict[str, Any], piece_rows: int
) -> None:
    """test_the_store_equals_the_view_on_generated_lakes, every pair in pieces: stocks in either session
    mode (bars out of the session are not the pieces' rows), gaps, news, SPY's context."""
    asset = "crypto" if case["kind"] == "crypto" else "stock"
    s = Settings(session=case["session"], news_time=case["news_time"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        source = "binance" if asset == "crypto" else "polygon"
        write(
            root,
            "SYM",
            make_bars(case["ts"], case["closes"], case["volumes"], asset_class=asset),
            source=source,
        )
        write(
            root,
            "SPY",
            make_bars(case["ts"], [c * 4.1 for c in case["closes"]], asset_class="etf"),
            source="polygon",
        )
        write_news(root, news_rows(case, None))
        store.refresh(root, s, piece_rows=piece_rows)
        assert assert_store_equals_view(root, s) > 0
        assert store.stale(root, s) == []


def test_a_pair_in_pieces_with_a_year_of_bars_but_no_rows_is_fresh_once_built(lake_root: Path) -> None:
    """A stock whose bars of one year are all before the open (no row under session = "regular"): the years
    its manifests record are those with rows, so that the pair is fresh once built; with no row at all, its
    marker."""
    s = Settings()
    write(lake_root, "AAPL", stock(dt.datetime(2023, 12, 29, 12, 0, tzinfo=UTC), 60), source="polygon")
    write(lake_root, "AAPL", stock(OPEN, 100), source="polygon")
    store.refresh(lake_root, s, piece_rows=10)
    assert store.stale(lake_root, s) == []
    assert store.refresh(lake_root, s, piece_rows=10).built == []
    assert_store_equals_view(lake_root, s)
    import shutil

    shutil.rmtree(lake_root / "datasets/bars/source=polygon/interval=1m/symbol=AAPL")
    write(lake_root, "AAPL", stock(dt.datetime(2023, 12, 29, 12, 0, tzinfo=UTC), 60), source="polygon")
    assert store.stale(lake_root, s) == [("AAPL", "1m")]
    store.refresh(lake_root, s, piece_rows=10)
    assert store.stale(lake_root, s) == []
    assert store.refresh(lake_root, s, piece_rows=10).built == []
    assert_store_equals_view(lake_root, s)


def test_a_pair_in_pieces_stopped_after_its_first_year_is_stale(
    small_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair written a year at a time: each partition records all the pair's years from its first write, so
    a refresh stopped after BTCUSDT's 2023 (interrupted as 2024 is renamed in) leaves the pair stale, not
    fresh with one year; the next refresh makes it the view's."""
    import os

    s = Settings()
    real = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kw: Any) -> None:
        if "symbol=BTCUSDT/year=2024" in str(dst):
            raise KeyboardInterrupt
        real(src, dst, *args, **kw)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        store.refresh(small_lake, s, piece_rows=20)
    monkeypatch.setattr(os, "replace", real)
    assert (small_lake / "datasets/features/interval=1m/symbol=BTCUSDT/year=2023/data.parquet").exists()
    assert not (small_lake / "datasets/features/interval=1m/symbol=BTCUSDT/year=2024/data.parquet").exists()
    assert ("BTCUSDT", "1m") in store.stale(small_lake, s)
    assert ("BTCUSDT", "1m") in store.refresh(small_lake, s, piece_rows=20).built
    assert store.stale(small_lake, s) == []
    assert_store_equals_view(small_lake, s)

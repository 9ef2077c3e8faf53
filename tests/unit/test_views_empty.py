"""Every view of the contract exists on an empty or brand-new lake, empty, with the contract's types."""

from __future__ import annotations

from pathlib import Path

import pytest

import lake

CONTRACT = {
    "bars": {
        "symbol": "VARCHAR",
        "source": "VARCHAR",
        "asset_class": "VARCHAR",
        "interval": "VARCHAR",
        "ts": "TIMESTAMP WITH TIME ZONE",
        "available_at": "TIMESTAMP WITH TIME ZONE",
        "open": "DOUBLE",
        "high": "DOUBLE",
        "low": "DOUBLE",
        "close": "DOUBLE",
        "volume": "DOUBLE",
        "trades": "BIGINT",
    },
    "bars_rejected": {"reason": "VARCHAR", "source_file": "VARCHAR"},
    "news": {
        "id": "VARCHAR",
        "symbol": "VARCHAR",
        "published_at": "TIMESTAMP WITH TIME ZONE",
        "ingested_at": "TIMESTAMP WITH TIME ZONE",
        "title": "VARCHAR",
        "publisher": "VARCHAR",
        "url": "VARCHAR",
        "sentiment": "DOUBLE",
        "source": "VARCHAR",
    },
    "bar_quality": {
        "symbol": "VARCHAR",
        "interval": "VARCHAR",
        "day": "DATE",
        "n_bars": "BIGINT",
        "expected_bars": "BIGINT",
        "missing_ratio": "DOUBLE",
        "max_gap_minutes": "DOUBLE",
        "ohlc_violations": "BIGINT",
        "duplicates": "BIGINT",
        "out_of_order": "BIGINT",
    },
    "eligible_symbols": {"symbol": "VARCHAR", "interval": "VARCHAR"},
    "features": {
        "symbol": "VARCHAR",
        "interval": "VARCHAR",
        "ts": "TIMESTAMP WITH TIME ZONE",
        "available_at": "TIMESTAMP WITH TIME ZONE",
        "last_news_at": "TIMESTAMP WITH TIME ZONE",
    },
    "runs": {
        "run_id": "VARCHAR",
        "started_at": "TIMESTAMP WITH TIME ZONE",
        "config": "JSON",
        "data_snapshot": "VARCHAR",
        "metrics": "JSON",
    },
    "trading_sessions": {
        "calendar": "VARCHAR",
        "day": "DATE",
        "open_at": "TIMESTAMP WITH TIME ZONE",
        "close_at": "TIMESTAMP WITH TIME ZONE",
        "is_early_close": "BOOLEAN",
    },
}


def bare(lake_root: Path) -> Path:
    """The least a read-only connection takes for a lake: an empty datasets/ folder (no anchor, no file,
    so every view reads the private empty lake)."""
    (lake_root / "datasets").mkdir(parents=True)
    return lake_root


@pytest.mark.parametrize("read_only", [False, True])
def test_every_view_exists_empty_and_typed_on_a_new_lake(lake_root: Path, read_only: bool) -> None:
    # a writable connection makes the new lake; a read-only one reads the barest lake there is
    con = lake.connect(bare(lake_root) if read_only else lake_root, read_only=read_only)
    for view, columns in CONTRACT.items():
        rel = con.sql(f"SELECT * FROM {view}")
        types = dict(zip(rel.columns, map(str, rel.types), strict=True))
        for col, want in columns.items():
            assert types.get(col) == want, f"{view}.{col}: {types.get(col)} != {want}"
        assert rel.fetchall() == [], view


def test_read_only_connect_writes_nothing(lake_root: Path) -> None:
    con = lake.connect(bare(lake_root), read_only=True)
    assert con.sql("SELECT count(*) FROM bars").fetchone() == (0,)
    assert [p.relative_to(lake_root) for p in lake_root.rglob("*")] == [Path("datasets")]


def test_read_only_connect_refuses_a_path_with_no_lake_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "lake"
    with pytest.raises(lake.MarketlakeError, match="^no lake at ") as err:
        lake.connect(missing, read_only=True)
    assert str(missing) in str(err.value) and "read_only" in str(err.value)
    assert not (tmp_path / "no").exists()
    photos = tmp_path / "photos"  # a folder, but not a lake
    photos.mkdir()
    with pytest.raises(lake.MarketlakeError, match=r"no lake \(no datasets/ folder\) at ") as err:
        lake.connect(photos, read_only=True)
    assert str(photos) in str(err.value)
    assert list(photos.iterdir()) == []


def test_read_only_connect_reads_a_lake_a_writable_connect_just_made(lake_root: Path) -> None:
    lake.connect(lake_root).close()
    con = lake.connect(lake_root, read_only=True)
    assert con.sql("SELECT count(*) FROM bars").fetchone() == (0,)


def test_lake_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    with pytest.raises(lake.MarketlakeError, match="is a file, not a directory"):
        lake.connect(f)


def test_a_lake_that_cannot_be_created_is_a_clear_error() -> None:
    with pytest.raises(lake.MarketlakeError, match="cannot create the lake"):
        lake.connect("/proc/marketlake-no-such-lake")


def test_each_view_file_creates_the_view_it_is_named_after() -> None:
    from lake.connect import view_files

    names = [n for n, _ in view_files()]
    assert len(names) == len(set(names))
    for name, path in view_files():
        assert f"CREATE OR REPLACE VIEW {name} AS" in path.read_text(), path.name


def test_timestamps_are_utc_whatever_the_session_time_zone(lake_root: Path) -> None:
    con = lake.connect(lake_root)
    assert con.sql("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)


def test_notebook_result_forms_work_on_a_view(lake_root: Path) -> None:
    """DESIGN's promise to analysts: con.sql(...).pl() / .df() / .arrow() on the lake's views."""
    con = lake.connect(lake_root)
    q = "SELECT symbol, ts, close FROM bars"
    assert con.sql(q).pl().columns == ["symbol", "ts", "close"]
    assert list(con.sql(q).df().columns) == ["symbol", "ts", "close"]
    assert con.sql(q).arrow().read_all().schema.names == ["symbol", "ts", "close"]


@pytest.mark.parametrize(
    "view", [n for n in CONTRACT] + ["splits", "symbol_quality_by_split", "features_priced"]
)
def test_a_connection_with_only_the_views_a_query_needs_runs_it(lake_root: Path, view: str) -> None:
    """lake.connect(views=views_needed(...)) registers a view's dependencies with it (a missing one would
    fail to register), and nothing the query does not need."""
    from lake.connect import view_files, views_needed

    needed = views_needed([f"-- not features\nSELECT * FROM {view} WHERE 'bars' <> ''"])
    assert view in needed and len(needed) < len(view_files())
    con = lake.connect(bare(lake_root), read_only=True, views=needed)
    assert con.sql(f"SELECT * FROM {view}").fetchall() == []
    registered = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert registered == needed
    with pytest.raises(Exception, match=view):
        lake.connect(lake_root, read_only=True, views=needed - {view}).sql(f"SELECT * FROM {view}")


def test_every_view_registers_alone_with_what_it_needs(lake_root: Path) -> None:
    from lake.connect import view_files, views_needed

    bare(lake_root)
    for name, _ in view_files():
        con = lake.connect(lake_root, read_only=True, views=views_needed([f"FROM {name}"]))
        con.sql(f"SELECT * FROM {name} LIMIT 0").fetchall()
        con.close()


def test_comments_and_strings_name_no_view() -> None:
    from lake.connect import views_needed

    assert views_needed(["-- reads features and bars\nSELECT 'bars', 'it''s features' AS x"]) == set()
    assert views_needed(["SELECT * FROM news"]) == {"news", "lake_news"}
    assert "features" not in views_needed(["FROM splits"]) and "bars" in views_needed(["FROM splits"])

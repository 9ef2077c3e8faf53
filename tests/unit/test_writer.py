"""The lake writer: schema validation, atomic replace, merge with dedup, manifests, names, locks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lake
from lake.errors import InvalidName, LakeLocked, SchemaMismatch
from lake.paths import parse_symbols, validate_symbol
from lake.writer import LakeWriter, snapshot_hash, verify
from tests.conftest import bars_table

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PART = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}


def _bars(con: object, sql: str = "SELECT ts, close FROM bars ORDER BY ts") -> list[tuple[object, ...]]:
    return con.sql(sql).fetchall()  # type: ignore[attr-defined]


def test_written_bars_appear_in_the_view_with_partition_columns(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        res = w.write(lake.BARS, PART, bars_table(T0, [1.0, 2.0, 3.0]))
    assert res.changed and res.rows == 3 and res.rows_added == 3
    con = lake.connect(lake_root)
    rows = con.sql(
        "SELECT symbol, source, interval, ts, available_at, close FROM bars ORDER BY ts"
    ).fetchall()
    assert rows[0] == ("BTCUSDT", "binance", "1m", T0, T0 + dt.timedelta(minutes=1), 1.0)
    assert len(rows) == 3


def test_merge_dedups_on_the_key_keeping_the_incoming_bar(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        w.write(lake.BARS, PART, bars_table(T0, [1.0, 2.0, 3.0]))
        res = w.write(lake.BARS, PART, bars_table(T0 + dt.timedelta(minutes=2), [30.0, 40.0]))
    assert res.rows == 4 and res.rows_added == 1
    assert [c for _, c in _bars(lake.connect(lake_root))] == [1.0, 2.0, 30.0, 40.0]


def article(title: str, ingested: dt.datetime) -> pa.Table:
    """One news article in the NEWS schema."""
    return pa.table(
        {
            "id": ["a1"],
            "published_at": pa.array([T0], type=lake.NEWS.field("published_at").type),
            "ingested_at": pa.array([ingested], type=lake.NEWS.field("ingested_at").type),
            "title": [title],
            "summary": pa.array([None], type=pa.string()),
            "publisher": ["p"],
            "url": ["u"],
            "sentiment": [0.1],
            "source": ["yahoo"],
        }
    )


def test_news_merge_keeps_the_first_seen_article(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        w.write(lake.NEWS, {"symbol": "AAPL"}, article("first", T0))
        w.write(lake.NEWS, {"symbol": "AAPL"}, article("changed", T0 + dt.timedelta(days=1)))
    rows = lake.connect(lake_root).sql("SELECT title, ingested_at FROM news").fetchall()
    assert rows == [("first", T0)]


def test_rewriting_the_same_rows_changes_nothing(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        first = w.write(lake.BARS, PART, bars_table(T0, [1.0, 2.0]))
    before = first.path.stat().st_mtime_ns, first.path.read_bytes()
    h = snapshot_hash(lake_root)
    with LakeWriter.open(lake_root) as w:
        again = w.write(lake.BARS, PART, bars_table(T0, [1.0, 2.0]))
    assert not again.changed
    assert (again.path.stat().st_mtime_ns, again.path.read_bytes()) == before
    assert snapshot_hash(lake_root) == h


def test_replace_mode_makes_the_partition_hold_exactly_the_new_rows(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        w.write(lake.BARS, PART, bars_table(T0, [1.0, 2.0, 3.0]))
        w.write(lake.BARS, PART, bars_table(T0, [9.0]), mode="replace")
    assert [c for _, c in _bars(lake.connect(lake_root))] == [9.0]


def test_manifest_records_rows_sha256_and_inputs_and_verify_catches_a_change(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        res = w.write(lake.BARS, PART, bars_table(T0, [1.0, 2.0]), inputs=[{"file": "x.zip", "sha256": "ab"}])
    manifest = json.loads((res.path.parent / "_manifest.json").read_text())
    [recorded] = manifest["inputs"]
    landed_at = dt.datetime.fromisoformat(recorded.pop("landed_at"))  # a bars input's landing time
    assert manifest["rows"] == 2 and recorded == {"file": "x.zip", "sha256": "ab"}
    assert landed_at.tzinfo is not None and landed_at <= dt.datetime.now(dt.UTC)
    assert verify(lake_root) == []
    pq.write_table(pq.read_table(res.path).slice(0, 1), res.path)
    assert any("sha256 differs" in p for p in verify(lake_root))


def test_schema_mismatch_is_refused_with_the_column_named(lake_root: Path) -> None:
    t = bars_table(T0, [1.0]).drop_columns(["trades"])
    with LakeWriter.open(lake_root) as w, pytest.raises(SchemaMismatch, match="trades"):
        w.write(lake.BARS, PART, t)
    t2 = bars_table(T0, [1.0]).set_column(3, "open", pa.array(["x"]))
    with LakeWriter.open(lake_root) as w, pytest.raises(SchemaMismatch, match="open"):
        w.write(lake.BARS, PART, t2)


def test_null_in_a_required_column_is_refused(lake_root: Path) -> None:
    t = bars_table(T0, [1.0, 2.0]).set_column(6, "close", pa.array([1.0, None]))
    with LakeWriter.open(lake_root) as w, pytest.raises(SchemaMismatch, match="close.*null"):
        w.write(lake.BARS, PART, t)


@pytest.mark.parametrize(
    "bad", ["../../etc", "a/b", "..", "", " AAPL", "AA PL", "A'B", "A;B", "é", "-X", "A\\B", "x" * 33]
)
def test_hostile_symbols_never_become_paths(lake_root: Path, bad: str) -> None:
    with pytest.raises(InvalidName):
        validate_symbol(bad)
    with LakeWriter.open(lake_root) as w, pytest.raises(InvalidName):
        w.write(lake.BARS, {**PART, "symbol": bad}, bars_table(T0, [1.0]))
    assert not list(lake_root.rglob("data.parquet.tmp-*"))


@pytest.mark.parametrize("good", ["BTCUSDT", "BRK.B", "BTC-USD", "SPY", "7203"])
def test_real_symbols_are_accepted(good: str) -> None:
    assert validate_symbol(good) == good


def test_parse_symbols_splits_validates_and_dedups() -> None:
    assert parse_symbols(" AAPL, MSFT,AAPL ") == ["AAPL", "MSFT"]
    with pytest.raises(InvalidName):
        parse_symbols("AAPL,../x")


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(lake_root: Path) -> None:
    messages: list[str] = []
    with LakeWriter.open(lake_root):
        with pytest.raises(LakeLocked, match="locked by a writer"):
            with LakeWriter.open(lake_root, wait_seconds=0.3, on_wait=messages.append):
                pass
    assert messages and "waiting" in messages[0]
    with LakeWriter.open(lake_root, wait_seconds=0.3):
        pass  # released once the first writer is done


def test_a_corrupt_file_names_itself_and_leaves_other_views_working(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        res = w.write(lake.BARS, PART, bars_table(T0, [1.0]))
    res.path.write_bytes(b"not parquet at all")
    con = lake.connect(lake_root)
    with pytest.raises(Exception, match="symbol=BTCUSDT"):
        con.sql("SELECT count(*) FROM bars").fetchall()
    assert con.sql("SELECT count(*) FROM news").fetchone() == (0,)
    assert con.sql("SELECT count(*) FROM runs").fetchone() == (0,)


def test_stale_temporary_files_are_invisible_and_cleaned_by_the_next_writer(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        res = w.write(lake.BARS, PART, bars_table(T0, [1.0]))
    stale = res.path.with_name("data.parquet.tmp-deadbeef")
    stale.write_bytes(b"half a file")
    assert lake.connect(lake_root).sql("SELECT count(*) FROM bars").fetchone() == (1,)
    with LakeWriter.open(lake_root):
        pass
    assert not stale.exists()


def test_snapshot_hash_of_some_datasets_ignores_the_others(lake_root: Path) -> None:
    with LakeWriter.open(lake_root) as w:
        w.write(lake.BARS, PART, bars_table(T0, [1.0, 2.0]))
    only_bars, whole = snapshot_hash(lake_root, ("bars",)), snapshot_hash(lake_root)
    with LakeWriter.open(lake_root) as w:
        w.write(lake.BARS, {**PART, "symbol": "ETHUSDT"}, bars_table(T0, [3.0]))
    assert snapshot_hash(lake_root, ("bars",)) != only_bars  # bars changed: both change
    assert snapshot_hash(lake_root) != whole
    only_bars, whole = snapshot_hash(lake_root, ("bars",)), snapshot_hash(lake_root)
    with LakeWriter.open(lake_root) as w:
        w.write(lake.NEWS, {"symbol": "AAPL"}, article("t", T0))
    assert snapshot_hash(lake_root, ("bars",)) == only_bars  # news is not among them
    assert snapshot_hash(lake_root) != whole

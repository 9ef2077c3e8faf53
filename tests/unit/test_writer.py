"""The lake writer: schema validation, atomic replace, merge with dedup, manifests, names, locks."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lake
import lake.writer as writer_mod
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


# --- write_many: the same lake as one write after another ---------------------------------------------


def _many_scenario(root: Path) -> list[tuple[dict[str, str], pa.Table, list[dict[str, str]]]]:
    """A lake holding two partitions, and writes over it: new partitions (one empty, one out of order,
    one with a repeated ts), an unchanged one, and one whose closes change (bar_revisions)."""
    t0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    with LakeWriter.open(root) as w:
        w.write(lake.BARS, _part("SAME"), bars_table(t0, [1.0, 2.0], source_file="a"), inputs=[{"file": "a"}])
        w.write(lake.BARS, _part("EDIT"), bars_table(t0, [1.0, 2.0], source_file="a"), inputs=[{"file": "a"}])
    shuffled = bars_table(t0, [3.0, 4.0, 5.0], source_file="b").take([2, 0, 1])
    repeated = pa.concat_tables(
        [bars_table(t0, [3.0], source_file="b"), bars_table(t0, [6.0], source_file="b")]
    )
    return [
        (_part("SAME"), bars_table(t0, [1.0, 2.0], source_file="a"), [{"file": "a"}]),
        (_part("NEW1"), bars_table(t0, [1.0, 2.0, 3.0], source_file="b"), [{"file": "b"}]),
        (_part("EMPTY"), lake.BARS.schema.empty_table(), []),
        (_part("EDIT"), bars_table(t0, [1.5, 2.5], source_file="b"), [{"file": "b"}]),
        (_part("SHUF"), shuffled, [{"file": "b"}]),
        (_part("DUP"), repeated, [{"file": "b"}]),
        (_part("NEW2"), bars_table(t0 + dt.timedelta(days=1), [9.0], source_file="b"), [{"file": "b"}]),
    ]


def _part(symbol: str) -> dict[str, str]:
    return {"source": "test", "interval": "1m", "symbol": symbol, "period": "2024-03"}


def _outcome(r: Any) -> tuple[Any, ...]:
    return (r.dataset, r.path.relative_to(r.path.parents[5]), r.rows, r.rows_added, r.changed)


@pytest.mark.parametrize("mode", ["replace", "merge"])
@pytest.mark.parametrize("syncfs", [True, False])
def test_write_many_gives_the_files_and_results_of_one_write_after_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, syncfs: bool
) -> None:
    from tests.faults import lake_files

    monkeypatch.setattr(writer_mod, "BATCH_PARTITIONS", 3)  # batches cut between the writes
    if not syncfs:  # the other way to durability: an fsync of each file
        monkeypatch.setattr(writer_mod, "_syncfs", lambda path: False)
    one, many = tmp_path / "one", tmp_path / "many"
    writes = _many_scenario(one)
    _many_scenario(many)
    with LakeWriter.open(one) as w:
        expected = [w.write(lake.BARS, p, t, mode=mode, inputs=i) for p, t, i in writes]  # type: ignore[arg-type]
    with LakeWriter.open(many) as w:
        got = w.write_many(lake.BARS, writes, mode=mode, threads=3)  # type: ignore[arg-type]
        assert w.bars_written
    assert [_outcome(r) for r in got] == [_outcome(r) for r in expected]
    # bar_revisions say when (first_seen, last_seen): the same rows but for those instants
    files_one, files_many = lake_files(one), lake_files(many)
    revisions = [k for k in files_one if k.startswith("datasets/bar_revisions/source=test/")]
    assert any(k.endswith("symbol=EDIT/period=2024-03/data.parquet") for k in revisions)  # EDIT's closes
    for k in revisions:
        a, b = files_one.pop(k), files_many.pop(k)
        if k.endswith("data.parquet"):
            read = [
                pq.read_table(pa.BufferReader(x)).drop_columns(["first_seen", "last_seen"]) for x in (a, b)
            ]
            assert read[0].equals(read[1])
    assert files_many == files_one
    assert verify(many) == []


def test_write_many_renames_in_only_what_was_made_durable(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    durable: set[Path] = set()
    renamed: list[Path] = []
    real_durable, real_replace = writer_mod._make_durable, os.replace

    def make_durable(files: Any) -> None:
        real_durable(files)
        durable.update(Path(f) for f in files)

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).parent.parts[-4:-2] != ("bar_revisions",):
            assert Path(src) in durable, f"{src} renamed in before it was made durable"
        renamed.append(Path(dst))
        real_replace(src, dst)

    t0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    writes = [(_part(f"S{i}"), bars_table(t0, [1.0 + i, 2.0]), [{"file": "f"}]) for i in range(10)]
    with LakeWriter.open(lake_root) as w:  # the lake's schema anchors written first
        monkeypatch.setattr(writer_mod, "BATCH_PARTITIONS", 4)
        monkeypatch.setattr(writer_mod, "_make_durable", make_durable)
        monkeypatch.setattr(writer_mod.os, "replace", replace)
        w.write_many(lake.BARS, writes, mode="replace", threads=4)
    assert len(renamed) == 20  # a data file and a manifest each, the data first
    assert all(
        a.name == "data.parquet" and b.name == "_manifest.json"
        for a, b in zip(renamed[::2], renamed[1::2], strict=True)
    )


def test_write_many_stops_at_the_first_error_and_leaves_no_temporary_file(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lake.errors import MarketlakeError
    from tests.faults import temp_files

    real = writer_mod._write_parquet

    def full_at_s5(table: pa.Table, path: Path, *args: Any, **kw: Any) -> Any:
        if "symbol=S5" in str(path):
            raise OSError(28, "No space left on device")
        return real(table, path, *args, **kw)

    monkeypatch.setattr(writer_mod, "BATCH_PARTITIONS", 4)
    monkeypatch.setattr(writer_mod, "_write_parquet", full_at_s5)
    t0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    writes = [(_part(f"S{i}"), bars_table(t0, [1.0 + i, 2.0]), [{"file": "f"}]) for i in range(10)]
    with LakeWriter.open(lake_root) as w:
        with pytest.raises(MarketlakeError, match="disk is full"):
            w.write_many(lake.BARS, writes, mode="replace", threads=3)
    assert temp_files(lake_root) == []
    landed = sorted(p.parent.parent.name for p in (lake_root / "datasets/bars").rglob("data.parquet"))
    assert [x for x in landed if x != "symbol=__empty__"] == [
        f"symbol=S{i}" for i in range(4)
    ]  # the first batch
    assert verify(lake_root) == []


def test_write_many_refuses_one_partition_twice(lake_root: Path) -> None:
    from lake.errors import MarketlakeError

    t = bars_table(dt.datetime(2024, 3, 1, tzinfo=dt.UTC), [1.0])
    with LakeWriter.open(lake_root) as w, pytest.raises(MarketlakeError, match="one partition twice"):
        w.write_many(lake.BARS, [(_part("A"), t, []), (_part("A"), t, [])])


# --- the manifest's text and the folders, by the faster paths ---------------------------------------


_JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.text(max_size=12), st.floats(allow_nan=False)
)
_INPUT = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        _JSON_SCALARS,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
        max_leaves=6,
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(0, 2**40),
    sha=st.text(max_size=64),
    rows=st.integers(0, 2**40),
    inputs=st.lists(_INPUT, max_size=4),
)
def test_the_manifest_text_is_jsons_indented_dump(size: int, sha: str, rows: int, inputs: list[Any]) -> None:
    """`_manifest_bytes` (its inputs' part cached) is byte for byte what json.dumps(indent=1,
    sort_keys=True) makes of the manifest, whatever the inputs hold (newlines, quotes, non-ASCII, nesting)."""
    unique = sorted({json.dumps(dict(i), sort_keys=True) for i in inputs})
    manifest = {
        "file": "data.parquet",
        "rows": rows,
        "bytes": size,
        "sha256": sha,
        "inputs": [json.loads(u) for u in unique],
    }
    expected = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    assert writer_mod._manifest_bytes(size, sha, rows, inputs) == expected
    assert writer_mod._manifest_bytes(size, sha, rows, list(reversed(inputs))) == expected  # cached: same


def test_make_dirs_is_mkdir_with_parents(tmp_path: Path) -> None:
    deep = tmp_path / "a=1" / "b=2" / "c=3"
    writer_mod._make_dirs(str(deep))
    assert deep.is_dir()
    writer_mod._make_dirs(str(deep))  # there already: fine
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "file", tmp_path / "file" / "below"):  # a file, or a file as parent
        with pytest.raises(OSError) as theirs:
            bad.mkdir(parents=True, exist_ok=True)
        with pytest.raises(type(theirs.value)):
            writer_mod._make_dirs(str(bad))


@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_write_many_with_a_fixed_clock_gives_byte_identical_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """With the clock fixed, every file write_many leaves (data, manifests with their landed_at,
    bar_revisions with first_seen and last_seen) is byte for byte the file of one write after another."""
    monkeypatch.setattr(writer_mod, "BATCH_PARTITIONS", 3)
    monkeypatch.setattr(
        writer_mod, "_now", lambda: dt.datetime(2024, 6, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    )
    one, many = tmp_path / "one", tmp_path / "many"
    writes = _many_scenario(one)
    _many_scenario(many)
    with LakeWriter.open(one) as w:
        for p, t, i in writes:
            w.write(lake.BARS, p, t, mode=mode, inputs=i)  # type: ignore[arg-type]
    with LakeWriter.open(many) as w:
        w.write_many(lake.BARS, writes, mode=mode, threads=3)  # type: ignore[arg-type]

    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted((root / "datasets").rglob("*"))
            if p.name in ("data.parquet", "_manifest.json")
        }

    got, expected = files(many), files(one)
    assert any("landed_at" in v.decode() for k, v in got.items() if k.endswith("_manifest.json"))
    assert got == expected


@pytest.mark.parametrize("sync", [True, False])
def test_a_table_encoded_into_its_file_is_the_file_encoded_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: bool
) -> None:
    """The two ways `_write_parquet` writes (in memory below IN_MEMORY_BYTES, straight into the file above)
    give the same bytes, size and sha256; neither writes over a file that is there."""
    table = bars_table(T0, [float(i) for i in range(1, 200)])
    got = {}
    for name, limit in (("memory", 1 << 40), ("file", 0)):
        monkeypatch.setattr(writer_mod, "IN_MEMORY_BYTES", limit)
        path = tmp_path / f"{name}.parquet"
        size, sha = writer_mod._write_parquet(table, path, "zstd", 64, sync=sync)
        assert (size, sha) == (path.stat().st_size, writer_mod.sha256_file(path)), name
        assert pq.read_table(path).equals(table), name
        got[name] = (path.read_bytes(), size, sha)
        with pytest.raises(FileExistsError):
            writer_mod._write_parquet(table, path, "zstd", 64, sync=sync)
    assert got["memory"] == got["file"]


def test_the_row_size_estimate_counts_every_column() -> None:
    """`_table_bytes` (which decides where a table is encoded) is rows times the fixed widths, 16 for text."""
    schema = pa.schema([("a", pa.float64()), ("b", pa.int32()), ("c", pa.bool_()), ("s", pa.string())])
    table = pa.table({"a": [1.0, 2.0], "b": [1, 2], "c": [True, False], "s": ["x", "y"]}, schema=schema)
    assert writer_mod._table_bytes(table) == 2 * (8 + 4 + 1 + 16)
    assert writer_mod._table_bytes(table.slice(1)) == 8 + 4 + 1 + 16

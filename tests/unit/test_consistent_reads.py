"""Reads that a write overlapped are run again (lake.consistent over the writer's write sequence).

DuckDB 1.5.6 opens a Parquet file twice in one scan (its footer, then its pages): a file replaced between the
two is read as neither version. The writer marks every replacement in the lake's write sequence (odd while
it replaces files); lake.consistent keeps a read only when the sequence did not move while it ran."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lake
from lake.errors import MarketlakeError
from lake.writer import WRITES_FILE, LakeWriter, read_writes
from tests.conftest import bars_table

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PART = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}


def _write(root: Path, closes: list[float]) -> None:
    with LakeWriter.open(root) as w:
        w.write(lake.BARS, PART, bars_table(T0, closes), mode="replace")


def _closes(con: object) -> list[float]:
    return [r[0] for r in con.sql("SELECT close FROM lake_bars ORDER BY ts").fetchall()]  # type: ignore[attr-defined]


def test_each_replacement_moves_the_sequence_by_two_and_it_is_odd_meanwhile(lake_root: Path) -> None:
    _write(lake_root, [1.0])
    before = read_writes(lake_root)
    assert before is not None and before % 2 == 0
    with LakeWriter.open(lake_root) as w:
        w.write(lake.BARS, PART, bars_table(T0, [2.0]), mode="replace")
        # the bars file, its revisions' file and the bars mirror's (lake/chosen.py): one change for readers
        after = read_writes(lake_root)
        assert after == before + 2, (before, after)
        with w.changing(), w.changing():  # nested: one change
            assert read_writes(lake_root) == after + 1
        assert read_writes(lake_root) == after + 2
        w.write(lake.BARS, PART, bars_table(T0, [2.0]), mode="replace")  # the same rows: nothing replaced
        assert read_writes(lake_root) == after + 2


def test_a_read_a_write_overlapped_is_run_again(lake_root: Path) -> None:
    _write(lake_root, [1.0, 1.0])
    con = lake.connect(lake_root, read_only=True)
    calls: list[list[float]] = []

    def query() -> list[float]:
        got = _closes(con)
        if not calls:  # a writer replaces the partition while this first read runs
            _write(lake_root, [2.0, 2.0, 2.0])
        calls.append(got)
        return got

    assert lake.consistent(lake_root, query) == [2.0, 2.0, 2.0]
    assert calls == [[1.0, 1.0], [2.0, 2.0, 2.0]]
    con.close()


def test_an_error_is_retried_only_when_a_write_overlapped_it(lake_root: Path) -> None:
    import duckdb

    _write(lake_root, [1.0])
    con = lake.connect(lake_root, read_only=True)
    tries = {"n": 0}

    def failing_once_under_a_write() -> list[float]:
        tries["n"] += 1
        if tries["n"] == 1:
            _write(lake_root, [3.0])
            raise duckdb.InvalidInputException("TProtocolException: Invalid data")  # what DuckDB raised
        return _closes(con)

    assert lake.consistent(lake_root, failing_once_under_a_write) == [3.0] and tries["n"] == 2

    def failing() -> None:
        con.sql("SELECT nope FROM lake_bars").fetchall()

    with pytest.raises(duckdb.BinderException):
        lake.consistent(lake_root, failing)
    con.close()


def test_no_read_runs_while_a_writer_replaces_files(lake_root: Path) -> None:
    _write(lake_root, [1.0])
    calls: list[int] = []
    entered, leave = threading.Event(), threading.Event()

    def writer() -> None:
        with LakeWriter.open(lake_root) as w, w.changing():
            entered.set()
            leave.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert entered.wait(10)
        with pytest.raises(MarketlakeError, match="a writer was replacing files for all the 0.2 s"):
            lake.consistent(lake_root, lambda: calls.append(1), wait_seconds=0.2)
        assert calls == []
    finally:
        leave.set()
        t.join()

    def read() -> str:
        calls.append(1)
        return "read"

    assert lake.consistent(lake_root, read) == "read" and calls == [1]


def test_a_sequence_a_stopped_writer_left_odd_does_not_block_readers(lake_root: Path) -> None:
    _write(lake_root, [1.0])
    (lake_root / WRITES_FILE).write_bytes((7).to_bytes(8, "little"))  # killed inside `changing`
    assert lake.consistent(lake_root, lambda: "read") == "read"  # no writer holds the lock
    with LakeWriter.open(lake_root):
        assert read_writes(lake_root) == 8  # the next writer makes it even


def test_a_read_every_write_overlaps_gives_up_naming_the_last_error(lake_root: Path) -> None:
    import duckdb

    _write(lake_root, [1.0])
    n = {"reads": 0}

    def always_overlapped() -> None:
        n["reads"] += 1
        _write(lake_root, [float(n["reads"])] * (1 + n["reads"] % 2))
        raise duckdb.InvalidInputException(f"torn read {n['reads']}")

    with pytest.raises(MarketlakeError, match=r"kept changing .*\(3 reads overlapped .*torn read 3\)") as err:
        lake.consistent(lake_root, always_overlapped, attempts=3)
    assert n["reads"] == 3 and isinstance(err.value.__cause__, duckdb.InvalidInputException)


def test_every_write_path_replaces_a_data_file_inside_a_change(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever writes (one partition, a batch of them, the bars' revisions, the feature store), every
    data file a view reads is renamed in while the write sequence is odd."""
    import os

    import lake.writer as writer_mod

    seen: list[tuple[str, int | None]] = []
    real = os.replace

    def spy(src: object, dst: object) -> None:
        if str(dst).endswith(writer_mod.DATA_FILE) and Path(str(dst)).exists():  # a replacement (a new
            seen.append((str(dst), read_writes(lake_root)))  # file appearing cannot be read torn)
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_mod.os, "replace", spy)
    _write(lake_root, [1.0])
    _write(lake_root, [2.0, 3.0])  # revises a bar: bar_revisions written too
    with LakeWriter.open(lake_root) as w:
        parts: list[tuple[dict[str, str], Any, list[dict[str, Any]]]] = [
            ({**PART, "symbol": s}, bars_table(T0, [4.0]), []) for s in ("AAA", "BBB", "CCC")
        ]
        w.write_many(lake.BARS, parts, mode="replace")
    from features import store
    from lake.config import Settings

    store.refresh(lake_root, Settings(min_bars_per_symbol=1))
    _write(lake_root, [5.0, 6.0])  # replaces the bars and the bar_revisions file of BTCUSDT
    store.refresh(lake_root, Settings(min_bars_per_symbol=1))  # replaces BTCUSDT's stored features
    for dataset in ("/bars/", "/bar_revisions/", "/features/"):
        assert any(dataset in d for d, _ in seen), (dataset, seen)
    odd = [(d, n) for d, n in seen if n is None or n % 2 == 0]
    assert not odd, odd


def test_a_relation_returned_unfetched_is_refused(lake_root: Path) -> None:
    """`con.sql(q)` is a relation that runs when fetched: returned from the guarded function, its `.df()`
    would run after the guard, unguarded. It is refused, saying to fetch inside the function."""
    _write(lake_root, [1.0])
    con = lake.connect(lake_root, read_only=True)
    with pytest.raises(TypeError, match=r"fetch inside the function.*\.df\(\)"):
        lake.consistent(lake_root, lambda: con.sql("SELECT close FROM lake_bars"))
    got = lake.consistent(lake_root, lambda: con.sql("SELECT close FROM lake_bars").fetchall())
    assert got == [(1.0,)]


@pytest.mark.parametrize("where", ["missing", "not a lake", "relative"])
def test_a_root_that_holds_no_lake_is_an_error_naming_it(
    lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A mistyped root, or "data/lake" from a notebook started in notebooks/, is not a lake: the guard would
    watch nothing, so it is an error naming the path, and the function is not run unguarded."""
    _write(lake_root, [1.0])
    (tmp_path / "notebooks").mkdir()
    root = {"missing": tmp_path / "lake2", "not a lake": tmp_path / "notebooks", "relative": Path("lake")}[
        where
    ]
    if where == "relative":
        monkeypatch.chdir(tmp_path / "notebooks")
    named = tmp_path / "notebooks" / "lake" if where == "relative" else root
    calls: list[int] = []
    with pytest.raises(MarketlakeError, match=rf"no lake.* at {re.escape(str(named))}"):
        lake.consistent(root, lambda: calls.append(1))
    assert calls == []


def test_an_arrow_reader_is_read_whole_inside_the_guard(lake_root: Path) -> None:
    """`.arrow()` (DESIGN's notebook form) gives a pyarrow RecordBatchReader in DuckDB 1.5.6, which reads
    its rows only when read: returned as it is, one more query on the connection left it empty. The guard
    reads it whole and returns a pyarrow Table."""
    _write(lake_root, [1.0, 2.0, 3.0])
    con = lake.connect(lake_root, read_only=True)
    got = lake.consistent(lake_root, lambda: con.sql("SELECT close FROM lake_bars ORDER BY ts").arrow())
    con.sql("SELECT 1").fetchall()  # one more query on the connection
    assert isinstance(got, pa.Table), type(got)
    assert got.column("close").to_pylist() == [1.0, 2.0, 3.0]


def test_an_arrow_reader_a_write_overlapped_while_it_was_read_is_read_again(lake_root: Path) -> None:
    """The reader is read inside the guard: a write while its batches are read makes the read run again."""
    _write(lake_root, [1.0])
    calls: list[int] = []
    schema = pa.schema([("n", pa.int64())])

    def batches(n: int) -> Iterator[pa.RecordBatch]:
        if n == 1:  # a writer replaces the partition while the first reader is being read
            _write(lake_root, [2.0, 2.0])
        yield pa.record_batch([pa.array([n])], schema=schema)

    def query() -> pa.RecordBatchReader:
        calls.append(1)
        return pa.RecordBatchReader.from_batches(schema, batches(len(calls)))

    got = lake.consistent(lake_root, query)
    assert len(calls) == 2 and got.column("n").to_pylist() == [2]


def test_lazy_results_that_would_read_after_the_guard_are_refused(lake_root: Path) -> None:
    """A polars LazyFrame, or the connection `con.execute(q)` returns (its rows fetched later), would read the
    lake after the guard: refused with a TypeError saying to fetch inside the function."""
    _write(lake_root, [1.0])
    con = lake.connect(lake_root, read_only=True)
    q = "SELECT close FROM lake_bars"
    with pytest.raises(TypeError, match=r"LazyFrame.*\.collect\(\)"):
        lake.consistent(lake_root, lambda: con.sql(q).pl(lazy=True))
    with pytest.raises(TypeError, match=r"connection.*fetch inside the function"):
        lake.consistent(lake_root, lambda: con.execute(q))
    assert lake.consistent(lake_root, lambda: con.execute(q).fetchall()) == [(1.0,)]

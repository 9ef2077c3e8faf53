"""The bars mirror (lake/chosen.py): `bars` read from it gives exactly the rows of the precedence window
(sql/views/020_bars.sql), after any sequence of writes, and is used only while it is whole."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lake
from lake import chosen
from lake.config import Settings
from lake.connect import register_views, views_needed
from lake.paths import LakePaths
from lake.writer import LakeWriter
from tests.conftest import bars_table

T0 = dt.datetime(2024, 1, 31, 23, 57, tzinfo=dt.UTC)  # minutes on both sides of a month's end
ROWS = 'SELECT * FROM bars ORDER BY symbol, "interval", ts'


def _rows(root: Path, *, mirror: bool) -> list[tuple[object, ...]]:
    con = duckdb.connect(":memory:")
    try:
        register_views(con, root, Settings(), views_needed([ROWS]), mirror=mirror)
        return con.execute(ROWS).fetchall()
    finally:
        con.close()


def _bars_sql(root: Path) -> str:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        row = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'bars'").fetchone()
        assert row is not None
        return str(row[0])
    finally:
        con.close()


def _uses_mirror(root: Path) -> bool:
    return "bars_chosen" in _bars_sql(root)


SOURCES = ["polygon", "binance", "yahoo", "csv", "alpha", "zeta", "x.tmp-1", "Polygon"]
PERIODS = ["2024-01", "2024-02", "2024", "odd"]  # of 1m bars, "2024" and "odd" are not what ingest writes

write_st = st.tuples(
    st.sampled_from(SOURCES),
    st.sampled_from([("1m", "A"), ("1m", "B"), ("1d", "A")]),
    st.sampled_from(PERIODS),
    st.integers(0, 5),  # first minute from T0
    st.lists(st.floats(1, 100, allow_nan=False), min_size=0, max_size=5),
    st.sampled_from(["merge", "replace"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions=st.lists(st.lists(write_st, min_size=1, max_size=5), min_size=1, max_size=3))
def test_the_mirror_gives_the_windows_rows_after_any_writes(
    tmp_path_factory: pytest.TempPathFactory,
    sessions: list[list[tuple[str, tuple[str, str], str, int, list[float], str]]],
) -> None:
    root = tmp_path_factory.mktemp("lake")
    for writes in sessions:
        with LakeWriter.open(root) as w:
            for source, (interval, symbol), period, first, closes, mode in writes:
                part = {"source": source, "interval": interval, "symbol": symbol, "period": period}
                step = dt.timedelta(minutes=1) if interval == "1m" else dt.timedelta(days=1)
                start = T0 + first * step
                table = bars_table(
                    start, closes or [1.0], interval=step, source_file=f"{source}-{period}.csv"
                )
                if not closes:
                    table = table.slice(0, 0)
                w.write(lake.BARS, part, table, mode="merge" if mode == "merge" else "replace")
        if not chosen.is_current(LakePaths(root)):  # no bars ever changed: no mirror yet (the window reads)
            assert not list((root / "datasets" / "bars").glob("source=[!_]*/*/*/*/data.parquet"))
            continue
        assert _rows(root, mirror=True) == _rows(root, mirror=False)
        assert _uses_mirror(root)


def _write(root: Path, source: str, closes: list[float], period: str = "2024-02", symbol: str = "A") -> None:
    with LakeWriter.open(root) as w:
        part = {"source": source, "interval": "1m", "symbol": symbol, "period": period}
        w.write(
            lake.BARS, part, bars_table(dt.datetime(2024, 2, 1, tzinfo=dt.UTC), closes, source_file=source)
        )


def _mirror_file(root: Path, source: str, period: str = "2024-02", symbol: str = "A") -> Path:
    rel = Path(f"source={source}/interval=1m/symbol={symbol}/period={period}/data.parquet")
    return root / "datasets" / "bars_chosen" / rel


def test_a_file_that_wins_whole_is_a_hard_link_and_one_that_loses_some_holds_its_winners(
    lake_root: Path,
) -> None:
    _write(lake_root, "yahoo", [1.0, 2.0, 3.0, 4.0])
    _write(lake_root, "polygon", [9.0, 9.0])  # polygon outranks yahoo on the first two minutes
    src = lake_root / "datasets/bars/source=polygon/interval=1m/symbol=A/period=2024-02/data.parquet"
    assert os.stat(src).st_ino == os.stat(_mirror_file(lake_root, "polygon")).st_ino
    import pyarrow.parquet as pq

    kept = pq.read_table(_mirror_file(lake_root, "yahoo"), partitioning=None).column("close").to_pylist()
    assert kept == [3.0, 4.0]
    closes = [r[9] for r in _rows(lake_root, mirror=True)]
    assert closes == [9.0, 9.0, 3.0, 4.0]
    _write(lake_root, "polygon", [9.0, 9.0, 9.0, 9.0, 9.0])  # now yahoo loses every row: its file goes
    assert not _mirror_file(lake_root, "yahoo").exists()
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)


def test_a_writer_killed_midway_leaves_the_window_in_use_and_the_next_rebuilds(lake_root: Path) -> None:
    _write(lake_root, "binance", [1.0, 2.0])
    assert _uses_mirror(lake_root)
    killed = (
        "import datetime as dt, os, sys\n"
        "import lake\n"
        "from lake.writer import LakeWriter\n"
        "from tests.conftest import bars_table\n"
        "with LakeWriter.open(sys.argv[1]) as w:\n"
        "    part = {'source': 'binance', 'interval': '1m', 'symbol': 'A', 'period': '2024-02'}\n"
        "    w.write(lake.BARS, part, bars_table(dt.datetime(2024, 2, 1, tzinfo=dt.UTC), [5.0, 6.0, 7.0]))\n"
        "    os._exit(9)  # killed: nothing after this runs, the lock's end neither\n"
    )
    root_dir = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", killed, str(lake_root)], cwd=root_dir, check=False)
    assert done.returncode == 9
    assert not chosen.is_current(LakePaths(lake_root))
    assert not _uses_mirror(lake_root)
    assert [r[9] for r in _rows(lake_root, mirror=False)] == [5.0, 6.0, 7.0]
    with LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()  # (what the next bars write, or feature store refresh, does first)
    assert _uses_mirror(lake_root)
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)


def test_a_writer_that_ends_on_an_error_still_marks_the_mirror_it_kept_whole(lake_root: Path) -> None:
    _write(lake_root, "yahoo", [1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError), LakeWriter.open(lake_root) as w:
        part = {"source": "polygon", "interval": "1m", "symbol": "A", "period": "2024-02"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 2, 1, tzinfo=dt.UTC), [9.0], source_file="p"))
        raise RuntimeError("a later file failed")
    assert chosen.is_current(LakePaths(lake_root))  # no rebuild of the whole mirror by the next writer
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)
    assert [r[9] for r in _rows(lake_root, mirror=True)] == [9.0, 2.0, 3.0]


def test_a_lake_made_before_the_mirror_reads_the_window_until_a_writer_builds_it(lake_root: Path) -> None:
    _write(lake_root, "yahoo", [1.0, 2.0, 3.0])
    _write(lake_root, "csv", [5.0])
    shutil.rmtree(lake_root / "datasets" / "bars_chosen")
    assert not _uses_mirror(lake_root)
    window = _rows(lake_root, mirror=False)
    with LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()
    assert _uses_mirror(lake_root)
    assert _rows(lake_root, mirror=True) == window
    assert [r[1] for r in window] == ["yahoo", "yahoo", "yahoo"]


def test_a_mirror_that_cannot_be_updated_is_a_warning_and_leaves_the_window_in_use(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _write(lake_root, "binance", [1.0])

    def broken(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    old = lake.connect(lake_root, read_only=True, settings=Settings())  # a notebook's, made while whole
    assert old.execute("SELECT count(*) FROM bars").fetchone() == (1,)
    monkeypatch.setattr(chosen, "update", broken)
    with caplog.at_level(logging.WARNING, logger="marketlake"):
        _write(lake_root, "binance", [1.0, 2.0])
    assert "bars_chosen" in caplog.text and "disk is full" in caplog.text and "withdrawn" in caplog.text
    assert not chosen.is_current(LakePaths(lake_root))
    with pytest.raises(duckdb.Error):  # the old connection fails rather than show the one bar of before
        old.execute("SELECT count(*) FROM bars").fetchone()
    old.close()
    assert [r[9] for r in _rows(lake_root, mirror=False)] == [1.0, 2.0]
    assert not _uses_mirror(lake_root)
    monkeypatch.undo()
    with LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()
    assert _uses_mirror(lake_root)
    assert [r[9] for r in _rows(lake_root, mirror=True)] == [1.0, 2.0]


def test_the_mirror_is_no_part_of_the_lakes_content_hash(lake_root: Path) -> None:
    _write(lake_root, "binance", [1.0, 2.0])
    before = lake.snapshot_hash(lake_root)
    shutil.rmtree(lake_root / "datasets" / "bars_chosen")
    with LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()
    assert lake.snapshot_hash(lake_root) == before


@pytest.mark.parametrize(
    ("interval", "period", "span"),
    [
        ("1m", "2024-02", (dt.datetime(2024, 2, 1), dt.datetime(2024, 3, 1))),
        ("1h", "2024-12", (dt.datetime(2024, 12, 1), dt.datetime(2025, 1, 1))),
        ("1d", "2023", (dt.datetime(2023, 1, 1), dt.datetime(2024, 1, 1))),
    ],
)
def test_a_period_names_its_utc_span(
    interval: str, period: str, span: tuple[dt.datetime, dt.datetime]
) -> None:
    def us(d: dt.datetime) -> int:
        return int(d.replace(tzinfo=dt.UTC).timestamp()) * 1_000_000

    assert chosen.period_span(interval, period) == (us(span[0]), us(span[1]))


@pytest.mark.parametrize(
    ("interval", "period"),
    [
        ("1m", "2024-13"),
        ("1m", "p1"),
        ("1m", "2024-1"),
        ("1m", ""),
        ("1m", "2024"),
        ("1d", "2024-01"),
        ("x", "2024"),
    ],
)
def test_a_period_not_of_the_ingests_kind_names_no_span(interval: str, period: str) -> None:
    assert chosen.period_span(interval, period) is None


def test_bars_files_changed_by_hand_are_brought_into_the_mirror_by_the_next_writer(
    lake_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(lake_root, "binance", [1.0, 2.0], symbol="A")
    _write(lake_root, "binance", [3.0], symbol="B")
    _write(lake_root, "yahoo", [7.0, 7.0, 7.0], symbol="B")  # loses its first bar to binance's
    bars = lake_root / "datasets" / "bars"
    shutil.rmtree(bars / "source=binance/interval=1m/symbol=A")  # a symbol removed by hand
    b = bars / "source=binance/interval=1m/symbol=B/period=2024-02/data.parquet"
    tmp = b.with_name("copy.parquet")
    shutil.copyfile(b, tmp)
    os.replace(tmp, b)  # the same rows, another file: the mirror's link no longer names it
    with caplog.at_level(logging.WARNING, logger="marketlake"), LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()
    assert "changed outside marketlake's writer" in caplog.text and "A 1m" in caplog.text
    assert _uses_mirror(lake_root)
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)
    assert [r[0] for r in _rows(lake_root, mirror=True)] == ["B", "B", "B"]
    mirrored = _mirror_file(lake_root, "binance", symbol="B")
    assert os.stat(mirrored).st_ino == os.stat(b).st_ino
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="marketlake"), LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()
    assert "changed outside" not in caplog.text  # in step again: nothing to say


def test_a_file_edited_in_place_by_hand_is_redone_and_a_ts_it_holds_twice_shows_once(lake_root: Path) -> None:
    import pyarrow.parquet as pq

    _write(lake_root, "binance", [1.0, 2.0, 3.0])
    f = lake_root / "datasets/bars/source=binance/interval=1m/symbol=A/period=2024-02/data.parquet"
    t = pq.read_table(f, partitioning=None)
    with open(f, "r+b") as out:  # in place: the same inode, so the mirror's link now shows the edit
        out.truncate(0)
        pq.write_table(t.take([0, 0, 1, 2]), out)
    mark = (lake_root / "datasets/bars_chosen/_current").stat().st_mtime_ns  # an edit a second after it (the
    os.utime(f, ns=(mark, mark + 1_000_000_000))  # clock's tick is coarse: a file's mtime may equal the mark)
    assert len(_rows(lake_root, mirror=True)) == 4  # the link, a row twice
    with LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)
    assert [r[9] for r in _rows(lake_root, mirror=True)] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("many", [False, True])
def test_a_whole_rebuild_is_not_one_change_readers_wait_for_from_end_to_end(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch, many: bool
) -> None:
    """The first bars write after an upgrade (no mirror) rebuilds the mirror before its own change's window:
    each pair is one change (`changing`), so readers (lake.consistent) wait for a pair, not for the whole
    rebuild (on a lake of 24,000 partitions, minutes with `.writes` odd throughout)."""
    from lake.writer import read_writes

    _write(lake_root, "yahoo", [1.0, 2.0, 3.0])
    _write(lake_root, "yahoo", [4.0], symbol="B")
    shutil.rmtree(lake_root / "datasets" / "bars_chosen")
    seen: list[int | None] = []
    real = chosen.rebuild

    def rebuild(*args: object, **kwargs: object) -> int:
        seen.append(read_writes(lake_root))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(chosen, "rebuild", rebuild)
    with LakeWriter.open(lake_root) as w:
        t = bars_table(dt.datetime(2024, 2, 1, tzinfo=dt.UTC), [7.0, 8.0], source_file="csv")
        parts = [{"source": "csv", "interval": "1m", "symbol": s, "period": "2024-02"} for s in ("A", "B")]
        if many:
            w.write_many(lake.BARS, [(p, t, ()) for p in parts])
        else:
            w.write(lake.BARS, parts[0], t)
    assert len(seen) == 1 and seen[0] is not None and seen[0] % 2 == 0, seen  # not inside a change
    assert _uses_mirror(lake_root)
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)


def test_a_link_refused_for_want_of_space_is_an_error_not_a_copy(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a file system without hard links (EPERM, EXDEV, EOPNOTSUPP, EMLINK) gets the copy; a full disk
    (ENOSPC) is the mirror's error: it is withdrawn, rather than written again in full onto a full disk."""
    import errno

    _write(lake_root, "yahoo", [1.0])
    copies: list[Path] = []
    real_write = chosen._write

    def write(table: object, path: Path) -> None:
        copies.append(path)
        real_write(table, path)

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chosen, "_write", write)
    monkeypatch.setattr(chosen.os, "link", full)
    with caplog.at_level(logging.WARNING, logger="marketlake"):
        _write(lake_root, "yahoo", [1.0], symbol="B")
    assert copies == [] and "withdrawn" in caplog.text, caplog.text
    assert not chosen.is_current(LakePaths(lake_root))

    def no_links(*_: object, **__: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(chosen.os, "link", no_links)
    _write(lake_root, "yahoo", [1.0], symbol="C")  # rebuilt, by copies
    assert copies and chosen.is_current(LakePaths(lake_root))
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)


def _walk_not_rebuild(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer brings a mirror marked whole up to date by a walk (never a whole rebuild): whole again."""

    def no_rebuild(*_: object, **__: object) -> int:
        raise AssertionError("a mirror marked whole is walked, not rebuilt whole")

    monkeypatch.setattr(chosen, "rebuild", no_rebuild)
    with LakeWriter.open(root) as w:
        w.bring_mirror_up_to_date()
    assert _uses_mirror(root)


def test_a_writer_that_does_not_keep_the_mirror_leaves_it_not_whole(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older marketlake's writer (or another checkout's) changes bars files and the lake's write sequence
    but not the mirror: the mirror's mark names the sequence it was made whole at, so `bars` reads the window
    until the next writer of this version walks the folders (no whole rebuild) and marks it again."""
    import struct

    import pyarrow.parquet as pq

    from lake.writer import WRITES_FILE, read_writes

    _write(lake_root, "binance", [1.0, 2.0])
    assert _uses_mirror(lake_root)
    f = lake_root / "datasets/bars/source=binance/interval=1m/symbol=A/period=2024-02/data.parquet"
    tmp = f.with_name("new.parquet")
    pq.write_table(bars_table(dt.datetime(2024, 2, 1, tzinfo=dt.UTC), [5.0, 6.0, 7.0], source_file="b"), tmp)
    os.replace(tmp, f)  # what the older writer does: a new file, and the sequence two on
    writes = read_writes(lake_root)
    assert writes is not None
    (lake_root / WRITES_FILE).write_bytes(struct.pack("<Q", writes + 2))
    assert not chosen.is_current(LakePaths(lake_root))
    assert not _uses_mirror(lake_root)
    con = lake.connect(lake_root, read_only=True, settings=Settings())
    try:
        assert [r[0] for r in con.execute("SELECT close FROM bars ORDER BY ts").fetchall()] == [5.0, 6.0, 7.0]
    finally:
        con.close()

    _walk_not_rebuild(lake_root, monkeypatch)
    assert [r[9] for r in _rows(lake_root, mirror=True)] == [5.0, 6.0, 7.0]


def test_a_lock_that_changed_bars_is_not_marked_whole_by_a_later_change_of_another_dataset(
    lake_root: Path,
) -> None:
    """Once a lock changed bars, the mirror is whole again only at the lock's end (its flush and mark), not
    after a later change window of another dataset; nor does a lock that found the mirror's mark of an older
    sequence (a writer that does not keep it) mark it whole before its walk."""
    import struct

    from lake.writer import WRITES_FILE, read_writes

    _write(lake_root, "binance", [1.0, 2.0])
    with LakeWriter.open(lake_root) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "B", "period": "2024-02"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 2, 1, tzinfo=dt.UTC), [3.0], source_file="b"))
        with w.changing():
            pass
        assert not _uses_mirror(lake_root)
    assert _uses_mirror(lake_root)
    writes = read_writes(lake_root)
    assert writes is not None
    (lake_root / WRITES_FILE).write_bytes(struct.pack("<Q", writes + 2))  # an older writer's change
    with LakeWriter.open(lake_root) as w:
        with w.changing():
            pass
        assert not _uses_mirror(lake_root)
        w.bring_mirror_up_to_date()  # the walk finds nothing changed: whole again, at once
        assert _uses_mirror(lake_root)
        with w.changing():
            pass
        assert _uses_mirror(lake_root)


def test_the_mark_is_what_a_writer_made_before_the_sequence_reads_and_such_a_mark_is_walked_not_rebuilt(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_current` holds the format alone, as the writer of the release before the sequence reads it (a mark of
    more lines made it rebuild the whole mirror at every write); a mirror that writer marked whole has no
    sequence: not whole to readers until a writer of this version walks it (no rebuild) and names one."""
    _write(lake_root, "binance", [1.0, 2.0])
    mirror = lake_root / "datasets/bars_chosen"
    assert (mirror / "_current").read_text() == "1\n"
    (mirror / "_current_writes").unlink()  # as that writer leaves it
    assert not _uses_mirror(lake_root) and chosen.is_current_format(LakePaths(lake_root))

    _walk_not_rebuild(lake_root, monkeypatch)


def test_a_sequence_that_cannot_be_written_ends_the_lock_well_and_leaves_the_mirror_to_the_next_walk(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a lake shared by users, one may not write the file another made: the lock that changed other
    datasets ends without an error, the mirror not whole to readers (the window, correct), until a writer
    that may write it walks it."""
    _write(lake_root, "binance", [1.0, 2.0])

    def refused(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(chosen, "remark", refused)
        with LakeWriter.open(lake_root) as w, w.changing():
            pass
    assert not _uses_mirror(lake_root)
    assert chosen.out_of_step(LakePaths(lake_root)) == set()
    with LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()
    assert _uses_mirror(lake_root)


def test_a_lock_that_changes_no_bars_keeps_the_mirror_whole_and_its_marks_time(lake_root: Path) -> None:
    _write(lake_root, "binance", [1.0, 2.0])
    mark = lake_root / "datasets/bars_chosen/_current"
    os.utime(mark, ns=(1_000_000_000, 1_000_000_000))  # (told apart from a mark written anew)
    with LakeWriter.open(lake_root) as w:
        with w.changing():
            assert not _uses_mirror(lake_root)  # a change of another dataset (a run's record, the sessions)
        # its window over, the sequence moved on: connections made during the rest of the lock read the mirror
        assert _uses_mirror(lake_root)
        assert mark.stat().st_mtime_ns == 1_000_000_000
        with w.changing():
            pass
        assert _uses_mirror(lake_root)
    assert _uses_mirror(lake_root)
    assert mark.stat().st_mtime_ns == 1_000_000_000
    with LakeWriter.open(lake_root):
        pass  # a lock that changes nothing writes nothing
    assert mark.stat().st_mtime_ns == 1_000_000_000 and _uses_mirror(lake_root)


def _many_pairs(root: Path, sources: list[str], symbols: int, closes: list[float]) -> None:
    """One write_many per source of `symbols` symbols x two periods (a day file's shape: many pairs at
    once), each source's bars starting a minute later than the one before (overlapping windows)."""
    for k, source in enumerate(sources):
        writes = []
        for i in range(symbols):
            for period, start in (
                ("2024-01", dt.datetime(2024, 1, 31, 23, 50, tzinfo=dt.UTC)),
                ("2024-02", dt.datetime(2024, 2, 1, tzinfo=dt.UTC)),
            ):
                table = bars_table(
                    start + dt.timedelta(minutes=k), [c + i for c in closes], source_file=f"{source}.csv"
                )
                part = {"source": source, "interval": "1m", "symbol": f"S{i:03d}", "period": period}
                writes.append((part, table, [{"file": f"{source}.csv"}]))
        with LakeWriter.open(root) as w:
            w.write_many(lake.BARS, writes)


def test_many_pairs_brought_up_to_date_in_threads_give_the_windows_rows(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of many pairs (a Polygon day file's thousands of tickers) is mirrored by threads
    (chosen.update): the same rows as the precedence window, hard links where a file wins whole, copies
    of the winners where sources overlap, and a rewrite that makes a source lose every row removes its
    files."""
    calls: list[int] = []
    real = chosen.ThreadPoolExecutor

    def counted(n: int, thread_name_prefix: str = "") -> object:
        calls.append(n)
        return real(n, thread_name_prefix=thread_name_prefix)

    monkeypatch.setattr(chosen, "ThreadPoolExecutor", counted)
    monkeypatch.setattr(chosen, "PAIRS_PER_THREAD", 2)
    _many_pairs(lake_root, ["yahoo", "binance", "polygon"], 12, [1.0, 2.0, 3.0])
    assert calls and max(calls) == chosen.MIRROR_THREADS  # the threads were used
    assert _uses_mirror(lake_root)
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)
    assert len(_rows(lake_root, mirror=False)) == 12 * 2 * 5  # minutes 0..4 of each pair and period
    # binance (minutes 1..3; first for crypto) wins whole: a hard link; yahoo (0..2) keeps minute 0 only,
    # in a file of its own
    for period in ("2024-01", "2024-02"):
        rel = f"interval=1m/symbol=S003/period={period}/data.parquet"
        bars = lake_root / "datasets" / "bars"
        binance = os.stat(_mirror_file(lake_root, "binance", period, "S003")).st_ino
        assert binance == os.stat(bars / "source=binance" / rel).st_ino
        yahoo = os.stat(_mirror_file(lake_root, "yahoo", period, "S003")).st_ino
        assert yahoo != os.stat(bars / "source=yahoo" / rel).st_ino
    # binance now covers minutes 0..6: yahoo and polygon lose every row of every pair, and their files go
    _many_pairs(lake_root, ["binance"], 12, [7.0] * 7)
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)
    left = list((lake_root / "datasets" / "bars_chosen").glob("source=[!_]*/*/*/*/data.parquet"))
    assert left and {p.parts[-5] for p in left} == {"source=binance"}


def test_a_pair_that_fails_in_a_thread_fails_the_update_and_leaves_the_window_in_use(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(chosen, "PAIRS_PER_THREAD", 2)
    real = chosen._apply

    def failing(bars: Path, mirror: Path, sources: list[str], pair: tuple[str, str], *a: object) -> None:
        if pair[1] == "S005":
            raise OSError(28, "No space left on device")
        real(bars, mirror, sources, pair, *a)  # type: ignore[arg-type]

    _many_pairs(lake_root, ["binance"], 10, [1.0, 2.0])
    monkeypatch.setattr(chosen, "_apply", failing)
    with caplog.at_level(logging.WARNING, logger="marketlake"):
        _many_pairs(lake_root, ["polygon"], 10, [5.0, 6.0])
    assert "bars_chosen" in caplog.text and "disk is full" in caplog.text
    assert not chosen.is_current(LakePaths(lake_root)) and not _uses_mirror(lake_root)
    monkeypatch.undo()
    with LakeWriter.open(lake_root) as w:
        w.bring_mirror_up_to_date()
    assert _uses_mirror(lake_root)
    assert _rows(lake_root, mirror=True) == _rows(lake_root, mirror=False)

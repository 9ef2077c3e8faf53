"""rl.episodes._read_store (the feature store's files read with pyarrow, no SQL) gives exactly the rows and
columns of its SQL reference, tests/unit/sql/period_store_reference.sql, run by DuckDB over the same files
and bounds: for any period bounds, across a year boundary (two files of a symbol), two symbols, with the
store's row groups and with small ones (so that a period's read skips some unread). And load_period's
direct read of the same files into its arrays (rl.episodes._load_store) gives what the general path
(_assemble over _read_store's batches) gives, or hands over to it when a row needs dropping."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake.config import Settings
from lake.schemas import FEATURES
from rl.episodes import FEATURES as INPUTS
from rl.episodes import (
    PRICES,
    MarketData,
    _assemble,
    _load_store,
    _market_data,
    _read_store,
    _store_files,
    _store_pieces,
)
from tests.conftest import bars_table
from tests.unit.test_env_episodes import walk_closes, write

UTC = dt.UTC
T0 = dt.datetime(2023, 12, 31, 12, tzinfo=UTC)  # 36 hours of 1m bars: two year partitions a symbol
N = 36 * 60
REFERENCE = (Path(__file__).parent / "sql" / "period_store_reference.sql").read_text()


@pytest.fixture(scope="module", params=[FEATURES.row_group_rows, 97], ids=["store's row groups", "97 rows"])
def stored(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    from features import store

    root = tmp_path_factory.mktemp("store") / "lake"
    btc = bars_table(T0, walk_closes(N, 1, 40_000.0))
    gap = np.ones(N, dtype=bool)
    gap[900:960] = False  # an hour missing: a second segment, its warm-up in the middle of a row group
    write(root, "BTCUSDT", btc.filter(pa.array(gap)))
    write(root, "ETHUSDT", bars_table(T0 + dt.timedelta(hours=3), walk_closes(N - 180, 2, 2_000.0)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "FEATURES", dataclasses.replace(FEATURES, row_group_rows=request.param))
        store.refresh(root, Settings())
    return root


def _both(root: Path, start: dt.datetime, end: dt.datetime) -> tuple[pa.Table, pa.Table]:
    names = ["ETHUSDT", "BTCUSDT"]
    files = _store_files(root, names, "1m", start, end)
    params = {"files": files, "symbols": names, "start_at": start, "end_at": end}
    ours = list(_read_store(params))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    ref = con.execute(REFERENCE, params).to_arrow_table() if files else None
    con.close()
    if ref is None:
        return pa.table({}), pa.table({})
    got = pa.Table.from_batches(ours, schema=ours[0].schema) if ours else ref.schema.empty_table()
    return got, ref


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(min_value=-60, max_value=N + 60),
    length=st.integers(min_value=0, max_value=N + 120),
)
def test_the_store_reader_equals_its_sql_reference(stored: Path, start: int, length: int) -> None:
    begin = T0 + dt.timedelta(minutes=start)
    got, ref = _both(stored, begin, begin + dt.timedelta(minutes=length))
    assert got.num_rows == ref.num_rows
    if ref.num_rows == 0:
        return
    assert got.column_names == ref.column_names
    for name in ref.column_names:
        a, b = got.column(name).to_pylist(), ref.column(name).to_pylist()
        assert a == b, name


def test_the_whole_range_holds_both_symbols_in_order(stored: Path) -> None:
    got, ref = _both(stored, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3))
    assert got.num_rows == ref.num_rows > 2 * 1000
    sym = got.column("sym").to_pylist()
    assert sym == sorted(sym) and set(sym) == {0, 1}  # ETHUSDT (0) first, as asked
    years = {dt.datetime.fromtimestamp(t / 1e6, UTC).year for t in got.column("ts_us").to_pylist()}
    assert years == {2023, 2024}


def test_small_row_groups_are_skipped_outside_the_period(stored: Path) -> None:
    import pyarrow.parquet as pq

    files = _store_files(stored, ["BTCUSDT"], "1m", T0, T0 + dt.timedelta(days=2))
    groups = sum(pq.ParquetFile(f).metadata.num_row_groups for f in files)
    read: list[int] = []
    real = pq.ParquetFile.read_row_groups

    def spy(self: pq.ParquetFile, row_groups: list[int], *args: object, **kwargs: object) -> pa.Table:
        read.extend(row_groups)
        return real(self, row_groups, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pq.ParquetFile, "read_row_groups", spy)
        begin = T0 + dt.timedelta(hours=20)
        _both(stored, begin, begin + dt.timedelta(hours=2))
    assert read
    if groups > len(files):  # small row groups: two hours of a symbol's 36 read a few of them
        assert len(read) < groups / 2


NAMES = ["ETHUSDT", "BTCUSDT"]


def test_a_warm_up_inside_a_row_group_is_masked_out(stored: Path) -> None:
    """BTCUSDT's second segment starts inside a row group: that group's period rows are not consecutive
    (the readers' mask, not a slice, serves it; the tests below cover both)."""
    begin, end = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3)
    params = {
        "files": _store_files(stored, NAMES, "1m", begin, end),
        "symbols": NAMES,
        "start_at": begin,
        "end_at": end,
    }
    pieces = list(_store_pieces(params))
    assert any(not isinstance(p.keep, slice) for p in pieces)
    assert any(isinstance(p.keep, slice) for p in pieces)


def _general(params: dict[str, object], norm: object = None) -> MarketData:
    batches = list(_read_store(params))
    start, end = params["start_at"], params["end_at"]
    return _assemble(NAMES, ["crypto", "crypto"], "1m", "train", batches, norm, [], start, end)  # type: ignore[arg-type]


def _direct(params: dict[str, object], norm: object = None) -> MarketData | None:
    got = _load_store(params, norm)  # type: ignore[arg-type]
    if got is None:
        return None
    start, end = params["start_at"], params["end_at"]
    return _market_data(NAMES, ["crypto", "crypto"], "1m", "train", got[0], got[1], [], start, end)


ARRAYS = ("ts", "available_at", "symbol_idx", "segment_id", "session_end", "at_close", "day", *PRICES)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(min_value=-60, max_value=N + 60),
    length=st.integers(min_value=0, max_value=N + 120),
)
def test_the_direct_read_equals_the_general_path(stored: Path, start: int, length: int) -> None:
    begin = T0 + dt.timedelta(minutes=start)
    end = begin + dt.timedelta(minutes=length)
    params = {
        "files": _store_files(stored, NAMES, "1m", begin, end),
        "symbols": NAMES,
        "start_at": begin,
        "end_at": end,
    }
    direct = _direct(params)
    if direct is None:  # no row in the period: the general path has none either
        assert not any(b.num_rows for b in _read_store(params))
        return
    general = _general(params)
    for name in ARRAYS:
        a, b = getattr(direct, name), getattr(general, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert direct.features.dtype == np.float32 and direct.features.flags["C_CONTIGUOUS"]
    assert direct.features.shape == (general.n_rows, len(INPUTS))
    # the statistics are summed row group by row group: the same to rounding
    np.testing.assert_allclose(direct.norm.mean, general.norm.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(direct.norm.std, general.norm.std, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(direct.features, general.features, rtol=0, atol=1e-5)
    # with given statistics (validation, test) the inputs are the same to the bit
    again = _direct(params, general.norm)
    assert again is not None and np.array_equal(again.features, general.features)
    assert again.norm is general.norm


def test_rows_to_drop_hand_over_to_the_general_path(stored: Path, tmp_path: Path) -> None:
    """A NULL core input or a price <= 0 in the store (the general path drops the row): the direct read
    declines, and load_period's answer is the general path's."""
    import shutil

    import pyarrow.parquet as pq

    root = tmp_path / "lake"
    shutil.copytree(stored, root, symlinks=True)
    begin, end = T0, T0 + dt.timedelta(days=2)
    params = {
        "files": _store_files(root, NAMES, "1m", begin, end),
        "symbols": NAMES,
        "start_at": begin,
        "end_at": end,
    }
    assert _direct(params) is not None
    f = str(params["files"][0])  # type: ignore[index]
    original = pq.read_table(f)
    meta = pq.ParquetFile(f).metadata
    layout = {"row_group_size": meta.row_group(0).num_rows, "compression": "none"}
    for column, value in (("ret_1", None), ("close", 0.0), ("rsi_14", float("nan"))):
        values = original.column(column).to_pylist()
        values[len(values) // 2] = value
        t = original.set_column(
            original.schema.get_field_index(column), column, pa.array(values, pa.float64())
        )
        pq.write_table(t, f, **layout)
        assert _direct(params) is None, column
        general = _general(params)
        assert general.n_rows == sum(b.num_rows for b in _read_store(params)) - 1, column
    pq.write_table(original, f, **layout)
    assert _direct(params) is not None


def test_a_damaged_store_file_is_one_clear_error(stored: Path, tmp_path: Path) -> None:
    """A store file cut short (its footer gone, or its pages): a MarketlakeError naming the failed read,
    from the direct read and from the general path alike."""
    import shutil

    from lake.errors import MarketlakeError

    root = tmp_path / "lake"
    shutil.copytree(stored, root, symlinks=True)
    begin, end = T0, T0 + dt.timedelta(days=2)
    params = {
        "files": _store_files(root, NAMES, "1m", begin, end),
        "symbols": NAMES,
        "start_at": begin,
        "end_at": end,
    }
    f = Path(str(params["files"][0]))  # type: ignore[index]
    data = f.read_bytes()
    for cut in (data[: len(data) // 2], data[:100] + data[-(len(data) // 2) :]):
        f.write_bytes(cut)
        with pytest.raises(MarketlakeError, match="reading the feature store failed"):
            _direct(params)


ALL = ("features", *ARRAYS)


def _whole(root: Path) -> dict[str, object]:
    begin, end = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3)
    return {
        "files": _store_files(root, NAMES, "1m", begin, end),
        "symbols": NAMES,
        "start_at": begin,
        "end_at": end,
    }


def test_an_arena_is_handed_out_again_only_when_no_array_of_it_is_left() -> None:
    """rl.episodes._Arenas: any array made from a mapping (a view, a strided view, a buffer export) keeps it
    out of the pool; once the last one goes, the same memory is handed out again."""
    from numpy.lib.stride_tricks import as_strided

    from rl.episodes import _Arenas

    pool = _Arenas()
    keepers: tuple[Callable[[np.ndarray], Any], ...] = (
        lambda x: x[100:200],
        lambda x: x.view(np.float64)[3:],
        lambda x: as_strided(x[:64], shape=(8, 8), strides=(8, 1)),
        lambda x: x[5:9].data,  # a memoryview
        lambda x: pa.py_buffer(x),
    )
    for keeper in keepers:
        a = pool.take(10_000)
        a[:] = 7
        address = a.ctypes.data
        held = keeper(a)
        del a
        b = pool.take(10_000)
        assert b.ctypes.data != address  # another mapping: `held` is never written
        b[:] = 1
        assert set(np.frombuffer(held, np.uint8).tolist()) == {7}
        del b, held
        c = pool.take(10_000)  # both free now: one of them again, no new mapping
        assert len(pool._kept) == 2 and c.ctypes.data in {
            np.frombuffer(m, np.uint8).ctypes.data for m in pool._kept
        }
        del c
    assert pool.reused == 3 * 5 - 2  # every take but the first two
    big = pool.take(10 * 12_288)  # too small a mapping is never handed out for a larger request
    assert big.nbytes >= 10 * 12_288 and pool.reused == 13
    pool.clear()
    assert not pool._kept and big[0] == big[0]  # arrays outlive the pool's forgetting them


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.lists(st.sampled_from([None, *ALL]), min_size=2, max_size=6), norm_given=st.booleans())
def test_arrays_a_caller_holds_are_never_overwritten_by_a_later_read(
    stored: Path, keep: list[str | None], norm_given: bool
) -> None:
    """Reads one after the other, each keeping one of its arrays (or a slice of it, or nothing): every
    array still held keeps its values, whatever the later reads reuse; and each read equals the first."""
    from rl.episodes import ARENAS

    params = _whole(stored)
    first = _direct(params)
    assert first is not None
    expected = {name: getattr(first, name).copy() for name in ALL}
    norm = first.norm if norm_given else None
    del first
    held: list[tuple[str, np.ndarray, np.ndarray]] = []
    reused = ARENAS.reused
    for i, name in enumerate(keep):
        d = _direct(params, norm)
        assert d is not None
        for n in ALL if norm_given else [n for n in ALL if n != "features"]:
            assert np.array_equal(getattr(d, n), expected[n]), n
        if name is not None:
            arr = getattr(d, name)
            kept = arr[i % 3 :] if i % 2 else arr
            held.append((name, kept, kept.copy()))
        del d
        for n, kept, copy in held:
            assert np.array_equal(kept, copy), n
    if keep.count(None) >= 2:  # nothing held from one read to the next: the next read reused its memory
        assert ARENAS.reused > reused


def _equal_to_reference(root: Path, begin: dt.datetime, end: dt.datetime) -> int:
    got, ref = _both(root, begin, end)
    assert got.num_rows == ref.num_rows
    for name in ref.column_names:
        assert got.column(name).to_pylist() == ref.column(name).to_pylist(), name
    return ref.num_rows


def test_a_footer_is_used_again_only_with_the_same_footer_bytes(stored: Path, tmp_path: Path) -> None:
    """rl.episodes.FOOTERS: a store file read again is not parsed again; one replaced by another file (other
    rows, other row groups), or rewritten in place at the same size with its modification time put back,
    is parsed afresh, and the reads equal the SQL reference (DuckDB reading the files itself) each time."""
    import os
    import shutil

    import pyarrow.parquet as pq

    from rl.episodes import FOOTERS

    root = tmp_path / "lake"
    shutil.copytree(stored, root, symlinks=True)
    begin, end = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3)
    rows = _equal_to_reference(root, begin, end)
    hits = FOOTERS.hits
    assert _equal_to_reference(root, begin, end) == rows
    assert FOOTERS.hits > hits  # read again: served from the cache
    f = Path(_store_files(root, ["BTCUSDT"], "1m", begin, end)[-1])
    original = pq.read_table(f)
    # replaced (a rename, as the writer does) by a file of other rows in other row groups
    tmp = f.with_name("new.parquet")
    pq.write_table(original.slice(100), tmp, row_group_size=50, compression="none")
    os.replace(tmp, f)
    others = len(_store_files(root, NAMES, "1m", begin, end)) - 1
    hits = FOOTERS.hits
    assert _equal_to_reference(root, begin, end) == rows - 100
    assert FOOTERS.hits == hits + others  # every file but the replaced one
    # rewritten in place: the same size, other values (so other statistics), its mtime put back
    stat = f.stat()
    close = original.schema.get_field_index("close")
    changed = original.slice(100).set_column(
        close, original.schema.field(close), pa.compute.multiply(original.column("close").slice(100), 1.5)
    )
    pq.write_table(changed, f, row_group_size=50, compression="none")
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert f.stat().st_size == stat.st_size and f.stat().st_mtime_ns == stat.st_mtime_ns
    hits = FOOTERS.hits
    assert _equal_to_reference(root, begin, end) == rows - 100
    assert FOOTERS.hits == hits + others
    got, _ = _both(root, begin, end)
    btc = got.filter(pa.compute.equal(got.column("sym"), 1))
    assert btc.column("close").to_pylist()[-1] == pytest.approx(1.5 * original.column("close")[-1].as_py())


def test_the_footer_cache_counts_footers_as_parsed_and_keeps_within_its_bound(stored: Path) -> None:
    """rl.episodes._Footers: what is counted against MAX_BYTES is a footer's parsed size (PARSED_PER_BYTE
    times its stored bytes), the least recently used forgotten first, so the memory held stays bounded."""
    from rl.episodes import _footer_bytes, _Footers

    begin, end = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3)
    files = _store_files(stored, NAMES, "1m", begin, end)
    assert len(files) >= 3
    sizes = []
    for f in files:
        source = pa.memory_map(f)
        raw = _footer_bytes(source)
        source.close()
        assert raw is not None
        sizes.append(len(raw))
    cache = _Footers()
    cache.MAX_BYTES = (sizes[-1] + sizes[-2]) * cache.PARSED_PER_BYTE  # room for the last two, as parsed
    for f in files:
        cache.open(f)[0].reader.close()
    assert list(cache._kept) == files[-2:]
    assert cache._bytes == (sizes[-1] + sizes[-2]) * cache.PARSED_PER_BYTE <= cache.MAX_BYTES

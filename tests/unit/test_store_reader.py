"""rl.episodes._read_store (the feature store's files read with pyarrow, no SQL) gives exactly the rows and
columns of its SQL reference, tests/unit/sql/period_store_reference.sql, run by DuckDB over the same files
and bounds: for any period bounds, across a year boundary (two files of a symbol), two symbols."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake.config import Settings
from rl.episodes import _read_store, _store_files
from tests.conftest import bars_table
from tests.unit.test_env_episodes import walk_closes, write

UTC = dt.UTC
T0 = dt.datetime(2023, 12, 31, 12, tzinfo=UTC)  # 36 hours of 1m bars: two year partitions a symbol
N = 36 * 60
REFERENCE = (Path(__file__).parent / "sql" / "period_store_reference.sql").read_text()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from features import store

    root = tmp_path_factory.mktemp("store") / "lake"
    write(root, "BTCUSDT", bars_table(T0, walk_closes(N, 1, 40_000.0)))
    write(root, "ETHUSDT", bars_table(T0 + dt.timedelta(hours=3), walk_closes(N - 180, 2, 2_000.0)))
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

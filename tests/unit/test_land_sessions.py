"""`ingest.sessions.land`: the calendar brought up to date from the bars written under the lock, without
reading the lake's other bars files; the full scan only when the folders show bars the calendar misses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lake
from features import calendars
from ingest import sessions
from ingest.sessions import land
from lake.paths import LakePaths
from lake.writer import LakeWriter, dedup_sort
from tests.conftest import bars_table

UTC = dt.UTC


def _write(w: LakeWriter, symbol: str, start: dt.datetime, n: int = 10) -> None:
    part = {"source": "binance", "interval": "1m", "symbol": symbol, "period": f"{start:%Y-%m}"}
    w.write(lake.BARS, part, bars_table(start, [1.0] * n))


def _years(root: Path) -> list[int]:
    return sorted(sessions.session_years(LakePaths(root)))


def test_years_between_the_old_bars_and_the_new_are_filled(lake_root: Path) -> None:
    with land(lake_root) as w:
        _write(w, "BTCUSDT", dt.datetime(2020, 6, 1, tzinfo=UTC))
    assert _years(lake_root) == [2020]
    with land(lake_root) as w:
        _write(w, "ETHUSDT", dt.datetime(2023, 6, 1, tzinfo=UTC))
    assert _years(lake_root) == [2020, 2021, 2022, 2023]


def test_the_first_bar_on_new_years_night_brings_the_new_york_year_before(lake_root: Path) -> None:
    with land(lake_root) as w:
        _write(w, "BTCUSDT", dt.datetime(2024, 1, 1, 0, 30, tzinfo=UTC))
    assert _years(lake_root) == [2023, 2024]


def test_landing_reads_no_bars_file_when_the_calendar_covers_the_folders(lake_root: Path) -> None:
    with land(lake_root) as w:
        for i in range(5):
            _write(w, f"S{i}USDT", dt.datetime(2024, 3, 1, tzinfo=UTC))
    with (
        mock.patch.object(calendars, "bar_range", side_effect=AssertionError("scanned every bars file")),
        land(lake_root) as w,
    ):
        _write(w, "NEWUSDT", dt.datetime(2024, 4, 1, tzinfo=UTC))
        _write(w, "S0USDT", dt.datetime(2024, 3, 1, tzinfo=UTC))  # unchanged
    assert _years(lake_root) == [2024]


def test_a_run_killed_before_its_calendar_is_completed_by_any_later_run(lake_root: Path) -> None:
    # bars of 2021 landed by a run killed before its calendar (no land(): no sessions)
    with LakeWriter.open(lake_root) as w:
        _write(w, "BTCUSDT", dt.datetime(2021, 5, 1, tzinfo=UTC))
    with land(lake_root) as w:
        _write(w, "ETHUSDT", dt.datetime(2024, 5, 1, tzinfo=UTC))
    assert _years(lake_root) == [2021, 2022, 2023, 2024]
    # and a later run with nothing new at all completes one too
    with LakeWriter.open(lake_root) as w:
        _write(w, "BTCUSDT", dt.datetime(2019, 5, 1, tzinfo=UTC))
    with land(lake_root):
        pass
    assert _years(lake_root) == [2019, 2020, 2021, 2022, 2023, 2024]


def test_a_killed_runs_bars_on_new_years_night_bring_the_year_before(lake_root: Path) -> None:
    with land(lake_root) as w:
        _write(w, "BTCUSDT", dt.datetime(2024, 2, 1, 12, tzinfo=UTC))
    assert _years(lake_root) == [2024]
    with LakeWriter.open(lake_root) as w:  # killed before its calendar
        _write(w, "ETHUSDT", dt.datetime(2024, 1, 1, 0, 30, tzinfo=UTC))
    with land(lake_root) as w:
        _write(w, "BTCUSDT", dt.datetime(2024, 3, 1, 12, tzinfo=UTC))
    assert _years(lake_root) == [2023, 2024]


def test_januarys_files_older_than_the_calendar_are_not_read(lake_root: Path) -> None:
    with land(lake_root) as w:
        _write(w, "BTCUSDT", dt.datetime(2024, 1, 2, tzinfo=UTC))
    assert _years(lake_root) == [2024]
    with (
        mock.patch.object(sessions.pq, "ParquetFile", side_effect=AssertionError("read a bars file")),
        land(lake_root) as w,
    ):
        _write(w, "ETHUSDT", dt.datetime(2024, 5, 1, tzinfo=UTC))
    assert _years(lake_root) == [2024]


def test_the_same_sessions_as_the_full_scan(lake_root: Path, tmp_path: Path) -> None:
    starts = [dt.datetime(2022, 12, 31, 23, tzinfo=UTC), dt.datetime(2024, 2, 1, tzinfo=UTC)]
    with land(lake_root) as w:
        for i, s in enumerate(starts):
            _write(w, f"S{i}USDT", s, n=200)
    other = tmp_path / "other"
    with LakeWriter.open(other) as w:
        for i, s in enumerate(starts):
            _write(w, f"S{i}USDT", s, n=200)
        calendars.ensure_sessions(w)
    con, ref = lake.connect(lake_root), lake.connect(other)
    q = "SELECT * FROM trading_sessions WHERE calendar = 'XNYS' ORDER BY ALL"
    assert con.sql(q).fetchall() == ref.sql(q).fetchall()


# --- the writer's fast path for rows already in order ------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=30), st.booleans())
def test_dedup_sort_takes_sorted_rows_as_they_are_and_equals_the_general_path(
    minutes: list[int], keep_sorted: bool
) -> None:
    if keep_sorted:
        minutes = sorted(set(minutes))
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    table = bars_table(t0, [float(i + 1) for i in range(len(minutes))])
    table = table.set_column(
        1, "ts", pa.array([t0 + dt.timedelta(minutes=m) for m in minutes], type=table.schema.field("ts").type)
    )
    got = dedup_sort(lake.BARS, table)
    with mock.patch("lake.writer._strictly_sorted", return_value=False):
        want = dedup_sort(lake.BARS, table)
    assert got.equals(want)


@pytest.mark.parametrize("n", [0, 1])
def test_dedup_sort_of_tiny_tables(n: int) -> None:
    table = bars_table(dt.datetime(2024, 1, 1, tzinfo=UTC), [1.0]).slice(0, n)
    assert dedup_sort(lake.BARS, table).equals(table)


@pytest.mark.parametrize("year", [1990, 2001, 2008, 2012, 2020, 2023, 2024, dt.date.today().year + 1])
def test_a_year_cut_from_the_wide_calendar_is_that_years_own_calendar(year: int) -> None:
    calendars.xnys_year.cache_clear()
    cut = calendars.xnys_year(year)
    calendars.xnys_year.cache_clear()
    with mock.patch.object(calendars, "_wide_xnys", return_value=None):
        own = calendars.xnys_year(year)
    calendars.xnys_year.cache_clear()
    assert cut.num_rows > 240 and cut.equals(own)

"""The quality report's fast paths (bar_file_days, bar_day_stats, the narrowed checks of `marketlake check`)
against the straightforward definitions they replace (tests/unit/sql/reference/: the former bar_quality, symbol_quality
and checks, kept verbatim), on lakes built with every kind of trouble: two sources over the same bars, a bar
stored twice in two periods, files written around the writer (out of order, a ts twice in one file),
available_at off its interval, prices that are not a bar, stock bars before, inside and after the session,
on a holiday, and gaps."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lake
from ingest.sessions import land
from lake.config import Settings
from lake.connect import check_files, sql_dir
from lake.schemas import UTC_TS

UTC = dt.UTC
REFERENCE = Path(__file__).parent / "sql" / "reference"
# 2024-07-03 is an early close (13:00 New York), 2024-07-04 a holiday; 2024-07-31/08-01 a month boundary
# inside a New York day (20:00 New York is midnight UTC)
DAYS = [
    dt.date(2024, 7, 3),
    dt.date(2024, 7, 4),
    dt.date(2024, 7, 5),
    dt.date(2024, 7, 31),
    dt.date(2024, 8, 1),
]
SOURCES = ["polygon", "yahoo", "vendorx"]


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "asset_class": [r["asset_class"] for r in rows],
            "ts": pa.array([r["ts"] for r in rows], type=UTC_TS),
            "available_at": pa.array([r["available_at"] for r in rows], type=UTC_TS),
            "open": [r["open"] for r in rows],
            "high": [r["high"] for r in rows],
            "low": [r["low"] for r in rows],
            "close": [r["close"] for r in rows],
            "volume": [1.0] * len(rows),
            "trades": pa.array([1] * len(rows), type=pa.int64()),
            "source_file": [r["source_file"] for r in rows],
        }
    )


@st.composite
def bar_rows(draw: st.DrawFn, asset_class: str, step: int) -> list[dict[str, Any]]:
    """Bars of one series: runs of consecutive bars (so that gaps, session edges and month edges appear)."""
    rows: list[dict[str, Any]] = []
    odd_spans = draw(st.integers(0, 4)) == 0  # some series have bars whose available_at is off
    for _ in range(draw(st.integers(1, 3))):
        day = draw(st.sampled_from(DAYS))
        # 07:00 .. 01:00 UTC next day covers pre-market, the session, after hours and the UTC midnight
        start = dt.datetime(day.year, day.month, day.day, 7, tzinfo=UTC) + dt.timedelta(
            minutes=step * draw(st.integers(0, 18 * 60 // step))
        )
        n = draw(st.integers(1, 40))
        for i in range(n):
            ts = start + dt.timedelta(minutes=step * i)
            span = dt.timedelta(minutes=step)
            if odd_spans and draw(st.integers(0, 10)) == 0:
                span = dt.timedelta(minutes=draw(st.sampled_from([0, step + 1, 2 * step])))
            price = 100.0 + i
            bad = draw(st.integers(0, 40)) == 0
            rows.append(
                {
                    "asset_class": asset_class,
                    "ts": ts,
                    "available_at": ts + span,
                    "open": price,
                    "high": price - 1 if bad else price,
                    "low": price,
                    "close": price,
                    "source_file": draw(st.sampled_from(["a.csv", "b.csv"])),
                }
            )
    return rows


def _period(ts: dt.datetime) -> str:
    return f"{ts.year:04d}-{ts.month:02d}"


def write_series(
    root: Path, source: str, symbol: str, interval: str, rows: list[dict[str, Any]], mischief: int
) -> None:
    """Through the writer, one partition per month; then, by `mischief`, a file rewritten around it."""
    by_period: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_period.setdefault(_period(r["ts"]), []).append(r)
    with land(root) as w:
        for period, part_rows in sorted(by_period.items()):
            part = {"source": source, "interval": interval, "symbol": symbol, "period": period}
            w.write(lake.BARS, part, _table(part_rows))
        if mischief == 1 and by_period:  # the same bars again in another month's partition
            period, part_rows = next(iter(sorted(by_period.items())))
            other = "2024-06" if period != "2024-06" else "2024-09"
            part = {"source": source, "interval": interval, "symbol": symbol, "period": other}
            w.write(lake.BARS, part, _table(part_rows[: max(1, len(part_rows) // 2)]))
    if mischief in (2, 3) and by_period:
        period = sorted(by_period)[0]
        f = (
            root
            / f"datasets/bars/source={source}/interval={interval}/symbol={symbol}/period={period}/data.parquet"
        )
        t = pq.read_table(f, partitioning=None)
        if t.num_rows >= 2:
            order = list(range(t.num_rows))
            if mischief == 2:  # two rows swapped: out of order
                order[0], order[1] = order[1], order[0]
            else:  # a row twice in one file
                order.insert(1, 0)
            pq.write_table(t.take(order), f)
            with land(root) as w:  # the next bars writer brings the `bars` mirror (lake/chosen.py) into
                w.bring_mirror_up_to_date()  # step with the file edited by hand (else `bars` shows its row twice)


series_strategy = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "BTCUSDT"]),
        st.sampled_from(SOURCES),
        st.sampled_from(["1m", "5m"]),
        st.integers(0, 6),
    ),
    min_size=1,
    max_size=4,
)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return sorted(con.execute(sql).fetchall(), key=lambda r: tuple((x is None, str(x)) for x in r))


def _same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-12, abs=1e-9) or (math.isnan(a) and math.isnan(b))
            else:
                assert a == b, (g, w)


def _reference(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("bar_quality", "symbol_quality"):
        con.execute((REFERENCE / f"{name}.sql").read_text(encoding="utf-8"))


def _check_sql(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip().rstrip(";")


def _check_rows(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> list[tuple[Any, ...]]:
    rows = _rows(con, _check_sql(path))
    if name == "duplicate_bars":  # the reference lists the periods in no particular order
        rows = [(*r[:-1], ",".join(sorted(str(r[-1]).split(",")))) for r in rows]
    return rows


def compare(root: Path, session: str) -> None:
    s = Settings(session=session, min_bars_per_symbol=5)
    con = lake.connect(root, read_only=True, settings=s)
    _reference(con)
    _same(_rows(con, "SELECT * FROM bar_quality"), _rows(con, "SELECT * FROM reference_bar_quality"))
    _same(_rows(con, "SELECT * FROM symbol_quality"), _rows(con, "SELECT * FROM reference_symbol_quality"))
    reference = {
        name: _check_rows(con, name, REFERENCE / "checks" / f"{name}.sql") for name, _ in check_files()
    }
    for name, path in check_files():  # each check on its own, every file read
        _same(_check_rows(con, name, path), reference[name])
    # as `marketlake check` runs them: after check_begin.sql, narrowed to the files that can fail
    con.execute((sql_dir() / "report" / "check_begin.sql").read_text(encoding="utf-8"))
    _same(_rows(con, "SELECT * FROM symbol_quality"), _rows(con, "SELECT * FROM reference_symbol_quality"))
    for name, path in check_files():
        _same(_check_rows(con, name, path), reference[name])
    con.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    series=series_strategy,
    data=st.data(),
    session=st.sampled_from(["regular", "extended"]),
    no_calendar=st.integers(0, 5),
)
def test_fast_quality_equals_the_reference(
    series: list[tuple[str, str, str, int]], data: Any, session: str, no_calendar: int
) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "lake"
        for symbol, source, interval, mischief in series:
            crypto = symbol == "BTCUSDT"
            rows = data.draw(bar_rows("crypto" if crypto else "stock", 1 if interval == "1m" else 5))
            write_series(
                root,
                "binance" if crypto and source == "polygon" else source,
                symbol,
                interval,
                rows,
                mischief,
            )
        if no_calendar == 0:  # a lake whose XNYS calendar was never materialised (missing_calendar)
            shutil.rmtree(root / "datasets/trading_sessions/calendar=XNYS", ignore_errors=True)
        compare(root, session)


def test_a_clean_series_takes_the_fast_path_and_equals_the_reference(lake_root: Path) -> None:
    """Whole days of unbroken crypto and stock minutes (the bench's shape): every file is one unbroken run,
    so no file is walked row by row; still equal to the reference, gaps across the month edge included."""
    rows: list[dict[str, Any]] = []
    t0 = dt.datetime(2024, 7, 31, 8, tzinfo=UTC)
    for i in range(24 * 60):
        ts = t0 + dt.timedelta(minutes=i)
        rows.append(
            {
                "asset_class": "stock",
                "ts": ts,
                "available_at": ts + dt.timedelta(minutes=1),
                "open": 1.0,
                "high": 1.0,
                "low": 1.0,
                "close": 1.0,
                "source_file": "a.csv",
            }
        )
    write_series(lake_root, "polygon", "AAPL", "1m", rows, 0)
    write_series(lake_root, "binance", "BTCUSDT", "1m", [{**r, "asset_class": "crypto"} for r in rows], 0)
    con = lake.connect(lake_root, read_only=True)
    assert con.execute("SELECT count(*) FROM bar_file_days WHERE order_stored > 0").fetchone() == (0,)
    con.close()
    for session in ("regular", "extended"):
        compare(lake_root, session)

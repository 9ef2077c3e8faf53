"""Binance against a local Data Vision: gaps are named, a file that lands nothing fails, the quarantine
survives a crash between the two writes, and downloads run concurrently within the bound."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lake
from ingest import binance
from ingest.common import IngestSummary, RunContext
from ingest.http import RetryPolicy
from lake.config import Settings
from lake.schemas import BARS, BARS_REJECTED
from lake.writer import LakeWriter
from tests.binance_server import DataVision, csv_bytes, klines, serve

pytestmark = pytest.mark.integration

UTC = dt.UTC
DAY = dt.date(2024, 1, 30)
T0 = dt.datetime(2024, 1, 30, tzinfo=UTC)
FAST = RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.05, connect_timeout=2, read_timeout=5)


@pytest.fixture
def dv(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    for server in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", server.base_url)
        monkeypatch.setattr(binance, "RETRY", FAST)
        yield server


def ingest(root: Path, start: dt.date = DAY, end: dt.date = DAY) -> IngestSummary:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return binance.run(ctx, ["BTCUSDT"], "1m", start, end, today=dt.date(2026, 1, 1))


def count(root: Path, view: str) -> int:
    return int(lake.connect(root, read_only=True).execute(f"SELECT count(*) FROM {view}").fetchall()[0][0])


def test_missing_files_are_named_in_the_notes(dv: DataVision, lake_root: Path) -> None:
    first = dt.date(2024, 1, 1)
    for i in (0, 1, 5, 9):  # 2..5 and 7..9 (1-based days 3..5, 7..9) are not published, nor 11
        d = first + dt.timedelta(days=i)
        dv.publish("BTCUSDT", "1m", d, "daily", klines(dt.datetime.combine(d, dt.time(0), UTC), 3))
    s = ingest(lake_root, first, dt.date(2024, 1, 11))  # a part month: daily files
    assert s.ok, s.errors
    assert s.of("BTCUSDT").files_missing == 7
    (note,) = [n for n in s.notes if "404" in n]
    assert "7 daily file(s)" in note, note
    assert (
        "BTCUSDT-1m-2024-01-03 .. BTCUSDT-1m-2024-01-05, BTCUSDT-1m-2024-01-07 .. BTCUSDT-1m-2024-01-09, "
        "BTCUSDT-1m-2024-01-11"
    ) in note, note


def test_a_file_whose_every_row_is_rejected_fails(dv: DataVision, lake_root: Path) -> None:
    lines = csv_bytes(klines(T0, 4)).decode().splitlines()
    # open_time and close_time with 15 digits: neither milliseconds nor microseconds
    bad = "".join(
        ",".join([f[0] + "00", *f[1:6], f[6] + "00", *f[7:]]) + "\n" for f in (x.split(",") for x in lines)
    )
    dv.publish("BTCUSDT", "1m", DAY, "daily", csv=bad.encode())
    s = ingest(lake_root)
    assert not s.ok
    (err,) = s.errors
    assert "BTCUSDT-1m-2024-01-30.zip" in err and "all 4 rows rejected" in err, err
    assert count(lake_root, "bars_rejected") == 4 and count(lake_root, "bars") == 0
    again = ingest(lake_root)  # still a failure on a re-run, and nothing quarantined twice
    assert not again.ok and "all 4 rows rejected" in again.errors[0], again.errors
    assert count(lake_root, "bars_rejected") == 4


@pytest.mark.parametrize("crash_on", ["bars", "bars_rejected"])
def test_a_crash_between_the_two_writes_loses_no_quarantined_row(
    dv: DataVision, lake_root: Path, monkeypatch: pytest.MonkeyPatch, crash_on: str
) -> None:
    csv = csv_bytes(klines(T0, 5)) + b"1706573100000,oops,1,1,1,1,1706573159999,1,1,1,1,0\n"
    dv.publish("BTCUSDT", "1m", DAY, "daily", csv=csv)
    target = {"bars": BARS, "bars_rejected": BARS_REJECTED}[crash_on]
    orig = LakeWriter.write

    def crashing(self: LakeWriter, dataset: Any, *a: Any, **k: Any) -> Any:
        if dataset is target:
            raise KeyboardInterrupt("killed between the two writes")
        return orig(self, dataset, *a, **k)

    monkeypatch.setattr(LakeWriter, "write", crashing)
    with pytest.raises(KeyboardInterrupt):
        ingest(lake_root)
    monkeypatch.setattr(LakeWriter, "write", orig)

    s = ingest(lake_root)
    assert s.ok, s.errors
    assert count(lake_root, "bars") == 5
    assert count(lake_root, "bars_rejected") == 1
    again = ingest(lake_root)
    assert again.of("BTCUSDT").files_skipped == 1 and count(lake_root, "bars_rejected") == 1


def test_downloads_are_concurrent_and_bounded(
    dv: DataVision, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binance, "CONCURRENCY", 3)
    first = dt.date(2024, 1, 1)
    for i in range(10):
        d = first + dt.timedelta(days=i)
        path = dv.publish("BTCUSDT", "1m", d, "daily", klines(dt.datetime.combine(d, dt.time(0), UTC), 2))
        dv.fault(path, "slow:0.15")
    s = ingest(lake_root, first, first + dt.timedelta(days=9))
    assert s.ok, s.errors
    # slow answers are logged twice: status 0 on arrival, 200 when answered
    events = sorted((t, +1 if st == 0 else -1) for p, t, st in dv.requests(".zip"))
    assert sum(1 for _, e in events if e > 0) == 10
    peak = live = 0
    for _, e in events:
        live += e
        peak = max(peak, live)
    assert 1 < peak <= 3, peak

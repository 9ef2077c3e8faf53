"""Case 1 (machinery): a command killed with SIGKILL at a chosen point, then re-run, leaves the lake whole:
no duplicate or partial rows, no stray temporary file, the same bytes as a run that was never killed.

The command here is a stand-in ingest (a subprocess that lands a fixed input in several partitions of
several datasets through the lake writer, as an ingest does). The real ingest commands plug into the
same helper: `kill_then_rerun(marketlake_argv(...ingest...), when_temp_file(root))`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import (
    Trigger,
    assert_lake_consistent,
    kill_then_rerun,
    lake_files,
    python_argv,
    run,
    temp_files,
    view_contents,
    when_line,
    when_temp_file,
)

pytestmark = pytest.mark.integration

# A fixed input in 3 bars partitions, 1 quarantine partition and 2 news partitions, merged (as an ingest
# does): running it twice, or half then whole, must give the same lake as running it once.
STAND_IN_INGEST = """
import datetime as dt, sys
import numpy as np
import pyarrow as pa
import lake
from lake.schemas import UTC_TS
from lake.writer import LakeWriter
from ingest.sessions import land

root = sys.argv[1]
shift = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0  # another input (a corrected upstream file)
n = 30_000
t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

def bars(sym, k):
    i = np.arange(n, dtype=np.int64)
    us = int(t0.timestamp()) * 1_000_000 + i * 60_000_000
    ts = pa.array(us, type=pa.int64()).cast(UTC_TS)
    av = pa.array(us + 60_000_000, type=pa.int64()).cast(UTC_TS)
    c = pa.array(100.0 + k + shift + (i % 97) / 10)
    return pa.table({"asset_class": pa.array(["crypto"] * n), "ts": ts, "available_at": av, "open": c,
                     "high": c, "low": c, "close": c, "volume": c, "trades": pa.array(i % 7),
                     "source_file": pa.array([f"{sym}-2024-01.zip"] * n)})

with land(root) as w:
    for k, sym in enumerate(["BTCUSDT", "ETHUSDT", "SOLUSDT"]):
        w.write(lake.BARS, {"source": "binance", "interval": "1m", "symbol": sym, "period": "2024-01"},
                bars(sym, k), inputs=[{"file": f"{sym}-2024-01.zip", "sha256": "0" * 64}])
        print(f"wrote bars {sym}", flush=True)
    rej = pa.table({"symbol": ["BTCUSDT"] * 2, "interval": ["1m"] * 2, "source_file": ["BTCUSDT-2024-01.zip"] * 2,
                    "line_number": pa.array([5, 9], type=pa.int64()), "raw": ["x", "y"],
                    "ts": pa.array([None, None], type=UTC_TS), "open": [None, 1.0], "high": [None, 1.0],
                    "low": [None, 2.0], "close": [None, 1.0], "volume": [None, 1.0], "reason": ["bad ts", "low > high"]})
    w.write(lake.BARS_REJECTED, {"source": "binance", "period": "2024-01"}, rej)
    print("wrote rejected", flush=True)
    for sym in ("AAPL", "MSFT"):
        news = pa.table({"id": [f"{sym}-{i}" for i in range(3)],
                         "published_at": pa.array([t0 + dt.timedelta(hours=i) for i in range(3)], type=UTC_TS),
                         "ingested_at": pa.array([t0 + dt.timedelta(hours=5)] * 3, type=UTC_TS),
                         "title": [f"{sym} headline {i}" for i in range(3)], "summary": [None] * 3,
                         "publisher": ["wire"] * 3, "url": [None] * 3, "sentiment": [0.0, 0.5, -0.5],
                         "source": ["test"] * 3})
        w.write(lake.NEWS, {"symbol": sym}, news)
        print(f"wrote news {sym}", flush=True)
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lake the stand-in ingest makes when nobody kills it."""
    root = tmp_path_factory.mktemp("reference") / "lake"
    p = run(python_argv(STAND_IN_INGEST, str(root)))
    assert p.returncode == 0, p.stderr
    return root


def _kill_points(root: Path) -> dict[str, Trigger]:
    return {
        "inside-the-first-write": when_temp_file(root),
        "after-one-partition": when_line(r"^wrote bars BTCUSDT"),
        "inside-a-later-write": when_line(r"^wrote bars ETHUSDT"),
        "between-datasets": when_line(r"^wrote rejected"),
    }


@pytest.mark.parametrize("point", list(_kill_points(Path("."))))
def test_sigkill_then_rerun_gives_the_lake_of_an_uninterrupted_run(
    lake_root: Path, reference: Path, point: str
) -> None:
    argv = python_argv(STAND_IN_INGEST, str(lake_root))
    trigger = _kill_points(lake_root)[point]
    if point == "inside-a-later-write":
        base = trigger
        trigger = lambda r: base(r) and bool(temp_files(lake_root))  # noqa: E731 - kill mid-write, not between
    report = kill_then_rerun(argv, trigger)
    assert report.killed or point == "early", (
        f"{point}: finished before the kill point\n{report.first_output}"
    )
    assert report.rerun.returncode == 0, report.rerun.stderr
    assert_lake_consistent(lake_root)
    assert view_contents(lake_root) == view_contents(reference)
    assert lake_files(lake_root) == lake_files(reference), "re-run after a kill differs from a clean run"


@pytest.fixture(scope="module")
def corrected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lake of the stand-in ingest with another input (a corrected upstream file), never killed."""
    root = tmp_path_factory.mktemp("corrected") / "lake"
    p = run(python_argv(STAND_IN_INGEST, str(root), "0.5"))
    assert p.returncode == 0, p.stderr
    return root


def _bars_by_partition(root: Path) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    for row in view_contents(root)["bars"]:
        out.setdefault(str(row[0]), []).append(row)
    return out


def test_a_killed_run_leaves_whole_partitions_before_any_rerun(
    lake_root: Path, reference: Path, corrected: Path
) -> None:
    """Between the kill and the re-run, views read only whole files: each partition is all old or all new."""
    first = run(python_argv(STAND_IN_INGEST, str(lake_root)))
    assert first.returncode == 0, first.stderr
    changed = python_argv(STAND_IN_INGEST, str(lake_root), "0.5")
    report = kill_then_rerun(changed, when_temp_file(lake_root), rerun_argv=python_argv("pass"))
    assert report.killed
    old, new, now = (
        _bars_by_partition(reference),
        _bars_by_partition(corrected),
        _bars_by_partition(lake_root),
    )
    assert sorted(now) == sorted(old) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    for symbol, rows in now.items():
        assert rows in (old[symbol], new[symbol]), f"{symbol}: neither the old nor the new partition"
    assert all(not p.name.endswith(".parquet") for p in temp_files(lake_root)), (
        "a temp name a view would read"
    )


class _Killed(BaseException):
    """Stands for SIGKILL at one exact instruction (the window is too narrow to hit with a signal)."""


def test_a_kill_between_the_data_and_manifest_renames_is_repaired_by_the_rerun(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt
    import os

    import lake
    from ingest.sessions import land
    from tests.conftest import bars_table

    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}
    with land(lake_root) as w:
        w.write(lake.BARS, part, bars_table(t0, [1.0, 2.0]))
    real_replace = os.replace

    def die_before_the_manifest(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if str(dst).endswith("_manifest.json"):
            raise _Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", die_before_the_manifest)
    with pytest.raises(_Killed), land(lake_root) as w:
        w.write(lake.BARS, part, bars_table(t0, [1.0, 2.0, 3.0]))
    monkeypatch.undo()
    assert lake.verify(lake_root) != [], "the manifest trails the data: the state a kill leaves"
    with land(lake_root) as w:  # the re-run: same rows, nothing to write, the manifest is repaired
        r = w.write(lake.BARS, part, bars_table(t0, [1.0, 2.0, 3.0]))
    assert not r.changed and r.rows == 3
    assert_lake_consistent(lake_root)

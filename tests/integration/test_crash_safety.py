"""A writer killed with SIGKILL mid-write leaves the lake at its last good state; writers are serialised
across processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import lake

pytestmark = pytest.mark.integration

WRITER = textwrap.dedent(
    """
    import datetime as dt, sys
    import pyarrow as pa
    import lake
    from lake.schemas import UTC_TS
    from lake.writer import LakeWriter

    root = sys.argv[1]
    n = 400_000  # big enough that a write takes a while
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ts = pa.array([t0 + dt.timedelta(minutes=i) for i in range(n)], type=UTC_TS)
    part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}
    with LakeWriter.open(root) as w:
        for version in range(1, 1000):
            v = pa.array([float(version)] * n)
            t = pa.table({"asset_class": ["crypto"] * n, "ts": ts, "available_at": ts, "open": v, "high": v,
                          "low": v, "close": v, "volume": v, "trades": pa.array([version] * n, type=pa.int64()),
                          "source_file": [f"v{version}"] * n})
            w.write(lake.BARS, part, t, mode="replace")
            print(f"wrote {version}", flush=True)
    """
)


def _start_writer(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            raise AssertionError(f"writer exited: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError(f"no {prefix!r} within {timeout}s")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_sigkill_mid_write_leaves_the_last_good_state(lake_root: Path, delay: float) -> None:
    proc = _start_writer(lake_root)
    try:
        last = int(_wait_for_line(proc, "wrote 2").split()[1])
        time.sleep(delay)  # land somewhere inside the next write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    con = lake.connect(lake_root, read_only=True)
    n, lo, hi, versions = con.sql(
        "SELECT count(*), min(close), max(close), count(DISTINCT source_file) FROM lake_bars"
    ).fetchone()  # type: ignore[misc]
    assert n == 400_000, "a whole version, never a partial file"
    assert lo == hi and versions == 1, "one version, never a mix"
    assert lo >= last
    assert lake.verify(lake_root) == [] or lo > last  # manifest may trail by one write, never the data
    visible = list(lake_root.rglob("*.parquet"))
    assert all(p.name == "data.parquet" for p in visible)


def test_a_second_writer_process_waits_for_the_first(lake_root: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom lake.writer import LakeWriter\n"
            "with LakeWriter.open(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(1.5)\n",
            str(lake_root),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        _wait_for_line(holder, "locked")
        from lake.errors import LakeLocked
        from lake.writer import LakeWriter

        with pytest.raises(LakeLocked, match=r"locked by a writer \(pid \d+\)"):
            with LakeWriter.open(lake_root, wait_seconds=0.2):
                pass
        waited: list[str] = []
        start = time.monotonic()
        with LakeWriter.open(lake_root, wait_seconds=30, on_wait=waited.append):
            assert time.monotonic() - start > 0.5
        assert waited
    finally:
        holder.kill()
        holder.wait()

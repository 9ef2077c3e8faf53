"""Case 2: the disk fills up during a partition write. The writer fails with a clear one-line error, the
previous partition is intact (same bytes, same view contents, manifest still matching), no temporary file
is left, and the lake keeps working.

How the fault is made, real kernel errors first:
- `enospc-tmpfs`: the lake lives on a tmpfs of 1 MiB mounted for the test (needs root, which the sandbox and
  CI have); the kernel answers ENOSPC when it is full. Skipped, saying why, where mounting is not allowed.
- `efbig-rlimit`: the writing process has RLIMIT_FSIZE set below the new file's size, with SIGXFSZ ignored,
  so the kernel answers EFBIG to the write. Works for any user, everywhere.
- `enospc-manifest`: ENOSPC injected (monkeypatch) at the one stage the kernel faults above cannot aim at:
  the manifest's temporary file, after the new data file was written in full. The data must not land.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lake
from ingest.sessions import land
from lake.errors import MarketlakeError
from tests.conftest import bars_table
from tests.faults import lake_files, python_argv, run, temp_files, view_contents

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PART = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}

# Replaces the partition with ~2 MB of incompressible bars, through the CLI's error handling (one line on
# stderr, exit 1). argv: root, mode (rlimit or plain).
BIG_WRITE = """
import datetime as dt, resource, signal, sys
import numpy as np
import pyarrow as pa
import lake
from cli.main import handle_errors
from lake.schemas import UTC_TS
from lake.writer import LakeWriter
from ingest.sessions import land

root, how = sys.argv[1], sys.argv[2]
n = 250_000
us = 1_704_067_200_000_000 + np.arange(n, dtype=np.int64) * 60_000_000
c = pa.array(np.random.default_rng(7).random(n) * 100 + 1)
table = pa.table({"asset_class": pa.array(["crypto"] * n), "ts": pa.array(us).cast(UTC_TS),
                  "available_at": pa.array(us + 60_000_000).cast(UTC_TS), "open": c, "high": c, "low": c,
                  "close": c, "volume": c, "trades": pa.array(np.arange(n)), "source_file": pa.array(["big.zip"] * n)})
part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}

@handle_errors
def main():
    with land(root) as w:
        if how == "rlimit":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG, no signal death
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
        w.write(lake.BARS, part, table, mode="replace")
    print("written")

main()
"""


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs; return None on success, else why it could not be done."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    mount = shutil.which("mount")
    if mount is None:
        return "no mount command"
    p = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    return None if p.returncode == 0 else f"mount -t tmpfs refused: {p.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system of its own (tmpfs), unmounted afterwards."""
    where = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    why = _mount_tmpfs(where, "1m")
    if why is not None:
        pytest.skip(f"no real ENOSPC here ({why}); the efbig-rlimit case still runs")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        if os.path.ismount(where):
            subprocess.run(["umount", "-l", str(where)], check=False)


def _previous_state(root: Path) -> dict[str, Any]:
    with land(root) as w:
        w.write(lake.BARS, PART, bars_table(T0, [float(i % 50 + 1) for i in range(500)]))
    return {"files": lake_files(root), "views": view_contents(root)}


def _assert_intact(root: Path, before: dict[str, Any]) -> None:
    assert lake_files(root) == before["files"], "the previous partition's bytes or manifest changed"
    assert view_contents(root) == before["views"]
    assert lake.verify(root) == []
    assert temp_files(root) == [], "a temporary file was left behind"


def _assert_still_works(root: Path) -> None:
    with land(root) as w:
        r = w.write(lake.BARS, PART, bars_table(T0 + dt.timedelta(days=1), [7.0, 8.0]))
    assert r.changed and r.rows == 502
    assert lake.verify(root) == []


def _assert_one_clear_line(p: subprocess.CompletedProcess[str], reason: str) -> None:
    assert p.returncode == 1, f"expected a failure, got {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: could not write "), lines[0]
    assert "symbol=BTCUSDT/period=2024-01/data.parquet" in lines[0], lines[0]
    assert reason in lines[0], lines[0]
    assert lines[0].endswith("the previous partition is intact"), lines[0]
    assert "written" not in p.stdout


def test_enospc_tmpfs_leaves_the_previous_partition_intact(small_disk: Path) -> None:
    root = small_disk / "lake"
    before = _previous_state(root)
    p = run(python_argv(BIG_WRITE, str(root), "plain"))
    _assert_one_clear_line(p, "the disk is full (no space left on device)")
    _assert_intact(root, before)
    _assert_still_works(root)


def test_efbig_rlimit_leaves_the_previous_partition_intact(lake_root: Path) -> None:
    before = _previous_state(lake_root)
    p = run(python_argv(BIG_WRITE, str(lake_root), "rlimit"))
    _assert_one_clear_line(p, "file size limit")
    _assert_intact(lake_root, before)
    _assert_still_works(lake_root)


def test_enospc_on_the_manifest_keeps_the_new_data_out(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _previous_state(lake_root)
    import lake.writer as writer_module

    real_open = open
    hit: list[str] = []

    def full_at_manifest(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and "_manifest.json.tmp-" in str(file):
            hit.append(str(file))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(writer_module, "open", full_at_manifest, raising=False)
    with land(lake_root) as w:
        with pytest.raises(MarketlakeError, match=r"the disk is full.*the previous partition is intact"):
            w.write(lake.BARS, PART, bars_table(T0, [99.0] * 10), mode="replace")
    assert hit, "the fault was not reached"
    monkeypatch.undo()
    _assert_intact(lake_root, before)
    _assert_still_works(lake_root)

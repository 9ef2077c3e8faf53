"""A lake on a read-only folder: reading works, writing is refused with a clear error naming the lake.

The reader runs without the privilege to ignore file modes, so the folder is really read-only. As root
(which ignores file modes) it is dropped in one of two ways, the first that works on this machine:

- stay root but without the capabilities that bypass file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
  CAP_FOWNER), via `setpriv --bounding-set`: root still owns the clone, so a clone in a private home
  directory (mode 0700, as /root is) and its .venv stay readable, while the read-only lake is not
  writable;
- become the unprivileged user 65534, which works when the clone is readable by everyone.

A normal user needs neither. When no way works, the tests are skipped with the reasons.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import lake
from lake.writer import LakeWriter
from tests.conftest import bars_table

pytestmark = pytest.mark.integration

SETPRIV = shutil.which("setpriv")
REPO = Path(__file__).resolve().parents[2]
DROPS = {
    "root without the capabilities that bypass file modes": [
        "--bounding-set=-dac_override,-dac_read_search,-fowner",
        "--inh-caps=-all",
    ],
    "the unprivileged user 65534": ["--reuid=65534", "--regid=65534", "--clear-groups"],
}
# The probe must import the project from the clone and be refused a write into a root-owned 0555 folder.
_PROBE = """
import os, sys, lake
try:
    os.mkdir(os.path.join(sys.argv[1], "x"))
    print("wrote")
except PermissionError:
    print("refused")
"""


@functools.cache
def _drop_privileges() -> tuple[str, ...]:
    """The command prefix that makes this process's modes count ((), for a normal user)."""
    if os.geteuid() != 0:
        return ()
    if SETPRIV is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    why: list[str] = []
    probe_dir = Path(tempfile.mkdtemp(prefix="marketlake-probe-"))
    try:
        probe_dir.chmod(0o555)
        for name, flags in DROPS.items():
            cmd = [SETPRIV, *flags, sys.executable, "-c", _PROBE, str(probe_dir)]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
            if p.returncode == 0 and p.stdout.strip() == "refused":
                return (SETPRIV, *flags)
            last = (p.stderr.strip().splitlines() or [p.stdout.strip() or "?"])[-1]
            why.append(f"{name}: {last}")
    finally:
        probe_dir.chmod(0o755)
        shutil.rmtree(probe_dir)
    pytest.skip("cannot run the reader without root's file-mode privileges: " + "; ".join(why))


def _as_unprivileged(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*_drop_privileges(), sys.executable, "-c", textwrap.dedent(code), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="marketlake-ro-"))
    d.chmod(0o755)
    yield d
    for p in [d, *d.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(d)


def _freeze(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(
            (mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        )
        if p.is_dir():
            p.chmod(0o555)


def test_a_read_only_lake_reads_and_refuses_writes(shared_tmp: Path) -> None:
    root = shared_tmp / "lake"
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with LakeWriter.open(root) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}
        w.write(lake.BARS, part, bars_table(t0, [1.0, 2.0]))
    _freeze(root)
    p = _as_unprivileged(
        """
        import sys, lake
        from lake.writer import LakeWriter
        for read_only in (True, False):  # an existing lake needs no write to be read either way
            con = lake.connect(sys.argv[1], read_only=read_only)
            print("rows", con.sql("SELECT count(*) FROM bars").fetchone()[0])
        try:
            LakeWriter.open(sys.argv[1]).__enter__()
            print("wrote?!")
        except lake.MarketlakeError as exc:
            print("refused:", exc)
        """,
        str(root),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("rows 2") == 2, p.stdout
    assert "refused:" in p.stdout and "wrote?!" not in p.stdout, p.stdout
    assert "Permission denied" in p.stdout and str(root) in p.stdout, p.stdout


def test_under_a_read_only_folder_an_empty_lake_reads_empty_views_and_a_missing_one_is_named(
    shared_tmp: Path,
) -> None:
    parent = shared_tmp / "ro"
    (parent / "lake" / "datasets").mkdir(parents=True)  # a lake with no file yet
    _freeze(parent)
    p = _as_unprivileged(
        """
        import sys, lake
        con = lake.connect(sys.argv[1], read_only=True)
        print("views", [con.sql(f"SELECT count(*) FROM {v}").fetchone()[0] for v in ("bars", "news", "features", "runs")])
        try:
            lake.connect(sys.argv[2], read_only=True)
            print("read a missing lake?!")
        except lake.MarketlakeError as exc:
            print("refused:", exc)
        """,
        str(parent / "lake"),
        str(parent / "missing"),
    )
    assert p.returncode == 0, p.stderr
    assert "views [0, 0, 0, 0]" in p.stdout, p.stdout
    assert f"refused: no lake at {parent / 'missing'}" in p.stdout, p.stdout
    assert os.listdir(parent / "lake" / "datasets") == [] and not (parent / "missing").exists()

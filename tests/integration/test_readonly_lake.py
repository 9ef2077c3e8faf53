"""A lake on a read-only folder: reading works, writing is refused with a clear error naming the lake.

Runs the reader as an unprivileged user (root ignores file modes), so the folder is really read-only.
"""

from __future__ import annotations

import datetime as dt
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


def _as_unprivileged(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", textwrap.dedent(code), *args]
    if os.geteuid() == 0:
        if SETPRIV is None:
            pytest.skip("running as root without setpriv: cannot drop privileges")
        cmd = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])


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


def test_a_new_lake_under_a_read_only_folder_reads_empty_views(shared_tmp: Path) -> None:
    parent = shared_tmp / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    p = _as_unprivileged(
        """
        import sys, lake
        con = lake.connect(sys.argv[1], read_only=True)
        print("views", [con.sql(f"SELECT count(*) FROM {v}").fetchone()[0] for v in ("bars", "news", "features", "runs")])
        """,
        str(parent / "lake"),
    )
    assert p.returncode == 0, p.stderr
    assert "views [0, 0, 0, 0]" in p.stdout, p.stdout
    assert not (parent / "lake").exists()

"""Ctrl-C exits 130 with one line, never a traceback nor click's "Aborted!" exit 1 (issue 14, item 6)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.sessions import land
from tests.binance_server import DataVision, klines, serve, zip_path

pytestmark = pytest.mark.integration


@pytest.fixture
def dv() -> Iterator[DataVision]:
    yield from serve()


def test_ctrl_c_during_an_ingest_exits_130_and_releases_the_lake(dv: DataVision, lake_root: Path) -> None:
    day = dt.date(2024, 1, 30)
    path = dv.publish("BTCUSDT", "1m", day, "daily", klines(dt.datetime(2024, 1, 30, tzinfo=dt.UTC), 5))
    dv.fault(path + ".CHECKSUM", "slow:60")
    exe = Path(sys.executable).with_name("marketlake")
    env = {**os.environ, "BINANCE_BASE_URL": dv.base_url}
    args = ["--lake", str(lake_root), "ingest", "binance", "--symbols", "BTCUSDT"]
    p = subprocess.Popen(
        [str(exe), *args, "--start", "2024-01-30", "--end", "2024-01-30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # wait until the ingest is inside its download (the server holds the answer)
        while not dv.requests(zip_path("BTCUSDT", "1m", day, "daily") + ".CHECKSUM"):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err and "Aborted" not in err, err
    with land(lake_root, wait_seconds=2):
        pass  # the writer lock was released


def test_sigterm_during_training_records_the_run_interrupted_and_exits_143(tmp_path: Path) -> None:
    """A `kill`, `timeout` or `docker stop` (SIGTERM) stops training as Ctrl-C does: the best checkpoint is
    kept, status.json and the run's row say interrupted (not `running` forever), exit 128 + 15."""
    import json

    from rl import runlog
    from tests.unit.test_ppo_train import TINY, build_lake

    root = tmp_path / "lake"
    build_lake(root)
    config = tmp_path / "marketlake.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in (TINY | {"num_iterations": 100_000}).items()]
    config.write_text("[train]\n" + "\n".join(lines) + "\n")
    runs = tmp_path / "runs"
    exe = Path(sys.executable).with_name("marketlake")
    p = subprocess.Popen(
        [
            str(exe),
            "--lake",
            str(root),
            "--config",
            str(config),
            "train",
            "--no-evaluate",
            "--runs-dir",
            str(runs),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # until its first validation has kept a checkpoint
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline
            best = list(runs.glob("*/checkpoints/best.pt"))
            if best:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, (out, err)
    assert "terminated (SIGTERM): the best checkpoint so far is kept" in err, err
    (run_dir,) = list(runs.iterdir())
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    (row,) = [r for r in runlog.list_runs(root, kind="train") if r["run_dir"] == str(run_dir)]
    assert row["status"] == "interrupted", row


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
    ids=["ctrl-c", "sigterm"],
)
def test_a_signal_during_a_query_exits_with_its_code(
    lake_root: Path, signum: int, code: int, said: str
) -> None:
    """Ctrl-C: 130, one line. SIGTERM: DuckDB turns the handler's exception into its own interrupt, and it is
    still SIGTERM, 128 + 15."""
    with land(lake_root):
        pass
    exe = Path(sys.executable).with_name("marketlake")
    p = subprocess.Popen(
        [
            str(exe),
            "--lake",
            str(lake_root),
            "sql",
            "SELECT count(*) FROM range(1000000000000) a, range(10) b",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the query runs for minutes; signal it once the process is busy (its CPU time grows)
        deadline = time.monotonic() + 60
        stat = Path(f"/proc/{p.pid}/stat")
        while True:
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[11]) + int(fields[12]) > 200:  # utime + stime in clock ticks: > 2 s of work
                break
            time.sleep(0.05)
        p.send_signal(signum)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == code, (out, err)
    assert err.strip() == said, err

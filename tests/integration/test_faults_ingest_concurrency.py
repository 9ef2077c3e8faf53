"""Case 3 at the ingest level: two `marketlake ingest binance` on one lake at once are serialised by the
writer lock. The second says it waits (on stderr, even with --quiet), starts only when the first is
done, finds everything already landed (no download of its own), and the lake is byte for byte the lake
of one run.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.binance_server import DataVision, klines, serve, zip_path
from tests.faults import Running, assert_lake_consistent, lake_files, marketlake_argv, run, subprocess_env

pytestmark = pytest.mark.integration

DAYS = [dt.date(2024, 1, 29), dt.date(2024, 1, 30), dt.date(2024, 1, 31)]


@pytest.fixture
def dv() -> Iterator[DataVision]:
    for server in serve():
        for d in DAYS:
            server.publish(
                "BTCUSDT", "1m", d, "daily", klines(dt.datetime.combine(d, dt.time(), dt.UTC), 600)
            )
        yield server


def _argv(root: Path, *extra: str) -> list[str]:
    return marketlake_argv("--lake", str(root), *extra, "ingest", "binance", "--symbols", "BTCUSDT",
                           "--start", DAYS[0].isoformat(), "--end", DAYS[-1].isoformat())  # fmt: skip


def _wait_for(r: Running, pattern: str, timeout: float = 20) -> None:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while not any(rx.search(line) for line in list(r.lines)):
        assert r.proc.poll() is None or any(rx.search(line) for line in list(r.lines)), r.output()
        assert time.monotonic() < deadline, f"no {pattern!r} within {timeout}s:\n{r.output()}"
        time.sleep(0.01)


def test_two_ingests_at_once_are_serialised_and_the_second_says_it_waits(
    dv: DataVision, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    p = run(_argv(reference), env=subprocess_env(BINANCE_BASE_URL=dv.base_url))
    assert p.returncode == 0, p.stderr
    dv.clear_log()

    root = tmp_path / "lake"
    env = subprocess_env(BINANCE_BASE_URL=dv.base_url)
    slow = zip_path("BTCUSDT", "1m", DAYS[0], "daily")
    dv.fault(slow, "slow:1.5")  # the first run holds the lock while this download takes its time
    first = Running.start(_argv(root), env=env)
    second: Running | None = None
    try:
        deadline = time.monotonic() + 20
        while not any(st == 0 for _, _, st in dv.requests(slow)):  # the first is inside its run
            assert first.proc.poll() is None and time.monotonic() < deadline, first.output()
            time.sleep(0.01)
        second = Running.start(_argv(root, "--quiet"), env=env)
        _wait_for(second, r"waiting for the lake's writer lock, held by pid \d+")
        assert first.proc.poll() is None, "the second said it waits while the first still runs"
        assert first.wait(60) == 0, first.output()
        assert second.wait(60) == 0, second.output()
    finally:
        for r in (first, second):
            if r is not None:
                r.kill()
    # said once per time the second found the lock taken: before its ingest, and again before its feature
    # store refresh when it got the lock between the first's ingest and the first's refresh (an ingest takes
    # the lock twice); always naming the first
    waiting = [  # (off a terminal a log line starts with its UTC time: left out, the text is checked)
        re.sub(r"^\S+Z (?=WARNING )", "", line)
        for line in second.lines
        if "waiting for the lake's writer lock" in line
    ]
    said = f"WARNING marketlake.writer: waiting for the lake's writer lock, held by pid {first.proc.pid} …"
    assert 1 <= len(waiting) <= 2 and set(waiting) == {said}, second.output()
    # the second started its work after the first: every zip was downloaded once, by the first
    answered = [r for r in dv.requests(".zip") if r[2] != 0]  # a slow answer is logged on arrival too
    assert len(answered) == len(DAYS), dv.requests(".zip")
    assert len(dv.requests(".CHECKSUM")) == 2 * len(DAYS)
    assert_lake_consistent(root)
    assert lake_files(root) == lake_files(reference)

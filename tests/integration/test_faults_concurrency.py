"""Case 3: readers during a write see the old or the new state of each partition, never a mix; two
writers on one lake are serialised by the writer lock, the second one saying that it waits.

What the lake promises is per partition: a reader sees each partition's file either before or after
a write, whole, when it reads through lake.consistent (as marketlake's commands do): DuckDB 1.5.6 opens a
Parquet file twice in one scan (its footer, then its pages), so a raw query that overlaps the replacement
of a file can read neither version (an error, or rows that never were; seen in CI), and consistent runs a
read again when the lake's write sequence says a replacement overlapped it. The versions written here
differ in size (every other one carries noise in `volume`), as real versions do, which is what makes a
footer of one version and pages of another disagree. A write that replaces several partitions is several such steps, so one query that spans
them may see some partitions at the new version and others still at the old one (the test records
whether it saw that; it does not hide it). Writers never interleave: one holds the lock for its whole run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

import lake
from tests.faults import Running, python_argv

pytestmark = pytest.mark.integration

SYMBOLS = ("AAA", "BBB", "CCC")
ROWS = 20_000
WRITER_ARGS = (str(ROWS), ",".join(SYMBOLS))

# Replaces every partition of SYMBOLS with one version per round: all rows of version v have close == v
# and source_file == "v<v>". argv: root, first version, rounds, pause between partitions (seconds), rows, symbols[, a file: hold the lock until it exists].
VERSIONED_WRITER = """
import os, sys, time
import numpy as np
import pyarrow as pa
import lake
from lake.logs import setup_logging
from lake.schemas import UTC_TS
from lake.writer import LakeWriter
from ingest.sessions import land

setup_logging("WARNING")  # what the CLI does: the lock's waiting message goes to stderr
root, first, rounds, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
n = int(sys.argv[5])
us = 1_704_067_200_000_000 + np.arange(n, dtype=np.int64) * 60_000_000
ts, av = pa.array(us).cast(UTC_TS), pa.array(us + 60_000_000).cast(UTC_TS)
release = sys.argv[7] if len(sys.argv) > 7 else None  # hold the lock until this file exists
with land(root) as w:
    print(f"locked {time.time():.6f}", flush=True)
    deadline = time.monotonic() + 60
    while release and not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    for v in range(first, first + rounds):
        c = pa.array(np.full(n, float(v)))
        noise = pa.array(np.random.default_rng(v).uniform(0, 1, n) if v % 2 else np.full(n, float(v)))
        t = pa.table({"asset_class": pa.array(["crypto"] * n), "ts": ts, "available_at": av, "open": c,
                      "high": c, "low": c, "close": c, "volume": noise, "trades": pa.array(np.full(n, v)),
                      "source_file": pa.array([f"v{v}"] * n)})
        for sym in sys.argv[6].split(","):
            w.write(lake.BARS, {"source": "binance", "interval": "1m", "symbol": sym, "period": "2024-01"},
                    t, mode="replace")
            time.sleep(pause)
        print(f"wrote {v}", flush=True)
    print(f"done {time.time():.6f}", flush=True)
"""


def _wait_for(r: Running, pattern: str, timeout: float = 60) -> re.Match[str]:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(r.lines):
            m = rx.search(line)
            if m:
                return m
        if r.proc.poll() is not None and not any(rx.search(line) for line in list(r.lines)):
            raise AssertionError(f"exited {r.proc.returncode} before {pattern!r}:\n{r.output()}")
        time.sleep(0.005)
    raise AssertionError(f"no {pattern!r} within {timeout}s:\n{r.output()}")


def test_readers_during_writes_see_each_partition_whole(lake_root: Path) -> None:
    writer = Running.start(python_argv(VERSIONED_WRITER, str(lake_root), "1", "400", "0", *WRITER_ARGS))
    try:
        _wait_for(writer, r"^wrote 1$")
        con = lake.connect(lake_root, read_only=True)
        seen: set[float] = set()
        reads = 0
        cross_partition_mix = 0
        deadline = time.monotonic() + 20
        try:
            while (len(seen) < 6 or reads < 40) and time.monotonic() < deadline:
                view = ("bars", "lake_bars")[reads % 2]  # the contract view, and the raw one with source_file
                files = "count(DISTINCT source_file)" if view == "lake_bars" else "1"
                query = (
                    f"SELECT symbol, count(*), min(close), max(close), {files}, min(trades), max(trades) "
                    f"FROM {view} GROUP BY symbol ORDER BY symbol"
                )

                def read_all(q: str = query) -> list[tuple[Any, ...]]:
                    return con.sql(q).fetchall()

                rows = lake.consistent(lake_root, read_all)
                assert [r[0] for r in rows] == list(SYMBOLS), rows
                for sym, n, lo, hi, files, tlo, thi in rows:
                    assert n == ROWS, f"{sym}: {n} rows, a partition seen half-written"
                    assert lo == hi and files == 1 and tlo == thi == lo, f"{sym}: versions mixed {lo}..{hi}"
                    seen.add(lo)
                cross_partition_mix += len({r[2] for r in rows}) > 1
                # One partition at a time, through a bound parameter, as a notebook would.
                sym = SYMBOLS[reads % len(SYMBOLS)]

                def read_one(s: str = sym) -> tuple[Any, ...] | None:
                    return con.execute(
                        "SELECT count(*), min(close), max(close) FROM bars WHERE symbol = ?", [s]
                    ).fetchone()

                one = lake.consistent(lake_root, read_one)
                assert one is not None
                n, lo, hi = one
                assert n == ROWS and lo == hi, f"{sym}: {n} rows, closes {lo}..{hi}"
                reads += 1
        finally:
            con.close()
        assert writer.proc.poll() is None, f"the writer stopped early:\n{writer.output()}"
        assert len(seen) >= 3, f"the reads did not overlap the writes (saw versions {sorted(seen)})"
        print(
            f"{reads} reads, versions {min(seen)}..{max(seen)}, cross-partition mixes: {cross_partition_mix}"
        )
    finally:
        writer.kill()


def test_two_writers_are_serialised_and_the_second_says_it_waits(lake_root: Path) -> None:
    release = lake_root.parent / "release"
    first = Running.start(
        python_argv(VERSIONED_WRITER, str(lake_root), "1", "2", "0", *WRITER_ARGS, str(release))
    )
    second: Running | None = None
    try:
        _wait_for(first, r"^locked ")
        second = Running.start(python_argv(VERSIONED_WRITER, str(lake_root), "100", "2", "0", *WRITER_ARGS))
        _wait_for(second, r"waiting for the lake's writer lock")  # the second says so while it waits …
        assert not any(line.startswith("locked") for line in second.lines), second.output()
        release.touch()  # … and goes on once the first is done
        assert first.wait(60) == 0, first.output()
        assert second.wait(60) == 0, second.output()
        first_done = float(_wait_for(first, r"^done (\S+)").group(1))
        second_locked = float(_wait_for(second, r"^locked (\S+)").group(1))
        assert second_locked >= first_done, "the second writer wrote while the first held the lock"
        waiting = [  # (off a terminal a log line starts with its UTC time: left out, the text is checked)
            re.sub(r"^\S+Z (?=WARNING )", "", line)
            for line in second.lines
            if "waiting for the lake's writer lock" in line
        ]
        assert waiting == [
            f"WARNING marketlake.writer: waiting for the lake's writer lock, held by pid {first.proc.pid} …"
        ], second.output()
        assert not any("waiting" in line for line in first.lines), first.output()
    finally:
        first.kill()
        if second is not None:
            second.kill()
    con = lake.connect(lake_root, read_only=True)
    try:
        rows = con.sql(
            "SELECT symbol, count(*), min(close), max(close), count(DISTINCT source_file) FROM lake_bars "
            "GROUP BY symbol ORDER BY symbol"
        ).fetchall()
    finally:
        con.close()
    # Each partition holds one whole version, and it is the last version of the writer that went second.
    assert rows == [(s, ROWS, 101.0, 101.0, 1) for s in SYMBOLS], rows
    assert lake.verify(lake_root) == []

"""A Data Vision host that never answers (a closed port, or a server that accepts and says nothing): after a
couple of rounds of refused or timed-out attempts the other files are not tried, one error names the host and
the number of files not fetched, and the run ends non-zero; instead of every file's every attempt (14 minutes
for 1,200 files against a closed port, 309 s a file against a silent server)."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from cli import cli
from ingest import binance
from ingest.http import RetryPolicy
from tests.silent_server import free_port
from tests.silent_server import silent_server as never_answers

pytestmark = pytest.mark.integration

FIRST = dt.date(2024, 1, 2)
LAST = dt.date(2024, 1, 21)  # 20 days of a month not whole: 20 daily files a symbol
SYMBOLS = "BTCUSDT,ETHUSDT"
FILES = 40
ATTEMPTS = 5
BOUND = 3 * binance.CONCURRENCY  # two rounds of the files fetched at once, and those in flight at the trip


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the connections aiohttp opens (or tries to)."""
    seen: list[int] = []
    real = aiohttp.TCPConnector.connect

    async def counting(self: aiohttp.TCPConnector, *args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.TCPConnector, "connect", counting)
    return seen


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A server on 127.0.0.1 that accepts every connection and never sends a byte."""
    with never_answers() as (where, accepted):
        yield f"{where}", accepted


def _ingest(runner: CliRunner, root: Path) -> Any:
    return runner.invoke(
        cli,
        ["--lake", str(root), "ingest", "binance", "--symbols", SYMBOLS, "--interval", "1m",
         "--start", FIRST.isoformat(), "--end", LAST.isoformat()],
    )  # fmt: skip


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_closed_port_fails_the_run_in_one_line_after_a_couple_of_rounds(
    lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, connects: list[int]
) -> None:
    host = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("BINANCE_BASE_URL", f"http://{host}")
    monkeypatch.setattr(binance, "RETRY", RetryPolicy(attempts=ATTEMPTS, backoff_base=0.01, backoff_max=0.02))

    r = _ingest(runner, lake_root)

    assert r.exit_code == 1, r.output
    (line,) = _errors(r.stderr)
    assert f"cannot reach {host}" in line and "connection refused" in line, line
    assert f"{FILES} file(s) not fetched" in line, line
    # not every file's every attempt (FILES x ATTEMPTS = 200): a couple of rounds of the files fetched at once
    assert 0 < len(connects) <= BOUND, len(connects)
    assert not (lake_root / "data").exists() or not any((lake_root / "data").rglob("*.parquet"))


def test_a_server_that_accepts_and_never_answers_trips_the_same_breaker(
    lake_root: Path,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    silent_server: tuple[str, list[socket.socket]],
) -> None:
    host, accepted = silent_server
    monkeypatch.setenv("BINANCE_BASE_URL", f"http://{host}")
    monkeypatch.setattr(
        binance,
        "RETRY",
        RetryPolicy(
            attempts=ATTEMPTS, backoff_base=0.01, backoff_max=0.02, connect_timeout=1, read_timeout=0.2
        ),
    )

    r = _ingest(runner, lake_root)

    assert r.exit_code == 1, r.output
    (line,) = _errors(r.stderr)
    assert f"cannot reach {host}" in line and "timed out" in line, line
    assert f"{FILES} file(s) not fetched" in line, line
    assert 0 < len(accepted) <= BOUND, len(accepted)


def test_a_host_that_answered_keeps_its_retries_however_many_timeouts_follow(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The breaker is for a host that never answered: once one file came, a run of timeouts (more than the
    breaker's limit) is a transient fault, each file retried and failed on its own."""
    from ingest.common import RunContext
    from lake.config import Settings
    from tests.binance_server import klines, serve

    attempts = 3
    monkeypatch.setattr(
        binance,
        "RETRY",
        RetryPolicy(attempts=attempts, backoff_base=0.01, backoff_max=0.02, read_timeout=0.2),
    )
    days = [FIRST + dt.timedelta(days=i) for i in range(20)]
    for dv in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", dv.base_url)
        for i, d in enumerate(days):
            path = dv.publish(
                "BTCUSDT", "1m", d, "daily", klines(dt.datetime.combine(d, dt.time(), dt.UTC), 60)
            )
            if i:  # the first day answers; every other day's CHECKSUM times out, every time
                dv.fault(path + ".CHECKSUM", *["slow:1"] * attempts)
        ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
        s = binance.run(ctx, ["BTCUSDT"], "1m", days[0], days[-1], today=dt.date(2026, 1, 1))

        slow = len(days) - 1
        assert slow * attempts > binance.UNANSWERED_LIMIT  # more timeouts than the breaker allows
        assert len(s.errors) == slow, s.errors  # one per file, none for the host
        assert all("timed out" in e and "cannot reach" not in e for e in s.errors), s.errors
        assert len(dv.requests(".CHECKSUM")) == 1 + slow * attempts  # each retried to the policy's end
        assert s.of("BTCUSDT").files_done == 1

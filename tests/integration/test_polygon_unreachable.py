"""A Polygon endpoint that never answers: a closed port, or a server that accepts and says nothing.

The day HEADs stop after a round or two of no answer (one error naming the endpoint and the days not
fetched, instead of one error per calendar day after botocore's five attempts each); and SIGTERM during
such a run exits 143 within seconds with the lake's writer lock free (it waited ~10 minutes for the HEADs
in flight: 5 attempts x 120 s)."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from ingest import polygon, s3
from tests.faults import Running, python_argv, subprocess_env
from tests.silent_server import free_port
from tests.silent_server import silent_server as never_answers

pytestmark = pytest.mark.integration

START, END = "2024-01-02", "2024-01-31"
CALENDAR_DAYS = 30
BOUND = 2 * polygon.CONCURRENCY  # a round of the HEADs at once, and those in flight when the breaker trips


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A server on 127.0.0.1 that accepts every connection and never sends a byte."""
    with never_answers() as (where, accepted):
        yield f"http://{where}", accepted


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "AKIA-unreachable-test")
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "unreachable-test-secret")


@pytest.fixture
def heads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the day HEADs asked of the endpoint."""
    asked: list[str] = []
    real = s3.head_etag

    def counting(client: Any, settings: Any, key: str) -> str:
        asked.append(key)
        return real(client, settings, key)

    monkeypatch.setattr(s3, "head_etag", counting)
    return asked


def _args(root: Path) -> list[str]:
    return ["-q", "--lake", str(root), "ingest", "polygon", "--tickers", "AAPL",
            "--start", START, "--end", END]  # fmt: skip


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_closed_port_stops_the_heads_and_says_so_once(
    lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, keys: None, heads: list[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", endpoint)

    r = runner.invoke(cli, _args(lake_root))

    assert r.exit_code == 1, r.output
    (line,) = _errors(r.stderr)
    assert f"cannot reach {endpoint}" in line, line
    assert f"{CALENDAR_DAYS} day file(s) not fetched" in line, line
    assert 0 < len(heads) <= BOUND, len(heads)


def test_a_silent_endpoint_trips_the_same_breaker(
    lake_root: Path,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    keys: None,
    heads: list[str],
    silent_server: tuple[str, list[socket.socket]],
) -> None:
    endpoint, accepted = silent_server
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", endpoint)
    monkeypatch.setattr(s3, "HEAD_TIMEOUTS", {"connect_timeout": 1, "read_timeout": 0.3, "max_attempts": 2})

    r = runner.invoke(cli, _args(lake_root))

    assert r.exit_code == 1, r.output
    (line,) = _errors(r.stderr)
    assert f"cannot reach {endpoint}" in line and "timed out" in line, line
    assert f"{CALENDAR_DAYS} day file(s) not fetched" in line, line
    assert 0 < len(heads) <= BOUND, len(heads)
    # botocore's attempts a HEAD (and its connections dropped on a timeout): far from 30 days x 5 attempts
    assert len(accepted) <= 4 * BOUND, len(accepted)


def _lock_free(root: Path) -> bool:
    fd = os.open(root / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_sigterm_while_heads_hang_exits_143_at_once_and_frees_the_lock(
    lake_root: Path, silent_server: tuple[str, list[socket.socket]]
) -> None:
    endpoint, accepted = silent_server
    env = subprocess_env(
        POLYGON_S3_ENDPOINT=endpoint,
        POLYGON_S3_ACCESS_KEY="AKIA-unreachable-test",
        POLYGON_S3_SECRET_KEY="unreachable-test-secret",
    )
    r = Running.start(python_argv("from cli.main import main; main()", *_args(lake_root)), env=env)
    try:
        deadline = time.monotonic() + 60
        while len(accepted) < polygon.CONCURRENCY:  # the HEADs hang, the run holds the lock
            assert r.proc.poll() is None and time.monotonic() < deadline, r.output()
            time.sleep(0.05)
        assert not _lock_free(lake_root), "the run holds the writer lock while its HEADs hang"
        r.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rc = r.wait(timeout=60)
        took = time.monotonic() - sent
    finally:
        r.kill()
    assert rc == 128 + signal.SIGTERM, r.output()
    assert took < 5, f"{took:.1f}s to act on SIGTERM"
    assert _lock_free(lake_root)
    assert "terminated (SIGTERM)" in r.output()

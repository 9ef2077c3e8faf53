"""Offline, or a mirror whose name does not resolve (issue 14, item 5): one line naming the host and the
way out, no retries of a name lookup, failures counted as failures in the progress bar. The host is
`*.invalid` (RFC 2606): it never resolves and makes no network traffic."""

from __future__ import annotations

import datetime as dt
import io
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from cli import cli
from ingest import binance
from ingest.common import RunContext
from ingest.http import RetryPolicy
from lake.config import Settings

pytestmark = pytest.mark.integration
HOST = "nonexistent.invalid"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_BASE_URL", f"http://{HOST}")
    # were a name lookup retried, each retry would log (and wait a backoff); none may happen
    monkeypatch.setattr(binance, "RETRY", RetryPolicy(attempts=5, backoff_base=0.01, backoff_max=0.02))


def test_an_unresolvable_host_is_one_line_and_no_retry(
    offline: None, runner: CliRunner, lake_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.http")
    r = runner.invoke(
        cli,
        ["--lake", str(lake_root), "ingest", "binance", "--symbols", "BTCUSDT,ETHUSDT",
         "--start", "2024-01-28", "--end", "2024-01-31"],
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: binance: cannot reach {HOST}: offline? set BINANCE_BASE_URL for a mirror"], (
        r.output
    )
    assert "retry" not in caplog.text, caplog.text


def test_the_progress_bar_counts_unreachable_files_as_failed(offline: None, lake_root: Path) -> None:
    out = io.StringIO()
    ctx = RunContext(root=lake_root, settings=Settings(), console=Console(file=out, width=120))
    s = binance.run(
        ctx, ["BTCUSDT"], "1m", dt.date(2024, 1, 29), dt.date(2024, 1, 31), today=dt.date(2026, 1, 1)
    )
    assert not s.ok
    assert s.of("BTCUSDT").files_failed == 3 and s.of("BTCUSDT").files_done == 0
    assert "3/3 files" in out.getvalue() and "3 failed" in out.getvalue(), out.getvalue()

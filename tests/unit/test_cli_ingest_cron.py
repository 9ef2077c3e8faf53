"""`marketlake ingest` from cron: a run that finds another writer holding the lake waits once, skips the
rest with one line and exits 75 (EX_TEMPFAIL), not a wait per source and per store refresh; a run stopped
during a later source still says the earlier sources' errors."""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from ingest.common import IngestSummary
from lake.errors import LakeLocked, MarketlakeError, Terminated

ALL_FOUR = (
    '[data]\nstart = 2024-03-01\nend = 2024-03-05\n[binance]\nsymbols = ["BTCUSDT"]\n[polygon]\n'
    'symbols = ["AAPL"]\n[yahoo]\nsymbols = ["SPY"]\n[news]\nsymbols = ["SPY"]\n'
)


def _landing(source: str) -> Any:
    """A source's `run` that takes the lake's writer lock as the real ones do (ingest.sessions.land)."""

    def run(ctx: Any, *a: Any, **k: Any) -> IngestSummary:
        from ingest.sessions import land

        with land(ctx.root):
            return IngestSummary(source)

    return run


@pytest.fixture
def four_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ingest import binance, news, polygon, yahoo

    (tmp_path / "marketlake.toml").write_text(ALL_FOUR)
    for module, name in ((binance, "binance"), (polygon, "polygon"), (yahoo, "yahoo"), (news, "news")):
        monkeypatch.setattr(module, "run", _landing(name))


@pytest.fixture
def held(lake_root: Path) -> Iterator[None]:
    """Another process's writer lock on the lake (an flock on lake/.lock naming its pid)."""
    lake_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(lake_root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"pid 4242", 0)
        yield
    finally:
        os.close(fd)


@pytest.fixture
def acquires(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait for the writer lock, each cut to 0.2 s (the real one is 600 s)."""
    from lake.writer import LakeWriter

    calls: list[float] = []
    real = LakeWriter._acquire

    def acquire(self: LakeWriter, wait_seconds: float, on_wait: Any) -> None:
        calls.append(wait_seconds)
        real(self, 0.2, on_wait)

    monkeypatch.setattr(LakeWriter, "_acquire", acquire)
    return calls


def test_a_locked_lake_is_waited_for_once_the_rest_skipped_exit_75(
    runner: CliRunner, lake_root: Path, four_sources: None, held: None, acquires: list[float]
) -> None:
    r = runner.invoke(cli, ["--lake", str(lake_root), "-q", "ingest"])
    assert r.exit_code == 75, r.output
    assert len(acquires) == 1, (acquires, r.output)  # not once per source and again for the store
    assert r.stderr.count("waiting for the lake's writer lock, held by pid 4242") == 1, r.output
    assert "error: binance: the lake at" in r.stderr and "locked by a writer (pid 4242)" in r.stderr, r.output
    assert "; skipped: polygon, yahoo, news, feature store refresh" in r.stderr, r.output
    assert "feature store not refreshed" not in r.stderr and "error: polygon" not in r.stderr, r.output


def test_a_source_that_failed_before_the_lock_makes_it_exit_1(
    runner: CliRunner,
    lake_root: Path,
    four_sources: None,
    held: None,
    acquires: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ingest import binance

    def failed(*a: Any, **k: Any) -> IngestSummary:
        s = IngestSummary("binance")
        s.fail("BTCUSDT-1m-2024-03.zip: not a zip file", "BTCUSDT")
        return s

    monkeypatch.setattr(binance, "run", failed)
    r = runner.invoke(cli, ["--lake", str(lake_root), "-q", "ingest"])
    assert r.exit_code == 1, r.output  # a real failure is never hidden behind "try again later"
    assert len(acquires) == 1, (acquires, r.output)
    assert "error: binance: BTCUSDT-1m-2024-03.zip: not a zip file" in r.stderr, r.output
    assert "error: polygon: the lake at" in r.stderr, r.output
    assert "; skipped: yahoo, news, feature store refresh" in r.stderr, r.output


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [(Terminated(signal.SIGTERM), 143, "terminated (SIGTERM)"), (KeyboardInterrupt(), 130, "interrupted")],
)
def test_a_run_stopped_in_a_later_source_still_says_the_earlier_errors(
    runner: CliRunner,
    lake_root: Path,
    four_sources: None,
    monkeypatch: pytest.MonkeyPatch,
    stop: BaseException,
    code: int,
    said: str,
) -> None:
    from ingest import binance, polygon

    def failed(*a: Any, **k: Any) -> IngestSummary:
        s = IngestSummary("binance")
        s.fail("BTCUSDT-1m-2024-03.zip: not a zip file", "BTCUSDT")
        s.notes.append("days from 2024-03-05 on are not published yet")
        return s

    def stopped(*a: Any, **k: Any) -> IngestSummary:
        raise stop

    monkeypatch.setattr(binance, "run", failed)
    monkeypatch.setattr(polygon, "run", stopped)
    r = runner.invoke(cli, ["--lake", str(lake_root), "-q", "ingest"])
    assert r.exit_code == code, r.output
    assert "error: binance: BTCUSDT-1m-2024-03.zip: not a zip file" in r.stderr, r.output
    assert "note: days from 2024-03-05 on are not published yet" in r.stderr, r.output
    assert r.stderr.rstrip().endswith(said), r.output


def test_one_source_s_command_on_a_locked_lake_exits_75(
    runner: CliRunner, lake_root: Path, four_sources: None, held: None, acquires: list[float]
) -> None:
    args = ["ingest", "binance", "--symbols", "BTCUSDT", "--start", "2024-03-01", "--end", "2024-03-02"]
    r = runner.invoke(cli, ["--lake", str(lake_root), "-q", *args])
    assert r.exit_code == 75, r.output
    assert len(acquires) == 1, (acquires, r.output)
    assert "error: the lake at" in r.stderr and "locked by a writer (pid 4242)" in r.stderr, r.output


@pytest.mark.parametrize(
    ("error", "strict_code"),
    [(MarketlakeError("features_store: a file is damaged"), 1), (LakeLocked("the lake at X is locked"), 75)],
)
def test_strict_makes_a_failed_store_refresh_exit_non_zero(
    runner: CliRunner,
    lake_root: Path,
    four_sources: None,
    monkeypatch: pytest.MonkeyPatch,
    error: MarketlakeError,
    strict_code: int,
) -> None:
    from features import store

    def refresh(*a: Any, **k: Any) -> Any:
        raise error

    monkeypatch.setattr(store, "refresh", refresh)
    one = ["binance", "--symbols", "BTCUSDT", "--start", "2024-03-01", "--end", "2024-03-02"]
    for args, code in (
        (["ingest"], 0),  # by design: a warning, the data landed
        (["ingest", "--strict"], strict_code),
        (["ingest", *one], 0),
        (["ingest", "--strict", *one], strict_code),
    ):
        r = runner.invoke(cli, ["--lake", str(lake_root), "-q", *args])
        assert r.exit_code == code, (args, r.output)
        assert "warning: feature store not refreshed: " in r.stderr, (args, r.output)


def test_any_command_kept_out_of_the_lock_exits_75(
    runner: CliRunner, lake_root: Path, acquires: list[float]
) -> None:
    """Not only ingest: `features refresh` (and train, evaluate, runs sync) kept out of the writer lock for
    the whole wait exit 75, EX_TEMPFAIL, which a cron job tells from a failure (1)."""
    from lake.writer import LakeWriter

    with LakeWriter.open(lake_root):
        pass  # a lake
    fd = os.open(lake_root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"pid 4242", 0)
        r = runner.invoke(cli, ["--lake", str(lake_root), "-q", "features", "refresh"])
    finally:
        os.close(fd)
    assert r.exit_code == 75, r.output
    assert acquires, r.output  # it did wait for the lock
    assert "locked by a writer (pid 4242)" in r.stderr, r.output

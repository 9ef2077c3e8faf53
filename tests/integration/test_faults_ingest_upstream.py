"""Case 7 at the ingest level, what test_binance_faults.py does not cover already (it has: 500 then
success, persistent 500, 429 with Retry-After, a Retry-After beyond the limit, a body cut mid-way once
and always, a slow server once and always, connection refused): 503 bursts hitting every file of a run
at once, a 503 with Retry-After, and one run where each file meets a different fault that outlasts the
retries: bounded attempts, one clear error per file naming it and the reason, the good files still
land, exit status non-zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest import binance
from ingest.common import IngestSummary, RunContext
from ingest.http import RetryPolicy
from lake.config import Settings
from tests.binance_server import DataVision, klines, serve
from tests.faults import assert_lake_consistent

pytestmark = pytest.mark.integration

UTC = dt.UTC
FIRST = dt.date(2024, 1, 27)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(5)]
ATTEMPTS = 4
FAST = RetryPolicy(
    attempts=ATTEMPTS, backoff_base=0.01, backoff_max=0.05, connect_timeout=2, read_timeout=0.3,
    retry_after_max=5,
)  # fmt: skip


@pytest.fixture
def dv(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    for server in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", server.base_url)
        monkeypatch.setattr(binance, "RETRY", FAST)
        yield server


def _publish(
    dv: DataVision, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
) -> dict[tuple[str, dt.date], str]:
    paths = {}
    for k, sym in enumerate(symbols):
        for d in DAYS:
            start = dt.datetime.combine(d, dt.time(), UTC)
            paths[(sym, d)] = dv.publish(sym, "1m", d, "daily", klines(start, 120, base=100.0 + 1000 * k))
    return paths


def _ingest(root: Path, symbols: list[str]) -> IngestSummary:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return binance.run(ctx, symbols, "1m", DAYS[0], DAYS[-1], today=dt.date(2026, 1, 1))


def _count(root: Path, sql: str = "SELECT count(*) FROM bars") -> int:
    con = lake.connect(root, read_only=True)
    try:
        return int(con.execute(sql).fetchall()[0][0])
    finally:
        con.close()


def test_a_503_burst_on_every_file_at_once_is_ridden_out(dv: DataVision, lake_root: Path) -> None:
    paths = _publish(dv)
    for path in paths.values():  # the whole mirror is down for a moment: zips and CHECKSUMs alike
        dv.fault(path + ".CHECKSUM", "503")
        dv.fault(path, "503", "503")

    s = _ingest(lake_root, ["BTCUSDT", "ETHUSDT"])

    assert s.ok, s.errors
    assert _count(lake_root) == 10 * 120
    for path in paths.values():
        assert [st for _, _, st in dv.requests(path)] == [503, 503, 200]
        assert [st for _, _, st in dv.requests(path + ".CHECKSUM")] == [503, 200]
    assert_lake_consistent(lake_root)


def test_a_503_with_retry_after_waits_what_the_server_asks(dv: DataVision, lake_root: Path) -> None:
    paths = _publish(dv, ("BTCUSDT",))
    path = paths[("BTCUSDT", DAYS[0])]
    dv.fault(path, "503:1")

    s = _ingest(lake_root, ["BTCUSDT"])

    assert s.ok, s.errors
    (_, t1, st1), (_, t2, st2) = dv.requests(path)
    assert (st1, st2) == (503, 200)
    assert t2 - t1 >= 0.95, "retried before the server's Retry-After"


def test_each_file_failing_its_own_way_fails_alone_and_the_run_goes_on(
    dv: DataVision, lake_root: Path, runner: CliRunner
) -> None:
    """One run, five BTCUSDT days: four meet a fault that outlasts the retries, one is fine; ETHUSDT's
    days meet short bursts of the same faults and land."""
    paths = _publish(dv)
    faults = {
        DAYS[0]: ["503"] * 10,  # a 503 that does not stop
        DAYS[1]: ["cut"] * 10,  # the connection dropped mid-body, every time
        DAYS[2]: ["slow:1"] * 10,  # no answer within the read timeout, every time
        DAYS[3]: ["429:3600"],  # asked to come back in an hour: not waited for
    }
    for d, modes in faults.items():
        dv.fault(paths[("BTCUSDT", d)], *modes)
        once = "429:0" if d == DAYS[3] else modes[0]  # once only (and soon): the retry gets it
        dv.fault(paths[("ETHUSDT", d)], once)

    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest", "binance", "--symbols", "BTCUSDT,ETHUSDT",
                            "--start", DAYS[0].isoformat(), "--end", DAYS[-1].isoformat()])  # fmt: skip

    assert r.exit_code == 1, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, r.stderr
    reasons = {
        DAYS[0]: "HTTP 503",
        DAYS[1]: "checksum mismatch",
        DAYS[2]: "timed out",
        DAYS[3]: "Retry-After 3600s",
    }
    for d, reason in reasons.items():
        name = f"BTCUSDT-1m-{d.isoformat()}.zip"
        (line,) = [e for e in errors if name in e]
        assert reason in line, line
        assert "ETHUSDT" not in line
    # bounded: never more than the policy's attempts per download (a cut body is downloaded again once
    # more to rule out a transient cut: VERIFY_ATTEMPTS)
    assert len(dv.requests(paths[("BTCUSDT", DAYS[0])])) == ATTEMPTS
    assert len(dv.requests(paths[("BTCUSDT", DAYS[1])])) == binance.VERIFY_ATTEMPTS
    assert len(dv.requests(paths[("BTCUSDT", DAYS[2])])) == ATTEMPTS
    assert len(dv.requests(paths[("BTCUSDT", DAYS[3])])) == 1
    # the rest of the run went on: BTCUSDT's good day and all of ETHUSDT landed, nothing of the failed
    assert _count(lake_root, "SELECT count(*) FROM bars WHERE symbol = 'ETHUSDT'") == 5 * 120
    btc = "SELECT count(*) FROM bars WHERE symbol = 'BTCUSDT'"
    assert _count(lake_root, btc) == 120
    assert _count(lake_root, btc + f" AND ts::DATE = '{DAYS[4]}'") == 120
    assert not [p for p in (lake_root / "raw").rglob("BTCUSDT-1m-2024-01-2[789].zip")]
    assert_lake_consistent(lake_root)

"""`ingest binance` run from cron (issue: cron-mail noise): a day Data Vision has not published yet
(yesterday, today) and a monthly file not published yet (the first days of the next month) are said once,
in one line for every pair, not in a note per pair; a file missing for good is still named per pair."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import binance
from ingest.common import IngestSummary, RunContext
from ingest.http import RetryPolicy
from lake.config import Settings
from tests.binance_server import DataVision, klines, serve

pytestmark = pytest.mark.integration

UTC = dt.UTC
PAIRS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture
def dv(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    for server in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", server.base_url)
        monkeypatch.setattr(
            binance,
            "RETRY",
            RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.05, connect_timeout=2, read_timeout=2),
        )
        yield server


def ingest(root: Path, start: dt.date, end: dt.date, today: dt.date) -> IngestSummary:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return binance.run(ctx, PAIRS, "1m", start, end, today=today)


def publish_days(dv: DataVision, first: dt.date, last: dt.date, pairs: list[str] = PAIRS) -> None:
    d = first
    while d <= last:
        for s in pairs:
            dv.publish(s, "1m", d, "daily", klines(dt.datetime.combine(d, dt.time(0), UTC), 3))
        d += dt.timedelta(days=1)


def test_yesterday_not_published_yet_is_one_line_for_all_pairs(dv: DataVision, lake_root: Path) -> None:
    today = dt.date(2026, 11, 20)
    publish_days(dv, dt.date(2026, 11, 10), dt.date(2026, 11, 18))  # cron ran before the 19th appeared

    s = ingest(lake_root, dt.date(2026, 11, 10), dt.date(2026, 11, 19), today)

    assert s.ok, s.errors
    assert not any("not on Data Vision (404)" in n for n in s.notes), s.notes  # no note per pair
    pending = [n for n in s.notes if "2026-11-19" in n]
    assert len(pending) == 1, s.notes
    assert "not published yet" in pending[0] and "3 pair(s)" in pending[0], pending
    assert all(s.of(p).files_missing == 1 and s.of(p).files_done == 9 for p in PAIRS)


def test_a_range_of_yesterday_only_not_published_yet_is_no_failure(dv: DataVision, lake_root: Path) -> None:
    today = dt.date(2026, 11, 20)

    s = ingest(lake_root, dt.date(2026, 11, 19), dt.date(2026, 11, 19), today)

    assert s.ok, s.errors  # not "no file at all for BTCUSDT ...: is it a spot symbol?"
    assert len(s.notes) == 1 and "not published yet" in s.notes[0], s.notes


def test_a_range_up_to_today_says_not_published_once(dv: DataVision, lake_root: Path) -> None:
    today = dt.date(2026, 11, 20)
    publish_days(dv, dt.date(2026, 11, 17), dt.date(2026, 11, 18))

    s = ingest(lake_root, dt.date(2026, 11, 17), today, today)

    assert s.ok, s.errors
    assert len(s.notes) == 1 and "not published yet" in s.notes[0] and "2026-11-19" in s.notes[0], s.notes


def test_an_older_day_missing_is_still_named_per_pair(dv: DataVision, lake_root: Path) -> None:
    today = dt.date(2026, 11, 20)
    publish_days(dv, dt.date(2026, 11, 10), dt.date(2026, 11, 19))
    dv.remove("/data/spot/daily/klines/ETHUSDT/1m/ETHUSDT-1m-2026-11-15.zip")
    dv.remove("/data/spot/daily/klines/ETHUSDT/1m/ETHUSDT-1m-2026-11-15.zip.CHECKSUM")

    s = ingest(lake_root, dt.date(2026, 11, 10), dt.date(2026, 11, 19), today)

    assert s.ok, s.errors
    assert s.notes == ["not on Data Vision (404), 1 daily file(s): ETHUSDT-1m-2026-11-15"], s.notes


def test_a_monthly_file_not_published_yet_early_next_month_is_one_line(
    dv: DataVision, lake_root: Path
) -> None:
    today = dt.date(2026, 12, 2)  # October's monthly files are there, November's not yet
    publish_days(dv, dt.date(2026, 11, 1), dt.date(2026, 12, 1))

    s = ingest(lake_root, dt.date(2026, 11, 1), dt.date(2026, 12, 1), today)

    assert s.ok, s.errors
    assert not any("no monthly file upstream" in n for n in s.notes), s.notes  # none per pair
    monthly = [n for n in s.notes if "2026-11" in n and "monthly" in n]
    assert len(monthly) == 1 and "3 pair(s)" in monthly[0], s.notes
    assert all(s.of(p).files_done == 31 and s.of(p).files_missing == 0 for p in PAIRS)


def test_a_monthly_file_missing_long_after_its_month_is_still_named_per_pair(
    dv: DataVision, lake_root: Path
) -> None:
    today = dt.date(2026, 12, 20)
    publish_days(dv, dt.date(2026, 10, 1), dt.date(2026, 10, 31), ["BTCUSDT"])

    ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
    s = binance.run(ctx, ["BTCUSDT"], "1m", dt.date(2026, 10, 1), dt.date(2026, 10, 31), today=today)

    assert s.ok, s.errors
    assert s.notes == [
        "data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2026-10.zip: no monthly file upstream (404); using "
        "31 daily files"
    ], s.notes

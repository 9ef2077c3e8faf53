"""End to end: Polygon (moto server) and Yahoo (replayed responses) daily bars for the same days.

Both sources stamp a day from the XNYS calendar, so they meet on one key and the precedence rule of
`bars` picks Polygon's; a day only Yahoo has appears as Yahoo's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import lake
from ingest import polygon, yahoo
from ingest.common import RunContext
from ingest.ratelimit import RateLimiter
from lake.config import Settings
from tests.s3_server import BUCKET, S3Server, daily_key, day_file, ns, running_s3
from tests.yahoo_replay import FakeSleep, ReplaySession, chart_payload, epoch, isolate_yfinance, queue

pytestmark = pytest.mark.integration
UTC = dt.UTC
NY = ZoneInfo("America/New_York")
WED, FRI = dt.date(2024, 11, 27), dt.date(2024, 11, 29)


def ny(day: dt.date, hh: int, mm: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm), NY).astimezone(UTC)


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with running_s3() as server:
        server.client().create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POLYGON_S3_ENDPOINT", server.endpoint)
        monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "test-access")
        monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "test-secret")
        yield server


def test_polygon_day_wins_and_yahoo_fills_the_missing_day(
    s3_server: S3Server, lake_root: Path, tmp_path: Path
) -> None:
    isolate_yfinance(tmp_path / "yfcache")
    s3_server.client().put_object(
        Bucket=BUCKET,
        Key=daily_key(WED),
        Body=day_file([("AAPL", 33498439, 234.465, 235.06, 235.69, 233.8101, ns(ny(WED, 16, 0)), 466006)]),
    )
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
    assert polygon.run(ctx, ["AAPL"], "1d", WED, FRI).ok  # FRI has no Polygon file here

    session = ReplaySession()
    session.charts[("AAPL", "1d")] = queue(
        (
            200,
            chart_payload(
                "AAPL",
                "1d",
                [epoch(ny(WED, 9, 30)), epoch(ny(FRI, 9, 30))],
                open=[234.47000122070312, 234.80499267578125],
                high=[235.69000244140625, 237.80999755859375],
                low=[233.80999755859375, 233.97000122070312],
                close=[235.05999755859375, 237.3300018310547],
                volume=[33498400, 28481400],
            ),
        )
    )
    client = yahoo.YahooClient(session=session, sleep=FakeSleep(), limiter=RateLimiter(100, 1.0))
    now = dt.datetime(2024, 12, 2, tzinfo=UTC)
    assert yahoo.run(ctx, ["AAPL"], "1d", WED, FRI, client=client, now=now).ok

    con = lake.connect(lake_root, read_only=True, settings=Settings())
    got = con.execute("SELECT ts, available_at, source, close, volume FROM bars ORDER BY ts").fetchall()
    stored = con.execute("SELECT count(*) FROM lake_bars").fetchone()
    con.close()
    assert got == [
        (ny(WED, 9, 30), ny(WED, 20, 0), "polygon", 235.06, 33498439.0),  # after-hours end
        (ny(FRI, 9, 30), ny(FRI, 17, 0), "yahoo", 237.3300018310547, 28481400.0),  # early close + 4 h
    ]
    assert stored == (3,)

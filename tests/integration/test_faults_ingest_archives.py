"""Case 6 at the ingest level, the archive faults not already covered by test_binance_faults.py (zip
slip, zip bomb, truncated zip, zips without their one CSV): a Polygon day file with trailing garbage
after its gzip stream, an empty (0-byte) Binance zip whose CHECKSUM matches, an empty (0-byte) .csv.gz
object in S3. Each: a clear failure naming the file, nothing of it lands, exit status non-zero, and the
other files of the run still land.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest import binance
from ingest.http import RetryPolicy
from tests.binance_server import DataVision, checksum_line, klines, serve
from tests.faults import assert_lake_consistent
from tests.s3_server import BUCKET, S3Server, day_file, minute_key, ns, running_s3

pytestmark = pytest.mark.integration

UTC = dt.UTC


def rows(root: Path, sql: str) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --- binance: an empty zip ---------------------------------------------------------------------------


@pytest.fixture
def dv(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    for server in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", server.base_url)
        monkeypatch.setattr(binance, "RETRY", RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.02))
        yield server


def test_an_empty_binance_zip_with_a_matching_checksum_fails_alone(
    dv: DataVision, lake_root: Path, runner: CliRunner
) -> None:
    d1, d2 = dt.date(2024, 1, 30), dt.date(2024, 1, 31)
    name = "BTCUSDT-1m-2024-01-30.zip"
    dv.publish("BTCUSDT", "1m", d1, "daily", archive=b"", checksum=checksum_line(b"", name))
    dv.publish("BTCUSDT", "1m", d2, "daily", klines(dt.datetime(2024, 1, 31, tzinfo=UTC), 60))

    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest", "binance", "--symbols", "BTCUSDT",
                            "--start", d1.isoformat(), "--end", d2.isoformat()])  # fmt: skip

    assert r.exit_code == 1, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and name in errors[0] and "not a readable zip" in errors[0], r.stderr
    assert "nothing from it landed" in errors[0]
    assert rows(lake_root, "SELECT min(ts)::DATE, max(ts)::DATE, count(*) FROM bars") == [(d2, d2, 60)]
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]
    assert_lake_consistent(lake_root)


# --- polygon: trailing garbage, an empty object ------------------------------------------------------

D1, D2, D3 = dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with running_s3() as server:
        yield server


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    s3_server.reset()
    client = s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "test-access")
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "test-secret")
    return client


def _day(d: dt.date) -> bytes:
    t = dt.datetime.combine(d, dt.time(14, 30), UTC)
    return day_file([("AAPL", 10, 1.5, 1.6, 1.7, 1.4, ns(t + dt.timedelta(minutes=i)), 2) for i in range(50)])


def _polygon(runner: CliRunner, root: Path) -> Any:
    return runner.invoke(cli, ["--lake", str(root), "ingest", "polygon", "--tickers", "AAPL", "--interval",
                               "1m", "--start", D1.isoformat(), "--end", D3.isoformat()])  # fmt: skip


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_day(D2) + b"garbage after the gzip stream\n", "truncated or corrupt gzip"),
        (_day(D2) + _day(D2)[:20], "truncated or corrupt gzip"),  # a second member, cut short
        (b"", "unexpected header ''"),  # an empty object: not even a header
    ],
    ids=["trailing-garbage", "trailing-partial-member", "empty-object"],
)
def test_a_bad_polygon_day_file_fails_alone_and_lands_nothing(
    bucket: Any, lake_root: Path, runner: CliRunner, body: bytes, reason: str
) -> None:
    for d in (D1, D2, D3):
        bucket.put_object(Bucket=BUCKET, Key=minute_key(d), Body=body if d == D2 else _day(d))

    r = _polygon(runner, lake_root)

    assert r.exit_code == 1, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert minute_key(D2) in errors[0] and reason in errors[0], errors[0]
    days = rows(lake_root, "SELECT DISTINCT ts::DATE FROM bars ORDER BY 1")
    assert days == [(D1,), (D3,)], "the good days land, nothing of the bad one"
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(100,)]
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]
    assert not (lake_root / "raw/polygon" / (minute_key(D2) + ".ingested.json")).exists()
    assert_lake_consistent(lake_root)


def test_a_republished_good_file_replaces_the_bad_one_on_the_next_run(
    bucket: Any, lake_root: Path, runner: CliRunner
) -> None:
    """The failure is not sticky: the vendor fixes the file (new ETag), the next run lands it."""
    for d in (D1, D2, D3):
        bucket.put_object(Bucket=BUCKET, Key=minute_key(d), Body=_day(d) + b"junk" if d == D2 else _day(d))
    assert _polygon(runner, lake_root).exit_code == 1
    bucket.put_object(Bucket=BUCKET, Key=minute_key(D2), Body=_day(D2))

    r = _polygon(runner, lake_root)

    assert r.exit_code == 0, r.output
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(150,)]
    assert_lake_consistent(lake_root)

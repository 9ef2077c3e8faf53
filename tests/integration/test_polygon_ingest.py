"""Polygon flat files against moto in server mode on 127.0.0.1, with day files in the exact format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest import polygon
from ingest.common import RunContext
from lake.config import Settings
from tests.s3_server import BUCKET, S3Server, daily_key, day_file, minute_key, ns, running_s3

pytestmark = pytest.mark.integration
UTC = dt.UTC


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with running_s3() as server:
        yield server


class Bucket:
    def __init__(self, server: S3Server) -> None:
        self.client = server.client()

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    s3_server.reset()
    b = Bucket(s3_server)
    b.client.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "test-access")
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "test-secret")
    return b


def ingest(root: Path, tickers: list[str], interval: str, start: dt.date, end: dt.date) -> Any:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return polygon.run(ctx, tickers, interval, start, end)


def rows(root: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def ny(day: dt.date, hh: int, mm: int) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(hh, mm), ZoneInfo("America/New_York")).astimezone(UTC)


D1 = dt.date(2024, 1, 2)
D2 = dt.date(2024, 1, 3)
D3 = dt.date(2024, 1, 4)


def lake_files(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            out[str(p.relative_to(root))] = (p.stat().st_mtime_ns, p.read_bytes())
    return out


def test_minute_bars_land_at_the_right_instants_with_the_right_values(
    bucket: Bucket, lake_root: Path
) -> None:
    pre = ny(D1, 4, 0)  # extended hours, kept
    regular = ny(D1, 9, 30)
    late = ny(D1, 19, 59)  # 00:59 UTC the next day: still the 2024-01-02 file's bar
    bucket.put(
        minute_key(D1),
        day_file(
            [
                ("AAPL", 1200, 187.15, 187.2, 187.31, 187.01, ns(pre), 31),
                ("MSFT", 999, 370.0, 371.0, 372.0, 369.0, ns(regular), 10),
                # close (185.25) before high (186.5) and low (184.75): the order trap
                ("AAPL", 35100.5, 185.5, 185.25, 186.5, 184.75, ns(regular), 411),
                ("SPY", 50000, 472.16, 472.2, 472.5, 472.01, ns(regular), 900),
                ("AAPL", 800, 186, 186.1, 186.2, 185.9, ns(late), 7),
            ]
        ),
    )
    s = ingest(lake_root, ["AAPL", "SPY"], "1m", D1, D1)
    assert s.ok, s.errors
    got = rows(
        lake_root,
        "SELECT symbol, source, asset_class, interval, ts, available_at, open, high, low, close, volume, trades"
        " FROM bars ORDER BY symbol, ts",
    )
    m = dt.timedelta(minutes=1)
    assert got == [
        ("AAPL", "polygon", "stock", "1m", pre, pre + m, 187.15, 187.31, 187.01, 187.2, 1200.0, 31),
        ("AAPL", "polygon", "stock", "1m", regular, regular + m, 185.5, 186.5, 184.75, 185.25, 35100.5, 411),
        ("AAPL", "polygon", "stock", "1m", late, late + m, 186.0, 186.2, 185.9, 186.1, 800.0, 7),
        ("SPY", "polygon", "etf", "1m", regular, regular + m, 472.16, 472.5, 472.01, 472.2, 50000.0, 900),
    ]
    assert regular == dt.datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert late == dt.datetime(2024, 1, 3, 0, 59, tzinfo=UTC)
    # MSFT was in the file but not asked for
    assert rows(lake_root, "SELECT count(*) FROM lake_bars WHERE symbol = 'MSFT'") == [(0,)]
    # partitioned by symbol and UTC month
    assert (
        lake_root / "datasets/bars/source=polygon/interval=1m/symbol=AAPL/period=2024-01/data.parquet"
    ).exists()
    # the raw file stays in the cache with its ETag
    meta = (lake_root / "raw/polygon" / (minute_key(D1) + ".meta.json")).read_text()
    assert '"etag"' in meta


def test_daily_bars_stamped_by_the_calendar_normal_day_and_early_close_via_cli(
    bucket: Bucket, lake_root: Path, runner: CliRunner
) -> None:
    normal, thanksgiving, early = dt.date(2024, 11, 27), dt.date(2024, 11, 28), dt.date(2024, 11, 29)
    # Polygon stamps its day bars 16:00 New York (21:00 UTC in winter), whatever the session's close
    bucket.put(
        daily_key(normal),
        day_file([("AAPL", 33498439, 234.465, 235.06, 235.69, 233.8101, ns(ny(normal, 16, 0)), 466006)]),
    )
    bucket.put(
        daily_key(early),
        day_file([("AAPL", 28481377, 234.805, 237.33, 237.81, 233.97, ns(ny(early, 16, 0)), 302341)]),
    )
    r = runner.invoke(
        cli,
        ["--lake", str(lake_root), "ingest", "polygon", "--tickers", "AAPL", "--interval", "1d",
         "--start", "2024-11-27", "--end", "2024-11-30"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    got = rows(
        lake_root, "SELECT ts, available_at, open, high, low, close, volume, trades FROM bars ORDER BY ts"
    )
    assert got == [
        (dt.datetime(2024, 11, 27, 14, 30, tzinfo=UTC), dt.datetime(2024, 11, 28, 1, 0, tzinfo=UTC),
         234.465, 235.69, 233.8101, 235.06, 33498439.0, 466006),
        (dt.datetime(2024, 11, 29, 14, 30, tzinfo=UTC), dt.datetime(2024, 11, 29, 22, 0, tzinfo=UTC),
         234.805, 237.81, 233.97, 237.33, 28481377.0, 302341),
    ]  # fmt: skip
    assert not thanksgiving.weekday() >= 5  # a weekday holiday with no file: missing, not an error
    assert (
        lake_root / "datasets/bars/source=polygon/interval=1d/symbol=AAPL/period=2024/data.parquet"
    ).exists()


def test_daily_bar_off_its_day_is_rejected_not_moved(bucket: Bucket, lake_root: Path) -> None:
    day = dt.date(2024, 11, 27)
    wrong = ny(day, 16, 0) + dt.timedelta(days=1)
    bucket.put(daily_key(day), day_file([("AAPL", 1, 2, 2, 2, 2, ns(wrong), 1)]))
    s = ingest(lake_root, ["AAPL"], "1d", day, day)
    assert s.ok and s.of("AAPL").rows_rejected == 1
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(0,)]
    (reason,) = rows(lake_root, "SELECT reason FROM bars_rejected")[0]
    assert "not on the trading day 2024-11-27" in reason


def test_17_digit_window_start_is_rejected_with_a_reason_never_rescaled(
    bucket: Bucket, lake_root: Path
) -> None:
    good = ny(D1, 9, 30)
    bad17 = str(ns(ny(D1, 9, 31)))[:17]
    bucket.put(
        minute_key(D1),
        day_file([("AAPL", 10, 1.5, 1.6, 1.7, 1.4, ns(good), 2), ("AAPL", 11, 1.6, 1.7, 1.8, 1.5, bad17, 3)]),
    )
    s = ingest(lake_root, ["AAPL"], "1m", D1, D1)
    assert s.ok, s.errors
    assert s.of("AAPL").rows_landed == 1 and s.of("AAPL").rows_rejected == 1
    assert rows(lake_root, "SELECT ts FROM bars") == [(good,)]
    (sym, line, raw, ts, reason, source_file) = rows(
        lake_root, "SELECT symbol, line_number, raw, ts, reason, source_file FROM bars_rejected"
    )[0]
    assert (sym, line, ts) == ("AAPL", 3, None)
    assert bad17 in raw and "not 19 digits" in reason and "never rescaled" in reason
    assert source_file == f"s3://{BUCKET}/{minute_key(D1)}"


def test_row_with_a_missing_field_is_rejected(bucket: Bucket, lake_root: Path) -> None:
    t = ny(D1, 10, 0)
    bucket.put(
        minute_key(D1),
        day_file(
            [
                ("AAPL", 10, 1.5, "", 1.7, 1.4, ns(t), 2),  # empty close
                f"AAPL,10,1.5,1.6,1.7,1.4,{ns(t + dt.timedelta(minutes=1))}",  # no transactions column
                ("AAPL", 12, 1.5, 1.6, 1.7, 1.4, ns(t + dt.timedelta(minutes=2)), 4),
            ]
        ),
    )
    s = ingest(lake_root, ["AAPL"], "1m", D1, D1)
    assert s.ok
    assert rows(lake_root, "SELECT volume FROM bars") == [(12.0,)]
    got = rows(lake_root, "SELECT line_number, reason FROM bars_rejected ORDER BY line_number")
    assert got[0] == (2, "missing field close")
    assert got[1][0] == 3 and "7 fields, expected 8" in got[1][1]


def test_ticker_with_a_dot_lands(bucket: Bucket, lake_root: Path) -> None:
    t = ny(D1, 9, 30)
    bucket.put(
        minute_key(D1),
        day_file([("BRK.B", 300, 362.1, 362.3, 362.5, 362.0, ns(t), 50), ("BRKXB", 1, 1, 1, 1, 1, ns(t), 1)]),
    )
    s = ingest(lake_root, ["BRK.B"], "1m", D1, D1)
    assert s.ok, s.errors
    assert rows(lake_root, "SELECT symbol, close FROM bars") == [("BRK.B", 362.3)]
    assert (lake_root / "datasets/bars/source=polygon/interval=1m/symbol=BRK.B/period=2024-01").is_dir()


def test_truncated_gzip_fails_that_file_only_and_lands_nothing_of_it(
    bucket: Bucket, lake_root: Path, runner: CliRunner
) -> None:
    for d in (D1, D2, D3):
        body = day_file(
            [
                ("AAPL", 10, 1.5, 1.6, 1.7, 1.4, ns(ny(d, 9, 30) + dt.timedelta(minutes=i)), 2)
                for i in range(50)
            ]
        )
        bucket.put(minute_key(d), body[: len(body) // 2] if d == D2 else body)
    r = runner.invoke(
        cli,
        ["--lake", str(lake_root), "ingest", "polygon", "--tickers", "AAPL", "--interval", "1m",
         "--start", D1.isoformat(), "--end", D3.isoformat()],
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert minute_key(D2) in r.output and "truncated or corrupt gzip" in r.output
    days = rows(
        lake_root, "SELECT DISTINCT CAST(ts AT TIME ZONE 'America/New_York' AS DATE) FROM bars ORDER BY 1"
    )
    assert days == [(D1,), (D3,)]
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(100,)]
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]


def test_unchanged_etag_is_skipped_and_a_rerun_changes_nothing(bucket: Bucket, lake_root: Path) -> None:
    for d in (D1, D2):
        bucket.put(
            minute_key(d),
            day_file(
                [("AAPL", 10, 1.5, 1.6, 1.7, 1.4, ns(ny(d, 9, 30)), 2), ("AAPL", 1, 1, 1, 1, 1, "123", 1)]
            ),
        )
    first = ingest(lake_root, ["AAPL"], "1m", D1, D2)
    assert first.ok and first.of("AAPL").files_done == 2
    before = lake_files(lake_root)
    second = ingest(lake_root, ["AAPL"], "1m", D1, D2)
    assert second.ok
    assert (second.of("AAPL").files_skipped, second.of("AAPL").files_done) == (2, 0)
    assert lake_files(lake_root) == before  # same bytes and mtimes: raw cache, datasets, manifests


def test_a_new_ticker_on_a_cached_unchanged_file_is_read_from_the_cache(
    bucket: Bucket, lake_root: Path
) -> None:
    t = ny(D1, 9, 30)
    bucket.put(
        minute_key(D1),
        day_file([("AAPL", 10, 1.5, 1.6, 1.7, 1.4, ns(t), 2), ("MSFT", 20, 3.5, 3.6, 3.7, 3.4, ns(t), 5)]),
    )
    assert ingest(lake_root, ["AAPL"], "1m", D1, D1).ok
    raw = lake_root / "raw/polygon" / minute_key(D1)
    mtime = raw.stat().st_mtime_ns
    s = ingest(lake_root, ["AAPL", "MSFT"], "1m", D1, D1)
    assert s.ok
    assert (s.of("AAPL").files_skipped, s.of("MSFT").files_done) == (1, 1)
    assert raw.stat().st_mtime_ns == mtime  # not downloaded again
    assert rows(lake_root, "SELECT symbol, close FROM bars ORDER BY symbol") == [("AAPL", 1.6), ("MSFT", 3.6)]


def test_changed_etag_is_reingested_and_replaces_the_day(bucket: Bucket, lake_root: Path) -> None:
    t = ny(D1, 9, 30)
    m = dt.timedelta(minutes=1)
    bucket.put(
        minute_key(D1),
        day_file(
            [
                ("AAPL", 10, 1.5, 1.6, 1.7, 1.4, ns(t), 2),
                ("AAPL", 11, 1.6, 1.7, 1.8, 1.5, ns(t + m), 3),
                ("AAPL", 1, 1, 1, 1, 1, "1", 1),
            ]
        ),
    )
    bucket.put(minute_key(D2), day_file([("AAPL", 7, 2.5, 2.6, 2.7, 2.4, ns(ny(D2, 9, 30)), 2)]))
    assert ingest(lake_root, ["AAPL"], "1m", D1, D2).ok
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(1,)]
    # the vendor republishes D1: the first bar corrected, the second one gone, no bad row
    bucket.put(minute_key(D1), day_file([("AAPL", 10, 1.5, 1.65, 1.7, 1.4, ns(t), 2)]))
    s = ingest(lake_root, ["AAPL"], "1m", D1, D2)
    assert s.ok
    assert (s.of("AAPL").files_done, s.of("AAPL").files_skipped) == (1, 1)
    assert rows(lake_root, "SELECT ts, close FROM bars ORDER BY ts") == [(t, 1.65), (ny(D2, 9, 30), 2.6)]
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]
    manifest = (
        lake_root / "datasets/bars/source=polygon/interval=1m/symbol=AAPL/period=2024-01/_manifest.json"
    ).read_text()
    assert manifest.count(minute_key(D1)) == 1  # the old version's input is no longer listed


def test_non_trading_days_have_no_file_and_that_is_not_an_error(bucket: Bucket, lake_root: Path) -> None:
    s = ingest(lake_root, ["AAPL"], "1m", dt.date(2024, 1, 6), dt.date(2024, 1, 7))  # a weekend
    assert s.ok, s.errors
    assert s.of("AAPL").files_missing == 2


def test_lf_endings_and_a_final_newline_are_accepted_too(bucket: Bucket, lake_root: Path) -> None:
    bucket.put(
        minute_key(D1),
        day_file([("AAPL", 10, 1.5, 1.6, 1.7, 1.4, ns(ny(D1, 9, 30)), 2)], crlf=False, final_newline=True),
    )
    s = ingest(lake_root, ["AAPL"], "1m", D1, D1)
    assert s.ok and s.of("AAPL").rows_landed == 1


def test_unexpected_header_fails_the_file_naming_it(bucket: Bucket, lake_root: Path) -> None:
    import gzip

    body = (
        "ticker,volume,open,high,low,close,window_start,transactions\r\nAAPL,1,1,1,1,1,1704205800000000000,1"
    )
    bucket.put(minute_key(D1), gzip.compress(body.encode()))
    s = ingest(lake_root, ["AAPL"], "1m", D1, D1)
    assert not s.ok
    assert minute_key(D1) in s.errors[0] and "unexpected header" in s.errors[0]
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(0,)]

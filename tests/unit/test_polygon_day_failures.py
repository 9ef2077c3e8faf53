"""One Polygon day's trouble stays that day's: a HEAD error fails that day and the others land; refused
keys stop the run but its summary is still reported; a trading day with no file is named."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from cli import cli
from ingest import polygon, s3
from ingest.common import IngestSummary, RunContext
from lake.config import Settings
from tests.s3_server import day_file, ns

NY = ZoneInfo("America/New_York")
D1, D2, D3 = dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)


class _Body:
    def __init__(self, b: bytes) -> None:
        self.b = b

    def iter_chunks(self, n: int) -> Iterator[bytes]:
        yield self.b


class FakeS3:
    """Answers HEAD/GET for day files; `errors[day] = (status, code)` makes that day's HEAD fail."""

    def __init__(
        self, errors: dict[dt.date, tuple[int, str]], absent: frozenset[dt.date] = frozenset()
    ) -> None:
        self.errors = errors
        self.absent = absent

    def _day(self, key: str) -> dt.date:
        return dt.date.fromisoformat(key.rsplit("/", 1)[1].removesuffix(".csv.gz"))

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        def error(status: int, code: str) -> ClientError:
            meta: Any = {"HTTPStatusCode": status}
            return ClientError({"Error": {"Code": code}, "ResponseMetadata": meta}, "HeadObject")

        day = self._day(Key)
        if day in self.errors:
            status, code = self.errors[day]
            raise error(status, code)
        if day in self.absent:
            raise error(404, "404")
        return {"ETag": f'"{day}"'}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        day = self._day(Key)
        t = ns(dt.datetime.combine(day, dt.time(9, 30), NY))
        body = day_file([("AAPL", 10, 1.5, 1.6, 1.7, 1.4, t, 2)])
        return {"Body": _Body(body), "ContentLength": len(body), "ETag": f'"{day}"', "LastModified": None}


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "b")


def run(root: Path, fake: FakeS3, monkeypatch: pytest.MonkeyPatch, end: dt.date = D3) -> IngestSummary:
    monkeypatch.setattr(s3, "make_client", lambda settings: fake)
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return polygon.run(ctx, ["AAPL"], "1m", D1, end, today=dt.date(2025, 1, 1))


def test_a_head_error_fails_that_day_only(lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = run(lake_root, FakeS3({D1: (500, "InternalError")}), monkeypatch)
    assert not s.ok
    (err,) = s.errors
    assert "us_stocks_sip/minute_aggs_v1/2024/01/2024-01-02.csv.gz" in err and "InternalError" in err, err
    a = s.of("AAPL")
    assert (a.files_failed, a.files_done, a.rows_landed) == (1, 2, 2)


def test_refused_keys_stop_the_run_and_the_summary_is_still_printed(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    s = run(lake_root, FakeS3({D2: (403, "InvalidAccessKeyId")}), monkeypatch)
    assert not s.ok
    (err,) = s.errors
    assert "access denied" in err and "stopped at 2024-01-03" in err, err
    assert s.of("AAPL").files_done == 1  # D1 landed; D3 was not requested

    r = runner.invoke(
        cli,
        ["--lake", str(lake_root), "ingest", "polygon", "--tickers", "AAPL",
         "--start", "2024-01-02", "--end", "2024-01-04"],
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert "access denied" in r.output and "ingest summary" in r.output, r.output


def test_a_403_on_one_day_fails_that_day_alone_when_the_keys_read_others(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    # a day outside the plan's history: AccessDenied on that object only; the other days land
    for denied in ({D2: (403, "AccessDenied")}, {D1: (403, "403")}):
        root = lake_root / str(next(iter(denied)))
        s = run(root, FakeS3(denied), monkeypatch)
        assert not s.ok
        (err,) = s.errors
        (day,) = denied
        assert (
            f"access denied (403) to 1 day file(s), {day} (s3://flatfiles/{polygon.object_key('1m', day)})"
            in (err)
        ), err
        assert "stopped" not in err and "POLYGON_S3_ACCESS_KEY" not in err, err
        a = s.of("AAPL")
        assert (a.files_done, a.files_failed, a.rows_landed) == (2, 1, 2)

    monkeypatch.setattr(s3, "make_client", lambda settings: FakeS3({D1: (403, "403"), D2: (403, "403")}))
    r = runner.invoke(
        cli,
        ["--lake", str(lake_root / "cli"), "-q", "ingest", "polygon", "--tickers", "AAPL",
         "--start", "2024-01-02", "--end", "2024-01-04"],
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert "error: polygon: access denied (403) to 2 day file(s), 2024-01-02, 2024-01-03" in r.stderr, (
        r.output
    )


def test_a_403_on_every_day_blames_the_keys_and_stops(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeS3({D1: (403, "403"), D2: (403, "403"), D3: (403, "403")})  # a HEAD's 403 has no error code
    s = run(lake_root, fake, monkeypatch)
    (err,) = s.errors
    assert "access denied" in err and "check POLYGON_S3_ACCESS_KEY and POLYGON_S3_SECRET_KEY" in err, err
    assert "stopped at 2024-01-02" in err, err
    assert s.of("AAPL").files_done == 0


def test_a_past_trading_day_without_a_file_is_named(lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sat = dt.date(2024, 1, 6)
    s = run(lake_root, FakeS3({}, absent=frozenset({D2, sat})), monkeypatch, end=sat)
    assert s.ok, s.errors
    notes = [n for n in s.notes if "no file" in n]
    assert notes == [
        "s3://flatfiles/us_stocks_sip/minute_aggs_v1/2024/01/2024-01-03.csv.gz: 2024-01-03 was an NYSE "
        "trading day but Polygon has no file for it"
    ], s.notes
    assert s.of("AAPL").files_missing == 2  # the Saturday is missing too, but that is no gap


def test_ingest_of_every_source_runs_and_reports_each_despite_one_failing(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ingest import binance, yahoo
    from lake.errors import MarketlakeError

    (tmp_path / "marketlake.toml").write_text(
        '[data]\nstart = 2024-01-02\nend = 2024-01-02\n[binance]\nsymbols = ["BTCUSDT"]\n'
        '[polygon]\nsymbols = []\n[yahoo]\nsymbols = ["AAPL"]\n[news]\nsymbols = []\n'
    )
    ran: list[str] = []

    def boom(*a: Any, **k: Any) -> IngestSummary:
        ran.append("binance")
        raise MarketlakeError("binance: the mirror is on fire")

    def fine(*a: Any, **k: Any) -> IngestSummary:
        ran.append("yahoo")
        s = IngestSummary("yahoo")
        s.of("AAPL").rows_landed = 7
        return s

    monkeypatch.setattr(binance, "run", boom)
    monkeypatch.setattr(yahoo, "run", fine)
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest"])
    assert r.exit_code == 1, r.output
    assert ran == ["binance", "yahoo"]
    assert "error: binance: the mirror is on fire" in r.output
    assert "yahoo: ingest summary" in r.output, r.output


class VersionedS3(FakeS3):
    """One day file whose content and ETag change when `version` does (a republished day)."""

    def __init__(self) -> None:
        super().__init__({})
        self.version = 1

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"ETag": f'"v{self.version}"'}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        t = ns(dt.datetime.combine(D1, dt.time(9, 30), NY))
        px = float(self.version)
        body = day_file([("AAPL", 10, px, px, px, px, t, 2), ("MSFT", 10, px, px, px, px, t, 2)])
        return {
            "Body": _Body(body),
            "ContentLength": len(body),
            "ETag": f'"v{self.version}"',
            "LastModified": None,
        }


def test_rows_landed_counts_bars_new_to_the_lake_not_rows_read(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = run(lake_root, FakeS3({}), monkeypatch)
    assert (s.of("AAPL").files_done, s.of("AAPL").rows_landed) == (3, 3)

    class Republished(FakeS3):  # every day file again under a new ETag, its rows unchanged
        def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
            return {"ETag": f'"again-{self._day(Key)}"'}

        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
            return {**super().get_object(Bucket, Key), "ETag": f'"again-{self._day(Key)}"'}

    s = run(lake_root, Republished({}), monkeypatch)
    assert s.ok, s.errors
    assert (s.of("AAPL").files_done, s.of("AAPL").rows_landed) == (3, 0)


def test_a_republished_day_is_reingested_after_a_crash_before_its_ledger(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lake

    fake = VersionedS3()
    monkeypatch.setattr(s3, "make_client", lambda settings: fake)
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
    assert polygon.run(ctx, ["AAPL", "MSFT"], "1m", D1, D1, today=dt.date(2025, 1, 1)).ok
    fake.version = 2  # republished
    real_land = polygon.land_file

    def killed(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt("killed after the download, before landing")

    monkeypatch.setattr(polygon, "land_file", killed)
    with pytest.raises(KeyboardInterrupt):
        polygon.run(ctx, ["AAPL"], "1m", D1, D1, today=dt.date(2025, 1, 1))
    monkeypatch.setattr(polygon, "land_file", real_land)
    assert polygon.run(ctx, ["AAPL"], "1m", D1, D1, today=dt.date(2025, 1, 1)).ok
    con = lake.connect(lake_root, read_only=True, settings=Settings())
    got = con.execute("SELECT symbol, close FROM lake_bars ORDER BY symbol").fetchall()
    assert got == [("AAPL", 2.0), ("MSFT", 2.0)]  # MSFT from the new version too, not the old one


class SlowS3(FakeS3):
    """A FakeS3 whose downloads take a while and count how many run at once."""

    def __init__(self) -> None:
        super().__init__({})
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(0.05)
            return super().get_object(Bucket, Key)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_day_files_are_fetched_concurrently_within_the_bound_and_land_in_day_order(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polygon, "CONCURRENCY", 3)
    fake = SlowS3()
    said: list[str] = []
    monkeypatch.setattr(RunContext, "say", lambda self, m: said.append(m))
    s = run(lake_root, fake, monkeypatch, end=dt.date(2024, 1, 12))  # 11 days (the fake serves every day)
    assert s.ok, s.errors
    assert s.of("AAPL").files_done == 11
    assert 1 < fake.peak <= 3, fake.peak
    landed = [m.split()[2] for m in said if m.startswith("polygon 1m 2024-") and " bars, " in m]
    assert landed == sorted(landed) and len(landed) == 11, said


def test_the_etfs_setting_decides_asset_class(lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lake

    monkeypatch.setattr(s3, "make_client", lambda settings: FakeS3({}))
    for etfs, want in (([], "stock"), (["AAPL"], "etf")):
        root = lake_root / want
        ctx = RunContext(root=root, settings=Settings(etfs=etfs), quiet=True)
        s = polygon.run(ctx, ["AAPL"], "1m", D1, D1, today=dt.date(2025, 1, 1))
        assert s.ok, s.errors
        rows = lake.connect(root).sql("SELECT DISTINCT asset_class FROM bars").fetchall()
        assert rows == [(want,)]


def test_ctrl_c_while_landing_fetches_no_queued_day(lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeS3({})
    fetched: list[dt.date] = []
    real_fetch = polygon._fetch_day

    def counting(client: Any, settings: Any, cache: Any, interval: str, day: dt.date) -> Any:
        fetched.append(day)
        return real_fetch(client, settings, cache, interval, day)

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(polygon, "_fetch_day", counting)
    monkeypatch.setattr(polygon, "_ingest_day", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(lake_root, fake, monkeypatch, end=dt.date(2024, 3, 29))  # three months of days queued
    assert len(fetched) <= 2 * polygon.CONCURRENCY, len(fetched)  # the queue was dropped, not drained


class RefusedWithAFlakyCheck(FakeS3):
    """Keys refused (a plain 403 on every object); the second HEAD of a day (the keys check) meets a 503."""

    def __init__(self) -> None:
        super().__init__({D1: (403, "403"), D2: (403, "403"), D3: (403, "403")})
        self.heads: dict[dt.date, int] = {}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        day = self._day(Key)
        self.heads[day] = self.heads.get(day, 0) + 1
        if self.heads[day] == 2:
            meta: Any = {"HTTPStatusCode": 503}
            raise ClientError({"Error": {"Code": "503"}, "ResponseMetadata": meta}, "HeadObject")
        return super().head_object(Bucket, Key)


def test_a_keys_check_that_cannot_tell_says_so_and_gives_the_key_hint(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = RefusedWithAFlakyCheck()
    s = run(lake_root, fake, monkeypatch)
    (err,) = s.errors
    assert "access denied (403) to 3 day file(s), 2024-01-02, 2024-01-03, 2024-01-04" in err, err
    assert "keys read" not in err, err  # no day was read: never claim the keys read one
    assert "could not be told" in err and "503" in err, err
    assert "check POLYGON_S3_ACCESS_KEY and POLYGON_S3_SECRET_KEY" in err, err
    assert fake.heads[D3] == 2  # the check was made (on the run's last day) and failed
    assert s.of("AAPL").files_failed == 3


def test_the_denied_days_error_says_what_the_keys_did(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a day was read: named
    s = run(lake_root / "read", FakeS3({D1: (403, "AccessDenied")}), monkeypatch)
    (err,) = s.errors
    assert "although the keys read 2024-01-04's file" in err, err  # the check's day
    # only a 404 answered (the check's day has no file): the keys were accepted, no day was read
    s = run(lake_root / "404", FakeS3({D1: (403, "403")}, absent=frozenset({D2, D3})), monkeypatch)
    (err,) = s.errors
    assert "access denied (403) to 1 day file(s), 2024-01-02" in err, err
    assert "keys read" not in err and "the keys were accepted (a missing file answered 404)" in err, err
    assert "stopped" not in err, err


def test_a_store_answering_403_for_a_missing_file_fails_no_day_without_one(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # S3 answers 403, not 404, for a missing object to keys that may not list the bucket: a weekend or a
    # day not yet published is missing then, not denied, and the keys are not blamed for it
    sat = dt.date(2024, 1, 6)
    s = run(lake_root, FakeS3({sat: (403, "AccessDenied")}), monkeypatch, end=sat)
    assert s.ok, s.errors
    a = s.of("AAPL")
    assert (a.files_done, a.files_missing, a.files_failed) == (4, 1, 0)

    monkeypatch.setattr(s3, "make_client", lambda settings: FakeS3({D2: (403, "403"), D3: (403, "403")}))
    ctx = RunContext(root=lake_root / "recent", settings=Settings(), quiet=True)
    s = polygon.run(ctx, ["AAPL"], "1m", D1, D3, today=dt.date(2024, 1, 4))  # D3 today, D2 yesterday
    assert s.ok, s.errors
    assert (s.of("AAPL").files_done, s.of("AAPL").files_missing) == (1, 2)


def test_a_403_on_a_weekend_first_does_not_hide_refused_keys(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sat, mon = dt.date(2024, 1, 6), dt.date(2024, 1, 8)
    fake = FakeS3({sat: (403, "403"), dt.date(2024, 1, 7): (403, "403"), mon: (403, "403")})
    monkeypatch.setattr(s3, "make_client", lambda settings: fake)
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
    s = polygon.run(ctx, ["AAPL"], "1m", sat, mon, today=dt.date(2025, 1, 1))
    (err,) = s.errors
    assert "check POLYGON_S3_ACCESS_KEY" in err and "stopped at 2024-01-08" in err, err

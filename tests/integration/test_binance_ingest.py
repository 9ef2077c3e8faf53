"""`ingest binance` against a local Data Vision: landing at the right instants, file selection,
idempotent re-runs, upstream replacement, and the command line."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import lake
from cli import cli
from ingest import binance
from ingest.common import IngestSummary, RunContext
from ingest.http import RetryPolicy
from lake.config import Settings
from tests.binance_server import DataVision, Kline, csv_bytes, klines, serve, zip_path

pytestmark = pytest.mark.integration

UTC = dt.UTC
TODAY = dt.date(2026, 1, 15)


@pytest.fixture
def dv(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    for server in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", server.base_url)
        monkeypatch.setattr(
            binance,
            "RETRY",
            RetryPolicy(attempts=4, backoff_base=0.01, backoff_max=0.05, connect_timeout=2, read_timeout=2),
        )
        yield server


def ingest(
    root: Path, symbols: list[str], start: dt.date, end: dt.date, interval: str = "1m"
) -> IngestSummary:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return binance.run(ctx, symbols, interval, start, end, today=TODAY)


def bars(root: Path, symbol: str = "BTCUSDT") -> list[dict[str, Any]]:
    con = lake.connect(root, read_only=True)
    rel = con.execute(
        "SELECT symbol, source, asset_class, interval, ts, available_at, open, high, low, close, volume, trades "
        "FROM bars WHERE symbol = ? ORDER BY ts",
        [symbol],
    )
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def day(d: str) -> dt.date:
    return dt.date.fromisoformat(d)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def expect(rows: list[Kline], step: dt.timedelta = dt.timedelta(minutes=1)) -> list[tuple[Any, ...]]:
    return [
        (
            k.ts,
            k.ts + step,
            float(k.open),
            float(k.high),
            float(k.low),
            float(k.close),
            float(k.volume),
            k.count,
        )
        for k in rows
    ]


def got(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["ts"].astimezone(UTC),
            r["available_at"].astimezone(UTC),
            r["open"],
            r["high"],
            r["low"],
            r["close"],
            r["volume"],
            r["trades"],
        )
        for r in rows
    ]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under datasets/ and raw/ with its size and mtime (ns)."""
    out = {}
    for base in (root / "datasets", root / "raw"):
        for p in sorted(base.rglob("*")):
            if p.is_file():
                st = p.stat()
                out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def test_a_month_in_milliseconds_lands_at_the_right_utc_instants(dv: DataVision, lake_root: Path) -> None:
    rows = klines(at("2024-02-01T00:00"), 29 * 1440)
    dv.publish("BTCUSDT", "1m", day("2024-02-01"), "monthly", rows)
    first = csv_bytes(rows[:1]).decode()
    assert first.startswith("1706745600000,")  # 2024-02-01T00:00:00Z in ms: what Data Vision writes

    s = ingest(lake_root, ["BTCUSDT"], day("2024-02-01"), day("2024-02-29"))

    assert s.ok, s.errors
    assert s.of("BTCUSDT").rows_landed == 29 * 1440
    landed = bars(lake_root)
    assert got(landed) == expect(rows)
    assert landed[0]["ts"] == at("2024-02-01T00:00") and landed[0]["available_at"] == at("2024-02-01T00:01")
    assert landed[-1]["ts"] == at("2024-02-29T23:59") and landed[-1]["available_at"] == at("2024-03-01T00:00")
    assert {(r["source"], r["asset_class"], r["interval"]) for r in landed} == {("binance", "crypto", "1m")}
    # one Parquet per symbol-month
    files = list(
        (lake_root / "datasets/bars").glob("source=binance/interval=1m/symbol=BTCUSDT/*/data.parquet")
    )
    assert [f.parent.name for f in files] == ["period=2024-02"]


def test_a_2025_day_in_microseconds_lands_at_the_right_utc_instants(dv: DataVision, lake_root: Path) -> None:
    rows = klines(at("2025-03-05T00:00"), 1440, base=87000.0)
    data = csv_bytes(rows)
    first = data.split(b",", 1)[0]
    assert first == b"1741132800000000" and len(first) == 16  # µs, as spot files are from 2025 on
    dv.publish("ETHUSDT", "1m", day("2025-03-05"), "daily", csv=data)

    s = ingest(lake_root, ["ETHUSDT"], day("2025-03-05"), day("2025-03-05"))

    assert s.ok, s.errors
    landed = bars(lake_root, "ETHUSDT")
    assert got(landed) == expect(rows)
    assert landed[0]["ts"] == at("2025-03-05T00:00")
    assert landed[-1]["available_at"] == at("2025-03-06T00:00")


def test_monthly_for_whole_months_daily_for_the_rest_and_only_requested_days_land(
    dv: DataVision, lake_root: Path
) -> None:
    # Upstream has everything: monthly Jan, Feb, Mar and every daily file of Jan 29 .. Mar 3.
    for m in ("2024-01-01", "2024-02-01", "2024-03-01"):
        dv.publish("BTCUSDT", "1m", day(m), "monthly", klines(at(m + "T00:00"), 3, base=50000.0))
    for d in ("2024-01-29", "2024-01-30", "2024-01-31", "2024-03-01", "2024-03-02", "2024-03-03"):
        dv.publish("BTCUSDT", "1m", day(d), "daily", klines(at(d + "T00:00"), 1440))

    s = ingest(lake_root, ["BTCUSDT"], day("2024-01-30"), day("2024-03-02"))

    assert s.ok, s.errors
    zips = sorted(p for p, _, _ in dv.requests(".zip"))
    assert zips == sorted(
        [
            zip_path("BTCUSDT", "1m", day("2024-01-30"), "daily"),
            zip_path("BTCUSDT", "1m", day("2024-01-31"), "daily"),
            zip_path("BTCUSDT", "1m", day("2024-02-01"), "monthly"),
            zip_path("BTCUSDT", "1m", day("2024-03-01"), "daily"),
            zip_path("BTCUSDT", "1m", day("2024-03-02"), "daily"),
        ]
    )
    landed = bars(lake_root)
    days_landed = sorted({r["ts"].astimezone(UTC).date().isoformat() for r in landed})
    assert days_landed == ["2024-01-30", "2024-01-31", "2024-02-01", "2024-03-01", "2024-03-02"]
    assert len(landed) == 4 * 1440 + 3
    assert s.of("BTCUSDT").files_done == 5
    # daily files merge into their month's partition: one file per symbol-month
    periods = sorted(
        p.parent.name for p in (lake_root / "datasets/bars").rglob("symbol=BTCUSDT/*/data.parquet")
    )
    assert periods == ["period=2024-01", "period=2024-02", "period=2024-03"]


def test_a_missing_monthly_file_falls_back_to_daily_files(dv: DataVision, lake_root: Path) -> None:
    for d in (day("2024-02-01") + dt.timedelta(days=i) for i in range(29)):
        dv.publish("BTCUSDT", "1m", d, "daily", klines(at(d.isoformat() + "T12:00"), 2))

    s = ingest(lake_root, ["BTCUSDT"], day("2024-02-01"), day("2024-02-29"))

    assert s.ok, s.errors
    assert len(bars(lake_root)) == 29 * 2
    assert s.of("BTCUSDT").files_missing == 0
    assert s.of("BTCUSDT").files_done == 29
    assert any("no monthly file" in n and "BTCUSDT-1m-2024-02.zip" in n for n in s.notes), s.notes


def test_a_404_is_reported_as_missing_and_not_retried(dv: DataVision, lake_root: Path) -> None:
    dv.publish("BTCUSDT", "1m", day("2024-01-30"), "daily", klines(at("2024-01-30T00:00"), 10))

    s = ingest(lake_root, ["BTCUSDT"], day("2024-01-30"), day("2024-01-31"))

    assert s.ok, s.errors
    assert s.of("BTCUSDT").files_missing == 1
    assert s.of("BTCUSDT").files_done == 1
    missing = zip_path("BTCUSDT", "1m", day("2024-01-31"), "daily")
    # its .CHECKSUM, then the zip itself (a zip without its checksum is not "missing"), each asked once
    assert [(p, st) for p, _, st in dv.requests() if p.startswith(missing)] == [
        (missing + ".CHECKSUM", 404),
        (missing, 404),
    ]
    assert len(bars(lake_root)) == 10


def test_the_zip_probe_after_a_404_checksum_is_retried(dv: DataVision, lake_root: Path) -> None:
    dv.publish("BTCUSDT", "1m", day("2024-01-30"), "daily", klines(at("2024-01-30T00:00"), 10))
    missing = zip_path("BTCUSDT", "1m", day("2024-01-31"), "daily")
    dv.fault(missing, "500", "503")  # the probe of the zip meets two passing 5xx, then the 404

    s = ingest(lake_root, ["BTCUSDT"], day("2024-01-30"), day("2024-01-31"))

    assert s.ok, s.errors  # missing, not failed
    assert s.of("BTCUSDT").files_missing == 1
    assert [(p, st) for p, _, st in dv.requests() if p.startswith(missing)] == [
        (missing + ".CHECKSUM", 404),
        (missing, 500),
        (missing, 503),
        (missing, 404),
    ]

    no_sum = zip_path("BTCUSDT", "1m", day("2024-01-30"), "daily")
    dv.remove(no_sum + ".CHECKSUM")
    dv.fault(no_sum, *["503"] * 4)  # as many as the attempts: the probe gives up, named
    s = ingest(lake_root / "again", ["BTCUSDT"], day("2024-01-30"), day("2024-01-30"))
    (err,) = s.errors
    assert "while the zip answered HTTP 503 Service Unavailable after 4 attempts" in err, err


def test_a_zip_whose_checksum_is_missing_fails_named_not_missing(dv: DataVision, lake_root: Path) -> None:
    for d in ("2024-03-01", "2024-03-02"):
        dv.publish("BTCUSDT", "1m", day(d), "daily", klines(at(d + "T00:00"), 10))
    no_sum = zip_path("BTCUSDT", "1m", day("2024-03-01"), "daily")
    dv.remove(no_sum + ".CHECKSUM")

    s = ingest(lake_root, ["BTCUSDT"], day("2024-03-01"), day("2024-03-02"))

    assert not s.ok
    (err,) = s.errors
    assert err == (
        f"{no_sum.lstrip('/')}: its .CHECKSUM is not on Data Vision (404) while the zip answered HTTP 200: the "
        "zip cannot be verified and was not landed"
    ), err
    st = s.of("BTCUSDT")
    assert (st.files_failed, st.files_missing, st.files_done) == (1, 0, 1)
    assert not any("not on Data Vision (404), 1 daily" in n for n in s.notes), s.notes
    assert len(bars(lake_root)) == 10  # the other day landed


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_shows_files_and_bytes_unless_quiet(dv: DataVision, lake_root: Path, quiet: bool) -> None:
    dv.publish("BTCUSDT", "1m", day("2024-01-30"), "daily", klines(at("2024-01-30T00:00"), 1440))
    dv.publish("BTCUSDT", "1m", day("2024-01-31"), "daily", klines(at("2024-01-31T00:00"), 1440))
    out = io.StringIO()
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=quiet, console=Console(file=out, width=120))
    assert binance.run(ctx, ["BTCUSDT"], "1m", day("2024-01-30"), day("2024-01-31"), today=TODAY).ok
    if quiet:
        assert out.getvalue() == ""
    else:
        assert "2/2 files" in out.getvalue() and "KB" in out.getvalue(), out.getvalue()


def test_a_symbol_with_no_file_at_all_fails_with_a_hint(dv: DataVision, lake_root: Path) -> None:
    s = ingest(lake_root, ["btcusdt"], day("2024-01-30"), day("2024-01-31"))

    assert not s.ok and s.of("btcusdt").files_missing == 2
    assert any("no file at all for btcusdt" in e and "BTCUSDT?" in e for e in s.errors), s.errors


def test_a_second_run_changes_nothing(dv: DataVision, lake_root: Path) -> None:
    dv.publish("BTCUSDT", "1m", day("2024-02-01"), "monthly", klines(at("2024-02-01T00:00"), 500))
    dv.publish("BTCUSDT", "1m", day("2024-03-01"), "daily", klines(at("2024-03-01T00:00"), 1440))
    dv.publish(
        "ETHUSDT", "1m", day("2024-02-01"), "monthly", klines(at("2024-02-01T00:00"), 200, base=2500.0)
    )
    bad = klines(at("2024-03-01T00:00"), 3, base=2500.0)
    csv = csv_bytes(bad) + b"1709251380000,oops,1,1,1,1,1709251439999,1,1,1,1,0\n"
    dv.publish("ETHUSDT", "1m", day("2024-03-01"), "daily", csv=csv)
    first = ingest(lake_root, ["BTCUSDT", "ETHUSDT"], day("2024-02-01"), day("2024-03-01"))
    assert first.ok, first.errors
    assert first.of("ETHUSDT").rows_rejected == 1
    before = tree(lake_root)
    dv.clear_log()

    second = ingest(lake_root, ["BTCUSDT", "ETHUSDT"], day("2024-02-01"), day("2024-03-01"))

    assert second.ok, second.errors
    assert tree(lake_root) == before  # same files, same bytes, same mtimes
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert second.of(sym).files_skipped == 2
        assert second.of(sym).files_done == 0
        assert second.of(sym).rows_landed == 0
    # only the CHECKSUMs were asked for again, no zip was downloaded again
    assert dv.requests(".zip") == []
    assert len(dv.requests(".CHECKSUM")) == 4


def test_an_archive_replaced_upstream_is_downloaded_again_and_its_days_replaced(
    dv: DataVision, lake_root: Path
) -> None:
    old = klines(at("2024-01-31T00:00"), 1440)
    dv.publish("BTCUSDT", "1m", day("2024-01-30"), "daily", klines(at("2024-01-30T00:00"), 1440))
    path = dv.publish("BTCUSDT", "1m", day("2024-01-31"), "daily", old)
    assert ingest(lake_root, ["BTCUSDT"], day("2024-01-30"), day("2024-01-31")).ok
    part = lake_root / "datasets/bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-01"
    before_bars = bars(lake_root)
    before_mtime = (part / "data.parquet").stat().st_mtime_ns

    # Binance republishes Jan 31 with corrected prices and the last ten minutes gone; new CHECKSUM.
    new = klines(at("2024-01-31T00:00"), 1430, base=43000.0)
    dv.publish("BTCUSDT", "1m", day("2024-01-31"), "daily", new)
    dv.clear_log()
    s = ingest(lake_root, ["BTCUSDT"], day("2024-01-30"), day("2024-01-31"))

    assert s.ok, s.errors
    assert [p for p, _, _ in dv.requests(".zip")] == [path]
    assert s.of("BTCUSDT").files_done == 1 and s.of("BTCUSDT").files_skipped == 1
    after = bars(lake_root)
    jan30 = [r for r in after if r["ts"] < at("2024-01-31T00:00")]
    jan31 = [r for r in after if r["ts"] >= at("2024-01-31T00:00")]
    assert jan30 == before_bars[:1440]
    assert got(jan31) == expect(new)  # the old version's rows are gone, the ten dropped minutes too
    assert (part / "data.parquet").stat().st_mtime_ns != before_mtime
    manifest = json.loads((part / "_manifest.json").read_text())
    shas = {i["file"].rsplit("/", 1)[1]: i["sha256"] for i in manifest["inputs"]}
    assert shas["BTCUSDT-1m-2024-01-31.zip"] == dv.files[path + ".CHECKSUM"].decode().split()[0]
    assert len(manifest["inputs"]) == 2
    assert lake.verify(lake_root) == []


def test_cli_exits_non_zero_naming_the_failed_file_while_the_others_land(
    dv: DataVision, lake_root: Path, runner: Any
) -> None:
    dv.publish("BTCUSDT", "1m", day("2024-01-30"), "daily", klines(at("2024-01-30T00:00"), 60))
    bad = dv.publish("BTCUSDT", "1m", day("2024-01-31"), "daily", klines(at("2024-01-31T00:00"), 60))
    dv.fault(bad, *["500"] * 10)  # the server keeps failing for this one file
    dv.publish("ETHUSDT", "1m", day("2024-01-30"), "daily", klines(at("2024-01-30T00:00"), 60, base=2300.0))
    dv.publish("ETHUSDT", "1m", day("2024-01-31"), "daily", klines(at("2024-01-31T00:00"), 60, base=2300.0))

    r = runner.invoke(
        cli,
        [
            "--lake",
            str(lake_root),
            "ingest",
            "binance",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--interval",
            "1m",
            "--start",
            "2024-01-30",
            "--end",
            "2024-01-31",
        ],
    )

    assert r.exit_code == 1, r.output
    assert "BTCUSDT-1m-2024-01-31.zip" in r.output and "HTTP 500" in r.output, r.output
    assert len(bars(lake_root, "BTCUSDT")) == 60
    assert len(bars(lake_root, "ETHUSDT")) == 120
    assert not list((lake_root / "raw").rglob("BTCUSDT-1m-2024-01-31.zip*"))


def test_cli_succeeds_and_prints_the_summary(dv: DataVision, lake_root: Path, runner: Any) -> None:
    dv.publish("BTCUSDT", "1m", day("2024-01-30"), "daily", klines(at("2024-01-30T00:00"), 60))
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(lake_root),
            "ingest",
            "binance",
            "--symbols",
            "BTCUSDT",
            "--start",
            "2024-01-30",
            "--end",
            "2024-01-30",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "BTCUSDT" in r.output and "files" in r.output, r.output
    assert len(bars(lake_root)) == 60


def _sliding(root: Path, start: str, end: str, today: str) -> IngestSummary:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return binance.run(ctx, ["BTCUSDT"], "1m", day(start), day(end), today=day(today))


def _publish_february(dv: DataVision) -> None:
    """Every daily file of February 2024 (3 bars a day) and the monthly file holding the same bars."""
    rows = []
    for i in range(29):
        d = day("2024-02-01") + dt.timedelta(days=i)
        got_ = klines(at(d.isoformat() + "T00:00"), 3)
        dv.publish("BTCUSDT", "1m", d, "daily", got_)
        rows += got_
    dv.publish("BTCUSDT", "1m", day("2024-02-01"), "monthly", rows)


def test_rows_landed_counts_bars_new_to_the_lake_when_a_month_comes_again_as_a_monthly_zip(
    dv: DataVision, lake_root: Path
) -> None:
    _publish_february(dv)
    s = _sliding(lake_root, "2024-02-01", "2024-02-28", "2024-02-29")  # February unfinished: daily files
    assert (s.of("BTCUSDT").files_done, s.of("BTCUSDT").rows_landed) == (28, 28 * 3)
    dv.clear_log()
    s = _sliding(lake_root, "2024-02-01", "2024-02-29", "2024-03-01")  # finished, whole: the monthly file
    assert s.ok, s.errors
    assert [p for p, _, _ in dv.requests(".zip")] == [zip_path("BTCUSDT", "1m", day("2024-02-01"), "monthly")]
    assert s.of("BTCUSDT").rows_landed == 3  # the 29th's bars are new; the 28 days were there
    assert len(bars(lake_root)) == 29 * 3


def test_a_month_landed_in_one_form_is_not_fetched_again_in_the_other(
    dv: DataVision, lake_root: Path
) -> None:
    _publish_february(dv)
    part = lake_root / "datasets/bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-02/data.parquet"
    # landed as a monthly zip; the window then starts on the 2nd: no daily zip of February is fetched
    assert _sliding(lake_root, "2024-02-01", "2024-02-29", "2024-03-01").ok
    before = part.stat().st_mtime_ns
    dv.clear_log()
    s = _sliding(lake_root, "2024-02-02", "2024-03-01", "2024-03-02")
    assert s.ok, s.errors
    feb = [p for p, _, _ in dv.requests() if "2024-02" in p]
    assert feb == [zip_path("BTCUSDT", "1m", day("2024-02-01"), "monthly") + ".CHECKSUM"], feb
    assert (s.of("BTCUSDT").files_skipped, s.of("BTCUSDT").rows_landed) == (1, 0)
    assert part.stat().st_mtime_ns == before

    # landed day by day; the window then covers the whole finished month: the monthly zip is not fetched
    other = lake_root.parent / "daily-lake"
    assert _sliding(other, "2024-02-01", "2024-02-28", "2024-02-29").ok
    assert _sliding(other, "2024-02-29", "2024-02-29", "2024-03-01").ok
    part = other / "datasets/bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-02/data.parquet"
    before = part.stat().st_mtime_ns
    dv.clear_log()
    s = _sliding(other, "2024-02-01", "2024-02-29", "2024-03-02")
    assert s.ok, s.errors
    assert not dv.requests(".zip"), dv.requests(".zip")
    assert (s.of("BTCUSDT").files_skipped, s.of("BTCUSDT").rows_landed) == (29, 0)
    assert part.stat().st_mtime_ns == before
    assert len(bars(other)) == len(bars(lake_root)) == 29 * 3


def test_a_landed_monthly_zip_gone_upstream_falls_back_to_the_wanted_days_only(
    dv: DataVision, lake_root: Path
) -> None:
    _publish_february(dv)
    assert _sliding(lake_root, "2024-02-01", "2024-02-29", "2024-03-01").ok
    monthly = zip_path("BTCUSDT", "1m", day("2024-02-01"), "monthly")
    dv.remove(monthly)
    dv.remove(monthly + ".CHECKSUM")
    dv.clear_log()
    s = _sliding(lake_root, "2024-02-10", "2024-02-12", "2024-03-02")
    assert s.ok, s.errors
    assert sorted(p for p, _, _ in dv.requests(".zip")) == [
        zip_path("BTCUSDT", "1m", day(d), "daily") for d in ("2024-02-10", "2024-02-11", "2024-02-12")
    ]

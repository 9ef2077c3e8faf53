"""Bad input and a bad network against a local Data Vision: each file fails alone, names itself and the
reason, and nothing partial lands; bad rows go to bars_rejected with their reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lake
from ingest import binance
from ingest.common import IngestSummary, RunContext
from ingest.http import RetryPolicy
from lake.config import Settings
from tests.binance_server import DataVision, checksum_line, csv_bytes, kline_line, klines, make_zip, serve

pytestmark = pytest.mark.integration

UTC = dt.UTC
DAY = dt.date(2024, 1, 30)
T0 = dt.datetime(2024, 1, 30, tzinfo=UTC)
NAME = "BTCUSDT-1m-2024-01-30"
FAST = RetryPolicy(attempts=4, backoff_base=0.01, backoff_max=0.05, connect_timeout=2, read_timeout=2)


@pytest.fixture
def dv(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    for server in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", server.base_url)
        monkeypatch.setattr(binance, "RETRY", FAST)
        yield server


def ingest(root: Path, start: dt.date = DAY, end: dt.date = DAY) -> IngestSummary:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return binance.run(ctx, ["BTCUSDT"], "1m", start, end, today=dt.date(2026, 1, 1))


def query(root: Path, sql: str) -> list[tuple[Any, ...]]:
    return lake.connect(root, read_only=True).execute(sql).fetchall()


def n_bars(root: Path) -> int:
    return int(query(root, "SELECT count(*) FROM bars")[0][0])


def raw_files(root: Path) -> list[str]:
    base = root / "raw"
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


def assert_failed_alone(s: IngestSummary, root: Path, reason: str) -> None:
    """The one file failed, named with its reason; nothing of it landed; no temporary file is left."""
    assert not s.ok
    assert len(s.errors) == 1, s.errors
    assert f"{NAME}.zip" in s.errors[0] and reason in s.errors[0], s.errors
    assert s.of("BTCUSDT").files_failed == 1
    assert n_bars(root) == 0
    assert not [f for f in raw_files(root) if ".tmp-" in f]


# --- archives -------------------------------------------------------------------------------------------


def test_checksum_mismatch_fails_the_file_and_nothing_lands(dv: DataVision, lake_root: Path) -> None:
    other = b"not the archive"
    dv.publish("BTCUSDT", "1m", DAY, "daily", klines(T0, 10), checksum=checksum_line(other, f"{NAME}.zip"))

    s = ingest(lake_root)

    assert_failed_alone(s, lake_root, "checksum mismatch")
    assert raw_files(lake_root) == []  # an unverified zip never lands in the cache


def test_truncated_zip_fails_the_file(dv: DataVision, lake_root: Path) -> None:
    archive = make_zip({f"{NAME}.csv": csv_bytes(klines(T0, 100))})[:-40]
    dv.publish("BTCUSDT", "1m", DAY, "daily", archive=archive)  # its CHECKSUM matches the cut bytes

    assert_failed_alone(ingest(lake_root), lake_root, "not a readable zip")


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ({"readme.txt": b"hello"}, "holds no CSV"),
        ({}, "holds no CSV"),
        ({f"{NAME}.csv": b"", "BTCUSDT-1m-2024-01-29.csv": b""}, "holds 2 CSVs"),
        ({"other.csv": b""}, "expected 'BTCUSDT-1m-2024-01-30.csv'"),
    ],
    ids=["no-csv", "empty-zip", "two-csvs", "wrong-name"],
)
def test_zip_without_exactly_its_one_csv_fails(
    dv: DataVision, lake_root: Path, entries: dict[str, bytes], reason: str
) -> None:
    dv.publish("BTCUSDT", "1m", DAY, "daily", archive=make_zip(entries))
    assert_failed_alone(ingest(lake_root), lake_root, reason)


@pytest.mark.parametrize("entry", [f"../{NAME}.csv", f"/tmp/{NAME}.csv", f"a/../../{NAME}.csv"])
def test_zip_slip_entry_is_refused(dv: DataVision, lake_root: Path, entry: str) -> None:
    dv.publish("BTCUSDT", "1m", DAY, "daily", archive=make_zip({entry: csv_bytes(klines(T0, 5))}))

    assert_failed_alone(ingest(lake_root), lake_root, "zip slip")
    assert not (lake_root / NAME).exists() and not (lake_root.parent / f"{NAME}.csv").exists()


def test_zip_bomb_over_the_size_limit_is_refused(
    dv: DataVision, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binance, "MIN_UNCOMPRESSED_LIMIT", 1 << 20)
    # a day of 1m holds at most 1440 rows: 1440 * 1024 bytes is this file's limit; 8 MB of one line repeated
    line = (kline_line(klines(T0, 1)[0]) + "\n").encode()
    bomb = make_zip({f"{NAME}.csv": line * (8 * 1024 * 1024 // len(line))})
    assert len(bomb) < 200_000
    dv.publish("BTCUSDT", "1m", DAY, "daily", archive=bomb)

    assert_failed_alone(ingest(lake_root), lake_root, "zip bomb")


def test_a_bad_file_does_not_stop_the_good_ones(dv: DataVision, lake_root: Path) -> None:
    dv.publish("BTCUSDT", "1m", DAY, "daily", archive=make_zip({"x.txt": b""}))
    dv.publish("BTCUSDT", "1m", DAY + dt.timedelta(days=1), "daily", klines(T0 + dt.timedelta(days=1), 30))

    s = ingest(lake_root, DAY, DAY + dt.timedelta(days=1))

    assert len(s.errors) == 1 and f"{NAME}.zip" in s.errors[0]
    assert n_bars(lake_root) == 30


# --- rows -----------------------------------------------------------------------------------------------


def _good() -> list[str]:
    return [kline_line(k) for k in klines(T0, 5)]


def _bad_cases() -> list[tuple[str, str, str]]:
    g = _good()[2].split(",")
    ts13 = g[0]
    return [
        ("11-columns", ",".join(g[:11]), "11 columns, expected 12"),
        ("13-columns", ",".join([*g, "0"]), "13 columns, expected 12"),
        ("non-numeric-price", ",".join([g[0], g[1], "12x.5", *g[3:]]), "non-numeric high '12x.5'"),
        ("nan-price", ",".join([*g[:4], "nan", *g[5:]]), "non-numeric close 'nan'"),
        (
            "high-below-low",
            ",".join([g[0], "100.0", "90.00000000", "95.00000000", "100.0", *g[5:]]),
            "high 90.00000000 < low 95.00000000",
        ),
        ("high-below-close", ",".join([g[0], "100.0", "101.0", "99.0", "102.0", *g[5:]]), "below open"),
        (
            "low-not-positive",
            ",".join([g[0], "1.0", "2.0", "0.00000000", "1.0", *g[5:]]),
            "low 0.00000000 is not positive",
        ),
        ("negative-volume", ",".join([*g[:5], "-1.00000000", *g[6:]]), "volume -1.00000000 is negative"),
        ("ts-14-digits", ",".join([ts13 + "0", *g[1:]]), "14 digits"),
        ("ts-15-digits", ",".join([ts13 + "00", *g[1:]]), "15 digits"),
        ("ts-not-integer", ",".join(["17065728e5", *g[1:]]), "is not an integer"),
    ]


@pytest.mark.parametrize(("line", "reason"), [c[1:] for c in _bad_cases()], ids=[c[0] for c in _bad_cases()])
def test_a_bad_row_is_quarantined_with_its_reason_and_the_rest_lands(
    dv: DataVision, lake_root: Path, line: str, reason: str
) -> None:
    good = _good()
    lines = [*good[:2], line, *good[3:]]  # line 3 replaced by the bad one
    dv.publish("BTCUSDT", "1m", DAY, "daily", csv=("\n".join(lines) + "\n").encode())

    s = ingest(lake_root)

    assert s.ok, s.errors
    assert s.of("BTCUSDT").rows_rejected == 1 and s.of("BTCUSDT").rows_landed == 4
    ts = [r[0] for r in query(lake_root, "SELECT ts FROM bars ORDER BY ts")]
    assert [t.astimezone(UTC) for t in ts] == [T0 + dt.timedelta(minutes=i) for i in (0, 1, 3, 4)]
    rej = query(
        lake_root,
        "SELECT source, period, symbol, interval, source_file, line_number, raw, reason FROM lake_bars_rejected",
    )
    assert len(rej) == 1
    source, period, symbol, interval, source_file, line_number, raw, why = rej[0]
    assert (source, period, symbol, interval) == ("binance", "2024-01", "BTCUSDT", "1m")
    assert source_file.endswith(f"{NAME}.zip") and line_number == 3 and raw == line
    assert reason in why, why


def test_a_header_row_is_detected_and_skipped(dv: DataVision, lake_root: Path) -> None:
    header = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore"
    )
    dv.publish("BTCUSDT", "1m", DAY, "daily", csv=("\n".join([header, *_good()]) + "\n").encode())

    s = ingest(lake_root)

    assert s.ok, s.errors
    assert n_bars(lake_root) == 5
    assert query(lake_root, "SELECT count(*) FROM bars_rejected")[0][0] == 0


def test_a_header_line_later_in_the_file_is_a_rejected_row(dv: DataVision, lake_root: Path) -> None:
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,a,b,ignore"
    dv.publish("BTCUSDT", "1m", DAY, "daily", csv=("\n".join([*_good(), header]) + "\n").encode())

    s = ingest(lake_root)

    assert n_bars(lake_root) == 5 and s.of("BTCUSDT").rows_rejected == 1


def test_a_re_ingest_replaces_the_rejected_rows_of_that_file(dv: DataVision, lake_root: Path) -> None:
    good = _good()
    dv.publish("BTCUSDT", "1m", DAY, "daily", csv=("\n".join([*good[:4], "x"]) + "\n").encode())
    assert ingest(lake_root).of("BTCUSDT").rows_rejected == 1
    dv.publish("BTCUSDT", "1m", DAY, "daily", csv=("\n".join(good) + "\n").encode())  # fixed upstream

    s = ingest(lake_root)

    assert s.ok and s.of("BTCUSDT").files_done == 1
    assert n_bars(lake_root) == 5
    assert query(lake_root, "SELECT count(*) FROM bars_rejected")[0][0] == 0


# --- the network ----------------------------------------------------------------------------------------


def _publish_day(dv: DataVision, n: int = 60) -> str:
    return dv.publish("BTCUSDT", "1m", DAY, "daily", klines(T0, n))


def test_500_twice_then_200_succeeds(dv: DataVision, lake_root: Path) -> None:
    path = _publish_day(dv)
    dv.fault(path, "500", "500")

    s = ingest(lake_root)

    assert s.ok, s.errors
    assert [st for p, _, st in dv.requests(".zip")] == [500, 500, 200]
    assert n_bars(lake_root) == 60


def test_500_on_the_checksum_is_retried_too(dv: DataVision, lake_root: Path) -> None:
    path = _publish_day(dv)
    dv.fault(path + ".CHECKSUM", "500", "500")

    assert ingest(lake_root).ok
    assert [st for p, _, st in dv.requests(".CHECKSUM")] == [500, 500, 200]


def test_persistent_500_fails_after_bounded_attempts(dv: DataVision, lake_root: Path) -> None:
    path = _publish_day(dv)
    dv.fault(path, *["500"] * 20)

    s = ingest(lake_root)

    assert_failed_alone(s, lake_root, "HTTP 500")
    assert "after 4 attempts" in s.errors[0]
    assert len(dv.requests(".zip")) == FAST.attempts


def test_429_retry_after_is_honoured(dv: DataVision, lake_root: Path) -> None:
    path = _publish_day(dv)
    dv.fault(path, "429:1")

    s = ingest(lake_root)

    assert s.ok, s.errors
    (p1, t1, st1), (p2, t2, st2) = dv.requests(".zip")
    assert (st1, st2) == (429, 200)
    assert t2 - t1 >= 0.95  # waited the server's second, not the 10 ms backoff


def test_429_retry_after_beyond_the_limit_fails_without_waiting(
    dv: DataVision, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _publish_day(dv)
    dv.fault(path, "429:3600")

    s = ingest(lake_root)

    assert_failed_alone(s, lake_root, "Retry-After 3600s")
    assert len(dv.requests(".zip")) == 1


def test_server_closing_mid_body_is_caught_by_the_checksum_and_retried(
    dv: DataVision, lake_root: Path
) -> None:
    path = _publish_day(dv, 1440)
    dv.fault(path, "cut")

    s = ingest(lake_root)

    assert s.ok, s.errors
    assert len(dv.requests(".zip")) == 2
    assert n_bars(lake_root) == 1440


def test_server_always_closing_mid_body_fails_the_file(dv: DataVision, lake_root: Path) -> None:
    path = _publish_day(dv, 1440)
    dv.fault(path, "cut", "cut", "cut")

    s = ingest(lake_root)

    assert_failed_alone(s, lake_root, "checksum mismatch")
    assert raw_files(lake_root) == []


def test_slow_response_beyond_the_client_timeout_is_retried(
    dv: DataVision, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binance, "RETRY", RetryPolicy(attempts=3, backoff_base=0.01, read_timeout=0.3))
    path = _publish_day(dv)
    dv.fault(path, "slow:1.5")

    s = ingest(lake_root)

    assert s.ok, s.errors
    assert n_bars(lake_root) == 60
    # the slow request got no answer before the client gave up; the retry got the file
    assert [st for _, _, st in dv.requests(".zip")] == [0, 200]


def test_slow_every_time_fails_with_a_timeout(
    dv: DataVision, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binance, "RETRY", RetryPolicy(attempts=2, backoff_base=0.01, read_timeout=0.2))
    path = _publish_day(dv)
    dv.fault(path, "slow:1", "slow:1")

    assert_failed_alone(ingest(lake_root), lake_root, "timed out")


def test_connection_refused_fails_every_file_with_its_name(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("BINANCE_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(binance, "RETRY", RetryPolicy(attempts=2, backoff_base=0.01))

    s = ingest(lake_root, DAY, DAY + dt.timedelta(days=1))

    assert len(s.errors) == 2 and s.of("BTCUSDT").files_failed == 2
    assert all("connection failed" in e for e in s.errors), s.errors
    assert any(f"{NAME}.zip" in e for e in s.errors)

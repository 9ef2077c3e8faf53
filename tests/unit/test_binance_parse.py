"""Binance file selection, zip checks and the klines parser, without a server."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import binance
from ingest.binance import BadFile, FileSpec, parse_klines, plan, read_zip_csv
from ingest.common import days
from ingest.http import parse_retry_after

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
D = dt.date.fromisoformat


def _kinds(specs: list[FileSpec]) -> list[tuple[str, str, str]]:
    return [(s.kind, s.first_day.isoformat(), s.last_day.isoformat()) for s in specs]


def test_plan_uses_monthly_for_whole_months_and_daily_for_the_edges() -> None:
    specs = plan("BTCUSDT", "1m", D("2024-01-30"), D("2024-03-02"), today=D("2025-06-01"))
    assert _kinds(specs) == [
        ("daily", "2024-01-30", "2024-01-30"),
        ("daily", "2024-01-31", "2024-01-31"),
        ("monthly", "2024-02-01", "2024-02-29"),
        ("daily", "2024-03-01", "2024-03-01"),
        ("daily", "2024-03-02", "2024-03-02"),
    ]
    assert specs[2].relpath == "data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip"
    assert specs[0].relpath == "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-30.zip"
    assert specs[2].csv_name == "BTCUSDT-1m-2024-02.csv"


def test_plan_uses_daily_files_for_an_unfinished_month() -> None:
    specs = plan("BTCUSDT", "1m", D("2025-05-01"), D("2025-05-31"), today=D("2025-05-31"))
    assert {s.kind for s in specs} == {"daily"} and len(specs) == 31
    specs = plan("BTCUSDT", "1m", D("2025-05-01"), D("2025-05-31"), today=D("2025-06-01"))
    assert _kinds(specs) == [("monthly", "2025-05-01", "2025-05-31")]


@settings(max_examples=200, deadline=None)
@given(
    start=st.dates(dt.date(2020, 1, 1), dt.date(2026, 12, 31)),
    length=st.integers(0, 500),
    today=st.dates(dt.date(2020, 1, 1), dt.date(2027, 12, 31)),
)
def test_plan_covers_exactly_the_requested_days_once(start: dt.date, length: int, today: dt.date) -> None:
    end = start + dt.timedelta(days=length)
    specs = plan("ETHUSDT", "1h", start, end, today=today)
    covered = [d for s in specs for d in days(s.first_day, s.last_day)]
    assert covered == list(days(start, end))  # each requested day once, in order, nothing else
    for s in specs:
        if s.kind == "monthly":  # brute force: a whole calendar month, finished before today
            assert s.first_day.day == 1
            assert (s.last_day + dt.timedelta(days=1)).day == 1
            assert s.last_day < today
        else:
            assert s.first_day == s.last_day
    # a day is in a daily file only if its whole month cannot be a monthly file
    for s in specs:
        if s.kind == "daily":
            m0 = s.first_day.replace(day=1)
            m1 = (m0 + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            assert not (m0 >= start and m1 <= end and m1 < today)


# --- the parser -----------------------------------------------------------------------------------------


def _parse(text: str, interval: str = "1m", day: str = "2024-09-21") -> binance.Parsed:
    start = dt.datetime.fromisoformat(day).replace(tzinfo=UTC)
    return parse_klines(
        text.encode(),
        symbol="BTCUSDT",
        interval=interval,
        source_file="f.zip",
        start=start,
        end=start + dt.timedelta(days=1),
    )


REAL = (  # the first two lines of the real BTCUSDT-1m-2024-09-21.csv
    "1726876800000,63201.05000000,63201.06000000,63186.00000000,63196.00000000,10.91101000,"
    "1726876859999,689505.82620870,2464,6.94903000,439120.77141390,0\n"
    "1726876860000,63196.01000000,63196.01000000,63150.41000000,63159.99000000,4.52051000,"
    "1726876919999,285590.29011170,1304,0.88110000,55649.60550910,0\n"
)


def test_parse_real_lines_by_hand() -> None:
    p = _parse(REAL)
    assert p.rejected.num_rows == 0 and not p.header
    r = p.bars.to_pylist()
    assert r[0]["ts"] == dt.datetime(2024, 9, 21, 0, 0, tzinfo=UTC)
    assert r[0]["available_at"] == dt.datetime(2024, 9, 21, 0, 1, tzinfo=UTC)
    assert (r[0]["open"], r[0]["high"], r[0]["low"], r[0]["close"]) == (63201.05, 63201.06, 63186.0, 63196.0)
    assert (r[0]["volume"], r[0]["trades"]) == (10.91101, 2464)
    assert r[1]["ts"] == dt.datetime(2024, 9, 21, 0, 1, tzinfo=UTC) and r[1]["trades"] == 1304


def test_microseconds_and_milliseconds_give_the_same_instant() -> None:
    ms = REAL.splitlines()[0]
    f = ms.split(",")
    us = ",".join([f[0] + "000", *f[1:6], f[6] + "999", *f[7:]])
    a, b = _parse(ms + "\n").bars, _parse(us + "\n").bars
    assert a.column("ts").to_pylist() == b.column("ts").to_pylist()
    assert a.column("available_at").to_pylist() == b.column("available_at").to_pylist()


@settings(max_examples=200, deadline=None)
@given(
    minute=st.integers(0, 60 * 24 * 365 * 8),
    unit=st.sampled_from(["ms", "us"]),
    interval=st.sampled_from(["1m", "5m", "15m", "1h", "1d"]),
)
def test_ts_and_available_at_against_a_brute_force_reference(minute: int, unit: str, interval: str) -> None:
    step = binance.interval_delta(interval)
    ts = EPOCH.replace(year=2018) + dt.timedelta(minutes=minute)
    ts = EPOCH + ((ts - EPOCH) // step) * step  # on the interval's grid
    per = dt.timedelta(milliseconds=1) if unit == "ms" else dt.timedelta(microseconds=1)
    ot = (ts - EPOCH) // per
    line = f"{ot},1.0,2.0,0.5,1.5,3.0,{ot + step // per - 1},4.5,7,1.0,1.5,0\n"
    start = dt.datetime(ts.year, ts.month, ts.day, tzinfo=UTC)
    p = parse_klines(
        line.encode(),
        symbol="X",
        interval=interval,
        source_file="f",
        start=start,
        end=start + dt.timedelta(days=1),
    )
    assert p.rejected.num_rows == 0, p.rejected.column("reason").to_pylist()
    row = p.bars.to_pylist()[0]
    assert row["ts"] == ts and row["available_at"] == ts + step


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f[:11], "11 columns"),
        (lambda f: [*f, "0"], "13 columns"),
        (lambda f: [f[0] + "0", *f[1:]], "14 digits"),
        (lambda f: [f[0] + "00", *f[1:]], "15 digits"),
        (lambda f: [f[0][:-1], *f[1:]], "12 digits"),
        (lambda f: [f[0], "abc", *f[2:]], "non-numeric open 'abc'"),
        (lambda f: [*f[:4], "inf", *f[5:]], "non-numeric close 'inf'"),
        (lambda f: [*f[:4], "1e5", *f[5:]], "non-numeric close '1e5'"),
        (lambda f: [f[0], "10", "9", "11", "10", *f[5:]], "high 9 < low 11"),
        (lambda f: [f[0], "10", "10.5", "9", "11", *f[5:]], "high 10.5 is below"),
        (lambda f: [f[0], "10", "12", "10.5", "11", *f[5:]], "low 10.5 is above"),
        (lambda f: [f[0], "-1", "1", "-2", "0.5", *f[5:]], "not positive"),
        (lambda f: [*f[:8], "12.5", *f[9:]], "count '12.5'"),
        (lambda f: [*f[:8], "9" * 20, *f[9:]], "is out of range"),
        (lambda f: [*f[:6], "1726876859998", *f[7:]], "close_time"),
        (lambda f: [str(int(f[0]) + 30_000), *f[1:6], str(int(f[6]) + 30_000), *f[7:]], "boundary"),
        (
            lambda f: [str(int(f[0]) - 60_000), *f[1:6], str(int(f[6]) - 60_000), *f[7:]],
            "outside the file's span",
        ),
    ],
    ids=[
        "11-columns",
        "13-columns",
        "14-digits",
        "15-digits",
        "12-digits",
        "non-numeric",
        "inf",
        "exponent",
        "high-below-low",
        "high-below-close",
        "low-above-open",
        "low-not-positive",
        "fractional-count",
        "count-beyond-int64",
        "close-time",
        "off-grid",
        "outside-span",
    ],
)
def test_bad_rows_are_rejected_with_a_reason(mutate: object, reason: str) -> None:
    f = REAL.splitlines()[0].split(",")
    bad = ",".join(mutate(f))  # type: ignore[operator]
    p = _parse(bad + "\n" + REAL.splitlines()[1] + "\n")
    assert p.bars.num_rows == 1
    rej = p.rejected.to_pylist()
    assert len(rej) == 1
    assert rej[0]["line_number"] == 1 and rej[0]["raw"] == bad and rej[0]["source_file"] == "f.zip"
    assert reason in rej[0]["reason"], rej[0]["reason"]


def test_a_duplicate_open_time_is_rejected() -> None:
    line = REAL.splitlines()[0]
    p = _parse(f"{line}\n{line}\n")
    assert p.bars.num_rows == 1
    assert "duplicate open_time" in p.rejected.column("reason")[0].as_py()


def test_an_identical_repeat_lands_once_however_its_numbers_are_written() -> None:
    first, second = REAL.splitlines()
    again = first.replace("63201.05000000", "63201.05", 1)  # the same value
    p = _parse(f"{first}\n{second}\n{again}\n")
    assert p.bars.column("open").to_pylist() == [63201.05, 63196.01]
    (rej,) = p.rejected.to_pylist()
    assert (rej["line_number"], rej["raw"]) == (3, again)
    assert rej["reason"] == "duplicate open_time 1726876800000 (first at line 1)"


@pytest.mark.parametrize(
    "change",
    [
        ("63196.00000000", "63197.00000000"),  # the close
        ("10.91101000", "10.91102000"),  # the volume
        (",2464,", ",2465,"),  # the trade count
    ],
)
def test_copies_of_a_bar_that_disagree_are_all_rejected_and_none_lands(change: tuple[str, str]) -> None:
    """A file holding the same open_time twice with different values: the first copy landed and the
    second was quarantined as a duplicate (a silent pick between rows that disagree). Every copy is
    quarantined, saying they disagree, in line order; the other bars land."""
    first, second = REAL.splitlines()
    other = first.replace(*change)
    assert other != first
    p = _parse(f"{first}\n{second}\n{other}\n{first}\n")
    assert p.bars.column("open").to_pylist() == [63196.01]
    why = "duplicate open_time 1726876800000 on lines 1, 3, 4 with different values; none of them landed"
    assert [(r["line_number"], r["raw"], r["reason"]) for r in p.rejected.to_pylist()] == [
        (1, first, why),
        (3, other, why),
        (4, first, why),
    ]
    assert p.rejected.column("ts").to_pylist() == [dt.datetime(2024, 9, 21, tzinfo=UTC)] * 3


def test_a_header_is_detected_only_on_the_first_line() -> None:
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,tbb,tbq,ignore"
    p = _parse(header + "\n" + REAL)
    assert p.header and p.bars.num_rows == 2 and p.rejected.num_rows == 0
    p = _parse(REAL + header + "\n")
    assert not p.header and p.bars.num_rows == 2 and p.rejected.num_rows == 1


def test_zero_volume_minutes_are_real_bars() -> None:
    f = REAL.splitlines()[0].split(",")
    f[1:6] = ["63201.05000000"] * 4 + ["0.00000000"]
    f[8] = "0"
    p = _parse(",".join(f) + "\n")
    assert p.bars.num_rows == 1 and p.bars.column("volume")[0].as_py() == 0.0


# --- zips -----------------------------------------------------------------------------------------------


SPEC = FileSpec("BTCUSDT", "1m", "daily", dt.date(2024, 9, 21), dt.date(2024, 9, 21))


def _zip(tmp_path: Path, entries: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    p = tmp_path / "a.zip"
    p.write_bytes(buf.getvalue())
    return p


def test_read_zip_csv_returns_the_one_csv(tmp_path: Path) -> None:
    assert read_zip_csv(_zip(tmp_path, {SPEC.csv_name: REAL.encode()}), SPEC) == REAL.encode()


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ({}, "holds no CSV"),
        ({"a.txt": b"x"}, "holds no CSV"),
        ({SPEC.csv_name: b"", "b.csv": b""}, "holds 2 CSVs"),
        ({SPEC.csv_name: b"", "notes.txt": b""}, "other entries"),
        ({"../" + SPEC.csv_name: b""}, "zip slip"),
        ({"C:/x/" + SPEC.csv_name: b""}, "zip slip"),
        ({"b.csv": b""}, "expected 'BTCUSDT-1m-2024-09-21.csv'"),
        ({SPEC.csv_name: b"0" * (SPEC.size_limit + 1)}, "zip bomb"),
    ],
)
def test_read_zip_csv_refuses(tmp_path: Path, entries: dict[str, bytes], reason: str) -> None:
    with pytest.raises(BadFile, match=reason):
        read_zip_csv(_zip(tmp_path, entries), SPEC)


def test_read_zip_csv_refuses_a_lying_size_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zip whose header claims a small size but whose data inflates to more is caught while reading."""
    monkeypatch.setattr(binance, "MIN_UNCOMPRESSED_LIMIT", 1000)
    monkeypatch.setattr(binance, "LIMIT_BYTES_PER_ROW", 0)
    p = _zip(tmp_path, {SPEC.csv_name: b"1" * 5000})
    raw = bytearray(p.read_bytes())
    # patch the uncompressed size (local header offset 22, central directory entry offset 24) to 10
    raw[22:26] = (10).to_bytes(4, "little")
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    p.write_bytes(bytes(raw))
    with pytest.raises(BadFile):
        read_zip_csv(p, SPEC)


def test_read_zip_csv_refuses_a_truncated_zip(tmp_path: Path) -> None:
    p = _zip(tmp_path, {SPEC.csv_name: REAL.encode() * 50})
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(BadFile, match="not a readable zip"):
        read_zip_csv(p, SPEC)


# --- CHECKSUM and Retry-After ---------------------------------------------------------------------------


def test_checksum_file_parsing() -> None:
    sha = "ab" * 32
    assert binance._parse_checksum(f"{sha}  X.zip\n".encode(), "X.zip") == sha
    assert binance._parse_checksum(f"{sha.upper()} *X.zip".encode(), "X.zip") == sha
    assert isinstance(binance._parse_checksum(f"{sha}  Y.zip\n".encode(), "X.zip"), BadFile)
    assert isinstance(binance._parse_checksum(b"<html>nope</html>", "X.zip"), BadFile)
    assert isinstance(binance._parse_checksum(b"", "X.zip"), BadFile)


def test_retry_after_parsing() -> None:
    now = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert binance.base_url() == "https://data.binance.vision"
    monkeypatch.setenv("BINANCE_BASE_URL", "http://mirror.local:8080/")
    assert binance.base_url() == "http://mirror.local:8080"
    monkeypatch.setenv("BINANCE_BASE_URL", "ftp://x")
    with pytest.raises(binance.MarketlakeError, match="BINANCE_BASE_URL"):
        binance.base_url()

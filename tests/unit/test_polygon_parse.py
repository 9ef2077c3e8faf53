"""The Polygon day-file parser on files in the exact format (no server)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.polygon import PolygonFileError, parse_day_file
from tests.s3_server import day_file, ns

NY = ZoneInfo("America/New_York")
DAY = dt.date(2024, 1, 2)
T = dt.datetime.combine(DAY, dt.time(9, 30), NY).astimezone(dt.UTC)
M = dt.timedelta(minutes=1)


def parse(tmp_path: Path, rows: list, tickers: list[str], interval: str = "1m", **kw: bool):
    p = tmp_path / "f.csv.gz"
    p.write_bytes(day_file(rows, **kw))
    return parse_day_file(p, source_file="s3://b/k", day=DAY, interval=interval, tickers=tickers)


def test_values_by_header_name_not_position(tmp_path: Path) -> None:
    out = parse(tmp_path, [("AAPL", "123.5", "10", "11", "12", "9", ns(T), "7")], ["AAPL"])
    (bar,) = out.bars["AAPL"]
    assert (bar["open"], bar["close"], bar["high"], bar["low"]) == (10.0, 11.0, 12.0, 9.0)
    assert (bar["volume"], bar["trades"], bar["ts"], bar["available_at"]) == (123.5, 7, T, T + M)


def test_only_the_wanted_tickers_are_kept_even_with_a_shared_prefix(tmp_path: Path) -> None:
    out = parse(
        tmp_path,
        [
            ("AAPLX", 1, 1, 1, 1, 1, ns(T), 1),
            ("AAPL", 1, 2, 2, 2, 2, ns(T), 1),
            ("AAP", 1, 3, 3, 3, 3, ns(T), 1),
        ],
        ["AAPL"],
    )
    assert list(out.bars) == ["AAPL"] and out.bars["AAPL"][0]["close"] == 2.0


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("AAPL", 1, 1, 1, 1, 1, str(ns(T))[:17], 1), "not 19 digits"),
        (("AAPL", 1, 1, 1, 1, 1, str(ns(T)) + "0", 1), "not 19 digits"),
        (("AAPL", 1, 1, 1, 1, 1, ns(T) + 1_000, 1), "not on a minute boundary"),
        (("AAPL", 1, 1, 1, 1, 1, ns(T + dt.timedelta(days=1)), 1), "not on the file's day 2024-01-02"),
        (("AAPL", 1, "nan", 1, 1, 1, ns(T), 1), "open 'nan' is not a number"),
        (("AAPL", 1, -1, 1, 1, 1, ns(T), 1), "open '-1' is not positive"),
        (("AAPL", -5, 1, 1, 1, 1, ns(T), 1), "volume -5 is negative"),
        (("AAPL", "-0.5", 1, 1, 1, 1, ns(T), 1), "volume -0.5 is negative"),
        (("AAPL", "-", 1, 1, 1, 1, ns(T), 1), "volume '-' is not a number"),
        (("AAPL", "--5", 1, 1, 1, 1, ns(T), 1), "volume '--5' is not a number"),
        (("AAPL", 1, 0, 1, 1, 1, ns(T), 1), "open '0' is not positive"),
        (("AAPL", 1, 1, 1, 1, 1, ns(T), 1.5), "transactions '1.5' is not a whole number"),
        (("AAPL", 1, 1, 1, 1, 1, ns(T), "9" * 20), "is out of range"),
        (("AAPL", "", 1, 1, 1, 1, ns(T), 1), "missing field volume"),
        (("AAPL", 1, 1, 1, 1, 1, ns(T), 1, 9), "9 fields, expected 8"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(tmp_path: Path, row: tuple, reason: str) -> None:
    out = parse(tmp_path, [row], ["AAPL"])
    assert not out.bars.get("AAPL")
    (rej,) = out.rejected["AAPL"]
    assert reason in rej["reason"]
    assert rej["line_number"] == 2 and rej["source_file"] == "s3://b/k"


def test_a_duplicate_bar_is_rejected_and_the_first_kept(tmp_path: Path) -> None:
    """An identical repeat (the same values, however written) lands once."""
    out = parse(
        tmp_path, [("AAPL", 1, 1, 1, 1, 1, ns(T), 1), ("AAPL", "1.0", 1, 1, 1, 1, ns(T), 1)], ["AAPL"]
    )
    assert [b["close"] for b in out.bars["AAPL"]] == [1.0]
    assert "duplicate" in out.rejected["AAPL"][0]["reason"] and "line 2" in out.rejected["AAPL"][0]["reason"]


@pytest.mark.parametrize("interval", ["1m", "1d"])
def test_copies_of_a_bar_that_disagree_are_all_rejected_and_none_lands(tmp_path: Path, interval: str) -> None:
    """The same ticker and window_start twice with different values: the first copy landed and the second
    was quarantined as a duplicate (a silent pick between vendor rows that disagree). Every copy is
    quarantined, saying they disagree; the other bars land."""
    rows = [
        ("AAPL", 1, 1, 1, 1, 1, ns(T), 1),
        ("MSFT", 1, 5, 5, 5, 5, ns(T), 1),
        ("AAPL", 2, 1, 1, 1, 1, ns(T), 1),  # only the volume differs
    ]
    out = parse(tmp_path, rows, ["AAPL", "MSFT"], interval=interval)
    assert not out.bars.get("AAPL")
    assert [b["close"] for b in out.bars["MSFT"]] == [5.0]
    assert [(r["line_number"], r["volume"], r["reason"]) for r in out.rejected["AAPL"]] == [
        (
            2,
            1.0,
            "duplicate bars that disagree: same ticker and window_start on lines 2, 4 with different "
            "values; none of them landed",
        ),
        (
            4,
            2.0,
            "duplicate bars that disagree: same ticker and window_start on lines 2, 4 with different "
            "values; none of them landed",
        ),
    ]


@pytest.mark.parametrize("crlf", [True, False])
@pytest.mark.parametrize("final_newline", [True, False])
def test_line_endings_and_final_newline(tmp_path: Path, crlf: bool, final_newline: bool) -> None:
    out = parse(
        tmp_path,
        [("AAPL", 1, 1.5, 1.5, 1.5, 1.25, ns(T), 1)],
        ["AAPL"],
        crlf=crlf,
        final_newline=final_newline,
    )
    assert out.bars["AAPL"][0]["low"] == 1.25 and not out.rejected


def test_truncated_gzip_is_a_file_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "f.csv.gz"
    body = day_file([("AAPL", 1, 1, 1, 1, 1, ns(T + i * M), 1) for i in range(200)])
    p.write_bytes(body[:-20])
    with pytest.raises(PolygonFileError, match=r"s3://b/k: truncated or corrupt gzip"):
        parse_day_file(p, source_file="s3://b/k", day=DAY, interval="1m", tickers=["AAPL"])


def test_a_large_file_is_filtered_while_streaming(tmp_path: Path) -> None:
    rows = [(f"T{i % 5000}", 1, 1, 1, 1, 1, ns(T + (i // 5000) * M), 1) for i in range(100_000)]
    rows.insert(50_000, ("AAPL", 5, 2, 2, 2, 2, ns(T), 3))
    out = parse(tmp_path, rows, ["AAPL"])
    assert [b["close"] for b in out.bars["AAPL"]] == [2.0]
    assert out.lines == 100_002

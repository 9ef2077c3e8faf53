"""The columnar Polygon day-file parser agrees with the row-by-row one on every file (bars, rejected rows,
reasons, line numbers), and is the path clean files take."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import polygon
from ingest.polygon import ParsedFile, parse_day_file, parse_day_file_rows

NY = ZoneInfo("America/New_York")
DAY = dt.date(2024, 7, 3)  # an early close: the daily stamps differ from a full day's
OPEN = dt.datetime.combine(DAY, dt.time(9, 30), NY).astimezone(dt.UTC)
HEADER = b"ticker,volume,open,close,high,low,window_start,transactions"
WANTED = ["AAPL", "MSFT", "SPY"]


def _ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000


def _good(ticker: str, minute: int, price: float = 100.0) -> str:
    o, c = f"{price:.4f}", f"{price + 0.25:.4f}"
    return f"{ticker},1200,{o},{c},{price + 0.5:.2f},{price - 0.5:.2f},{_ns(OPEN + dt.timedelta(minutes=minute))},17"


BAD: list[str | bytes] = [
    "AAPL,1200,100,100.5,101,99,{ws},17,extra",  # 9 fields
    "AAPL,1200,100,100.5,101,99,{ws}",  # 7 fields
    "AAPL,,100,100.5,101,99,{ws},17",  # missing volume
    "AAPL,1200,100,100.5,101,99,{ws}1,17",  # 20 digits
    "AAPL,1200,100,100.5,101,99,{ws},x",  # transactions
    "AAPL,1200,nan,100.5,101,99,{ws},17",
    "AAPL,1200,1e2,100.5,101,99,{ws},17",  # valid by _NUMBER: row path decides
    "AAPL,1200,100,100.5,1e400,99,{ws},17",  # not finite
    "AAPL,1200,-1,100.5,101,99,{ws},17",
    "AAPL,1200,0,100.5,101,99,{ws},17",  # not positive
    "AAPL,1200,102,100.5,101,99,{ws},17",  # open above high
    "AAPL,1200,100,100.5,98,99,{ws},17",  # high < low
    "AAPL,1200,100,100.5,101,100.2,{ws},17",  # low above open
    "AAPL, 1200,100,100.5,101,99,{ws},17",  # spaces: stripped by the row path, valid
    'AAPL,"1200",100,100.5,101,99,{ws},17',  # quoted: valid for csv.reader
    'AAPL,"1,200",100,100.5,101,99,{ws},17',  # a quoted comma
    "AAPL,1200,100,100.5,101,99,{ws_off},17",  # not on a minute boundary
    "AAPL,1200,100,100.5,101,99,{ws_next},17",  # the next New York day
    "AAPL,1200,100,100.5,101,99,9999999999999999999,17",  # beyond int64 nanoseconds
    "AAPL,1200,100,100.5,101,99,{ws},١٧",  # Arabic-Indic digits
    "",  # an empty line
    "   ",
    "AAPLX,1200,100,100.5,101,99,{ws},17",  # a ticker that only shares a prefix
    "\r",  # a lone CR (the reader would count an extra line)
    b"AAPL,1200,100,100.5,101,99,{ws},1\xff7",  # not UTF-8
    "AAPL,1200,.5,.75,1.,.25,{ws},3",
    "AAPL,1200,100.,100.5,101,99,{ws},17",
]


@st.composite
def day_files(draw: Any) -> tuple[bytes, str]:
    interval = draw(st.sampled_from(["1m", "1d"]))
    n = draw(st.integers(0, 60))
    tickers = ["AAPL", "MSFT", "SPY", "QQQ", "TSLA"]
    lines: list[bytes] = []
    for _ in range(n):
        minute = draw(st.integers(-30, 500))
        ticker = draw(st.sampled_from(tickers))
        if draw(st.integers(0, 4)) == 0:
            bad = draw(st.sampled_from(BAD))
            ws = _ns(OPEN + dt.timedelta(minutes=minute))
            fmt = {"ws": ws, "ws_off": ws + 1_000_000_000, "ws_next": ws + 86_400_000_000_000}
            raw = bad if isinstance(bad, bytes) else bad.encode()
            for k, v in fmt.items():
                raw = raw.replace(f"{{{k}}}".encode(), str(v).encode())
            lines.append(raw.replace(b"AAPL", ticker.encode(), 1))
        else:
            price = draw(st.sampled_from([1.0, 12.5, 100.0, 0.0001, 123456.789]))
            lines.append(_good(ticker, minute, price).encode())
    nl = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = nl.join([HEADER, *lines]) + (nl if draw(st.booleans()) else b"")
    return gzip.compress(body, mtime=0), interval


def _same(a: ParsedFile, b: ParsedFile) -> None:
    assert a.table is not None and b.table is not None
    assert a.table.equals(b.table), (a.table.to_pylist(), b.table.to_pylist())
    assert list(a.bars) == list(b.bars)
    for t in a.bars:  # each ticker's rows, as landing reads them
        assert a.bars[t].table.equals(b.bars[t].table), t
    assert {t: list(r) for t, r in a.rejected.items() if r} == {
        t: list(r) for t, r in b.rejected.items() if r
    }
    assert a.lines == b.lines


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    file=day_files(), block=st.sampled_from([64, 300, 8 << 20]), wanted=st.sampled_from([WANTED, ["AAPL"]])
)
def test_columns_and_rows_agree_on_any_file(
    tmp_path: Path, file: tuple[bytes, str], block: int, wanted: list[str]
) -> None:
    data, interval = file
    p = tmp_path / "day.csv.gz"
    p.write_bytes(data)
    kw: dict[str, Any] = {"source_file": "s3://b/k", "day": DAY, "interval": interval, "tickers": wanted}
    old = polygon.BLOCK_BYTES
    polygon.BLOCK_BYTES = block  # small blocks: lines cut at every place
    try:
        fast = parse_day_file(p, **kw)
    finally:
        polygon.BLOCK_BYTES = old
    _same(fast, parse_day_file_rows(p, **kw))


def test_a_clean_file_takes_the_columnar_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [_good(t, m, 10.0 + m) for m in range(390) for t in WANTED + ["QQQ"]]
    p = tmp_path / "day.csv.gz"
    p.write_bytes(gzip.compress(b"\r\n".join([HEADER, *(x.encode() for x in lines)])))

    def refuse(*args: object, **kw: object) -> None:
        raise AssertionError("a clean row went through _parse_row")

    monkeypatch.setattr(polygon, "_parse_row", refuse)
    fast = parse_day_file(p, source_file="s3://b/k", day=DAY, interval="1m", tickers=WANTED)
    assert fast.table is not None and fast.table.num_rows == 390 * 3 and not fast.rejected
    assert fast.lines == 1 + 390 * 4
    monkeypatch.undo()
    _same(fast, parse_day_file_rows(p, source_file="s3://b/k", day=DAY, interval="1m", tickers=WANTED))


def test_a_duplicate_found_by_columns_quotes_its_line(tmp_path: Path) -> None:
    lines = [_good("AAPL", 0), _good("MSFT", 0), _good("AAPL", 0)]
    p = tmp_path / "day.csv.gz"
    p.write_bytes(gzip.compress(b"\n".join([HEADER, *(x.encode() for x in lines)])))
    out = parse_day_file(p, source_file="s3://b/k", day=DAY, interval="1m", tickers=WANTED)
    (rej,) = out.rejected["AAPL"]
    assert rej["line_number"] == 4 and rej["raw"] == lines[2]
    assert rej["reason"] == "duplicate bar: same ticker and window_start as line 2"
    assert [b["close"] for b in out.bars["AAPL"]] == [100.25]


def test_copies_of_a_bar_that_disagree_found_by_columns_are_all_rejected_quoting_their_lines(
    tmp_path: Path,
) -> None:
    """Two copies of AAPL's 09:30 bar with different prices (and a third, like the first): no copy is
    picked over the others; each is rejected with its own raw line and one reason naming every copy."""
    lines = [_good("AAPL", 0), _good("MSFT", 0), _good("AAPL", 0, 12.5), _good("AAPL", 1), _good("AAPL", 0)]
    p = tmp_path / "day.csv.gz"
    p.write_bytes(gzip.compress(b"\r\n".join([HEADER, *(x.encode() for x in lines)])))
    kw: dict[str, Any] = {"source_file": "s3://b/k", "day": DAY, "interval": "1m", "tickers": WANTED}
    out = parse_day_file(p, **kw)
    why = (
        "duplicate bars that disagree: same ticker and window_start on lines 2, 4, 6 with different values; "
        "none of them landed"
    )
    assert [(r["line_number"], r["raw"], r["reason"]) for r in out.rejected["AAPL"]] == [
        (2, lines[0], why),
        (4, lines[2], why),
        (6, lines[4], why),
    ]
    assert [b["ts"] for b in out.bars["AAPL"]] == [OPEN + dt.timedelta(minutes=1)]
    assert [b["close"] for b in out.bars["MSFT"]] == [100.25]
    _same(out, parse_day_file_rows(p, **kw))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789.e-+ a٣", max_size=8), min_size=1, max_size=20))
def test_the_decimal_check_is_the_regex(values: list[str]) -> None:
    import re

    import pyarrow as pa

    got = polygon._plain_decimal(pa.array(values, pa.string())).to_pylist()
    assert got == [re.fullmatch(polygon._DECIMAL.strip("^$"), v) is not None for v in values]


def _land_one_by_one(
    w: Any, parsed: ParsedFile, tickers: list[str], day: dt.date, source_file: str, the_input: dict[str, Any]
) -> None:
    """The landing as it was before write_many: each partition through dataset_table and replace_file_rows."""
    from ingest.common import bar_period, dataset_table, replace_file_rows
    from ingest.stamping import asset_class
    from lake.schemas import BARS, BARS_REJECTED

    periods = polygon._periods_of_day("1m", day)
    for t in tickers:
        rows = parsed.bars.get(t)
        by_period = polygon._by_period(rows.table if rows is not None else None, "1m")
        for period in sorted(periods | set(by_period)):
            part = {"source": "polygon", "interval": "1m", "symbol": t, "period": period}
            bars = by_period.get(period, polygon._BAR_FIELDS.empty_table())
            table = dataset_table(BARS, bars, {"asset_class": asset_class(t, ())})
            replace_file_rows(w, BARS, part, source_file, table, the_input)
    rejected = [r for t in tickers for r in parsed.rejected.get(t, [])]
    period = bar_period("1m", dt.datetime.combine(day, dt.time(12), dt.UTC))
    replace_file_rows(
        w,
        BARS_REJECTED,
        {"source": "polygon", "period": period},
        source_file,
        dataset_table(BARS_REJECTED, rejected, {}),
        the_input,
        only_symbols=set(tickers),
    )


def test_land_file_gives_the_lake_of_one_partition_after_another(tmp_path: Path) -> None:
    """A winter month's last day (its evening bars are in the next UTC month: two periods), ETFs and
    stocks, a bad row, a ticker without rows; landed into a new lake, then again (a republished file,
    other prices) over it: the same files as landing each partition by itself."""
    from ingest.sessions import land
    from tests.faults import lake_files

    day = dt.date(2024, 1, 31)
    start = dt.datetime.combine(day, dt.time(9, 30), NY).astimezone(dt.UTC)
    tickers = ["AAPL", "SPY", "QQQ", "MSFT", "NONE"]
    source_file = "s3://flatfiles/us_stocks_sip/minute_aggs_v1/2024/01/2024-01-31.csv.gz"
    for version, bump in enumerate((0.0, 0.5)):
        lines = [
            f"{t},100,{10 + k + bump},{10.5 + k + bump},{11 + k + bump},{9.5 + k + bump},"
            f"{_ns(start + dt.timedelta(minutes=m))},3"
            for m in range(0, 630, 7)  # to 19:59 New York: past midnight UTC
            for k, t in enumerate(tickers[:4])
        ]
        lines.append(f"MSFT,1,1,1,1,1,{_ns(start)}1,1")  # 20 digits: rejected
        p = tmp_path / f"day{version}.csv.gz"
        p.write_bytes(gzip.compress(b"\r\n".join([HEADER, *(x.encode() for x in lines)])))
        parsed = parse_day_file(p, source_file=source_file, day=day, interval="1m", tickers=tickers)
        assert len(polygon._by_period(parsed.bars["AAPL"].table, "1m")) == 2
        the_input = {"file": source_file, "etag": f'"v{version}"', "sha256": f"{version}"}
        for root, how in ((tmp_path / "many", "many"), (tmp_path / "one", "one")):
            with land(root) as w:
                if how == "many":
                    polygon.land_file(
                        w, parsed, tickers=tickers, interval="1m", day=day, source_file=source_file,
                        the_input=the_input,
                    )  # fmt: skip
                else:
                    _land_one_by_one(w, parsed, tickers, day, source_file, the_input)
        files = lake_files(tmp_path / "many")
        revisions = {k for k in files if k.startswith("datasets/bar_revisions/") and "__empty__" not in k}
        assert bool(revisions) == (version == 1)  # the republished prices replaced the first ones
        for k in revisions:  # when (first_seen, last_seen) differs between the two lakes
            files.pop(k)
        assert files == {k: v for k, v in lake_files(tmp_path / "one").items() if k not in revisions}


def test_land_file_with_a_fixed_clock_gives_byte_identical_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock fixed, landing a day file (then a republished version of it) through land_file leaves
    every file of the lake byte for byte as landing each partition by itself: data, manifests (their text
    and landed_at), rejected rows and bar_revisions."""
    import lake.writer as writer_mod
    from ingest.sessions import land

    monkeypatch.setattr(writer_mod, "_now", lambda: dt.datetime(2024, 2, 1, 9, 0, 0, 500, tzinfo=dt.UTC))
    day = dt.date(2024, 1, 31)
    start = dt.datetime.combine(day, dt.time(9, 30), NY).astimezone(dt.UTC)
    tickers = ["AAPL", "SPY", "MSFT", "NONE"]
    source_file = "s3://flatfiles/us_stocks_sip/minute_aggs_v1/2024/01/2024-01-31.csv.gz"

    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted((root / "datasets").rglob("*"))
            if p.name in ("data.parquet", "_manifest.json") and "/features/" not in p.as_posix()
        }

    for version, bump in enumerate((0.0, 0.25)):
        lines = [
            f"{t},100,{10 + k + bump},{10.5 + k + bump},{11 + k + bump},{9.5 + k + bump},"
            f"{_ns(start + dt.timedelta(minutes=m))},3"
            for m in range(0, 630, 11)
            for k, t in enumerate(tickers[:3])
        ]
        lines.append(f"SPY,1,1,1,1,1,{_ns(start)}1,1")  # 20 digits: rejected
        p = tmp_path / f"day{version}.csv.gz"
        p.write_bytes(gzip.compress(b"\r\n".join([HEADER, *(x.encode() for x in lines)])))
        parsed = parse_day_file(p, source_file=source_file, day=day, interval="1m", tickers=tickers)
        the_input = {"file": source_file, "etag": f'"v{version}"', "sha256": f"{version}"}
        with land(tmp_path / "many") as w:
            polygon.land_file(
                w, parsed, tickers=tickers, interval="1m", day=day, source_file=source_file,
                the_input=the_input,
            )  # fmt: skip
        with land(tmp_path / "one") as w:
            _land_one_by_one(w, parsed, tickers, day, source_file, the_input)
        assert files(tmp_path / "many") == files(tmp_path / "one")
    assert any("bar_revisions/source=polygon" in k for k in files(tmp_path / "many"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b",", b"\n\r", b"\xff"]), max_size=40))
def test_the_line_and_cr_counts_are_bytes_counts(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert polygon._newlines(data) == data.count(b"\n")
    assert polygon._lone_cr(data) == (data.count(b"\r") != data.count(b"\r\n"))


def test_the_cycle_collector_is_paused_inside_and_restored_after_even_on_an_error() -> None:
    """A day file is parsed and landed with the cycle collector paused (its thousands of partitions' objects
    are not walked again and again); whatever state the collector had before comes back after, an error
    included, and a collector disabled by the caller stays disabled."""
    import gc

    assert gc.isenabled()
    with polygon.cycle_collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), polygon.cycle_collection_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with polygon.cycle_collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()

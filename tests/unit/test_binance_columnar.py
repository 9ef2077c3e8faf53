"""The columnar klines parser agrees with the row-by-row one on every file, and is the path clean files take."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.binance import _parse_clean, _parse_rows, parse_klines

UTC = dt.UTC
DAY = dt.datetime(2024, 9, 21, tzinfo=UTC)
NEXT = DAY + dt.timedelta(days=1)
KW: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "interval": "1m",
    "source_file": "f.zip",
    "start": DAY,
    "end": NEXT,
}


def _line(i: int, *, unit: int = 1000, o: str = "63201.05000000", c: str = "63210.00000000") -> str:
    ot = int((DAY + dt.timedelta(minutes=i)).timestamp()) * unit
    ct = ot + 60 * unit - 1
    return f"{ot},{o},63250.10000000,63190.00000000,{c},12.50000000,{ct},790000.1,42,6.1,385000.2,0"


def _clean(n: int, unit: int = 1000) -> bytes:
    return "".join(_line(i, unit=unit) + "\n" for i in range(n)).encode()


def _same(a: object, b: object) -> None:
    assert a.bars.equals(b.bars)  # type: ignore[attr-defined]
    assert a.rejected.equals(b.rejected)  # type: ignore[attr-defined]
    assert (a.header, a.lines) == (b.header, b.lines)  # type: ignore[attr-defined]


def test_a_clean_file_takes_the_columnar_path_and_gives_the_same_tables() -> None:
    for unit in (1000, 1_000_000):  # milliseconds to 2024, microseconds from 2025
        data = _clean(1440, unit)
        fast = _parse_clean(data, **KW)
        assert fast is not None and fast.bars.num_rows == 1440
        _same(fast, _parse_rows(data, **KW))


def test_a_header_row_is_skipped_by_both_paths() -> None:
    data = b"open_time,open,high,low,close,volume,close_time,quote_volume,count,tb,tq,ignore\n" + _clean(5)
    fast = _parse_clean(data, **KW)
    assert fast is not None and fast.header
    _same(fast, _parse_rows(data, **KW))


MUTATIONS = [
    lambda line: line.replace("63201.05000000", "nan", 1),
    lambda line: line.replace("63201.05000000", "1e5", 1),
    lambda line: line.replace("63201.05000000", "63300.00000000", 1),  # open above high
    lambda line: line.replace(",42,", ",-1,", 1),
    lambda line: line.replace(",42,", ",4.2,", 1),
    lambda line: line + ",extra",
    lambda line: line[: line.rindex(",")],
    lambda line: line.replace("12.50000000", "-12.5", 1),
    lambda line: "1" + line,  # 14-digit open_time
    lambda line: line.replace("63190.00000000", "0", 1),
    lambda line: line.replace("63190.00000000", '"63190.0"', 1),
    lambda line: line + "\r",
    lambda line: "",
]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    bad=st.lists(st.tuples(st.integers(0, 29), st.integers(0, len(MUTATIONS) - 1)), max_size=4),
    dup=st.lists(st.integers(0, 29), max_size=2),
    shift=st.sampled_from([0, 1440, -1]),
)
def test_both_paths_agree_on_any_file(n: int, bad: list[tuple[int, int]], dup: list[int], shift: int) -> None:
    lines = [_line(i + shift) for i in range(n)]
    for i, m in bad:
        if i < n:
            lines[i] = MUTATIONS[m](lines[i])
    lines += [lines[i] for i in dup if i < n]  # duplicated rows
    data = "".join(x + "\n" for x in lines).encode()
    _same(parse_klines(data, **KW), _parse_rows(data, **KW))
    fast = _parse_clean(data, **KW)
    if fast is not None:  # the columnar path never accepts what the row path rejects
        assert fast.rejected.num_rows == 0
        _same(fast, _parse_rows(data, **KW))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40).map(lambda b: bytes(b"0123456789.,\n"[x % 13] for x in b)))
def test_the_odd_byte_check_is_the_substring_search(body: bytes) -> None:
    from ingest.binance import _ODD, _odd

    assert _odd(body) == any(p in body for p in _ODD)

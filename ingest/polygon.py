"""Polygon.io flat files over the S3-compatible endpoint (us_stocks_sip minute and day aggregates).

One gzip CSV per New York trading day holds every ticker. It is read in blocks of whole lines and checked
column by column (Arrow CSV + numpy, the wanted tickers only); rows that fail a check go through the
row-by-row rules for their exact reason and line number. The raw file stays in the cache
(raw/polygon/<key>) with its ETag. A re-run
HEADs each day's object: same ETag, every wanted ticker already ingested from it and every bars partition
the day fed still intact (its data.parquet matches its manifest, which still lists the day's file) ->
skipped; a partition that is missing, damaged or lost the day's rows -> that day re-landed from the raw
cache (no download), the run saying which partition it rebuilds, and then every other day file of that
partition's period that the raw cache holds as landed (same sha256 and ETag as its ledger) too, so that a
run over part of a month does not drop the rest (a day no longer cached so is named in a note); a new ETag (the vendor republished the
day) -> downloaded again and that day's rows replaced in every partition it touched. Offline (the
endpoint's name does not resolve) the run stops before any request, in one line naming the host. Bad rows go to bars_rejected with a reason; a file that cannot be read whole (truncated gzip,
unexpected header) lands nothing and fails that day only.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import gzip
import json
import queue
import re
import threading
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingest import s3
from ingest.common import (
    INT64_MAX,
    CachedFile,
    IngestSummary,
    RawCache,
    RunContext,
    bar_period,
    dataset_table,
    days,
    interval_delta,
    ohlcv_problem,
    progress_bar,
    replace_file_rows,
    replace_file_rows_many,
)
from ingest.http import HostBreaker
from ingest.sessions import land
from ingest.stamping import NEW_YORK, StampError, asset_class, new_york_day, session, stamp_daily
from lake.errors import MarketlakeError
from lake.schemas import BARS, BARS_REJECTED, UTC_TS
from lake.writer import (
    MANIFEST_FILE,
    LakeWriter,
    atomic_write_bytes,
    manifest_inputs,
    partition_dir,
    partition_intact,
)

SOURCE = "polygon"
PREFIX = "us_stocks_sip"
FILE_SETS = {"1m": "minute_aggs_v1", "1d": "day_aggs_v1"}
HEADER = ("ticker", "volume", "open", "close", "high", "low", "window_start", "transactions")
LEDGER_SUFFIX = ".ingested.json"

_NUMBER = re.compile(r"^(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_INTEGER = re.compile(r"^\d+$")
_NS_19 = re.compile(r"^\d{19}$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS_PER_MINUTE = 60 * 1_000_000_000


class PolygonFileError(MarketlakeError):
    """A whole file cannot be read (truncated gzip, unexpected header): nothing of it lands."""


def object_key(interval: str, day: dt.date) -> str:
    try:
        file_set = FILE_SETS[interval]
    except KeyError:
        raise MarketlakeError(
            f"polygon: interval {interval!r} has no flat files (use {' or '.join(FILE_SETS)})"
        ) from None
    return f"{PREFIX}/{file_set}/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"


# --- parsing ---------------------------------------------------------------------------------------------


def _ns_to_datetime(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def _number(name: str, text: str, *, positive: bool) -> float:
    if text.startswith("-") and _NUMBER.fullmatch(text[1:]) and float(text[1:]) > 0:
        # a number below zero: said as the shared rule says it (ohlcv_problem), not "not a number"
        raise ValueError(f"{name} {text!r} is not positive" if positive else f"{name} {text} is negative")
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{name} {text!r} is not a number")
    value = float(text)
    if positive and not value > 0:
        raise ValueError(f"{name} {text!r} is not positive")
    return value


def _loose_float(text: str | None) -> float | None:
    if text is None or not _NUMBER.fullmatch(text):
        return None
    return float(text)


def _parse_row(
    fields: list[str], interval: str, day: dt.date, source_file: str
) -> tuple[dict[str, Any] | None, str | None, dt.datetime | None]:
    """(bar, None, vendor ts) for a valid row, or (None, reason, ts if readable) for a row to reject."""
    if len(fields) != len(HEADER):
        return None, f"{len(fields)} fields, expected {len(HEADER)} ({','.join(HEADER)})", None
    row = dict(zip(HEADER, (f.strip() for f in fields), strict=True))
    for name in HEADER:
        if row[name] == "":
            return None, f"missing field {name}", None
    ws = row["window_start"]
    if not _NS_19.fullmatch(ws):
        return (
            None,
            f"window_start {ws!r} is not 19 digits of epoch nanoseconds ({len(ws)} characters); "
            "refused, never rescaled",
            None,
        )
    ns = int(ws)
    vendor_ts = _ns_to_datetime(ns)
    try:
        o = _number("open", row["open"], positive=True)
        h = _number("high", row["high"], positive=True)
        lo = _number("low", row["low"], positive=True)
        c = _number("close", row["close"], positive=True)
        v = _number("volume", row["volume"], positive=False)
        if not _INTEGER.fullmatch(row["transactions"]):
            raise ValueError(f"transactions {row['transactions']!r} is not a whole number")
        n = int(row["transactions"])
        if n > INT64_MAX:
            raise ValueError(f"transactions {row['transactions']!r} is out of range (more than {INT64_MAX})")
    except ValueError as exc:
        return None, str(exc), vendor_ts
    problem = ohlcv_problem((o, h, lo, c, v), [row[k] for k in ("open", "high", "low", "close", "volume")])
    if problem is not None:
        return None, problem, vendor_ts
    if interval == "1d":
        try:
            ts, available_at = stamp_daily(day, vendor_ts)
        except StampError as exc:
            return None, f"window_start {ws}: {exc}", vendor_ts
    else:
        if ns % _NS_PER_MINUTE:
            return None, f"window_start {ws} is not on a minute boundary", vendor_ts
        on = new_york_day(vendor_ts)
        if on != day:
            return (
                None,
                f"window_start {ws} ({vendor_ts.isoformat()}) is on {on} in New York, not on the file's day {day}",
                vendor_ts,
            )
        ts, available_at = vendor_ts, vendor_ts + interval_delta(interval)
    bar = {
        "ts": ts,
        "available_at": available_at,
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "volume": v,
        "trades": n,
        "source_file": source_file,
    }
    return bar, None, vendor_ts


@dataclass
class ParsedFile:
    """What one day file holds for the wanted tickers: valid bars and rejected rows, by ticker.

    `table` holds every valid bar in line order (a `symbol` column and BARS' columns but asset_class);
    `bars[ticker]` is that ticker's slice of it, read as a sequence of row dicts."""

    bars: dict[str, BarRows] = field(default_factory=dict)
    rejected: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    lines: int = 0
    table: pa.Table | None = None


_BAR_FIELDS = pa.schema(
    [
        pa.field("symbol", pa.string()),
        pa.field("ts", UTC_TS),
        pa.field("available_at", UTC_TS),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("trades", pa.int64()),
        pa.field("source_file", pa.string()),
    ]
)


class BarRows(Sequence[dict[str, Any]]):
    """One ticker's valid bars: an Arrow table, read as a sequence of row dicts (ts, available_at, open,
    high, low, close, volume, trades, source_file)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __len__(self) -> int:
        return int(self.table.num_rows)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return self.table.to_pylist()[i]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return dict(self.table.slice(i % n, 1).to_pylist()[0])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.table.to_pylist())


def _finish(
    bars: pa.Table,
    rejected: dict[str, list[dict[str, Any]]],
    lines: int,
    groups: _Groups | None = None,
) -> ParsedFile:
    """A ParsedFile from the valid bars in line order (schema _BAR_FIELDS) and the rejected rows.
    `groups`: the bars' rows by ticker when the caller has them already (`_grouped`)."""
    out = ParsedFile(lines=lines, table=bars)
    out.rejected.update({t: rows for t, rows in rejected.items() if rows})
    n = bars.num_rows
    if n and groups is not None:
        body = _take(bars.drop_columns(["symbol", "source_file"]), groups.order)
        files = bars.column("source_file")
        body = body.append_column(bars.schema.field("source_file"), files)  # one value: order is moot
        for name, start, end in groups.spans:
            out.bars[name] = BarRows(body.slice(start, end - start))
    elif n:
        # codes in order of first appearance: the tickers come out in the row-by-row path's order
        enc = pc.dictionary_encode(bars.column("symbol").combine_chunks())
        codes = enc.indices.to_numpy(zero_copy_only=False)
        names = enc.dictionary.to_pylist()
        order = np.argsort(codes, kind="stable")  # by ticker, line order kept within each
        body = bars.drop_columns(["symbol", "source_file"]).take(pa.array(order))
        files = bars.column("source_file")
        if files.null_count == 0 and pc.all(pc.equal(files, files[0])).as_py():
            files = pa.repeat(files[0], n)  # one file's rows, the usual case: nothing to reorder
        else:
            files = files.take(pa.array(order))
        body = body.append_column(bars.schema.field("source_file"), files)
        cuts = [0, *(np.flatnonzero(np.diff(codes[order])) + 1).tolist(), n]
        for code, (start, end) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
            out.bars[names[code]] = BarRows(body.slice(start, end - start))
    return out


@dataclass
class _Groups:
    """Valid bars grouped by ticker: `order` (row indices, each ticker's rows together in line order) and
    each ticker's (name, start, end) in it, the tickers in order of their first line."""

    order: np.ndarray
    spans: list[tuple[str, int, int]]


def _grouped(codes: np.ndarray, order: np.ndarray, names: Sequence[str]) -> _Groups:
    """_Groups from each row's ticker code (`names[code]`, rows in line order) and `order`, the rows
    stably sorted by code."""
    sorted_codes = codes[order]
    cuts = np.flatnonzero(np.diff(sorted_codes)) + 1
    starts = np.concatenate([[0], cuts]).astype(np.int64)
    ends = np.concatenate([cuts, [order.size]]).astype(np.int64)
    first_row = order[starts]  # the first line of each ticker: stable sort, rows in line order
    by_first = np.argsort(first_row, kind="stable")
    spans = [(names[int(sorted_codes[starts[g]])], int(starts[g]), int(ends[g])) for g in by_first.tolist()]
    return _Groups(order, spans)


TAKE_THREADS = 2
"""Columns gathered at once when the valid bars are put in ticker order (Arrow's take, outside the GIL)."""


def _take(table: pa.Table, order: np.ndarray) -> pa.Table:
    """`table.take(order)`, its columns gathered TAKE_THREADS at a time."""
    indices = pa.array(order)
    if table.num_columns < 2 or TAKE_THREADS < 2:
        return table.take(indices)
    with ThreadPoolExecutor(TAKE_THREADS) as pool:
        columns = list(pool.map(lambda c: pc.take(c, indices), table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _read_header(f: Any, source_file: str) -> None:
    first = f.readline()
    header = first.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n").decode("utf-8", "replace")
    if tuple(h.strip() for h in header.split(",")) != HEADER:
        raise PolygonFileError(
            f"polygon: {source_file}: unexpected header {header[:200]!r}, expected {','.join(HEADER)!r}"
        )


def parse_day_file(
    path: Path, *, source_file: str, day: dt.date, interval: str, tickers: Iterable[str]
) -> ParsedFile:
    """Read a gzip CSV day file and keep only the lines of `tickers`.

    The file is read in blocks of complete lines and each block checked column by column (Arrow's CSV
    reader, numpy), every check of `_parse_row` on whole columns; only the rows that fail a check (or
    that the columnar reader cannot take as they are) go through `_parse_row`, which names their reason.
    Duplicates are decided in line order, as row by row. Raises PolygonFileError (naming the file) if the
    gzip is truncated or corrupt, or the header is not exactly the documented one. CRLF or LF endings and
    a missing final newline are all fine."""
    wanted = set(tickers)
    try:
        with gzip.open(path, "rb") as f:
            _read_header(f, source_file)
            if any(not t or t != t.strip() or '"' in t or "," in t for t in wanted):
                return _rows_of(f, source_file=source_file, day=day, interval=interval, wanted=wanted)
            return _columns_of(f, path, source_file=source_file, day=day, interval=interval, wanted=wanted)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise PolygonFileError(
            f"polygon: {source_file}: truncated or corrupt gzip ({exc}); nothing of this file landed"
        ) from exc
    except OSError as exc:
        raise PolygonFileError(f"polygon: {source_file}: cannot read the cached file: {exc}") from exc


def parse_day_file_rows(
    path: Path, *, source_file: str, day: dt.date, interval: str, tickers: Iterable[str]
) -> ParsedFile:
    """`parse_day_file` line by line, every row through `_parse_row`: the reference the columnar path is
    tested against, and its fallback."""
    wanted = set(tickers)
    try:
        with gzip.open(path, "rb") as f:
            _read_header(f, source_file)
            return _rows_of(f, source_file=source_file, day=day, interval=interval, wanted=wanted)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise PolygonFileError(
            f"polygon: {source_file}: truncated or corrupt gzip ({exc}); nothing of this file landed"
        ) from exc
    except OSError as exc:
        raise PolygonFileError(f"polygon: {source_file}: cannot read the cached file: {exc}") from exc


@dataclass
class _Candidate:
    """A wanted ticker's row read by `_parse_row`: a bar (duplicates not decided yet) or a rejection."""

    line: int
    ticker: str
    text: str
    fields: list[str]
    bar: dict[str, Any] | None
    reason: str | None
    vendor_ts: dt.datetime | None


def _candidate(
    line_no: int,
    raw: bytes,
    prefixes: tuple[bytes, ...],
    wanted: set[str],
    interval: str,
    day: dt.date,
    source_file: str,
) -> _Candidate | None:
    """One line as the row-by-row path reads it; None if it is not a wanted ticker's line."""
    if not raw.startswith(prefixes):
        return None
    text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
    fields = next(csv.reader([text]))
    ticker = fields[0]
    if ticker not in wanted:
        return None
    bar, reason, vendor_ts = _parse_row(fields, interval, day, source_file)
    return _Candidate(line_no, ticker, text, fields, bar, reason, vendor_ts)


def _prefixes(wanted: set[str]) -> tuple[bytes, ...]:
    return tuple(f"{t},".encode() for t in sorted(wanted))


_VALUES = ("open", "high", "low", "close", "volume", "trades")
"""What two copies of a bar (same ticker and ts) must agree on to be the same bar (ts, available_at and
the file are the same by then)."""


def _duplicate_reason(first_line: int) -> str:
    return f"duplicate bar: same ticker and window_start as line {first_line}"


def _conflict_reason(lines: Sequence[int]) -> str:
    """The reason of every copy of a bar the file holds more than once with different values: the same
    for each copy, naming them all."""
    return (
        "duplicate bars that disagree: same ticker and window_start on lines "
        f"{', '.join(str(x) for x in lines)} with different values; none of them landed"
    )


def _rows_of(f: Any, *, source_file: str, day: dt.date, interval: str, wanted: set[str]) -> ParsedFile:
    """The row-by-row path, from the line after the header. A bar the file holds more than once (same
    ticker and ts): identical copies land once, the others rejected as duplicates of the first; copies
    that disagree on any value are all rejected (no copy is chosen over another)."""
    prefixes = _prefixes(wanted)
    copies: dict[tuple[str, dt.datetime], list[_Candidate]] = {}
    valid: list[_Candidate] = []
    rejected_c: list[tuple[_Candidate, str | None]] = []
    line_no = 1
    for raw in f:
        line_no += 1
        c = _candidate(line_no, raw, prefixes, wanted, interval, day, source_file)
        if c is None:
            continue
        if c.bar is None:
            rejected_c.append((c, c.reason))
            continue
        valid.append(c)
        copies.setdefault((c.ticker, c.bar["ts"]), []).append(c)
    out: set[int] = set()
    for group in copies.values():
        if len(group) == 1:
            continue
        first = group[0]
        if all(c.bar[k] == first.bar[k] for c in group[1:] for k in _VALUES):  # type: ignore[index]
            rejected_c += [(c, _duplicate_reason(first.line)) for c in group[1:]]
            out.update(c.line for c in group[1:])
        else:
            reason = _conflict_reason([c.line for c in group])
            rejected_c += [(c, reason) for c in group]
            out.update(c.line for c in group)
    bars = [{"symbol": c.ticker, **c.bar} for c in valid if c.line not in out]  # type: ignore[dict-item]
    rejected: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c, why in sorted(rejected_c, key=lambda x: x[0].line):
        rejected[c.ticker].append(
            _rejected_row(c.ticker, interval, source_file, c.line, c.text, c.fields, c.vendor_ts, why)
        )
    return _finish(_bars_table(bars), rejected, line_no)


def _bars_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.table(
        {f.name: pa.array([r[f.name] for r in rows], type=f.type) for f in _BAR_FIELDS}, schema=_BAR_FIELDS
    )


BLOCK_BYTES = 8 << 20
"""Uncompressed bytes read and checked at once by the columnar path (memory stays a few blocks)."""
PARSE_THREADS = 2
"""Blocks checked at once (by columns, mostly outside the GIL) while the next one is decompressed."""

_DECIMAL = r"^(?:[0-9]+\.?[0-9]*|\.[0-9]+)$"
_MAX_NS = "9223372036854775807"


@dataclass
class _DayRule:
    """What a valid row's window_start must be for this file (New York day bounds, stamps of a daily bar)."""

    interval: str
    day: dt.date
    lo_ns: int
    hi_ns: int
    daily: tuple[int, int] | None  # (ts, available_at) in microseconds for a daily bar; None for minutes
    usable: bool  # False: no row can be decided by columns (the day is not a session, or off calendar)

    @classmethod
    def of(cls, interval: str, day: dt.date) -> _DayRule:
        start = dt.datetime.combine(day, dt.time(0), NEW_YORK)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), NEW_YORK)
        lo, hi = _ns_of(start), _ns_of(end)
        if interval != "1d":
            return cls(interval, day, lo, hi, None, True)
        try:
            ts, available_at = stamp_daily(day, start.astimezone(dt.UTC) + dt.timedelta(hours=12))
        except StampError:
            return cls(interval, day, lo, hi, None, False)
        return cls(interval, day, lo, hi, (_ns_of(ts) // 1000, _ns_of(available_at) // 1000), True)


def _ns_of(instant: dt.datetime) -> int:
    d = instant - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000


def _columns_of(
    f: Any, path: Path, *, source_file: str, day: dt.date, interval: str, wanted: set[str]
) -> ParsedFile:
    """The columnar path, from the line after the header."""
    rule = _DayRule.of(interval, day)
    prefixes = _prefixes(wanted)
    wanted_arr = pa.array(sorted(wanted), type=pa.string())
    parts: list[pa.Table] = []
    doubt: list[_Candidate] = []
    line_no = 1  # lines read so far (the header is line 1)
    rest = b""
    pending: deque[tuple[bytes, int, int, Future[tuple[pa.Table, list[tuple[int, bytes]]] | None]]] = deque()

    def take(
        data: bytes, first: int, n_lines: int, got: tuple[pa.Table, list[tuple[int, bytes]]] | None
    ) -> None:
        if got is None:  # the columnar reader cannot count this block's lines exactly: row by row
            for i, raw in enumerate(data.split(b"\n")[:n_lines]):
                c = _candidate(first + i, raw, prefixes, wanted, interval, day, source_file)
                if c is not None:
                    doubt.append(c)
        else:
            table, doubtful = got
            parts.append(table)
            for number, raw_bytes in doubtful:
                c = _candidate(number, raw_bytes, prefixes, wanted, interval, day, source_file)
                if c is not None:
                    doubt.append(c)

    # blocks are checked PARSE_THREADS at a time while the next ones are decompressed; taken in line order
    with ThreadPoolExecutor(PARSE_THREADS) as pool:
        try:
            while True:
                block = f.read(BLOCK_BYTES)
                if block:
                    data = rest + block
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        rest = data
                        continue
                    rest, data = data[cut + 1 :], data[: cut + 1]
                else:
                    data, rest = rest, b""
                    if not data:
                        break
                n_lines = _newlines(data) + (0 if data.endswith(b"\n") else 1)
                job = pool.submit(_block, data, n_lines, line_no + 1, wanted_arr, rule)
                pending.append((data, line_no + 1, n_lines, job))
                line_no += n_lines
                while len(pending) > PARSE_THREADS:
                    d, first, n, j = pending.popleft()
                    take(d, first, n, j.result())
                if not block:
                    break
            while pending:
                d, first, n, j = pending.popleft()
                take(d, first, n, j.result())
        except BaseException:
            for *_, j in pending:
                j.cancel()
            raise

    def reread(numbers: set[int]) -> dict[int, _Candidate]:
        """The lines `numbers` read again as the row-by-row path reads them (duplicates found by
        columns: their reason quotes their text, which the columns no longer hold)."""
        found: dict[int, _Candidate] = {}
        with gzip.open(path, "rb") as again:
            for number, raw in enumerate(again, start=1):
                if number in numbers:
                    c = _candidate(number, raw, prefixes, wanted, interval, day, source_file)
                    if c is not None:
                        found[number] = c
        return found

    return _decide(parts, doubt, wanted_arr, line_no, interval, source_file, reread)


_COLUMN_TYPES = {name: pa.string() for name in HEADER}


def _plain_decimal(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Per value: does it match _DECIMAL (ASCII digits with at most one '.', at least one digit)? Without
    its first '.', the text is a non-empty run of ASCII digits: half the cost of the regex."""
    return pc.ascii_is_decimal(pc.replace_substring(col, ".", "", max_replacements=1))


def _newlines(data: bytes) -> int:
    """data.count(b"\\n"), counted by numpy outside the GIL (bytes.count holds it: 8 MB blocks)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))


def _lone_cr(data: bytes) -> bool:
    """Whether some CR in `data` is not followed by LF (data.count(b"\\r") != data.count(b"\\r\\n")),
    by numpy outside the GIL."""
    b = np.frombuffer(data, dtype=np.uint8)
    cr = np.flatnonzero(b == 13)
    if cr.size == 0:
        return False
    if cr[-1] == b.size - 1:
        return True
    return not bool(np.all(b[cr + 1] == 10))


def _block(
    data: bytes, n_lines: int, first_line: int, wanted_arr: pa.Array, rule: _DayRule
) -> tuple[pa.Table, list[tuple[int, bytes]]] | None:
    """One block of whole lines checked by columns: (the wanted tickers' valid rows with their line,
    [(line, raw) of the wanted tickers' rows some check refused or doubts]), or None if the block's lines
    cannot be counted exactly by the columnar reader (a lone CR, an empty line, bad UTF-8...)."""
    if _lone_cr(data):
        return None
    invalid: list[tuple[int | None, str]] = []

    def handler(row: Any) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    try:
        t = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=list(HEADER), use_threads=False, block_size=1 << 26),
            parse_options=pacsv.ParseOptions(
                quote_char=False,
                newlines_in_values=False,
                ignore_empty_lines=False,
                invalid_row_handler=handler,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=_COLUMN_TYPES,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if t.num_rows + len(invalid) != n_lines or any(num is None for num, _ in invalid):
        return None
    doubtful = [(first_line + int(num) - 1, text.encode()) for num, text in invalid]  # type: ignore[arg-type]
    lines = np.arange(first_line, first_line + n_lines, dtype=np.int64)
    if invalid:
        keep = np.ones(n_lines, dtype=bool)
        keep[[int(num) - 1 for num, _ in invalid]] = False  # type: ignore[arg-type]
        lines = lines[keep]
    mine = pc.is_in(t.column("ticker"), value_set=wanted_arr)
    if not pc.all(mine).as_py():
        mask = mine.to_numpy(zero_copy_only=False)
        t = t.filter(mine)
        lines = lines[mask]
    ws = t.column("window_start")
    ok = pc.and_(pc.equal(pc.binary_length(ws), 19), pc.ascii_is_decimal(ws))
    ok = pc.and_(ok, pc.less_equal(ws, _MAX_NS))
    for name in ("open", "high", "low", "close", "volume"):
        col = t.column(name)
        ok = pc.and_(ok, _plain_decimal(col))
        ok = pc.and_(ok, pc.less_equal(pc.binary_length(col), 300))
    n = t.column("transactions")
    ok = pc.and_(ok, pc.and_(pc.ascii_is_decimal(n), pc.less_equal(pc.binary_length(n), 18)))
    ok = pc.and_(ok, pc.greater(pc.binary_length(n), 0))
    if not rule.usable:
        ok = pc.and_(ok, pa.scalar(False))
    ok_np = ok.to_numpy(zero_copy_only=False)
    good = t.filter(ok)
    g_lines = lines[ok_np]
    ns = pc.cast(good.column("window_start"), pa.int64()).to_numpy()
    o, h, lo, c, v = (
        pc.cast(good.column(name), pa.float64()).to_numpy()  # exact: both round to nearest like float()
        for name in ("open", "high", "low", "close", "volume")
    )
    fine = (
        np.isfinite(o)
        & np.isfinite(h)
        & np.isfinite(lo)
        & np.isfinite(c)
        & np.isfinite(v)
        & (o > 0)
        & (h > 0)
        & (lo > 0)
        & (c > 0)
        & (h >= lo)
        & (h >= np.maximum(o, c))
        & (lo <= np.minimum(o, c))
        & (ns >= rule.lo_ns)
        & (ns < rule.hi_ns)
    )
    if rule.daily is None:
        fine &= ns % _NS_PER_MINUTE == 0
    bad_idx = np.flatnonzero(~ok_np)
    if not fine.all():
        bad_idx = np.sort(np.concatenate([bad_idx, np.flatnonzero(ok_np)[~fine]]))
        good = good.filter(pa.array(fine))
        ns, g_lines = ns[fine], g_lines[fine]
        o, h, lo, c, v = o[fine], h[fine], lo[fine], c[fine], v[fine]
    if bad_idx.size:
        bad = t.take(pa.array(bad_idx)).to_pylist()
        for i, row in zip(bad_idx, bad, strict=True):
            doubtful.append((int(lines[i]), ",".join(row[k] for k in HEADER).encode()))
    if rule.daily is None:
        ts_us = ns // 1000
        avail_us = ts_us + _NS_PER_MINUTE // 1000
    else:
        ts_us = np.full(ns.size, rule.daily[0], dtype=np.int64)
        avail_us = np.full(ns.size, rule.daily[1], dtype=np.int64)
    out = pa.table(
        {
            "line": pa.array(g_lines, type=pa.int64()),
            "symbol": good.column("ticker"),
            "ts": pa.array(ts_us, type=pa.int64()).cast(UTC_TS),
            "available_at": pa.array(avail_us, type=pa.int64()).cast(UTC_TS),
            "open": pa.array(o, type=pa.float64()),
            "high": pa.array(h, type=pa.float64()),
            "low": pa.array(lo, type=pa.float64()),
            "close": pa.array(c, type=pa.float64()),
            "volume": pa.array(v, type=pa.float64()),
            "trades": pc.cast(good.column("transactions"), pa.int64()),
        }
    )
    return out, doubtful


def _decide(
    parts: list[pa.Table],
    doubt: list[_Candidate],
    wanted_arr: pa.Array,
    lines: int,
    interval: str,
    source_file: str,
    reread: Callable[[set[int]], dict[int, _Candidate]],
) -> ParsedFile:
    """Merge the columnar rows and the rows read one by one, then decide the bars held more than once as
    `_rows_of` does: identical copies land once, copies that disagree are all rejected."""
    schema = pa.schema(
        [
            pa.field("line", pa.int64()),
            *[_BAR_FIELDS.field(n) for n in _BAR_FIELDS.names if n != "source_file"],
        ]
    )
    tables = [p.select(schema.names).cast(schema) for p in parts if p.num_rows]
    extra = [c for c in doubt if c.bar is not None]
    by_line: dict[int, _Candidate] = {c.line: c for c in extra}
    if extra:
        tables.append(
            pa.table(
                {
                    "line": pa.array([c.line for c in extra], type=pa.int64()),
                    "symbol": pa.array([c.ticker for c in extra], type=pa.string()),
                    **{
                        k: pa.array([c.bar[k] for c in extra], type=schema.field(k).type)  # type: ignore[index]
                        for k in ("ts", "available_at", "open", "high", "low", "close", "volume", "trades")
                    },
                },
                schema=schema,
            )
        )
    allv = pa.concat_tables(tables) if tables else schema.empty_table()
    if extra:
        allv = allv.take(pc.sort_indices(allv, sort_keys=[("line", "ascending")]))
    allv = allv.combine_chunks()
    rejected_c: list[tuple[int, str, dict[str, Any]]] = []
    for c in doubt:
        if c.bar is None:
            rejected_c.append(
                (
                    c.line,
                    c.ticker,
                    _rejected_row(
                        c.ticker, interval, source_file, c.line, c.text, c.fields, c.vendor_ts, c.reason
                    ),
                )
            )
    groups: _Groups | None = None
    if allv.num_rows:
        sym = pc.index_in(allv.column("symbol"), value_set=wanted_arr).to_numpy(zero_copy_only=False)
        ts = allv.column("ts").cast(pa.int64()).to_numpy()
        line = allv.column("line").to_numpy()
        by_sym = np.argsort(sym, kind="stable")
        g_sym, g_ts = sym[by_sym], ts[by_sym]
        # the usual file: each ticker's bars in time order, so no two share a ts (no second sort needed)
        rising = bool(np.all((g_sym[1:] != g_sym[:-1]) | (g_ts[1:] > g_ts[:-1])))
        if rising:  # no duplicate: the rows by ticker are these
            groups = _grouped(sym, by_sym, wanted_arr.to_pylist())
        order = by_sym if rising else np.lexsort((line, ts, sym))
        same = np.zeros(order.size, dtype=bool)
        if not rising:
            s_sym, s_ts = sym[order], ts[order]
            same[1:] = (s_sym[1:] == s_sym[:-1]) & (s_ts[1:] == s_ts[:-1])
        if same.any():
            starts = np.where(~same, np.arange(order.size), 0)
            first_pos = np.maximum.accumulate(starts)  # per sorted row: where its group starts
            differ = np.zeros(order.size, dtype=bool)
            for name in _VALUES:
                v = allv.column(name).to_numpy()[order]
                differ |= same & (v != v[first_pos])
            conflict = np.isin(first_pos, first_pos[differ])  # every copy of a bar whose copies disagree
            out_pos = np.flatnonzero(same | conflict)
            dup_rows = order[out_pos]
            first_lines = line[order[first_pos[out_pos]]]
            group_lines: dict[int, list[int]] = defaultdict(list)
            for pos in np.flatnonzero(conflict):
                group_lines[int(first_pos[pos])].append(int(line[order[pos]]))
            reasons = [
                _conflict_reason(group_lines[int(first_pos[pos])])
                if conflict[pos]
                else _duplicate_reason(int(first))
                for pos, first in zip(out_pos, first_lines, strict=True)
            ]
            dups = allv.select(["symbol", "line"]).take(pa.array(dup_rows)).to_pylist()
            texts = reread({int(r["line"]) for r in dups if int(r["line"]) not in by_line})
            for row, reason in zip(dups, reasons, strict=True):
                ticker, ln = row["symbol"], int(row["line"])
                c = by_line.get(ln) or texts[ln]
                rejected_c.append(
                    (
                        ln,
                        ticker,
                        _rejected_row(
                            ticker, interval, source_file, ln, c.text, c.fields, c.vendor_ts, reason
                        ),
                    )
                )
            keep = np.ones(order.size, dtype=bool)
            keep[dup_rows] = False
            allv = allv.filter(pa.array(keep))
    rejected_c.sort(key=lambda x: x[0])
    rejected: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, ticker, r in rejected_c:
        rejected[ticker].append(r)
    n = allv.num_rows
    bars = allv.drop_columns(["line"]).append_column(
        "source_file",
        pa.repeat(pa.scalar(source_file), n),
    )
    return _finish(bars.cast(_BAR_FIELDS), rejected, lines, groups)


def _rejected_row(
    ticker: str,
    interval: str,
    source_file: str,
    line_no: int,
    text: str,
    fields: list[str],
    vendor_ts: dt.datetime | None,
    reason: str | None,
) -> dict[str, Any]:
    def at(name: str) -> str | None:
        i = HEADER.index(name)
        return fields[i].strip() if i < len(fields) else None

    return {
        "symbol": ticker,
        "interval": interval,
        "source_file": source_file,
        "line_number": line_no,
        "raw": text,
        "ts": vendor_ts,
        "open": _loose_float(at("open")),
        "high": _loose_float(at("high")),
        "low": _loose_float(at("low")),
        "close": _loose_float(at("close")),
        "volume": _loose_float(at("volume")),
        "reason": reason or "rejected",
    }


# --- writing ---------------------------------------------------------------------------------------------


def _periods_of_day(interval: str, day: dt.date) -> set[str]:
    """Every period a day file's bars can fall in (minute bars run to 20:00 New York: the next UTC day)."""
    noon = dt.datetime.combine(day, dt.time(12), dt.UTC)
    return {bar_period(interval, noon), bar_period(interval, noon + dt.timedelta(days=1))}


LAND_THREADS = 4
"""Partitions of one day file written at once (each its own folder; threads overlap the encoding, the
new folders and files and the fsyncs)."""


def _by_period(bars: pa.Table | None, interval: str) -> dict[str, pa.Table]:
    """One ticker's bars split by `period` partition (bar_period of each ts), row order kept."""
    if bars is None or bars.num_rows == 0:
        return {}
    us = bars.column("ts").cast(pa.int64()).to_numpy()
    unit = "datetime64[Y]" if interval_delta(interval) >= dt.timedelta(days=1) else "datetime64[M]"
    key = us.astype("datetime64[us]").astype(unit)
    firsts = np.unique(key, return_index=True)[1]
    if firsts.size == 1:
        return {bar_period(interval, _EPOCH + dt.timedelta(microseconds=int(us[0]))): bars}
    out = {}
    for i in firsts:
        mask = key == key[i]
        out[bar_period(interval, _EPOCH + dt.timedelta(microseconds=int(us[i])))] = bars.filter(
            pa.array(mask)
        )
    return out


_BARS_BODY = [n for n in BARS.schema.names if n != "asset_class"]
_BARS_BODY_TYPES = [BARS.schema.field(n).type for n in _BARS_BODY]
_BARS_BODY_SCHEMA = pa.schema([_BAR_FIELDS.field(n) for n in _BARS_BODY])
"""The schema of a ParsedFile's bars without `symbol`: the usual input of `_bars_of` (one C++ comparison)."""


def _bars_of(bars: pa.Table | None, kind: pa.Scalar) -> pa.Table:
    """One partition's bars as a BARS table (`dataset_table(BARS, bars, {"asset_class": ...})`, without
    its generic checks: `bars` has the columns of _BAR_FIELDS but symbol, in their types)."""
    if bars is None:
        return BARS.schema.empty_table()
    schema = bars.schema
    if not schema.equals(_BARS_BODY_SCHEMA) and (
        schema.names != _BARS_BODY or schema.types != _BARS_BODY_TYPES
    ):
        return dataset_table(BARS, bars, {"asset_class": kind.as_py()})
    return pa.Table.from_arrays([pa.repeat(kind, bars.num_rows), *bars.columns], schema=BARS.schema)


def land_file(
    w: LakeWriter,
    parsed: ParsedFile,
    *,
    tickers: Iterable[str],
    interval: str,
    day: dt.date,
    source_file: str,
    the_input: dict[str, Any],
    etfs: Iterable[str] = (),
    added: dict[str, int] | None = None,
) -> set[tuple[str, str]]:
    """Write one file's rows for `tickers`, replacing whatever an earlier version of the file left;
    `etfs` (the setting) are stored as asset_class 'etf' besides the built-in list. Returns the (ticker,
    period) bars partitions that got rows from the file; `added` gets each ticker's rows new to the lake."""
    tickers = list(tickers)
    periods = _periods_of_day(interval, day)
    fed: set[tuple[str, str]] = set()
    writes: list[tuple[dict[str, str], pa.Table]] = []
    classes: dict[str, pa.Scalar] = {}
    for ticker in tickers:
        rows = parsed.bars.get(ticker)
        table = rows.table if rows is not None else None
        if len(periods) == 1 and table is not None:
            by_period = {next(iter(periods)): table}  # every valid bar is on the file's day
        else:
            by_period = _by_period(table, interval)
        kind = asset_class(ticker, etfs)
        if kind not in classes:
            classes[kind] = pa.scalar(kind, type=pa.string())
        for period in sorted(periods | set(by_period)):
            part = {"source": SOURCE, "interval": interval, "symbol": ticker, "period": period}
            bars = by_period.get(period)
            if bars is not None and bars.num_rows:
                fed.add((ticker, period))
            writes.append((part, _bars_of(bars, classes[kind])))
    # one partition per (ticker, period), each its own files: written LAND_THREADS at a time, so that the
    # writer's encoding and fsyncs (most of a many-ticker day's landing) overlap
    new_rows = replace_file_rows_many(w, BARS, writes, source_file, the_input, threads=LAND_THREADS)
    if added is not None:
        for (part, _), n in zip(writes, new_rows, strict=True):
            added[part["symbol"]] = added.get(part["symbol"], 0) + n
    rejected = [r for t in tickers for r in parsed.rejected.get(t, [])]
    period = bar_period(interval, dt.datetime.combine(day, dt.time(12), dt.UTC))
    table = dataset_table(BARS_REJECTED, rejected, {})
    replace_file_rows(
        w,
        BARS_REJECTED,
        {"source": SOURCE, "period": period},
        source_file,
        table,
        the_input,
        only_symbols=set(tickers),
    )
    return fed


# --- the run ---------------------------------------------------------------------------------------------


def _fail(summary: IngestSummary, message: str, symbol: str | None = None) -> None:
    """Record a failed piece; the CLI prefixes the source itself, so the message does not repeat it."""
    summary.fail(message.removeprefix(f"{SOURCE}: "), symbol)


def _ledger_path(cache: RawCache, key: str) -> Path:
    p = cache.path(key)
    return p.with_name(p.name + LEDGER_SUFFIX)


def _read_ledger(cache: RawCache, key: str) -> dict[str, Any]:
    p = _ledger_path(cache, key)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_ledger(
    cache: RawCache,
    key: str,
    etag: str,
    sha256: str,
    tickers: Iterable[str],
    fed: Iterable[tuple[str, str]] = (),
) -> None:
    """What was landed from the file: its ETag and sha256, the tickers read from it, and the (ticker,
    period) bars partitions it gave rows to (so that a partition that lost them is noticed)."""
    body = {
        "etag": etag,
        "sha256": sha256,
        "tickers": sorted(set(tickers)),
        "fed": sorted([t, p] for t, p in set(fed)),
    }
    atomic_write_bytes(_ledger_path(cache, key), (json.dumps(body, indent=1) + "\n").encode())


def _ledger_fed(ledger: Mapping[str, Any]) -> set[tuple[str, str]]:
    fed = ledger.get("fed", [])
    if not isinstance(fed, list):
        return set()
    return {(str(x[0]), str(x[1])) for x in fed if isinstance(x, list) and len(x) == 2}


def _broken_or_short(
    w: LakeWriter,
    ledger: Mapping[str, Any],
    ticker: str,
    interval: str,
    day: dt.date,
    source_file: str,
    etag: str,
    intact_seen: set[Path] | None = None,
) -> str | None:
    """Why a ticker read from this day file before must be landed again, or None when the lake still holds
    it: a bars partition the day can feed whose data file is missing or does not match its manifest, or
    one the file gave rows to (per the ledger) whose manifest no longer lists it (it was started afresh
    after damage). A ledger written before it recorded the partitions fed ("fed") counts every existing
    partition of the day as fed, once: the re-landing writes the new ledger. `intact_seen` (one run's)
    keeps the partitions found intact already, so that each is hashed once per run."""
    fed = _ledger_fed(ledger)
    for period in sorted(_periods_of_day(interval, day)):
        part = {"source": SOURCE, "interval": interval, "symbol": ticker, "period": period}
        d = partition_dir(w.paths, BARS, part)
        if intact_seen is None or d not in intact_seen:
            if not partition_intact(d):
                return f"{d / 'data.parquet'} is missing or does not match its manifest"
            if intact_seen is not None:
                intact_seen.add(d)
        listed = (ticker, period) in fed if "fed" in ledger else (d / MANIFEST_FILE).exists()
        if listed and not any(
            i.get("file") == source_file and i.get("etag") == etag for i in manifest_inputs(d)
        ):
            return f"{d / 'data.parquet'} no longer holds this day's bars"
    return None


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Python's cycle collector paused inside the block, restored to its state before at the end (an error
    included). Landing a day file makes tens of thousands of objects that live until its last partition is
    written, and they set off collections of the oldest generation, each a walk of the whole heap (0.1 to
    0.3 s a run of `make bench --only polygon`, 2,000 tickers, the S3 client and server in the process)
    that finds no garbage: their memory is freed by reference counting, as before."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


CONCURRENCY = 4
"""Day files fetched (HEAD, and GET when not cached) at once; parsing and landing stay serial, in day order."""
UNANSWERED_LIMIT = CONCURRENCY
"""Day HEADs in a row (each with botocore's own retries) that got no answer at all, the endpoint never having
answered in this run, after which the other days are not asked (one error for the endpoint)."""


class _FetchThreads:
    """CONCURRENCY daemon threads running `_fetch_day`s, as a ThreadPoolExecutor would, except that nothing
    waits for them once the run stops (an error, Ctrl-C, SIGTERM): a HEAD or GET in flight may hang for
    minutes, and what they do (download into the raw cache under a temporary name) is nothing the lake
    depends on. The lake's writer lock is released and the process exits without joining them."""

    def __init__(self, n: int) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._work, name=f"polygon-fetch-{i}", daemon=True) for i in range(n)
        ]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, fn, args))
        return future

    def shutdown(self, *, wait: bool) -> None:
        """No more jobs; with `wait`, the queued ones run and the threads are joined."""
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for t in self._threads:
                t.join()


@dataclass(frozen=True)
class _Upstream:
    """The clients of a run's fetches (HEADs with short timeouts) and the endpoint's breaker."""

    client: Any
    head: Any
    breaker: HostBreaker


@dataclass
class _Fetched:
    """What fetching one day's object gave: no file, an error, or the cached file and its ETag."""

    day: dt.date
    key: str
    etag: str | None = None
    cached: CachedFile | None = None
    downloaded: bool = False
    error: MarketlakeError | None = None
    unanswered: bool = False
    """The endpoint gave no answer (refused, timed out), or was not asked once its breaker had tripped."""
    source: str | None = None
    """The file's name in the lake when not s3://<bucket>/<key> (a refill: the name it was downloaded as)."""


def _fetch_day(
    client: Any, settings: s3.S3Settings, cache: RawCache, interval: str, day: dt.date
) -> _Fetched:
    """HEAD the day's object and download it into the raw cache unless the cache holds that ETag already.
    Safe to run in threads: each day has its own key, temporary file and cache entry.

    `client` is an `_Upstream` (or a bare client: HEADs and GETs through it, no breaker): once its breaker
    has tripped the day is not asked (`unanswered`)."""
    up = client if isinstance(client, _Upstream) else None
    client = up.client if up is not None else client
    key = object_key(interval, day)
    if up is not None and up.breaker.tripped:
        return _Fetched(day, key, unanswered=True)
    try:
        etag = s3.head_etag(up.head if up is not None else client, settings, key)
    except s3.Missing:
        if up is not None:
            up.breaker.got_answer()
        return _Fetched(day, key)
    except MarketlakeError as exc:  # names the object and why (AccessDenied included)
        why = s3.unanswered(exc)
        if up is not None:
            if why is None:
                up.breaker.got_answer()
            else:
                up.breaker.no_answer(why)
        return _Fetched(day, key, error=exc, unanswered=why is not None)
    if up is not None:
        up.breaker.got_answer()
    cached = cache.get(key)
    if cached is not None and cached.meta.get("etag") == etag:
        return _Fetched(day, key, etag, cached)
    tmp = cache.temp_path(key)
    try:
        got = s3.download(client, settings, key, tmp)
    except s3.Missing:
        return _Fetched(day, key)
    except MarketlakeError as exc:
        return _Fetched(day, key, error=exc)
    source_file = f"s3://{settings.bucket}/{key}"
    cached = cache.put_file(
        key, tmp, etag=got["etag"], last_modified=got["last_modified"], source=source_file
    )
    return _Fetched(day, key, got["etag"], cached, downloaded=True)


def _days_feeding(interval: str, period: str) -> list[dt.date]:
    """The days whose day file can give bars to `period` (a UTC month, or a year for daily bars): its own
    days and the day before it (minute bars run to 20:00 New York, the next UTC day), by
    `_periods_of_day`."""
    if interval_delta(interval) >= dt.timedelta(days=1):
        first, last = dt.date(int(period), 1, 1), dt.date(int(period), 12, 31)
    else:
        year, month = (int(x) for x in period.split("-"))
        first = dt.date(year, month, 1)
        last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return [d for d in days(first - dt.timedelta(days=1), last) if period in _periods_of_day(interval, d)]


def _fed_by(ledger: Mapping[str, Any], interval: str, day: dt.date) -> set[tuple[str, str]]:
    """The (ticker, period) partitions the day file gave rows to, per its ledger. A ledger written before
    it recorded them ("fed") counts its day's own period for every ticker read."""
    if "fed" in ledger:
        return _ledger_fed(ledger)
    tickers = ledger.get("tickers", [])
    period = bar_period(interval, dt.datetime.combine(day, dt.time(12), dt.UTC))
    return {(str(t), period) for t in tickers} if isinstance(tickers, list) else set()


@dataclass
class _Refill:
    """The day files a (ticker, period) partition lacks after the run's days were landed: `cached`, in the
    raw cache as landed (to land again), `lost`, no longer there as landed (a later ingest brings them)."""

    ticker: str
    period: str
    cached: list[_Fetched]
    lost: list[dt.date]


def _refills(
    w: LakeWriter,
    cache: RawCache,
    tickers: list[str],
    interval: str,
    run_days: list[dt.date],
    bucket: str,
    handled: set[tuple[str, dt.date]],
    intact_seen: set[Path],
) -> list[_Refill]:
    """After the run's days: every (ticker, period) partition the run's days can feed that no longer holds a
    day file its ledger says gave it rows (the partition was damaged and started afresh from the run's
    days, now or by an earlier run). The day files (ticker, day) landed or found intact by this run
    (`handled`) are held, and nothing is read for a partition with no other. A cached file counts only if
    its bytes still match the cache's sha256 and it is the version the ledger says was landed (sha256 and
    ETag)."""
    periods = sorted({p for d in run_days for p in _periods_of_day(interval, d)})
    ledgers: dict[dt.date, dict[str, Any]] = {}
    fed: dict[dt.date, set[tuple[str, str]]] = {}
    out: list[_Refill] = []
    for period in periods:
        feeding = []
        for day in _days_feeding(interval, period):
            if day not in ledgers:
                ledgers[day] = _read_ledger(cache, object_key(interval, day))
                fed[day] = _fed_by(ledgers[day], interval, day)
            if fed[day]:
                feeding.append(day)
        for ticker in tickers:
            candidates = [d for d in feeding if (ticker, period) in fed[d] and (ticker, d) not in handled]
            if not candidates:
                continue
            part = {"source": SOURCE, "interval": interval, "symbol": ticker, "period": period}
            d = partition_dir(w.paths, BARS, part)
            if d in intact_seen or partition_intact(d):
                intact_seen.add(d)
                held = {(i.get("file"), i.get("etag")) for i in manifest_inputs(d)}
            else:
                held = set()  # damaged still (the run's day for it failed): nothing in it is trusted
            refill = _Refill(ticker, period, [], [])
            for day in candidates:
                key, ledger = object_key(interval, day), ledgers[day]
                name = _cached_source(cache, key) or f"s3://{bucket}/{key}"
                if (name, ledger.get("etag")) in held:
                    continue
                cached = cache.get(key)  # None when its bytes no longer match the recorded sha256
                if (
                    cached is None
                    or cached.sha256 != ledger.get("sha256")
                    or cached.meta.get("etag") != ledger.get("etag")
                ):
                    refill.lost.append(day)
                else:
                    refill.cached.append(_Fetched(day, key, str(ledger["etag"]), cached, source=name))
            if refill.cached or refill.lost:
                out.append(refill)
    return out


def _cached_source(cache: RawCache, key: str) -> str | None:
    """The name a cached day file was downloaded as (its sidecar's `source`), without reading the file."""
    try:
        meta = json.loads(cache.meta_path(key).read_text())
    except (OSError, ValueError):
        return None
    source = meta.get("source") if isinstance(meta, dict) else None
    return source if isinstance(source, str) else None


def _span(days_: Sequence[dt.date]) -> str:
    return f"{days_[0]}" if len(days_) == 1 else f"{days_[0]} .. {days_[-1]}"


def _land_refills(
    ctx: RunContext,
    w: LakeWriter,
    settings: s3.S3Settings,
    cache: RawCache,
    summary: IngestSummary,
    interval: str,
    refills: list[_Refill],
    landed_any: set[str],
    today: dt.date,
    intact_seen: set[Path],
) -> None:
    """Land again, from the raw cache and in day order, the day files the partitions lack (`_refills`);
    one note per partition, naming the days landed again and the days lost from the cache."""
    by_day: dict[dt.date, tuple[_Fetched, set[str]]] = {}
    for r in refills:
        for f in r.cached:
            by_day.setdefault(f.day, (f, set()))[1].add(r.ticker)
    for day in sorted(by_day):
        fetched, todo = by_day[day]
        _ingest_day(
            ctx,
            w,
            settings,
            cache,
            summary,
            sorted(todo),
            interval,
            fetched,
            landed_any,
            today,
            intact_seen=intact_seen,
            refill=True,
        )
    for r in refills:
        where = f"{r.ticker} {interval} {r.period}"
        if r.cached:
            got = [f.day for f in r.cached]
            summary.notes.append(
                f"rebuilt {where} from the raw cache: {len(got)} more day file(s) it had held landed again "
                f"({_span(got)})"
            )
        if r.lost:
            summary.notes.append(
                f"{where} lacks {len(r.lost)} day file(s) it had held ({_span(r.lost)}): not in the raw cache "
                "as landed; they come back when an ingest covers them"
            )


def _land_days(
    ctx: RunContext,
    w: LakeWriter,
    settings: Any,
    cache: RawCache,
    summary: IngestSummary,
    tickers: list[str],
    interval: str,
    futures: list[Any],
    landed_any: set[str],
    today: dt.date,
    intact_seen: set[Path],
    handled: set[tuple[str, dt.date]],
    step: Any,
    check_keys: Callable[[], _KeysCheck],
    breaker: HostBreaker | None = None,
) -> None:
    """Land the fetched days in day order; refused keys stop the run (every other day would fail too).

    A plain 403 on a day that has no file anyway (not a trading day, not published yet) counts as missing:
    S3 answers 403 for a missing object to keys that may not list the bucket. A 403 on a day whose file
    should exist is the keys' fault only when `check_keys()` says so (asked once, at the first such 403
    before any day answered otherwise); else it fails that day alone (outside the plan's history, say),
    and the denied days are named in one error that says what the keys did read, if anything."""
    known = _KeysCheck()  # what the keys are known to do, from the days answered so far and the check
    asked = False
    denied: list[_Fetched] = []
    unanswered: list[_Fetched] = []
    for future in futures:
        errors_before = len(summary.errors)
        fetched = future.result()
        if fetched.unanswered and breaker is not None:  # said at the end: once if the endpoint never answered
            unanswered.append(fetched)
            for t in tickers:
                summary.of(t).files_failed += 1
            step(False)
            continue
        no_file = isinstance(fetched.error, s3.Forbidden) and not _file_expected(fetched.day, today)
        if no_file:  # nothing to deny: missing, as a 404 says (but it tells nothing of the keys)
            fetched = _Fetched(fetched.day, fetched.key)
        refused: _KeysCheck | None = None
        if isinstance(fetched.error, s3.AccessDenied):
            refused = _KeysCheck(refused=True)
        elif isinstance(fetched.error, s3.Forbidden) and not asked and not known.answered:
            asked = True
            known = check_keys()
            if known.refused:
                refused = known
        if refused is not None:  # every other day would fail the same way
            for f in futures:
                f.cancel()
            if isinstance(fetched.error, s3.AccessDenied):
                why = str(fetched.error)
            else:
                also = f", and to {refused.day}'s too" if refused.day not in (None, fetched.day) else ""
                why = (
                    f"{fetched.error}{also}: {s3.keys_hint()} (or are these days outside your plan's "
                    "history?)"
                )
            _fail(summary, f"{why}; stopped at {fetched.day}, later days were not landed")
            break
        if isinstance(fetched.error, s3.Forbidden):
            denied.append(fetched)
            for t in tickers:
                summary.of(t).files_failed += 1
            step(False)
            continue
        if fetched.error is None and not no_file:
            known = known.merge(fetched)
        _ingest_day(
            ctx,
            w,
            settings,
            cache,
            summary,
            tickers,
            interval,
            fetched,
            landed_any,
            today,
            intact_seen=intact_seen,
            handled=handled,
        )
        step(len(summary.errors) == errors_before)
    if denied:
        _fail(summary, _denied_days(settings, denied, known))
    if unanswered and breaker is not None:
        _no_answer(summary, settings, breaker, unanswered)


def _no_answer(
    summary: IngestSummary, settings: s3.S3Settings, breaker: HostBreaker, days_: Sequence[_Fetched]
) -> None:
    """The days the endpoint did not answer for: one error when it never answered in this run (those not
    asked at all included), else each day's own error (a transient fault of an endpoint that answers)."""
    if not breaker.answered:
        which = _span([f.day for f in days_]) if len(days_) > 1 else str(days_[0].day)
        _fail(
            summary,
            f"polygon: cannot reach {settings.endpoint} ({breaker.reason} {breaker.streak} time(s) in a row, "
            f"no answer at all): {len(days_)} day file(s) not fetched ({which}); is {s3.ENV_ENDPOINT} right, "
            "is the host up?",
        )
        return
    for f in days_:
        _fail(
            summary,
            str(f.error)
            if f.error is not None
            else f"polygon: s3://{settings.bucket}/{f.key} was not asked: {settings.endpoint} had not answered",
        )


@dataclass(frozen=True)
class _KeysCheck:
    """What is known of the keys: `read` a day whose file they read (HEAD answered), `accepted` a request
    got past them (a 404: no such file), `refused` the check's object was refused too, `unsure` why the
    check could not tell (another error). `day` is the check's day."""

    read: dt.date | None = None
    accepted: bool = False
    refused: bool = False
    unsure: str | None = None
    day: dt.date | None = None

    @property
    def answered(self) -> bool:
        return self.read is not None or self.accepted

    def merge(self, fetched: _Fetched) -> _KeysCheck:
        """With a day that answered (its file, or a 404)."""
        if fetched.etag is not None:
            return _KeysCheck(read=self.read or fetched.day, accepted=self.accepted, day=self.day)
        return _KeysCheck(read=self.read, accepted=True, day=self.day)


def _file_expected(day: dt.date, today: dt.date) -> bool:
    """Whether Polygon should have a file for `day`: published (before yesterday) and not surely closed
    (a day outside the calendar may be a trading day)."""
    if day >= today - dt.timedelta(days=1):
        return False
    try:
        return session(day) is not None
    except StampError:
        return True


def _denied_days(settings: s3.S3Settings, denied: Sequence[_Fetched], known: _KeysCheck) -> str:
    """One error for the days whose file was refused (403), saying what the keys are known to do."""
    which = ", ".join(str(f.day) for f in denied) if len(denied) <= 6 else f"{_span([f.day for f in denied])}"
    first = f"s3://{settings.bucket}/{denied[0].key}"
    head = (
        f"access denied (403) to {len(denied)} day file(s), {which} ({first}"
        f"{', …' if len(denied) > 1 else ''}) at {settings.endpoint}"
    )
    if known.read is not None:
        why = (
            f", although the keys read {known.read}'s file: outside your plan's history (or no such file: S3 "
            "answers 403 for a missing object to keys that may not list the bucket)?"
        )
    elif known.accepted:
        why = ", although the keys were accepted (a missing file answered 404): outside your plan's history?"
    else:
        why = (
            f"; no day file was read, and whether the keys are refused could not be told ({known.unsure}): "
            f"{s3.keys_hint()}, or are these days outside your plan's history?"
        )
    return f"{head}{why} Those days were not landed"


def _keys_refused(client: Any, settings: s3.S3Settings, interval: str, day: dt.date) -> _KeysCheck:
    """Whether the keys are refused outright: HEAD `day` (the run's latest day whose file should exist, the
    likeliest inside any plan's history). A 403 there too blames the keys; its file or a 404 means the
    request got past them; any other error cannot tell (`unsure`, why)."""
    try:
        s3.head_etag(client, settings, object_key(interval, day))
    except (s3.AccessDenied, s3.Forbidden):
        return _KeysCheck(refused=True, day=day)
    except s3.Missing:
        return _KeysCheck(accepted=True, day=day)
    except MarketlakeError as exc:
        return _KeysCheck(unsure=str(exc), day=day)
    return _KeysCheck(read=day, day=day)


def run(
    ctx: RunContext,
    tickers: list[str],
    interval: str,
    start: dt.date,
    end: dt.date,
    *,
    today: dt.date | None = None,
) -> IngestSummary:
    """Ingest Polygon flat files for `tickers`, one file per New York trading day from start to end.

    Day files are fetched CONCURRENCY at a time and landed one by one in day order. One day's failure (a
    HEAD or GET error) is recorded and the other days go on; refused keys stop the run (the summary so far
    is returned with the error). `today` (UTC) fixes the clock."""
    today = today or dt.datetime.now(dt.UTC).date()
    object_key(interval, start)  # an unknown interval fails before anything else
    settings = s3.settings_from_env()  # missing keys fail here, before any request
    client = s3.make_client(settings)
    heads = s3.head_client(client, settings)
    breaker = HostBreaker(settings.endpoint, UNANSWERED_LIMIT)
    upstream = _Upstream(client, heads, breaker)
    summary = IngestSummary(SOURCE)
    for t in tickers:
        summary.of(t)
    cache = RawCache(ctx.paths, SOURCE)
    landed_any: set[str] = set()
    intact_seen: set[Path] = set()
    handled: set[tuple[str, dt.date]] = set()
    all_days = list(days(start, end))
    expected = [d for d in all_days if _file_expected(d, today)]
    check_day = expected[-1] if expected else all_days[-1]  # asked only at a 403 on an expected day
    with (
        land(ctx.root) as w,
        progress_bar(ctx, f"polygon {interval}", len(all_days), "day files") as step,
    ):
        pool = _FetchThreads(CONCURRENCY)
        futures = [pool.submit(_fetch_day, upstream, settings, cache, interval, d) for d in all_days]
        try:
            _land_days(
                ctx,
                w,
                settings,
                cache,
                summary,
                tickers,
                interval,
                futures,
                landed_any,
                today,
                intact_seen,
                handled,
                step,
                lambda: _keys_refused(heads, settings, interval, check_day),
                breaker,
            )
            # a partition the run's days rebuilt after damage (or an earlier run left so) gets back the
            # other days of its period that the raw cache holds as landed: nothing is dropped unsaid
            refills = _refills(w, cache, tickers, interval, all_days, settings.bucket, handled, intact_seen)
            _land_refills(ctx, w, settings, cache, summary, interval, refills, landed_any, today, intact_seen)
        except BaseException:
            # an error, Ctrl-C or SIGTERM: no queued day is fetched, and the days in flight are not waited
            # for (a silent endpoint would hold the lake's lock for minutes): their threads are daemons
            for f in futures:
                f.cancel()
            pool.shutdown(wait=False)
            raise
        pool.shutdown(wait=True)
    files_read = sum(s.files_done for s in summary.symbols.values())
    files_skipped = sum(s.files_skipped for s in summary.symbols.values())
    if summary.ok and not files_read and not files_skipped:
        trading_days = [d for d in days(start, min(end, today - dt.timedelta(days=2))) if _trading_day(d)]
        if trading_days:
            # every past trading day "missing": a wrong bucket or refused keys look like that; say which
            _fail(summary, s3.no_file_at_all(client, settings, len(trading_days)))
            return summary
    for t in tickers:
        st = summary.of(t)
        if (
            files_read
            and t not in landed_any
            and st.files_done
            and not (st.files_skipped or st.rows_rejected)
        ):
            hint = (
                f" (tickers are upper case: {t.upper()}?)" if t != t.upper() else " (ticker spelled right?)"
            )
            _fail(summary, f"{t}: no rows in {summary.of(t).files_done} file(s) read{hint}")
    return summary


def _trading_day(day: dt.date) -> bool:
    try:
        return session(day) is not None
    except StampError:
        return False  # outside the calendar: cannot tell


def _ingest_day(
    ctx: RunContext,
    w: LakeWriter,
    settings: s3.S3Settings,
    cache: RawCache,
    summary: IngestSummary,
    tickers: list[str],
    interval: str,
    fetched: _Fetched,
    landed_any: set[str],
    today: dt.date,
    *,
    intact_seen: set[Path] | None = None,
    handled: set[tuple[str, dt.date]] | None = None,
    refill: bool = False,
) -> None:
    """Land one fetched day file for `tickers`: the ones not landed from it yet, or whose partitions lost
    its rows. `refill`: the day is outside the run's days, landed again from the raw cache for `tickers`
    (their partitions lack it: `_refills`). `handled` gets the (ticker, day) landed or found intact."""
    day, key = fetched.day, fetched.key
    source_file = fetched.source or f"s3://{settings.bucket}/{key}"
    if fetched.error is not None:  # this day failed (names the object and why); the others go on
        _fail(summary, str(fetched.error))
        for t in tickers:
            summary.of(t).files_failed += 1
        return
    if fetched.etag is None or fetched.cached is None:
        for t in tickers:
            summary.of(t).files_missing += 1
        ctx.say(f"polygon {interval} {day}: no file (not a trading day, or not published yet)")
        if day < today - dt.timedelta(days=1) and _trading_day(day):
            summary.notes.append(
                f"{source_file}: {day} was an NYSE trading day but Polygon has no file for it"
            )
        return
    etag, cached = fetched.etag, fetched.cached
    ledger = _read_ledger(cache, key)
    # Republished is decided from the ledger (what was landed), not the cache (what was downloaded): a run
    # killed between caching a new version and landing it left the ledger on the old ETag, and the tickers
    # landed from that old version must be re-ingested from the new one (their rows for the day replaced).
    previous = set(ledger.get("tickers", [])) if ledger.get("etag") not in (None, etag) else set()
    if refill:
        ctx.say(
            f"polygon {interval} {day}: re-landing {', '.join(tickers)} from the raw cache (their "
            "partitions lack this day's bars)"
        )
        todo = list(tickers)
    elif fetched.downloaded:
        if previous:
            ctx.say(f"polygon {interval} {day}: republished (ETag changed), re-ingesting {sorted(previous)}")
        todo = [*tickers, *sorted(previous - set(tickers))]
    else:
        done = set(ledger.get("tickers", [])) if ledger.get("etag") == etag else set()
        # the ledger says what was read from the file; the lake's files must still hold it
        broken = {
            t: why
            for t in tickers
            if t in done
            and (why := _broken_or_short(w, ledger, t, interval, day, source_file, etag, intact_seen))
            is not None
        }
        for t, why in sorted(broken.items()):
            ctx.say(f"polygon {interval} {day}: {why}: rebuilding {t} from the raw cache")
            summary.notes.append(f"rebuilt {t} {interval} {day} from the raw cache ({why})")
        done -= set(broken)
        todo = [t for t in tickers if t not in done] + sorted(previous - set(tickers))
        for t in tickers:
            if t in done:
                summary.of(t).files_skipped += 1
                if handled is not None:
                    handled.add((t, day))
        if not todo:
            ctx.say(f"polygon {interval} {day}: unchanged (ETag {etag}), skipped")
            return
    the_input = {"file": source_file, "etag": etag, "sha256": cached.sha256}
    added: dict[str, int] = {}
    with cycle_collection_paused():  # thousands of partitions' objects, none of them cyclic garbage
        try:
            parsed = parse_day_file(
                cached.path, source_file=source_file, day=day, interval=interval, tickers=todo
            )
        except PolygonFileError as exc:
            _fail(summary, str(exc))
            for t in todo:
                summary.of(t).files_failed += 1
            return
        fed = land_file(
            w,
            parsed,
            tickers=todo,
            interval=interval,
            day=day,
            source_file=source_file,
            the_input=the_input,
            etfs=ctx.settings.etfs,
            added=added,
        )
    if intact_seen is not None:  # just written whole by this run
        for t in todo:
            for period in _periods_of_day(interval, day):
                part = {"source": SOURCE, "interval": interval, "symbol": t, "period": period}
                intact_seen.add(partition_dir(w.paths, BARS, part))
    for t in todo:
        if handled is not None:
            handled.add((t, day))
        s = summary.of(t)
        s.files_done += 1
        s.rows_landed += added.get(t, 0)  # new to the lake (a re-landed day adds none)
        s.rows_rejected += len(parsed.rejected.get(t, []))
        if parsed.bars.get(t):
            landed_any.add(t)
    same = ledger.get("etag") == etag
    done_before = set(ledger.get("tickers", [])) if same else set()
    fed_before = {(t, p) for t, p in _ledger_fed(ledger) if t not in todo} if same else set()
    _write_ledger(cache, key, etag, cached.sha256, done_before | set(todo), fed_before | fed)
    n = sum(len(parsed.bars.get(t, [])) for t in todo)
    r = sum(len(parsed.rejected.get(t, [])) for t in todo)
    ctx.say(f"polygon {interval} {day}: {n} bars, {r} rejected for {', '.join(todo)}")

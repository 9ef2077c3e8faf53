"""Binance Data Vision spot klines: verified, resumable, async.

    marketlake ingest binance --symbols BTCUSDT,ETHUSDT --interval 1m --start 2024-01-01 --end 2024-03-31

1. Plan: per symbol, a monthly zip for every whole finished month inside the range, daily zips for the
   other days (a monthly file that is missing upstream falls back to its daily files).
2. Fetch (aiohttp, bounded concurrency, ingest.http retries): each file's `.CHECKSUM` first; a zip already
   in the raw cache with that sha256 is not downloaded again; otherwise it is streamed to a temporary name,
   its sha256 compared with the CHECKSUM, and only then moved under its final name in raw/binance/.
3. Land: per (symbol, period) partition, the zips that are new, changed upstream, or not yet recorded in
   the partition's manifest are read (zip checks, then row checks); their rows replace whatever the
   partition held for the days those files cover, in one atomic write. Bad rows go to bars_rejected with
   the reason, the file, the line number and the raw line.

Every failure is per file: it is reported (IngestSummary.fail, naming the file and the reason) and the
other files still land.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import threading
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp
import pyarrow as pa
import pyarrow.compute as pc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ingest.common import (
    CachedFile,
    IngestSummary,
    RawCache,
    RunContext,
    bar_period,
    count_problem,
    days,
    interval_delta,
    ohlcv_problem,
    without_userinfo,
)
from ingest.http import (
    RETRY_STATUSES,
    DownloadFailed,
    HostBreaker,
    HostDown,
    HttpError,
    NotFound,
    RetryPolicy,
    client_session,
    download_file,
    fetch_bytes,
    name_not_resolved,
    parse_retry_after,
    with_retries,
)
from ingest.sessions import land
from lake.errors import MarketlakeError
from lake.paths import validate_symbol
from lake.schemas import BARS, BARS_REJECTED, UTC_TS, Dataset
from lake.writer import LakeWriter, manifest_inputs, partition_dir, partition_intact, read_partition

T = TypeVar("T")
SOURCE = "binance"
ASSET_CLASS = "crypto"
DEFAULT_BASE_URL = "https://data.binance.vision"
COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "ignore",
)

# --- tunables: module level so that tests and callers can change them without a RunContext ---------------
RETRY = RetryPolicy()
"""Retries, backoff, Retry-After limit and timeouts of every request."""
CONCURRENCY = 8
"""Files fetched at once (and connections open at once)."""
UNANSWERED_LIMIT = 2 * CONCURRENCY
"""Attempts in a row refused or timed out, the host never having answered in this run, after which the
other files are not tried (one error for the host): about two rounds of the files fetched at once."""
VERIFY_ATTEMPTS = 2
"""Downloads of one zip whose bytes do not match its CHECKSUM before giving up (a server that closes the
connection mid-body without Content-Length delivers a short file that only the checksum reveals)."""
MIN_UNCOMPRESSED_LIMIT = 16 << 20
LIMIT_BYTES_PER_ROW = 1024
"""A zip is refused (zip bomb) when its CSV would exceed max(MIN_UNCOMPRESSED_LIMIT, rows the file can
hold x LIMIT_BYTES_PER_ROW); a real row is about 150 bytes."""


ENV_BASE_URL = "BINANCE_BASE_URL"
MONTHLY_PUBLISH_DAYS = 7
"""Days into the next month within which a month's monthly zip missing upstream is taken as not published
yet (one line for every pair, its daily files used) rather than named per pair."""


def base_url() -> str:
    """The base URL the requests go to, as set (a mirror's `user:password@` included): stored and shown
    only through `without_userinfo`."""
    url = (os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise MarketlakeError(f"BINANCE_BASE_URL {without_userinfo(url)!r} is not an http(s) URL")
    return url


# --- which files ---------------------------------------------------------------------------------------


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _month_end(day: dt.date) -> dt.date:
    nxt = dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


@dataclass(frozen=True)
class FileSpec:
    """One Data Vision zip: a symbol's klines for one month or one day."""

    symbol: str
    interval: str
    kind: Literal["monthly", "daily"]
    first_day: dt.date
    last_day: dt.date
    wanted: tuple[dt.date, dt.date] | None = None
    """A monthly file planned for a month partly in the range (`plan`): the days its daily fallback
    fetches, should the monthly file be gone upstream (else every day of the month)."""

    @property
    def stem(self) -> str:
        d = self.first_day
        date = f"{d:%Y-%m}" if self.kind == "monthly" else f"{d:%Y-%m-%d}"
        return f"{self.symbol}-{self.interval}-{date}"

    @property
    def zip_name(self) -> str:
        return f"{self.stem}.zip"

    @property
    def csv_name(self) -> str:
        return f"{self.stem}.csv"

    @property
    def relpath(self) -> str:
        """The path under the base URL, also the file's path in the raw cache and its name in the lake."""
        return f"data/spot/{self.kind}/klines/{self.symbol}/{self.interval}/{self.zip_name}"

    @property
    def start(self) -> dt.datetime:
        return _utc(self.first_day)

    @property
    def end(self) -> dt.datetime:
        """Exclusive."""
        return _utc(self.last_day + dt.timedelta(days=1))

    @property
    def period(self) -> str:
        return bar_period(self.interval, self.start)

    @property
    def max_rows(self) -> int:
        return int((self.end - self.start) / interval_delta(self.interval))

    @property
    def size_limit(self) -> int:
        return max(MIN_UNCOMPRESSED_LIMIT, self.max_rows * LIMIT_BYTES_PER_ROW)

    def daily(self) -> list[FileSpec]:
        first, last = self.wanted or (self.first_day, self.last_day)
        return [FileSpec(self.symbol, self.interval, "daily", d, d) for d in days(first, last)]


def plan(
    symbol: str,
    interval: str,
    start: dt.date,
    end: dt.date,
    today: dt.date,
    landed: Callable[[FileSpec], bool] | None = None,
) -> list[FileSpec]:
    """Monthly files for whole months inside [start, end] that are finished before `today` (UTC), daily
    files for every other day of the range.

    A finished month the lake holds already in one form is not fetched again in the other (`landed(spec)`:
    the file is in the raw cache and its partition's manifest records it with that sha256): a whole month
    every daily file of which is landed keeps its daily files, and a month partly in the range whose
    monthly file is landed keeps its monthly file (a sliding window crossing a month would otherwise
    download the month twice more: once as a monthly zip, then day by day)."""
    out: list[FileSpec] = []
    month = dt.date(start.year, start.month, 1)
    while month <= end:
        last = _month_end(month)
        monthly = FileSpec(symbol, interval, "monthly", month, last)
        whole = month >= start and last <= end and last < today
        if whole and not (landed is not None and all(landed(d) for d in monthly.daily())):
            out.append(monthly)
        elif not whole and last < today and landed is not None and landed(monthly):
            out.append(dataclasses.replace(monthly, wanted=(max(month, start), min(last, end))))
        else:
            first_day, last_day = max(month, start), min(last, end)
            out.extend(FileSpec(symbol, interval, "daily", d, d) for d in days(first_day, last_day))
        month = last + dt.timedelta(days=1)
    return out


# --- reading one zip ------------------------------------------------------------------------------------


class BadFile(Exception):
    """A file that cannot land at all; the message is the reason."""


def _unsafe_entry(name: str) -> bool:
    p = name.replace("\\", "/")
    parts = PurePosixPath(p).parts
    return p.startswith("/") or ".." in parts or bool(re.match(r"^[A-Za-z]:", p))


def read_zip_csv(path: Path, spec: FileSpec) -> bytes:
    """The bytes of the one CSV inside `path`, after the zip checks (raises BadFile naming the reason)."""
    limit = spec.size_limit
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            unsafe = [i.filename for i in infos if _unsafe_entry(i.filename)]
            if unsafe:
                raise BadFile(f"entry {unsafe[0]!r} points outside the archive (zip slip); refused")
            entries = [i for i in infos if not i.is_dir()]
            csvs = [i for i in entries if i.filename.lower().endswith(".csv")]
            if not csvs:
                raise BadFile(f"holds no CSV (entries: {[i.filename for i in entries]})")
            if len(csvs) > 1:
                raise BadFile(f"holds {len(csvs)} CSVs ({', '.join(i.filename for i in csvs)}), expected one")
            if len(entries) > 1:
                raise BadFile(f"holds other entries beside the CSV: {[i.filename for i in entries]}")
            info = csvs[0]
            if info.filename != spec.csv_name:
                raise BadFile(f"holds {info.filename!r}, expected {spec.csv_name!r}")
            if info.file_size > limit:
                raise BadFile(
                    f"{info.filename} would unpack to {info.file_size} bytes, over the limit of {limit} "
                    "for this file (zip bomb?); refused"
                )
            with zf.open(info) as f:
                data = f.read(limit + 1)
            if len(data) > limit:
                raise BadFile(f"{info.filename} unpacks to more than {limit} bytes (zip bomb?); refused")
            return data
    except BadFile:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise BadFile(f"not a readable zip (truncated or corrupt): {exc}") from exc


# --- parsing rows ---------------------------------------------------------------------------------------


@dataclass
class Parsed:
    """One CSV's rows: the valid bars (BARS schema) and the rejected ones (BARS_REJECTED schema)."""

    bars: pa.Table
    rejected: pa.Table
    header: bool
    lines: int


def _decimal(text: str) -> float | None:
    """A plain decimal string (`63201.05000000`, `-1.5`, `7`) as a float; None for anything else (`nan`,
    `1e5`, `abc`, empty)."""
    body = text[1:] if text.startswith("-") else text
    if not body or not body.isascii() or not body.replace(".", "", 1).isdigit():
        return None
    if body.startswith(".") or body.endswith("."):
        return None
    return float(text)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_header(fields: list[str]) -> bool:
    """A header row names the columns (futures files have one, spot files not): the first field is a name
    like `open_time`, not a number."""
    first = fields[0].lstrip("\ufeff").strip().lower().replace(" ", "_")
    return first in ("open_time", "opentime", "open_time_ms", "kline_open_time") or (
        bool(re.fullmatch(r"[a-z_]+", first)) and "open" in first and "time" in first
    )


def parse_klines(
    data: bytes,
    *,
    symbol: str,
    interval: str,
    source_file: str,
    start: dt.datetime,
    end: dt.datetime,
) -> Parsed:
    """Parse a Data Vision klines CSV. Rows stamped outside [start, end) are rejected (a file holds its
    own month or day only).

    A file whose every row is valid (the usual case) is checked and converted column by column
    (`_parse_clean`); a file with any row that fails a check is read row by row, so that each rejected row
    gets its own reason, line number and raw text."""
    fast = _parse_clean(data, symbol=symbol, interval=interval, source_file=source_file, start=start, end=end)
    if fast is not None:
        return fast
    return _parse_rows(data, symbol=symbol, interval=interval, source_file=source_file, start=start, end=end)


def _parse_rows(
    data: bytes,
    *,
    symbol: str,
    interval: str,
    source_file: str,
    start: dt.datetime,
    end: dt.datetime,
) -> Parsed:
    """The row-by-row path of `parse_klines`: every row checked on its own, each rejected row with its
    reason. A bar the file holds more than once (same open_time): identical copies (the same open, high,
    low, close, volume and count) land once, the others rejected as duplicates of the first; copies that
    disagree on any of them are all rejected, none chosen over the others."""
    step = interval_delta(interval)
    step_us = int(step / dt.timedelta(microseconds=1))
    start_us = int((start - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
    end_us = int((end - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))

    ts_l: list[int] = []
    o_l: list[float] = []
    h_l: list[float] = []
    l_l: list[float] = []
    c_l: list[float] = []
    v_l: list[float] = []
    n_l: list[int] = []
    rej: dict[str, list[Any]] = {k: [] for k in BARS_REJECTED.schema.names}
    seen: dict[int, int] = {}  # ts -> index of its landed copy in the lists
    # ts -> every valid copy: (line, raw, open_time text, [open, high, low, close, volume], count)
    copies: dict[int, list[tuple[int, str, str, list[float | None], int]]] = {}
    header = False

    def reject(
        line_number: int, raw: str, reason: str, ts: int | None = None, vals: Iterable[float | None] = ()
    ) -> None:
        given = list(vals)
        v = given + [None] * (5 - len(given))
        rej["symbol"].append(symbol)
        rej["interval"].append(interval)
        rej["source_file"].append(source_file)
        rej["line_number"].append(line_number)
        rej["raw"].append(raw)
        rej["ts"].append(ts)
        for name, value in zip(("open", "high", "low", "close", "volume"), v, strict=True):
            rej[name].append(value)
        rej["reason"].append(reason)

    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline
    for number, raw_bytes in enumerate(lines, start=1):
        raw = raw_bytes.decode("utf-8", errors="replace")
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            reject(number, raw, "empty line")
            continue
        fields = line.split(",")
        if number == 1 and _is_header(fields):
            header = True
            continue
        if len(fields) != len(COLUMNS):
            reject(number, raw, f"{len(fields)} columns, expected {len(COLUMNS)}")
            continue
        ot, ct = fields[0], fields[6]
        if not _digits(ot):
            reject(number, raw, f"open_time {ot!r} is not an integer")
            continue
        if len(ot) == 13:
            unit_us = 1000
        elif len(ot) == 16:
            unit_us = 1
        else:
            reject(
                number,
                raw,
                f"open_time {ot} has {len(ot)} digits: neither milliseconds (13) nor microseconds (16)",
            )
            continue
        ts = int(ot) * unit_us
        vals = [_decimal(fields[i]) for i in range(1, 6)]
        if not _digits(ct) or int(ct) != (ts + step_us) // unit_us - 1:
            reject(number, raw, f"close_time {ct!r} is not open_time + {interval} - 1 unit", ts, vals)
            continue
        if ts % step_us:
            reject(number, raw, f"open_time {ot} is not on a {interval} boundary", ts, vals)
            continue
        if not start_us <= ts < end_us:
            when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts)
            reject(
                number,
                raw,
                f"open_time {when.isoformat()} is outside the file's span "
                f"{start.isoformat()} .. {end.isoformat()}",
                ts,
                vals,
            )
            continue
        bad = [name for name, v in zip(COLUMNS[1:6], vals, strict=True) if v is None]
        if bad:
            reject(
                number,
                raw,
                "non-numeric " + ", ".join(f"{n} {fields[COLUMNS.index(n)]!r}" for n in bad),
                ts,
                vals,
            )
            continue
        o, h, lo, c, v = (x for x in vals if x is not None)
        count = fields[8]
        reason = ohlcv_problem((o, h, lo, c, v), fields[1:6])
        if reason is None and not _digits(count):
            reason = f"count {count!r} is not a non-negative integer"
        elif reason is None and (too_big := count_problem("count", count)) is not None:
            reason = too_big
        if reason is None and ts in seen:
            copies[ts].append((number, raw, ot, vals, int(count)))  # decided once every copy is read
            continue
        if reason is not None:
            reject(number, raw, reason, ts, vals)
            continue
        seen[ts] = len(ts_l)
        copies[ts] = [(number, raw, ot, vals, int(count))]
        ts_l.append(ts)
        o_l.append(o)
        h_l.append(h)
        l_l.append(lo)
        c_l.append(c)
        v_l.append(v)
        n_l.append(int(count))

    repeated = [(ts, group) for ts, group in copies.items() if len(group) > 1]
    dropped: set[int] = set()  # list indexes of landed copies whose bar the file repeats with other values
    for ts, group in repeated:
        first_line, _, first_ot, *first_values = group[0]
        if all(rest == first_values for _, _, _, *rest in group[1:]):
            for number, raw, ot, vals, _ in group[1:]:
                reject(number, raw, f"duplicate open_time {ot} (first at line {first_line})", ts, vals)
            continue
        why = (
            f"duplicate open_time {first_ot} on lines {', '.join(str(g[0]) for g in group)} with "
            "different values; none of them landed"
        )
        for number, raw, _, vals, _ in group:
            reject(number, raw, why, ts, vals)
        dropped.add(seen[ts])
    if dropped:
        keep = [i for i in range(len(ts_l)) if i not in dropped]
        ts_l, n_l = [ts_l[i] for i in keep], [n_l[i] for i in keep]
        o_l, h_l, l_l, c_l, v_l = ([col[i] for i in keep] for col in (o_l, h_l, l_l, c_l, v_l))
    if repeated:  # the rows rejected as copies were added last: back in line order, as read
        order = sorted(range(len(rej["line_number"])), key=rej["line_number"].__getitem__)
        for col in rej.values():
            col[:] = [col[i] for i in order]

    ts_arr = pa.array(ts_l, type=pa.int64()).cast(UTC_TS)
    avail = pa.array([t + step_us for t in ts_l], type=pa.int64()).cast(UTC_TS)
    n = len(ts_l)
    bars = pa.Table.from_arrays(
        [
            pa.array([ASSET_CLASS] * n, pa.string()),
            ts_arr,
            avail,
            pa.array(o_l, pa.float64()),
            pa.array(h_l, pa.float64()),
            pa.array(l_l, pa.float64()),
            pa.array(c_l, pa.float64()),
            pa.array(v_l, pa.float64()),
            pa.array(n_l, pa.int64()),
            pa.array([source_file] * n, pa.string()),
        ],
        schema=BARS.schema,
    )
    rej_columns: dict[str, Any] = {**rej, "ts": pa.array(rej["ts"], type=pa.int64()).cast(UTC_TS)}
    rejected = pa.Table.from_pydict(rej_columns, schema=BARS_REJECTED.schema)
    return Parsed(bars, rejected, header, len(lines))


# Any character but digits, '.', ',' and LF sends a file to the row-by-row path (signs, exponents, `nan`,
# quotes, CR, a header's letters); so do a number that starts or ends with '.' and an open_time with a
# leading zero (its digit count, which says ms or µs, would differ from its value's).
_ODD = (b",.", b"\n.", b".,", b".\n", b"\n0", b"\n\n")
_CLEAN_BYTES = b"0123456789.,\n"
_COMMA, _LF, _DOT, _ZERO = b",\n.0"


def _odd(body: bytes) -> bool:
    """Whether `body` (digits, '.', ',' and LF only) holds any of `_ODD`: a separator next to a '.', a
    line that starts with '0' or is empty. One pass over the bytes (numpy), then a look at the bytes
    beside each separator."""
    import numpy as np

    arr = np.frombuffer(body, dtype=np.uint8)
    seps = np.flatnonzero((arr == _COMMA) | (arr == _LF))
    if seps.size == 0:
        return False
    before = seps[seps > 0] - 1
    if (arr[before] == _DOT).any():
        return True
    after = seps[seps < arr.size - 1] + 1
    nxt = arr[after]
    if (nxt == _DOT).any():
        return True
    after_lf = arr[after - 1] == _LF
    return bool(((nxt == _ZERO) & after_lf).any() or ((nxt == _LF) & after_lf).any())


def _parse_clean(
    data: bytes,
    *,
    symbol: str,
    interval: str,
    source_file: str,
    start: dt.datetime,
    end: dt.datetime,
) -> Parsed | None:
    """The columnar path of `parse_klines`: every check of the row-by-row path, done on whole columns
    (Arrow's CSV reader and numpy). Returns None as soon as any row would be rejected, or the text is not
    plain digits-and-dots 12-column CSV with LF endings; the caller then reads the file row by row, which
    names each bad row's reason. It never accepts a row that the row-by-row path would reject."""
    import numpy as np
    import pyarrow.csv as pacsv

    header = False
    body = data
    first_end = data.find(b"\n")
    if first_end > 0 and _is_header(data[:first_end].decode("utf-8", errors="replace").split(",")):
        header = True
        body = data[first_end + 1 :]
    if not body.endswith(b"\n") or body.startswith((b"\n", b".", b"0")):
        return None
    if body.translate(None, _CLEAN_BYTES) or _odd(body):
        return None
    lines = data.count(b"\n")
    int_cols = ("open_time", "close_time", "count")
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(column_names=list(COLUMNS), use_threads=False),
            parse_options=pacsv.ParseOptions(quote_char=False, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.int64() if c in int_cols else pa.float64() for c in COLUMNS[:9]}
                | {c: pa.string() for c in COLUMNS[9:]},
                null_values=[],
                strings_can_be_null=False,
                include_columns=list(COLUMNS[:9]),
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    n = table.num_rows
    if n == 0:
        return None
    ot = table.column("open_time").to_numpy()
    if ot.min() >= 10**12 and ot.max() < 10**13:
        unit_us = 1000
    elif ot.min() >= 10**15 and ot.max() < 10**16:
        unit_us = 1
    else:
        return None  # mixed or other digit counts: named row by row
    step_us = int(interval_delta(interval) / dt.timedelta(microseconds=1))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    start_us = int((start - epoch) / dt.timedelta(microseconds=1))
    end_us = int((end - epoch) / dt.timedelta(microseconds=1))
    ts = ot * unit_us
    close_t = table.column("close_time").to_numpy()
    o, h, lo, c, v = (table.column(name).to_numpy() for name in COLUMNS[1:6])
    ok = (
        np.isfinite(o)
        & np.isfinite(h)
        & np.isfinite(lo)
        & np.isfinite(c)
        & np.isfinite(v)
        & (close_t == (ts + step_us) // unit_us - 1)
        & (ts % step_us == 0)
        & (ts >= start_us)
        & (ts < end_us)
        & (lo > 0)
        & (h >= lo)
        & (h >= np.maximum(o, c))
        & (lo <= np.minimum(o, c))
        & (v >= 0)
    )
    if not ok.all() or not (bool(np.all(ts[1:] > ts[:-1])) or np.unique(ts).size == n):
        return None
    bars = pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(ASSET_CLASS), n),
            pa.array(ts, type=pa.int64()).cast(UTC_TS),
            pa.array(ts + step_us, type=pa.int64()).cast(UTC_TS),
            table.column("open"),
            table.column("high"),
            table.column("low"),
            table.column("close"),
            table.column("volume"),
            table.column("count"),
            pa.repeat(pa.scalar(source_file), n),
        ],
        schema=BARS.schema,
    )
    return Parsed(bars, BARS_REJECTED.schema.empty_table(), header, lines)


# --- fetching -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Obtained:
    """A zip verified against its CHECKSUM, in the raw cache."""

    spec: FileSpec
    cached: CachedFile
    url: str
    downloaded: bool


@dataclass
class _Fetcher:
    ctx: RunContext
    cache: RawCache
    base: str
    summary: IngestSummary
    progress: Progress
    task: TaskID
    session: aiohttp.ClientSession
    sem: asyncio.Semaphore
    breaker: HostBreaker
    obtained: list[Obtained] = field(default_factory=list)
    missing: list[FileSpec] = field(default_factory=list)
    """Files Data Vision does not have (404), named in the summary's notes."""
    fallbacks: list[FileSpec] = field(default_factory=list)
    """Monthly files Data Vision does not have (404), fetched as daily files instead (`missing_notes`)."""
    bytes_in: int = 0
    failed: int = 0
    unreachable: str | None = None
    """The host whose name did not resolve: every later file fails at once, counted, not repeated."""
    not_fetched: int = 0
    """Files not fetched because the host never answered (the breaker tripped): one error for them all."""

    def _missing(self, spec: FileSpec) -> None:
        self.summary.of(spec.symbol).files_missing += 1
        self.missing.append(spec)

    def _bytes(self, n: int) -> None:
        self.bytes_in += n
        self.progress.update(self.task, size=_human(self.bytes_in))

    def _fail(self, spec: FileSpec, reason: str) -> None:
        self.summary.fail(f"{spec.relpath}: {reason}", spec.symbol)
        self._count_failure()

    def _count_failure(self) -> None:
        self.failed += 1
        self.progress.update(self.task, failed=self.failed)

    def _cannot_reach(self, spec: FileSpec) -> None:
        """A file not tried or not reached because the host's name does not resolve: one line for the
        host, the file counted as failed."""
        host = urlsplit(self.base).hostname or self.base
        if self.unreachable is None:
            self.unreachable = host
            self.summary.fail(f"cannot reach {host}: offline? set {ENV_BASE_URL} for a mirror")
        self.summary.of(spec.symbol).files_failed += 1
        self._count_failure()

    def _host_down(self, spec: FileSpec) -> None:
        """A file not fetched because the host never answered (the breaker tripped): counted as failed, the
        error for them all is said once at the end (`host_down_error`)."""
        self.not_fetched += 1
        self.summary.of(spec.symbol).files_failed += 1
        self._count_failure()

    def host_down_error(self) -> str | None:
        if not self.not_fetched:
            return None
        b = self.breaker
        return (
            f"cannot reach {b.host} ({b.reason} {b.streak} times in a row, no answer at all): "
            f"{self.not_fetched} file(s) not fetched; is {ENV_BASE_URL} right, is the host up?"
        )

    async def obtain(self, spec: FileSpec) -> None:
        fallback = False
        async with self.sem:
            try:
                if self.unreachable is not None:
                    self._cannot_reach(spec)
                elif self.breaker.tripped:
                    self._host_down(spec)
                else:
                    fallback = await self._obtain(spec)
            except HostDown:
                self._host_down(spec)
            except DownloadFailed as exc:
                if not name_not_resolved(exc):
                    raise
                self._cannot_reach(spec)
            except Exception as exc:  # one file's trouble never stops the others
                self._fail(spec, f"{type(exc).__name__}: {exc}")
        if fallback:
            daily = spec.daily()
            self.fallbacks.append(spec)
            task = self.progress.tasks[self.task]
            self.progress.update(self.task, total=(task.total or 0) + len(daily))
            await asyncio.gather(*(self.obtain(d) for d in daily))
        self.progress.advance(self.task)

    async def _status(self, url: str) -> int | str:
        """The HTTP status of a GET of `url` (its body not read), or why there was none: tells a zip whose
        .CHECKSUM is missing from a zip that is missing itself. Retried as the other requests are (RETRY):
        a 5xx, a 429, a timeout or a dropped connection is asked again."""

        async def attempt() -> int:
            async with self.session.get(url) as resp:
                if resp.status in RETRY_STATUSES:  # retried while attempts last (Retry-After honoured)
                    after = parse_retry_after(resp.headers.get("Retry-After"))
                    raise HttpError(url, resp.status, resp.reason or "", after)
                return resp.status

        try:
            return await with_retries(RETRY, url, attempt, self.breaker)
        except DownloadFailed as exc:
            return str(exc).removeprefix(f"{url}: ")

    async def _obtain(self, spec: FileSpec) -> bool:
        """Fetch and verify one file; True when a missing monthly file should fall back to daily ones."""
        url = f"{self.base}/{spec.relpath}"
        try:
            got = await fetch_bytes(
                self.session, url + ".CHECKSUM", RETRY, max_bytes=4096, breaker=self.breaker
            )
        except NotFound:
            if spec.kind == "monthly":
                return True
            zip_status = await self._status(url)
            if zip_status == 404:
                self._missing(spec)
            else:  # the zip is there, its checksum is not: it cannot be verified, so it does not land
                answered = f"HTTP {zip_status}" if isinstance(zip_status, int) else zip_status
                self._fail(
                    spec,
                    f"its .CHECKSUM is not on Data Vision (404) while the zip answered {answered}: the zip "
                    "cannot be verified and was not landed",
                )
            return False
        except DownloadFailed as exc:
            if name_not_resolved(exc):
                raise
            self._fail(spec, "CHECKSUM: " + str(exc).removeprefix(f"{url}.CHECKSUM: "))
            return False
        expected = _parse_checksum(got.data, spec.zip_name)
        if isinstance(expected, BadFile):
            self._fail(spec, str(expected))
            return False

        cached = self.cache.get(spec.relpath)
        if cached is not None and cached.sha256 == expected:
            self.obtained.append(Obtained(spec, cached, url, downloaded=False))
            return False

        tmp = self.cache.temp_path(spec.relpath)
        reason = ""
        for _ in range(VERIFY_ATTEMPTS):
            try:
                d = await download_file(
                    self.session,
                    url,
                    tmp,
                    RETRY,
                    on_bytes=self._bytes,
                    max_bytes=spec.size_limit,
                    breaker=self.breaker,
                )
            except NotFound:
                if spec.kind == "monthly":
                    return True
                self._missing(spec)
                return False
            except DownloadFailed as exc:
                if name_not_resolved(exc):
                    raise
                self._fail(spec, str(exc).removeprefix(f"{url}: "))
                return False
            if d.sha256 == expected:
                cached = self.cache.put_file(
                    spec.relpath,
                    tmp,
                    digest=d.sha256,
                    url=url,
                    checksum=expected,
                    etag=d.etag,
                    verified_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                )
                self.obtained.append(Obtained(spec, cached, url, downloaded=True))
                return False
            tmp.unlink(missing_ok=True)
            reason = (
                f"checksum mismatch: the zip's sha256 is {d.sha256} ({d.size} bytes), "
                f"its .CHECKSUM says {expected}"
            )
        self._fail(spec, reason + (f" ({VERIFY_ATTEMPTS} downloads)" if VERIFY_ATTEMPTS > 1 else ""))
        return False


def _parse_checksum(data: bytes, zip_name: str) -> str | BadFile:
    text = data.decode("utf-8", errors="replace").strip()
    m = re.fullmatch(r"([0-9a-fA-F]{64})[ \t]+\*?(\S+)", text.splitlines()[0].strip() if text else "")
    if m is None:
        return BadFile(f"malformed .CHECKSUM {text[:100]!r} (expected '<sha256>  {zip_name}')")
    if m.group(2) != zip_name:
        return BadFile(f".CHECKSUM names {m.group(2)!r}, expected {zip_name!r}")
    return m.group(1).lower()


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


async def _fetch_all(
    ctx: RunContext, specs: list[FileSpec], summary: IngestSummary, today: dt.date | None = None
) -> list[Obtained]:
    cache = RawCache(ctx.paths, SOURCE)
    progress = Progress(
        TextColumn("binance"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[size]}"),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=ctx.console,
        disable=ctx.quiet,
        transient=False,
    )
    with progress:
        task = progress.add_task("files", total=len(specs), size=_human(0), failed=0)
        async with client_session(RETRY, limit=CONCURRENCY) as session:
            base = base_url()
            fetcher = _Fetcher(
                ctx,
                cache,
                base,
                summary,
                progress,
                task,
                session,
                asyncio.Semaphore(CONCURRENCY),
                HostBreaker(
                    urlsplit(without_userinfo(base)).netloc or without_userinfo(base), UNANSWERED_LIMIT
                ),
            )
            await asyncio.gather(*(fetcher.obtain(s) for s in specs))
    down = fetcher.host_down_error()
    if down is not None:
        summary.fail(down)
    summary.notes.extend(missing_notes(fetcher.missing, today, fetcher.fallbacks))
    return fetcher.obtained


def not_published_yet(spec: FileSpec, today: dt.date) -> bool:
    """Whether Data Vision may simply not have published `spec` yet (a 404 then is no news): a daily file
    of yesterday (UTC) or later, a monthly file within MONTHLY_PUBLISH_DAYS of its month's end."""
    if spec.kind == "daily":
        return spec.first_day >= today - dt.timedelta(days=1)
    return today <= spec.last_day + dt.timedelta(days=MONTHLY_PUBLISH_DAYS)


def _span(first: dt.date, last: dt.date) -> str:
    return str(first) if first == last else f"{first} .. {last}"


def missing_notes(
    missing: list[FileSpec], today: dt.date | None = None, fallbacks: Iterable[FileSpec] = ()
) -> list[str]:
    """The notes on the files Data Vision does not have (404):

    - a monthly file used as daily files (`fallbacks`): one note per file, or, within the first days of the
      next month (`not_published_yet`), one line for every pair;
    - days not published yet (yesterday, today, later: `not_published_yet`): one line for every pair;
    - any other day: one note per symbol and interval naming the files, runs of consecutive days compacted
      to `first .. last`.

    Without `today`, every file is named as missing."""
    notes = []
    pending_months: dict[str, set[str]] = defaultdict(set)
    for spec in sorted(set(fallbacks), key=lambda f: (f.first_day, f.symbol)):
        if today is not None and not_published_yet(spec, today):
            pending_months[f"{spec.first_day:%Y-%m}"].add(spec.symbol)
        else:
            notes.append(
                f"{spec.relpath}: no monthly file upstream (404); using {len(spec.daily())} daily files"
            )
    for month, symbols in sorted(pending_months.items()):
        notes.append(
            f"the {month} monthly files are not published yet ({len(symbols)} pair(s)); their daily files "
            "were used (Data Vision publishes a month's file in the first days of the next)"
        )
    pending = [s for s in missing if today is not None and not_published_yet(s, today)]
    if pending:
        first, last = min(s.first_day for s in pending), max(s.last_day for s in pending)
        notes.append(
            f"days {_span(first, last)} are not published yet ({len(pending)} daily file(s), "
            f"{len({s.symbol for s in pending})} pair(s)): Data Vision publishes a day after it ends; a later "
            "run fetches them"
        )
    by: dict[tuple[str, str, str], list[FileSpec]] = defaultdict(list)
    for spec in missing:
        if not (today is not None and not_published_yet(spec, today)):
            by[(spec.symbol, spec.interval, spec.kind)].append(spec)
    for (_, _, kind), group in sorted(by.items()):
        specs = sorted(set(group), key=lambda f: f.first_day)
        runs: list[list[FileSpec]] = []
        for f in specs:
            if runs and runs[-1][-1].last_day + dt.timedelta(days=1) == f.first_day:
                runs[-1].append(f)
            else:
                runs.append([f])
        names = [r[0].stem if len(r) == 1 else f"{r[0].stem} .. {r[-1].stem}" for r in runs]
        notes.append(f"not on Data Vision (404), {len(specs)} {kind} file(s): {', '.join(names)}")
    return notes


# --- landing --------------------------------------------------------------------------------------------


def _manifest_inputs(writer: LakeWriter, dataset: Dataset, partition: dict[str, str]) -> list[dict[str, Any]]:
    return manifest_inputs(partition_dir(writer.paths, dataset, partition))


def _input_record(o: Obtained) -> dict[str, Any]:
    return {
        "file": o.spec.relpath,
        "sha256": o.cached.sha256,
        "url": without_userinfo(o.url),
        "first_day": o.spec.first_day.isoformat(),
        "last_day": o.spec.last_day.isoformat(),
    }


def _outside(table: pa.Table, spans: list[tuple[dt.datetime, dt.datetime]]) -> pa.Table:
    """The rows of `table` whose ts is in none of the [start, end) spans."""
    if table.num_rows == 0 or not spans:
        return table
    inside = None
    for s, e in spans:
        m = pc.and_(
            pc.greater_equal(table["ts"], pa.scalar(s, UTC_TS)), pc.less(table["ts"], pa.scalar(e, UTC_TS))
        )
        inside = m if inside is None else pc.or_(inside, m)
    return table.filter(pc.invert(inside))


def _quarantine(
    writer: LakeWriter,
    rej_part: dict[str, str],
    todo: list[tuple[Obtained, Parsed]],
    names: set[str],
    new_rej: pa.Table,
) -> None:
    """The period's bars_rejected partition: the rows of `names` replaced by `new_rej`."""
    rej_target = partition_dir(writer.paths, BARS_REJECTED, rej_part) / "data.parquet"
    if not (rej_target.exists() or new_rej.num_rows):
        return
    old_rej = (
        read_partition(rej_target, BARS_REJECTED)
        if rej_target.exists()
        else BARS_REJECTED.schema.empty_table()
    )
    mask = pc.is_in(old_rej["source_file"], value_set=pa.array(sorted(names), pa.string()))
    rej_inputs = [
        i for i in _manifest_inputs(writer, BARS_REJECTED, rej_part) if i.get("file") not in names
    ] + [_input_record(o) for o, p in todo if p.rejected.num_rows]
    written = writer.write(
        BARS_REJECTED,
        rej_part,
        pa.concat_tables([old_rej.filter(pc.invert(mask)), new_rej]),
        mode="replace",
        inputs=rej_inputs,
    )
    writer.durable(written.path.parent)  # durable before the bars that count these files as landed


def _land_partition(
    writer: LakeWriter,
    interval: str,
    symbol: str,
    period: str,
    files: list[Obtained],
    summary: IngestSummary,
    say: Callable[[str], None],
    rejected_lock: threading.Lock | None = None,
) -> None:
    """Land the files of one (symbol, period) partition that need it; skip the ones already landed.
    `rejected_lock` is held while the period's bars_rejected partition (shared by the symbols) is read and
    rewritten."""
    part = {"source": SOURCE, "interval": interval, "symbol": symbol, "period": period}
    rej_part = {"source": SOURCE, "period": period}
    stats = summary.of(symbol)
    part_dir = partition_dir(writer.paths, BARS, part)
    # The file, not only the manifest, decides what is landed: a partition whose data.parquet is missing or
    # differs from its manifest is rebuilt from this run's files (from the raw cache: no download).
    intact = partition_intact(part_dir)
    if not intact:
        say(
            f"binance: {part_dir / 'data.parquet'} is missing or does not match its manifest: rebuilding it "
            "from the raw cache"
        )
        refills = _cached_refills(
            writer, interval, symbol, period, files, _manifest_inputs(writer, BARS, part)
        )
        files = [*files, *refills]
        shown = ", ".join(_compact_names([o.spec for o in refills]))
        unit = "month" if len(period) == 7 else "year"
        summary.notes.append(
            f"rebuilt {symbol} {interval} {period} from the files of this run"
            + (f" and {len(refills)} more in the raw cache ({shown})" if refills else "")
            + (
                ""
                if _covers_period(files, period)
                else f"; days of that {unit} in none of them come back when an ingest covers them"
            )
        )
    previous = _manifest_inputs(writer, BARS, part) if intact else []
    landed = {(i.get("file"), i.get("sha256")): i for i in previous}
    quarantined = {
        (i.get("file"), i.get("sha256")) for i in _manifest_inputs(writer, BARS_REJECTED, rej_part)
    }
    todo: list[tuple[Obtained, Parsed]] = []
    for o in sorted(files, key=lambda o: o.spec.first_day):
        key = (o.spec.relpath, o.cached.sha256)
        record = landed.get(key)
        # Landed = in the bars manifest and, if it had rejected rows, in the bars_rejected manifest too. (A
        # record without a "rejected" count predates the count and is taken as landed, as before.)
        if not o.downloaded and record is not None and (not record.get("rejected") or key in quarantined):
            stats.files_skipped += 1
            _fail_if_all_rejected(summary, symbol, o.spec.relpath, record.get("bars"), record.get("rejected"))
            continue
        try:
            data = read_zip_csv(o.cached.path, o.spec)
            parsed = parse_klines(
                data,
                symbol=symbol,
                interval=interval,
                source_file=o.spec.relpath,
                start=o.spec.start,
                end=o.spec.end,
            )
        except BadFile as exc:
            summary.fail(f"{o.spec.relpath}: {exc}; nothing from it landed", symbol)
            continue
        todo.append((o, parsed))
    if not todo:
        return

    spans = [(o.spec.start, o.spec.end) for o, _ in todo]
    names = {o.spec.relpath for o, _ in todo}
    target = part_dir / "data.parquet"
    existing = read_partition(target, BARS) if intact and target.exists() else BARS.schema.empty_table()
    new_bars = pa.concat_tables([p.bars for _, p in todo])
    combined = pa.concat_tables([_outside(existing, spans), new_bars])

    def covered(i: dict[str, Any]) -> bool:
        try:
            first, last = (
                _utc(dt.date.fromisoformat(i["first_day"])),
                _utc(dt.date.fromisoformat(i["last_day"])),
            )
        except (KeyError, TypeError, ValueError):
            return False
        return any(s <= first and last < e for s, e in spans)

    # The quarantine is written first: a file counts as landed once the bars manifest records it, and by
    # then its rejected rows are in bars_rejected (a crash between the two writes re-lands the file).
    new_rej = pa.concat_tables([p.rejected for _, p in todo])
    with rejected_lock or contextlib.nullcontext():
        _quarantine(writer, rej_part, todo, names, new_rej)

    new_inputs = [
        {**_input_record(o), "bars": p.bars.num_rows, "rejected": p.rejected.num_rows} for o, p in todo
    ]
    inputs = [i for i in previous if i.get("file") not in names and not covered(i)] + new_inputs
    result = writer.write(BARS, part, combined, mode="replace", inputs=inputs)
    stats.rows_landed += result.rows_added  # new to the lake: a month landed again in another form adds none
    stats.rows_rejected += new_rej.num_rows
    stats.files_done += len(todo)
    for o, p in todo:
        if p.rejected.num_rows:
            say(f"binance: {o.spec.relpath}: {p.rejected.num_rows} row(s) quarantined in bars_rejected")
        _fail_if_all_rejected(summary, symbol, o.spec.relpath, p.bars.num_rows, p.rejected.num_rows)


def _cached_refills(
    writer: LakeWriter,
    interval: str,
    symbol: str,
    period: str,
    files: list[Obtained],
    old_inputs: list[dict[str, Any]],
) -> list[Obtained]:
    """The zips of (symbol, interval, period) in the raw cache, their bytes still matching the sha256 the
    cache recorded when they were verified against Data Vision's CHECKSUM, that cover days none of the
    run's `files` covers: a partition rebuilt after damage gets them back, not only the run's days (a day
    taken down upstream since, or outside the run's range, would be lost for good otherwise). Files the
    damaged partition's manifest (`old_inputs`) records come first, then monthly zips, then daily ones; a zip overlapping days already covered is left out (its rows would land twice)."""
    cache = RawCache(writer.paths, SOURCE)
    recorded = {i.get("file") for i in old_inputs}
    kinds: tuple[Literal["monthly", "daily"], ...] = ("monthly", "daily")
    found: list[FileSpec] = []
    for kind in kinds:
        folder = f"data/spot/{kind}/klines/{symbol}/{interval}"
        date = r"\d{4}-\d{2}-\d{2}" if kind == "daily" else r"\d{4}-\d{2}"
        pattern = re.compile(rf"{re.escape(symbol)}-{re.escape(interval)}-({date})\.zip")
        try:
            names = sorted(p.name for p in cache.path(folder).iterdir())
        except OSError:
            continue
        for name in names:
            m = pattern.fullmatch(name)
            try:
                first = (
                    dt.date.fromisoformat(m.group(1) if kind == "daily" else m.group(1) + "-01")
                    if m
                    else None
                )
            except ValueError:
                first = None
            if first is not None:
                spec = FileSpec(
                    symbol, interval, kind, first, first if kind == "daily" else _month_end(first)
                )
                if spec.period == period:
                    found.append(spec)
    taken = [(o.spec.first_day, o.spec.last_day) for o in files]
    out: list[Obtained] = []
    for spec in sorted(found, key=lambda f: (f.relpath not in recorded, f.kind != "monthly", f.first_day)):
        if any(spec.first_day <= last and first <= spec.last_day for first, last in taken):
            continue
        cached = cache.get(spec.relpath)  # None when its bytes no longer match the sha256 recorded
        if cached is None:
            continue
        taken.append((spec.first_day, spec.last_day))
        url = cached.meta.get("url")
        out.append(Obtained(spec, cached, url if isinstance(url, str) else spec.relpath, downloaded=False))
    return sorted(out, key=lambda o: o.spec.first_day)


def _covers_period(files: list[Obtained], period: str) -> bool:
    """Whether the files cover every day of `period` (a month, YYYY-MM, or a year, YYYY)."""
    first = dt.date(int(period[:4]), int(period[5:7]) if len(period) == 7 else 1, 1)
    last = _month_end(first) if len(period) == 7 else dt.date(first.year, 12, 31)
    covered = {d for o in files for d in days(o.spec.first_day, o.spec.last_day)}
    return all(d in covered for d in days(first, last))


def _compact_names(specs: list[FileSpec]) -> list[str]:
    """The files' stems, runs of consecutive days (or months) of one kind compacted to `first .. last`."""
    runs: list[list[FileSpec]] = []
    for f in sorted(specs, key=lambda f: (f.kind, f.first_day)):
        if (
            runs
            and runs[-1][-1].kind == f.kind
            and runs[-1][-1].last_day + dt.timedelta(days=1) == f.first_day
        ):
            runs[-1].append(f)
        else:
            runs.append([f])
    return [r[0].stem if len(r) == 1 else f"{r[0].stem} .. {r[-1].stem}" for r in runs]


def _fail_if_all_rejected(
    summary: IngestSummary, symbol: str, relpath: str, bars: Any, rejected: Any
) -> None:
    """A file none of whose rows landed is a failure (exit non-zero), its rows still in quarantine."""
    if bars == 0 and isinstance(rejected, int) and rejected > 0:
        summary.fail(
            f"{relpath}: all {rejected} rows rejected (see bars_rejected); nothing from it landed", symbol
        )


# --- the command ----------------------------------------------------------------------------------------


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from code that already runs an event loop (a notebook): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run(
    ctx: RunContext,
    symbols: list[str],
    interval: str,
    start: dt.date,
    end: dt.date,
    *,
    today: dt.date | None = None,
) -> IngestSummary:
    """Fetch, verify and land Binance spot klines for `symbols` over [start, end] (UTC days, inclusive)."""
    interval_delta(interval)  # an unknown interval is refused before any work
    for s in symbols:
        validate_symbol(s)
    if start > end:
        raise MarketlakeError(f"start {start} is after end {end}")
    base_url()  # a malformed mirror URL is refused before any work
    today = today or dt.datetime.now(dt.UTC).date()
    summary = IngestSummary(SOURCE)
    specs: list[FileSpec] = []
    landed = _landed_check(ctx)
    for s in symbols:
        summary.of(s)
        specs.extend(plan(s, interval, start, end, today, landed))
    # days from yesterday on that Data Vision has not published yet are one line (`missing_notes`)

    with land(ctx.root) as writer:
        obtained = _run_async(_fetch_all(ctx, specs, summary, today))
        groups: dict[tuple[str, str], list[Obtained]] = defaultdict(list)
        for o in obtained:
            groups[(o.spec.symbol, o.spec.period)].append(o)
        for sym in symbols:
            st = summary.of(sym)
            pending = all(not_published_yet(s, today) for s in specs if s.symbol == sym and s.kind == "daily")
            if pending and not any(s.symbol == sym and s.kind == "monthly" for s in specs):
                continue  # only days not published yet (cron before Data Vision's day): not a failure
            if st.files_missing and not st.files_failed and not any(o.spec.symbol == sym for o in obtained):
                # a past range that yields nothing at all for a symbol is a failure, named (even with -q)
                hint = (
                    f"symbols are upper case: {sym.upper()}?"
                    if sym != sym.upper()
                    else "is it a spot symbol (e.g. BTCUSDT) that was listed then?"
                )
                summary.fail(
                    f"no file at all for {sym} on {without_userinfo(base_url())} in {start} .. {end}: {hint}"
                )
        _land_all(writer, interval, sorted(groups.items()), summary, ctx.say)
    return summary


def _landed_check(ctx: RunContext) -> Callable[[FileSpec], bool]:
    """`plan`'s `landed`: whether a file is in the raw cache (its sidecar's sha256; the fetch verifies the
    bytes) and recorded with that sha256 in its bars partition's manifest. Reads no zip."""
    cache = RawCache(ctx.paths, SOURCE)
    manifests: dict[Path, dict[str, Any]] = {}

    def landed(spec: FileSpec) -> bool:
        try:
            meta = json.loads(cache.meta_path(spec.relpath).read_text())
        except (OSError, ValueError):
            return False
        sha = meta.get("sha256") if isinstance(meta, dict) else None
        if not isinstance(sha, str) or not cache.path(spec.relpath).is_file():
            return False
        part = {"source": SOURCE, "interval": spec.interval, "symbol": spec.symbol, "period": spec.period}
        where = partition_dir(ctx.paths, BARS, part)
        if where not in manifests:
            manifests[where] = {str(i.get("file")): i.get("sha256") for i in manifest_inputs(where)}
        return bool(manifests[where].get(spec.relpath) == sha)

    return landed


LAND_THREADS = 4
"""(symbol, period) partitions read and landed at once: unzipping, Arrow's CSV reader, the Parquet
encoder and the fsyncs run outside Python's lock, so threads overlap them."""


@dataclass
class _Landed:
    """What landing one partition reports, merged into the run's summary in partition order."""

    summary: IngestSummary
    said: list[str] = field(default_factory=list)


def _land_one(
    writer: LakeWriter,
    interval: str,
    symbol: str,
    period: str,
    files: list[Obtained],
    locks: dict[str, threading.Lock],
) -> _Landed:
    out = _Landed(IngestSummary(SOURCE))
    try:
        _land_partition(writer, interval, symbol, period, files, out.summary, out.said.append, locks[period])
    except MarketlakeError as exc:
        for o in files:
            out.summary.fail(f"{o.spec.relpath}: {exc}", symbol)
    return out


def _merge(summary: IngestSummary, landed: _Landed, say: Callable[[str], None]) -> None:
    for line in landed.said:
        say(line)
    summary.errors.extend(landed.summary.errors)
    summary.notes.extend(landed.summary.notes)
    for symbol, part in landed.summary.symbols.items():
        mine = summary.of(symbol)
        for name, value in vars(part).items():
            setattr(mine, name, getattr(mine, name) + value)


def _land_all(
    writer: LakeWriter,
    interval: str,
    groups: list[tuple[tuple[str, str], list[Obtained]]],
    summary: IngestSummary,
    say: Callable[[str], None],
) -> None:
    """Land every (symbol, period) partition, LAND_THREADS at a time; what each reports (counts, errors,
    notes, messages) is merged in partition order, as if they had landed one after the other. The
    bars_rejected partition of a period, which the symbols share, is written by one at a time."""
    locks = {period: threading.Lock() for (_, period), _ in groups}
    if len(groups) < 2 or LAND_THREADS <= 1:
        for (symbol, period), files in groups:
            _merge(summary, _land_one(writer, interval, symbol, period, files, locks), say)
        return
    with concurrent.futures.ThreadPoolExecutor(LAND_THREADS) as pool:
        futures = [
            pool.submit(_land_one, writer, interval, symbol, period, files, locks)
            for (symbol, period), files in groups
        ]
        merged = 0
        try:
            for f in futures:
                _merge(summary, f.result(), say)
                merged += 1
        except BaseException:
            for f in futures:
                f.cancel()  # an error or Ctrl-C: no partition not yet started is landed
            # the partitions already landing finish (each write is whole); what they landed is reported
            for f in futures[merged + 1 :]:
                if not f.cancelled():
                    try:
                        _merge(summary, f.result(), say)
                    except BaseException:  # the first error is the one raised
                        pass
            raise

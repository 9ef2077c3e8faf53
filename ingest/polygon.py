"""Polygon.io flat files over the S3-compatible endpoint (us_stocks_sip minute and day aggregates).

One gzip CSV per New York trading day holds every ticker. It is streamed line by line and only the wanted
tickers' lines are parsed; the raw file stays in the cache (raw/polygon/<key>) with its ETag. A re-run
HEADs each day's object: same ETag and every wanted ticker already ingested from it -> skipped; a new
ETag (the vendor republished the day) -> downloaded again and that day's rows replaced in every partition
it touched. Bad rows go to bars_rejected with a reason; a file that cannot be read whole (truncated gzip,
unexpected header) lands nothing and fails that day only.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ingest import s3
from ingest.common import (
    CachedFile,
    IngestSummary,
    RawCache,
    RunContext,
    bar_period,
    days,
    interval_delta,
    ohlcv_problem,
    progress_bar,
)
from ingest.sessions import land
from ingest.stamping import StampError, asset_class, new_york_day, session, stamp_daily
from lake.errors import MarketlakeError
from lake.schemas import BARS, BARS_REJECTED, UTC_TS, Dataset
from lake.writer import MANIFEST_FILE, LakeWriter, atomic_write_bytes, partition_dir, read_partition

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


@dataclass
class ParsedFile:
    """What one day file holds for the wanted tickers: valid bars and rejected rows, by ticker."""

    bars: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    rejected: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    lines: int = 0


def _ns_to_datetime(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def _number(name: str, text: str, *, positive: bool) -> float:
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


def parse_day_file(
    path: Path, *, source_file: str, day: dt.date, interval: str, tickers: Iterable[str]
) -> ParsedFile:
    """Stream a gzip CSV day file and keep only the lines of `tickers`.

    Raises PolygonFileError (naming the file) if the gzip is truncated or corrupt, or the header is not
    exactly the documented one. CRLF or LF endings and a missing final newline are all fine.
    """
    wanted = set(tickers)
    prefixes = tuple(f"{t},".encode() for t in sorted(wanted))
    out = ParsedFile()
    seen: dict[tuple[str, dt.datetime], int] = {}
    try:
        with gzip.open(path, "rb") as f:
            first = f.readline()
            header = first.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n").decode("utf-8", "replace")
            if tuple(h.strip() for h in header.split(",")) != HEADER:
                raise PolygonFileError(
                    f"polygon: {source_file}: unexpected header {header[:200]!r}, expected {','.join(HEADER)!r}"
                )
            line_no = 1
            for raw in f:
                line_no += 1
                if not raw.startswith(prefixes):
                    continue
                text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                fields = next(csv.reader([text]))
                ticker = fields[0]
                if ticker not in wanted:
                    continue
                bar, reason, vendor_ts = _parse_row(fields, interval, day, source_file)
                if bar is not None:
                    key = (ticker, bar["ts"])
                    if key in seen:
                        bar, reason = None, f"duplicate bar: same ticker and window_start as line {seen[key]}"
                    else:
                        seen[key] = line_no
                if bar is not None:
                    out.bars[ticker].append(bar)
                else:
                    out.rejected[ticker].append(
                        _rejected_row(ticker, interval, source_file, line_no, text, fields, vendor_ts, reason)
                    )
            out.lines = line_no
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise PolygonFileError(
            f"polygon: {source_file}: truncated or corrupt gzip ({exc}); nothing of this file landed"
        ) from exc
    except OSError as exc:
        raise PolygonFileError(f"polygon: {source_file}: cannot read the cached file: {exc}") from exc
    return out


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


def _table(dataset: Dataset, rows: Sequence[Mapping[str, Any]], extra: Mapping[str, Any]) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for f in dataset.schema:
        values = [extra[f.name] if f.name in extra else r.get(f.name) for r in rows]
        cols[f.name] = pa.array(values, type=UTC_TS if f.type == UTC_TS else f.type)
    return pa.table(cols)


def _manifest_inputs(target_dir: Path) -> list[dict[str, Any]]:
    m = target_dir / MANIFEST_FILE
    if not m.exists():
        return []
    try:
        inputs = json.loads(m.read_text()).get("inputs", [])
    except (OSError, ValueError):
        return []
    return [dict(i) for i in inputs if isinstance(i, dict)]


def _replace_file_rows(
    w: LakeWriter,
    dataset: Dataset,
    partition: dict[str, str],
    source_file: str,
    incoming: pa.Table,
    the_input: dict[str, Any],
    *,
    only_symbols: set[str] | None = None,
) -> bool:
    """Make the partition hold its rows from other files plus `incoming` as this file's rows.

    Rows of `source_file` already there (an earlier version of the file) are dropped first, so a
    republished file replaces its day. Returns whether the partition changed."""
    target_dir = partition_dir(w.paths, dataset, partition)
    target = target_dir / "data.parquet"
    parts = []
    if target.exists():
        existing = read_partition(target, dataset)
        drop = [sf == source_file for sf in existing.column("source_file").to_pylist()]
        if only_symbols is not None:
            syms = existing.column("symbol").to_pylist()
            drop = [d and s in only_symbols for d, s in zip(drop, syms, strict=True)]
        parts.append(existing.filter(pa.array([not d for d in drop], type=pa.bool_())))
    elif incoming.num_rows == 0:
        return False
    parts.append(incoming.select(dataset.schema.names).cast(dataset.schema))
    table = pa.concat_tables(parts)
    inputs = [i for i in _manifest_inputs(target_dir) if i.get("file") != source_file]
    if incoming.num_rows:
        inputs.append(the_input)
    return w.write(dataset, partition, table, mode="replace", inputs=inputs).changed


def _periods_of_day(interval: str, day: dt.date) -> set[str]:
    """Every period a day file's bars can fall in (minute bars run to 20:00 New York: the next UTC day)."""
    noon = dt.datetime.combine(day, dt.time(12), dt.UTC)
    return {bar_period(interval, noon), bar_period(interval, noon + dt.timedelta(days=1))}


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
) -> None:
    """Write one file's rows for `tickers`, replacing whatever an earlier version of the file left;
    `etfs` (the setting) are stored as asset_class 'etf' besides the built-in list."""
    tickers = list(tickers)
    for ticker in tickers:
        by_period: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for bar in parsed.bars.get(ticker, []):
            by_period[bar_period(interval, bar["ts"])].append(bar)
        for period in sorted(_periods_of_day(interval, day) | set(by_period)):
            part = {"source": SOURCE, "interval": interval, "symbol": ticker, "period": period}
            table = _table(BARS, by_period.get(period, []), {"asset_class": asset_class(ticker, etfs)})
            _replace_file_rows(w, BARS, part, source_file, table, the_input)
    rejected = [r for t in tickers for r in parsed.rejected.get(t, [])]
    period = bar_period(interval, dt.datetime.combine(day, dt.time(12), dt.UTC))
    table = _table(BARS_REJECTED, rejected, {})
    _replace_file_rows(
        w,
        BARS_REJECTED,
        {"source": SOURCE, "period": period},
        source_file,
        table,
        the_input,
        only_symbols=set(tickers),
    )


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


def _write_ledger(cache: RawCache, key: str, etag: str, sha256: str, tickers: Iterable[str]) -> None:
    body = {"etag": etag, "sha256": sha256, "tickers": sorted(set(tickers))}
    atomic_write_bytes(_ledger_path(cache, key), (json.dumps(body, indent=1) + "\n").encode())


CONCURRENCY = 4
"""Day files fetched (HEAD, and GET when not cached) at once; parsing and landing stay serial, in day order."""


@dataclass
class _Fetched:
    """What fetching one day's object gave: no file, an error, or the cached file and its ETag."""

    day: dt.date
    key: str
    etag: str | None = None
    cached: CachedFile | None = None
    downloaded: bool = False
    error: MarketlakeError | None = None


def _fetch_day(
    client: Any, settings: s3.S3Settings, cache: RawCache, interval: str, day: dt.date
) -> _Fetched:
    """HEAD the day's object and download it into the raw cache unless the cache holds that ETag already.
    Safe to run in threads: each day has its own key, temporary file and cache entry."""
    key = object_key(interval, day)
    try:
        etag = s3.head_etag(client, settings, key)
    except s3.Missing:
        return _Fetched(day, key)
    except MarketlakeError as exc:  # names the object and why (AccessDenied included)
        return _Fetched(day, key, error=exc)
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
    summary = IngestSummary(SOURCE)
    for t in tickers:
        summary.of(t)
    cache = RawCache(ctx.paths, SOURCE)
    landed_any: set[str] = set()
    all_days = list(days(start, end))
    with (
        land(ctx.root) as w,
        ThreadPoolExecutor(CONCURRENCY) as pool,
        progress_bar(ctx, f"polygon {interval}", len(all_days), "day files") as step,
    ):
        futures = [pool.submit(_fetch_day, client, settings, cache, interval, d) for d in all_days]
        for future in futures:
            errors_before = len(summary.errors)
            fetched = future.result()
            if isinstance(
                fetched.error, s3.AccessDenied
            ):  # bad keys: every other day would fail the same way
                for f in futures:
                    f.cancel()
                _fail(summary, f"{fetched.error}; stopped at {fetched.day}, later days were not landed")
                break
            _ingest_day(ctx, w, settings, cache, summary, tickers, interval, fetched, landed_any, today)
            step(len(summary.errors) == errors_before)
    files_read = sum(s.files_done for s in summary.symbols.values())
    files_skipped = sum(s.files_skipped for s in summary.symbols.values())
    trading_days = [d for d in days(start, min(end, today - dt.timedelta(days=2))) if _trading_day(d)]
    if summary.ok and trading_days and not files_read and not files_skipped:
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
) -> None:
    day, key = fetched.day, fetched.key
    source_file = f"s3://{settings.bucket}/{key}"
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
    if fetched.downloaded:
        if previous:
            ctx.say(f"polygon {interval} {day}: republished (ETag changed), re-ingesting {sorted(previous)}")
        todo = [*tickers, *sorted(previous - set(tickers))]
    else:
        done = set(ledger.get("tickers", [])) if ledger.get("etag") == etag else set()
        todo = [t for t in tickers if t not in done] + sorted(previous - set(tickers))
        for t in tickers:
            if t in done:
                summary.of(t).files_skipped += 1
        if not todo:
            ctx.say(f"polygon {interval} {day}: unchanged (ETag {etag}), skipped")
            return
    the_input = {"file": source_file, "etag": etag, "sha256": cached.sha256}
    try:
        parsed = parse_day_file(
            cached.path, source_file=source_file, day=day, interval=interval, tickers=todo
        )
    except PolygonFileError as exc:
        _fail(summary, str(exc))
        for t in todo:
            summary.of(t).files_failed += 1
        return
    land_file(
        w,
        parsed,
        tickers=todo,
        interval=interval,
        day=day,
        source_file=source_file,
        the_input=the_input,
        etfs=ctx.settings.etfs,
    )
    for t in todo:
        s = summary.of(t)
        s.files_done += 1
        s.rows_landed += len(parsed.bars.get(t, []))
        s.rows_rejected += len(parsed.rejected.get(t, []))
        if parsed.bars.get(t):
            landed_any.add(t)
    done_before = set(ledger.get("tickers", [])) if ledger.get("etag") == etag else set()
    _write_ledger(cache, key, etag, cached.sha256, done_before | set(todo))
    n = sum(len(parsed.bars.get(t, [])) for t in todo)
    r = sum(len(parsed.rejected.get(t, [])) for t in todo)
    ctx.say(f"polygon {interval} {day}: {n} bars, {r} rejected for {', '.join(todo)}")

"""What every ingestor shares: the run context, the summary it reports, date ranges, the raw cache."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lake.context import RunContext as RunContext  # re-exported: ingest code takes it from here
from lake.context import plain
from lake.errors import MarketlakeError
from lake.paths import LakePaths
from lake.schemas import UTC_TS, Dataset
from lake.writer import (
    TMP_MARK,
    LakeWriter,
    WriteResult,
    atomic_write_bytes,
    manifest_inputs,
    partition_dir,
    partition_intact,
    read_partition,
    sha256_file,
)

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


def without_userinfo(url: str) -> str:
    """`url` without the `user:password@` of its authority: the form of a base URL or endpoint taken from
    the environment (a mirror behind basic auth) that is stored (manifests, the raw cache's sidecars) and
    shown (notes, errors). The requests still use the URL as set, credentials and all."""
    return _USERINFO.sub(r"\1", url, count=1)


@dataclass
class SymbolSummary:
    rows_landed: int = 0
    """Rows new to the lake (their key was not there before: the writer's `WriteResult.rows_added`), not
    the rows read: a re-run, or a file landed again in another form, lands 0. A bar revised in place (same
    key, new values) is not counted here; `bar_revisions` records it."""
    rows_rejected: int = 0
    files_done: int = 0
    files_skipped: int = 0
    files_missing: int = 0
    files_failed: int = 0


@dataclass
class IngestSummary:
    """What one ingest did, per symbol, and what failed (each failure names the piece and why)."""

    source: str
    symbols: dict[str, SymbolSummary] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of(self, symbol: str) -> SymbolSummary:
        return self.symbols.setdefault(symbol, SymbolSummary())

    def fail(self, message: str, symbol: str | None = None) -> None:
        self.errors.append(message)
        if symbol is not None:
            self.of(symbol).files_failed += 1

    @property
    def ok(self) -> bool:
        return not self.errors

    @classmethod
    def merged(cls, summaries: Iterable[IngestSummary]) -> list[IngestSummary]:
        """The summaries of one source made one (several files of `ingest csv`, say), in first-seen order of
        source: counts of a symbol summed, errors and notes kept in order."""
        out: dict[str, IngestSummary] = {}
        for s in summaries:
            m = out.setdefault(s.source, cls(s.source))
            for sym, counts in s.symbols.items():
                mine = m.of(sym)
                for f in dataclasses.fields(SymbolSummary):
                    setattr(mine, f.name, getattr(mine, f.name) + getattr(counts, f.name))
            m.errors += s.errors
            m.notes += s.notes
        return list(out.values())

    def table(self) -> Table:
        t = Table(title=f"{self.source}: ingest summary")
        for col in ("symbol", "rows landed", "rejected", "files done", "skipped", "missing", "failed"):
            t.add_column(col, justify="left" if col == "symbol" else "right")
        for sym, s in sorted(self.symbols.items()):
            t.add_row(
                plain(sym),
                *map(
                    str,
                    (
                        s.rows_landed,
                        s.rows_rejected,
                        s.files_done,
                        s.files_skipped,
                        s.files_missing,
                        s.files_failed,
                    ),
                ),
            )
        return t

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "symbols": {k: vars(v) for k, v in sorted(self.symbols.items())},
            "errors": list(self.errors),
            "notes": list(self.notes),
        }


def parse_day(text: str, name: str = "date") -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise MarketlakeError(f"{name} {text!r} is not a date (YYYY-MM-DD)") from None


def days(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    """Every calendar day from start to end, inclusive."""
    if start > end:
        raise MarketlakeError(f"start {start} is after end {end}")
    d = start
    while d <= end:
        yield d
        d += dt.timedelta(days=1)


INTERVALS: dict[str, dt.timedelta] = {
    "1m": dt.timedelta(minutes=1),
    "5m": dt.timedelta(minutes=5),
    "15m": dt.timedelta(minutes=15),
    "1h": dt.timedelta(hours=1),
    "1d": dt.timedelta(days=1),
}


def interval_delta(interval: str) -> dt.timedelta:
    try:
        return INTERVALS[interval]
    except KeyError:
        raise MarketlakeError(f"unknown interval {interval!r} (known: {', '.join(INTERVALS)})") from None


@dataclass(frozen=True)
class CachedFile:
    path: Path
    sha256: str
    meta: dict[str, Any]


class RawCache:
    """Downloaded files exactly as served, under raw/<source>/, each with a `.meta.json` sidecar holding
    its sha256 and what identifies the upstream version (ETag, checksum, URL). Writes are atomic: a
    partial download never lands under its final name."""

    def __init__(self, paths: LakePaths, source: str) -> None:
        self.base = paths.raw / source

    def path(self, relpath: str) -> Path:
        p = (self.base / relpath).resolve()
        if not p.is_relative_to(self.base.resolve()):
            raise MarketlakeError(f"refusing a cache path outside the cache: {relpath!r}")
        return p

    def meta_path(self, relpath: str) -> Path:
        p = self.path(relpath)
        return p.with_name(p.name + ".meta.json")

    def get(self, relpath: str) -> CachedFile | None:
        """The cached file if present and its bytes still match the recorded sha256."""
        p, m = self.path(relpath), self.meta_path(relpath)
        if not (p.exists() and m.exists()):
            return None
        try:
            meta = json.loads(m.read_text())
        except (OSError, ValueError):
            return None
        if sha256_file(p) != meta.get("sha256"):
            return None
        return CachedFile(p, meta["sha256"], meta)

    def put(self, relpath: str, data: bytes, **meta: Any) -> CachedFile:
        p = self.path(relpath)
        digest = hashlib.sha256(data).hexdigest()
        atomic_write_bytes(p, data)
        full = {"sha256": digest, "bytes": len(data), **_meta(meta)}
        atomic_write_bytes(
            self.meta_path(relpath), (json.dumps(full, sort_keys=True, indent=1) + "\n").encode()
        )
        return CachedFile(p, digest, full)

    def put_file(self, relpath: str, tmp: Path, *, digest: str | None = None, **meta: Any) -> CachedFile:
        """Move an already-downloaded temporary file into the cache under its final name. `digest`: its
        sha256 when the download computed it from the bytes it wrote (else it is read back)."""
        p = self.path(relpath)
        p.parent.mkdir(parents=True, exist_ok=True)
        digest = digest or sha256_file(tmp)
        os.replace(tmp, p)
        full = {"sha256": digest, "bytes": p.stat().st_size, **_meta(meta)}
        atomic_write_bytes(
            self.meta_path(relpath), (json.dumps(full, sort_keys=True, indent=1) + "\n").encode()
        )
        return CachedFile(p, digest, full)

    def temp_path(self, relpath: str) -> Path:
        p = self.path(relpath)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p.with_name(f"{p.name}{TMP_MARK}{os.getpid()}")


def _meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A sidecar's fields, a URL among them without its credentials (`without_userinfo`)."""
    return {k: without_userinfo(v) if k == "url" and isinstance(v, str) else v for k, v in meta.items()}


def bar_period(interval: str, ts: dt.datetime) -> str:
    """The `period` partition of a bar: its UTC month (YYYY-MM) for intraday bars, its year for daily ones."""
    ts = ts.astimezone(dt.UTC)
    return (
        f"{ts.year:04d}"
        if interval_delta(interval) >= dt.timedelta(days=1)
        else f"{ts.year:04d}-{ts.month:02d}"
    )


OHLCV = ("open", "high", "low", "close", "volume")


INT64_MAX = 2**63 - 1
"""The largest trade count a bar can hold (the lake stores counts as int64)."""


def count_problem(name: str, text: str) -> str | None:
    """Why a bar's trade count as the vendor wrote it (`text`, stripped) cannot be stored, or None: a
    whole non-negative number no larger than int64 holds. Shared by every source (a count too large for
    the lake is a bad row for quarantine, not a crash that loses the file's good rows)."""
    if not text.isascii() or not text.isdigit():
        return f"{name} {text!r} is not a non-negative integer"
    if int(text) > INT64_MAX:
        return f"{name} {text!r} is out of range (more than {INT64_MAX})"
    return None


def ohlcv_problem(values: Sequence[float], shown: Sequence[str] | None = None) -> str | None:
    """Why a bar's (open, high, low, close, volume) cannot be what traded, or None if it can.

    Every value finite, low > 0, high >= max(open, close), low <= min(open, close), volume >= 0. `shown`
    is the values as the vendor wrote them (quoted in the reason); by default their repr. Shared by every
    source so that one rule decides what lands and what goes to bars_rejected."""
    o, h, lo, c, v = values
    text = list(shown) if shown is not None else [repr(x) for x in values]
    for name, x, t in zip(OHLCV, values, text, strict=True):
        if not math.isfinite(x):
            return f"{name} {t} is not finite"
    if lo <= 0:
        return f"low {text[2]} is not positive"
    if h < lo:
        return f"high {text[1]} < low {text[2]}"
    if h < max(o, c):
        return f"high {text[1]} is below open {text[0]} or close {text[3]}"
    if lo > min(o, c):
        return f"low {text[2]} is above open {text[0]} or close {text[3]}"
    if v < 0:
        return f"volume {text[4]} is negative"
    return None


@contextmanager
def progress_bar(ctx: RunContext, label: str, total: int, unit: str) -> Iterator[Callable[[bool], None]]:
    """A progress bar on the run's console (none with --quiet): `step(ok)` advances it by one piece,
    counting a failed piece as failed, not as done."""
    progress = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=ctx.console,
        disable=ctx.quiet,
        transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total, failed=0)
        failed = 0

        def step(ok: bool = True) -> None:
            nonlocal failed
            failed += 0 if ok else 1
            progress.update(task, advance=1, failed=failed)

        yield step


# --- landing one source file's rows (Polygon, Yahoo, CSV) -----------------------------------------------


def dataset_table(
    dataset: Dataset, rows: Sequence[Mapping[str, Any]] | pa.Table, extra: Mapping[str, Any]
) -> pa.Table:
    """A table of `dataset`'s columns from row dicts or from a table, with the columns of `extra` set to
    one value."""
    if isinstance(rows, pa.Table):
        n = rows.num_rows
        names = set(rows.column_names)
        cols: dict[str, pa.Array | pa.ChunkedArray] = {}
        for f in dataset.schema:
            if f.name in extra:
                cols[f.name] = pa.repeat(pa.scalar(extra[f.name], type=f.type), n)
            elif f.name in names:
                col = rows.column(f.name)
                cols[f.name] = col if col.type == f.type else col.cast(f.type)
            else:
                cols[f.name] = pa.nulls(n, type=f.type)
        return pa.Table.from_arrays(list(cols.values()), schema=dataset.schema)  # the writer checks nulls
    cols = {}
    for f in dataset.schema:
        values = [extra[f.name] if f.name in extra else r.get(f.name) for r in rows]
        cols[f.name] = pa.array(values, type=UTC_TS if f.type == UTC_TS else f.type)
    return pa.table(cols)


def replace_file_rows(
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
    republished file replaces its day. A partition whose data file is missing or does not match its
    manifest is started afresh (neither its file nor its manifest's inputs are trusted): the day files that
    fed it land again when their days are ingested (polygon's `_broken_or_short`). Returns whether the
    partition changed (`replace_file_rows_result`: the write's result, with the rows new to the lake)."""
    result = replace_file_rows_result(
        w, dataset, partition, source_file, incoming, the_input, only_symbols=only_symbols
    )
    return result is not None and result.changed


def replace_file_rows_result(
    w: LakeWriter,
    dataset: Dataset,
    partition: dict[str, str],
    source_file: str,
    incoming: pa.Table,
    the_input: dict[str, Any],
    *,
    only_symbols: set[str] | None = None,
) -> WriteResult | None:
    """`replace_file_rows`, returning the writer's result (its `rows_added`: rows new to the lake), or None
    when nothing was to be written."""
    target_dir = partition_dir(w.paths, dataset, partition)
    got = _replacement(dataset, target_dir, source_file, incoming, the_input, only_symbols)
    if got is None:
        return None
    table, inputs = got
    return w.write(dataset, partition, table, mode="replace", inputs=inputs)


def replace_file_rows_many(
    w: LakeWriter,
    dataset: Dataset,
    writes: Sequence[tuple[dict[str, str], pa.Table]],
    source_file: str,
    the_input: dict[str, Any],
    *,
    threads: int = 8,
) -> list[int]:
    """`replace_file_rows` for each (partition, incoming) of `writes` (distinct partitions), written
    `threads` at a time (`LakeWriter.write_many`). The partitions that exist already are read `threads`
    at a time first (a new one needs nothing read). Returns the rows new to the lake of each partition
    (`WriteResult.rows_added`; 0 when nothing was written)."""

    dirs = [partition_dir(w.paths, dataset, p) for p, _ in writes]

    def decide(i: int) -> tuple[pa.Table, list[dict[str, Any]]] | None:
        return _replacement(dataset, dirs[i], source_file, writes[i][1], the_input, None)

    there = [os.path.isdir(d) for d in dirs]
    decided = [None if t else _fresh(dataset, writes[i][1], the_input) for i, t in enumerate(there)]
    old = [i for i, t in enumerate(there) if t]
    if len(old) > 1 and threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            for i, got in zip(old, pool.map(decide, old), strict=True):
                decided[i] = got
    else:
        for i in old:
            decided[i] = decide(i)
    todo = [i for i, got in enumerate(decided) if got is not None]
    results = w.write_many(
        dataset,
        [(writes[i][0], *decided[i]) for i in todo],  # type: ignore[misc]
        mode="replace",
        threads=threads,
    )
    added = [0] * len(writes)
    for i, r in zip(todo, results, strict=True):
        added[i] = r.rows_added
    return added


def _fresh(
    dataset: Dataset, incoming: pa.Table, the_input: dict[str, Any]
) -> tuple[pa.Table, list[dict[str, Any]]] | None:
    """`_replacement` for a partition whose folder does not exist (no file, no manifest to read)."""
    if incoming.num_rows == 0:
        return None
    if incoming.column_names != dataset.schema.names:
        incoming = incoming.select(dataset.schema.names)
    return (incoming if incoming.schema == dataset.schema else incoming.cast(dataset.schema)), [the_input]


def _replacement(
    dataset: Dataset,
    target_dir: Path,
    source_file: str,
    incoming: pa.Table,
    the_input: dict[str, Any],
    only_symbols: set[str] | None,
) -> tuple[pa.Table, list[dict[str, Any]]] | None:
    """What `replace_file_rows` writes: the partition's rows and its manifest's inputs, or None when
    nothing is to be written (no rows and nothing there)."""
    target = target_dir / "data.parquet"
    intact = partition_intact(target_dir)
    parts = []
    if target.exists() and intact:
        existing = read_partition(target, dataset)
        keep = pc.fill_null(pc.not_equal(existing.column("source_file"), source_file), True)
        if only_symbols is not None:
            others = pc.invert(pc.is_in(existing.column("symbol"), value_set=pa.array(sorted(only_symbols))))
            keep = pc.or_(keep, others)
        parts.append(existing.filter(keep))
    elif incoming.num_rows == 0 and intact:
        return None
    if incoming.column_names != dataset.schema.names:
        incoming = incoming.select(dataset.schema.names)
    parts.append(incoming if incoming.schema == dataset.schema else incoming.cast(dataset.schema))
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    previous = manifest_inputs(target_dir) if intact else []
    inputs = [i for i in previous if i.get("file") != source_file]
    if incoming.num_rows:
        inputs.append(the_input)
    return table, inputs

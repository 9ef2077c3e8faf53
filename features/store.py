"""The feature store: the `features` view materialised in the lake, rebuilt only where its inputs changed.

Layout: dataset `features` (lake.schemas.FEATURES), one partition `interval=I/symbol=S/year=Y` per
interval, symbol and UTC year of ts, written through the lake writer (atomic, with a manifest), rows in ts
order, uncompressed, in row groups of 8,192 rows (lake.schemas.FEATURES: a period's reader skips the other
groups by their ts statistics, rl/episodes.py). Readers query the view `features_store` (same columns,
same rows as `features`).

Chunks: the work is done in batches of (symbol, interval) chunks of one interval, so memory is bounded by
a batch, whatever the number of chunks. A chunk of more than piece_rows stored bars (DEFAULT_PIECE_ROWS) is
computed in pieces of at most that many rows, each inside one UTC year, and written a year at a time
(`_compute_pieces`): a piece reads its bars from MARGIN_ROWS rows of the pair before its own, so that its
windows are the whole pair's, and its segment numbers are carried over from the rows before it; the rows
are the view's (tests check it). So one pair takes the memory of a year of its rows, not of all of them
(a 1m pair of 1.6M bars built in 725 MiB, of 3.2M bars in 770 MiB; 1,117-1,196 MiB replacing a store
already built, whose files the writer reads to compare; computed whole they took 1,410 and 2,110 MiB). A
batch is computed on a connection that sees only its inputs: its
`lake_bars` and `lake_news` read a private folder of links to the input partitions (the symbols' bars of
every source, and the news of the symbols and of SPY and QQQ). Every other dataset (trading_sessions, ...)
is the lake's own. `features` has no dependency across symbols other than SPY and QQQ (market_context):
their bar_features rows are computed once per interval from their own bars (sql/store/market_begin.sql).
bars, news_running and bar_features_priced are the views of sql/views; the as-of joins of bar_news and
market_context are made through per-instant timelines (sql/store/news_timeline.sql, market_timeline.sql),
each bar taking its timeline row by a binary search of the timeline's sorted instants (sql/store/
features_chunk.sql says why): the same values by cheaper joins; tests check the store against the
`features` view.

Freshness: each partition's manifest records, in its inputs, a fingerprint of the chunk's inputs: the
sha256 (from their manifests), size and mtime of every input data file (the symbol's bars, SPY's and
QQQ's of the interval, the news of the three), the trading_sessions partitions, the settings the views
read, the text of every view (sql/views) and of the store's own SQL (sql/store), and STORE_VERSION; and
the years the chunk holds. A chunk is fresh (`Chunk.fresh`) when the years stored are exactly those, each
with the current fingerprint, and each store file is of its manifest's size: a refresh stopped part way
(a full disk, Ctrl-C, a kill), a year folder deleted or a store file changed by hand, or a bars file
replaced outside the writer all leave it stale. A chunk computed with no rows records its fingerprint in
a marker partition (MARKER_YEAR). A refresh rebuilds exactly the chunks that are not fresh, and empties
the partitions of chunks whose bars are gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.config import Settings
from lake.connect import private_workdir, register_views, sql_dir, view_files, views_needed
from lake.errors import MarketlakeError, is_interrupt, repair_advice
from lake.paths import SCHEMA_ANCHOR, LakePaths, resolve_lake_root
from lake.schemas import FEATURES
from lake.writer import DATA_FILE, MANIFEST_FILE, LakeWriter, anchor_dir, sha256_file, verify, write_anchor

STORE_VERSION = 8
"""Bumped whenever the way a chunk is computed or stored changes: every chunk is then rebuilt (8: each
partition's manifest records the years its pair holds beside the fingerprint, and `Chunk.fresh` requires
them; the fingerprint holds each input file's size and mtime; a pair with no rows has its marker
partition: a store of 7 records no years, so none of its pairs would be fresh; 7: SPY/QQQ
bars stale after one bar of the interval plus max_gap_minutes; 4: row groups
of 8,192 rows, uncompressed; the writer rewrites a file of another layout even when its rows are the same;
5: the as-of joins through the chunk's timelines, sql/store/features_chunk.sql; 6: the timelines looked up
by a binary search, sql/store/news_timeline.sql and market_timeline.sql)."""
MARKET_SYMBOLS = ("SPY", "QQQ")
"""Symbols whose bars and news every chunk of the interval reads (market_context)."""
IRRELEVANT_SETTINGS = frozenset(
    {
        "min_bars_per_symbol",
        "max_missing_ratio",
        "split_method",
        "train_fraction",
        "validation_fraction",
        "train_end",
        "validation_end",
        "embargo_days",
        "embargo_bars",
    }
)
"""Settings of lake_settings that no view of the features chain reads (eligibility and splits): a change
to them rebuilds nothing. Every other setting is in the fingerprint, so a new one is safe by default."""
DEFAULT_MEMORY_LIMIT = "640MB"
DEFAULT_BATCH_ROWS = 400_000
"""Stored bars per batch: several symbols of one interval are computed together (their windows run in
parallel), up to this many rows; DuckDB spills what does not fit in memory_limit. A batch's rows are held
in Arrow (about 420 bytes a row) from the query until they are written, and one batch is written while the
next is computed: two batches in Arrow beside DuckDB's memory_limit bound peak memory, whatever the number
of chunks (about 800 MiB measured on 2M bars; 850-900 MiB with a batch's partitions encoded by WRITE_THREADS
workers, each holding the copy of one partition that the writer conforms). A chunk larger than a batch is
computed in pieces (DEFAULT_PIECE_ROWS), its years written one at a time."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class Chunk:
    """One (symbol, interval) of the store, with its current fingerprint and what the store holds."""

    symbol: str
    interval: str
    fingerprint: str
    """Of the inputs in the lake now; '' when the symbol has no bars of this interval any more."""
    stored: Mapping[str, str]
    """year -> fingerprint recorded in that partition's manifest, for every partition that holds rows (or
    may: a data file without a manifest, or not of the size its manifest says); '' if none or not to be
    trusted."""
    held: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """year -> the years the pair held when that partition was written (recorded beside the fingerprint)."""
    empty: frozenset[str] = frozenset()
    """Fingerprints recorded by the pair's marker partition (MARKER_YEAR, no rows): computed with no rows."""

    @property
    def fresh(self) -> bool:
        """Every year the pair should hold is there, written with the current fingerprint, and no other: each
        stored partition's fingerprint is the current one and the years it records are exactly the stored
        ones (a refresh stopped part way, or a year folder deleted by hand, leaves them unequal); a pair
        computed with no rows has its marker with the current fingerprint."""
        if not self.fingerprint:
            return not self.stored
        if not self.stored:
            return self.fingerprint in self.empty
        years = frozenset(self.stored)
        return all(fp == self.fingerprint and self.held.get(y) == years for y, fp in self.stored.items())


@dataclass
class RefreshResult:
    built: list[tuple[str, str]] = field(default_factory=list)
    """(symbol, interval) chunks recomputed."""
    fresh: list[tuple[str, str]] = field(default_factory=list)
    """Chunks already up to date (not recomputed)."""
    removed: list[tuple[str, str]] = field(default_factory=list)
    """Chunks whose bars are gone: their partitions emptied."""
    rows: int = 0
    """Rows written by this refresh."""
    partitions_changed: int = 0
    seconds: float = 0.0


def _quiet(_: str) -> None:
    return None


# --- fingerprints ----------------------------------------------------------------------------------------


def _part_values(rel: Path) -> dict[str, str]:
    return dict(p.split("=", 1) for p in rel.parts if "=" in p)


def _partition_sha(data_file: Path) -> str:
    """The partition's sha256 from its manifest (the writer keeps it), or of the file itself."""
    return _partition_info(data_file)[0]


def _file_stamp(data_file: Path) -> str:
    """The file's size and mtime (ns): what the fingerprint records beside its manifest's sha256, so that a
    file replaced outside the writer (its manifest unchanged) changes the fingerprint. The writer never
    rewrites a file whose rows do not change, so an unchanged lake keeps its stamps; a lake copied without
    its files' mtimes is rebuilt once."""
    try:
        st = data_file.stat()
    except OSError:
        return "missing"
    return f"{st.st_size} {st.st_mtime_ns}"


def _input_stamp(data_file: Path) -> str:
    """A data file's identity in the fingerprint: its sha256 (manifest) and `_file_stamp`."""
    return f"{_partition_sha(data_file)} {_file_stamp(data_file)}"


def _partition_info(data_file: Path) -> tuple[str, int]:
    """(sha256, rows) of a partition from its manifest; without one, the file's sha256 and 0 rows."""
    manifest = data_file.parent / MANIFEST_FILE
    try:
        m = json.loads(manifest.read_text())
        sha = m.get("sha256")
        if isinstance(sha, str) and sha:
            return sha, int(m.get("rows", 0))
    except (OSError, ValueError, TypeError):
        pass
    return sha256_file(data_file), 0


@dataclass
class _Inputs:
    """The lake's input partitions, read once per refresh."""

    bars: dict[tuple[str, str], list[tuple[Path, str]]]
    """(interval, symbol) -> [(data file, its stamp: sha256, size, mtime)] over every source and period."""
    rows: dict[tuple[str, str], int]
    """(interval, symbol) -> stored bar rows (from the manifests), to size the batches."""
    news: dict[str, list[tuple[Path, str]]]
    common: str
    """Hash of what every chunk reads: trading_sessions, settings, view and store SQL texts, STORE_VERSION."""

    @classmethod
    def scan(cls, paths: LakePaths, settings: Settings) -> _Inputs:
        bars: dict[tuple[str, str], list[tuple[Path, str]]] = defaultdict(list)
        rows: dict[tuple[str, str], int] = defaultdict(int)
        base = paths.dataset("bars")
        if base.exists():
            for f in sorted(base.glob(f"source=*/interval=*/symbol=*/period=*/{DATA_FILE}")):
                v = _part_values(f.relative_to(base))
                if SCHEMA_ANCHOR in v.values():
                    continue
                sha, n = _partition_info(f)
                bars[(v["interval"], v["symbol"])].append((f, f"{sha} {_file_stamp(f)}"))
                rows[(v["interval"], v["symbol"])] += n
        news: dict[str, list[tuple[Path, str]]] = defaultdict(list)
        nbase = paths.dataset("news")
        if nbase.exists():
            for f in sorted(nbase.glob(f"symbol=*/{DATA_FILE}")):
                v = _part_values(f.relative_to(nbase))
                if v["symbol"] != SCHEMA_ANCHOR:
                    news[v["symbol"]].append((f, _input_stamp(f)))
        h = hashlib.sha256()
        h.update(f"store {STORE_VERSION}\n".encode())
        sbase = paths.dataset("trading_sessions")
        if sbase.exists():
            for f in sorted(sbase.glob(f"*/*/{DATA_FILE}")):
                if SCHEMA_ANCHOR not in str(f.relative_to(sbase)):
                    h.update(f"sessions {f.relative_to(sbase)} {_input_stamp(f)}\n".encode())
        relevant = {k: v for k, v in settings.sql_settings().items() if k not in IRRELEVANT_SETTINGS}
        h.update(("settings " + json.dumps(relevant, sort_keys=True, default=str) + "\n").encode())
        for name, path in view_files():
            h.update(f"view {name} ".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
        for path in sorted((sql_dir() / "store").glob("*.sql")):
            h.update(f"store sql {path.name} ".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
        return cls(bars=dict(bars), rows=dict(rows), news=dict(news), common=h.hexdigest())

    def chunk_symbols(self, *symbols: str) -> list[str]:
        return [*symbols, *(m for m in MARKET_SYMBOLS if m not in symbols)]

    def bar_files(self, interval: str, *symbols: str) -> list[tuple[Path, str]]:
        """The bars a chunk of these symbols reads: their own and SPY's and QQQ's (the fingerprint's)."""
        return self.own_bar_files(interval, *self.chunk_symbols(*symbols))

    def own_bar_files(self, interval: str, *symbols: str) -> list[tuple[Path, str]]:
        out: list[tuple[Path, str]] = []
        for s in symbols:
            out.extend(self.bars.get((interval, s), []))
        return out

    def news_files(self, *symbols: str) -> list[tuple[Path, str]]:
        out: list[tuple[Path, str]] = []
        for s in self.chunk_symbols(*symbols):
            out.extend(self.news.get(s, []))
        return out

    def fingerprint(self, paths: LakePaths, symbol: str, interval: str) -> str:
        if (interval, symbol) not in self.bars:
            return ""
        h = hashlib.sha256()
        h.update(f"{self.common}\nchunk {symbol} {interval}\n".encode())
        for f, sha in self.bar_files(interval, symbol):
            h.update(f"bars {f.relative_to(paths.datasets)} {sha}\n".encode())
        for f, sha in self.news_files(symbol):
            h.update(f"news {f.relative_to(paths.datasets)} {sha}\n".encode())
        return h.hexdigest()


MARKER_YEAR = "none"
"""The partition (`year=none`, no rows) that records the fingerprint of a pair computed with no rows (bars,
but none the features keep: a stock with only pre-market bars under session = "regular"), so that it is
fresh once built. Its file holds no rows: the views and rl/episodes.py (which reads numeric years) see
nothing of it."""


@dataclass
class _Held:
    """What the store holds of one (symbol, interval): `Chunk.stored`, `Chunk.held`, `Chunk.empty`."""

    stored: dict[str, str] = field(default_factory=dict)
    held: dict[str, frozenset[str]] = field(default_factory=dict)
    empty: set[str] = field(default_factory=set)


def _stored(paths: LakePaths) -> dict[tuple[str, str], _Held]:
    """(interval, symbol) -> what the store's partitions of it record. A partition holds rows when its data
    file does and its manifest says so; a data file without a readable manifest, or whose size is not the
    manifest's `bytes` (changed by hand), may hold anything: recorded with fingerprint ''. A partition
    without a data file holds nothing (the views read nothing of it)."""
    out: dict[tuple[str, str], _Held] = defaultdict(_Held)
    base = paths.dataset(FEATURES.name)
    if not base.exists():
        return {}
    for d in sorted(base.glob("interval=*/symbol=*/year=*")):
        v = _part_values(d.relative_to(base))
        if SCHEMA_ANCHOR in v.values() or not d.is_dir():
            continue
        try:
            size = (d / DATA_FILE).stat().st_size
        except OSError:
            continue  # no data file: nothing the views read
        try:
            manifest = json.loads((d / MANIFEST_FILE).read_text())
        except (OSError, ValueError):
            manifest = None
        held = out[(v["interval"], v["symbol"])]
        if not isinstance(manifest, dict) or manifest.get("bytes") != size:
            held.stored[v["year"]] = ""
            continue
        records = [i for i in manifest.get("inputs", []) if isinstance(i, dict)]
        record = records[0] if len(records) == 1 else {}
        fp, years = record.get("fingerprint", ""), record.get("years")
        if manifest.get("rows", 0) == 0:
            if years == [] and isinstance(fp, str) and fp:
                held.empty.add(fp)  # the marker of a pair computed with no rows
            continue  # an emptied partition: holds nothing
        held.stored[v["year"]] = fp if isinstance(fp, str) else ""
        if isinstance(years, list):
            held.held[v["year"]] = frozenset(str(y) for y in years)
    return dict(out)


def _chunks(
    paths: LakePaths,
    inputs: _Inputs,
    symbols: Iterable[str] | None,
    intervals: Iterable[str] | None,
) -> list[Chunk]:
    """Every (symbol, interval) with bars in the lake or rows in the store (of `symbols` and `intervals`
    when given), with its current fingerprint and what the store records of it."""
    stored = _stored(paths)
    want_s = set(symbols) if symbols is not None else None
    want_i = set(intervals) if intervals is not None else None
    chunks = []
    for interval, symbol in sorted(set(inputs.bars) | {k for k, h in stored.items() if h.stored}):
        if (want_s is not None and symbol not in want_s) or (want_i is not None and interval not in want_i):
            continue
        held = stored.get((interval, symbol), _Held())
        chunks.append(
            Chunk(
                symbol=symbol,
                interval=interval,
                fingerprint=inputs.fingerprint(paths, symbol, interval),
                stored=held.stored,
                held=held.held,
                empty=frozenset(held.empty),
            )
        )
    return chunks


def plan(
    root: str | os.PathLike[str] | None,
    settings: Settings,
    *,
    symbols: Iterable[str] | None = None,
    intervals: Iterable[str] | None = None,
) -> list[Chunk]:
    """Every (symbol, interval) in the lake's bars or in the store, with its current and stored
    fingerprints; `Chunk.fresh` says whether the store holds the view's rows for it."""
    paths = LakePaths(resolve_lake_root(root))
    return _chunks(paths, _Inputs.scan(paths, settings), symbols, intervals)


def stale(root: str | os.PathLike[str] | None, settings: Settings) -> list[tuple[str, str]]:
    """(symbol, interval) pairs whose stored features are missing or out of date."""
    return [(c.symbol, c.interval) for c in plan(root, settings) if not c.fresh]


# --- building --------------------------------------------------------------------------------------------


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


@contextmanager
def _chunk_view(
    paths: LakePaths, inputs: _Inputs, symbols: list[str], interval: str, work: Path
) -> Iterator[tuple[Path, Path]]:
    """A private folder per dataset holding links to the batch's input partitions (and the datasets'
    empty schema anchors, so that the views are typed even with no news): the bars of `symbols` only (SPY's
    and QQQ's features are computed once per interval, `_market_features`), the news of `symbols` and of
    SPY and QQQ."""
    d = Path(tempfile.mkdtemp(prefix="chunk-", dir=work))
    bars_dir, news_dir = d / "bars", d / "news"
    try:
        anchor = paths.dataset("bars") / "/".join(
            f"{k}={SCHEMA_ANCHOR}" for k in ("source", "interval", "symbol", "period")
        )
        _link(anchor / DATA_FILE, bars_dir / anchor.relative_to(paths.dataset("bars")) / DATA_FILE)
        for f, _ in inputs.own_bar_files(interval, *symbols):
            _link(f, bars_dir / f.relative_to(paths.dataset("bars")))
        news_anchor = paths.dataset("news") / f"symbol={SCHEMA_ANCHOR}" / DATA_FILE
        _link(news_anchor, news_dir / news_anchor.relative_to(paths.dataset("news")))
        for f, _ in inputs.news_files(*symbols):
            _link(f, news_dir / f.relative_to(paths.dataset("news")))
        yield bars_dir, news_dir
    finally:
        for p in sorted(d.rglob("*"), reverse=True):
            if p.is_symlink() or p.is_file():
                p.unlink()
            else:
                p.rmdir()
        d.rmdir()


def _connection(root: Path, settings: Settings, memory_limit: str, work: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = ?", [memory_limit])
    con.execute("SET temp_directory = ?", [str(work / "spill")])
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    # only the views the store's statements need: registering all of them is most of a connection's cost
    statements = (p.read_text(encoding="utf-8") for p in sorted((sql_dir() / "store").glob("*.sql")))
    register_views(con, root, settings, views_needed(statements), mirror=False)
    return con


def _store_sql(name: str) -> str:
    return (sql_dir() / "store" / f"{name}.sql").read_text(encoding="utf-8")


NEWS_COLUMNS = (
    "last_news_at",
    "sentiment_last",
    "news_count_1h",
    "news_count_1d",
    "sentiment_mean_1h",
    "sentiment_mean_1d",
)
"""bar_news' columns of the store, as sql/store/news_timeline.sql holds them per instant."""
NEWS_COUNTS = ("news_count_1h", "news_count_1d")
"""0, not NULL, for a bar with no timeline row before it (no article yet)."""
MARKET_COLUMNS = tuple(
    f"{m}_{c}"
    for m in ("spy", "qqq")
    for c in ("available_at", "log_ret_1", "sentiment_last", "news_count_1d", "sentiment_mean_1d")
)
"""market_context's columns, as sql/store/market_context_bars.sql computes them per bar."""


def _arrow(con: duckdb.DuckDBPyConnection, name: str) -> pa.Table:
    """The rows of the store's query `name` (no parameters), fetched through a relation: its Arrow result is
    collected in parallel by the query's threads (a prepared statement's result is converted by one)."""
    return con.sql(_store_sql(name).rstrip().rstrip(";")).to_arrow_table()


def _market_features(
    con: duckdb.DuckDBPyConnection, paths: LakePaths, inputs: _Inputs, interval: str, work: Path
) -> pa.Table:
    """SPY's and QQQ's bar_features rows of `interval` into the temporary table every batch of the interval
    reads (sql/store/market_begin.sql), computed from their own bars; returns the interval's market
    timeline (sql/store/market_timeline.sql), in order of its instants."""
    with _chunk_view(paths, inputs, list(MARKET_SYMBOLS), interval, work) as (bars_dir, news_dir):
        con.execute("SET VARIABLE dataset_bars = ?", [str(bars_dir)])
        con.execute("SET VARIABLE dataset_news = ?", [str(news_dir)])
        con.execute(_store_sql("market_begin"), [interval])
        return con.execute(_store_sql("market_timeline"), [interval]).to_arrow_table()


def _micros(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column without nulls as int64 microseconds (the lake's unit)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return np.asarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """table's rows at `rows`, a NULL row where rows < 0."""
    if table.num_rows == 0:
        return pa.table({n: pa.nulls(len(rows), table.schema.field(n).type) for n in table.column_names})
    return table.take(pa.array(rows, mask=rows < 0))


def _news_columns(
    timeline: pa.Table, ranges: Mapping[str, tuple[int, int]], available: np.ndarray
) -> pa.Table:
    """bar_news' columns of the batch's bars (in the order of `available`, their available_at in µs; `ranges`:
    symbol -> its bars' slice): per bar, the row of its symbol's news timeline (sql/store/news_timeline.sql,
    in order of symbol then instant e) with the greatest e strictly before its available_at; a bar with none
    has no article yet (counts 0, the rest NULL)."""
    rows = np.full(len(available), -1, dtype=np.int64)
    if timeline.num_rows:
        sym = pc.dictionary_encode(timeline.column("symbol")).combine_chunks()
        codes = sym.indices.to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
        ends = np.concatenate([starts[1:], [len(codes)]])
        names = sym.dictionary.to_pylist()
        e = _micros(timeline.column("e"))
        for lo, hi in zip(starts, ends, strict=True):
            span = ranges.get(str(names[codes[lo]]))
            if span is None:
                continue
            a, b = span
            before = np.searchsorted(e[lo:hi], available[a:b], side="left")  # instants e < available_at
            rows[a:b] = np.where(before > 0, lo + before - 1, -1)
    taken = _take(timeline.select(list(NEWS_COLUMNS)), rows)
    for name in NEWS_COUNTS:
        i = taken.schema.get_field_index(name)
        taken = taken.set_column(i, name, pc.fill_null(taken.column(name), 0))
    return taken


def _market_columns(
    con: duckdb.DuckDBPyConnection, timeline: pa.Table, available_at: pa.ChunkedArray, available: np.ndarray
) -> pa.Table:
    """market_context's columns of the batch's bars (in the order of `available_at`): per bar, the row of the
    interval's market timeline (sql/store/market_timeline.sql) with the greatest instant e at or before its
    available_at, then the rules that depend on the bar's own available_at (sql/store/market_context_bars.sql).
    With no timeline (neither SPY nor QQQ in the lake) every column is NULL, as the view's."""
    n = len(available)
    if timeline.num_rows == 0:
        return pa.table({c: pa.nulls(n, FEATURES.schema.field(c).type) for c in MARKET_COLUMNS})
    e = _micros(timeline.column("e"))
    at_or_before = np.searchsorted(e, available, side="right")
    rows = _take(timeline.drop_columns(["e"]), np.where(at_or_before > 0, at_or_before - 1, -1))
    rows = rows.append_column("available_at", available_at).append_column("pos", pa.array(np.arange(n)))
    con.register("chunk_market_rows", rows)
    try:
        out = _arrow(con, "market_context_bars")
    finally:
        con.unregister("chunk_market_rows")
    pos = out.column("pos").to_numpy()
    if not bool(np.all(pos[1:] > pos[:-1])):  # the query keeps no order: back to the bars'
        out = out.take(np.argsort(pos, kind="stable"))
    return out.drop_columns(["pos"])


@dataclass
class _Computed:
    """One batch computed (`_compute_batch`), its partitions not written yet; or one year of a large pair
    (`_compute_pieces`)."""

    batch: list[Chunk]
    table: pa.Table
    """The batch's rows in the store's columns, in order of symbol, year and ts."""
    parts: dict[str, dict[int, tuple[int, int]]]
    """symbol -> year -> the slice of `table` that is the partition's rows."""
    years: dict[str, list[int]] | None = None
    """symbol -> every year the pair holds, when `parts` holds only some of them (a large pair's years are
    written one at a time, each partition's manifest recording them all)."""
    last: bool = True
    """The pair's last write: then the years it no longer holds are emptied (or its marker written)."""
    margin: int = 0
    """A piece's look-back rows found before its own rows (dropped from `table`)."""


@dataclass(frozen=True)
class _Piece:
    """The bars one piece of a large pair reads, [read_from, read_to) in µs of ts, and the first of its own
    rows (keep_from): those before are its look-back margin."""

    read_from: int
    keep_from: int
    read_to: int


def _compute_batch(
    con: duckdb.DuckDBPyConnection,
    batch: list[Chunk],
    bars_dir: Path,
    news_dir: Path,
    market: pa.Table,
    held_once: bool = False,
    piece: _Piece | None = None,
) -> _Computed:
    """The rows of one batch (chunks of one interval) in the store's columns. `market`: the interval's market
    timeline (`_market_features`). `held_once`: the batch's bar keys are known to be held once
    (`_files_hold_keys_once`); else sql/store/bars_held_once.sql decides. With `piece` (one chunk): only the
    bars of its range are read, and only its own rows kept (`_Computed.margin`: how many were before them);
    segment_no and segment_pos are then those of the range read, which `_compute_pieces` corrects."""
    interval = batch[0].interval
    symbols = [c.symbol for c in batch]
    _batch_variables(con, bars_dir, news_dir, interval, symbols)
    con.execute(_store_sql("chunk_begin"))
    try:
        held_once = held_once or _bars_held_once(con)
        if piece is not None:
            # TIMESTAMPTZ from µs, whatever the session's time zone (an interval of µs only)
            con.execute(
                "SET VARIABLE piece_from = to_timestamp(0) + to_microseconds(?::BIGINT)", [piece.read_from]
            )
            con.execute(
                "SET VARIABLE piece_to = to_timestamp(0) + to_microseconds(?::BIGINT)", [piece.read_to]
            )
            con.execute(_store_sql("piece_bars" if held_once else "piece_bars_ranked"))
        elif held_once:
            con.execute(_store_sql("chunk_bars"))
        table = _arrow(con, "features_chunk")
        news = _arrow(con, "news_timeline")
    finally:
        con.execute(_store_sql("chunk_end"))
    margin = 0
    if piece is not None:
        own = pc.greater_equal(table.column("ts").cast(pa.int64()), pa.scalar(piece.keep_from, pa.int64()))
        margin = table.num_rows - pc.sum(own.cast(pa.int64())).as_py() if table.num_rows else 0
        table = table.filter(own)
    # rows come in no particular order (no sort of the wide rows in DuckDB): grouped here by symbol and
    # year, and ordered by ts (a sort of the row numbers), then put in that order once: each partition is
    # a slice
    order, parts = _partition_rows(table)
    table = _in_order(table, order)
    available = _micros(table.column("available_at"))
    ranges = {s: (min(a for a, _ in ys.values()), max(b for _, b in ys.values())) for s, ys in parts.items()}
    extra = _news_columns(news, ranges, available)
    market_cols = _market_columns(con, market, table.column("available_at"), available)
    columns = {
        **{n: table.column(n) for n in table.column_names if n not in ("symbol", "year")},
        **{n: extra.column(n) for n in extra.column_names},
        **{n: market_cols.column(n) for n in market_cols.column_names},
    }
    return _Computed(batch, pa.table({n: columns[n] for n in FEATURES.schema.names}), parts, margin=margin)


def _batch_variables(
    con: duckdb.DuckDBPyConnection, bars_dir: Path, news_dir: Path, interval: str, symbols: list[str]
) -> None:
    con.execute("SET VARIABLE dataset_bars = ?", [str(bars_dir)])
    con.execute("SET VARIABLE dataset_news = ?", [str(news_dir)])
    con.execute("SET VARIABLE chunk_interval = ?", [interval])
    con.execute("SET VARIABLE chunk_symbols = ?", [symbols])


MARGIN_ROWS = 64
"""Look-back rows a piece of a large pair reads before its own (`_compute_pieces`): every window of
sql/views/049_bar_features_priced.sql but the segment numbering reaches back at most 60 rows (lag(close, 60),
the 60 volumes before the row, the 60 returns of vol_60), so with 60 rows or more before a piece's first row
each of its windows is the one of the whole pair, and each masked feature (`segment_pos >= k`, k <= 60) is
shown in the piece where it is in the pair (a row of the margin's first segment is at least MARGIN_ROWS
into it). Rows, not time: the margin is the pair's last MARGIN_ROWS rows before the piece."""
DEFAULT_PIECE_ROWS = DEFAULT_BATCH_ROWS
"""A pair of more stored bars than this is computed in pieces of at most this many rows (`_compute_pieces`),
each inside one UTC year: one pair takes the memory of a piece in DuckDB and of a year of its rows in Arrow
(a year is written whole, while the next one is computed), not of all its rows."""


def _pieces(ts: np.ndarray, piece_rows: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """(year, its pieces as [a, b) slices of `ts`) for the sorted µs instants `ts` of a pair's rows: each UTC
    year (the store's partition) split into as few pieces of at most piece_rows rows as it needs, of equal
    size."""
    if len(ts) == 0:
        return []
    years = ts.astype("datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
    starts = np.flatnonzero(np.concatenate([[True], years[1:] != years[:-1]]))
    ends = np.concatenate([starts[1:], [len(ts)]])
    out: list[tuple[int, list[tuple[int, int]]]] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        k = -(-(b - a) // max(1, piece_rows))
        cuts = [a + (b - a) * i // k for i in range(k + 1)]
        out.append((int(years[a]), list(zip(cuts[:-1], cuts[1:], strict=True))))
    return out


def _pair_rows(
    con: duckdb.DuckDBPyConnection, chunk: Chunk, bars_dir: Path, news_dir: Path, held_once: bool
) -> np.ndarray:
    """The sorted ts (µs) of every row the pair holds (sql/store/piece_rows.sql)."""
    _batch_variables(con, bars_dir, news_dir, chunk.interval, [chunk.symbol])
    try:
        if held_once or _bars_held_once(con):
            con.execute(_store_sql("chunk_bars"))
        col = _arrow(con, "piece_rows").column("ts")
    finally:
        con.execute(_store_sql("chunk_end"))
    return np.sort(np.asarray(col.to_numpy(), dtype=np.int64))


def _compute_pieces(
    con: duckdb.DuckDBPyConnection,
    chunk: Chunk,
    bars_dir: Path,
    news_dir: Path,
    market: pa.Table,
    held_once: bool,
    piece_rows: int,
) -> Iterator[_Computed]:
    """A large pair's rows, one UTC year at a time (each `_Computed` one year, all the pair's years in
    `years`), each year computed in pieces of at most piece_rows rows (`_pieces`). A piece reads its bars
    from MARGIN_ROWS rows of the pair before its first (`_Piece`) and keeps its own rows, whose windows are
    then the pair's (MARGIN_ROWS says why). Only the segment numbering runs from the range's first row: the
    margin's first row m starts a segment there (segment_no 1, segment_pos 0), where in the pair it is in
    segment S at position P (known from the rows computed before). So each row's segment_no is the range's
    plus S - 1 (the segment starts after m are the same), and a row of the range's first segment (no start
    after m) is P rows further into its segment than the range says. warmup (segment_pos < 60) needs no
    change: such a row is at least MARGIN_ROWS >= 60 rows into the range's first segment, so past warm-up in
    the range and in the pair (and with fewer rows before the piece, m is the pair's first row: S = 1,
    P = 0)."""
    ts = _pair_rows(con, chunk, bars_dir, news_dir, held_once)
    plan = _pieces(ts, piece_rows)
    years = {chunk.symbol: [y for y, _ in plan]}
    tail_no = np.zeros(0, dtype=np.int64)  # segment_no, segment_pos of the pair's last MARGIN_ROWS rows
    tail_pos = np.zeros(0, dtype=np.int64)
    for i, (year, spans) in enumerate(plan):
        tables: list[pa.Table] = []
        for a, b in spans:
            m = max(0, a - MARGIN_ROWS)
            piece = _Piece(
                read_from=int(ts[m]),
                keep_from=int(ts[a]),
                read_to=int(ts[b]) if b < len(ts) else int(ts[-1]) + 1,
            )
            computed = _compute_batch(con, [chunk], bars_dir, news_dir, market, held_once, piece)
            table = computed.table
            if table.num_rows != b - a or computed.margin != a - m:
                raise MarketlakeError(
                    f"feature store: {chunk.symbol} {chunk.interval}: a piece from {year} holds "
                    f"{table.num_rows} rows after {computed.margin}, expected {b - a} after {a - m}"
                )
            seg_no = np.asarray(table.column("segment_no").to_numpy(), dtype=np.int64)
            seg_pos = np.asarray(table.column("segment_pos").to_numpy(), dtype=np.int64)
            if a - m:  # the margin's first row m: in the tail (the pair's rows a - len(tail) .. a - 1)
                s0, p0 = int(tail_no[len(tail_no) - (a - m)]), int(tail_pos[len(tail_pos) - (a - m)])
                seg_pos = seg_pos + np.where(seg_no == 1, p0, 0)
                seg_no = seg_no + (s0 - 1)
                for name, values in (("segment_no", seg_no), ("segment_pos", seg_pos)):
                    j = table.schema.get_field_index(name)
                    table = table.set_column(j, name, pa.array(values, type=table.schema.field(j).type))
            tail_no = np.concatenate([tail_no, seg_no])[-MARGIN_ROWS:]
            tail_pos = np.concatenate([tail_pos, seg_pos])[-MARGIN_ROWS:]
            tables.append(table)
            del computed, table
        year_table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        del tables
        yield _Computed(
            [chunk],
            year_table,
            {chunk.symbol: {year: (0, year_table.num_rows)}},
            years=years,
            last=i == len(plan) - 1,
        )
        del year_table
    if not plan:
        yield _Computed([chunk], FEATURES.schema.empty_table(), {}, years=years, last=True)


def _computations(
    con: duckdb.DuckDBPyConnection,
    batch: list[Chunk],
    bars_dir: Path,
    news_dir: Path,
    market: pa.Table,
    held_once: bool,
    rows: int,
    piece_rows: int,
) -> Iterator[_Computed]:
    """What a batch writes: the batch computed at once (`_compute_batch`), or, for a pair of more than
    piece_rows stored bars (`rows`), its years one at a time (`_compute_pieces`)."""
    if len(batch) == 1 and rows > piece_rows:
        yield from _compute_pieces(con, batch[0], bars_dir, news_dir, market, held_once, piece_rows)
    else:
        yield _compute_batch(con, batch, bars_dir, news_dir, market, held_once)


def _bars_held_once(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every (symbol, interval, ts) of the batch's stored bars is held once (sql/store/
    bars_held_once.sql): exactly, by a query over them."""
    held_once = con.execute(_store_sql("bars_held_once")).fetchone()
    return held_once is not None and bool(held_once[0])


def _files_hold_keys_once(files_by_symbol: Iterable[list[tuple[Path, str]]]) -> bool:
    """True when each symbol's bar files (of one interval) hold every ts once: each file's ts strictly rising
    without a NULL, and the files' ts ranges disjoint (so that no ts is held twice). A sufficient condition
    for sql/store/bars_held_once.sql, checked from the ts column alone, without a hash of every key: False
    means "not shown" (the query then decides), not "held twice"."""
    for files in files_by_symbol:
        spans: list[tuple[int, int]] = []
        for f, _ in files:
            try:
                col = pq.ParquetFile(f).read(columns=["ts"], use_threads=False).column("ts")
            except (OSError, pa.ArrowException, KeyError):
                return False
            if col.null_count:
                return False
            if len(col) == 0:
                continue
            try:  # microseconds, as DuckDB reads them (a finer unit that would be truncated: not shown)
                us = _micros(col.cast(pa.timestamp("us", tz="UTC")))
            except pa.ArrowException:
                return False
            if not bool(np.all(us[1:] > us[:-1])):
                return False
            spans.append((int(us[0]), int(us[-1])))
        spans.sort()
        if any(b[0] <= a[1] for a, b in zip(spans, spans[1:], strict=False)):
            return False
    return True


RUNS_SLICED = 1024
"""Up to this many runs of consecutive rows, `_in_order` puts a table in order by slicing, not copying."""


def _in_order(table: pa.Table, order: np.ndarray) -> pa.Table:
    """`table.take(order)`. Each of the query's threads hands over its rows in order (a window's partitions
    come out sorted), so that `order` is mostly a few runs of consecutive row numbers: then the runs are
    sliced and chained, without a copy of the wide rows."""
    if len(order) == 0:
        return table
    breaks = np.flatnonzero(order[1:] != order[:-1] + 1) + 1
    if len(breaks) >= RUNS_SLICED:
        return table.take(order)
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(order)]])
    return pa.concat_tables(
        [table.slice(int(order[a]), int(b - a)) for a, b in zip(starts, ends, strict=True)]
    )


WRITE_THREADS = 2
"""Workers that encode a batch's partitions (`LakeWriter.write_many`): the last batch's write, which nothing
overlaps, takes half the time on two cores."""


def _write_batch(writer: LakeWriter, computed: _Computed, result: RefreshResult) -> dict[str, int]:
    """Write each chunk's year partitions of a computed batch (and empty the years it no longer has); rows
    per symbol. The partitions are written together (`LakeWriter.write_many`: the same files, encoded by
    WRITE_THREADS workers and made durable at once). Each partition's manifest records the chunk's
    fingerprint and the years the chunk holds (`Chunk.fresh`: a write stopped part way leaves a year
    missing, or one with another fingerprint; the writer stamps a partition whose rows are unchanged at
    once, before the others are in). A chunk with no rows records its fingerprint in its marker partition
    (MARKER_YEAR), with no years. A large pair is written one year at a time (`_compute_pieces`): each
    manifest records all its years, and its last write empties the others."""
    out: dict[str, int] = {}
    writes: list[tuple[dict[str, str], pa.Table, list[dict[str, Any]]]] = []
    for chunk in computed.batch:
        years = computed.parts.get(chunk.symbol, {})
        held = computed.years[chunk.symbol] if computed.years is not None else years
        inputs = [
            {
                "fingerprint": chunk.fingerprint,
                "store_version": STORE_VERSION,
                "years": [str(y) for y in sorted(held)],
            }
        ]
        for year, (a, b) in sorted(years.items()):
            part = {"interval": chunk.interval, "symbol": chunk.symbol, "year": str(year)}
            writes.append((part, computed.table.slice(a, b - a), inputs))
        out[chunk.symbol] = sum(b - a for a, b in years.values())
    for res in writer.write_many(FEATURES, writes, mode="replace", threads=WRITE_THREADS):
        result.partitions_changed += int(res.changed)
    del writes
    if not computed.last:
        return out
    for chunk in computed.batch:
        years = computed.parts.get(chunk.symbol, {})
        if computed.years is not None:
            years = dict.fromkeys(computed.years[chunk.symbol], (0, 0))
        for year_s in sorted(set(chunk.stored) - {str(y) for y in years}):
            _empty(writer, chunk, year_s, result)
        if not years:
            marker = {"fingerprint": chunk.fingerprint, "store_version": STORE_VERSION, "years": []}
            _empty(writer, chunk, MARKER_YEAR, result, [marker])
    return out


def _partition_rows(table: pa.Table) -> tuple[np.ndarray, dict[str, dict[int, tuple[int, int]]]]:
    """The row indices of `table` in order of symbol, year and ts, and symbol -> year -> the slice of that
    order which is the partition's rows."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64), {}
    sym = pc.dictionary_encode(table.column("symbol")).combine_chunks()
    codes = sym.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    years = table.column("year").to_numpy().astype(np.int64)
    key = codes * 100_000 + years
    ts = table.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    order = np.lexsort((ts, key))
    sorted_key = key[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]]))
    ends = np.concatenate([starts[1:], [len(order)]])
    names = sym.dictionary.to_pylist()
    out: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
    for a, b in zip(starts, ends, strict=True):
        k = int(sorted_key[a])
        out[str(names[k // 100_000])][k % 100_000] = (int(a), int(b))
    return order, dict(out)


def batches(chunks: list[Chunk], rows: Mapping[tuple[str, str], int], batch_rows: int) -> list[list[Chunk]]:
    """Chunks grouped by interval, in their order, into batches of at most `batch_rows` stored bars (a chunk
    larger than that is a batch of its own): the unit of work, and of memory. The batches of an interval are
    balanced: as few as `batch_rows` allows, each taking chunks until it holds its share of the rows still to
    batch (that remainder over the batches it still needs), so that the smaller batches come last (7 equal
    chunks in batches of 3 at most: 3, 2, 2, not 3, 3, 1, whose last batch computes one symbol's windows
    alone, and is written with nothing beside it)."""
    out: list[list[Chunk]] = []
    by_interval: dict[str, list[Chunk]] = defaultdict(list)
    for c in chunks:
        by_interval[c.interval].append(c)
    for interval in sorted(by_interval):
        todo = by_interval[interval]
        sizes = [max(0, rows.get((interval, c.symbol), 0)) for c in todo]
        i = 0
        while i < len(todo):
            rest = sum(sizes[i:])
            parts = max(1, -(-rest // max(1, batch_rows)))  # the batches the rest needs at least
            cur, n = [todo[i]], sizes[i]
            i += 1
            # more chunks while the batch holds less than rest / parts and the next one fits
            while i < len(todo) and n * parts < rest and n + sizes[i] <= batch_rows:
                cur.append(todo[i])
                n += sizes[i]
                i += 1
            out.append(cur)
    return out


def _split_large(
    work: list[list[Chunk]], rows: Mapping[tuple[str, str], int], piece_rows: int
) -> list[list[Chunk]]:
    """The batches, each pair of more than piece_rows stored bars taken out of its batch into one of its own
    (computed in pieces, `_computations`), after the rest of its batch. With piece_rows >= batch_rows (the
    default) there is none to take: such a pair is a batch of its own already."""
    out: list[list[Chunk]] = []
    for batch in work:
        large = [c for c in batch if rows.get((c.interval, c.symbol), 0) > piece_rows]
        rest = [c for c in batch if c not in large]
        if rest:
            out.append(rest)
        out.extend([c] for c in large)
    return out


def _empty(
    writer: LakeWriter,
    chunk: Chunk,
    year: str,
    result: RefreshResult,
    inputs: list[dict[str, Any]] | None = None,
) -> None:
    """Empty a partition of the chunk (with `inputs`: its marker, written even where none was)."""
    part = {"interval": chunk.interval, "symbol": chunk.symbol, "year": year}
    empty = FEATURES.schema.empty_table()
    res = writer.write(FEATURES, part, empty, mode="replace", inputs=inputs or (), keep_empty=bool(inputs))
    result.partitions_changed += int(res.changed)


def _renew_anchor(paths: LakePaths, writer: LakeWriter) -> None:
    """The store's empty schema anchor, rewritten when it predates the current schema (a lake whose store
    was written before the prices were stored beside the features): the files of one dataset agree."""
    anchor = anchor_dir(paths, FEATURES) / DATA_FILE
    try:
        current = pq.read_schema(anchor)
    except (OSError, pa.ArrowException):
        return  # none yet (the writer makes it) or unreadable (the writer's init owns it)
    if not current.equals(FEATURES.schema):
        with (
            writer.changing()
        ):  # a file the views read is replaced: readers are told (lake.connect.consistent)
            write_anchor(paths, FEATURES, replace=True)


def refresh(
    root: str | os.PathLike[str] | None,
    settings: Settings,
    say: Say | None = None,
    *,
    symbols: Iterable[str] | None = None,
    intervals: Iterable[str] | None = None,
    force: bool = False,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    writer: LakeWriter | None = None,
    piece_rows: int = DEFAULT_PIECE_ROWS,
) -> RefreshResult:
    """Bring the feature store up to date: recompute every (symbol, interval) whose inputs changed (all of
    them with `force`), one at a time, and write its year partitions; empty the partitions of pairs whose
    bars are gone. `symbols` / `intervals` restrict the work. Pass `writer` when the caller already holds
    the lake's writer lock (a second lock in the same process would wait for the first). A pair of more than
    `piece_rows` stored bars is computed in pieces (`_compute_pieces`)."""
    say = say or _quiet
    t0 = time.perf_counter()
    lake_root = resolve_lake_root(root)
    paths = LakePaths(lake_root)
    result = RefreshResult()
    if writer is None:
        with LakeWriter.open(lake_root) as w:
            return refresh(
                lake_root,
                settings,
                say,
                symbols=symbols,
                intervals=intervals,
                force=force,
                memory_limit=memory_limit,
                batch_rows=batch_rows,
                writer=w,
                piece_rows=piece_rows,
            )
    # the `bars` view a refreshed store is compared with reads the writer's mirror: whole, and in step with
    # bars files changed by hand, before the store is computed (from the files themselves)
    writer.bring_mirror_up_to_date()
    _renew_anchor(paths, writer)
    inputs = _Inputs.scan(paths, settings)
    chunks: list[Chunk] = []
    for chunk in _chunks(paths, inputs, symbols, intervals):
        if chunk.fresh and not force:
            result.fresh.append((chunk.symbol, chunk.interval))
        else:
            chunks.append(chunk)
    todo = [c for c in chunks if c.fingerprint]
    for c in chunks:
        if not c.fingerprint:
            for year in sorted(c.stored):
                _empty(writer, c, year, result)
            result.removed.append((c.symbol, c.interval))
    if not todo:
        result.seconds = time.perf_counter() - t0
        if result.fresh:
            say(f"features: store up to date ({len(result.fresh)} symbol-interval(s))")
        return result
    with private_workdir("marketlake-store-") as work:  # a killed run's folder goes at the next run
        con = _connection(lake_root, settings, memory_limit, work)
        done = 0
        partial: dict[str, int] = defaultdict(int)  # rows written of a pair written in several parts

        def written(job: Future[dict[str, int]], batch: list[Chunk], last: bool = True) -> None:
            nonlocal done
            counts = job.result()
            for c in batch:
                partial[c.symbol] += counts[c.symbol]
            if not last:
                return
            for c in batch:
                done += 1
                n = partial.pop(c.symbol)
                result.rows += n
                result.built.append((c.symbol, c.interval))
                say(f"features: {c.symbol} {c.interval}: {n:,} rows ({done}/{len(todo)})")

        # A batch's partitions are written by one worker while the next batch is computed: DuckDB's query and
        # the writer's encoding, hashing and fsync overlap (each releases the GIL). Only that worker uses the
        # writer, one batch at a time, and at most two batches are held at once (the one written, the one
        # computed).
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer") as pool:
                pending: tuple[Future[dict[str, int]], list[Chunk], bool] | None = None
                try:
                    market_interval: str | None = None
                    market = pa.table({})
                    for batch in _split_large(
                        batches(todo, inputs.rows, batch_rows), inputs.rows, piece_rows
                    ):
                        symbols = [c.symbol for c in batch]
                        interval = batch[0].interval
                        if interval != market_interval:  # the batches come grouped by interval
                            try:
                                market = _market_features(con, paths, inputs, interval, work)
                            except duckdb.Error as exc:
                                raise _failed(
                                    f"{interval} of {', '.join(MARKET_SYMBOLS)}", exc, paths, work
                                ) from exc
                            market_interval = interval
                        with _chunk_view(paths, inputs, symbols, interval, work) as (bars_dir, news_dir):
                            rows = sum(inputs.rows.get((interval, s), 0) for s in symbols)
                            works: Iterator[_Computed] | None = None
                            while True:
                                try:
                                    if works is None:
                                        held_once = _files_hold_keys_once(
                                            inputs.own_bar_files(interval, s) for s in symbols
                                        )
                                        works = _computations(
                                            con,
                                            batch,
                                            bars_dir,
                                            news_dir,
                                            market,
                                            held_once,
                                            rows,
                                            piece_rows,
                                        )
                                    computed = next(works, None)
                                except duckdb.Error as exc:
                                    raise _failed(
                                        f"{interval} of {', '.join(symbols)}", exc, paths, work
                                    ) from exc
                                if computed is None:
                                    break
                                if pending is not None:
                                    written(*pending)
                                pending = (
                                    pool.submit(_write_batch, writer, computed, result),
                                    batch,
                                    computed.last,
                                )
                                del computed
                    if pending is not None:
                        written(*pending)
                except Exception as exc:
                    # the batch being written when this failed: its own error must not be lost (the pool's exit
                    # waits for it, and nothing else would ask for its result)
                    failed = pending[0].exception() if pending is not None else None
                    if pending is None or failed is None or failed is exc:
                        raise
                    names = ", ".join(c.symbol for c in pending[1])
                    raise MarketlakeError(
                        f"feature store: writing {names} {pending[1][0].interval} failed: {failed} "
                        f"(and then: {exc})"
                    ) from failed
        finally:
            con.close()
    result.seconds = time.perf_counter() - t0
    return result


def _failed(what: str, exc: duckdb.Error, paths: LakePaths, work: Path) -> MarketlakeError:
    """A computation's failure, naming the lake's files rather than their links in the work folder, and
    (a damaged input being the usual cause) the lake's damaged files with how to repair them. A Ctrl-C (or
    SIGTERM) that DuckDB raised as its own error is raised again as it is, at once: an interrupt is no
    failure, and looking for damaged files would hash the whole lake first."""
    if is_interrupt(exc):
        raise exc
    links = re.compile(re.escape(str(work)) + r"/chunk-[^/]+/(bars|news)/")
    text = links.sub(lambda m: f"{paths.dataset(m.group(1))}/", str(exc))
    try:
        damaged = verify(paths.root)
    except (OSError, ValueError):
        damaged = []
    if damaged:
        text += "".join(f"\ndamaged: {p}" for p in damaged) + f"\nto repair: {repair_advice(damaged)}"
    return MarketlakeError(f"feature store: computing {what} failed: {text}")


def describe(result: RefreshResult) -> str:
    """One line for the command line."""
    return (
        f"feature store: {len(result.built)} rebuilt ({result.rows:,} rows), {len(result.fresh)} up to date"
        + (f", {len(result.removed)} removed" if result.removed else "")
        + f" in {result.seconds:.1f} s"
    )


def summary(root: str | os.PathLike[str] | None, settings: Settings) -> list[dict[str, Any]]:
    """One dict per (symbol, interval): whether the store is fresh for it, and its stored years."""
    return [
        {"symbol": c.symbol, "interval": c.interval, "fresh": c.fresh, "years": sorted(c.stored)}
        for c in plan(root, settings)
    ]

"""Episode source: one period's `features` and bar prices, out of DuckDB into contiguous numpy arrays.

- Where the rows come from: when the feature store (features/store.py) is up to date for every chosen
  symbol, ONE read of the store's own Parquet files with pyarrow (`_store_pieces`; its SQL reference
  tests/unit/sql/period_store_reference.sql): the year partitions that can hold a row of the period, and
  in them only the row groups that can (by their ts statistics), read in place with the bar's prices the
  store keeps beside the features (no join, no window recomputed). load_period reads them straight into
  its arrays (`_load_store`: decoded in a background thread while the arrays' memory is mapped in another
  and the consumer checks and sums, then copied and normalised a piece at a time in two threads), and
  falls back to the general path below for what only it handles.
  Otherwise one query per symbol over the live `features_priced` view (sql/rl/period_rows.sql). Either
  way the period's bounds are bound as parameters (a row is read only if its whole life lies in the
  period). In the general path (and iter_period), results stream as Arrow record batches (about a month
  of 1m bars each; a few in flight at once) out of a background thread while the consumer converts them
  into float32 / float64 numpy (`_assemble`). Every statement run, with its parameters, is recorded in
  `MarketData.queries`.
- Memory: load_period (what `marketlake train` and `marketlake evaluate` use) holds the WHOLE period in
  its arrays (every row's features and prices), so its memory grows with the period's rows; only
  iter_period bounds it, yielding chunks of about `max_rows` rows.
- The set-up (before any row is read): a DuckDB connection with only the views its statements need
  (`_connect`; the live view's chain only when the store is stale), and, for the train period, its bounds,
  eligibility and asset classes in one statement (sql/rl/train_setup.sql).
- Which symbols: by default those eligible in the TRAIN period (`eligible_symbols_by_split`), whichever
  period is loaded, judged on its bars against a threshold from the settings alone (with a `date` split,
  data after the train period never decides what trains; a `fraction` split's periods move as the lake
  grows, by definition). A lake with nothing eligible is one
  MarketlakeError naming every symbol and why.
- Normalisation statistics are computed on the train period only (`norm=None` is refused for other
  periods) and travel with a run (NormStats.to_json / from_json).
- Rows are ordered (symbol, ts); a segment is a run of consecutive rows of one `bar_features` segment
  (never across a gap or a skipped session); `step()` never runs SQL, it only indexes these arrays.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import mmap
import queue
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

import lake
from lake.config import Settings
from lake.connect import sql_dir
from lake.errors import MarketlakeError

PERIODS = ("train", "validation", "test")
# Model inputs, in the order of sql/rl/period_rows.sql (after the bookkeeping and price columns).
FEATURES = (
    "ret_1", "ret_5", "ret_15", "ret_60",
    "vol_15", "vol_60", "rsi_14", "volume_z_60",
    "range_hl", "range_mean_15", "body", "gap_open",
    "idle_minutes", "tod_sin", "tod_cos", "day_of_week",
    "minutes_since_open", "minutes_to_close",
    "news_count_1h", "news_count_1d", "sentiment_mean_1h", "sentiment_mean_1d", "sentiment_last", "has_news",
    "spy_log_ret_1", "has_spy", "qqq_log_ret_1", "has_qqq",
)  # fmt: skip
PRICES = ("open", "high", "low", "close")
CLIP = 10.0  # normalised features are clipped to [-CLIP, CLIP]


class EmptyPeriod(MarketlakeError):
    """A period that holds no row with complete features (too little data, or an empty split)."""


BATCH_ROWS = 44_640  # rows per Arrow record batch: a month of 1m bars
INTERVAL_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 1440, "1w": 10080}


def _sql(name: str) -> str:
    return (sql_dir() / "rl" / f"{name}.sql").read_text(encoding="utf-8")


@dataclass
class NormStats:
    """Feature means and standard deviations of the TRAIN period; saved with a run."""

    feature_names: list[str]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def compute(cls, names: list[str], x: np.ndarray | Sequence[np.ndarray]) -> NormStats:
        """Statistics of x: an [N, F] array, or its F columns (each contiguous: the fast form)."""
        cols = [x[:, j] for j in range(x.shape[1])] if isinstance(x, np.ndarray) else list(x)
        if not cols or len(cols[0]) == 0:
            raise MarketlakeError("cannot compute normalisation statistics on an empty train period")
        scratch = np.empty(len(cols[0]))
        stats = [_centre(np.ascontiguousarray(c, dtype=np.float64), scratch) for c in cols]
        return cls(list(names), np.array([m for m, _ in stats]), np.array([s for _, s in stats]))

    def apply(self, x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """The normalised, clipped observation features, float32 [N, F] in row order, of an [N, F] array
        or of its F columns: column by column (`_normalise`) into a feature-major float32 array, then one
        transposing copy. No [N, F] float64 temporary. (Two threads were tried: slower on 2 cores.)"""
        cols = [x[:, j] for j in range(x.shape[1])] if isinstance(x, np.ndarray) else list(x)
        n = len(cols[0]) if cols else 0
        by_col = np.empty((len(cols), n), dtype=np.float32)
        scratch = np.empty(n)
        for j, c in enumerate(cols):
            _normalise(c, float(self.mean[j]), float(self.std[j]), scratch, by_col[j])
        return np.ascontiguousarray(by_col.T)

    def to_json(self) -> str:
        return json.dumps(
            {"feature_names": self.feature_names, "mean": self.mean.tolist(), "std": self.std.tolist()}
        )

    @classmethod
    def from_json(cls, text: str) -> NormStats:
        d = json.loads(text)
        return cls(list(d["feature_names"]), np.asarray(d["mean"], float), np.asarray(d["std"], float))


def _centre(c: np.ndarray, scratch: np.ndarray) -> tuple[float, float]:
    """(mean, std) of one float64 column, c minus its mean left in `scratch` (which may be c itself): the
    mean by numpy's pairwise sum, the standard deviation from the centred values (einsum's own loop: BLAS's
    dot is threaded, and its threads wait on a busy machine); a std of about 0 (a
    constant input) is 1. (The feature store's read sums its statistics a row group at a time and merges
    them: the same numbers to the last bit or two, not always bit for bit; a test checks they agree.)"""
    n = len(c)
    mean = float(np.add.reduce(c)) / n
    np.subtract(c, mean, out=scratch)
    std = math.sqrt(float(np.einsum("i,i->", scratch, scratch)) / n)  # not np.dot: BLAS threads, slow here
    return mean, (std if std > 1e-12 else 1.0)


def _normalise(c: np.ndarray, mean: float, std: float, scratch: np.ndarray, out: np.ndarray) -> None:
    """out (float32) = clip((c - mean) / std, -CLIP, CLIP), computed in float64 in `scratch`."""
    np.subtract(c, mean, out=scratch)
    _scale(scratch, std, out)


def _scale(centred: np.ndarray, std: float, out: np.ndarray) -> None:
    """out (float32) = clip(centred / std, -CLIP, CLIP), computed in float64 (centred is overwritten), then
    one casting copy (a float32 `out` straight from the clip is several times slower)."""
    np.divide(centred, std, out=centred)
    np.clip(centred, -CLIP, CLIP, out=centred)
    out[...] = centred


@dataclass
class MarketData:
    """One period, all selected symbols, contiguous arrays, rows ordered (symbol, ts)."""

    symbols: list[str]
    interval: str
    period: str
    feature_names: list[str]
    features: np.ndarray  # float32 [N, F], normalised, NaN-free
    open: np.ndarray  # float64 [N]
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    ts: np.ndarray  # int64 [N], microseconds since epoch (bar open)
    available_at: np.ndarray  # int64 [N]
    symbol_idx: np.ndarray  # int32 [N]
    segment_id: np.ndarray  # int64 [N]; rows of one segment are consecutive
    session_end: np.ndarray  # bool [N]: where a stock's session ends (`session_ends`: its close by the
    # calendar, or its last loaded bar of a day that a later day's bar follows; never the data's end by
    # itself), where a position that may not be held overnight is closed; False for crypto. Mechanics only
    day: np.ndarray  # int64 [N]: trading day (days since 1970-01-01; New York date for stocks)
    asset_classes: list[str]  # per symbol
    bounds: tuple[int, int]  # the period [start_at, end_at) in microseconds
    norm: NormStats
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # for EnvConfig()
    queries: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """Where load_period's time went: "setup" (connecting, the period's bounds, the symbols, the store's
    freshness) and "read" (the rows out of the lake into these arrays), for the benchmarks."""
    at_close: np.ndarray | None = None
    """bool [N]: the bar ends at or after its session's close, from the calendar (stocks; False for
    crypto): what the observation says, known at the bar without looking at later rows. None: as
    session_end (arrays built by hand)."""

    @property
    def n_rows(self) -> int:
        return len(self.close)

    @property
    def interval_minutes(self) -> int:
        return INTERVAL_MINUTES.get(self.interval, 1)

    def segment_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """First row and one-past-last row of every segment, in order."""
        n = self.n_rows
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        brk = np.flatnonzero(np.diff(self.segment_id)) + 1
        first = np.concatenate([[0], brk]).astype(np.int64)
        end = np.concatenate([brk, [n]]).astype(np.int64)
        return first, end

    def segment_pos(self) -> np.ndarray:
        """Position of each row inside its segment (0 at the segment's first row)."""
        first, end = self.segment_bounds()
        return np.arange(self.n_rows, dtype=np.int64) - np.repeat(first, end - first)


def _record(queries: list[str], sql: str, params: dict[str, Any]) -> None:
    shown = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in params.items()}
    queries.append(f"-- params: {json.dumps(shown, sort_keys=True)}\n{sql.strip()}")


def _period_bounds(con: Any, period: str, queries: list[str]) -> tuple[Any, Any]:
    sql = _sql("period_bounds")
    params = {"split": period}
    _record(queries, sql, params)
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise MarketlakeError("the lake has no bars: no train, validation or test period")
    return row[0], row[1]


def _train_eligibility(con: Any, interval: str, queries: list[str]) -> list[tuple[str, str, bool, str]]:
    """(symbol, asset_class, eligible, reason) of every symbol of the interval, judged on the train period."""
    sql = _sql("train_eligible")
    params = {"interval": interval}
    _record(queries, sql, params)
    return [(str(s), str(a), bool(e), str(r)) for s, a, e, r in con.execute(sql, params).fetchall()]


Eligibility = list[tuple[str, str, bool, str]]


def _train_setup(con: Any, interval: str, queries: list[str]) -> tuple[Eligibility, tuple[Any, Any] | None]:
    """_train_eligibility's rows and the train period's bounds (None without a row), in one statement."""
    sql = _sql("train_setup")
    params = {"interval": interval}
    _record(queries, sql, params)
    rows = con.execute(sql, params).fetchall()
    bounds = (rows[0][4], rows[0][5]) if rows else None
    return [(str(s), str(a), bool(e), str(r)) for s, a, e, r, _, _ in rows], bounds


def _eligible(
    con: Any, interval: str, queries: list[str], rows: Eligibility | None = None
) -> list[tuple[str, str]]:
    """(symbol, asset_class) eligible in the train period; none is one error naming every symbol and why.
    `rows`: _train_eligibility's, when already read."""
    rows = _train_eligibility(con, interval, queries) if rows is None else rows
    ok = [(s, a) for s, a, eligible, _ in rows if eligible]
    if ok:
        return ok
    if not rows:
        raise MarketlakeError(f"nothing to train on: the lake has no {interval} bars")
    why = "; ".join(f"{s}: {reason}" for s, _, _, reason in rows)
    raise MarketlakeError(
        f"nothing to train on: no {interval} symbol is eligible in the train period ({why})"
    )


def _asset_classes(con: Any, symbols: list[str], interval: str, queries: list[str]) -> dict[str, str]:
    sql = _sql("asset_classes")
    params = {"symbols": list(symbols), "interval": interval}
    _record(queries, sql, params)
    return {str(sym): str(ac) for sym, ac in con.execute(sql, params).fetchall()}


Query = tuple[str, dict[str, Any]]


STORE_READ = (
    "-- the feature store's own files ($files, in the order of $symbols) read with pyarrow.parquet, no SQL:\n"
    "-- the rows with ts >= $start_at AND available_at <= $end_at AND NOT warmup, as period_rows.sql's columns"
)
"""What MarketData.queries records for a read of the feature store (rl.episodes._read_store)."""

NULL_AS_ZERO: tuple[str, ...] = ("volume_z_60", "sentiment_mean_1h", "sentiment_mean_1d", "sentiment_last")
NULL_AS_ZERO += ("spy_log_ret_1", "qqq_log_ret_1")
"""Features whose NULL (no article, no SPY/QQQ bar, no volume variation) is read as 0 (period_rows.sql)."""
INDICATORS = {"has_news": "sentiment_last", "has_spy": "spy_log_ret_1", "has_qqq": "qqq_log_ret_1"}
"""1.0 where the stored column is not NULL (period_rows.sql)."""


STORE_COLUMNS = (
    "ts", "available_at", "segment_no", "segment_pos", "trading_day", "warmup", *PRICES,
    *(c for c in FEATURES if c not in INDICATORS),
)  # fmt: skip
"""The columns of the store's files that the episode source reads (of its 47)."""
_STORE_INDEX = {c: i for i, c in enumerate(STORE_COLUMNS)}


@dataclass
class _StorePiece:
    """A record batch of a store file's row groups as read: its rows of the period are `keep` (a slice
    when consecutive, the common case, else a boolean mask), `rows` of them."""

    sym: int
    batch: pa.RecordBatch  # STORE_COLUMNS
    keep: slice | np.ndarray
    rows: int

    def take(self, values: np.ndarray) -> np.ndarray:
        """The period's rows of one of the batch's columns as numpy (a view when `keep` is a slice)."""
        return values[self.keep]


def _values(arr: Any, dtype: Any) -> np.ndarray:
    """The values of a primitive Arrow array without nulls, as numpy of `dtype`'s width (zero copy)."""
    dtype = np.dtype(dtype)
    if pa.types.is_date32(arr.type):  # numpy's dates are 64-bit: the int32 buffer itself
        return np.frombuffer(
            arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize
        )
    return arr.to_numpy(zero_copy_only=True).view(dtype)


class _Arenas:
    """Memory for the arrays of the store's reads (`_load_store`): anonymous mappings, each populated in
    one call (MAP_POPULATE: no page fault per 4 KiB page, and no transparent huge page, whose allocation
    stalls on compaction when memory is fragmented: numpy asks for them for every array of 4 MiB or more;
    and on a VM whose balloon reports free 2 MiB blocks back to the host, as the development machine's
    does, huge pages taken in a fresh process are faulted in again by the host: 50-115 ms for 22 MB
    where 4 KiB pages mostly take 8-20),
    and reused from one read to the next once nobody holds any array of them: a mapping is handed out
    again only when the pool's own reference is the only one left (every numpy array made from it, views
    and exports included, holds one), so an array a caller still holds is never written. The pool keeps
    at most MAX_KEPT mappings; an evicted one is unmapped when its last array goes. (The arrays of one
    read share one mapping: a caller keeping one of them keeps all of that read's memory.)"""

    MAX_KEPT = 2
    PAGE = mmap.PAGESIZE

    def __init__(self) -> None:
        self._kept: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self.reused = 0  # mappings handed out again (for the tests)

    def take(self, nbytes: int) -> np.ndarray:
        """A uint8 array of at least `nbytes` bytes (page aligned), from a free mapping of the pool or a new one."""
        size = max(-(-nbytes // self.PAGE) * self.PAGE, self.PAGE)
        with self._lock:
            # the smallest free mapping that fits (references: the pool's list and getrefcount's argument;
            # any array of it adds one)
            fits = [
                (len(self._kept[i]), i)
                for i in range(len(self._kept))
                if size <= len(self._kept[i]) <= 2 * size and sys.getrefcount(self._kept[i]) == 2
            ]
            if fits:
                self._kept.append(self._kept.pop(min(fits)[1]))
                self.reused += 1
                return np.frombuffer(self._kept[-1], np.uint8)
        if not hasattr(mmap, "MAP_ANONYMOUS"):  # (Windows) plain memory, not pooled
            return np.empty(size, np.uint8)
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
        m = mmap.mmap(-1, size, flags=flags)
        arena = np.frombuffer(m, np.uint8)
        with self._lock:
            self._kept.append(m)
            del m
            if len(self._kept) > self.MAX_KEPT:
                self._kept.pop(0)
        return arena

    def clear(self) -> None:
        """Forget every kept mapping (each is unmapped once no array of it is left)."""
        with self._lock:
            self._kept.clear()


ARENAS = _Arenas()
"""The store reads' memory (see _Arenas); `ARENAS.clear()` gives back what no array holds."""


def _carve(arena: np.ndarray, specs: Sequence[tuple[Any, tuple[int, ...]]]) -> list[np.ndarray]:
    """Arrays of the given (dtype, shape) laid one after the other in `arena`, each 64-byte aligned."""
    out, at = [], 0
    for dtype, shape in specs:
        dtype = np.dtype(dtype)
        n = dtype.itemsize * math.prod(shape)
        out.append(arena[at : at + n].view(dtype).reshape(shape))
        at += -(-n // 64) * 64
    return out


def _arena_bytes(specs: Sequence[tuple[Any, tuple[int, ...]]]) -> int:
    return sum(-(-np.dtype(d).itemsize * math.prod(s) // 64) * 64 for d, s in specs)


@dataclass
class _StoreFile:
    """One store file of a period read: its symbol's index, the file, its row groups that can hold a row of
    the period (by their ts statistics) and their rows."""

    sym: int
    file: Any  # pyarrow.parquet.ParquetFile
    groups: list[int]
    rows: int


@dataclass(frozen=True)
class _Footer:
    """What a period's read needs of a store file's footer: the parsed metadata (handed to ParquetFile, which
    then reads no footer) and, per row group, its ts statistics in µs (None where it has none) and rows."""

    meta: Any  # pyarrow.parquet.FileMetaData
    groups: tuple[tuple[int | None, int | None, int], ...]

    @classmethod
    def of(cls, meta: Any) -> _Footer:
        ts_col = meta.schema.names.index("ts")
        groups: list[tuple[int | None, int | None, int]] = []
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            st = rg.column(ts_col).statistics
            if st is not None and st.has_min_max:  # ts is stored tz-aware (UTC): aware datetimes here
                groups.append((_us(st.min), _us(st.max), rg.num_rows))
            else:
                groups.append((None, None, rg.num_rows))
        return cls(meta, tuple(groups))


class _Footers:
    """The footers of the store's files read so far in this process (parsing eight footers and their
    statistics is a tenth of a period's read), each kept with its bytes: a file's footer is used again only
    when the file, as mapped for this read, ends with the very same footer bytes (compared in full: the
    parsed metadata is a function of them alone, so the read is the one a fresh parse would give, whatever
    the file's name, times or history); any other file is parsed afresh. At most MAX_BYTES of memory, the
    least recently used forgotten first; a footer parsed takes about PARSED_PER_BYTE times its stored size
    (measured: an 8.8 MB footer of 2,000 row groups held 69 MB), which is what is counted."""

    MAX_BYTES = 64 << 20
    PARSED_PER_BYTE = 8

    def __init__(self) -> None:
        self._kept: OrderedDict[str, tuple[bytes, _Footer]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0  # footers served from the cache (for the tests)

    def open(self, path: str) -> tuple[Any, _Footer]:
        """The file mapped, not read (its column chunks are decoded from the page cache in place, not first
        copied into the Arrow allocator's buffers, whose pages it gives back to the system when idle and
        must fault in again: a third of the decoding's time), as a ParquetFile, with its footer."""
        import pyarrow.parquet as pq

        source = pa.memory_map(path)
        try:
            raw = _footer_bytes(source)
            with self._lock:
                got = self._kept.get(path)
                if got is not None and raw is not None and got[0] == raw:
                    self._kept.move_to_end(path)
                    self.hits += 1
                    return pq.ParquetFile(source, metadata=got[1].meta), got[1]
            pf = pq.ParquetFile(source)
            footer = _Footer.of(pf.metadata)
        except BaseException:
            source.close()
            raise
        if raw is not None:
            with self._lock:
                old = self._kept.pop(path, None)
                self._bytes += self._cost(raw) - (self._cost(old[0]) if old else 0)
                self._kept[path] = (raw, footer)
                while self._bytes > self.MAX_BYTES and len(self._kept) > 1:
                    self._bytes -= self._cost(self._kept.popitem(last=False)[1][0])
        return pf, footer

    def _cost(self, raw: bytes) -> int:
        return len(raw) * self.PARSED_PER_BYTE

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._bytes = 0


def _footer_bytes(source: Any) -> bytes | None:
    """A Parquet file's footer as stored (its metadata, their length and the closing magic), or None when
    the file does not end like a plain Parquet file (pyarrow's parse then says what is wrong)."""
    size = source.size()
    if size < 12:
        return None
    tail = source.read_at(8, size - 8)
    if tail[4:] != b"PAR1":
        return None
    n = int.from_bytes(tail[:4], "little") + 8
    if n > size - 4:
        return None
    raw: bytes = source.read_at(n, size - n)
    return raw


FOOTERS = _Footers()
"""The store files' footers, each parsed once (see _Footers)."""


def _store_plan(params: dict[str, Any]) -> list[_StoreFile]:
    """The files' row groups to read (their footers only, `FOOTERS`): a row group whose ts statistics lie
    wholly outside the period is skipped unread (the store writes row groups of lake.schemas.FEATURES
    .row_group_rows rows, so a period reads little more than its own rows)."""
    start_us, end_us = _us(params["start_at"]), _us(params["end_at"])
    symbols = list(params["symbols"])
    plan = []
    for path in params["files"]:
        symbol = Path(path).parent.parent.name.removeprefix("symbol=")
        pf, footer = FOOTERS.open(path)
        groups, rows = [], 0
        for g, (lo, hi, n) in enumerate(footer.groups):
            if lo is not None and hi is not None and (hi < start_us or lo >= end_us):
                continue
            groups.append(g)
            rows += n
        if groups:
            plan.append(_StoreFile(symbols.index(symbol), pf, groups, rows))
    return plan


def _store_pieces(params: dict[str, Any], plan: list[_StoreFile] | None = None) -> Iterator[_StorePiece]:
    """The store's files read with pyarrow (`_store_plan`'s row groups of each file in one call), record
    batch by record batch, with the period's rows marked: those with ts >= start_at, available_at <= end_at and not warm-up; each file in
    ts order, files in the order given."""
    start_us, end_us = _us(params["start_at"]), _us(params["end_at"])
    for f in plan if plan is not None else _store_plan(params):
        # the file's row groups of the period in one call: their columns decoded in parallel
        table = f.file.read_row_groups(f.groups, columns=list(STORE_COLUMNS), use_threads=True)
        for batch in table.to_batches():
            ts = _values(batch.column(_STORE_INDEX["ts"]), np.int64)
            av = _values(batch.column(_STORE_INDEX["available_at"]), np.int64)
            keep = (ts >= start_us) & (av <= end_us)
            warmup = batch.column(_STORE_INDEX["warmup"])
            if warmup.true_count:
                keep &= ~warmup.to_numpy(zero_copy_only=False)
            idx = np.flatnonzero(keep)
            if not len(idx):
                continue
            first, last = int(idx[0]), int(idx[-1])
            sel: slice | np.ndarray = slice(first, last + 1) if last - first + 1 == len(idx) else keep
            yield _StorePiece(f.sym, batch, sel, len(idx))


def _feature_values(piece: _StorePiece, name: str) -> np.ndarray | float:
    """A model input of the piece's period rows, float64 as period_rows.sql gives it (NULL -> NaN, or 0 with
    an indicator column): numpy, or one number standing for every row. A column whose NULLs all lie outside
    the period rows (a segment's warm-up: the common case) is read in place, its values buffer as it is."""
    if name in INDICATORS:
        col = piece.batch.column(_STORE_INDEX[INDICATORS[name]])
        if _period_null_free(piece, col):
            return 1.0
        if col.null_count == len(col):
            return 0.0
        import pyarrow.compute as pc

        return piece.take(pc.is_valid(col).to_numpy(zero_copy_only=False)).astype(np.float64)
    col = piece.batch.column(_STORE_INDEX[name])
    if _period_null_free(piece, col):
        return piece.take(_data(col, col.type.to_pandas_dtype()))
    if col.null_count == len(col):
        return 0.0 if name in NULL_AS_ZERO else float("nan")
    if name in NULL_AS_ZERO:
        import pyarrow.compute as pc

        col = pc.fill_null(col, pa.scalar(0, col.type))
    return piece.take(col.to_numpy(zero_copy_only=False)).astype(np.float64, copy=False)


def _period_null_free(piece: _StorePiece, col: Any) -> bool:
    """Whether the piece's period rows of `col` hold no NULL (counted on the slice's validity bits)."""
    if col.null_count == 0:
        return True
    if isinstance(piece.keep, slice):
        return bool(col.slice(piece.keep.start, piece.rows).null_count == 0)
    return False


def _data(arr: Any, dtype: Any) -> np.ndarray:
    """The values buffer of a primitive (not boolean) Arrow array as numpy of `dtype`, whatever its NULLs
    (the value under a NULL is unspecified: only for rows known valid)."""
    dtype = np.dtype(dtype)
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def _read_store(params: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """The store's files read straight into Arrow with pyarrow (about ten times DuckDB's rate on these
    files), with sql/rl/period_rows.sql's columns and rows (`_store_pieces`): those with ts >= start_at,
    available_at <= end_at and not warm-up, each file in ts order, files in the order given, in record
    batches of at most BATCH_ROWS rows. The test suite checks its rows equal the SQL reference
    (tests/unit/sql/period_store_reference.sql) and the live view's. load_period reads the same pieces
    straight into its arrays (`_load_store`); a test checks that the two agree."""
    import pyarrow.compute as pc

    for piece in _store_pieces(params):
        if isinstance(piece.keep, slice):
            t = piece.batch.slice(piece.keep.start, piece.rows)
        else:
            t = piece.batch.filter(pa.array(piece.keep))
        out: dict[str, Any] = {
            "sym": pa.array(np.full(t.num_rows, piece.sym, dtype=np.int32)),
            "ts_us": _as(t.column("ts"), pa.int64()),
            "available_at_us": _as(t.column("available_at"), pa.int64()),
            "segment_no": _as(t.column("segment_no"), pa.int64()),
            "segment_pos": _as(t.column("segment_pos"), pa.int64()),
            "day_no": _as(_as(t.column("trading_day"), pa.int32()), pa.int64()),
        }
        for c in PRICES:
            out[c] = t.column(c)
        for c in FEATURES:
            if c in INDICATORS:
                out[c] = _as(pc.is_valid(t.column(INDICATORS[c])), pa.float64())
            elif c in NULL_AS_ZERO:
                col = _as(t.column(c), pa.float64())
                out[c] = pc.fill_null(col, 0.0) if col.null_count else col
            else:
                out[c] = _as(t.column(c), pa.float64())
        yield from pa.table(out).to_batches(max_chunksize=BATCH_ROWS)


def _as(col: Any, to: pa.DataType) -> Any:
    """col cast to `to`, untouched when it already is."""
    return col if col.type == to else col.cast(to)


T = TypeVar("T")


def _background(items: Iterator[T], what: str) -> Generator[T, None, None]:
    """The items of `items`, produced in a background thread that stays a few items ahead of the consumer
    (DuckDB and pyarrow release the GIL while they work), so producing and consuming overlap. An error in
    the thread comes back as a MarketlakeError naming `what`; closing the generator stops the thread."""
    out: queue.Queue[Any] = queue.Queue(maxsize=8)
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                out.put(item)
            out.put(done)
        except BaseException as exc:  # handed to the consumer
            out.put(exc)

    thread = threading.Thread(target=work, name="marketlake-episodes", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if isinstance(item, BaseException):
                raise MarketlakeError(f"{what} failed: {item}") from item
            if item is done:
                return
            yield item
    finally:
        # stop the thread: a put it is blocked in is freed by taking what the queue holds, and its end is
        # waited for by join (which returns as soon as it ends: never a fixed wait on an empty queue)
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                while True:
                    out.get_nowait()
            thread.join(0.01)


def _stream(con: Any, queries: list[Query], interval: str) -> Generator[pa.RecordBatch, None, None]:
    """The record batches of the given (sql, params) statements, in order, each with its `sym` column; the
    statements run in a background thread that stays a few batches ahead of the consumer, so reading and
    converting overlap. A statement's result streams: memory holds a few batches, not the period."""

    def batches() -> Iterator[pa.RecordBatch]:
        for sql, params in queries:
            if sql == STORE_READ:
                yield from _read_store(params)
            else:
                yield from con.execute(sql, params).to_arrow_reader(BATCH_ROWS)

    return _background(batches(), f"reading the {interval} rows")


def _store_files(
    root: Path | str | None, names: list[str], interval: str, start_at: Any, end_at: Any
) -> list[str]:
    """The feature store's year partitions of `names` (in that order) that can hold a row of the period:
    a partition's year is the UTC year of ts, and start_at <= ts < available_at <= end_at."""
    from lake.paths import LakePaths, resolve_lake_root
    from lake.schemas import FEATURES as STORED
    from lake.writer import DATA_FILE

    base = LakePaths(resolve_lake_root(root)).dataset(STORED.name) / f"interval={interval}"
    lo, hi = start_at.astimezone(dt.UTC).year, end_at.astimezone(dt.UTC).year
    files: list[str] = []
    for name in names:
        years = []
        for d in (base / f"symbol={name}").glob("year=*"):
            y = d.name.removeprefix("year=")
            if y.isdigit() and lo <= int(y) <= hi and (d / DATA_FILE).is_file():
                years.append((int(y), str(d / DATA_FILE)))
        files += [f for _, f in sorted(years)]
    return files


def _read_plan(
    con: Any,
    root: Path | str | None,
    settings: Settings,
    names: list[str],
    interval: str,
    start_at: Any,
    end_at: Any,
    queries: list[str],
    say: Callable[[str], None],
    stale_symbols: set[str] | None = None,
) -> list[Query]:
    """The statements that read the period's rows: when the feature store is up to date for every chosen
    symbol (features/store.py; the same rows as the `features` view), ONE statement over the store's own
    files (`_read_store`, recorded as STORE_READ); else one per symbol over the live `features_priced` view, slower.
    `stale_symbols`: the interval's symbols whose stored features are not up to date, when already known."""
    if stale_symbols is None:
        stale_symbols = _stale_symbols(root, settings, interval)
    stale = {(s, interval) for s in stale_symbols if s in names}
    if stale:
        say(
            f"features: the stored features of {', '.join(sorted(s for s, _ in stale))} {interval} are not up to "
            "date (`marketlake features refresh`); reading the live view, slower"
        )
        sql = _sql("period_rows")
        plan = [
            (sql, {"symbol": s, "sym": i, "interval": interval, "start_at": start_at, "end_at": end_at})
            for i, s in enumerate(names)
        ]
    else:
        files = _store_files(root, names, interval, start_at, end_at)
        if not files:
            return []
        params = {"files": files, "symbols": list(names), "start_at": start_at, "end_at": end_at}
        plan = [(STORE_READ, params)]
    for sql, params in plan:
        _record(queries, sql, params)
    return plan


def _stale_symbols(root: Path | str | None, settings: Settings, interval: str) -> set[str]:
    """The symbols of the interval whose stored features are missing or out of date (features/store.py)."""
    from features import store

    return {s for s, i in store.stale(root, settings) if i == interval}


SETUP_SQL = ("period_bounds", "train_eligible", "train_setup", "asset_classes")
"""The statements of a period's set-up (sql/rl): the period's bounds and the symbols."""


def _connect(root: Path | str | None, settings: Settings, live: bool) -> Any:
    """A read-only connection with the views the set-up's statements need, and, when `live` (the feature
    store is not up to date), those the live read (sql/rl/period_rows.sql) needs: registering the views is
    most of a connection's cost, and the store's read needs none."""
    from lake.connect import views_needed

    names = [*SETUP_SQL, "period_rows"] if live else list(SETUP_SQL)
    return lake.connect(root, read_only=True, settings=settings, views=views_needed(_sql(n) for n in names))


def _select(
    con: Any,
    symbols: list[str] | None,
    interval: str,
    queries: list[str],
    say: Callable[[str], None],
    warn_ineligible: bool,
    eligibility: Eligibility | None = None,
) -> list[tuple[str, str]]:
    """(symbol, asset_class) to read: the train period's eligible symbols, or the given ones in sorted order
    (the order they were given in must not change the episodes of a seed: the rows, and so the starts a
    seed draws, are in symbol order; `marketlake train` sorts them too). `eligibility`:
    _train_eligibility's rows, when already read: their asset classes then stand for sql/rl/asset_classes.sql's
    (the same symbols, those with bars of the interval) unless a symbol has two."""
    if symbols is None:
        return _eligible(con, interval, queries, eligibility)
    listed = [s for s, _, _, _ in eligibility or []]
    if eligibility is not None and len(set(listed)) == len(listed):
        classes = {s: a for s, a, _, _ in eligibility if s in symbols}
    else:
        classes = _asset_classes(con, symbols, interval, queries)
    missing = [s for s in symbols if s not in classes]
    if missing:
        raise MarketlakeError(f"symbol(s) {', '.join(missing)}: no {interval} bars in the lake")
    if len(set(symbols)) != len(symbols):
        raise MarketlakeError(f"symbols given twice: {symbols}")
    if warn_ineligible:
        rows = _train_eligibility(con, interval, queries) if eligibility is None else eligibility
        for s, _, ok, reason in rows:
            if s in symbols and not ok:
                say(f"warning: {s} {interval} is not eligible in the train period: {reason}")
    return [(s, classes[s]) for s in sorted(symbols)]


def _setup(
    con: Any, symbols: list[str] | None, interval: str, period: str, warn_ineligible: bool, queries: list[str]
) -> tuple[Any, Any, Eligibility | None]:
    """The period's bounds and, when the load needs them (to choose the symbols, or to warn about an
    ineligible one), the train period's eligibility rows: for the train period in one statement
    (sql/rl/train_setup.sql), else the period's bounds and the train eligibility in two."""
    if symbols is not None and not warn_ineligible:
        return (*_period_bounds(con, period, queries), None)
    if period == "train":
        rows, bounds = _train_setup(con, interval, queries)
        if bounds is not None:
            return (*bounds, rows)
        return (*_period_bounds(con, period, queries), rows)  # no row: period_bounds says why, if it can
    start_at, end_at = _period_bounds(con, period, queries)
    return start_at, end_at, _train_eligibility(con, interval, queries)


def load_period(
    root: Path | str | None,
    settings: Settings,
    symbols: list[str] | None,
    interval: str,
    period: str,
    norm: NormStats | None = None,
    say: Callable[[str], None] | None = None,
    *,
    config: Any = None,
    warn_ineligible: bool = True,
    not_before: dt.datetime | None = None,
) -> MarketData:
    """Read one period of the lake into a MarketData.

    symbols None: the symbols eligible in the TRAIN period. norm None: statistics computed on this period,
    allowed only for the train period. `config` (an EnvConfig; default EnvConfig()) decides `starts`.
    Given symbols are read in sorted order (data.symbols); one not eligible in the train period is reported through `say`
    (warn_ineligible=False skips that query). `not_before`: the period starts no earlier than this instant
    (an evaluation keeps clear of what its run trained on when the lake's periods have moved since)."""
    if config is not None:  # refused before anything is read (the env, vector env, evaluations, train)
        config.check_interval(interval)
    return lake.consistent(  # read again whole if a writer replaced a file of the lake meanwhile
        root,
        lambda: _load_period(
            root, settings, symbols, interval, period, norm, say, config, warn_ineligible, not_before
        ),
    )


def _load_period(
    root: Path | str | None,
    settings: Settings,
    symbols: list[str] | None,
    interval: str,
    period: str,
    norm: NormStats | None,
    say: Callable[[str], None] | None,
    config: Any,
    warn_ineligible: bool,
    not_before: dt.datetime | None = None,
) -> MarketData:
    """load_period's read, once."""
    from rl.market import EnvConfig

    if period not in PERIODS:
        raise MarketlakeError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    if norm is None and period != "train":
        raise MarketlakeError(
            f"the {period} period needs the train period's normalisation statistics (norm=...): statistics "
            "computed on it would leak it into the model's inputs"
        )
    say = say or (lambda _m: None)
    queries: list[str] = []
    t0 = time.perf_counter()
    stale = _stale_symbols(root, settings, interval)
    con = _connect(root, settings, live=bool(stale))
    try:
        start_at, end_at, eligibility = _setup(con, symbols, interval, period, warn_ineligible, queries)
        if not_before is not None and start_at is not None and start_at < not_before:
            start_at = min(not_before, end_at) if end_at is not None else not_before
        chosen = _select(con, symbols, interval, queries, say, warn_ineligible, eligibility)
        names = [s for s, _ in chosen]
        classes = [a for _, a in chosen]
        plan = _read_plan(con, root, settings, names, interval, start_at, end_at, queries, say, stale)
        store_only = [q for q, _ in plan] == [STORE_READ]
        if store_only:  # the store's files are read without DuckDB: its connection is done with
            con.close()
        t1 = time.perf_counter()
        say(f"reading {len(names)} symbol(s) {interval}, {period} period {start_at} .. {end_at}")
        # the feature store's rows straight into the arrays; the general path (record batches, in a
        # background thread) for the live view, and for the rare store rows only it handles
        fast = _load_store(plan[0][1], norm) if store_only else None
        if fast is not None:
            data = _market_data(names, classes, interval, period, fast[0], fast[1], queries, start_at, end_at)
        else:
            batches: list[pa.RecordBatch] = []
            with contextlib.closing(_stream(con, plan, interval)) as stream:
                for batch in stream:
                    if batch.num_rows:
                        batches.append(batch)
            if not batches:
                raise EmptyPeriod(
                    f"the {period} period ({start_at} .. {end_at}) holds no {interval} row of "
                    f"{', '.join(names)} with complete features (after each segment's warm-up of 60 bars; a "
                    f"gap of more than [data] max_gap_minutes = {settings.max_gap_minutes} starts a new segment: "
                    "if every segment is shorter, `marketlake check` shows the longest gaps, e.g. an hourly "
                    "stock file whose sessions start at 10:00 needs max_gap_minutes = 30)"
                )
            data = _assemble(names, classes, interval, period, batches, norm, queries, start_at, end_at)
    finally:
        con.close()
    data.seconds = {"setup": t1 - t0, "read": time.perf_counter() - t1}
    counts = np.bincount(data.symbol_idx, minlength=len(names))
    for name, n in zip(names, counts, strict=True):
        say(f"  {name}: {n} rows")
    from rl.market import valid_starts

    data.starts = valid_starts(data, config if config is not None else EnvConfig(), strict=False)
    return data


def _us(t: Any) -> int:
    if t is None:
        return 0
    delta = t.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _column(table: pa.Table, name: str, dtype: Any) -> np.ndarray:
    """One column as a contiguous numpy array (NULL -> NaN for floats)."""
    col = table.column(name)
    if col.num_chunks == 1:
        arr = col.chunk(0).to_numpy(zero_copy_only=False)
    else:
        arr = col.to_numpy()
    return np.ascontiguousarray(arr, dtype=dtype)


def _assemble(
    names: list[str],
    classes: list[str],
    interval: str,
    period: str,
    batches: list[pa.RecordBatch],
    norm: NormStats | None,
    queries: list[str],
    start_at: Any,
    end_at: Any,
) -> MarketData:
    """Record batches (period_rows.sql's columns, from either reader) -> one MarketData, rows ordered (symbol, ts).
    The general path: any row order, NULL or non-finite inputs (such a row is dropped)."""
    if batches:
        table = pa.Table.from_batches(batches).combine_chunks()
        sym = _column(table, "sym", np.int32)
        ts, av = _column(table, "ts_us", np.int64), _column(table, "available_at_us", np.int64)
        seg_no, seg_pos = _column(table, "segment_no", np.int64), _column(table, "segment_pos", np.int64)
        day = _column(table, "day_no", np.int64)
        prices = {p: _column(table, p, np.float64) for p in PRICES}
        raw = [_column(table, c, np.float64) for c in FEATURES]  # one contiguous array a feature; NULL -> NaN
        del table
    else:
        sym = np.zeros(0, np.int32)
        ts = av = seg_no = seg_pos = day = np.zeros(0, np.int64)
        prices = {p: np.zeros(0) for p in PRICES}
        raw = [np.zeros(0) for _ in FEATURES]
    if len(ts) > 1:  # rows come in (symbol, ts) order; a reader that ever did not keep it is sorted here
        d_sym, d_ts = np.diff(sym), np.diff(ts)
        if not bool(np.all((d_sym > 0) | ((d_sym == 0) & (d_ts > 0)))):
            order = np.lexsort((ts, sym))
            sym, ts, av, seg_no, seg_pos, day = (a[order] for a in (sym, ts, av, seg_no, seg_pos, day))
            prices = {p: v[order] for p, v in prices.items()}
            raw = [c[order] for c in raw]
    keep = np.ones(len(ts), dtype=bool)
    for c in raw:
        keep &= np.isfinite(c)
    for p in PRICES:
        keep &= np.isfinite(prices[p]) & (prices[p] > 0)
    if not keep.all():  # a dropped row breaks its segment (consecutive segment_pos below)
        sym, ts, av, seg_no, seg_pos, day = (a[keep] for a in (sym, ts, av, seg_no, seg_pos, day))
        prices = {p: v[keep] for p, v in prices.items()}
        raw = [c[keep] for c in raw]
    # the observation's flag comes from the calendar (minutes_to_close <= 0), never from whether a later
    # row exists: a thin stock's missing last minutes must not tell the agent that nothing more trades
    closing = raw[FEATURES.index("minutes_to_close")] <= 0
    new_seg = np.ones(len(ts), dtype=bool)
    if len(ts) > 1:
        new_seg[1:] = (sym[1:] != sym[:-1]) | (seg_no[1:] != seg_no[:-1]) | (seg_pos[1:] != seg_pos[:-1] + 1)
    if norm is None:
        norm = NormStats.compute(list(FEATURES), raw)
    else:
        _check_norm(norm)
    cols = _Columns(sym, ts, av, new_seg, day, prices, norm.apply(raw), closing)
    return _market_data(names, classes, interval, period, cols, norm, queries, start_at, end_at)


def _check_norm(norm: NormStats) -> None:
    if list(norm.feature_names) != list(FEATURES):
        raise MarketlakeError(
            f"normalisation statistics are for features {norm.feature_names}, this source reads {list(FEATURES)}"
        )


@dataclass
class _Columns:
    """A period's rows as read, in (symbol, ts) order, every row complete: what _market_data finishes."""

    sym: np.ndarray  # int32
    ts: np.ndarray  # int64 µs
    av: np.ndarray  # int64 µs
    new_seg: np.ndarray  # bool: the row starts a segment (another symbol or segment_no, or a row missing)
    day: np.ndarray  # int64 days since 1970-01-01
    prices: dict[str, np.ndarray]  # float64, every one finite and > 0
    features: np.ndarray  # float32 [N, F], normalised
    closing: np.ndarray  # bool: minutes_to_close <= 0


def session_ends(stock: np.ndarray, sym: np.ndarray, day: np.ndarray, at_close: np.ndarray) -> np.ndarray:
    """The rows where a session ends for the market's mechanics (`MarketData.session_end`: where
    `hold_overnight = false` closes a position, in the environments and the evaluation walk alike), of rows
    in (symbol, ts) order: a stock's bar (`stock`, per row) at its session's close by the calendar
    (`at_close`), or a stock's last loaded bar of a trading day that a bar of the same symbol on a later day
    follows (the session's last minutes are missing from the data: the position is not carried overnight).
    The end of a symbol's loaded rows (the period's or the lake's end, mid-session maybe) is not a session
    end by itself: the session may go on after it."""
    out = np.asarray(stock, dtype=bool) & np.asarray(at_close, dtype=bool)
    if len(out) > 1:
        out[:-1] |= stock[:-1] & (sym[1:] == sym[:-1]) & (day[1:] != day[:-1])
    return out


def _market_data(
    names: list[str],
    classes: list[str],
    interval: str,
    period: str,
    c: _Columns,
    norm: NormStats,
    queries: list[str],
    start_at: Any,
    end_at: Any,
) -> MarketData:
    """The MarketData of complete rows in (symbol, ts) order: segments, session ends, the close flag."""
    sym, day, n = c.sym, c.day, len(c.ts)
    segment_id = np.cumsum(c.new_seg, dtype=np.int64) - 1
    is_stock = np.array([a != "crypto" for a in classes], dtype=bool)
    stock = is_stock[sym] if n and len(is_stock) else np.zeros(n, dtype=bool)
    at_close = stock & c.closing
    session_end = session_ends(stock, sym, day, at_close)
    return MarketData(
        symbols=names,
        interval=interval,
        period=period,
        feature_names=list(FEATURES),
        features=c.features,
        open=np.ascontiguousarray(c.prices["open"]),
        high=np.ascontiguousarray(c.prices["high"]),
        low=np.ascontiguousarray(c.prices["low"]),
        close=np.ascontiguousarray(c.prices["close"]),
        ts=c.ts,
        available_at=c.av,
        symbol_idx=sym,
        segment_id=segment_id,
        session_end=session_end,
        at_close=at_close,
        day=day,
        asset_classes=list(classes),
        bounds=(_us(start_at), _us(end_at)),
        norm=norm,
        queries=queries,
    )


def _load_store(params: dict[str, Any], norm: NormStats | None) -> tuple[_Columns, NormStats] | None:
    """The feature store's rows of a period straight into the arrays of a MarketData, with as few passes
    over fresh memory as it takes. The files' row groups of the period are decoded in a background thread
    (`_store_pieces`, a file's groups at a time) while the arrays' memory (sized from the row groups'
    footers; from `ARENAS`: populated in one call, or reused) is mapped in another, and as each piece
    arrives its rows are checked (order, prices), its segment starts and close flags found and its model
    inputs' statistics summed (merged piece by piece). Once all are in, the pieces' rows are copied once
    into the arrays (rows past the period's are never touched) and their inputs normalised, a piece at a
    time, into a small feature-major float32 block transposed into its rows of the one float32 [N, F]
    array, in two threads (`_fill_pieces`). No Arrow batch, concatenation or whole-period temporary. The
    same rows and values as `_assemble` over `_read_store`'s batches, the statistics summed in another
    order (a test checks they agree). None (the caller then takes that general path) when the rows need
    what only it does: dropping a row with a NULL or non-finite input or a price <= 0, sorting, or a
    period with no row."""
    try:
        plan = _store_plan(params)
    except (OSError, pa.ArrowException) as exc:
        raise MarketlakeError(f"reading the feature store failed: {exc}") from exc
    cap = sum(f.rows for f in plan)
    if not cap:
        return None
    nf = len(FEATURES)
    # the arrays the MarketData keeps, in one mapping (see _Arenas)
    specs: list[tuple[Any, tuple[int, ...]]] = [(np.int64, (cap,))] * 3 + [(np.float64, (cap,))] * len(PRICES)
    specs += [(np.int32, (cap,)), (np.float32, (cap, nf))]
    new_seg, closing = np.empty(cap, dtype=bool), np.empty(cap, dtype=bool)
    scratch = np.empty(max(f.rows for f in plan))
    # per column: rows, mean and sum of squared deviations so far (merged a piece at a time, Chan et al.)
    count, means, m2 = 0, np.zeros(nf), np.zeros(nf)
    pieces: _Held = []
    last: tuple[int, int, int, int] | None = None  # (sym, ts, segment_no, segment_pos) of the previous row
    to_close = FEATURES.index("minutes_to_close")
    if norm is not None:
        _check_norm(norm)
    with (
        contextlib.closing(_background(_store_pieces(params, plan), "reading the feature store")) as stream,
        _mapped(_arena_bytes(specs)) as arena,
    ):
        for p in stream:
            a, r = count, p.rows
            b = a + r
            cols = p.batch.columns

            def take(name: str, dtype: Any, p: _StorePiece = p, cols: list[Any] = cols) -> np.ndarray:
                return p.take(_values(cols[_STORE_INDEX[name]], dtype))

            t = take("ts", np.int64)
            sn, sp = take("segment_no", np.int64), take("segment_pos", np.int64)
            # rows in (symbol, ts) order, or the general path sorts them
            if last is not None and (p.sym < last[0] or (p.sym == last[0] and t[0] <= last[1])):
                return None
            if r > 1 and not bool((t[1:] > t[:-1]).all()):
                return None
            new_seg[a] = last is None or (last[0], last[2], last[3]) != (p.sym, int(sn[0]), int(sp[0]) - 1)
            np.not_equal(sn[1:], sn[:-1], out=new_seg[a + 1 : b])
            new_seg[a + 1 : b] |= sp[1:] != sp[:-1] + 1
            last = (p.sym, int(t[-1]), int(sn[-1]), int(sp[-1]))
            for c in PRICES:
                v = take(c, np.float64)
                if not (bool(v.min() > 0) and math.isfinite(v.max())):
                    return None
            inputs = [_feature_values(p, c) for c in FEATURES]
            x = inputs[to_close]
            closing[a:b] = (x <= 0) if isinstance(x, float) else np.less_equal(x, 0)
            sums, devs = np.empty(nf), np.zeros(nf)
            for j, x in enumerate(inputs):
                if isinstance(x, float):
                    sums[j] = x * r
                else:
                    sums[j] = np.add.reduce(x)
                    if norm is None:
                        d = scratch[:r]
                        np.subtract(x, sums[j] / r, out=d)
                        devs[j] = np.einsum("i,i->", d, d)  # as _centre: one pass, no BLAS thread
            if not np.isfinite(sums).all():  # a NaN or an infinity among them
                return None
            piece_means = sums / r
            delta = piece_means - means
            m2 += devs + delta * delta * (count * r / b)
            means += delta * (r / b)
            count = b
            pieces.append((p, inputs, a))
        if not count:
            return None
        arrays = _carve(arena(), specs)
    n = count
    if norm is None:
        stds = np.sqrt(m2 / n)
        norm = NormStats(list(FEATURES), means, np.where(stds > 1e-12, stds, 1.0))
    ts, av, day, *price_arrays, sym, features = arrays
    _fill_pieces(pieces, norm, arrays)
    cols = _Columns(
        sym=sym[:n],
        ts=ts[:n],
        av=av[:n],
        new_seg=new_seg[:n],
        day=day[:n],
        prices={c: v[:n] for c, v in zip(PRICES, price_arrays, strict=True)},
        features=features[:n],
        closing=closing[:n],
    )
    return cols, norm


@contextlib.contextmanager
def _mapped(nbytes: int) -> Generator[Callable[[], np.ndarray], None, None]:
    """`ARENAS.take(nbytes)` in a helper thread (populating a mapping is the kernel's work, without the
    GIL: it overlaps the reading thread's decoding and the consumer's checks and sums); the context's
    value waits for it and gives the arena. The thread is waited for on leaving, whatever happened."""
    got: list[Any] = []

    def work() -> None:
        try:
            got.append(ARENAS.take(nbytes))
        except BaseException as exc:  # handed to the caller
            got.append(exc)

    thread = threading.Thread(target=work, name="marketlake-arena", daemon=True)
    thread.start()

    def arena() -> np.ndarray:
        thread.join()
        if isinstance(got[0], BaseException):
            raise got[0]
        arena: np.ndarray = got[0]
        return arena

    try:
        yield arena
    finally:
        thread.join()
        got.clear()


_Held = list[tuple[_StorePiece, list[np.ndarray | float], int]]
"""The pieces of a store read, each with its model inputs (`_feature_values`) and its first row."""


def _fill_pieces(pieces: _Held, norm: NormStats, arrays: list[np.ndarray]) -> None:
    """Each piece's rows copied into `arrays` (_load_store's, carved from its arena) and its model inputs
    normalised and clipped into its rows of the features, in two threads when there is more than one piece
    (numpy releases the GIL for the work; the reading thread is done by now, so the other core is free):
    the pieces split in two runs of about equal rows."""
    if len(pieces) > 1:
        total, at, half = sum(p.rows for p, _, _ in pieces), 0, 1
        for i, (p, _, _) in enumerate(pieces):
            if 2 * (at + p.rows) > total:
                half = max(i, 1)
                break
            at += p.rows
        failed: list[BaseException] = []

        def work() -> None:
            try:
                _fill_run(pieces[half:], norm, arrays)
            except BaseException as exc:  # handed to the caller: no row may be left unwritten unnoticed
                failed.append(exc)

        other = threading.Thread(target=work, name="marketlake-fill", daemon=True)
        other.start()
        try:
            _fill_run(pieces[:half], norm, arrays)
        finally:
            other.join()
        if failed:
            raise failed[0]
    else:
        _fill_run(pieces, norm, arrays)


def _fill_run(pieces: _Held, norm: NormStats, arrays: list[np.ndarray]) -> None:
    """_fill_pieces' work for some pieces: a piece's columns copied into its rows, its inputs normalised into
    a feature-major float32 block, then clipped and transposed into its rows of the features."""
    if not pieces:
        return
    ts, av, day, *price_arrays, sym, features = arrays
    nf = len(norm.mean)
    rows = max(p.rows for p, _, _ in pieces)
    block, scratch = np.empty((nf, rows), dtype=np.float32), np.empty(rows)
    for p, inputs, a in pieces:
        r = p.rows
        b = a + r
        cols = p.batch.columns
        ts[a:b] = p.take(_values(cols[_STORE_INDEX["ts"]], np.int64))
        av[a:b] = p.take(_values(cols[_STORE_INDEX["available_at"]], np.int64))
        day[a:b] = p.take(_values(cols[_STORE_INDEX["trading_day"]], np.int32))
        sym[a:b] = p.sym
        for c, out in zip(PRICES, price_arrays, strict=True):
            out[a:b] = p.take(_values(cols[_STORE_INDEX[c]], np.float64))
        for j, x in enumerate(inputs):
            mean, std = float(norm.mean[j]), float(norm.std[j])
            if isinstance(x, float):
                block[j, :r] = (x - mean) / std
            else:
                d = scratch[:r]
                np.subtract(x, mean, out=d)
                np.divide(d, std, out=block[j, :r])
        blk = block[:, :r]
        np.clip(blk, -CLIP, CLIP, out=blk)  # in float32: the same as clipping before the rounding
        features[a:b] = blk.T


def market_data_from_arrays(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    features: np.ndarray,
    *,
    segment_id: np.ndarray | None = None,
    session_end: np.ndarray | None = None,
    ts: np.ndarray | None = None,
    symbols: list[str] | None = None,
    symbol_idx: np.ndarray | None = None,
    asset_classes: list[str] | None = None,
    interval: str = "1m",
    period: str = "train",
) -> MarketData:
    """A MarketData from given arrays, for unit tests of the market rules and for notebooks holding
    bars read some other way; features are used as given (already normalised)."""
    n = len(close)
    f = np.ascontiguousarray(features, dtype=np.float32).reshape(n, -1)
    ts = np.arange(n, dtype=np.int64) * 60_000_000 if ts is None else np.asarray(ts, np.int64)
    syms = symbols or ["TEST"]
    data = MarketData(
        symbols=syms,
        interval=interval,
        period=period,
        feature_names=[f"f{i}" for i in range(f.shape[1])],
        features=f,
        open=np.asarray(open_, np.float64),
        high=np.asarray(high, np.float64),
        low=np.asarray(low, np.float64),
        close=np.asarray(close, np.float64),
        ts=ts,
        available_at=ts + INTERVAL_MINUTES.get(interval, 1) * 60_000_000,
        symbol_idx=np.zeros(n, np.int32) if symbol_idx is None else np.asarray(symbol_idx, np.int32),
        segment_id=np.zeros(n, np.int64) if segment_id is None else np.asarray(segment_id, np.int64),
        session_end=np.zeros(n, bool) if session_end is None else np.asarray(session_end, bool),
        day=ts // 86_400_000_000,
        asset_classes=asset_classes or ["crypto"] * len(syms),
        bounds=(int(ts[0]) if n else 0, int(ts[-1]) + 60_000_000 if n else 0),
        norm=NormStats([f"f{i}" for i in range(f.shape[1])], np.zeros(f.shape[1]), np.ones(f.shape[1])),
    )
    return data


def prefetch_period(
    root: Path | str | None,
    settings: Settings,
    symbols: list[str] | None,
    interval: str,
    period: str,
    norm: NormStats | None = None,
    *,
    config: Any = None,
) -> Future[MarketData]:
    """load_period in a background thread (its own DuckDB connection): e.g. the validation period loads
    while training starts. `.result()` gives the MarketData or raises load_period's error."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marketlake-period")
    future = pool.submit(
        load_period,
        root,
        settings,
        symbols,
        interval,
        period,
        norm,
        None,
        config=config,
        warn_ineligible=False,
    )
    pool.shutdown(wait=False)
    return future


def iter_period(
    root: Path | str | None,
    settings: Settings,
    symbols: list[str] | None,
    interval: str,
    period: str,
    norm: NormStats | None = None,
    say: Callable[[str], None] | None = None,
    *,
    config: Any = None,
    max_rows: int = 2_000_000,
) -> Iterator[MarketData]:
    """A period too large for memory, as MarketData chunks of at most about `max_rows` rows: whole symbols
    while they fit, a larger symbol cut at record-batch boundaries (about a month of 1m bars each; an
    episode or walk never crosses a chunk). The next chunk's query runs in the background thread while the
    caller works on the current one. Symbol indices refer to the full symbol list in every chunk.
    norm None (train only): a first pass over the period computes the statistics, then a second yields."""
    from rl.market import EnvConfig, valid_starts

    if period not in PERIODS:
        raise MarketlakeError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    if norm is None and period != "train":
        raise MarketlakeError(
            f"the {period} period needs the train period's normalisation statistics (norm=...)"
        )
    say = say or (lambda _m: None)
    cfg = config if config is not None else EnvConfig()
    queries: list[str] = []
    con = lake.connect(root, read_only=True, settings=settings)
    try:
        start_at, end_at = _period_bounds(con, period, queries)
        chosen = _select(con, symbols, interval, queries, say, True)
        names, classes = [s for s, _ in chosen], [a for _, a in chosen]
        plan = _read_plan(con, root, settings, names, interval, start_at, end_at, queries, say)
        if norm is None:  # pass 1: sums for the mean and variance, batch by batch
            n, total, total_sq = 0, np.zeros(len(FEATURES)), np.zeros(len(FEATURES))
            with contextlib.closing(_stream(con, plan, interval)) as stream:
                for batch in stream:
                    if not batch.num_rows:
                        continue
                    x = np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in FEATURES])
                    x = x[np.isfinite(x).all(axis=1)]
                    n += len(x)
                    total += x.sum(axis=0)
                    total_sq += (x * x).sum(axis=0)
            if n == 0:
                raise MarketlakeError(f"the {period} period holds no {interval} row of {', '.join(names)}")
            mean = total / n
            std = np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))
            norm = NormStats(list(FEATURES), mean, np.where(std > 1e-12, std, 1.0))
            for sql, params in plan:  # the second pass runs them again
                _record(queries, sql, params)
        held: list[pa.RecordBatch] = []
        rows = 0

        def chunk() -> MarketData:
            d = _assemble(names, classes, interval, period, held, norm, list(queries), start_at, end_at)
            d.starts = valid_starts(d, cfg, strict=False)
            return d

        with contextlib.closing(_stream(con, plan, interval)) as stream:
            for batch in stream:
                if not batch.num_rows:
                    continue
                if rows and rows + batch.num_rows > max_rows:
                    yield chunk()
                    held, rows = [], 0
                held.append(batch)
                rows += batch.num_rows
            if rows:
                yield chunk()
    finally:
        con.close()

"""The lake's only way in: atomic, validated, deduplicating partition writes under a writer lock.

A partition is one folder `key=value/...` holding one `data.parquet` and its `_manifest.json` (row count,
sha256, inputs). A write goes to a temporary file beside the target, is fsynced, then renamed over it:
a reader sees the old file or the new one, never half of one; a crash leaves the last good state and a
temporary name that no view's glob matches (`data.parquet.tmp-*`), removed by the next writer. The
folders' renames are fsynced together when the lock is released (`LakeWriter.sync`): a power cut before
that may lose whole recent writes, never part of one.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.errors import REPAIR, LakeLocked, MarketlakeError, SchemaMismatch
from lake.paths import SCHEMA_ANCHOR, LakePaths, resolve_lake_root, validate_partition_value
from lake.schemas import BAR_REVISIONS, BARS, DATASETS, UTC_TS, Dataset

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # no C library to ask (not a POSIX system)
    _LIBC = None

DATA_FILE = "data.parquet"
MANIFEST_FILE = "_manifest.json"
TMP_MARK = ".tmp-"
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_statistics": True, "use_dictionary": True}
"""The options of every lake file, but for `use_dictionary`, which `parquet_options` narrows to the text
columns."""


def parquet_options(schema: pa.Schema, compression: str = "zstd") -> dict[str, Any]:
    """PARQUET_OPTIONS for a table of `schema`: dictionary encoding for its text columns only (symbols,
    file names, reasons repeat; prices, volumes and instants rarely do, and a dictionary of them costs
    three times the encoding time of the whole file and a quarter more bytes)."""
    key = (schema, compression)
    if key not in _OPTIONS:
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        _OPTIONS[key] = {**PARQUET_OPTIONS, "use_dictionary": text, "compression": compression}
    return dict(_OPTIONS[key])


_OPTIONS: dict[tuple[pa.Schema, str], dict[str, Any]] = {}


def _dataset_options(dataset: Dataset) -> dict[str, Any]:
    """`parquet_options` of a dataset's files, without hashing its schema at each write (a table written to
    a dataset is conformed to its schema first: the same options)."""
    key = (dataset.name, id(dataset.schema), dataset.compression)
    got = _DATASET_OPTIONS.get(key)
    if got is None or got[0] is not dataset.schema:
        got = (dataset.schema, parquet_options(dataset.schema, dataset.compression))
        _DATASET_OPTIONS[key] = got
    return dict(got[1])


_DATASET_OPTIONS: dict[tuple[str, int, str], tuple[pa.Schema, dict[str, Any]]] = {}


log = logging.getLogger("marketlake.writer")
BATCH_PARTITIONS = 512
"""Partitions `LakeWriter.write_many` writes, makes durable and renames in at once."""
SYNCFS_FROM = 8
"""More files or folders than this to make durable at once: one syncfs of their file system instead of an
fsync of each (every fsync is a flush of the disk's cache; a syncfs is one)."""
DURABLE_THREADS = 16
"""Files fsynced at once by `_make_durable` when it cannot make a whole batch durable in one call."""
SYNC_THREADS = 16
"""Folder fsyncs made at once when the lock is released."""


WRITES_FILE = ".writes"
"""The lake's write sequence: 8 bytes (little-endian), odd while a writer replaces files (LakeWriter.changing),
one more after. DuckDB (1.5.6) opens a Parquet file twice in one scan, once for its footer and once for its
pages, so a file replaced between the two is read as neither version (an error, or wrong rows):
lake.connect.consistent runs a query again when the sequence says a replacement overlapped it."""


def read_writes(root: Path) -> int | None:
    """The lake's write sequence (WRITES_FILE), or None when no writer has written one yet."""
    try:
        with open(root / WRITES_FILE, "rb") as f:
            raw = f.read(8)
    except OSError:  # none yet, or not ours to read: no guard to give
        return None
    return struct.unpack("<Q", raw)[0] if len(raw) == 8 else None


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # read into one reused buffer


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(path: Path) -> bool:
    """syncfs(2) of the file system holding `path` (Linux): every dirty page and inode of it written and
    flushed in one call. False when there is no syncfs or it reports an error."""
    fn = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    if fn is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return bool(fn(fd) == 0)
    finally:
        os.close(fd)


def _syncfs_all(paths: Sequence[Path], *, files: bool = False) -> bool:
    """One syncfs of each file system holding these paths (a lake may span several: a mount inside it);
    False when one cannot be made (the caller then fsyncs each path)."""
    by_device: dict[int, Path] = {}
    if files:  # a written file is on its folder's file system: one stat per folder
        paths = list({os.path.dirname(p): p for p in reversed(paths)}.values())
    try:
        for p in paths:
            by_device.setdefault(os.stat(p).st_dev, p)
    except OSError:
        return False
    return all(_syncfs(p) for p in by_device.values())


def _make_durable(files: Sequence[Path]) -> None:
    """Make these written files durable (their data and size on the disk) before they are renamed in:
    one syncfs of each file system holding them when there is one and it succeeds (the cost of one flush
    instead of one per file), else an fsync of each, DURABLE_THREADS at once (which raises the OSError of
    a file that cannot be made durable)."""
    if not files:
        return
    if len(files) > SYNCFS_FROM and _syncfs_all(files, files=True):
        return
    if len(files) < 4:
        for f in files:
            _fsync_path(f)
        return
    with ThreadPoolExecutor(DURABLE_THREADS) as pool:
        list(pool.map(_fsync_path, files))


def fsync_dir(path: Path) -> None:
    """Make the renames in folder `path` durable, where the file system lets a folder be opened (the lake's
    writes, and the run files of rl/: one implementation)."""
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_NO_ROOM = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is larger than this process or file system allows (file size limit)",
}


def io_reason(exc: BaseException) -> str:
    """A short reason for an I/O failure. pyarrow's OSError carries no errno attribute, only
    `[errno N]` in its text: both are read, so a full disk is named whichever layer hit it."""
    code = getattr(exc, "errno", None)
    if code is None:
        m = re.search(r"\[errno (\d+)\]", str(exc), re.IGNORECASE)
        code = int(m.group(1)) if m else None
    if code in _NO_ROOM:
        return _NO_ROOM[code]
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def require_writable(folder: Path, why: str) -> None:
    """Refuse, before any work, a folder this process cannot write to (a read-only mount, no permission,
    a file where a folder should be): a temporary file is made and removed in it, or, when it does not
    exist yet, in the nearest folder above it that does. `why`: what is written there."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".marketlake-probe-"):
            pass
    except OSError as exc:
        raise MarketlakeError(f"cannot write to {folder}: {io_reason(exc)} ({why})") from None


def _log_wait(message: str) -> None:
    """The default `on_wait`: a warning, shown by the CLI's log handler (stderr) even with --quiet."""
    log.warning(message)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file and a rename, fsynced."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """What `write` writes into an open binary file, put at `path` whole or not at all: written under a
    temporary name beside it, fsynced, renamed over it and its folder fsynced (a crash leaves the old file
    or the new one, and a `*.tmp-*` name no reader takes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def conform(dataset: Dataset, table: pa.Table) -> pa.Table:
    """Return `table` with exactly the dataset's columns and types, or raise SchemaMismatch naming why.

    Columns are matched by name; a safe cast (int to float, string to large string) is allowed, a lossy
    one is not; a null in a non-nullable column is refused.
    """
    if table.schema.equals(dataset.schema, check_metadata=True):  # built for the dataset: check nulls only
        for f in dataset.schema:
            if not f.nullable and table.column(f.name).null_count:
                n = table.column(f.name).null_count
                raise SchemaMismatch(f"{dataset.name}.{f.name}: {n} null value(s) in a non-null column")
        return table
    have, want = set(table.column_names), set(dataset.schema.names)
    missing = [n for n in dataset.schema.names if n not in have]
    extra = [n for n in table.column_names if n not in want]
    if missing or extra:
        raise SchemaMismatch(
            f"{dataset.name}: columns do not match the schema (missing {missing}, unexpected {extra})"
        )
    columns = []
    for f in dataset.schema:
        col = table.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatch(
                    f"{dataset.name}.{f.name}: {col.type} does not fit {f.type}: {exc}"
                ) from exc
        if not f.nullable and col.null_count:
            raise SchemaMismatch(
                f"{dataset.name}.{f.name}: {col.null_count} null value(s) in a non-null column"
            )
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=dataset.schema)


def _strictly_sorted(dataset: Dataset, table: pa.Table) -> bool:
    """True when the dataset's one key column is its sort order and `table` is already in strictly rising
    order of it (no null): then every key occurs once and the rows are sorted, nothing to do."""
    if len(dataset.key) != 1 or dataset.sort_by != dataset.key:
        return False
    col = table.column(dataset.key[0])
    if col.null_count or not (pa.types.is_timestamp(col.type) or pa.types.is_integer(col.type)):
        return False
    return _rising(col.combine_chunks().cast(pa.int64()).to_numpy())


def _instants(col: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column without nulls as int64 (its unit)."""
    values = col.combine_chunks().to_numpy(zero_copy_only=False)
    return values.view(np.int64) if values.dtype.kind == "M" else values.astype(np.int64)


def _rising(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] > values[:-1]))


def dedup_sort(dataset: Dataset, table: pa.Table) -> pa.Table:
    """Keep one row per key (the first or last occurrence, by the dataset's rule), sorted."""
    if table.num_rows == 0:
        return table
    if _strictly_sorted(dataset, table):
        return table  # the usual fresh write: already one row per key, in order
    idx = pa.array(range(table.num_rows), type=pa.int64())
    agg = "min" if dataset.keep == "first" else "max"
    grouped = (
        table.select(list(dataset.key))
        .append_column("__i", idx)
        .group_by(list(dataset.key), use_threads=False)
        .aggregate([("__i", agg)])
    )
    keep_idx = pc.sort_indices(grouped.column(f"__i_{agg}"))
    picked = table.take(pc.take(grouped.column(f"__i_{agg}"), keep_idx))
    return picked.sort_by([(c, "ascending") for c in dataset.sort_by])


def _key_array(dataset: Dataset, table: pa.Table) -> pa.Array:
    """One array identifying each row by the dataset's key (joined as text when the key has several columns)."""
    if len(dataset.key) == 1:
        return table.column(dataset.key[0]).combine_chunks()
    parts = [pc.cast(table.column(k), pa.string()).fill_null("\x00") for k in dataset.key]
    return pc.binary_join_element_wise(*parts, "\x1f").combine_chunks()


def partition_dir(paths: LakePaths, dataset: Dataset, partition: Mapping[str, str]) -> Path:
    if set(partition) != set(dataset.partition_by):
        raise SchemaMismatch(
            f"{dataset.name}: partition keys {sorted(partition)} do not match {list(dataset.partition_by)}"
        )
    values = tuple(partition[key] for key in dataset.partition_by)
    return _partition_dir(paths, dataset.name, dataset.partition_by, values)


@functools.lru_cache(maxsize=8192)
def _partition_dir(paths: LakePaths, name: str, keys: tuple[str, ...], values: tuple[str, ...]) -> Path:
    """The folder of one partition (its values validated), remembered: a day file's landing asks for each
    of its thousands of partitions more than once."""
    parts = (f"{k}={validate_partition_value(k, v)}" for k, v in zip(keys, values, strict=True))
    return paths.dataset(name).joinpath(*parts)


@dataclass
class WriteResult:
    dataset: str
    path: Path
    rows: int
    """Rows in the partition after the write."""
    rows_added: int
    """Rows whose key was not in the partition before."""
    changed: bool
    """False when the partition already held exactly these rows (nothing was written)."""


@dataclass
class LakeWriter:
    """Holds the lake's writer lock; every dataset write goes through it.

    Use as a context manager: `with LakeWriter.open(root) as w: w.write(BARS, {...}, table)`.
    """

    paths: LakePaths
    bars_written: bool = False
    """True once a bars partition changed: whoever landed the bars (ingest.sessions.land) then brings the
    calendar up to date before unlocking."""
    bars_span: tuple[dt.datetime, dt.datetime] | None = None
    """The earliest and latest `ts` of every bars table given to `write` under this lock, changed or not
    (None when none): the calendar is brought up to date for these bars, without reading the lake's."""
    on_bars: Callable[[dt.datetime, dt.datetime, bool], object] | None = field(default=None, repr=False)
    """Told of every bars write, before its file is written: its earliest and latest ts and whether the
    partition changes (ingest.sessions.land starts on the calendar those bars need meanwhile)."""
    _lock_fd: int | None = field(default=None, repr=False)
    _renamed_dirs: set[Path] = field(default_factory=set, repr=False)
    _span_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _writes_fd: int | None = field(default=None, repr=False)
    _writes: int = field(default=0, repr=False)
    _changing_depth: int = field(default=0, repr=False)
    _changing_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _mirror_checked: bool = field(default=False, repr=False)
    _mirror_checking: bool = field(default=False, repr=False)
    _mirror_check_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _mirror_marked: bool = field(default=False, repr=False)
    """Whether this lock has marked the mirror as changing (its first bars change)."""
    _mirror_todo: dict[tuple[str, str], set[str]] = field(default_factory=dict, repr=False)
    _mirror_known: dict[Path, tuple[int, int]] = field(default_factory=dict, repr=False)
    _mirror_whole_at_open: bool = field(default=False, repr=False)
    """Whether the mirror was whole when this lock began (`chosen.is_current`)."""
    _mirror_found_whole: bool = field(default=False, repr=False)
    """Whether this lock found the mirror whole, at the lock's start or by its check (`out_of_step`), and
    has not changed it since: its mark then names the sequence the lock leaves (`_mirror_done`)."""
    _mirror_broken: str | None = field(default=None, repr=False)
    """Why the mirror could not be kept up to date under this lock (it is then left not whole)."""

    @classmethod
    @contextmanager
    def open(
        cls,
        root: str | os.PathLike[str] | None = None,
        *,
        wait_seconds: float = 600.0,
        on_wait: Any = None,
    ) -> Iterator[LakeWriter]:
        writer = cls(LakePaths(resolve_lake_root(root)))
        writer._acquire(wait_seconds, on_wait if on_wait is not None else _log_wait)
        try:
            writer.init()
            yield writer
            writer._mirror_finish()
        except BaseException:
            try:  # what was written before the error is made durable too; the error is the one to report
                writer.sync()
                writer._mirror_done()
            except OSError as exc:
                log.warning("the lake's last writes could not be made durable: %s", io_reason(exc))
            finally:
                writer._release()
            raise
        try:
            writer.sync()
            writer._mirror_done()
        except OSError as exc:
            raise MarketlakeError(
                f"the lake's writes could not be made durable (fsync of their folders): {io_reason(exc)}"
            ) from exc
        finally:
            writer._release()

    def durable(self, folder: Path) -> None:
        """Make the renames already made in `folder` durable now, before a write that depends on them (a
        power cut must never keep the later write and lose the earlier one); the rest wait for `sync`."""
        if folder in self._renamed_dirs:
            self._renamed_dirs.discard(folder)
            _fsync_dir(folder)

    def sync(self) -> None:
        """Make the renames of this lock's writes durable: an fsync of each folder they were made in,
        several at once (the file system commits them together); for many folders one syncfs of their
        file system instead, when it succeeds (`_syncfs_all`)."""
        if len(self._renamed_dirs) > SYNCFS_FROM and _syncfs_all(list(self._renamed_dirs)):
            self._renamed_dirs = set()
            return
        dirs, self._renamed_dirs = sorted(self._renamed_dirs), set()
        if len(dirs) < 4:
            for d in dirs:
                _fsync_dir(d)
            return

        def chunk(part: list[Path]) -> None:
            for d in part:
                _fsync_dir(d)

        with ThreadPoolExecutor(SYNC_THREADS) as pool:
            list(pool.map(chunk, [dirs[i::SYNC_THREADS] for i in range(SYNC_THREADS)]))

    # --- locking -------------------------------------------------------------------------------------
    def _acquire(self, wait_seconds: float, on_wait: Any) -> None:
        root = self.paths.root
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.paths.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise MarketlakeError(f"cannot write to the lake at {root}: {exc.strerror or exc}") from exc
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LakeLocked(
                        f"the lake at {root} is locked by a writer ({holder}); gave up after {wait_seconds:.0f}s"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"waiting for the lake's writer lock, held by {holder} …")
                    told = True
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._lock_fd = fd
        try:
            self._writes_fd = os.open(self.paths.root / WRITES_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            current = read_writes(self.paths.root)
            self._writes = current or 0
            # written now when new (its block exists before any rename needs it: a full disk is named here)
            # or odd (a writer stopped inside a change: nothing is changing now); else left as it is (a run
            # that changes nothing changes no file of the lake, not even an mtime)
            if current is None or current % 2:
                self._set_writes(self._writes + self._writes % 2)
            from lake import chosen

            self._mirror_whole_at_open = self._mirror_found_whole = chosen.is_current(self.paths)
        except OSError as exc:
            self._release()
            raise MarketlakeError(f"cannot write to the lake at {root}: {exc.strerror or exc}") from exc

    def _release(self) -> None:
        if self._writes_fd is not None:
            if self._writes % 2:  # (an error inside `changing`: its end was not reached)
                with contextlib.suppress(OSError):
                    self._set_writes(self._writes + 1)
            os.close(self._writes_fd)
            self._writes_fd = None
        if self._lock_fd is not None:
            try:
                os.ftruncate(self._lock_fd, 0)
            except OSError:
                pass
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- what readers see change ----------------------------------------------------------------------
    def _set_writes(self, n: int) -> None:
        assert self._writes_fd is not None
        os.pwrite(self._writes_fd, struct.pack("<Q", n), 0)
        self._writes = n

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Files of the lake are replaced inside this block: the lake's write sequence (WRITES_FILE) is odd
        while it runs and one more when it ends (a seqlock), so a reader (lake.connect.consistent) can tell
        whether any replacement overlapped its query. Nested blocks count once."""
        with self._changing_lock:
            self._changing_depth += 1
            try:
                if self._changing_depth == 1 and self._writes_fd is not None:
                    self._set_writes(self._writes + 1 if self._writes % 2 == 0 else self._writes)
                yield
            finally:
                self._changing_depth -= 1
                if self._changing_depth == 0 and self._writes_fd is not None and self._writes % 2:
                    self._set_writes(self._writes + 1)
                    if self._mirror_found_whole and not self._mirror_marked and self._mirror_broken is None:
                        self._mirror_remark(self._writes)

    def _mirror_remark(self, writes: int) -> None:
        """Under a lock that found the mirror whole and has not changed bars, after a change window of other
        datasets (or a walk that found nothing changed): the mirror is whole at the new sequence
        (`chosen.remark`), so that connections made during the rest of the lock read the mirror (a
        `features refresh`, a news ingest)."""
        from lake import chosen

        try:
            chosen.remark(self.paths, writes)
        except OSError as exc:  # (not whole to readers until a writer that may write the mark walks it again:
            # slower, never wrong; a lake shared by users whose files the others may not write)
            log.debug("bars_chosen: its sequence could not be moved on: %s", io_reason(exc))

    # --- layout --------------------------------------------------------------------------------------
    def init(self) -> None:
        """Create the dataset folders with their empty schema anchors, and remove stale temporary files."""
        try:
            for dataset in DATASETS.values():
                write_anchor(self.paths, dataset)
            self.remove_stale_temporaries()
        except OSError as exc:
            raise MarketlakeError(f"cannot prepare the lake at {self.paths.root}: {io_reason(exc)}") from exc

    def remove_stale_temporaries(self) -> int:
        removed = 0
        for base in (self.paths.datasets, self.paths.raw):
            if base.exists():
                for p in base.rglob(f"*{TMP_MARK}*"):
                    if p.is_file():
                        p.unlink(missing_ok=True)
                        removed += 1
        return removed

    # --- writes --------------------------------------------------------------------------------------
    def write(
        self,
        dataset: Dataset,
        partition: Mapping[str, str],
        table: pa.Table,
        *,
        mode: Literal["merge", "replace"] = "merge",
        inputs: Sequence[Mapping[str, Any]] = (),
        keep_empty: bool = False,
    ) -> WriteResult:
        """Write `table` into one partition.

        `merge` adds the rows to what the partition holds, one row per key (the dataset's `keep` rule);
        `replace` makes the partition hold exactly `table`. `inputs` (raw files with their sha256 or ETag)
        are recorded in the partition's manifest. `keep_empty`: a partition that does not exist yet is
        written even with no rows (its manifest records `inputs`; else nothing is written).
        """
        if self._lock_fd is None:
            raise MarketlakeError("write outside of the lake's writer lock")
        planned = self._plan(dataset, partition, table, mode, inputs, keep_empty=keep_empty)
        if isinstance(planned, WriteResult):
            return planned
        if dataset.name == "bars":
            # before the change's window: a whole rebuild (an upgraded lake's, after a killed writer) or the
            # walk are each pair one change of their own, not one change readers wait for from end to end
            self.bring_mirror_up_to_date()
        staged = self._stage(planned)
        # a bars partition, its revisions and the mirror's files are one change for readers
        with self.changing() if dataset.name == "bars" else contextlib.nullcontext():
            try:
                return self._publish(planned, staged)
            finally:
                self._mirror_flush()

    def write_many(
        self,
        dataset: Dataset,
        writes: Sequence[tuple[Mapping[str, str], pa.Table, Sequence[Mapping[str, Any]]]],
        *,
        mode: Literal["merge", "replace"] = "merge",
        threads: int = 2,
    ) -> list[WriteResult]:
        """`write(dataset, partition, table, mode=mode, inputs=inputs)` for each (partition, table, inputs)
        of `writes` (distinct partitions): the same files and results, in batches of BATCH_PARTITIONS.
        Each batch is decided and written under temporary names by `threads` workers, then made durable
        at once (`_make_durable`: one pass for all its files instead of an fsync each), then renamed in,
        in order (each data file then its manifest, as `write` does). Nothing is renamed in before it is
        durable. The first error stops the rest: the batch's writes not renamed in leave nothing (their
        temporary files are removed) and the error is raised."""
        if self._lock_fd is None:
            raise MarketlakeError("write outside of the lake's writer lock")
        dirs = [partition_dir(self.paths, dataset, p) for p, _, _ in writes]
        if len(set(dirs)) != len(dirs):
            raise MarketlakeError(f"{dataset.name}: write_many was given one partition twice")
        if len(writes) < 2:
            return [self.write(dataset, p, t, mode=mode, inputs=i) for p, t, i in writes]
        try:
            return self._write_many(dataset, writes, dirs, mode=mode, threads=threads)
        finally:
            self._mirror_flush()  # (each batch's renames and its mirror are one change: `_write_many`)

    def _write_many(
        self,
        dataset: Dataset,
        writes: Sequence[tuple[Mapping[str, str], pa.Table, Sequence[Mapping[str, Any]]]],
        dirs: list[Path],
        *,
        mode: Literal["merge", "replace"],
        threads: int,
    ) -> list[WriteResult]:
        now = _now()  # the writes are landed together: one landed_at (their manifests' inputs alike)
        if dataset.name == "bars" and not self._mirror_checked:
            if not self._mirror_whole_at_open:
                # a mirror to rebuild whole (a new lake's): rebuilt before the workers make the batch's
                # folders, which it would otherwise walk (one empty folder per partition staged)
                self.bring_mirror_up_to_date()

        def work(i: int) -> tuple[WriteResult | _Planned, _Staged | None]:
            partition, table, inputs = writes[i]
            planned = self._plan(dataset, partition, table, mode, inputs, directory=dirs[i], now=now)
            if isinstance(planned, WriteResult):
                return planned, None
            return planned, self._stage(planned, sync=False)

        out: list[WriteResult] = []
        starts = range(0, len(writes), BATCH_PARTITIONS)
        with ThreadPoolExecutor(max(1, threads)) as pool:

            def submit(start: int) -> list[Future[tuple[WriteResult | _Planned, _Staged | None]]]:
                return [
                    pool.submit(work, i) for i in range(start, min(start + BATCH_PARTITIONS, len(writes)))
                ]

            def abandon(futures: list[Future[tuple[WriteResult | _Planned, _Staged | None]]]) -> None:
                for f in futures:
                    f.cancel()
                for f in futures:  # what was staged will never be renamed in
                    if not f.cancelled() and f.exception() is None:
                        _, s = f.result()
                        if s is not None:
                            s.discard()

            futures = submit(0)
            for start in starts:
                ahead: list[Future[tuple[WriteResult | _Planned, _Staged | None]]] = []
                done: list[tuple[WriteResult | _Planned, _Staged | None]] = []
                try:
                    for f in futures:
                        done.append(f.result())
                    if start + BATCH_PARTITIONS < len(writes):  # the next batch is written meanwhile
                        ahead = submit(start + BATCH_PARTITIONS)
                    staged = [s for _, s in done if s is not None]
                    try:
                        _make_durable([p for s in staged for p in (s.data, s.manifest)])
                    except OSError as exc:
                        raise MarketlakeError(
                            f"could not write {dataset.name} partitions: {io_reason(exc)} (fsync); "
                            "the previous partitions are intact"
                        ) from exc
                except BaseException:
                    abandon(futures + ahead)
                    raise
                if dataset.name == "bars" and any(isinstance(p, _Planned) for p, _ in done):
                    self.bring_mirror_up_to_date()  # (outside the batch's window, as in `write`)
                # a batch of bars partitions, their revisions and the mirror's files are one change for
                # readers; other datasets' partitions are renamed in a `changing` window each
                with self.changing() if dataset.name == "bars" else contextlib.nullcontext():
                    for n, (planned, s) in enumerate(done):
                        if isinstance(planned, WriteResult):
                            out.append(planned)
                            continue
                        assert s is not None
                        try:
                            out.append(self._publish(planned, s))
                        except BaseException:
                            for _, later in done[n + 1 :]:
                                if later is not None:
                                    later.discard()
                            abandon(ahead)
                            raise
                    self._mirror_flush()
                futures = ahead
        return out

    def _plan(
        self,
        dataset: Dataset,
        partition: Mapping[str, str],
        table: pa.Table,
        mode: Literal["merge", "replace"],
        inputs: Sequence[Mapping[str, Any]],
        *,
        directory: Path | None = None,
        now: dt.datetime | None = None,
        keep_empty: bool = False,
    ) -> WriteResult | _Planned:
        """Decide one write: the partition's rows after it, or its WriteResult when nothing is to be
        written (the partition holds exactly these rows already; its manifest brought up to date). `now`:
        the instant a bars write is landed at (default: the clock's, now)."""
        incoming = conform(dataset, table)
        span, rising = None, False
        if dataset.name == "bars" and incoming.num_rows:
            us = _instants(incoming.column("ts"))
            span, rising = self._widen_span(us), _rising(us)
        target_dir = directory if directory is not None else partition_dir(self.paths, dataset, partition)
        target = target_dir / DATA_FILE
        existing = None
        if target.exists():
            try:
                existing = read_partition(target, dataset)
            except MarketlakeError:
                if mode == "merge":
                    raise
                log.warning("replacing a damaged lake file: %s", target)  # replace needs nothing from it
        if mode == "merge" and existing is not None:
            merged = pa.concat_tables([existing, incoming])  # `keep` picks the first or the last per key
        else:
            merged = incoming
        result = merged if merged is incoming and rising else dedup_sort(dataset, merged)
        rows_added = result.num_rows
        if existing is not None and existing.num_rows:
            seen = pc.is_in(_key_array(dataset, result), value_set=_key_array(dataset, existing))
            rows_added -= pc.sum(seen).as_py() or 0
        if existing is not None and result.equals(existing) and _same_layout(target, dataset):
            self._repair_manifest(target, result, inputs, replace=mode == "replace")
            if span is not None and self.on_bars is not None:
                self.on_bars(*span, False)
            return WriteResult(dataset.name, target, result.num_rows, 0, changed=False)
        if result.num_rows == 0 and existing is None and not keep_empty:
            return WriteResult(dataset.name, target, 0, 0, changed=False)
        if span is not None and self.on_bars is not None:
            self.on_bars(*span, True)
        revisions: pa.Table | None = None
        if dataset.name == "bars":
            now = now or _now()  # one instant: a new version's landed_at is its predecessor's last_seen
            inputs = _stamp_landed(inputs, now)
            revisions = self._revisions(target.parent, existing, result, inputs, now)
        return _Planned(
            dataset, partition, target, result, list(inputs), mode == "merge", revisions, rows_added
        )

    def _publish(self, planned: _Planned, staged: _Staged) -> WriteResult:
        """Rename a staged write in (data file, then manifest), then record the bars' revisions."""
        if planned.dataset.name == "bars":
            self._mirror_change(planned)
        self._rename_in(planned.target, staged)
        if planned.revisions is not None:
            # after the bars, made durable first: neither a failed write nor a power cut leaves a revision
            # of a change that did not happen
            self.durable(planned.target.parent)
            self.write(BAR_REVISIONS, planned.partition, planned.revisions, mode="merge")
        self.bars_written = self.bars_written or planned.dataset.name == "bars"
        return WriteResult(
            planned.dataset.name, planned.target, planned.result.num_rows, planned.rows_added, changed=True
        )

    # --- the bars mirror (lake.chosen) ----------------------------------------------------------------
    def bring_mirror_up_to_date(self) -> None:
        """Before this lock's first bars change (or when its holder asks: the feature store's refresh): a
        mirror that is not whole (a lake made before it, or a writer that stopped midway) is rebuilt whole; a
        whole one is checked against the bars files (`chosen.out_of_step`: a walk of both folders, about a
        second per 15,000 partitions here) and the pairs whose files changed outside the writer (by hand)
        are redone. Each pair is one change for readers (`changing`), not the whole rebuild. Once per lock;
        a lock that changes no bars (a run's record) neither checks nor rebuilds."""
        if self._mirror_checked:
            return
        # the threads writing bars partitions at once wait for the one that checks (none marks the mirror as
        # changing while another still reads its mark); the thread that checks returns at once if it comes
        # back here (`_mirror_checking`)
        with self._mirror_check_lock:
            if self._mirror_checked or self._mirror_checking:
                return
            self._mirror_checking = True
            try:
                self._check_mirror()
            finally:
                self._mirror_checked = True

    def _check_mirror(self) -> None:
        """`bring_mirror_up_to_date`'s work, once per lock."""
        from lake import chosen

        stale: set[tuple[str, str]] | None = None  # None: rebuild it all
        # a mark of this format, whatever write sequence it names (a writer that does not keep the mirror,
        # an older marketlake's, changed the lake since): the walk finds what changed
        if chosen.is_current_format(self.paths):
            stale = chosen.out_of_step(self.paths)
            if not stale:
                self._mirror_found_whole = True
                with self._changing_lock:
                    if self._changing_depth == 0 and self._writes % 2 == 0 and not self._mirror_marked:
                        self._mirror_remark(self._writes)  # (whole to connections made from now on)
                return
            log.warning(
                "bars_chosen: the bars files of %d (interval, symbol) pair(s) changed outside marketlake's "
                "writer (%s): edited or restored by hand, or the lake copied or moved (a copy keeps no file's "
                "identity); their mirror is brought up to date",
                len(stale),
                ", ".join(f"{s} {i}" for i, s in sorted(stale)[:5]) + (" …" if len(stale) > 5 else ""),
            )
        chosen.mark_changing(self.paths)
        self._mirror_marked = True
        dirs: set[Path] = set()
        try:
            if stale is None:
                log.info(
                    "bars_chosen: building the `bars` view's mirror (once; readers use the window meanwhile)"
                )
                n = chosen.rebuild(self.paths, dirs, each=self.changing)
                if n:
                    log.info("bars_chosen: rebuilt the mirror of %d (interval, symbol) pairs", n)
            else:
                chosen.update_whole(self.paths, stale, dirs, each=self.changing)
        except BaseException as exc:
            self._mirror_failed(exc, "rebuilt" if stale is None else "brought up to date")
            if not isinstance(exc, Exception):
                raise
        finally:
            self._renamed_dirs |= dirs

    def _mirror_failed(self, exc: BaseException, what: str) -> None:
        """The mirror could not be kept up to date (the lake's bars are in place whatever its error): it is
        withdrawn whole (`chosen.withdraw`), so that a connection that reads it, made while it was whole
        (a notebook's, the shell's catalog), fails rather than show bars the lake no longer holds; new
        connections read `bars` through its window; the next writer rebuilds it."""
        from lake import chosen

        self._mirror_broken = io_reason(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        try:
            chosen.withdraw(self.paths)
        except OSError as again:
            log.warning("bars_chosen could not be withdrawn either: %s", io_reason(again))
        if isinstance(exc, Exception):
            log.warning(
                "bars_chosen (the `bars` view's mirror) could not be %s: %s; it is withdrawn: `bars` reads "
                "through its precedence window (connections made before it was withdrawn must be made "
                "again) until a writer rebuilds it",
                what,
                self._mirror_broken,
            )

    def _mirror_change(self, planned: _Planned) -> None:
        """Before a bars partition's rename: the mirror is marked as changing (once per lock), and the
        partition is noted for `_mirror_flush`."""
        from lake import chosen

        self.bring_mirror_up_to_date()
        if not self._mirror_marked:
            chosen.mark_changing(self.paths)
            self._mirror_marked = True
        part = planned.partition
        pair = (part["interval"], part["symbol"])
        self._mirror_todo.setdefault(pair, set()).add(part["period"])
        if planned.result.num_rows:  # a partition's rows are in ts order (`_plan`): its first and last
            col = planned.result.column("ts")
            lo, hi = col[0].value, col[-1].value
            if lo > hi:  # (never: but a wrong span would hide a stray file)
                span = pc.min_max(col)
                lo, hi = span["min"].value, span["max"].value
            self._mirror_known[planned.target] = (lo, hi)

    def _mirror_flush(self) -> None:
        """Bring the mirror up to date for the bars partitions renamed in since the last flush. A failure is
        a warning, not the write's error: the bars are in place, the mirror is left not whole (`bars` then
        reads through its window) and the next writer rebuilds it."""
        from lake import chosen

        if not self._mirror_todo:
            return
        todo, known = self._mirror_todo, self._mirror_known
        self._mirror_todo, self._mirror_known = {}, {}
        if self._mirror_broken is not None:
            return
        dirs: set[Path] = set()
        try:
            with self.changing():
                chosen.update(self.paths, todo, known, dirs)
        except BaseException as exc:
            self._mirror_failed(exc, "brought up to date")
            if not isinstance(exc, Exception):
                raise
        finally:
            self._renamed_dirs |= dirs

    def _mirror_finish(self) -> None:
        """Before the lock's writes are made durable: the last flush."""
        self._mirror_flush()

    def _mirror_done(self) -> None:
        """After the renames are durable: the mirror is marked whole, when this lock changed it and kept it
        up to date with every bars partition renamed in (also when the lock ends on an error: each write's
        partitions are mirrored as it ends, error or not)."""
        from lake import chosen

        if self._mirror_broken is not None or self._mirror_todo:
            return
        writes = self._writes + self._writes % 2  # (what `_release` leaves it at)
        if self._mirror_marked:
            if self._writes_fd is not None:  # (the sequence the mark names is on disk before the mark)
                os.fsync(self._writes_fd)
            chosen.mark_current(self.paths, writes)
        elif self._mirror_found_whole:
            # a lock that changed no bars (or found the mirror whole after another writer's): still whole, at
            # the sequence this lock leaves; the mark's time stays when it was last made whole
            self._mirror_remark(writes)

    def _widen_span(self, us: np.ndarray) -> tuple[dt.datetime, dt.datetime]:
        """Widen bars_span by bars of these ts (µs); return their own earliest and latest."""
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        first = epoch + dt.timedelta(microseconds=int(us.min()))
        last = epoch + dt.timedelta(microseconds=int(us.max()))
        with self._span_lock:  # writes of distinct partitions may come from several threads
            lo, hi = first, last
            if self.bars_span is not None:
                lo, hi = min(lo, self.bars_span[0]), max(hi, self.bars_span[1])
            self.bars_span = (lo, hi)
        return first, last

    def _revisions(
        self,
        directory: Path,
        existing: pa.Table | None,
        result: pa.Table,
        inputs: Sequence[Mapping[str, Any]],
        now: dt.datetime,
    ) -> pa.Table | None:
        """The rows a bars partition loses or whose values change, for bar_revisions: with when each was
        first seen (its file's landed_at), when it was replaced (now) and the file that replaced it."""
        if existing is None:
            return None
        old = replaced_bars(existing, result)
        if old.num_rows == 0:
            return None
        landed: dict[str, dt.datetime | None] = {}
        for i in manifest_inputs(directory):
            if isinstance(i.get("file"), str) and isinstance(i.get("landed_at"), str):
                landed[i["file"]] = _parse_instant(i["landed_at"])
        incoming_files = {i.get("file") for i in inputs}
        successor = old.column("__successor").to_pylist()
        files = old.column("source_file").to_pylist()
        replaced_by = [
            s if s is not None else (f if f in incoming_files else None)
            for s, f in zip(successor, files, strict=True)
        ]
        table = old.drop_columns(["__successor"])
        table = table.append_column("first_seen", pa.array([landed.get(f) for f in files], type=UTC_TS))
        table = table.append_column("last_seen", pa.array([now] * old.num_rows, type=UTC_TS))
        return table.append_column("replaced_by", pa.array(replaced_by, type=pa.string()))

    def _stage(self, planned: _Planned, *, sync: bool = True) -> _Staged:
        return _stage_files(
            planned.target,
            planned.result,
            planned.inputs,
            planned.merge_inputs,
            planned.dataset.compression,
            planned.dataset.row_group_rows,
            sync=sync,
            options=_dataset_options(planned.dataset),
        )

    def _rename_in(self, target: Path, staged: _Staged) -> None:
        """Rename a staged data file, then its manifest, over the partition's: the data first, so that a
        manifest never names a file that is not in place (a crash between the two leaves a manifest one
        write behind, which the next write repairs)."""
        # the two renames are one change for readers (`changing`: a window of two renames, no I/O of data)
        with staged.discarded_on_error(target), self.changing():
            os.replace(staged.data, target)
            try:
                os.replace(staged.manifest, target.parent / MANIFEST_FILE)
            except OSError as exc:
                staged.discard()
                raise MarketlakeError(
                    f"wrote {target} but not its manifest: {io_reason(exc)} (the next write repairs it)"
                ) from exc
        # The renames are made durable together, before the lock is released (`sync`): each file was
        # fsynced before its rename, so whatever a power cut keeps of them is a whole file.
        self._renamed_dirs.add(target.parent)

    def _repair_manifest(
        self, target: Path, table: pa.Table, inputs: Sequence[Mapping[str, Any]], *, replace: bool = False
    ) -> None:
        """A crash between the data rename and the manifest rename leaves a manifest one write behind (or
        none); a re-run that finds the data already in place brings the manifest up to date: with
        `replace`, its inputs are exactly `inputs`, as the interrupted write would have made them."""
        manifest_path = target.parent / MANIFEST_FILE
        try:
            current = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            current = {}
        sha = sha256_file(target)
        had = current.get("inputs", [])
        same_inputs = not replace or _unique_inputs(_unstamped(had)) == _unique_inputs(_unstamped(inputs))
        if current.get("sha256") == sha and current.get("rows") == table.num_rows and same_inputs:
            return
        inputs = _keep_landed(inputs, had)  # an input landed before keeps when it was first landed
        try:
            atomic_write_bytes(
                manifest_path,
                _manifest(target, table.num_rows, [*([] if replace else had), *inputs]),
            )
        except OSError as exc:
            raise MarketlakeError(f"could not repair the manifest of {target}: {io_reason(exc)}") from exc


@dataclass
class _Planned:
    """One write decided (`LakeWriter._plan`), its files not written yet."""

    dataset: Dataset
    partition: Mapping[str, str]
    target: Path
    result: pa.Table
    inputs: list[Mapping[str, Any]]
    merge_inputs: bool
    revisions: pa.Table | None
    rows_added: int


@dataclass
class _Staged:
    """A partition's data file and manifest written whole and fsynced under temporary names, not renamed
    in yet."""

    data: Path
    manifest: Path

    def discard(self) -> None:
        self.data.unlink(missing_ok=True)
        self.manifest.unlink(missing_ok=True)

    @contextmanager
    def discarded_on_error(self, target: Path) -> Iterator[None]:
        """Any error removes the staged files; an OSError becomes one clear error naming the partition,
        whose previous state is intact."""
        try:
            yield
        except OSError as exc:
            self.discard()
            raise MarketlakeError(
                f"could not write {target}: {io_reason(exc)}; the previous partition is intact"
            ) from exc
        except BaseException:
            self.discard()
            raise


def _stage_files(
    target: Path,
    table: pa.Table,
    inputs: Sequence[Mapping[str, Any]],
    merge_inputs: bool,
    compression: str,
    row_group_rows: int | None = None,
    *,
    sync: bool = True,
    options: dict[str, Any] | None = None,
) -> _Staged:
    """Write the data file and its manifest, both to temporary names beside their targets, fsynced (unless
    not `sync`: then the caller makes them durable, `_make_durable`, before renaming them in): every byte
    that needs disk space is written before the first rename, so a full disk or any other write error
    leaves the previous partition exactly as it was (the renames need no space)."""
    _make_dirs(str(target.parent))
    tag = uuid.uuid4().hex
    staged = _Staged(
        target.with_name(f"{target.name}{TMP_MARK}{tag}"),
        target.parent / f"{MANIFEST_FILE}{TMP_MARK}{tag}",
    )
    manifest_path = target.parent / MANIFEST_FILE
    with staged.discarded_on_error(target):
        size, sha = _write_parquet(
            table, staged.data, compression, row_group_rows, sync=sync, options=options
        )
        previous: list[Mapping[str, Any]] = []
        if merge_inputs and manifest_path.exists():
            try:
                previous = json.loads(manifest_path.read_text()).get("inputs", [])
            except (OSError, ValueError):
                previous = []
        manifest = _manifest_bytes(size, sha, table.num_rows, [*previous, *inputs])
        with open(staged.manifest, "wb") as f:
            f.write(manifest)
            if sync:
                f.flush()
                os.fsync(f.fileno())
    return staged


def _make_dirs(path: str) -> None:
    """`Path(path).mkdir(parents=True, exist_ok=True)` in os calls: the folder, its missing parents first."""
    try:
        os.mkdir(path)
    except FileNotFoundError:
        _make_dirs(os.path.dirname(path))
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _parse_instant(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _unstamped(inputs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Input records without when they were landed: what identifies them."""
    return [{k: v for k, v in i.items() if k != "landed_at"} for i in inputs]


def _keep_landed(
    inputs: Sequence[Mapping[str, Any]], had: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """`inputs`, each carrying the landed_at its identical record already had in the manifest."""
    landed = {
        json.dumps(u, sort_keys=True): i["landed_at"]
        for u, i in zip(_unstamped(had), had, strict=True)
        if isinstance(i, Mapping) and "landed_at" in i
    }
    out: list[Mapping[str, Any]] = []
    for u, i in zip(_unstamped(inputs), inputs, strict=True):
        at = landed.get(json.dumps(u, sort_keys=True))
        out.append({**i, "landed_at": at} if at is not None and "landed_at" not in i else i)
    return out


def _stamp_landed(inputs: Sequence[Mapping[str, Any]], now: dt.datetime) -> list[Mapping[str, Any]]:
    """The inputs of a bars write, each new one stamped with when it was landed (`landed_at`, UTC): the
    first_seen of its rows if a later version of the file replaces them."""
    return [i if "landed_at" in i else {**i, "landed_at": now.isoformat()} for i in inputs]


def manifest_inputs(directory: Path) -> list[dict[str, Any]]:
    """The inputs a partition folder's manifest records (none when it has no readable manifest)."""
    try:
        inputs = json.loads((directory / MANIFEST_FILE).read_text()).get("inputs", [])
    except (OSError, ValueError):
        return []
    return [dict(i) for i in inputs if isinstance(i, dict)]


_BAR_VALUES = ("asset_class", "available_at", "open", "high", "low", "close", "volume", "trades")


def replaced_bars(existing: pa.Table, result: pa.Table) -> pa.Table:
    """The rows of `existing` (a bars partition) that `result` drops or changes (any value but the file
    name), with `__successor`: the source_file of the row that takes its place (null when dropped)."""
    if existing.num_rows == 0:
        return existing.append_column("__successor", pa.array([], type=pa.string()))
    new = result.select(["ts", *_BAR_VALUES, "source_file"]).rename_columns(
        ["ts", *(f"__new_{c}" for c in _BAR_VALUES), "__successor"]
    )
    joined = existing.join(new, keys="ts", join_type="left outer")
    present = pc.is_valid(joined.column("__successor"))
    differs = pc.invert(present)
    for c in _BAR_VALUES:
        a, b = joined.column(c), joined.column(f"__new_{c}")
        same = pc.or_kleene(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))
        differs = pc.or_(differs, pc.and_(present, pc.invert(same)))
    out = joined.filter(differs)
    return out.select([*BARS.schema.names, "__successor"]).sort_by("ts")


def _unique_inputs(inputs: Sequence[Mapping[str, Any]]) -> list[Any]:
    unique = {json.dumps(dict(i), sort_keys=True) for i in inputs}
    return [json.loads(u) for u in sorted(unique)]


def _manifest(data_file: Path, rows: int, inputs: Sequence[Mapping[str, Any]]) -> bytes:
    return _manifest_bytes(data_file.stat().st_size, sha256_file(data_file), rows, inputs)


def _manifest_bytes(size: int, sha256: str, rows: int, inputs: Sequence[Mapping[str, Any]]) -> bytes:
    """The manifest's text: `json.dumps(manifest, indent=1, sort_keys=True)` and a newline, its keys in
    that sorted order; the inputs' part (the same for every partition of one write_many) from a cache
    (json's indented encoder is pure Python, a tenth of a millisecond a manifest)."""
    unique = tuple(sorted({json.dumps(dict(i), sort_keys=True) for i in inputs}))
    return (
        f'{{\n "bytes": {json.dumps(size)},\n "file": {json.dumps(DATA_FILE)},\n'
        f' "inputs": {_inputs_text(unique)},\n "rows": {json.dumps(rows)},\n'
        f' "sha256": {json.dumps(sha256)}\n}}\n'
    ).encode()


@functools.lru_cache(maxsize=64)
def _inputs_text(unique: tuple[str, ...]) -> str:
    """The manifest's "inputs" list (these records, each as sorted-key JSON, in that order) as
    json.dumps(indent=1) writes it one level deep (json escapes every newline inside a string: each
    newline of the text is between its tokens)."""
    return json.dumps([json.loads(u) for u in unique], indent=1, sort_keys=True).replace("\n", "\n ")


IN_MEMORY_BYTES = 8 << 20
WRITE_BUFFER_BYTES = 8 << 20
"""The pieces a large table's file is written in (see _write_parquet)."""
"""A table of up to about this size (`_table_bytes`) is encoded to Parquet in memory and hashed there before
its one write to disk; a larger one is encoded straight into the file and read back from the page cache for
its hash. Measured on the feature store's uncompressed partitions: below about 8 MiB the two cost the same
(a small file is cheaper in memory: one write, no second open), above it the file costs less and less (at
49 MiB, half: the in-memory buffer grows by reallocation, each time onto fresh pages)."""


@functools.lru_cache(maxsize=64)
def _row_bytes(schema: pa.Schema) -> int:
    """About how many bytes a row of `schema` takes in memory: the fixed widths, 16 for anything else."""
    width = 0
    for f in schema:
        try:
            width += max(1, f.type.bit_width // 8)
        except ValueError:  # not fixed width (text, lists)
            width += 16
    return width


def _table_bytes(table: pa.Table) -> int:
    """About the size of `table`'s rows in memory, at once (nbytes of a slice walks every buffer it shares,
    tens of microseconds, which thousands of small partitions would pay)."""
    return table.num_rows * _row_bytes(table.schema)


def _write_parquet(
    table: pa.Table,
    path: Path,
    compression: str = "zstd",
    row_group_rows: int | None = None,
    *,
    sync: bool = True,
    options: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """Write `table` as Parquet to `path` (a new temporary file), fsynced (unless not `sync`: the caller
    makes it durable before its rename); return its size and sha256. `options`: its
    `parquet_options(table.schema, compression)` when the caller has them (a copy, changed here)."""
    if options is None:
        options = parquet_options(table.schema, compression)
    if row_group_rows is not None:
        options["row_group_size"] = row_group_rows
    if _table_bytes(table) <= IN_MEMORY_BYTES:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **options)
        data = memoryview(sink.getvalue())
        with open(path, "xb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        return len(data), hashlib.sha256(data).hexdigest()
    with open(path, "xb") as f:  # created here, as the in-memory branch does: never over another file
        pass
    # a local file as named (no URI or file system inferred), written in large pieces: the page cache then
    # holds the file in large folios, which the episode reader's memory map faults in far fewer times
    with (
        pa.OSFile(str(path), "wb") as raw,
        pa.BufferedOutputStream(raw, buffer_size=WRITE_BUFFER_BYTES) as out,
    ):
        pq.write_table(table, out, **options)
    if sync:
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    return path.stat().st_size, sha256_file(path)


def _same_layout(path: Path, dataset: Dataset) -> bool:
    """Whether a file already has the dataset's row groups and codec (checked only for a dataset that sets
    row_group_rows): a file written with another layout is rewritten even when its rows are the same, so
    that a new layout reaches every file at the next write."""
    if dataset.row_group_rows is None:
        return True
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowInvalid, OSError):
        return False
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    if any(g.num_rows != dataset.row_group_rows for g in groups[:-1]):
        return False
    if groups and groups[-1].num_rows > dataset.row_group_rows:
        return False
    codec = "UNCOMPRESSED" if dataset.compression == "none" else dataset.compression.upper()
    return all(g.column(c).compression == codec for g in groups[:1] for c in range(g.num_columns))


def read_partition(path: Path, dataset: Dataset) -> pa.Table:
    """Read one partition file back, conformed to its schema; a corrupt file is named in the error."""
    try:
        table = pq.read_table(path, partitioning=None)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MarketlakeError(f"corrupt Parquet file in the lake: {path}: {exc}; {REPAIR}") from exc
    # A file written before a nullable column was added to the schema reads it as NULL (the views read
    # such files with union_by_name); a missing non-null column is still a mismatch.
    for f in dataset.schema:
        if f.nullable and f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, type=f.type))
    try:
        return conform(dataset, table)
    except SchemaMismatch as exc:
        raise MarketlakeError(
            f"a lake file does not hold {dataset.name} rows: {path}: {exc}; {REPAIR}"
        ) from exc


def anchor_dir(paths: LakePaths, dataset: Dataset) -> Path:
    d = paths.dataset(dataset.name)
    for key in dataset.partition_by:
        d = d / f"{key}={SCHEMA_ANCHOR}"
    return d


def write_anchor(paths: LakePaths, dataset: Dataset, *, replace: bool = False) -> None:
    """An empty file in a `__empty__` partition: every view's glob matches something and is typed.
    replace: write it again over an existing one (by an atomic rename: a reader always finds one)."""
    target = anchor_dir(paths, dataset) / DATA_FILE
    if target.exists() and not replace:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}{TMP_MARK}{uuid.uuid4().hex}")
    try:
        pq.write_table(
            dataset.schema.empty_table(), tmp, **parquet_options(dataset.schema, dataset.compression)
        )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def iter_manifests(root: str | os.PathLike[str] | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    paths = LakePaths(resolve_lake_root(root))
    if not paths.datasets.exists():
        return
    for m in sorted(paths.datasets.rglob(MANIFEST_FILE)):
        yield m, json.loads(m.read_text())


def partition_intact(directory: Path) -> bool:
    """True when a partition folder's data file is what its manifest says (sha256), or when it has no
    manifest at all (nothing landed yet); False when the manifest's file is missing or differs."""
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.exists():
        return True
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    data = directory / str(manifest.get("file", DATA_FILE))
    return data.exists() and sha256_file(data) == manifest.get("sha256")


def verify(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Check every partition file against its manifest; return the problems (empty when all is well)."""
    problems: list[str] = []
    for manifest_path, manifest in iter_manifests(root):
        data = manifest_path.parent / manifest.get("file", DATA_FILE)
        if not data.exists():
            problems.append(f"{data}: listed in its manifest but missing")
        elif sha256_file(data) != manifest.get("sha256"):
            problems.append(f"{data}: sha256 differs from its manifest (corrupt or changed outside the lake)")
    return problems


DERIVED_DATASETS = ("features",)
"""Datasets computed from the others (the feature store): not part of the lake's content hash, so a
refresh of the store does not change the data snapshot a run records."""


def snapshot_hash(root: str | os.PathLike[str] | None = None, datasets: Collection[str] | None = None) -> str:
    """One hash for the lake's whole content: the sha256 of every partition's manifest, in path order
    (derived datasets left out); `datasets`: of those datasets only."""
    paths = LakePaths(resolve_lake_root(root))
    h = hashlib.sha256()
    for manifest_path, manifest in iter_manifests(root):
        rel = manifest_path.relative_to(paths.datasets)
        if rel.parts[0] in DERIVED_DATASETS or (datasets is not None and rel.parts[0] not in datasets):
            continue
        h.update(str(rel).encode())
        h.update(str(manifest.get("sha256")).encode())
    return h.hexdigest()

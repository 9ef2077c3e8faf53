"""`bars_chosen`: the bars the `bars` view keeps, kept by the writer beside `bars`, so that the view is a plain
scan of files instead of a precedence window over every stored bar.

Where several sources (or two periods of one source) hold the same (symbol, interval, ts), the `bars` view
keeps one row (sql/views/020_bars.sql: the lowest source rank, then the source's name, then the later
period). Computing that at query time is a window over every row read: about 10-20x the cost of reading
the files, on a query of one symbol as on the whole lake. The writer knows, when it writes a bars partition,
which rows of that (interval, symbol) lose, so it keeps the answer as files:

    datasets/bars_chosen/source=S/interval=I/symbol=X/period=P/data.parquet

the same layout as `datasets/bars`. A bars file none of whose rows loses is there as a hard link to itself
(no second copy on disk; a copy where the file system cannot link); a file some of whose rows lose is there
as a file of its winning rows only; a file all of whose rows lose is not there. The view
(sql/views/bars_chosen.sql) then reads the mirror's files as they are.

The mirror is used only while the file `_current` says it is whole and `_current_writes` names the lake's
write sequence (a writer that does not keep the mirror moves the sequence on): the writer removes `_current`
(durably) before the first bars partition of its lock changes, brings the mirror up to date after each
write, and writes both again when it releases its lock, after the renames are durable. A writer that stops before (killed, an
error, a power cut) leaves no `_current`: connections made meanwhile read `bars` through the window
(`lake.connect.register_views`), and the next writer rebuilds the whole mirror. A lake made before the
mirror existed has no `_current` either: its first writer builds it.

Which rows are compared: the lake's ingest puts a bar in the period of its UTC month (YYYY-MM) when intraday,
of its UTC year (YYYY) when daily (ingest.common.bar_period), so only the files of one period of an
(interval, symbol) can hold the same ts; a write recomputes the files of its own period of its (interval,
symbol). A file that holds a bar outside its period's span, or whose period is not of that kind, makes its
(interval, symbol) "stray" (a marker file under `_stray/`): every later write to that pair recomputes all
its files, comparing every ts across periods.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake.paths import SCHEMA_ANCHOR, LakePaths
from lake.schemas import BARS, Dataset
from lake.writer import DATA_FILE, TMP_MARK, atomic_write_bytes, fsync_dir, parquet_options, write_anchor

log = logging.getLogger("marketlake")

BARS_CHOSEN: Dataset = dataclasses.replace(BARS, name="bars_chosen")
"""The mirror's files: the bars dataset's schema and layout, under another folder (not in DATASETS: it has no
manifests and is no part of the lake's content; lake.writer.snapshot_hash reads manifests only)."""

CURRENT_FILE = "_current"
"""Present, holding MIRROR_FORMAT, while the mirror is whole (the writer's last lock ended well); written only
when the mirror is made whole, so that its modification time is when it last was (`out_of_step`)."""
SEQUENCE_FILE = "_current_writes"
"""The lake's write sequence (.writes) at which the mirror is whole (`is_current`)."""
MIRROR_FORMAT = "1"
STRAY_DIR = "_stray"

SOURCE_RANK: Mapping[str, int] = {"polygon": 1, "binance": 1, "yahoo": 2, "csv": 3}
"""sql/views/020_bars.sql's macro bar_source_rank (any other source: OTHER_RANK): the same rule, checked
equal to the view's by tests/unit/test_bars_chosen.py."""
OTHER_RANK = 9

Pair = tuple[str, str]
"""(interval, symbol)."""

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def mirror_dir(paths: LakePaths) -> Path:
    return paths.dataset(BARS_CHOSEN.name)


def is_current(paths: LakePaths) -> bool:
    """Whether the mirror is whole: what the `bars` view may read instead of its window. Its mark (CURRENT_FILE)
    says it was made whole, and SEQUENCE_FILE names the lake's write sequence (.writes) it is whole at, so that
    a writer that does not keep the mirror (a marketlake made before it) and changed the lake since leaves it
    not whole, as does a writer that keeps it but not the sequence (its next writer walks it then). Every
    writer of this version that leaves the mirror whole names the sequence it leaves (`mark_current`,
    `remark`). The mark itself holds MIRROR_FORMAT alone, as such a writer reads it."""
    from lake.writer import read_writes

    mirror = mirror_dir(paths)
    try:
        mark = (mirror / CURRENT_FILE).read_text().split()
        sequence = (mirror / SEQUENCE_FILE).read_text().split()
    except (OSError, UnicodeDecodeError):
        return False
    return mark == [MIRROR_FORMAT] and sequence == [str(read_writes(paths.root))]


def is_current_format(paths: LakePaths) -> bool:
    """Whether the mirror's mark is there, of this format (whatever sequence SEQUENCE_FILE names): it was made
    whole by a writer that keeps it, and what changed since is found by a walk (`out_of_step`), not a
    rebuild."""
    try:
        mark = (mirror_dir(paths) / CURRENT_FILE).read_text().split()
    except (OSError, UnicodeDecodeError):
        return False
    return mark[:1] == [MIRROR_FORMAT]


def mark_current(paths: LakePaths, writes: int) -> None:
    """After the mirror was brought up to date and its renames made durable: it is whole, at the lake's write
    sequence `writes` (the value .writes has once the writer's lock ends, made durable before): the sequence
    first, then the mark (which the writer removed before it changed the mirror)."""
    mirror = mirror_dir(paths)
    atomic_write_bytes(mirror / SEQUENCE_FILE, f"{writes}\n".encode())
    atomic_write_bytes(mirror / CURRENT_FILE, f"{MIRROR_FORMAT}\n".encode())


def remark(paths: LakePaths, writes: int) -> None:
    """The mirror is still whole, now at the write sequence `writes`: its writer changed other datasets only
    (a change window of news, the feature store, the sessions: at its end, so that connections made during the
    rest of the lock read the mirror, not the window), or walked it and found nothing changed. Only
    SEQUENCE_FILE is written, in place (its owner kept: a lake shared by a group), and only when the mark is
    there; not fsynced: a power cut that loses it leaves an older sequence (not whole: the window is read
    until the next writer's walk)."""
    mirror = mirror_dir(paths)
    text = f"{writes}\n".encode()
    if not (mirror / CURRENT_FILE).exists():  # (no mark: not whole, nothing to move on)
        return
    path = mirror / SEQUENCE_FILE
    try:
        if path.read_bytes() == text:
            return  # (a lock that changed nothing writes nothing)
    except FileNotFoundError:  # (a mirror marked by a writer that kept no sequence)
        atomic_write_bytes(path, text)
        return
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, text, 0)
        os.ftruncate(fd, len(text))
    finally:
        os.close(fd)


def mark_changing(paths: LakePaths) -> None:
    """Before the first bars partition changes: the mirror is no longer whole (durably, so that a power cut
    never keeps the bars' change and loses this)."""
    current = mirror_dir(paths) / CURRENT_FILE
    try:
        current.unlink()
    except FileNotFoundError:
        return
    fsync_dir(current.parent)


_INTERVAL = re.compile(r"^[1-9][0-9]*([mhd])$")


def period_span(interval: str, period: str) -> tuple[int, int] | None:
    """The span [start, end) in µs since the epoch (UTC) that a bars period names, when it is the kind of
    period the lake's ingest gives bars of `interval` (ingest.common.bar_period: the UTC month, YYYY-MM, of
    intraday bars; the UTC year, YYYY, of daily ones); else None (then two periods of one pair may overlap)."""
    unit = _INTERVAL.match(interval)
    if unit is None:
        return None
    m = (_MONTH if unit.group(1) in "mh" else _YEAR).match(period)
    if m is None:
        return None
    y = int(m.group(1))
    if not 1 <= y <= 9998:  # (datetime's years; a span ending past 9999 cannot be written)
        return None
    if unit.group(1) in "mh":
        mo = int(m.group(2))
        if not 1 <= mo <= 12:
            return None
        start = dt.datetime(y, mo, 1, tzinfo=dt.UTC)
        end = dt.datetime(y + mo // 12, mo % 12 + 1, 1, tzinfo=dt.UTC)
    else:
        start, end = dt.datetime(y, 1, 1, tzinfo=dt.UTC), dt.datetime(y + 1, 1, 1, tzinfo=dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (start - epoch) // dt.timedelta(microseconds=1), (end - epoch) // dt.timedelta(microseconds=1)


@dataclasses.dataclass
class _File:
    source: str
    period: str
    path: Path
    rel: Path
    """Its path under datasets/bars (and under the mirror)."""
    ts: np.ndarray | None = None

    def rank(self) -> tuple[int, str]:
        return SOURCE_RANK.get(self.source, OTHER_RANK), self.source


def _key(prefix: str, name: str) -> str | None:
    return name[len(prefix) :] if name.startswith(prefix) else None


def _sources(bars: Path) -> list[str]:
    try:
        names = os.listdir(bars)
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        s = _key("source=", n)
        if s is not None and s != SCHEMA_ANCHOR:  # (a folder never has a temporary name: only files do)
            out.append(s)
    return sorted(out)


def _pair_files(bars: Path, sources: list[str], pair: Pair, period: str | None) -> list[_File]:
    """The bars files of `pair`, of `period` only unless None."""
    interval, symbol = pair
    out = []
    for s in sources:
        rel_pair = Path(f"source={s}") / f"interval={interval}" / f"symbol={symbol}"
        if period is not None:
            periods = [period]
        else:
            try:
                periods = [p for n in os.listdir(bars / rel_pair) if (p := _key("period=", n)) is not None]
            except (FileNotFoundError, NotADirectoryError):
                continue
        for p in periods:
            rel = rel_pair / f"period={p}" / DATA_FILE
            if (bars / rel).is_file():
                out.append(_File(s, p, bars / rel, rel))
    return out


def _read_ts(f: _File) -> np.ndarray:
    if f.ts is None:
        col = pq.read_table(f.path, columns=["ts"], partitioning=None).column("ts")
        arr = col.combine_chunks().cast(pa.int64()) if col.num_chunks != 1 else col.chunk(0).cast(pa.int64())
        f.ts = arr.to_numpy(zero_copy_only=False)
    return f.ts


def _span_of(f: _File, known: Mapping[Path, tuple[int, int]]) -> tuple[int, int] | None:
    """A file's earliest and latest ts (None: no rows): given, from its footer's statistics, else read."""
    if f.path in known:
        return known[f.path]
    if f.ts is None:
        try:
            meta = pq.read_metadata(f.path)
            col = meta.schema.to_arrow_schema().get_field_index("ts")
            lo = hi = None
            for g in range(meta.num_row_groups):
                st = meta.row_group(g).column(col).statistics
                if st is None or not st.has_min_max:
                    raise LookupError
                lo = st.min_raw if lo is None else min(lo, st.min_raw)
                hi = st.max_raw if hi is None else max(hi, st.max_raw)
            return None if lo is None or hi is None else (int(lo), int(hi))
        except (LookupError, TypeError, ValueError):
            pass
    ts = _read_ts(f)
    return (int(ts.min()), int(ts.max())) if len(ts) else None


def _stray(f: _File, interval: str, known: Mapping[Path, tuple[int, int]]) -> bool:
    """Whether a file holds a bar outside its period's span (or has a period that names none)."""
    span = period_span(interval, f.period)
    if span is None:
        return True
    have = _span_of(f, known)
    return have is not None and (have[0] < span[0] or have[1] >= span[1])


def _choose(files: list[_File], *, every: bool = False) -> dict[Path, np.ndarray | bool]:
    """For each file (by its rel path): True (every row wins), False (none does) or the mask of its rows that
    win: per ts, the file of the lowest source rank, then source name, then the later period (the view's
    rule). A file the writer made holds each ts once; with `every` (a whole pair recomputed, after a stop
    midway or an edit by hand) every file is read, a lone one too, and a ts a file holds twice keeps its
    first row (the view's window keeps one of them)."""
    if len(files) == 1 and not every:
        return {files[0].rel: True}
    ordered = sorted(files, key=lambda f: f.period, reverse=True)
    ordered.sort(key=_File.rank)  # stable: within a (rank, source), the later period first
    taken = np.empty(0, dtype=np.int64)
    out: dict[Path, np.ndarray | bool] = {}
    for f in ordered:
        ts = _read_ts(f)
        first = np.zeros(len(ts), dtype=bool)
        first[np.unique(ts, return_index=True)[1]] = True  # each ts's first row in the file
        wins = first if not len(taken) else first & ~np.isin(ts, taken)
        n = int(wins.sum())
        out[f.rel] = True if n == len(ts) else (False if n == 0 else wins)
        if n:
            taken = np.union1d(taken, ts[wins])
    return out


SOURCE_FILE = "_source.json"
"""Beside (or instead of) a mirror file that is not a hard link to its bars file: that bars file's identity
(device, inode, size, modification time) when the mirror's file was made from it (a file of its winning
rows; a copy where links fail; or, alone, a file that loses every row), so that `out_of_step` can tell a
bars file changed or removed outside the writer."""


def _identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _record_source(src: Path, target_dir: Path, dirs: set[Path]) -> None:
    atomic_write_bytes(target_dir / SOURCE_FILE, json.dumps({"identity": _identity(src)}).encode())
    dirs.add(target_dir)


def _recorded(target_dir: Path) -> list[int] | None:
    try:
        value = json.loads((target_dir / SOURCE_FILE).read_text()).get("identity")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, list) else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


NO_LINKS = frozenset(
    e for e in (errno.EPERM, errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS) if e
)
"""The errors of os.link that mean this file system (or this file) takes no more hard links: the mirror
then holds a copy. Any other error (a full disk) is the mirror's error."""


def _place(src: Path, target: Path, choice: np.ndarray | bool, dirs: set[Path]) -> None:
    """Make the mirror's `target` hold `src` (a hard link, else a copy) or its rows where `choice` is True
    (with its SOURCE_FILE); where `choice` is False, no data file, only the SOURCE_FILE. A few system calls
    for a link (a listing of the folder, the link, its rename): a bars write of thousands of partitions
    (a Polygon day file) makes as many."""
    folder = target.parent
    made = True
    try:
        present = set(os.listdir(folder))
    except FileNotFoundError:
        present, made = set(), False
    if choice is False:
        if DATA_FILE in present:
            _remove(target, dirs)
        _record_source(src, folder, dirs)
        return
    if choice is True and DATA_FILE in present and _same_file(src, target):
        if SOURCE_FILE in present:
            _remove(folder / SOURCE_FILE, dirs)
        return
    if not present:
        if not made:
            folder.mkdir(parents=True, exist_ok=True)
        if choice is True:  # a folder made just now holds nothing to replace: the link lands whole at once
            try:
                os.link(src, target)
            except FileExistsError:  # (never under the writer's lock; the replace below is then made)
                pass
            except OSError as exc:  # a file system without hard links: the copy below
                if exc.errno not in NO_LINKS:
                    raise
            else:
                dirs.add(folder)
                return
    tmp = target.with_name(f"{target.name}{TMP_MARK}{uuid.uuid4().hex}")
    linked = False
    try:
        if choice is True:
            try:
                os.link(src, tmp)
                linked = True
            except OSError as exc:  # a file system without hard links: a copy, made durable
                if exc.errno not in NO_LINKS:
                    raise  # (a full disk, say: not written again in full)
                _write(pq.read_table(src, partitioning=None), tmp)
        else:
            assert isinstance(choice, np.ndarray)
            _write(pq.read_table(src, partitioning=None).filter(pa.array(choice)), tmp)
        if not linked:
            _record_source(src, folder, dirs)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if linked and SOURCE_FILE in present:
        _remove(folder / SOURCE_FILE, dirs)
    dirs.add(folder)


def _write(table: pa.Table, path: Path) -> None:
    with open(path, "xb") as f:
        pq.write_table(table, f, **parquet_options(BARS.schema, BARS.compression))
        f.flush()
        os.fsync(f.fileno())


def _remove(target: Path, dirs: set[Path]) -> None:
    try:
        target.unlink()
    except FileNotFoundError:
        return
    dirs.add(target.parent)


def _stray_marker(mirror: Path, pair: Pair) -> Path:
    return mirror / STRAY_DIR / f"interval={pair[0]}" / f"symbol={pair[1]}"


def update(
    paths: LakePaths,
    changes: Mapping[Pair, Iterable[str]],
    known: Mapping[Path, tuple[int, int]],
    dirs: set[Path],
) -> None:
    """Bring the mirror up to date for the bars partitions written: `changes` maps each (interval, symbol)
    to the periods written; `known` gives the (min, max) ts of files the caller knows without reading them
    (the ones it wrote). The folders whose entries changed are added to `dirs` (for the writer's fsync)."""
    bars, mirror = paths.dataset(BARS.name), mirror_dir(paths)
    sources = sorted(set(_sources(bars)) | set(_sources(mirror)))
    strays = {
        (i, s)
        for i_name in _listdir(mirror / STRAY_DIR)
        if (i := _key("interval=", i_name)) is not None
        for s_name in _listdir(mirror / STRAY_DIR / i_name)
        if (s := _key("symbol=", s_name)) is not None
    }

    def one(pair: Pair, periods: Iterable[str]) -> None:
        if pair in strays:
            _update_pair(bars, mirror, sources, pair, dirs)
            return
        for period in sorted(set(periods)):
            files = _pair_files(bars, sources, pair, period)
            if any(_stray(f, pair[0], known) for f in files):
                _mark_stray(mirror, pair, dirs)
                _update_pair(bars, mirror, sources, pair, dirs)
                break
            _apply(bars, mirror, sources, pair, period, _choose(files), dirs)

    # Each pair's entries are folders of their own: pairs are brought up to date in threads when there are
    # many (a Polygon day file writes thousands), their system calls (listings, links, folders made,
    # renames: the GIL is let go in each) overlapping. A failure is the update's failure, as one met
    # part way through the pairs in turn: the writer then leaves the mirror not whole for the next writer
    # to rebuild (lake/writer.py _mirror_flush), whichever pairs were done.
    if len(changes) < PAIRS_PER_THREAD * 2:
        for pair, periods in changes.items():
            one(pair, periods)
        return
    threads = min(MIRROR_THREADS, len(changes) // PAIRS_PER_THREAD)
    with ThreadPoolExecutor(threads, thread_name_prefix="marketlake-mirror") as pool:
        for f in [pool.submit(one, pair, periods) for pair, periods in changes.items()]:
            f.result()


MIRROR_THREADS = 4
"""Threads bringing the mirror's pairs up to date at once (`update`)."""
PAIRS_PER_THREAD = 32
"""One of those threads per this many pairs written; fewer than twice this many pairs are brought up to date
one at a time, in the caller's thread."""


def _mark_stray(mirror: Path, pair: Pair, dirs: set[Path]) -> None:
    marker = _stray_marker(mirror, pair)
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        dirs.add(marker.parent)


def _update_pair(
    bars: Path, mirror: Path, sources: list[str], pair: Pair, dirs: set[Path], *, every: bool = True
) -> None:
    """Recompute the mirror's files of the whole of `pair`: within each period, unless a file strays out of
    its period (then across all of them, and the pair is marked stray for later writes)."""
    files = _pair_files(bars, sources, pair, None)
    if any(_stray(f, pair[0], {}) for f in files):
        _mark_stray(mirror, pair, dirs)
        choices = _choose(files, every=True) if files else {}  # (across periods: every file read anyway)
    else:
        by_period: dict[str, list[_File]] = {}
        for f in files:
            by_period.setdefault(f.period, []).append(f)
        choices = {rel: c for group in by_period.values() for rel, c in _choose(group, every=every).items()}
    _apply(bars, mirror, sources, pair, None, choices, dirs)


def _apply(
    bars: Path,
    mirror: Path,
    sources: list[str],
    pair: Pair,
    period: str | None,
    choices: Mapping[Path, np.ndarray | bool],
    dirs: set[Path],
) -> None:
    """Make the mirror's entries of `pair` (in `period`, or all) what `choices` says, removing any other."""
    for rel, choice in choices.items():
        _place(bars / rel, mirror / rel, choice, dirs)
    placed = {rel.parts[0] for rel in choices}  # (sources whose entry of `period` was just placed)
    others = [s for s in sources if period is None or f"source={s}" not in placed]
    for rel in _entries(mirror, others, pair, period):
        if rel not in choices:
            _remove(mirror / rel, dirs)
            _remove(mirror / rel.parent / SOURCE_FILE, dirs)


def _entries(root: Path, sources: list[str], pair: Pair, period: str | None) -> list[Path]:
    """The mirror's entries of `pair` (of `period` only unless None): the rel path of the data file of each
    of its partition folders, whether the data file or only its SOURCE_FILE is there."""
    interval, symbol = pair
    out = []
    for s in sources:
        rel_pair = Path(f"source={s}") / f"interval={interval}" / f"symbol={symbol}"
        names = [f"period={period}"] if period is not None else _listdir(root / rel_pair)
        for n in names:
            if n.startswith("period=") and (root / rel_pair / n).is_dir():
                out.append(rel_pair / n / DATA_FILE)
    return out


def out_of_step(paths: LakePaths) -> set[Pair]:
    """The (interval, symbol) pairs whose mirror no longer matches the bars files: a bars file changed,
    added or removed other than by the writer (by hand, say), seen by a walk of both folders (a listing of
    each pair's folder, a stat of each file on both sides): each bars file must have its hard link in the
    mirror, not modified since the mirror was last marked whole (an edit in place keeps the link), or a
    SOURCE_FILE naming it as it is now; each mirror entry its bars file. The pairs found are recomputed
    with `update_whole`, which also reads whether each file holds a ts once (a file edited by hand may
    not). Not seen: a file rewritten in place that keeps its old modification time (`cp -p` over it)."""
    bars, mirror = paths.dataset(BARS.name), mirror_dir(paths)
    try:  # every file the writer made is older than the mark it left when its lock ended
        marked_ns = (mirror / CURRENT_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        marked_ns = -1
    stale: set[Pair] = set()
    for _source, pair, rel_pair in _pair_folders(bars, mirror):
        if pair in stale:
            continue
        have = {p for p in _listdir(bars / rel_pair) if p.startswith("period=")}
        shown = {p for p in _listdir(mirror / rel_pair) if p.startswith("period=")}
        if any(_has_entry(mirror / rel_pair / p) for p in shown - have):  # an entry whose bars are gone
            stale.add(pair)
            continue
        for p in have:
            rel = rel_pair / p / DATA_FILE
            try:
                st = os.stat(bars / rel)
            except FileNotFoundError:
                if p in shown and _has_entry(mirror / rel_pair / p):
                    stale.add(pair)
                    break
                continue
            try:
                tt = os.stat(mirror / rel)
                if (tt.st_dev, tt.st_ino) == (st.st_dev, st.st_ino) and st.st_mtime_ns <= marked_ns:
                    continue  # (a link to a file edited in place since is newer than the mark)
            except FileNotFoundError:
                pass
            if _recorded(mirror / rel_pair / p) != [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]:
                stale.add(pair)
                break
    return stale


def mirror_problems(paths: LakePaths) -> list[str] | None:
    """What `marketlake verify` says of the mirror, while it is whole (`bars` reads it then): one line per
    (interval, symbol) whose mirror does not hold what its bars files say it should (a bars file changed,
    added or removed other than by marketlake). The walk (`out_of_step`) finds the candidates; each is then
    checked by content (its winning rows recomputed and compared with the mirror's files), so that a correct
    copy of the lake, whose files' identities all changed, is not named. [] when every pair holds; None
    when not checked: the mirror is not whole now (`bars` reads its window over `lake_bars`, which the
    mirror cannot mislead), or a writer changed bars during the check. Read only."""
    mirror = mirror_dir(paths)
    try:
        before = os.stat(mirror / CURRENT_FILE)
    except OSError:
        return None
    if not is_current(paths):
        return None
    bars = paths.dataset(BARS.name)
    wrong = sorted(pair for pair in out_of_step(paths) if not _pair_holds(bars, mirror, pair))
    try:
        after = os.stat(mirror / CURRENT_FILE)
    except OSError:
        return None
    if (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns):
        return None  # (a writer changed bars meanwhile, and brought the mirror up to date itself)
    return [
        f"{mirror}: the mirror of {symbol} {interval} does not hold what its bars files say (changed other "
        "than by marketlake): `bars` shows what it holds"
        for interval, symbol in wrong
    ]


def _pair_holds(bars: Path, mirror: Path, pair: Pair) -> bool:
    """Whether the mirror's files of `pair` hold exactly the rows its bars files say they should (what
    `_update_pair` would make them, compared by content)."""
    sources = sorted(set(_sources(bars)) | set(_sources(mirror)))
    files = _pair_files(bars, sources, pair, None)
    try:
        if any(_stray(f, pair[0], {}) for f in files):
            choices = _choose(files, every=True) if files else {}
        else:
            by_period: dict[str, list[_File]] = {}
            for f in files:
                by_period.setdefault(f.period, []).append(f)
            choices = {
                rel: c for group in by_period.values() for rel, c in _choose(group, every=True).items()
            }
        for rel, choice in choices.items():
            target = mirror / rel
            if choice is False:
                if target.exists():
                    return False
                continue
            if not target.is_file():
                return False
            want = pq.read_table(bars / rel, partitioning=None)
            if choice is not True:
                want = want.filter(pa.array(choice))
            if not pq.read_table(target, partitioning=None).equals(want):
                return False
    except (OSError, pa.ArrowException):
        return False
    return all(rel in choices or not (mirror / rel).exists() for rel in _entries(mirror, sources, pair, None))


def _has_entry(folder: Path) -> bool:
    names = _listdir(folder)
    return DATA_FILE in names or SOURCE_FILE in names


def _pair_folders(*roots: Path) -> list[tuple[str, Pair, Path]]:
    """(source, (interval, symbol), rel folder) of every source/interval/symbol folder under any of `roots`."""
    out: set[tuple[str, Pair, Path]] = set()
    for root in roots:
        for s in _sources(root):
            sdir = f"source={s}"
            for i_name in _listdir(root / sdir):
                interval = _key("interval=", i_name)
                if interval is None:
                    continue
                for s_name in _listdir(root / sdir / i_name):
                    symbol = _key("symbol=", s_name)
                    if symbol is not None:
                        out.add((s, (interval, symbol), Path(sdir) / i_name / s_name))
    return sorted(out)


def update_whole(
    paths: LakePaths,
    pairs: Iterable[Pair],
    dirs: set[Path],
    *,
    every: bool = True,
    each: Callable[[], AbstractContextManager[object]] | None = None,
) -> None:
    """Recompute the mirror of each of `pairs` whole (every period); `every`: reading every file (a lone
    one too: whether it holds a ts twice, `_choose`); `each`: a context each pair's changes are made in
    (the writer's `changing`)."""
    bars, mirror = paths.dataset(BARS.name), mirror_dir(paths)
    sources = sorted(set(_sources(bars)) | set(_sources(mirror)))
    for pair in sorted(pairs):
        with each() if each is not None else contextlib.nullcontext():
            _update_pair(bars, mirror, sources, pair, dirs, every=every)


WITHDRAWN = "bars_chosen.withdrawn-"
"""The name a mirror that could not be kept up to date is renamed to (`withdraw`): a connection that still
reads it then finds no file and fails, rather than show bars the lake no longer holds."""


def withdraw(paths: LakePaths) -> None:
    """Take the mirror away, whole, by one rename (`rebuild` makes a new one and removes this)."""
    mirror = mirror_dir(paths)
    with contextlib.suppress(FileNotFoundError):
        os.rename(mirror, mirror.with_name(f"{WITHDRAWN}{uuid.uuid4().hex}"))
        fsync_dir(mirror.parent)


def rebuild(
    paths: LakePaths, dirs: set[Path], *, each: Callable[[], AbstractContextManager[object]] | None = None
) -> int:
    """Bring the whole mirror up to date (a lake without one, or after a writer that stopped midway): every
    (interval, symbol) of the lake's bars and of the mirror, each in `each` (see `update_whole`); mirrors
    withdrawn before are removed. Returns the number of pairs."""
    bars, mirror = paths.dataset(BARS.name), mirror_dir(paths)
    for name in _listdir(mirror.parent):
        if name.startswith(WITHDRAWN):
            shutil.rmtree(mirror.parent / name, ignore_errors=True)
    write_anchor(paths, BARS_CHOSEN)
    pairs = {pair for _, pair, _ in _pair_folders(bars, mirror)}
    update_whole(paths, pairs, dirs, every=False, each=each)
    return len(pairs)


def _listdir(d: Path) -> list[str]:
    try:
        return os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return []

"""Landing bars: the lake's writer lock, and the calendar brought up to date before it is released.

The storage layer (lake/) knows nothing of calendars; whoever lands bars brings the `trading_sessions`
dataset up to date. Every ingestor opens the lake with `land(root)`, never with `LakeWriter.open` alone.

The calendar is brought up to date from what this lock's writes held (`LakeWriter.bars_span`), not by
reading every bars file of the lake: the years of those bars, and any year between them and the years
already in the lake. The lake's other bars are looked at through their folder names only (`period=`); a
year there without sessions (a run killed between its bars and its calendar) sends it to the full scan of
every bars file (features.calendars.ensure_sessions). One more year can be needed, that before the first
(a bar in the first hours of a January 1st, UTC, is on December 31st in New York): for it the statistics
of the first January's files changed since that year's sessions were written are read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.calendars import NEW_YORK, XNYS, ensure_sessions, xnys_year, years_for
from lake.paths import LakePaths
from lake.schemas import BARS, TRADING_SESSIONS
from lake.writer import DATA_FILE, LakeWriter, partition_dir

_PERIOD = re.compile(r"period=(\d{4})(?:-\d{2})?")


@contextmanager
def land(
    root: str | os.PathLike[str] | None = None,
    *,
    wait_seconds: float = 600.0,
    on_wait: Callable[[str], object] | None = None,
) -> Iterator[LakeWriter]:
    """`LakeWriter.open(root)`, and before the lock is released the trading_sessions dataset made to cover
    every bar of the lake: the years of the bars written under the lock recomputed when bars changed,
    missing years added otherwise (which also completes the calendar of a run killed between its bars
    and its calendar)."""
    with LakeWriter.open(root, wait_seconds=wait_seconds, on_wait=on_wait) as writer:
        have = session_years(writer.paths)
        started: set[int] = set()
        with ThreadPoolExecutor(1) as pool:

            def prefetch(first: dt.datetime, last: dt.datetime, changed: bool) -> None:
                # the calendar of the years these bars need is computed while the bars land (it is
                # exchange_calendars' work, most of a small ingest's); update_sessions then finds it ready
                for year in years_for(first, last):
                    if year not in started and (changed or year not in have):
                        started.add(year)
                        with contextlib.suppress(RuntimeError):  # a pool shut down: computed later
                            pool.submit(xnys_year, year)  # an error is raised again where needed

            writer.on_bars = prefetch
            try:
                yield writer
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                writer.on_bars = None
        update_sessions(writer)  # after the pool's work is done: no year computed twice


def session_years(paths: LakePaths) -> set[int]:
    """The years the lake's XNYS trading_sessions hold (from their folders)."""
    base = partition_dir(paths, TRADING_SESSIONS, {"calendar": XNYS, "period": "2000"}).parent
    out: set[int] = set()
    if base.is_dir():
        for entry in os.scandir(base):
            m = _PERIOD.fullmatch(entry.name)
            if m and os.path.exists(os.path.join(entry.path, DATA_FILE)):
                out.add(int(m.group(1)))
    return out


def bar_folders(paths: LakePaths) -> dict[int, list[str]]:
    """The lake's bars partition folders by the year their name says (`period=YYYY-MM` or `period=YYYY`:
    the UTC month or year of their bars), from the folder names alone: no file is opened."""
    out: dict[int, list[str]] = {}

    def walk(path: str, depth: int) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            if not e.is_dir():
                continue
            if depth == len(BARS.partition_by) - 1:
                m = _PERIOD.fullmatch(e.name)
                if m:
                    out.setdefault(int(m.group(1)), []).append(e.path)
            else:
                walk(e.path, depth + 1)

    walk(str(paths.dataset(BARS.name)), 0)
    return out


def _earliest_new_york_year(folders: list[str], since: float | None) -> int | None:
    """The New York year of the earliest bar in these partitions' files changed after `since` (a file
    mtime; None: every file), from the Parquet statistics (the column when there are none); None if no
    such bar. An unreadable file is passed over here (the commands that read it name it)."""
    first: dt.datetime | None = None
    for folder in folders:
        f = os.path.join(folder, DATA_FILE)
        try:
            if since is not None and os.stat(f).st_mtime <= since:
                continue
            meta = pq.ParquetFile(f).metadata
            idx = meta.schema.to_arrow_schema().get_field_index("ts")
            if meta.num_rows == 0 or idx < 0:
                continue
            stats = [meta.row_group(g).column(idx).statistics for g in range(meta.num_row_groups)]
            if all(st is not None and st.has_min_max for st in stats):
                lo = min(st.min for st in stats if st is not None)
            else:
                lo = pc.min(pq.read_table(f, columns=["ts"], partitioning=None).column("ts")).as_py()
        except (OSError, pa.ArrowException, TypeError, ValueError):
            continue
        if isinstance(lo, dt.datetime):
            lo = lo.replace(tzinfo=dt.UTC) if lo.tzinfo is None else lo
            first = lo if first is None else min(first, lo)
    return None if first is None else first.astimezone(NEW_YORK).year


def _year_before_needed(paths: LakePaths, folders: dict[int, list[str]], first: int) -> bool:
    """Whether the bars of the lake's first year (by folder) include one on the last New York day of the
    year before (the first hours of a January 1st, UTC). Only January's (or the year's) partitions can; of
    them, only the files changed since that first year's sessions were written are read: any older one
    was landed by a run that brought the calendar up to date for it."""
    candidates = [d for d in folders.get(first, []) if d.endswith((f"={first}-01", f"={first}"))]
    if not candidates:
        return False
    sessions = partition_dir(paths, TRADING_SESSIONS, {"calendar": XNYS, "period": f"{first:04d}"})
    try:
        since: float | None = os.stat(sessions / DATA_FILE).st_mtime
    except OSError:
        since = None
    year = _earliest_new_york_year(candidates, since)
    return year is not None and year < first


def _todo(have: set[int], touched: set[int], bars_changed: bool) -> set[int]:
    """Years to write: any missing from the first to the last year known (the sessions already there and
    the years of this lock's bars), and this lock's years themselves when its bars changed."""
    known = have | touched
    if not known:
        return set()
    todo = set(range(min(known), max(known) + 1)) - have
    return todo | touched if bars_changed else todo


def update_sessions(writer: LakeWriter) -> None:
    """Bring trading_sessions up to date after bars were written under `writer`'s lock (see the module
    docstring). A year whose sessions are already the same is left untouched by the writer."""
    touched: set[int] = set(years_for(*writer.bars_span)) if writer.bars_span is not None else set()
    have = session_years(writer.paths)
    todo = _todo(have, touched, writer.bars_written)
    folders = bar_folders(writer.paths)
    if folders:
        first, last = min(folders), max(folders)
        if not set(range(first, last + 1)) <= have | todo:
            # bars the calendar does not cover and that this lock did not write: read every bars file
            ensure_sessions(writer, only_missing=True)
            todo = _todo(session_years(writer.paths), touched, writer.bars_written)
        elif first - 1 not in have | todo and _year_before_needed(writer.paths, folders, first):
            todo.add(first - 1)
    for year in sorted(todo):
        writer.write(
            TRADING_SESSIONS,
            {"calendar": XNYS, "period": f"{year:04d}"},
            xnys_year(year),
            mode="replace",
            inputs=[{"calendar": XNYS, "source": "exchange_calendars", "year": year}],
        )

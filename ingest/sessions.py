"""Landing bars: the lake's writer lock, and the calendar brought up to date before it is released.

The storage layer (lake/) knows nothing of calendars; whoever lands bars brings the `trading_sessions`
dataset up to date. Every ingestor opens the lake with `land(root)`, never with `LakeWriter.open` alone.

The calendar is brought up to date from what this lock's writes held (`LakeWriter.bars_span`), not by
reading every bars file of the lake: the years of those bars, and any year between them and the years
already in the lake. The lake's other bars are looked at through their folder names only (`period=`); a
year there without sessions (a run killed between its bars and its calendar) sends it to the full scan of
every bars file (features.calendars.ensure_sessions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from features.calendars import XNYS, ensure_sessions, xnys_year, years_for
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
        yield writer
        update_sessions(writer)


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


def bar_folder_years(paths: LakePaths) -> set[int]:
    """The years named by the lake's bars partitions (`period=YYYY-MM` or `period=YYYY`: the UTC month or
    year of their bars), from the folder names alone: no file is opened."""
    out: set[int] = set()

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
                    out.add(int(m.group(1)))
            else:
                walk(e.path, depth + 1)

    walk(str(paths.dataset(BARS.name)), 0)
    return out


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
    folders = bar_folder_years(writer.paths)
    if folders and not set(range(min(folders), max(folders) + 1)) <= have | todo:
        # bars the calendar does not cover and that this lock did not write: read every bars file
        ensure_sessions(writer, only_missing=True)
        todo = _todo(session_years(writer.paths), touched, writer.bars_written)
    for year in sorted(todo):
        writer.write(
            TRADING_SESSIONS,
            {"calendar": XNYS, "period": f"{year:04d}"},
            xnys_year(year),
            mode="replace",
            inputs=[{"calendar": XNYS, "source": "exchange_calendars", "year": year}],
        )

"""Landing bars: the lake's writer lock, and the calendar brought up to date before it is released.

The storage layer (lake/) knows nothing of calendars; whoever lands bars brings the `trading_sessions`
dataset up to date. Every ingestor opens the lake with `land(root)`, never with `LakeWriter.open` alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from features.calendars import ensure_sessions
from lake.writer import LakeWriter


@contextmanager
def land(
    root: str | os.PathLike[str] | None = None,
    *,
    wait_seconds: float = 600.0,
    on_wait: Callable[[str], object] | None = None,
) -> Iterator[LakeWriter]:
    """`LakeWriter.open(root)`, and before the lock is released the trading_sessions dataset made to cover
    every bar of the lake: every year recomputed when bars changed, only missing years otherwise (which
    also completes the calendar of a run killed between its bars and its calendar)."""
    with LakeWriter.open(root, wait_seconds=wait_seconds, on_wait=on_wait) as writer:
        yield writer
        ensure_sessions(writer, only_missing=not writer.bars_written)

"""Train, validation and test periods: disjoint in time, in that order, with an embargo between them.

The same rule as the `splits` view (sql/views/070_splits.sql), for Python callers (the trainer):

- the range is the lake's bars, [min(ts), max(available_at)), in microseconds;
- the embargo between consecutive periods is `embargo_days` whole days when set, else `embargo_bars` bars
  of the lake's shortest interval (`bar_minutes`; default 60 bars: one hour of a 1m lake);
- `fraction`: the range less two embargoes is cut train_fraction / validation_fraction / the rest, each
  length rounded down to a whole minute; `date`: train ends at the end of `train_end` (UTC), validation
  at the end of `validation_end`, test runs to the end of the range;
- every boundary is clamped into the range: a period may be empty, never overlapping another.

Periods are half-open, [start_at, end_at). A bar belongs to a period only if its whole life lies in it:
ts >= start_at and available_at <= end_at (the `bar_splits` view). A bar straddling a boundary (a daily bar
whose ts is in train and whose close is known in the embargo or later) is in no period.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lake.config import Settings

if TYPE_CHECKING:
    import duckdb

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MINUTE_US = 60_000_000
DAY_US = 86_400_000_000
NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    name: str
    start_at: dt.datetime
    end_at: dt.datetime

    def __contains__(self, ts: dt.datetime) -> bool:
        return self.start_at <= ts < self.end_at

    @property
    def empty(self) -> bool:
        return self.end_at <= self.start_at


def _us(t: dt.datetime) -> int:
    delta = t.astimezone(dt.UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _ts(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def _day_end_us(day: dt.date) -> int:
    return _us(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC))


def embargo_us(settings: Settings, bar_minutes: int = 1) -> int:
    """The embargo in microseconds: embargo_days whole days when set, else embargo_bars bars of
    `bar_minutes` (the lake's shortest interval)."""
    if settings.embargo_days is not None:
        if settings.embargo_days < 1:
            raise ValueError(f"embargo_days must be at least 1, got {settings.embargo_days}")
        return settings.embargo_days * DAY_US
    if settings.embargo_bars < 1:
        raise ValueError(f"embargo_bars must be at least 1, got {settings.embargo_bars}")
    return settings.embargo_bars * bar_minutes * MINUTE_US


def compute_splits(
    start: dt.datetime, end: dt.datetime, settings: Settings, bar_minutes: int = 1
) -> list[Split]:
    """The three periods over [start, end) with the settings' method, fractions or dates, and embargo
    (`bar_minutes`: the lake's shortest bar interval in minutes, for an embargo in bars)."""
    s, e = _us(start), _us(end)
    emb = embargo_us(settings, bar_minutes)
    if e < s:
        raise ValueError(f"range end {end} is before its start {start}")
    if settings.split_method == "date":
        if settings.train_end is None or settings.validation_end is None:
            raise ValueError("split method 'date' needs train_end and validation_end")
        b1 = _day_end_us(settings.train_end)
        b3 = max(b1 + emb, _day_end_us(settings.validation_end))
    else:
        usable = max(e - s - 2 * emb, 0)
        b1 = s + math.floor(settings.train_fraction * usable / 60000000.0) * MINUTE_US
        b3 = b1 + emb + math.floor(settings.validation_fraction * usable / 60000000.0) * MINUTE_US
    b2, b4 = b1 + emb, b3 + emb

    def clamp(x: int) -> int:
        return min(max(x, s), e)

    bounds = [(s, clamp(b1)), (clamp(b2), clamp(b3)), (clamp(b4), e)]
    return [Split(n, _ts(lo), _ts(hi)) for n, (lo, hi) in zip(NAMES, bounds, strict=True)]


def load_splits(con: duckdb.DuckDBPyConnection) -> list[Split]:
    """The periods from the `splits` view of a lake connection (empty on a lake with no bar)."""
    rows = con.execute("SELECT split, start_at, end_at FROM splits ORDER BY split_no").fetchall()
    return [Split(str(n), a, b) for n, a, b in rows]


def split_of(ts: dt.datetime, available_at: dt.datetime, splits: list[Split]) -> str | None:
    """The name of the period holding the bar [ts, available_at] whole (ts >= start_at and
    available_at <= end_at), or None (it touches an embargo or a boundary, or is outside the range)."""
    for sp in splits:
        if not sp.empty and sp.start_at <= ts and available_at <= sp.end_at:
            return sp.name
    return None

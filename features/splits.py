"""Train, validation and test periods: disjoint in time, in that order, with an embargo between them.

The same rule as the `splits` view (sql/views/070_splits.sql), for Python callers (the trainer):

- the range is the lake's bars, [min(ts), max(available_at)), in microseconds;
- the embargo between consecutive periods is `embargo_days` whole days when set, else `embargo_bars` bars
  of the lake's shortest interval (`bar_minutes`; default 60 bars) in trading time, on the calendar of
  every asset class the lake holds, ending when the last of them has had its bars (`embargo_end_us`):
  crypto (`clock`) counts clock time (60 bars of a 1m lake: one hour); stocks (`sessions`: the XNYS
  sessions of the `session` setting, the `session_clock` view's) count session time for intraday bars and
  whole sessions starting at or after the boundary for daily ones (five a week for weekly bars), so that
  on a stock lake too the embargo holds its bars rather than a closed market; past the calendar's last
  session the embargo runs to the end of the range (a lake of stocks with no calendar at all, made by
  hand, counts on the clock);
- `fraction`: the range less two nominal embargoes is cut train_fraction / validation_fraction / the
  rest, each length rounded down to a whole minute: on a lake of stocks alone the range and the lengths
  are session time (`cut_embargo_us`), so that every period holds its share of the trading and none falls
  overnight; on a lake that holds crypto, clock time (`embargo_us`);
  `date`: train ends at the end of `train_end` (UTC), validation at the end of `validation_end` (or of the
  embargo after train, when later), test runs to the end of the range;
- every boundary is clamped into the range: a period may be empty, never overlapping another.

Periods are half-open, [start_at, end_at). A bar belongs to a period only if its whole life lies in it:
ts >= start_at and available_at <= end_at (the `bar_splits` view). A bar straddling a boundary (a daily bar
whose ts is in train and whose close is known in the embargo or later) is in no period.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Sequence
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
    """The nominal embargo in microseconds: embargo_days whole days when set, else embargo_bars bars of
    `bar_minutes` (the lake's shortest interval) as clock time: what the fraction cut sets aside, and the
    embargo itself on a crypto lake."""
    if settings.embargo_days is not None:
        if settings.embargo_days < 1:
            raise ValueError(f"embargo_days must be at least 1, got {settings.embargo_days}")
        return settings.embargo_days * DAY_US
    if settings.embargo_bars < 1:
        raise ValueError(f"embargo_bars must be at least 1, got {settings.embargo_bars}")
    return settings.embargo_bars * bar_minutes * MINUTE_US


class SessionClock:
    """The XNYS sessions (start_us, end_us), in order, with a clock that runs only while they are open (the
    `session_clock` view's, in Python)."""

    def __init__(self, sessions: Sequence[tuple[int, int]]) -> None:
        self.starts = [a for a, _ in sessions]
        self.ends = [z for _, z in sessions]
        self.clock: list[int] = []  # session time from the first session's start to each session's end
        total = 0
        for a, z in sessions:
            total += z - a
            self.clock.append(total)

    def time_at(self, t_us: int) -> int:
        """The clock's reading at t_us (the session time of the sessions started at or before t_us, up to it)."""
        i = bisect.bisect_right(self.starts, t_us)  # sessions[:i] start at or before t_us
        if not i:
            return 0
        return self.clock[i - 1] - self.ends[i - 1] + min(t_us, self.ends[i - 1])

    def time_end(self, t_us: int, need_us: int) -> int | None:
        """The instant at which need_us of session time has passed since t_us; None past the last session."""
        if need_us <= 0:
            return t_us
        target = self.time_at(t_us) + need_us
        i = bisect.bisect_left(self.clock, target)
        return None if i == len(self.clock) else self.ends[i] - (self.clock[i] - target)

    def sessions_end(self, t_us: int, n: int) -> int | None:
        """The end of the n-th session starting at or after t_us; None past the last session."""
        i = bisect.bisect_left(self.starts, t_us) + n - 1
        return self.ends[i] if i < len(self.ends) else None


def _sessions_per_bar(bar_minutes: int) -> int:
    """Whole sessions a bar of a daily or longer interval stands for (five a week)."""
    return 5 * bar_minutes // 10080 if bar_minutes >= 10080 else bar_minutes // 1440


def cut_embargo_us(settings: Settings, bar_minutes: int, sessions: SessionClock) -> int:
    """The nominal embargo in session time, what a fraction cut on the session clock sets aside: the bars'
    session time for intraday bars, else the sessions (or embargo_days) times the longest session."""
    if settings.embargo_days is None and bar_minutes < 1440:
        return embargo_us(settings, bar_minutes)
    embargo_us(settings, bar_minutes)  # (the settings' checks)
    longest = max((z - a for a, z in zip(sessions.starts, sessions.ends, strict=True)), default=0)
    if settings.embargo_days is not None:
        return settings.embargo_days * longest
    return settings.embargo_bars * _sessions_per_bar(bar_minutes) * longest


def embargo_end_us(
    t_us: int,
    range_end_us: int,
    settings: Settings,
    bar_minutes: int = 1,
    *,
    clock: bool = True,
    sessions: SessionClock | None = None,
) -> int:
    """The end of the embargo that starts at t_us (the `splits` view's macro splits_embargo_end): whole
    days when embargo_days is set; else embargo_bars bars of `bar_minutes` on each calendar the lake holds,
    the later end of the two: clock time when it holds crypto (`clock`), session time (intraday bars) or
    whole sessions (daily ones) when it holds stocks (`sessions`); range_end_us past the calendar's end."""
    emb = embargo_us(settings, bar_minutes)
    if settings.embargo_days is not None:
        return t_us + emb
    end = t_us + emb if clock else t_us
    if sessions is not None:
        if bar_minutes < 1440:
            got = sessions.time_end(t_us, emb)
        else:
            got = sessions.sessions_end(t_us, settings.embargo_bars * _sessions_per_bar(bar_minutes))
        end = max(end, range_end_us if got is None else got)
    return end


def compute_splits(
    start: dt.datetime,
    end: dt.datetime,
    settings: Settings,
    bar_minutes: int = 1,
    *,
    clock: bool = True,
    sessions: SessionClock | None = None,
) -> list[Split]:
    """The three periods over [start, end) with the settings' method, fractions or dates, and embargo
    (`bar_minutes`: the lake's shortest bar interval in minutes; `clock`: the lake holds crypto; `sessions`:
    the XNYS session clock when it holds stocks: see `embargo_end_us`; `lake_inputs` reads all three)."""
    s, e = _us(start), _us(end)
    nominal = embargo_us(settings, bar_minutes)
    if e < s:
        raise ValueError(f"range end {end} is before its start {start}")

    def embargo_end(t: int) -> int:
        return embargo_end_us(t, e, settings, bar_minutes, clock=clock, sessions=sessions)

    if settings.split_method == "date":
        if settings.train_end is None or settings.validation_end is None:
            raise ValueError("split method 'date' needs train_end and validation_end")
        b1 = _day_end_us(settings.train_end)
        b2 = embargo_end(b1)
        b3 = max(b2, _day_end_us(settings.validation_end))
    else:
        # the cut's clock: session time on a lake of stocks alone (so no period falls overnight), else the clock
        cut = sessions if sessions is not None and not clock else None

        def after(t: int, length: int) -> int:
            if cut is None:
                return t + length
            got = cut.time_end(t, length)
            return e if got is None else got

        if cut is not None:
            nominal = cut_embargo_us(settings, bar_minutes, cut)
            usable = max(cut.time_at(e) - cut.time_at(s) - 2 * nominal, 0)
        else:
            usable = max(e - s - 2 * nominal, 0)
        b1 = after(s, math.floor(settings.train_fraction * usable / 60000000.0) * MINUTE_US)
        b2 = embargo_end(b1)
        b3 = after(b2, math.floor(settings.validation_fraction * usable / 60000000.0) * MINUTE_US)
    b4 = embargo_end(b3)

    def clamp(x: int) -> int:
        return min(max(x, s), e)

    bounds = [(s, clamp(b1)), (clamp(b2), clamp(b3)), (clamp(b4), e)]
    return [Split(n, _ts(lo), _ts(hi)) for n, (lo, hi) in zip(NAMES, bounds, strict=True)]


@dataclass(frozen=True)
class LakeInputs:
    """What `compute_splits` needs of a lake besides the settings (`lake_inputs`)."""

    start: dt.datetime
    end: dt.datetime
    bar_minutes: int
    clock: bool
    sessions: SessionClock | None


def lake_inputs(con: duckdb.DuckDBPyConnection) -> LakeInputs | None:
    """The bar range, shortest interval and calendars of a lake connection, as the `splits` view reads them
    (None on a lake with no bar): compute_splits(**vars(...), settings=...) gives the view's periods."""
    row = con.execute(
        "SELECT min(ts), max(available_at), bool_or(asset_class = 'crypto'), bool_or(asset_class <> 'crypto') "
        "FROM bars HAVING count(*) > 0"
    ).fetchone()
    if row is None:
        return None
    units = {"m": 1, "h": 60, "d": 1440, "w": 10080}
    names = [str(n) for (n,) in con.execute('SELECT DISTINCT "interval" FROM bars').fetchall()]
    lengths = [int(n[:-1]) * units[n[-1]] for n in names if n[:-1].isdigit() and n[-1:] in units]
    bar_minutes = min(lengths, default=1)
    sessions, clock = None, bool(row[2])
    if row[3]:
        pairs = con.execute("SELECT start_us, end_us FROM session_clock ORDER BY session_no").fetchall()
        if pairs:
            sessions = SessionClock([(int(a), int(z)) for a, z in pairs])
        else:  # a lake of stocks with no calendar at all (made by hand): their bars on the clock
            clock = True
    return LakeInputs(row[0], row[1], bar_minutes, clock, sessions)


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

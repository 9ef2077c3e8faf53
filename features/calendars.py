"""Exchange calendars: XNYS sessions from exchange_calendars, materialised in the lake.

The lake holds one `trading_sessions` partition per calendar and year (`calendar=XNYS/period=YYYY`), each
with every session of that year: regular hours (`open_at`, `close_at`; 13:00 New York on an early close)
and extended hours (`ext_open_at` 04:00, `ext_close_at` 20:00 New York; 17:00 on an early close, when the
post-market ends early too). Holidays and weekends have no row. The '24/7' calendar of crypto needs no
data: it is generated in SQL (sql/views/010_trading_sessions.sql), 00:00-00:00 UTC every day.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from lake.errors import REPAIR, MarketlakeError
from lake.schemas import TRADING_SESSIONS, UTC_TS
from lake.writer import DATA_FILE, partition_dir

if TYPE_CHECKING:
    from lake.paths import LakePaths
    from lake.writer import LakeWriter

XNYS = "XNYS"
log = logging.getLogger("marketlake.calendars")
NEW_YORK = ZoneInfo("America/New_York")
EXT_OPEN = dt.time(4, 0)
EXT_CLOSE = dt.time(20, 0)
EXT_CLOSE_EARLY = dt.time(17, 0)
REGULAR_CLOSE = dt.time(16, 0)


WIDE_FIRST_YEAR = 1990
"""xnys_year takes the years from WIDE_FIRST_YEAR to two years ahead from one calendar (`_wide_xnys`)."""


_WIDE_LOCK = threading.Lock()


def _wide_xnys() -> object | None:
    """One XNYS calendar from WIDE_FIRST_YEAR to the end of the year after next (None if
    exchange_calendars cannot make it): it costs about what one year's does, and every year is cut from
    it. Made once per process, by whichever thread asks first; the others wait for it (ingest's stamping
    asks while the session sync's thread does: exchange_calendars' work holds the GIL, twice would cost
    both)."""
    with _WIDE_LOCK:
        return _make_wide_xnys()


@lru_cache(maxsize=1)
def _make_wide_xnys() -> object | None:
    import exchange_calendars as xcals

    try:
        return xcals.get_calendar(
            XNYS, start=f"{WIDE_FIRST_YEAR}-01-01", end=f"{dt.date.today().year + 2}-12-31"
        )
    except Exception:  # exchange_calendars' own errors: each year is then asked on its own
        return None


def xnys_calendar() -> Any | None:
    """The process's one wide XNYS calendar (exchange_calendars' ExchangeCalendar, WIDE_FIRST_YEAR to the
    end of the year after next), or None when exchange_calendars cannot make it."""
    return _wide_xnys()


@lru_cache(maxsize=64)
def xnys_year(year: int) -> pa.Table:
    """Every XNYS session of one calendar year, in the TRADING_SESSIONS schema (cached per process)."""
    import exchange_calendars as xcals

    wide: Any = _wide_xnys()
    if wide is not None and WIDE_FIRST_YEAR <= year <= wide.last_session.year - 1:
        sched = wide.schedule.loc[f"{year}-01-01" : f"{year}-12-31"]
    else:
        try:
            cal = xcals.get_calendar(XNYS, start=f"{year}-01-01", end=f"{year}-12-31")
        except Exception as exc:  # exchange_calendars raises its own errors for dates it cannot serve
            raise MarketlakeError(
                f"calendar {XNYS}: no sessions for {year} from exchange_calendars: {exc}"
            ) from exc
        sched = cal.schedule
    days: list[dt.date] = []
    opens: list[dt.datetime] = []
    closes: list[dt.datetime] = []
    early: list[bool] = []
    ext_opens: list[dt.datetime] = []
    ext_closes: list[dt.datetime] = []
    for label, row in sched.iterrows():
        day = label.date()
        if day.year != year:
            continue
        open_at = row["open"].to_pydatetime().astimezone(dt.UTC)
        close_at = row["close"].to_pydatetime().astimezone(dt.UTC)
        is_early = close_at.astimezone(NEW_YORK).time() < REGULAR_CLOSE
        ext_close_local = EXT_CLOSE_EARLY if is_early else EXT_CLOSE
        days.append(day)
        opens.append(open_at)
        closes.append(close_at)
        early.append(is_early)
        ext_opens.append(dt.datetime.combine(day, EXT_OPEN, NEW_YORK).astimezone(dt.UTC))
        ext_closes.append(dt.datetime.combine(day, ext_close_local, NEW_YORK).astimezone(dt.UTC))
    return pa.table(
        {
            "day": pa.array(days, type=pa.date32()),
            "open_at": pa.array(opens, type=UTC_TS),
            "close_at": pa.array(closes, type=UTC_TS),
            "is_early_close": pa.array(early, type=pa.bool_()),
            "ext_open_at": pa.array(ext_opens, type=UTC_TS),
            "ext_close_at": pa.array(ext_closes, type=UTC_TS),
        },
        schema=TRADING_SESSIONS.schema,
    )


def bar_range(paths: LakePaths) -> tuple[dt.datetime, dt.datetime] | None:
    """Earliest and latest bar `ts` in the lake's bars files (from the Parquet statistics when present),
    or None when the lake holds no bar."""
    lo: dt.datetime | None = None
    hi: dt.datetime | None = None
    base = paths.dataset("bars")
    for f in sorted(base.glob("*/*/*/*/data.parquet")):
        try:
            meta = pq.ParquetFile(f).metadata
            idx = meta.schema.to_arrow_schema().get_field_index("ts")
        except (pa.ArrowException, OSError) as exc:
            log.warning("skipping an unreadable bars file for the calendar: %s: %s; %s", f, exc, REPAIR)
            continue
        if meta.num_rows == 0:
            continue
        if idx < 0:
            log.warning("skipping a bars file without a ts column for the calendar: %s; %s", f, REPAIR)
            continue
        f_lo: dt.datetime | None = None
        f_hi: dt.datetime | None = None
        try:
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(idx).statistics
                if stats is None or not stats.has_min_max:
                    f_lo = f_hi = None
                    break
                g_lo, g_hi = _as_utc(stats.min), _as_utc(stats.max)
                f_lo = g_lo if f_lo is None else min(f_lo, g_lo)
                f_hi = g_hi if f_hi is None else max(f_hi, g_hi)
        except TypeError:  # a ts column that holds no timestamps: read below, and skipped there
            f_lo = f_hi = None
        if f_lo is None or f_hi is None:  # no statistics: read the column
            try:
                col = pq.read_table(f, columns=["ts"], partitioning=None).column("ts")
                values = [_as_utc(v) for v in col.to_pylist() if v is not None]
            except (pa.ArrowException, OSError, TypeError) as exc:
                log.warning("skipping an unreadable bars file for the calendar: %s: %s; %s", f, exc, REPAIR)
                continue
            if not values:
                continue
            f_lo, f_hi = min(values), max(values)
        lo = f_lo if lo is None else min(lo, f_lo)
        hi = f_hi if hi is None else max(hi, f_hi)
    if lo is None or hi is None:
        return None
    return lo, hi


def _as_utc(value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a timestamp, got {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def years_for(lo: dt.datetime, hi: dt.datetime) -> range:
    """Calendar years whose sessions cover every bar between lo and hi: a bar's trading day in New York is
    never later than its UTC day, and may be a day earlier."""
    return range(lo.astimezone(NEW_YORK).year, hi.year + 1)


def ensure_sessions(writer: LakeWriter, *, only_missing: bool = False) -> None:
    """Make the trading_sessions dataset cover every day from the earliest to the latest bar in the lake.

    Called by whoever lands bars (ingest.sessions.land) before the writer lock is released: with bars changed,
    every year is recomputed; otherwise (`only_missing`) only years not yet in the lake are written, which
    also completes the calendar after a run killed between its bars and its calendar. Each year is written
    whole; a year that is already there with the same sessions is left untouched.
    """
    rng = bar_range(writer.paths)
    if rng is None:
        return
    for year in years_for(*rng):
        part = {"calendar": XNYS, "period": f"{year:04d}"}
        if only_missing and (partition_dir(writer.paths, TRADING_SESSIONS, part) / DATA_FILE).exists():
            continue
        writer.write(
            TRADING_SESSIONS,
            part,
            xnys_year(year),
            mode="replace",
            inputs=[{"calendar": XNYS, "source": "exchange_calendars", "year": year}],
        )

"""US stocks and ETFs: the XNYS calendar stamp of daily bars, and which symbols are ETFs.

Both Polygon and Yahoo daily bars go through `stamp_daily`, so that the same trading day gets the same
`ts` and `available_at` whichever vendor delivered it (vendors stamp days differently: Polygon's day files
carry 16:00 New York, Yahoo's chart API 09:30 New York). DESIGN.md: `ts` is the session's open and
`available_at` the end of that day's after-hours trading, the session's close plus four hours (20:00 New
York, 17:00 on an early close): a vendor's day bar counts extended-hours trades in its volume (Polygon's
own documentation), so it is not known before the after-hours session ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
CALENDAR = "XNYS"
_CALENDAR_START = "2000-01-01"
AFTER_HOURS = dt.timedelta(hours=4)
"""From the regular close to the end of after-hours trading (16:00 -> 20:00, 13:00 -> 17:00 New York)."""

# Symbols stored with asset_class 'etf'; every other US symbol is a 'stock'. An explicit list, on purpose:
# the flat files do not say what a ticker is, and a guess would differ between sources. Add to it here.
ETFS: frozenset[str] = frozenset(
    """
    SPY QQQ IWM DIA VOO VTI IVV RSP MDY IJH IJR VEA VWO EFA EEM EWJ FXI IEMG
    XLB XLC XLE XLF XLI XLK XLP XLRE XLU XLV XLY SMH SOXX KRE XBI IBB VGT VUG VTV SCHD
    AGG BND TLT IEF SHY LQD HYG GLD IAU SLV GDX USO UNG VNQ ARKK TQQQ SQQQ SPXL UVXY VXX IBIT BITO JEPI
    """.split()
)


def asset_class(symbol: str, extra_etfs: Iterable[str] = ()) -> str:
    """'etf' for the symbols in ETFS or `extra_etfs` (the `etfs` setting), 'stock' for every other US
    listed symbol."""
    sym = symbol.upper()
    return "etf" if sym in ETFS or sym in {e.upper() for e in extra_etfs} else "stock"


class StampError(ValueError):
    """A daily bar whose instant does not fit the trading day it claims (the message is the reason)."""


@dataclass(frozen=True)
class Session:
    day: dt.date
    open_at: dt.datetime
    """Regular open (09:30 New York), UTC."""
    close_at: dt.datetime
    """Regular close (16:00 New York, 13:00 on an early close), UTC."""

    @property
    def is_early_close(self) -> bool:
        return self.close_at.astimezone(NEW_YORK).time() < dt.time(16, 0)


@lru_cache(maxsize=1)
def _calendar() -> Any:
    """The process's wide XNYS calendar (features.calendars: the one the session sync cuts years from, made
    once), or this module's own from _CALENDAR_START when exchange_calendars cannot make that one."""
    from features.calendars import xnys_calendar

    wide = xnys_calendar()
    if wide is not None:
        return wide
    import exchange_calendars as xcals

    return xcals.get_calendar(CALENDAR, start=_CALENDAR_START)


@lru_cache(maxsize=4096)
def session(day: dt.date) -> Session | None:
    """The XNYS regular session of `day`, or None if the exchange did not trade that day.

    Raises StampError for a day outside the calendar's range (it cannot be checked)."""
    cal = _calendar()
    label = day.isoformat()
    if not (cal.first_session.date() <= day <= cal.last_session.date()):
        raise StampError(
            f"{day} is outside the {CALENDAR} calendar's range "
            f"({cal.first_session.date()} to {cal.last_session.date()})"
        )
    if not cal.is_session(label):
        return None
    open_at, close_at = cal.session_open_close(label)
    return Session(day, open_at.to_pydatetime(), close_at.to_pydatetime())


def new_york_day(instant: dt.datetime) -> dt.date:
    return instant.astimezone(NEW_YORK).date()


def stamp_daily(day: dt.date, vendor_instant: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(ts, available_at) of the daily bar of trading day `day`, UTC: the session's open, and its close
    plus four hours (the end of after-hours trading: 20:00 New York, 17:00 on an early close).

    `vendor_instant` is whatever instant the vendor put on the bar; it must fall on `day` in New York
    time, and `day` must be an XNYS session. Otherwise StampError says why (the row is then rejected,
    never moved to another day).
    """
    if vendor_instant.tzinfo is None:
        raise StampError(f"instant {vendor_instant} has no time zone")
    on = new_york_day(vendor_instant)
    if on != day:
        raise StampError(
            f"instant {vendor_instant.astimezone(dt.UTC).isoformat()} is on {on} in New York, "
            f"not on the trading day {day}"
        )
    s = session(day)
    if s is None:
        raise StampError(f"{day} is not an {CALENDAR} trading day")
    return s.open_at, s.close_at + AFTER_HOURS

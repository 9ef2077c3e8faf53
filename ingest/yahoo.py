"""Yahoo Finance prices through yfinance: a backup and gap-filler, never an overwrite.

yfinance's HTTP layer (`yfinance.data.YfData`: cookie, crumb, its rate-limit error) fetches the chart API
and the JSON is read here as served: `Ticker.history()` would round prices to `priceHint`, adjust them for
dividends and turn missing volumes into 0, and the lake keeps what the vendor sent (float32 values widened
to double, e.g. 103.72000122070312). The `session` argument is yfinance's: any requests or curl_cffi
session (tests hand in one that replays recorded responses).

Which bar `bars` shows when Polygon also has it is decided in SQL (sql/views/020_bars.sql), not here.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ingest.common import (
    IngestSummary,
    RawCache,
    RunContext,
    bar_period,
    dataset_table,
    interval_delta,
    ohlcv_problem,
    progress_bar,
    replace_file_rows,
)
from ingest.ratelimit import YAHOO_LIMITER, RateLimiter
from ingest.sessions import land
from ingest.stamping import AFTER_HOURS, ETFS, StampError, asset_class, stamp_daily
from ingest.stamping import session as xnys_session
from lake.errors import MarketlakeError
from lake.schemas import BARS, BARS_REJECTED
from lake.writer import (
    DATA_FILE,
    LakeWriter,
    manifest_inputs,
    partition_dir,
    partition_intact,
    read_partition,
)

SOURCE = "yahoo"
CHART_URL = "https://query2.finance.yahoo.com/v8/finance/chart/{symbol}"
YAHOO_HOSTS = ("query2.finance.yahoo.com",)
"""The hosts Yahoo's prices and news come from (through yfinance)."""


class Unreachable(MarketlakeError):
    """Yahoo's host does not resolve: offline (one line, before any request)."""


def require_reachable(hosts: tuple[str, ...] = YAHOO_HOSTS) -> None:
    """Raise Unreachable naming the first of `hosts` whose name does not resolve. Checked once before a
    run that goes to the network (not with a session handed in), so that an offline ingest says so in one
    line instead of retrying every request."""
    import socket

    for host in hosts:
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise Unreachable(
                f"cannot reach {host}: offline? Yahoo prices and news need the network"
            ) from None


INTERVALS = ("1m", "1d")
MINUTE_LOOKBACK_DAYS = 29
"""Yahoo serves 1m bars for about the last 30 days only."""
MINUTE_WINDOW_DAYS = 7
"""At most this many days of 1m bars per request (Yahoo refuses more than 8)."""
FINAL_AFTER = dt.timedelta(days=1)
"""A cached response is reused only if it was fetched at least this long after its window ended."""
CONFIRM_AFTER = dt.timedelta(hours=12)
"""An incomplete finished window served again with the same rows at least this long after the answer they
repeat is Yahoo's final word for its days (recorded in the answer's .meta.json as FINAL_WORD): a shorter
gap may be one passing fault served twice, so the window is still asked again."""
FINAL_WORD = "same_rows_again_at"
CACHED, ASKED, SAME = "cached", "asked", "same"
"""Where a window's body came from (`_fetch`): the cache with no request, Yahoo's new answer, or Yahoo asked
again serving the cached answer's rows (counted as a file done: a request was made)."""


def yahoo_symbol(symbol: str) -> str:
    """Yahoo spells share classes with a dash (BRK-B) where Polygon and the lake use a dot (BRK.B). The
    lake keeps the dot so that both sources' bars meet under one symbol."""
    return symbol.replace(".", "-")


class RateLimited(MarketlakeError):
    """Yahoo kept answering with its rate-limit error after every retry."""


@dataclass
class YahooClient:
    """One chart request at a time, under the shared client-side rate limiter, backing off (tenacity) on
    yfinance's rate-limit error."""

    session: Any = None
    limiter: RateLimiter = YAHOO_LIMITER
    sleep: Callable[[float], None] = time.sleep
    attempts: int = 6
    wait_min: float = 5.0
    wait_max: float = 300.0
    waits: list[float] = field(default_factory=list)
    """The back-off pauses taken, in order (for the run's notes and for tests)."""

    def _data(self) -> Any:
        from yfinance.data import YfData

        return YfData(session=self.session) if self.session is not None else YfData()

    def chart(self, symbol: str, params: dict[str, str]) -> tuple[int, bytes]:
        """(HTTP status, body) of one chart request. Raises RateLimited after the last attempt."""
        from yfinance.exceptions import YFRateLimitError

        data = self._data()
        url = CHART_URL.format(symbol=yahoo_symbol(symbol))

        def pause(seconds: float) -> None:
            self.waits.append(seconds)
            self.sleep(seconds)

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(YFRateLimitError),
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.wait_min, min=self.wait_min, max=self.wait_max),
                sleep=pause,
                reraise=True,
            ):
                with attempt:
                    self.limiter.acquire()
                    resp = data.get(url, params=dict(params), timeout=30)
        except YFRateLimitError as exc:
            raise RateLimited(
                f"yahoo: {symbol}: rate limited by Yahoo after {self.attempts} attempts "
                f"(backed off {sum(self.waits[-(self.attempts - 1) :]):.0f}s); try again later"
            ) from exc
        return int(resp.status_code), bytes(resp.content)


# --- windows ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    first: dt.date
    last: dt.date
    period1: int
    period2: int

    @property
    def end_instant(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.period2, dt.UTC)


def _midnight(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), dt.UTC).timestamp())


def windows(interval: str, start: dt.date, end: dt.date, now: dt.datetime) -> tuple[list[Window], str | None]:
    """Request windows within Yahoo's limits, and a note for the part of the range Yahoo cannot serve."""
    today = now.astimezone(dt.UTC).date()
    note = None
    end = min(end, today)
    if interval == "1m":
        earliest = today - dt.timedelta(days=MINUTE_LOOKBACK_DAYS)
        if start < earliest:
            note = (
                f"Yahoo keeps 1m bars for about {MINUTE_LOOKBACK_DAYS + 1} days: "
                f"{start} to {min(end, earliest - dt.timedelta(days=1))} cannot be fetched"
            )
            start = earliest
        step = dt.timedelta(days=MINUTE_WINDOW_DAYS)
    else:
        step = dt.timedelta(days=0)
    out: list[Window] = []
    now_s = int(now.timestamp()) // 60 * 60
    d = start
    while d <= end:
        last = (
            min(end, d + step - dt.timedelta(days=1))
            if interval == "1m"
            else min(end, dt.date(d.year, 12, 31))
        )
        out.append(Window(d, last, _midnight(d), min(_midnight(last + dt.timedelta(days=1)), now_s)))
        d = last + dt.timedelta(days=1)
    return out, note


# --- parsing ---------------------------------------------------------------------------------------------


@dataclass
class Parsed:
    bars: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    null_rows: int = 0
    not_final: int = 0
    live_rows: int = 0
    """Yahoo's live row, merged into its day (1d) or dropped (1m), as yfinance treats it: never a bar."""
    instrument_type: str | None = None


class ChartError(MarketlakeError):
    pass


def _value(name: str, v: Any, *, positive: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{name} {v!r} is not a number")
    if (positive and not v > 0) or v < 0:
        raise ValueError(f"{name} {v!r} is not {'positive' if positive else 'a volume'}")
    return float(v)


@dataclass(frozen=True)
class Split:
    day: dt.date | None
    """The exchange-local day the split took effect (None: Yahoo's date is unreadable)."""
    ratio: float | None
    """numerator / denominator (shares after per share before); None: unreadable."""
    raw: str


def _splits(events: Any, tz: ZoneInfo) -> list[Split]:
    """The splits of a chart response's `events.splits` ({ts: {date, numerator, denominator, splitRatio}})."""
    if not isinstance(events, dict) or not events:
        return []
    out = []
    for key, ev in events.items():
        raw = json.dumps({key: ev}, sort_keys=True)
        fields: dict[str, Any] = ev if isinstance(ev, dict) else {}
        when: Any = fields.get("date", key)
        try:
            day = dt.datetime.fromtimestamp(int(when), dt.UTC).astimezone(tz).date()
        except (TypeError, ValueError, OverflowError, OSError):
            day = None
        num: Any = fields.get("numerator")
        den: Any = fields.get("denominator")
        ok = all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0
            for x in (num, den)
        )
        out.append(Split(day, float(num) / float(den) if ok else None, raw))
    return out


def _live_row(
    stamps: list[Any], cols: dict[str, list[Any]], interval: str, tz: ZoneInfo, lo: int, hi: int
) -> tuple[int | None, int | None]:
    """(index of Yahoo's live row, index of the row it updates) in a chart response, as yfinance reads it
    (`yfinance.utils.fix_Yahoo_returning_live_separate`): Yahoo appends the live quote as the last row.

    - 1d: when the last two rows fall on the same exchange-local day, the last is that day's live row: it
      replaces the day's row (its values, which Yahoo updates, e.g. a slightly larger volume), as yfinance
      keeps the last and drops the other; the day keeps its regular stamp (the earlier row's). A live row
      whose values are not a valid bar updates nothing (the day's row keeps its own values).
    - 1m: a last row off the minute boundary is the live quote, not a bar: dropped (yfinance folds it into
      the interval it falls in; the lake lands the bars as served and a later run's response replaces them).

    (None, None) when there is no live row. Either way it is never stored, nor rejected: rejected, it would
    stay in bars_rejected under the name of a window whose end moves every day, never replaced."""
    if not stamps or not isinstance(stamps[-1], int) or isinstance(stamps[-1], bool):
        return None, None
    last = len(stamps) - 1
    if interval == "1m":
        return (last, None) if stamps[last] % 60 else (None, None)
    prev = last - 1
    t_prev, t_last = (stamps[prev], stamps[last]) if prev >= 0 else (None, None)
    if not isinstance(t_prev, int) or isinstance(t_prev, bool) or not isinstance(t_last, int):
        return None, None
    if not (t_prev < t_last and lo <= t_last < hi):
        return None, None

    def day(t: int) -> dt.date:
        return dt.datetime.fromtimestamp(t, dt.UTC).astimezone(tz).date()

    if day(t_prev) != day(t_last):
        return None, None
    try:
        vals = [_value(k, cols[k][last], positive=k != "volume") for k in cols]
    except ValueError:
        return last, None
    o, h, low, c, v = vals
    return (last, prev) if ohlcv_problem((o, h, low, c, v)) is None else (last, None)


def parse_chart(
    payload: Any,
    *,
    symbol: str,
    interval: str,
    window: Window,
    source_file: str,
    now: dt.datetime,
    later_splits: Any = None,
) -> Parsed:
    """Bars from one chart API response. No `timestamp` key or empty arrays = no data (not an error);
    a minute whose values are all null is skipped (never filled); a row with some nulls is rejected.

    Yahoo's prices and volumes are split-adjusted (for every split up to the time of the request); the
    adjustment is undone here: a bar on an exchange day before a split's day has its prices multiplied by
    the split ratio (numerator / denominator; the product over every later split) and its volume divided
    by it, so the lake holds what traded. Prices are the as-served values (float32 widened to double)
    times the ratio, not rounded. The splits are the response's own `events.splits` plus `later_splits`
    (the `events.splits` of a request from the window to now, for splits after the window). A split whose
    ratio or date is unreadable sends every bar it may concern to bars_rejected (never adjusted prices)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("chart"), dict):
        raise ChartError(f"yahoo: {symbol}: {source_file}: not a chart API response")
    chart = payload["chart"]
    if chart.get("error"):
        err = chart["error"]
        why = err.get("description") or err.get("code") if isinstance(err, dict) else err
        raise ChartError(f"yahoo: {symbol}: Yahoo says: {why}")
    out = Parsed()
    results = chart.get("result") or []
    if not results:
        return out
    r = results[0] or {}
    meta = r.get("meta") or {}
    out.instrument_type = meta.get("instrumentType")
    try:
        tz = ZoneInfo(str(meta.get("exchangeTimezoneName") or "America/New_York"))
    except (ValueError, KeyError):
        tz = ZoneInfo("America/New_York")
    own = (r.get("events") or {}).get("splits") if isinstance(r.get("events"), dict) else None
    splits = {sp.raw: sp for sp in [*_splits(own, tz), *_splits(later_splits, tz)]}
    by_day = {sp.day: sp for sp in splits.values() if sp.ratio is not None}  # the same split in both
    bad = [sp for sp in splits.values() if sp.ratio is None or sp.day is None]
    stamps = r.get("timestamp") or []
    if not stamps:
        return out
    quotes = ((r.get("indicators") or {}).get("quote") or [{}])[0] or {}
    cols = {k: quotes.get(k) or [] for k in ("open", "high", "low", "close", "volume")}
    for k, arr in cols.items():
        if len(arr) != len(stamps):
            raise ChartError(
                f"yahoo: {symbol}: {source_file}: {len(arr)} {k} values for {len(stamps)} timestamps"
            )
    step = interval_delta(interval)
    # rows outside the requested days, or at/after the window's end (Yahoo appends the live quote there),
    # are not this window's bars
    lo, hi = _midnight(window.first), min(_midnight(window.last + dt.timedelta(days=1)), window.period2)
    seen: dict[dt.datetime, int] = {}
    live, updated = _live_row(stamps, cols, interval, tz, lo, hi)
    for i, t in enumerate(stamps):
        if i == live:
            out.live_rows += 1
            continue
        src = live if i == updated and live is not None else i  # the day's row takes its live row's values
        raw = {"timestamp": t, **{k: cols[k][src] for k in cols}}
        if src != i:
            raw["values_from_live_row_at"] = stamps[src]
        vals = [cols[k][src] for k in cols]
        if all(v is None for v in vals):
            out.null_rows += 1
            continue
        vendor_ts = dt.datetime.fromtimestamp(t, dt.UTC) if isinstance(t, int) else None

        def reject(
            reason: str, raw: dict[str, Any] = raw, i: int = i, ts: dt.datetime | None = vendor_ts
        ) -> None:
            nums = {
                k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None)
                for k, v in raw.items()
            }
            out.rejected.append(
                {
                    "symbol": symbol,
                    "interval": interval,
                    "source_file": source_file,
                    "line_number": i,
                    "raw": json.dumps(raw),
                    "ts": ts,
                    **{k: nums[k] for k in ("open", "high", "low", "close", "volume")},
                    "reason": reason,
                }
            )

        if vendor_ts is None:
            reject(f"timestamp {t!r} is not whole epoch seconds")
            continue
        if not lo <= t < hi:
            continue  # outside the requested days (Yahoo may add a row): not ours to judge
        missing = [k for k in cols if cols[k][src] is None]
        if missing:
            reject(f"missing field {', '.join(missing)}")
            continue
        try:
            o = _value("open", cols["open"][src], positive=True)
            h = _value("high", cols["high"][src], positive=True)
            low = _value("low", cols["low"][src], positive=True)
            c = _value("close", cols["close"][src], positive=True)
            v = _value("volume", cols["volume"][src], positive=False)
        except ValueError as exc:
            reject(str(exc))
            continue
        problem = ohlcv_problem((o, h, low, c, v))
        if problem is not None:
            reject(problem)
            continue
        if interval == "1d":
            # The day is the exchange-local date of Yahoo's stamp (meta exchangeTimezoneName), and the stamp
            # must come before that day's close (Yahoo stamps a day at its open): a stamp after the close,
            # e.g. 00:00 UTC = the evening before in New York, is rejected, never moved to another day.
            day = vendor_ts.astimezone(tz).date()
            try:
                ts, available_at = stamp_daily(day, vendor_ts)
            except StampError as exc:
                reject(f"timestamp {t}: {exc}")
                continue
            close_at = available_at - AFTER_HOURS  # the regular close (available_at: after-hours end)
            if vendor_ts >= close_at:
                reject(
                    f"timestamp {t} ({vendor_ts.isoformat()}) is after the close of {day} "
                    f"({close_at.isoformat()}): which day it is cannot be told"
                )
                continue
        else:
            if t % 60:
                reject(f"timestamp {t} is not on a minute boundary (a live quote, not a bar)")
                continue
            ts, available_at = vendor_ts, vendor_ts + step
        if available_at > now:
            out.not_final += 1  # the bar is still forming: it is not known yet
            continue
        if ts in seen:
            reject(f"duplicate bar: same timestamp as row {seen[ts]}")
            continue
        seen[ts] = i
        local_day = vendor_ts.astimezone(tz).date()
        unknown = [sp for sp in bad if sp.day is None or local_day < sp.day]
        if unknown:
            reject(
                f"split-adjusted by Yahoo and a split's ratio or date is unreadable ({unknown[0].raw}): not what traded"
            )
            continue
        factor = math.prod(sp.ratio for day, sp in by_day.items() if sp.ratio and day and local_day < day)
        if factor != 1:
            o, h, low, c, v = o * factor, h * factor, low * factor, c * factor, v / factor
        out.bars.append(
            {
                "ts": ts,
                "available_at": available_at,
                "open": o,
                "high": h,
                "low": low,
                "close": c,
                "volume": v,
                "trades": None,
                "source_file": source_file,
            }
        )
    return out


# --- the run ---------------------------------------------------------------------------------------------


def _fail(summary: IngestSummary, message: str, symbol: str | None = None) -> None:
    """Record a failed piece; the CLI prefixes the source itself, so the message does not repeat it."""
    summary.fail(message.removeprefix(f"{SOURCE}: "), symbol)


SPLITS_INTERVAL = "3mo"
"""The interval of the split-events request (few rows: only its `events.splits` is read)."""


def _has_rows(body: bytes) -> bool:
    try:
        result = (json.loads(body)["chart"]["result"] or [{}])[0]
        return bool(result.get("timestamp"))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return False


def _chart_ok(client: YahooClient, symbol: str, params: dict[str, str], what: str) -> bytes:
    """The body of one chart request, or a ChartError naming the symbol, what was asked and Yahoo's reason."""
    status, body = client.chart(symbol, params)
    if status != 200:
        try:
            why = json.loads(body)["chart"]["error"]["description"]
        except (ValueError, KeyError, TypeError):
            why = body[:200].decode("utf-8", "replace")
        raise ChartError(f"yahoo: {symbol}: {what}: HTTP {status}: {why}")
    return body


def _get(
    client: YahooClient,
    cache: RawCache,
    symbol: str,
    relpath: str,
    params: dict[str, str],
    now: dt.datetime,
    what: str,
    **meta: Any,
) -> bytes:
    """One chart request, its 200 answer put in the raw cache as served (with `meta`)."""
    body = _chart_ok(client, symbol, params, what)
    cache.put(
        relpath,
        body,
        url=CHART_URL.format(symbol=yahoo_symbol(symbol)),
        params=params,
        status=200,
        fetched_at=now.isoformat(),
        **meta,
    )
    return body


def _fetch_splits(client: YahooClient, cache: RawCache, symbol: str, first: dt.date, now: dt.datetime) -> str:
    """The cache relpath of a response listing `symbol`'s splits from `first` to now, fetched once per run
    (keyed by the run's `now`) and only when a window is fetched: the split events read with a window's
    response are never older than the run that fetched it. A per-day key let a window fetched again in the
    evening (not final yet) be read with the morning's split events: if Yahoo had meanwhile listed a split
    and adjusted the history for it, adjusted prices landed over what traded."""
    period1 = _midnight(first)
    relpath = f"{symbol}/splits/{period1}-{now.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%S%fZ')}.json"
    if cache.get(relpath) is None:
        params = {
            "period1": str(period1),
            "period2": str(int(now.timestamp())),
            "interval": SPLITS_INTERVAL,
            "events": "split",
        }
        _get(client, cache, symbol, relpath, params, now, f"split events since {first}")
    return relpath


SPLITS_NAME = re.compile(r"-?\d+-(?:\d{8}T\d{12}Z|\d{4}-\d{2}-\d{2})\.json")
"""The names of the split look-ups this module writes under `{symbol}/splits/`: `{period1}-{the run's UTC
instant}.json` (and `{period1}-{UTC day}.json`, the per-day key of earlier versions)."""


def _prune_splits(cache: RawCache, symbol: str) -> int:
    """Remove `symbol`'s split look-ups (by this module's names, each with its .meta.json) that no cached
    window response of the symbol names any more (its meta's `splits_file`), and return how many. A window
    fetched again replaces its response and names the new look-up, so the one it named before is read by
    nothing; a look-up a cached window names stays (the window is read with it, and the two together are
    what landed). If a window's meta cannot be read, nothing is removed (what it names is unknown)."""
    base = cache.path(symbol)
    splits_dir = base / "splits"
    if not splits_dir.is_dir():
        return 0
    named: set[str] = set()
    for d in sorted(base.iterdir()):
        if d.name == "splits" or not d.is_dir():
            continue
        for m in d.glob("*.json.meta.json"):
            try:
                meta = json.loads(m.read_text())
            except (OSError, ValueError):
                return 0
            if not isinstance(meta, dict):
                return 0
            later = meta.get("splits_file")
            if isinstance(later, str):
                named.add(later)
    removed = 0
    for p in sorted(splits_dir.iterdir()):  # a response before its .meta.json
        name = p.name.removesuffix(".meta.json")
        if SPLITS_NAME.fullmatch(name) and f"{symbol}/splits/{name}" not in named:
            p.unlink(missing_ok=True)
            removed += p.name == name
    return removed


def _answered(body: bytes, w: Window) -> tuple[dict[str, Any], ZoneInfo, set[dt.date]] | None:
    """(meta, exchange time zone, the days answered) of a window's chart answer; None when it is not a
    chart answer. A day counts as answered when a row stamped on it (exchange-local, within the window)
    holds any value: a rejected row counts (Yahoo answered it), an all-null one not."""
    try:
        result = (json.loads(body)["chart"]["result"] or [{}])[0] or {}
        meta = result.get("meta") or {}
        tz = ZoneInfo(str(meta.get("exchangeTimezoneName") or "America/New_York"))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    stamps = result.get("timestamp") or []
    quote = ((result.get("indicators") or {}).get("quote") or [{}])[0] or {}
    cols = [quote.get(k) or [] for k in ("open", "high", "low", "close", "volume")]
    if (
        not isinstance(meta, dict)
        or not isinstance(stamps, list)
        or not all(isinstance(c, list) for c in cols)
    ):
        return None
    lo, hi = _midnight(w.first), min(_midnight(w.last + dt.timedelta(days=1)), w.period2)
    served: set[dt.date] = set()
    for i, t in enumerate(stamps):
        if isinstance(t, bool) or not isinstance(t, int) or not lo <= t < hi:
            continue
        if all(i >= len(c) or c[i] is None for c in cols):
            continue
        served.add(dt.datetime.fromtimestamp(t, dt.UTC).astimezone(tz).date())
    return meta, tz, served


def _coverage(w: Window, *bodies: bytes) -> tuple[int, int, str] | None:
    """(days answered, days the window should have, what a day is called) of a window's chart answers
    taken together (the days any of them answered: their bars all stay in the lake); None when it cannot be
    told (no chart answer among them). The days expected are judged by the last answer's meta.

    A stock's days are the XNYS sessions among the window's days (`ingest.stamping.session`, the calendar
    daily bars are stamped by; a day outside the calendar's range, before 2000-01-03, cannot be judged and
    is not expected), a cryptocurrency's (`instrumentType` CRYPTOCURRENCY) every day; none before the
    symbol's `firstTradeDate`."""
    got = [a for a in (_answered(b, w) for b in bodies) if a is not None]
    if not got:
        return None
    meta, tz, _ = got[-1]
    served = set().union(*(a[2] for a in got))
    crypto = meta.get("instrumentType") == "CRYPTOCURRENCY"
    first = w.first
    listed = meta.get("firstTradeDate")
    if isinstance(listed, int) and not isinstance(listed, bool):
        try:
            first = max(first, dt.datetime.fromtimestamp(listed, dt.UTC).astimezone(tz).date())
        except (ValueError, OverflowError, OSError):
            pass
    if crypto:
        expected = {first + dt.timedelta(days=k) for k in range((w.last - first).days + 1)}
    else:
        expected = set(_sessions_between(first, w.last))
    return len(served & expected), len(expected), "days" if crypto else "sessions"


@lru_cache(maxsize=256)
def _sessions_between(first: dt.date, last: dt.date) -> tuple[dt.date, ...]:
    """The XNYS sessions from `first` to `last` (inclusive), once per window (every symbol asks for the
    same windows). The days outside the calendar's range (before its first session, 2000-01-03, or after
    its last) are left out: whether they are sessions cannot be told, so no answer is judged on them."""
    out = []
    for k in range((last - first).days + 1):
        d = first + dt.timedelta(days=k)
        try:
            if xnys_session(d) is not None:
                out.append(d)
        except StampError:
            continue
    return tuple(out)


def _rows_of(body: bytes) -> str | None:
    """A window answer's rows (timestamps, values, events), without the `meta` Yahoo refreshes on every
    request: two answers with equal rows land the same bars. None when it is not a chart answer."""
    try:
        result = (json.loads(body)["chart"]["result"] or [{}])[0] or {}
        return json.dumps([result.get(k) for k in ("timestamp", "indicators", "events")], sort_keys=True)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def _versions(cache: RawCache, stem: str) -> list[str]:
    """The cache relpaths of a window's responses, oldest first: `{stem}.json`, then `{stem}.{n}.json` for
    n = 2, 3, ... (a final window asked again because its answer was incomplete: a new file, never the
    old one rewritten, which a manifest may name)."""
    folder, _, name = stem.rpartition("/")
    d = cache.path(folder)
    if not d.is_dir():
        return []
    pattern = re.compile(re.escape(name) + r"(?:\.(\d+))?\.json")
    found = []
    for p in d.iterdir():
        m = pattern.fullmatch(p.name)
        if m:
            found.append((int(m.group(1) or 1), f"{folder}/{p.name}"))
    return [rel for _, rel in sorted(found)]


def _version_name(stem: str, n: int) -> str:
    return f"{stem}.json" if n == 1 else f"{stem}.{n}.json"


def _version_number(relpath: str) -> int:
    """n of a window response's name `{period1}-{end}.{n}.json` (1 for `{period1}-{end}.json`)."""
    _, dot, n = relpath.removesuffix(".json").rpartition("/")[2].rpartition(".")
    return int(n) if dot and n.isdigit() else 1


def _fetch(
    client: YahooClient,
    cache: RawCache,
    symbol: str,
    interval: str,
    w: Window,
    now: dt.datetime,
    splits: Callable[[], str],
    notes: list[str] | None = None,
) -> tuple[bytes, str, str, str | None]:
    """(body, cache relpath, where the body came from, relpath of the later split events) of one window:
    where is CACHED (reused, no request made), ASKED (Yahoo's new answer) or SAME (Yahoo asked again served
    the cached answer's rows, so the cached file stays what landed). A final cached response is reused with the split events fetched with it. The split events from the window to now are
    fetched (`splits()`) when the window has bars and ended before now: Yahoo adjusts a window's prices
    for later splits too, but lists only the window's own.

    A response is final when it was fetched a day after its window ended and it is plausibly complete: a
    row for every day the window should have (`_coverage`). One with fewer (Yahoo's empty or partial
    answer) is asked again on every run, said in `notes`; the new answer is a new raw file (`_versions`),
    unless its rows are the cached one's (then the cached file stays what landed). The same rows served
    again CONFIRM_AFTER or more after the cached answer was fetched are Yahoo's final word for the window:
    recorded in the cached answer's meta (FINAL_WORD), which later runs reuse without asking."""
    # keyed by the window's days (its full-day end), not by period2: a window that ends now is fetched
    # again on every run, under the same name, so its rows (and rejected rows) replace the last run's
    stem = f"{symbol}/{interval}/{w.period1}-{_midnight(w.last + dt.timedelta(days=1))}"
    what = f"{symbol}: {interval} {w.first} to {w.last}"
    versions = _versions(cache, stem)
    relpath = versions[-1] if versions else _version_name(stem, 1)
    cached = cache.get(relpath)
    stale: tuple[bytes, str | None] | None = None  # a final cached answer found incomplete
    earlier: list[bytes] = []  # the answers before it for the same days
    had = 0  # the days they answered together
    final_cached = False
    if cached is not None:
        fetched = dt.datetime.fromisoformat(str(cached.meta.get("fetched_at")))
        later = cached.meta.get("splits_file")
        body = cached.path.read_bytes()
        known = (
            later is None and not _has_rows(body) or isinstance(later, str) and cache.get(later) is not None
        )
        final_cached = fetched >= w.end_instant + FINAL_AFTER
        if final_cached and known and isinstance(cached.meta.get(FINAL_WORD), str):
            return body, relpath, CACHED, later if isinstance(later, str) else None  # Yahoo's final word
        if final_cached and known:
            # judged on every answer kept for these days together (their bars all landed): a worse
            # answer asked again does not make the window look less complete than the lake holds
            earlier = [c.path.read_bytes() for c in map(cache.get, versions[:-1]) if c is not None]
            cov = _coverage(w, *earlier, body)
            if cov is None or cov[0] >= cov[1]:
                return body, relpath, CACHED, later if isinstance(later, str) else None
            stale = body, later if isinstance(later, str) else None
            was = (
                f"the cached answer{'s' if earlier else ''} (fetched {fetched:%Y-%m-%d %H:%M} UTC) "
                f"had {cov[0]} of {cov[1]} {cov[2]}"
            )
            had = cov[0]
    params = {
        "period1": str(w.period1),
        "period2": str(w.period2),
        "interval": interval,
        "includePrePost": "true" if interval == "1m" else "false",
        "events": "div,splits",
    }
    try:
        body = _chart_ok(client, symbol, params, f"{interval} {w.first} to {w.last}")
    except Exception:
        if stale is not None and notes is not None:
            notes.append(f"yahoo: {what}: {was}: asked Yahoo again")
        raise
    same = stale is not None and _rows_of(body) is not None and _rows_of(body) == _rows_of(stale[0])
    if same and cached is not None and now - fetched >= CONFIRM_AFTER:
        # the same rows served again, long enough after the answer they repeat: Yahoo has no more for
        # these days (a symbol that stopped trading, a halt); recorded, and not asked again
        kept = {k: v for k, v in cached.meta.items() if k not in ("sha256", "bytes")}
        cache.put(relpath, cached.path.read_bytes(), **{**kept, FINAL_WORD: now.isoformat()})
        if notes is not None:
            notes.append(
                f"yahoo: {what}: {was}: asked Yahoo again, which served the same rows as at "
                f"{fetched:%Y-%m-%d %H:%M} UTC: taken as Yahoo's final word, not asked again"
            )
        return cached.path.read_bytes(), relpath, SAME, stale[1] if stale is not None else None
    final = now >= w.end_instant + FINAL_AFTER
    own = _coverage(w, body) if final else None
    cov = _coverage(w, *earlier, stale[0], body) if final and stale is not None else own
    fewer = (
        f" (fewer than the {had} the cached answer{'s' if earlier else ''} had, whose bars stay)"
        if stale is not None and own is not None and own[0] < had
        else ""
    )
    if notes is not None and own is not None and cov is not None and cov[0] < cov[1]:
        notes.append(
            f"yahoo: {what}: Yahoo's answer has {own[0]} of {own[1]} {own[2]}{fewer}: "
            "the window is asked again on the next run"
        )
    elif notes is not None and stale is not None:
        now_has = f", which now has {own[0]} of {own[1]}{fewer}" if own is not None else ""
        notes.append(f"yahoo: {what}: {was}: asked Yahoo again{now_has}")
    if same and stale is not None:
        return stale[0], relpath, SAME, stale[1]  # the same rows again: the cached file is what landed
    if cached is None and relpath == _version_name(stem, 1) or cached is not None and not final_cached:
        new = relpath  # a window not final yet (or never cached): its one name, as it always was
    else:  # a final window's file is never rewritten (a manifest may name it): the next version
        new = _version_name(stem, _version_number(relpath) + 1)
        while cache.path(new).exists():
            new = _version_name(stem, _version_number(new) + 1)
    later = splits() if _has_rows(body) and w.period2 < int(now.timestamp()) // 60 * 60 else None
    cache.put(
        new,
        body,
        url=CHART_URL.format(symbol=yahoo_symbol(symbol)),
        params=params,
        status=200,
        fetched_at=now.isoformat(),
        splits_file=later,
    )
    return body, new, ASKED, later


def _land(
    w: LakeWriter,
    symbol: str,
    interval: str,
    win: Window,
    parsed: Parsed,
    source_file: str,
    the_input: dict[str, Any],
    etfs: Iterable[str] = (),
    answered: Callable[[dt.datetime], bool] | None = None,
) -> int:
    """Land one window's bars and rejections; return the bars new to the lake (the summary's rows landed).

    `answered` tells the instants whose day this answer has a row for: an earlier answer for the same days
    (`{stem}.json` before `{stem}.2.json`) loses only its rejections on those days (the ones this answer
    judged again); its rejections of days this answer lacks stay (None: it loses them all)."""
    added = 0
    by_period: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bar in parsed.bars:
        by_period[bar_period(interval, bar["ts"])].append(bar)
    for period, bars in sorted(by_period.items()):
        part = {"source": SOURCE, "interval": interval, "symbol": symbol, "period": period}
        added += w.write(
            BARS,
            part,
            dataset_table(BARS, bars, {"asset_class": asset_class(symbol, etfs)}),
            mode="merge",
            inputs=[the_input],
        ).rows_added
    rejected_by_period: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in parsed.rejected:
        anchor = r["ts"] or dt.datetime.fromtimestamp(win.period1, dt.UTC)
        rejected_by_period[bar_period(interval, anchor)].append(r)
    # Every period the window's days touch is visited, even with nothing rejected now: this response judged
    # all of the window's rows again, so what an earlier version of the window rejected (this file's name,
    # or a shorter window from the same first day: a window ending today is named by its end, which moves
    # every day) is replaced, never left behind as a rejection of a bar that has since landed.
    days = (win.first + dt.timedelta(days=k) for k in range((win.last - win.first).days + 1))
    periods = {bar_period(interval, dt.datetime.combine(d, dt.time(0), dt.UTC)) for d in days}
    for period in sorted(periods | set(rejected_by_period)):
        part = {"source": SOURCE, "period": period}
        there = _rejection_files(w, part, symbol)
        for older in sorted(f for f in there if _earlier_version(f, source_file)):
            if answered is not None and _same_days(older, source_file):
                _drop_answered(w, part, symbol, older, answered)
                continue
            replace_file_rows(
                w, BARS_REJECTED, part, older, dataset_table(BARS_REJECTED, [], {}), the_input,
                only_symbols={symbol},
            )  # fmt: skip
        rej = rejected_by_period.get(period, [])
        if rej or source_file in there:
            replace_file_rows(
                w,
                BARS_REJECTED,
                part,
                source_file,
                dataset_table(BARS_REJECTED, rej, {}),
                the_input,
                only_symbols={symbol},
            )
    return added


def _drop_answered(
    w: LakeWriter, part: dict[str, str], symbol: str, older: str, answered: Callable[[dt.datetime], bool]
) -> None:
    """Remove `symbol`'s rejections from file `older` in a bars_rejected partition on the days a later
    answer for the same days has a row for; the rest stay, under `older`'s own manifest input."""
    target_dir = partition_dir(w.paths, BARS_REJECTED, part)
    t = read_partition(target_dir / DATA_FILE, BARS_REJECTED)
    mine = t.filter(pc.and_(pc.equal(t.column("symbol"), symbol), pc.equal(t.column("source_file"), older)))
    ts = mine.column("ts").to_pylist()
    keep = [i for i, x in enumerate(ts) if x is None or not answered(x)]
    if len(keep) == mine.num_rows:
        return  # nothing of it answered again: nothing written
    own = [i for i in manifest_inputs(target_dir) if i.get("file") == older]
    replace_file_rows(
        w, BARS_REJECTED, part, older, mine.take(pa.array(keep, pa.int64())), own[0] if own else {"file": older},
        only_symbols={symbol},
    )  # fmt: skip


def _same_days(a: str, b: str) -> bool:
    """Whether two window source files are answers for the same days (`{stem}.json`, `{stem}.{n}.json`)."""
    x, y = _window_name(a), _window_name(b)
    return x is not None and y is not None and x[:2] == y[:2]


def _rejection_files(w: LakeWriter, partition: dict[str, str], symbol: str) -> set[str]:
    """The source files of `symbol`'s rows in a bars_rejected partition (none if it is missing or broken:
    `replace_file_rows` then starts it afresh)."""
    target_dir = partition_dir(w.paths, BARS_REJECTED, partition)
    target = target_dir / DATA_FILE
    if not target.exists() or not partition_intact(target_dir):
        return set()
    t = read_partition(target, BARS_REJECTED).select(["symbol", "source_file"])
    mine = t.filter(pc.equal(t.column("symbol"), symbol))
    return {f for f in mine.column("source_file").to_pylist() if isinstance(f, str)}


def _window_name(source_file: str) -> tuple[str, int, int] | None:
    """(`yahoo:{symbol}/{interval}/{period1}-`, end, version) of a window's source file name (`...-{end}.json`
    or, asked again once final, `...-{end}.{n}.json`); None for another."""
    stem, sep, tail = source_file.rpartition("-")
    end, dot, n = tail.removesuffix(".json").partition(".")
    if (
        not sep
        or not stem.startswith(f"{SOURCE}:")
        or not end.isdigit()
        or tail == tail.removesuffix(".json")
    ):
        return None
    if dot and not n.isdigit():
        return None
    return stem + sep, int(end), int(n) if dot else 1


def _earlier_version(other: str, source_file: str) -> bool:
    """Whether `other` names a window from the same first day as `source_file`'s, ending before it or an
    earlier answer for the same days: its days are all among this window's, which the current response
    judged again."""
    a, b = _window_name(other), _window_name(source_file)
    return a is not None and b is not None and a[0] == b[0] and a[1:] < b[1:]


def run(
    ctx: RunContext,
    symbols: list[str],
    interval: str,
    start: dt.date,
    end: dt.date,
    *,
    session: Any = None,
    client: YahooClient | None = None,
    now: dt.datetime | None = None,
) -> IngestSummary:
    """Ingest Yahoo bars for `symbols` from start to end (inclusive UTC days).

    `session` is yfinance's session argument (a requests or curl_cffi Session); `client` replaces the
    whole request layer (its limiter, sleep and retry bounds); `now` fixes the clock."""
    if interval not in INTERVALS:
        raise MarketlakeError(f"yahoo: interval {interval!r} is not supported (use {' or '.join(INTERVALS)})")
    now = now or dt.datetime.now(dt.UTC)
    if client is None:
        session = session or default_session()
        if session is None:  # yfinance's own session: the real network
            require_reachable()
        client = YahooClient(session=session)
    summary = IngestSummary(SOURCE)
    cache = RawCache(ctx.paths, SOURCE)
    wins, note = windows(interval, start, end, now)
    if note:
        summary.notes.append(note)
    looked_up: set[str] = set()  # the symbols this run made a split look-up for

    def splits_of(symbol: str) -> Callable[[], str]:
        def fetch() -> str:
            looked_up.add(symbol)
            return _fetch_splits(client, cache, symbol, wins[0].first, now)

        return fetch

    with land(ctx.root) as w:
        pieces = list(_pieces(symbols, wins, summary, note))
        with progress_bar(ctx, f"yahoo {interval}", len(pieces), "windows") as step:
            for symbol, win in pieces:
                errors_before = len(summary.errors)
                try:
                    s = summary.of(symbol)
                    try:
                        body, relpath, origin, later = _fetch(
                            client,
                            cache,
                            symbol,
                            interval,
                            win,
                            now,
                            splits_of(symbol),
                            summary.notes,
                        )
                        payload = json.loads(body)
                        source_file = f"yahoo:{relpath}"
                        later_splits = None
                        if later is not None:
                            got = cache.get(later)
                            if got is None:
                                raise ChartError(
                                    f"yahoo: {symbol}: the split events file {later} vanished from the cache"
                                )
                            later_splits = _events_splits(json.loads(got.path.read_bytes()))
                        parsed = parse_chart(
                            payload,
                            symbol=symbol,
                            interval=interval,
                            window=win,
                            source_file=source_file,
                            now=now,
                            later_splits=later_splits,
                        )
                    except RateLimited as exc:
                        _fail(summary, str(exc), symbol)
                        summary.notes.append(
                            "yahoo: stopped after a persistent rate limit; nothing else was requested"
                        )
                        break
                    except (ChartError, ValueError) as exc:
                        _fail(
                            summary,
                            str(exc) if isinstance(exc, ChartError) else f"yahoo: {symbol}: bad JSON: {exc}",
                            symbol,
                        )
                        continue
                    except MarketlakeError as exc:
                        _fail(summary, str(exc), symbol)
                        continue
                    except Exception as exc:  # a network failure inside yfinance: name the piece and go on
                        _fail(
                            summary,
                            f"yahoo: {symbol}: {interval} {win.first} to {win.last}: {type(exc).__name__}: {exc}",
                            symbol,
                        )
                        continue
                    the_input = {"file": source_file, "sha256": _sha(body)}
                    got_days = _answered(body, win)
                    s.rows_landed += _land(
                        w, symbol, interval, win, parsed, source_file, the_input, ctx.settings.etfs,
                        None if got_days is None else _on_days(got_days[1], got_days[2]),
                    )  # bars new to the lake, not the rows read  # fmt: skip
                    s.rows_rejected += len(parsed.rejected)
                    if origin == CACHED:
                        s.files_skipped += 1
                    elif not parsed.bars and not parsed.rejected:
                        s.files_missing += 1
                    else:
                        s.files_done += 1
                    if (parsed.instrument_type == "ETF") != (
                        symbol.upper() in ETFS
                    ) and parsed.instrument_type:
                        summary.notes.append(
                            f"{symbol}: Yahoo calls it {parsed.instrument_type}, stored as {asset_class(symbol, ctx.settings.etfs)} "
                            "(the ETF list is ingest/stamping.py ETFS)"
                        )
                    ctx.say(
                        f"yahoo {interval} {symbol} {win.first}..{win.last}: {len(parsed.bars)} bars, "
                        f"{len(parsed.rejected)} rejected, {parsed.null_rows} empty minutes skipped"
                        + {CACHED: " (cached)", SAME: " (asked again: the same rows as cached)"}.get(
                            origin, ""
                        )
                    )
                finally:
                    step(len(summary.errors) == errors_before)
        # each run that fetches a not-yet-final window again makes a new look-up (as fresh as that fetch):
        # the ones no cached window names any more go, so a symbol keeps one per window response at most
        for symbol in sorted(looked_up):
            try:
                _prune_splits(cache, symbol)
            except OSError as exc:
                summary.notes.append(f"yahoo: {symbol}: old split look-ups not removed: {exc}")
    summary.notes[:] = list(dict.fromkeys(summary.notes))
    if client.waits:
        summary.notes.append(f"yahoo: backed off {len(client.waits)} time(s) on Yahoo's rate limit")
    return summary


def _on_days(tz: ZoneInfo, days: set[dt.date]) -> Callable[[dt.datetime], bool]:
    """Whether an instant falls on one of `days` (exchange-local)."""
    return lambda t: (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(tz).date() in days


def _events_splits(payload: Any) -> Any:
    """`events.splits` of a chart response (None if it has none); a response that is not a chart response
    is an error (its splits cannot be known)."""
    try:
        result = (payload["chart"]["result"] or [{}])[0] or {}
    except (KeyError, TypeError, IndexError) as exc:
        raise ChartError(f"yahoo: the split events response is not a chart API response ({exc})") from None
    events = result.get("events") if isinstance(result, dict) else None
    return events.get("splits") if isinstance(events, dict) else None


def _pieces(
    symbols: list[str], wins: list[Window], summary: IngestSummary, note: str | None
) -> Iterator[tuple[str, Window]]:
    for symbol in symbols:
        s = summary.of(symbol)
        if note:
            s.files_missing += 1
        for win in wins:
            yield symbol, win


def _sha(body: bytes) -> str:
    import hashlib

    return hashlib.sha256(body).hexdigest()


def default_session() -> Any:
    """None: yfinance makes its own (curl_cffi) session. Tests replace this hook or pass `session`."""
    return None

"""Any OHLCV file a user has (a broker export, a downloaded dataset, the shipped samples) into the lake.

`marketlake ingest csv PATH --symbol SYM --interval 1m [--tz ZONE] [--source NAME] [--asset-class …]`.

The header is recognised case-insensitively, in any column order: a time column (`Date`, `Datetime`,
`Timestamp`, `Time`, …, or separate `Date` and `Time` columns), `Open`, `High`, `Low`, `Close`, `Volume`,
optionally `Trades` (or `Trade count`, `Number of trades`, `Transactions`, or Binance's `count` when no
other column is the trade count). A ticker column (`Ticker`, `Symbol`, `Name`, Stooq's `<TICKER>`) keeps only the rows of
`--symbol` (`same_ticker`), a note counting the rows of other tickers left out; a file with none of its
rows is refused, naming what it holds. Yahoo's `Adj Close` is ignored: the bar keeps Open/High/Low/Close as written (Yahoo's
are split-adjusted, not dividend-adjusted; `Adj Close` is both and is not a price that traded). Other
columns are ignored and named in a note.

Stamps are read as `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` (or with `T`), with an offset or `Z` or without,
`M/D/YYYY [H:MM[:SS] [AM|PM]]` (US style, as in the S&P 500 sample), and Unix time in seconds,
milliseconds or microseconds (10, 13 or 16 digits; UTC). Slash dates are month first, or day first with
`--date-order dmy`; without `--date-order` a file whose slash dates look day-first is refused (`_DayFirst`),
and dates with no evidence either way (every number at most 12 and no pattern, as one day's intraday rows)
are read month first; with `--date-order dmy` a file whose dates look month-first is refused. They are
stamped by the vendors' rules:

- daily bars: the date as written is the trading day (a time of day on the row is ignored; a stamp that is
  an instant must be on that date in New York, UTC for crypto, unless `--daily-stamps utc-date` says its
  UTC date is the trading day, as Tiingo's 00:00:00Z stamps); stocks and
  ETFs are stamped from the XNYS calendar (`ingest.stamping.stamp_daily`: `ts` = the session's open),
  crypto days run 00:00 to 00:00 UTC. A date that is not an XNYS session is quarantined. `--tz` is
  refused with a daily interval (it would be ignored: a crypto file of New York days would land as UTC
  days, each available hours before it closed).
- intraday bars: the stamp is the bar's open, `ts`; `available_at = ts + interval`. A stamp without an
  offset is a local time and needs `--tz ZONE`; without it the file is refused, naming the line. A local
  time that does not exist or is ambiguous (daylight-saving change) is quarantined.

A whole file is refused, one line naming it and nothing stored, when its rows are closer together than
`interval` (the most common spacing between consecutive times, `cadence`: a minute file imported as 1h
would land each hour's first minute as an hourly bar), and when a stock's or ETF's file has at least
WEEKEND_MIN_ROWS rows, and a WEEKEND_SHARE of them, on a Saturday or Sunday (a crypto file imported without
`--asset-class crypto`); fewer weekend rows of a stock are quarantined one by one. The mirror: a file
coarser than `interval` (`check_coarser`: a 5-minute file as 1m would land each bar available a minute
after it opens, its close known five minutes after; a weekly file as 1d) is refused whole too. A file
that changes cadence is judged day by day (intraday) or stretch by stretch (daily): the bars of the
coarser days or stretches are quarantined (`_coarse_stretches`), never landed as the finer interval.

A file of two or more lines whose last line has no line ending may be cut short (its last row may hold a
price cut mid-number). Only that line's last field can be cut while it still parses, so the line is
quarantined, named, and a note says so, only when it looks cut (`_looks_cut`: fewer fields than the
columns it reads, or a last field shorter than that column ever is in the other rows, or with fewer
decimal places); a whole last row without a final newline lands. A lower-case `--symbol` is
refused (`spy` would be a symbol of its own beside `SPY`).

Every row passes the one OHLCV rule of every source (`ingest.common.ohlcv_problem`); a failing row, an
unreadable value go to `bars_rejected` with the reason and the line number; of a time written more than
once, identical copies land once and copies that disagree all go there (`_repeated_times`). The file is
copied to the raw cache (`raw/<source>/<symbol>/<interval>/<name>`, with its sha256). A file is identified
by its source, symbol, interval and name: importing it again changes nothing, and importing a corrected
version of the same name replaces its rows (a note names the bars it removes inside its own span, first to
last time). Brokers name every export alike (`export.csv`): a file of an earlier file's name that would
remove ANY bar the earlier one landed outside its own span (a later export, or a narrower one) is another
export, not a correction: it is refused before anything is written (`_removed_bars`; rename it, or
`--replace` to remove those bars on purpose). The `source` (default `csv`) ranks below every vendor in the
`bars` view (sql/views/020_bars.sql): a CSV fills gaps and never hides a vendor's bar.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow.compute as pc

from ingest import csv_checks
from ingest.common import (
    INT64_MAX,
    INTERVALS,
    IngestSummary,
    RawCache,
    RunContext,
    bar_period,
    dataset_table,
    interval_delta,
    ohlcv_problem,
    replace_file_rows,
    replace_file_rows_result,
)
from ingest.sessions import land
from ingest.stamping import NEW_YORK, StampError, stamp_daily
from ingest.stamping import asset_class as us_asset_class
from ingest.stamping import session as xnys_session
from lake.errors import MarketlakeError
from lake.paths import SCHEMA_ANCHOR, validate_partition_value, validate_symbol
from lake.schemas import BARS, BARS_REJECTED
from lake.writer import TMP_MARK, partition_dir, partition_intact, read_partition

DEFAULT_SOURCE = "csv"
VENDOR_SOURCES = frozenset({"polygon", "binance", "yahoo"})
"""Source names a CSV import may not take: it would then rank as that vendor's data."""
ASSET_CLASSES = ("stock", "etf", "crypto")

# Header names, normalised (lower case, `_` and runs of spaces as one space, `<>` stripped), per field.
ALIASES: dict[str, frozenset[str]] = {
    "time": frozenset(
        {"datetime", "date time", "timestamp", "ts", "open time", "gmt time", "local time", "time", "date"}
    ),
    "open": frozenset({"open", "o", "open price"}),
    "high": frozenset({"high", "h", "high price"}),
    "low": frozenset({"low", "l", "low price"}),
    "close": frozenset({"close", "c", "close price", "last"}),
    "volume": frozenset({"volume", "vol", "v"}),
    "trades": frozenset({"trades", "trade count", "number of trades", "transactions"}),
}
TRADES_FALLBACK = "count"
"""Binance's name for the trade count in its header-bearing CSVs: the trades column only when no other column
is (a file with `Trades` and `Count`, or two `Count` columns, leaves it unused)."""
IGNORED_ADJUSTED = frozenset({"adj close", "adj. close", "adjusted close", "adjclose"})
TICKER_NAMES = ("ticker", "symbol", "name")
"""Header names (normalised) of a column holding each row's ticker, in order of preference: Kaggle's dumps
(`Name`, `Symbol`, `Ticker`), Stooq's `<TICKER>`. A file may hold several tickers: only `--symbol`'s rows
are read (`same_ticker`)."""
REQUIRED = ("time", "open", "high", "low", "close", "volume")

_MDY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{8}$")
_EPOCH_DIGITS = {10: 1_000_000, 13: 1_000, 16: 1}
"""Digits of a Unix time -> microseconds per unit: seconds (10 digits), milliseconds (13), microseconds (16)."""


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().strip("<>").strip().lower())


DAILY_STAMPS = ("utc-date",)
"""`--daily-stamps`: `utc-date` reads a daily stamp that is an instant (`2024-01-02T00:00:00Z`, a Unix time)
on its UTC date, the trading day (Tiingo). Without it such a stamp must be on its date in New York (UTC for
crypto), else the row is quarantined: which day it is cannot be told."""

DATE_ORDERS = ("mdy", "dmy")
"""How slash dates are read: `mdy` (M/D/YYYY, US style: the default) or `dmy` (D/M/YYYY)."""


def parse_stamp(text: str, *, day_first: bool = False) -> dt.date | dt.datetime:
    """A row's stamp: a date (no time of day), or a datetime, aware when the text carries an offset. Slash
    dates are M/D/YYYY, or D/M/YYYY with `day_first`.

    Raises ValueError saying why the text is not a stamp."""
    t = text.strip()
    if not t:
        raise ValueError("empty time")
    m = _MDY.fullmatch(t)
    if m:
        month, day, year = int(m[1]), int(m[2]), int(m[3])
        if day_first:
            month, day = day, month
        if m[4] is None:
            return dt.date(year, month, day)
        hour, minute, second = int(m[4]), int(m[5]), int(m[6] or 0)
        if m[7]:
            if not 1 <= hour <= 12:
                raise ValueError(f"time {text!r}: hour {hour} with {m[7]}")
            hour = hour % 12 + (12 if m[7].lower() == "pm" else 0)
        return dt.datetime(year, month, day, hour, minute, second)
    if _ISO_DATE.fullmatch(t):
        return dt.date.fromisoformat(t)
    if t.isdigit() and len(t) in _EPOCH_DIGITS:  # Unix time in s, ms or µs (UTC by definition)
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            microseconds=int(t) * _EPOCH_DIGITS[len(t)]
        )
    iso = t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t
    iso = iso[:-4] + "+00:00" if iso.upper().endswith(" UTC") else iso
    try:
        return dt.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"time {text!r} is not a date or time this import reads "
            "(YYYY-MM-DD[ HH:MM[:SS]][+HH:MM|Z], "
            + ("D/M/YYYY" if day_first else "M/D/YYYY")
            + "[ H:MM], or Unix time in s, ms or µs)"
        ) from None


def _localize(local: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A wall-clock time in `zone` as an aware instant; ValueError if it does not exist or is ambiguous."""
    early, late = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
    if early.utcoffset() != late.utcoffset():
        back = early.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
        if back != local:
            raise ValueError(f"local time {local} does not exist in {zone.key} (clocks jumped forward)")
        raise ValueError(f"local time {local} is ambiguous in {zone.key} (clocks went back)")
    return early


@dataclass(frozen=True)
class Layout:
    """Where each field is in a row, and what the header said besides."""

    columns: dict[str, int]
    date_and_time: tuple[int, int] | None
    """Separate `Date` and `Time` columns, joined into one stamp."""
    delimiter: str
    ignored: list[str]
    adjusted: list[str]
    ticker: int | None = None
    """The column holding each row's ticker (TICKER_NAMES), if any."""
    ticker_name: str = ""
    """That column's name as the header writes it."""

    @property
    def needed(self) -> int:
        """How many fields a row needs: up to the last column the import reads (a row may leave out the
        columns after it: a header ending with a delimiter, Yahoo's empty `Dividends,Stock Splits`)."""
        used = [
            *self.columns.values(),
            *(self.date_and_time or ()),
            *(() if self.ticker is None else [self.ticker]),
        ]
        return max(used) + 1


def same_ticker(value: str, symbol: str) -> bool:
    """Whether a ticker column's `value` is `symbol` as the lake spells it: case aside, a share class written
    with `-`, `/` or `_` is the lake's `.` (Yahoo's BRK-B is BRK.B), and Stooq's market suffix `.US` is
    dropped (AAPL.US is AAPL)."""

    v, s = _ticker_key(value), _ticker_key(symbol)
    return v == s or v == s + ".US"


def _ticker_key(text: str) -> str:
    return re.sub(r"[-/_]", ".", text.strip().upper())


CUT_TICKER = "(cut short)"
"""How the note names a last line cut before (or in) its ticker field, left out as not `--symbol`'s."""


def read_header(header: list[str], delimiter: str, where: str) -> Layout:
    """The layout of a header row, or a MarketlakeError naming what is missing or doubled."""
    names = [_norm(h) for h in header]
    columns: dict[str, int] = {}
    ignored: list[str] = []
    adjusted: list[str] = []
    date_and_time: tuple[int, int] | None = None
    if "date" in names and "time" in names:
        date_and_time = (names.index("date"), names.index("time"))
        columns["time"] = date_and_time[0]
    for i, n in enumerate(names):
        if date_and_time and i in date_and_time:
            continue
        if n in IGNORED_ADJUSTED:
            adjusted.append(header[i].strip())
            continue
        kind = next((k for k, names_ in ALIASES.items() if n in names_), None)
        if kind is None:
            if n:
                ignored.append(header[i].strip())
            continue
        if kind in columns:
            raise MarketlakeError(
                f"{where}: line 1: two columns mean {kind}: {header[columns[kind]].strip()!r} and {header[i].strip()!r}"
            )
        columns[kind] = i
    ticker = next((names.index(t) for t in TICKER_NAMES if t in names), None)
    if ticker is not None:
        ignored.remove(header[ticker].strip())
    counts = [i for i, n in enumerate(names) if n == TRADES_FALLBACK]
    if "trades" not in columns and len(counts) == 1:
        columns["trades"] = counts[0]
        ignored.remove(header[counts[0]].strip())
    missing = [k for k in REQUIRED if k not in columns]
    if missing:
        raise MarketlakeError(
            f"{where}: line 1: no {', '.join(missing)} column in the header {delimiter.join(header)!r} "
            "(a header row such as Date,Open,High,Low,Close,Volume is needed, in any order and case)"
        )
    ticker_name = header[ticker].strip() if ticker is not None else ""
    return Layout(columns, date_and_time, delimiter, ignored, adjusted, ticker, ticker_name)


@dataclass
class Parsed:
    """One file's rows: bars for the BARS schema and rejected rows for BARS_REJECTED."""

    bars: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    layout: Layout | None = None
    cut_short: int | None = None
    """The line of a last line without a line ending (quarantined: the file looks cut short), if any."""
    identical_copies: int = 0
    """Rows that repeat an earlier row exactly (its time and values): the bar landed once, nothing rejected."""
    other_tickers: Counter[str] = field(default_factory=Counter)
    """Rows left out because their ticker column holds another ticker than `--symbol`: how many per ticker."""


_LINE_END = re.compile(r"\r\n|\r|\n")


def _unended_tail(text: str) -> tuple[str, int, str] | None:
    """A file of two or more lines whose last line has no line ending: (the text before that line, its line
    number, the line). Every whole CSV ends with a newline; a download or copy cut short ends mid-line, and
    its last row read as written would land a price or volume that is not in the file (266.8 for
    266.859985). None for a file that ends with a line ending or is a single line."""
    if not text or text.endswith(("\n", "\r")):
        return None
    cut = max(text.rfind("\n"), text.rfind("\r"))
    tail = text[cut + 1 :]
    if cut < 0 or not tail.strip():
        return None
    head = text[: cut + 1]
    return head, len(_LINE_END.findall(head)) + 1, tail


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _looks_cut(head: str, tail: str, delimiter: str) -> str | None:
    """Why the last line `tail`, which has no line ending, looks cut short, or None when it looks whole (it
    then lands as any row). A cut before the last field leaves fewer fields than the columns read
    (`Layout.needed`); a cut in the last field leaves it shorter than that column ever is in the file's other rows (in `head`, the text
    before it): fewer characters than the column's shortest value (of numbers, when it is a number), or
    fewer decimal places than the column's fewest when every value has decimals (266.8 for 266.859985, a
    volume of 960 for 96007400). A file written without a final newline ('\\n'.join) lands whole."""
    rows = [
        r for r in csv.reader(io.StringIO(head, newline=""), delimiter=delimiter) if any(c.strip() for c in r)
    ]
    if not rows:
        return None
    header, others = rows[0], rows[1:]
    try:
        last = next(csv.reader([tail], delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration):
        return "a quoted field is not closed"
    try:  # the columns the import does not read may be left out (Layout.needed)
        needed = read_header(header, delimiter, "").needed
    except MarketlakeError:
        needed = len(header)
    if len(last) < needed:
        return f"{len(last)} fields where the header has {len(header)}"
    i = len(last) - 1
    cell = last[i].strip()
    pool = [v for v in (r[i].strip() for r in others if i < len(r)) if v]
    if _is_number(cell):
        pool = [v for v in pool if _is_number(v)]
    if not pool:
        return None
    name = header[i].strip() if i < len(header) else f"field {i + 1}"
    if len(cell) < min(len(v) for v in pool):
        return f"its last field ({name}) is shorter than in every other row"
    if all("." in v for v in pool) and len(cell.partition(".")[2]) < min(
        len(v.partition(".")[2]) for v in pool
    ):
        return f"its last field ({name}) has fewer decimal places than in every other row"
    return None


_DECIMAL_COMMA = re.compile(r"-?\d{1,3}(?:\.\d{3})+,\d+|-?\d+,\d+")
_COMMA_GROUPS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DOT_GROUPS = re.compile(r"-?\d{1,3}(?:\.\d{3}){2,}")


def _number_hint(text: str) -> str:
    """Why a field that is not a number may look like one: a decimal comma (`187,15`, `1.234,56`: European
    exports) or a thousands separator (`82,488,700`, `82.488.700`). Empty when it looks like neither."""
    ambiguous = re.fullmatch(r"-?\d{1,3},\d{3}", text)  # 1,000: a thousand, or one with a decimal comma
    if ambiguous:
        return " (a thousands separator or a decimal comma? numbers are read as 1234.56, without separators)"
    if _COMMA_GROUPS.fullmatch(text) or _DOT_GROUPS.fullmatch(text):
        return " (a thousands separator? numbers are read without one: 82488700, 187.15)"
    if _DECIMAL_COMMA.fullmatch(text):
        return " (a decimal comma? numbers are read with a decimal point and no thousands separator: 187.15)"
    return ""


def _number(name: str, text: str) -> float:
    t = text.strip()
    if not t:
        raise ValueError(f"missing field {name}")
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number{_number_hint(t)}") from None


def parse_csv(
    text: str,
    *,
    where: str,
    symbol: str,
    interval: str,
    asset_class: str,
    tz: ZoneInfo | None,
    source_file: str,
    now: dt.datetime,
    date_order: str | None = None,
    utc_date: bool = False,
) -> Parsed:
    """Read a whole file's text into bars and rejected rows. Raises MarketlakeError (naming `where` and the
    line) for what makes the whole file unreadable: no header, a missing column, an intraday local time
    without `tz`, a date-only stamp for an intraday interval, slash dates that look day-first when
    `date_order` (`mdy` or `dmy`) does not say which they are, or month-first when it says `dmy`
    (`_DayFirst`). With `utc_date` (`--daily-stamps utc-date`) a daily stamp that is an instant is on its
    UTC date (Tiingo stamps each day at 00:00:00Z)."""
    day_first = _DayFirst(where, dmy=date_order == "dmy") if date_order != "mdy" else None
    step = interval_delta(interval)
    daily = step >= dt.timedelta(days=1)
    unended = _unended_tail(text)
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t", "|"), key=first_line.count)
    cut_why = None if unended is None else _looks_cut(unended[0], unended[2], delimiter)
    if unended is not None and cut_why is not None:
        text = unended[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    out = Parsed()
    header: list[str] | None = None
    first: dict[dt.datetime, int] = {}
    """Each bar's time: its first valid row's place in out.bars."""
    written: dict[dt.datetime, str] = {}
    """Each bar's time as its first valid row wrote it (a daily row's date): named in `_repeated_times`."""
    repeats: dict[dt.datetime, list[tuple[int, tuple[float | int | None, ...], Callable[..., None]]]] = {}
    """A time written again: its later valid rows (line, values, how to reject it), decided once all are read."""
    landed: list[tuple[int, Callable[..., None]]] = []
    """Each bar of out.bars: its line, and how to reject it (`_whole_hours`)."""
    times: list[dt.datetime] = []
    """Every row's time that could be read (an instant as such; a date or a local time of a daily row as
    written, read as UTC's): the file's own cadence, checked against `interval` once all are read."""
    days: list[dt.date] = []
    """Every daily row's date as written: a file coarser than daily (`check_coarser`)."""
    weekend = 0
    """Rows on a Saturday or Sunday (the date as written for daily rows; in New York and in UTC for
    intraday ones): a stock or ETF file with many is a market that trades every day, refused."""
    localized = False
    mine = 0
    """Rows whose ticker column is `symbol` (a file with one)."""
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = row
            out.layout = read_header(row, delimiter, where)
            continue
        layout = out.layout
        assert layout is not None
        if layout.ticker is not None:
            value = row[layout.ticker].strip() if layout.ticker < len(row) else ""
            if not same_ticker(value, symbol):
                out.other_tickers[value] += 1
                continue
            mine += 1
        raw = delimiter.join(row)
        cols = layout.columns

        def cell(kind: str, row: list[str] = row, cols: dict[str, int] = cols) -> str:
            i = cols.get(kind)
            return row[i] if i is not None and i < len(row) else ""

        nums: dict[str, float | None] = {}
        for k in ("open", "high", "low", "close", "volume"):
            try:
                nums[k] = float(cell(k))
            except ValueError:
                nums[k] = None

        def reject(
            reason: str,
            line: int = line,
            raw: str = raw,
            nums: dict[str, float | None] = nums,
            at: dt.datetime | None = None,
        ) -> None:
            out.rejected.append(
                {
                    "symbol": symbol,
                    "interval": interval,
                    "source_file": source_file,
                    "line_number": line,
                    "raw": raw,
                    "ts": at,
                    **nums,
                    "reason": reason,
                }
            )

        stamp_text = cell("time")
        if layout.date_and_time is not None:
            d_i, t_i = layout.date_and_time
            stamp_text = " ".join(row[i].strip() for i in (d_i, t_i) if i < len(row)).strip()
        if len(row) < layout.needed:
            reject(f"{len(row)} fields where the header has {len(header)}")
            continue
        if len(row) > len(header) and any(c.strip() for c in row[len(header) :]):
            # a field that holds the delimiter unquoted (82,488,700) shifts or cuts the ones after it
            reject(
                f"{len(row)} fields where the header has {len(header)} ("
                + (
                    "an unquoted thousands separator?"
                    if delimiter == ","
                    else "an unquoted delimiter in a field?"
                )
                + ")"
            )
            continue
        if day_first is not None:
            day_first.see(stamp_text, line)
        try:
            stamp = parse_stamp(stamp_text, day_first=date_order == "dmy")
        except ValueError as exc:
            reject(str(exc))
            continue
        if daily:
            if utc_date and isinstance(stamp, dt.datetime) and stamp.tzinfo is not None:
                stamp = stamp.astimezone(dt.UTC)  # the UTC date is the trading day, said so
            day = stamp.date() if isinstance(stamp, dt.datetime) else stamp
            # an instant as such (two ways of writing one instant are one time); a wall-clock time or a date
            # as written, read as UTC's (only the spacing matters)
            times.append(
                dt.datetime.combine(stamp, dt.time(0), dt.UTC)
                if not isinstance(stamp, dt.datetime)
                else stamp
                if stamp.tzinfo is not None
                else stamp.replace(tzinfo=dt.UTC)
            )
            weekend += int(day.weekday() >= 5)
            days.append(day)
            if isinstance(stamp, dt.datetime) and stamp.tzinfo is not None:
                # an instant (a Unix time, an ISO time with its offset): its day where the bar's market keeps
                # its days (New York for stocks and ETFs, UTC for crypto) must be the date it is written with,
                # else which trading day it is cannot be told (an instant is never moved to another day)
                home = dt.UTC if asset_class == "crypto" else NEW_YORK
                there = stamp.astimezone(home).date()
                if there != day and not utc_date:
                    midnight = stamp.astimezone(dt.UTC).time() == dt.time(0)
                    reject(
                        f"daily stamp {stamp_text.strip()!r} is {day} as written but {there} in "
                        f"{'UTC' if home is dt.UTC else 'New York'}: which trading day it is cannot be told"
                        + (
                            " (if each row's UTC date is its trading day, as in Tiingo's files stamped at "
                            "00:00:00Z, import it with --daily-stamps utc-date)"
                            if midnight
                            else ""
                        )
                    )
                    continue
            if asset_class == "crypto":
                ts = dt.datetime.combine(day, dt.time(0), dt.UTC)
                available_at = ts + step
            else:
                try:
                    ts, available_at = stamp_daily(day, dt.datetime.combine(day, dt.time(12), NEW_YORK))
                except StampError as exc:
                    reject(f"date {stamp_text.strip()!r}: {exc}")
                    continue
        else:
            if not isinstance(stamp, dt.datetime):
                raise MarketlakeError(
                    f"{where}: line {line}: {stamp_text.strip()!r} is a date without a time, "
                    f"which cannot be a {interval} bar (is the file daily? use --interval 1d)"
                )
            if stamp.tzinfo is None:
                if tz is None:
                    raise MarketlakeError(
                        f"{where}: line {line}: time {stamp_text.strip()!r} has no UTC offset: "
                        "say which zone its times are in with --tz (e.g. --tz America/New_York)"
                    )
                try:
                    stamp = _localize(stamp, tz)
                except ValueError as exc:
                    reject(str(exc))
                    continue
                localized = True
            ts = stamp.astimezone(dt.UTC)
            times.append(ts)
            if asset_class != "crypto" and ts.weekday() >= 5 and ts.astimezone(NEW_YORK).weekday() >= 5:
                weekend += 1
                ny_day, utc_day = f"{ts.astimezone(NEW_YORK):%A}", f"{ts:%A}"
                reject(
                    f"time {ts.isoformat()} is a {ny_day} in New York and "
                    + ("in UTC" if ny_day == utc_day else f"a {utc_day} in UTC")
                    + f": no US exchange trades a {asset_class} then (is the file crypto? use --asset-class crypto)",
                    at=ts,
                )
                continue
            if asset_class != "crypto" and (closed := _closed_weekday(ts)) is not None:
                # a weekday the exchange did not trade (a holiday): no session, regular or extended, that day;
                # a weekend in New York that is a weekday in UTC (a Sunday evening) is left to the rule above
                reject(
                    f"time {ts.isoformat()} is on {closed} in New York, a {closed:%A} the exchange did not "
                    f"trade (not an XNYS session): no {asset_class} trades then",
                    at=ts,
                )
                continue
            minutes = step.total_seconds() / 60
            if ts.second or ts.microsecond or (minutes < 60 and ts.minute % int(minutes)):
                reject(
                    f"time {ts.isoformat()} is not on the {interval} grid (a bar starts on a whole {interval})"
                )
                continue
            if minutes >= 60 and ts.minute not in ((0,) if asset_class == "crypto" else (0, 30)):
                reject(
                    f"time {ts.isoformat()} is not on the {interval} grid (a bar starts on a whole hour"
                    + (
                        ""
                        if asset_class == "crypto"
                        else ", or half past for stocks: the session opens at 09:30"
                    )
                    + ")"
                )
                continue
            available_at = ts + step
        try:
            values = [_number(k, cell(k)) for k in ("open", "high", "low", "close", "volume")]
        except ValueError as exc:
            reject(str(exc), at=ts)
            continue
        problem = ohlcv_problem(values, [cell(k).strip() for k in ("open", "high", "low", "close", "volume")])
        if problem is not None:
            reject(problem, at=ts)
            continue
        trades: int | None = None
        if "trades" in cols and cell("trades").strip():
            try:
                trades = int(cell("trades").strip())
            except ValueError:
                reject(f"trades {cell('trades')!r} is not a whole number", at=ts)
                continue
            if trades < 0:
                reject(f"trades {cell('trades')!r} is negative", at=ts)
                continue
            if trades > INT64_MAX:
                reject(f"trades {cell('trades')!r} is out of range (more than {INT64_MAX})", at=ts)
                continue
        if available_at > now:
            reject(f"bar not finished when imported: available at {available_at.isoformat()}", at=ts)
            continue
        if ts in first:  # decided once every copy is read (`_repeated_times`)
            repeats.setdefault(ts, []).append((line, (*values, trades), reject))
            continue
        first[ts] = len(out.bars)
        written[ts] = day.isoformat() if daily else stamp_text.strip()
        landed.append((line, reject))
        o, h, lo, c, v = values
        out.bars.append(
            {
                "ts": ts,
                "available_at": available_at,
                "open": o,
                "high": h,
                "low": lo,
                "close": c,
                "volume": v,
                "trades": trades,
                "source_file": source_file,
            }
        )
    if header is None:
        raise MarketlakeError(f"{where}: the file is empty (no header, no rows)")
    ticker = out.layout.ticker if out.layout is not None else None
    if unended is not None and cut_why is not None and ticker is not None:
        tail_row = next(csv.reader([unended[2]], delimiter=delimiter), [])
        # The cut last line is judged by what it has. Its ticker field whole (not the last field it has):
        # another ticker's row is left out as such. Its ticker the last field it has (it may be cut: "AA" of
        # "AAL"): another ticker's unless it is how --symbol's starts. No ticker field (cut before it, as in
        # Kaggle's files, whose Name column is the last): whose row it is cannot be read, so in a file holding
        # other tickers' rows it is not taken for --symbol's (quarantined under --symbol it was another
        # ticker's bar stored as a rejection of --symbol's): left out, counted in the note as CUT_TICKER; in a
        # file of --symbol's rows only it is most likely --symbol's bar, quarantined as cut, as without a
        # ticker column.
        if ticker < len(tail_row) - 1:
            other, name = not same_ticker(tail_row[ticker], symbol), tail_row[ticker].strip()
        elif ticker == len(tail_row) - 1:
            start = _ticker_key(tail_row[ticker])
            other = not (_ticker_key(symbol) + ".US").startswith(start)
            name = CUT_TICKER
        else:
            other, name = bool(out.other_tickers), CUT_TICKER
        if other:
            out.other_tickers[name] += 1
            cut_why = None
    if out.layout is not None and ticker is not None and not mine and out.other_tickers:
        _refuse_other_tickers(out.other_tickers, out.layout.ticker_name, symbol, where)
    if day_first is not None:
        day_first.check()
    if unended is not None and cut_why is not None:
        _, tail_line, tail = unended
        out.cut_short = tail_line
        out.rejected.append(
            {
                "symbol": symbol,
                "interval": interval,
                "source_file": source_file,
                "line_number": tail_line,
                "raw": tail,
                "ts": None,
                **dict.fromkeys(("open", "high", "low", "close", "volume")),
                # no file name nor line: the same cut row imported under two names is one bar (`check`)
                "reason": f"no line ending, and {cut_why}: the file looks cut short (a whole file ends with "
                "a newline); if that line is whole, end the file with a newline and import it again",
            }
        )
    out.bars, landed, out.identical_copies = _repeated_times(out.bars, landed, first, repeats, written)
    out.bars, landed = _coarse_stretches(out.bars, landed, times, days, interval, asset_class)
    if not daily and step >= dt.timedelta(hours=1):
        out.bars = _whole_hours(out.bars, landed, interval, step)
    check_cadence(times, interval, where)
    check_coarser(times, days, interval, asset_class, where)
    out.rejected.sort(key=lambda r: int(r["line_number"]))  # rows rejected once all were read: in line order
    if asset_class != "crypto" and weekend >= WEEKEND_MIN_ROWS and weekend >= WEEKEND_SHARE * len(times):
        raise MarketlakeError(
            f"{where}: {weekend} of {len(times)} rows are on a Saturday or Sunday"
            + ("" if daily else " (in New York and in UTC)")
            + f", when no US exchange trades; {symbol} is read as a {asset_class}: is it crypto? use "
            "--asset-class crypto"
            + (f" (or are its times not in {tz.key}? check --tz)" if localized and tz is not None else "")
            + "; nothing was stored"
        )
    return out


def _closed_weekday(ts: dt.datetime) -> dt.date | None:
    """`ts`'s day in New York when it is a Monday to Friday that is not an XNYS session (a holiday); None when
    it is a session, a weekend day, or outside the calendar's range (it cannot be told)."""
    day = ts.astimezone(NEW_YORK).date()
    if day.weekday() >= 5:
        return None
    try:
        return day if xnys_session(day) is None else None
    except StampError:
        return None


def _refuse_other_tickers(others: Counter[str], column: str, symbol: str, where: str) -> None:
    """A file whose ticker column never holds `symbol`: MarketlakeError naming what it holds."""
    if len(others) == 1:
        (value,) = others
        raise MarketlakeError(
            f"{where}: its {column} column holds {value!r} on every row, not {symbol}: is it {value}'s file? "
            f"Import it with --symbol {value} (or, if that column is not the ticker, remove it); nothing was "
            "stored"
        )
    few = ", ".join(repr(v) for v, _ in others.most_common(5))
    raise MarketlakeError(
        f"{where}: no row's {column} is {symbol}: the column holds {len(others)} other tickers ({few}"
        + (", …" if len(others) > 5 else "")
        + "); nothing was stored"
    )


class _DayFirst:
    """Slash dates are read as M/D/YYYY (README) unless `--date-order` says otherwise. Without it, a file
    whose dates look day-first is refused (MarketlakeError), not read month first: a date whose first number
    cannot be a month (13/08/2024), at once; or, once every row is read, consecutive dates whose first
    number changes while the second stays (01/08/2024 then 02/08/2024: read month-first, a month apart)
    more often than the other way round (a month-first file's day changes from one date to the next).
    Dates with no evidence either way (every number at most 12, no such pattern: one day's intraday rows)
    are read month first.

    With `dmy` (`--date-order dmy`), the mirror: a file whose dates look month-first is refused, a date
    whose second number cannot be a month (1/13/2024) at once, or consecutive dates whose second number
    changes while the first stays more often than the other way round (a mistaken --date-order dmy on a US
    file would otherwise land its dates swapped, or be refused for weekend rows)."""

    def __init__(self, where: str, *, dmy: bool = False) -> None:
        self.where = where
        self.dmy = dmy
        self.last: tuple[int, int, str, int] | None = None
        """The last slash date seen: (first number, second number, as written, line)."""
        self.first_changes = 0
        self.second_changes = 0
        self.evidence: tuple[int, str, int, str] | None = None
        """The first pair of lines whose first number changed alone: (line, date, line, date)."""
        self.second_evidence: tuple[int, str, int, str] | None = None
        """The first pair of lines whose second number changed alone."""

    def see(self, stamp_text: str, line: int) -> None:
        m = _MDY.fullmatch(stamp_text.strip())
        if m is None:
            return
        first, second, written = int(m[1]), int(m[2]), f"{m[1]}/{m[2]}/{m[3]}"
        if self.dmy and second > 12 and 1 <= first <= 12:
            raise MarketlakeError(
                f"{self.where}: dates look month-first: {written} on line {line} ({second} is not a month; "
                "--date-order dmy reads D/M/YYYY); drop --date-order dmy; nothing was stored"
            )
        if not self.dmy and first > 12 and 1 <= second <= 12:
            raise MarketlakeError(
                f"{self.where}: line {line}: dates look day-first: {written} ({first} is not a month; slash "
                "dates are read as M/D/YYYY): if the file's dates are D/M/YYYY, import it with --date-order "
                "dmy; nothing was stored"
            )
        if self.last is not None:
            f0, s0, w0, l0 = self.last
            if first != f0 and second == s0:
                self.first_changes += 1
                self.evidence = self.evidence or (l0, w0, line, written)
            elif second != s0 and first == f0:
                self.second_changes += 1
                self.second_evidence = self.second_evidence or (l0, w0, line, written)
        self.last = (first, second, written, line)

    def check(self) -> None:
        if self.dmy:
            if self.second_evidence is not None and self.second_changes > self.first_changes:
                l0, w0, l1, w1 = self.second_evidence
                raise MarketlakeError(
                    f"{self.where}: dates look month-first: {w0} then {w1} on lines {l0}-{l1} (the second "
                    "number changes from row to row, the first does not; --date-order dmy reads D/M/YYYY); "
                    "drop --date-order dmy; nothing was stored"
                )
            return
        if self.evidence is not None and self.first_changes > self.second_changes:
            l0, w0, l1, w1 = self.evidence
            raise MarketlakeError(
                f"{self.where}: lines {l0}-{l1}: dates look day-first: {w0} then {w1} (the first number "
                "changes from row to row, the second does not; slash dates are read as M/D/YYYY): say which "
                "with --date-order dmy (D/M/YYYY) or --date-order mdy (M/D/YYYY); nothing was stored"
            )


WEEKEND_MIN_ROWS = 3
WEEKEND_SHARE = 0.1
"""A stock or ETF file is refused when at least this many of its rows, and this share of them, are on a
weekend: a market that trades every day (crypto, 2 days in 7) without `--asset-class crypto`. Fewer are
stray rows, quarantined one by one (intraday: a weekend in New York and in UTC; daily: not an XNYS
session), as the other bad rows are."""

DST_SLACK = dt.timedelta(hours=1)
"""Daily rows written as instants (a Unix time of midnight in New York, say) are 23 hours apart across a
daylight-saving change."""


def _span(delta: dt.timedelta) -> str:
    """A spacing in words: `1 minute`, `30 minutes`, `1 hour 30 minutes`, `2 days`."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    return " ".join(parts) or "0 seconds"


def cadence(times: list[dt.datetime]) -> tuple[dt.timedelta, int, int] | None:
    """The file's own cadence: the most common positive spacing between consecutive distinct times (in time
    order; the larger of equally common ones), how many spacings are that, and how many there are. None
    for fewer than two distinct times. Gaps (nights, weekends, holidays, a quiet minute) and a few stray
    rows are each less common than the bars' own spacing, so they do not change it."""
    ordered = sorted(set(times))
    counts = Counter(b - a for a, b in zip(ordered, ordered[1:], strict=False))
    if not counts:
        return None
    most, n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return most, n, len(ordered) - 1


def check_cadence(times: list[dt.datetime], interval: str, where: str) -> None:
    """Refuse a file whose rows are closer together than `interval` (a minute file imported as hourly
    would land one minute per hour as an hourly bar and quarantine the rest): MarketlakeError naming the
    file, the spacing found and the interval it is."""
    found = cadence(times)
    step = interval_delta(interval)
    if found is None:
        return
    most, n, total = found
    if most >= step - (DST_SLACK if step >= dt.timedelta(days=1) else dt.timedelta(0)):
        return
    match = next((name for name, d in INTERVALS.items() if d == most), None)
    advice = (
        f"use --interval {match}"
        if match
        else f"no --interval is {_span(most)} ({', '.join(INTERVALS)}): resample the file to one first"
    )
    raise MarketlakeError(
        f"{where}: rows are {_span(most)} apart (the most common spacing, {n} of {total}), finer than "
        f"--interval {interval}: {advice}; nothing was stored"
    )


COARSE_MIN_SPACINGS = 20
COARSE_SHARE = 0.95
"""A file is coarser than its `interval` when at least COARSE_MIN_SPACINGS of its spacings can tell (within a
day, for intraday files) and COARSE_SHARE of them say so: a few stray rows do not hide a coarser file, and
a short file (too few spacings to tell) is never refused."""


def check_coarser(
    times: list[dt.datetime], days: list[dt.date], interval: str, asset_class: str, where: str
) -> None:
    """Refuse a file whose bars are coarser than `interval` (the mirror of `check_cadence`): a 5-minute file
    imported as 1m would land each bar available 1 minute after it opens while its close is known only 5
    minutes after it (look-ahead), a weekly file imported as 1d each week as its first day.

    Intraday (`times`): the spacings between consecutive times within a day (New York's for stocks and
    ETFs, UTC's for crypto; nights and weekends are not spacings of bars). The file is coarser when
    COARSE_SHARE of them are whole multiples of one cadence of at least two intervals (the largest such
    cadence that divides the most common spacing). An illiquid minute file with quiet minutes missing has
    spacings of 1 minute among the rest (their common divisor is 1 minute): not refused; nor a file of one
    bar a day (no spacing within a day). Daily (`days`, as written): coarser when COARSE_SHARE of the
    spacings are more than one trading day (a weekday between them; crypto: more than one day). Both
    need at least COARSE_MIN_SPACINGS spacings. MarketlakeError naming the file, the cadence seen and the
    --interval to use."""
    step = interval_delta(interval)
    if step >= dt.timedelta(days=1):
        _check_coarser_days(days, asset_class, where)
        return
    home = dt.UTC if asset_class == "crypto" else NEW_YORK
    ordered = sorted(set(times))
    local = [t.astimezone(home).date() for t in ordered]
    spacings = [
        int((b - a).total_seconds())
        for a, b, da, db in zip(ordered, ordered[1:], local, local[1:], strict=False)
        if da == db
    ]
    n = len(spacings)
    if n < COARSE_MIN_SPACINGS:
        return
    unit = int(step.total_seconds())
    counts = Counter(spacings)
    most, most_n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    found = _coarse_cadence(counts, unit)
    if found is not None:
        c, hits = found
        cad, common = dt.timedelta(seconds=c), dt.timedelta(seconds=most)
        match = next((name for name, d in INTERVALS.items() if d == cad), None) or next(
            (name for name, d in INTERVALS.items() if d == common), None
        )
        advice = (
            f"use --interval {match}"
            if match
            else f"no --interval is {_span(cad)} ({', '.join(INTERVALS)}): resample the file to one first"
        )
        ones = counts.get(unit, 0)
        raise MarketlakeError(
            f"{where}: rows are {_span(cad)} apart or a multiple of it ({hits} of {n} spacings within a day; "
            f"the most common, {_span(common)}, {most_n} times), "
            + (f"never {_span(step)}" if not ones else f"only {ones} of them {_span(step)}")
            + f": coarser than --interval {interval}, whose bars would be available {_span(step)} after they "
            f"open when their close is known only {_span(cad)} after: {advice}; nothing was stored"
        )


def _repeated_times(
    bars: list[dict[str, Any]],
    landed: list[tuple[int, Callable[..., None]]],
    first: dict[dt.datetime, int],
    repeats: dict[dt.datetime, list[tuple[int, tuple[float | int | None, ...], Callable[..., None]]]],
    written: dict[dt.datetime, str],
) -> tuple[list[dict[str, Any]], list[tuple[int, Callable[..., None]]], int]:
    """A time the file holds more than once, by the rule of the Binance and Polygon imports: copies with the
    same open, high, low, close, volume and trades are one bar, landed once (not a rejection); copies that
    disagree on any of them are all rejected, naming their lines, none chosen over the others (the first
    used to win silently). `first`: each time's first copy's place in `bars`; `repeats`: its later copies;
    `written`: the time as the file wrote it (a daily row's date), as the reason names it.
    The bars and their `landed` entries without the times rejected, and how many rows were identical
    copies."""
    identical, dropped = 0, set()
    for ts, later in repeats.items():
        bar = bars[first[ts]]
        values = (*(bar[k] for k in ("open", "high", "low", "close", "volume")), bar["trades"])
        group = [(*landed[first[ts]][:1], values, landed[first[ts]][1]), *later]
        if all(v == values for _, v, _ in later):
            identical += len(group) - 1
            continue
        why = (
            f"{len(group)} rows for the bar at {written[ts]}, on lines "
            f"{', '.join(str(line) for line, _, _ in group)}, with different values: none of them landed"
        )
        for _, _, reject in group:
            reject(why, at=ts)
        dropped.add(ts)
    if not dropped:
        return bars, landed, identical
    keep = [i for i, bar in enumerate(bars) if bar["ts"] not in dropped]
    return [bars[i] for i in keep], [landed[i] for i in keep], identical


COARSE_DAY_MIN_SPACINGS = 4
"""A day of fewer spacings is not judged on its own (`_coarse_stretches`): an illiquid stock that trades at
the open and the close auctions only has one spacing a day, 389 minutes, a whole multiple of 389 minutes."""


def _coarse_cadence(counts: Counter[int], unit: int) -> tuple[int, int] | None:
    """The cadence (seconds) of spacings `counts` (seconds -> how many) when it is coarser than `unit`: the
    largest whole multiple of two units or more that divides the most common spacing and COARSE_SHARE of
    all spacings; with how many spacings it divides. None when there is none (the spacings say `unit`)."""
    if not counts:
        return None
    n = sum(counts.values())
    most, _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    for k in range(most // unit, 1, -1):  # the largest cadence first
        c = k * unit
        if most % c:
            continue
        hits = sum(n_ for d, n_ in counts.items() if d % c == 0)
        if hits >= COARSE_SHARE * n:
            return c, hits
    return None


def _coarse_stretches(
    bars: list[dict[str, Any]],
    landed: list[tuple[int, Callable[..., None]]],
    times: list[dt.datetime],
    days: list[dt.date],
    interval: str,
    asset_class: str,
) -> tuple[list[dict[str, Any]], list[tuple[int, Callable[..., None]]]]:
    """The bars (and their `landed` entries) outside stretches of the file coarser than `interval`; the bars
    inside rejected, each with the spacing seen. A file may change cadence (three days of 5-minute bars,
    then minutes; a year of weekly bars, then daily ones): `check_coarser` refuses a file only when
    COARSE_SHARE of it is coarser, and each coarser bar landed as the finer interval would be available
    before its close is known (look-ahead).

    Intraday: each day (New York's for stocks and ETFs, UTC's for crypto) of at least COARSE_DAY_MIN_SPACINGS
    spacings is judged by them (`_coarse_cadence`, as `check_coarser` judges a file); consecutive days judged
    coarser (days of fewer spacings aside) are a stretch, rejected when it has at least COARSE_MIN_SPACINGS spacings (a quiet day of an
    illiquid minute file whose few bars happen to be 2 or 5 minutes apart is too short to tell). Daily: a
    row is coarse when it is more than one trading day (an XNYS session between them; crypto: one day) from
    each of its neighbours (the one it has, at either end of the file), and COARSE_MIN_SPACINGS consecutive
    coarse rows are a stretch when they keep one cadence (`_regular_days`: weekly bars are 7 days apart
    every time, monthly ones 28 to 31 days); a holiday, a lone row between two gaps, or the days of a
    thinly traded stock (rows some random number of sessions apart) are not."""
    step = interval_delta(interval)
    crypto = asset_class == "crypto"
    home = dt.UTC if crypto else NEW_YORK
    why: dict[dt.date, str] = {}
    if step >= dt.timedelta(days=1):
        ordered = sorted(set(days))

        gaps = [not _next_trading_day(a, b, crypto) for a, b in zip(ordered, ordered[1:], strict=False)]
        coarse = [
            (i == 0 or gaps[i - 1]) and (i == len(gaps) or gaps[i]) and len(ordered) > 1
            for i in range(len(ordered))
        ]
        i = 0
        while i < len(ordered):
            j = i
            while j < len(ordered) and coarse[j]:
                j += 1
            run = ordered[i:j]
            regular = _regular_days(run) if j - i >= COARSE_MIN_SPACINGS else None
            if regular is not None:
                most, hits = regular
                text = (
                    f"it is one of {len(run)} rows from {run[0]} to {run[-1]} that are {_span(most)} apart (the "
                    f"most common spacing, or a multiple of it: {hits} of {len(run) - 1} spacings), none one {'day' if crypto else 'trading day'} from the next: "
                    f"coarser than --interval {interval}, whose bar is one day's (it would be stamped as its "
                    "first day, available when that day ends, its close known only at the end of its last)"
                )
                why.update(dict.fromkeys(run, text))
            i = max(j, i + 1)
    else:
        unit = int(step.total_seconds())
        ordered_t = sorted(set(times))
        by_day: dict[dt.date, Counter[int]] = defaultdict(Counter)
        local = [t.astimezone(home).date() for t in ordered_t]
        for a, b, da, db in zip(ordered_t, ordered_t[1:], local, local[1:], strict=False):
            if da == db:
                by_day[da][int((b - a).total_seconds())] += 1
        judged = [
            (d, _coarse_cadence(by_day[d], unit), sum(by_day[d].values()))
            for d in sorted(by_day)
            if sum(by_day[d].values()) >= COARSE_DAY_MIN_SPACINGS
        ]
        i = 0
        while i < len(judged):
            j = i
            while j < len(judged) and judged[j][1] is not None:
                j += 1
            if sum(n for _, _, n in judged[i:j]) >= COARSE_MIN_SPACINGS:
                first, last = judged[i][0], judged[j - 1][0]
                stretch = str(first) if first == last else f"{first} to {last}"
                for d, found, n in judged[i:j]:
                    assert found is not None
                    c, hits = found
                    cad = _span(dt.timedelta(seconds=c))
                    why[d] = (
                        f"its day's rows ({d}) are {cad} apart or a multiple of it ({hits} of {n} spacings; "
                        f"coarser days: {stretch}): coarser than --interval {interval}, whose bar would be "
                        f"available {_span(step)} after it opens when its close is known only {cad} after"
                    )
            i = max(j, i + 1)
    if not why:
        return bars, landed
    kept: list[dict[str, Any]] = []
    kept_landed: list[tuple[int, Callable[..., None]]] = []
    for bar, entry in zip(bars, landed, strict=True):
        reason = why.get(bar["ts"].astimezone(home).date())
        if reason is None:
            kept.append(bar)
            kept_landed.append(entry)
        else:
            entry[1](f"the {interval} bar at {bar['ts'].isoformat()}: {reason}", at=bar["ts"])
    return kept, kept_landed


def _check_coarser_days(days: list[dt.date], asset_class: str, where: str) -> None:
    ordered = sorted(set(days))
    n = len(ordered) - 1
    if n < COARSE_MIN_SPACINGS:
        return
    crypto = asset_class == "crypto"

    near = sum(_next_trading_day(a, b, crypto) for a, b in zip(ordered, ordered[1:], strict=False))
    if n - near < COARSE_SHARE * n:
        return
    regular = _regular_days(ordered)
    if regular is None:  # a thinly traded stock's days, some random number of sessions apart: its cadence
        return
    most, _ = regular
    what = "one day" if crypto else "one trading day"
    raise MarketlakeError(
        f"{where}: rows are {_span(most)} apart (the most common spacing), "
        + (f"never {what}" if not near else f"only {near} of {n} spacings {what}")
        + ": coarser than --interval 1d, whose bar is one day's (each bar would be stamped as its first day, "
        "available when that day ends, its close known only at the end of its last); no --interval is "
        "coarser than 1d: import daily bars; nothing was stored"
    )


def _next_trading_day(a: dt.date, b: dt.date, crypto: bool) -> bool:
    """Whether day `b` is the trading day after `a` (a < b): no XNYS session between them (crypto: the next
    day). A holiday between two sessions is no gap; days outside the calendar's range count weekdays."""
    gap = (b - a).days
    if crypto or gap > 7:
        return gap == 1
    for i in range(1, gap):
        d = a + dt.timedelta(days=i)
        try:
            if xnys_session(d) is not None:
                return False
        except StampError:
            if d.weekday() < 5:
                return False
    return True


DAY_TOLERANCE = 0.1
"""How far (a share of the cadence) a spacing of a coarser daily stretch may be from a whole multiple of its
most common spacing and keep its cadence (`_regular_days`): monthly bars are 28 to 31 days apart, weekly
ones dated on a week's first session 6 or 8 days around a Monday holiday; at least a day for cadences of 5
days or more, none below (rows 2 or 3 days apart, give or take one, would be any spacing at all)."""


def _day_tolerance(most: dt.timedelta) -> dt.timedelta:
    return dt.timedelta(days=max(1, int(most.days * DAY_TOLERANCE)) if most.days >= 5 else 0)


def _regular_days(days: list[dt.date]) -> tuple[dt.timedelta, int] | None:
    """The most common spacing of `days` (sorted, distinct) and how many spacings lie within
    `_day_tolerance` of a whole multiple of it (a week missing, or a holiday's row left out, is two weeks),
    when COARSE_SHARE of them do: bars of one coarser cadence (weekly, monthly), as `_coarse_cadence` asks
    of intraday spacings. None otherwise: the days of a thinly traded stock, some random number of sessions
    apart, are not a coarser file (they were quarantined as one)."""
    spacings = [b - a for a, b in zip(days, days[1:], strict=False)]
    if not spacings:
        return None
    most = max(Counter(spacings).items(), key=lambda kv: (kv[1], kv[0]))[0]
    tol = _day_tolerance(most)

    def keeps(d: dt.timedelta) -> bool:
        k = max(1, round(d / most))
        return abs(d - k * most) <= tol

    hits = sum(keeps(d) for d in spacings)
    return (most, hits) if hits >= COARSE_SHARE * len(spacings) else None


def _whole_hours(
    bars: list[dict[str, Any]],
    landed: list[tuple[int, Callable[..., None]]],
    interval: str,
    step: dt.timedelta,
) -> list[dict[str, Any]]:
    """The hourly bars that hold whole hours, in file order; the others rejected with their reason. A stock's
    hourly bars start at half past (09:30, 10:30, ...: yfinance) or on the hour after a first half hour
    (09:30, 10:00, 11:00, ...: many brokers' and charting exports). On a day on the clock-hour grid, a bar at
    half past holds the half hour before the next one, not an hour: rejected (it was the 10:00 bar that
    went, as overlapping the 09:30 one's hour, and the half hour landed as an hour). Each New York day is
    judged by its own bars, 09:30 aside (a bar of both grids): bars on the hour say clock hours, bars at half
    past other than 09:30 say yfinance's; a day with neither (a day of one 09:30 bar, exported at 10:40) or
    as many of each takes the file's grid, judged the same way over the whole file (half past when that too
    is even). So a file may change from one grid to the other. Otherwise a bar overlapping an earlier one's
    hour is rejected."""

    def evidence(ts: dt.datetime) -> int:  # +1: clock hours, -1: half past, 0: either
        local = ts.astimezone(NEW_YORK)
        if local.minute == 0:
            return 1
        return 0 if (local.hour, local.minute) == (9, 30) else -1

    by_day: Counter[dt.date] = Counter()
    for b in bars:
        by_day[b["ts"].astimezone(NEW_YORK).date()] += evidence(b["ts"])
    whole_file = sum(by_day.values())
    kept: list[dict[str, Any]] = []
    held: dict[dt.datetime, int] = {}
    for bar, (line, reject) in zip(bars, landed, strict=True):
        ts = bar["ts"]
        day = ts.astimezone(NEW_YORK).date()
        clock = by_day[day] > 0 or (by_day[day] == 0 and whole_file > 0)
        if ts.minute == 30 and clock:
            reject(
                f"the {interval} bar at {ts.isoformat()} starts at half past on a day whose bars start on the "
                f"hour ({day}"
                + (", as the file's" if by_day[day] == 0 else "")
                + "): it holds the half hour "
                "before the next one (a session opening at 09:30), not an hour",
                at=ts,
            )
            continue
        clash = [ts + k * HALF_HOUR for k in range(-1, 2, 2)]
        overlapped = next((held[t] for t in clash if t in held and abs(t - ts) < step), None)
        if overlapped is not None:
            reject(f"the {interval} bar at {ts.isoformat()} overlaps the one at line {overlapped}", at=ts)
            continue
        held[ts] = line
        kept.append(bar)
    return kept


HALF_HOUR = dt.timedelta(minutes=30)
"""The finer of the two grids a stock's hourly bars may start on (:00, or :30 as the session opens)."""


def _read_text(path: Path) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MarketlakeError(f"{path}: cannot read it: no such file") from None
    except IsADirectoryError:
        raise MarketlakeError(f"{path}: cannot read it: it is a directory, not a file") from None
    except OSError as exc:
        raise MarketlakeError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if data[:2] == b"\x1f\x8b" or data[:4] == b"PK\x03\x04":
        raise MarketlakeError(f"{path}: cannot read it: it is compressed (gzip or zip); unpack it first")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MarketlakeError(
            f"{path}: cannot read it: not UTF-8 text (byte {exc.start}); is it a spreadsheet or binary file?"
        ) from None
    if "\x00" in text:
        raise MarketlakeError(f"{path}: cannot read it: it holds NUL bytes, not CSV text")
    return data, text


def _file_name(path: Path) -> str:
    """The file's name as a safe path segment of the raw cache (other characters become `_`)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", path.name)[:200].lstrip(".")
    return name or "file.csv"


def _zone(tz: str | None) -> ZoneInfo | None:
    if tz is None:
        return None
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise MarketlakeError(f"--tz {tz!r} is not a known time zone (e.g. America/New_York, UTC)") from None


def run(
    ctx: RunContext,
    path: Path,
    symbol: str,
    interval: str,
    tz: str | None = None,
    source: str = DEFAULT_SOURCE,
    *,
    asset_class: str | None = None,
    now: dt.datetime | None = None,
    date_order: str | None = None,
    replace: bool = False,
    allow_price_mismatch: bool = False,
    daily_stamps: str | None = None,
) -> IngestSummary:
    """Import one OHLCV file for `symbol` at `interval` into `bars` (source `source`), quarantining bad rows.

    `tz` is the zone of stamps written without an offset (needed for intraday files of local times);
    `asset_class` is 'stock', 'etf' or 'crypto' (default: 'etf' for the known ETFs and the `etfs` setting,
    'stock' otherwise); `now` fixes the clock (a bar not finished by then is refused); `date_order` says
    how slash dates are written, 'mdy' or 'dmy' (default: M/D/YYYY, a file that looks day-first refused;
    with 'dmy', a file that looks month-first refused);
    `daily_stamps` 'utc-date' reads a daily stamp that is an instant on its UTC date (Tiingo's 00:00:00Z);
    `replace` lets a file of an earlier file's name remove that file's bars outside its own span
    (`_removed_bars`). Raises MarketlakeError, naming the file, for a file it cannot read or that would remove
    an earlier export's bars; row problems are in the summary."""
    path = Path(path)
    validate_symbol(symbol)
    if symbol != symbol.upper():  # as Binance and Polygon say: `spy` would be a symbol of its own beside SPY
        raise MarketlakeError(
            f"--symbol {symbol!r}: symbols are upper case: {symbol.upper()}? (nothing was stored)"
        )
    interval_delta(interval)  # an unknown interval is refused before any work
    validate_partition_value("source", source)
    if source == SCHEMA_ANCHOR or TMP_MARK in source:
        raise MarketlakeError(
            f"--source {source!r}: a name the lake keeps for itself (its schema anchors, its temporary "
            "files); use another name (default csv)"
        )
    if source.lower() in VENDOR_SOURCES:
        raise MarketlakeError(
            f"--source {source!r} is a vendor's name: a CSV import would then rank as that vendor's data; "
            "use another name (default csv)"
        )
    klass = asset_class or us_asset_class(symbol, ctx.settings.etfs)
    if klass not in ASSET_CLASSES:
        raise MarketlakeError(f"--asset-class {klass!r} is not one of {', '.join(ASSET_CLASSES)}")
    if date_order is not None and date_order not in DATE_ORDERS:
        raise MarketlakeError(f"--date-order {date_order!r} is not one of {', '.join(DATE_ORDERS)}")
    if daily_stamps is not None and daily_stamps not in DAILY_STAMPS:
        raise MarketlakeError(f"--daily-stamps {daily_stamps!r} is not one of {', '.join(DAILY_STAMPS)}")
    if daily_stamps is not None and interval_delta(interval) < dt.timedelta(days=1):
        raise MarketlakeError(
            f"--daily-stamps {daily_stamps} with --interval {interval}: it says how a daily file's stamps are "
            "read; an intraday bar's stamp is its open (drop --daily-stamps); nothing was stored"
        )
    zone = _zone(tz)
    now = now or dt.datetime.now(dt.UTC)
    data, text = _read_text(path)
    relpath = f"{symbol}/{interval}/{_file_name(path)}"
    source_file = f"{source}:{relpath}"
    # csv_checks: skip unchanged files (every option that changes how the file is read)
    options = {"tz": tz, "asset_class": klass, "date_order": date_order, "daily_stamps": daily_stamps}
    skipped = csv_checks.unchanged(
        ctx,
        path,
        data,
        relpath,
        symbol=symbol,
        interval=interval,
        source=source,
        source_file=source_file,
        options=options,
    )
    if skipped is not None:
        return skipped
    parsed = parse_csv(
        text,
        where=str(path),
        symbol=symbol,
        interval=interval,
        asset_class=klass,
        tz=zone,
        source_file=source_file,
        now=now,
        date_order=date_order,
        utc_date=daily_stamps == "utc-date",
    )
    # after reading: a minute file given as 1d with its --tz is told its interval (check_cadence) first
    if zone is not None and interval_delta(interval) >= dt.timedelta(days=1):
        raise MarketlakeError(
            f"{path}: --tz {tz} with --interval {interval} for {symbol}: --tz is the zone of an intraday file's times; a daily "
            "row's date as written is its day, whatever the zone (a stock's or ETF's is that XNYS session, a "
            "crypto day runs 00:00 to 00:00 UTC): drop --tz (a crypto file of days that end at another "
            "zone's midnight cannot be imported as 1d); nothing was stored"
        )
    summary = IngestSummary(source)
    s = summary.of(symbol)
    layout = parsed.layout
    assert layout is not None
    if layout.adjusted:
        summary.notes.append(
            f"{path.name}: {', '.join(layout.adjusted)} ignored: bars keep Open/High/Low/Close as written "
            "(an adjusted close is not a price that traded; a file that has one, like Yahoo's export, usually "
            "has split-adjusted Open/High/Low/Close too: before a split they are not the prices that traded)"
        )
    if layout.ignored:
        summary.notes.append(f"{path.name}: columns not used: {', '.join(layout.ignored)}")
    if parsed.other_tickers and layout.ticker is not None:
        others = parsed.other_tickers
        few = ", ".join(v or "(empty)" for v, _ in others.most_common(5)) + (", …" if len(others) > 5 else "")
        summary.notes.append(
            f"{path.name}: {sum(others.values())} rows of {len(others)} other "
            f"ticker{'' if len(others) == 1 else 's'} in its {layout.ticker_name} column left out ({few}): "
            f"only the rows of {symbol} were read"
        )
    if parsed.identical_copies:
        summary.notes.append(
            f"{path.name}: {parsed.identical_copies} row{'s' if parsed.identical_copies > 1 else ''} repeat an "
            "earlier row exactly (the same time and values): each such bar landed once"
        )
    if parsed.cut_short is not None:
        summary.notes.append(
            f"{path.name}: line {parsed.cut_short} has no line ending: the file looks cut short; that line "
            "went to bars_rejected and the other rows landed (if the line is whole, end the file with a "
            "newline and import it again)"
        )
    checked = csv_checks.before_landing(
        ctx,
        path,
        parsed.bars,
        parsed.rejected,
        summary,
        symbol=symbol,
        interval=interval,
        source=source,
        source_file=source_file,
        asset_class=klass,
        tz=tz,
        allow_price_mismatch=allow_price_mismatch,
        asset_class_given=asset_class is not None,
    )

    by_period: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bar in parsed.bars:
        by_period[bar_period(interval, bar["ts"])].append(bar)
    anchors = [b["ts"] for b in parsed.bars] or [r["ts"] for r in parsed.rejected if r["ts"] is not None]
    fallback = bar_period(interval, min(anchors) if anchors else dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    rejected_by_period: dict[str, list[dict[str, Any]]] = defaultdict(list)
    last = fallback
    for r in parsed.rejected:  # in line order: a row with no readable time goes with the bar before it
        last = bar_period(interval, r["ts"]) if r["ts"] is not None else last
        rejected_by_period[last].append(r)

    cache = RawCache(ctx.paths, source)
    digest = _sha256(data)
    previous = cache.get(relpath)
    before = previous.meta if previous is not None else {}
    if previous is None or previous.sha256 != digest:
        removed = _removed_bars(
            ctx,
            parsed,
            path=path,
            symbol=symbol,
            interval=interval,
            source=source,
            source_file=source_file,
            periods=set(by_period) | set(before.get("periods", [])),
            replace=replace,
        )
        if removed:
            summary.notes.append(removed)
    the_input = {"file": source_file, "sha256": digest}
    changed, added = False, 0
    with land(ctx.root) as w:
        if previous is None or previous.sha256 != digest:
            csv_checks.keep_raw(
                cache,
                relpath,
                data,
                source=str(path.name),
                periods=sorted(by_period),
                rejected_periods=sorted(rejected_by_period),
            )
        # periods the previous version of this file wrote: its rows there are replaced (removed) too
        for period in sorted(set(by_period) | set(before.get("periods", []))):
            part = {"source": source, "interval": interval, "symbol": symbol, "period": period}
            table = dataset_table(BARS, by_period.get(period, []), {"asset_class": klass})
            result = replace_file_rows_result(w, BARS, part, source_file, table, the_input)
            changed |= result is not None and result.changed
            added += result.rows_added if result is not None else 0
        for period in sorted(set(rejected_by_period) | set(before.get("rejected_periods", []))):
            changed |= replace_file_rows(
                w,
                BARS_REJECTED,
                {"source": source, "period": period},
                source_file,
                dataset_table(BARS_REJECTED, rejected_by_period.get(period, []), {}),
                the_input,
                only_symbols={symbol},
            )
    checked.record(
        ctx,
        relpath,
        source=source,
        source_file=source_file,
        interval=interval,
        options=options,
        periods={p: len(b) for p, b in by_period.items()},
        rejected=len(parsed.rejected),
        sha256=digest,
    )
    s.rows_landed += added  # new to the lake (a re-import of the same file adds none)
    s.rows_rejected += len(parsed.rejected)
    if changed:
        s.files_done += 1
    else:
        s.files_skipped += 1
    if not parsed.bars:
        summary.fail(
            f"{path}: no row landed ({len(parsed.rejected)} rejected; see bars_rejected)"
            if parsed.rejected
            else f"{path}: no rows after the header",
            symbol,
        )
    if changed:
        what = f"{len(parsed.bars)} bars, {len(parsed.rejected)} rejected, stored as {klass}"
    else:  # (the summary's table: landed 0, the file skipped)
        what = f"{len(parsed.bars)} bars read, already in the lake as {klass}: nothing landed or changed" + (
            f" ({len(parsed.rejected)} rows rejected, as before)" if parsed.rejected else ""
        )
    ctx.say(f"{source} {interval} {symbol} {path.name}: {what}")
    for r in parsed.rejected[:5]:
        ctx.say(f"  line {r['line_number']}: {r['reason']}")
    if len(parsed.rejected) > 5:
        ctx.say(f"  … and {len(parsed.rejected) - 5} more: see the bars_rejected view")
    return summary


def _dates(stamps: list[dt.datetime]) -> str:
    """Sorted stamps as their UTC dates: `2024-08-01 to 2024-08-15`, or one date."""
    first, last = (s.astimezone(dt.UTC).date() for s in (stamps[0], stamps[-1]))
    return str(first) if first == last else f"{first} to {last}"


def _removed_bars(
    ctx: RunContext,
    parsed: Parsed,
    *,
    path: Path,
    symbol: str,
    interval: str,
    source: str,
    source_file: str,
    periods: set[str],
    replace: bool,
) -> str | None:
    """What this file would remove of the bars an earlier file of the same name landed (the rows of
    `source_file` in `periods`, which the landing replaces): None when it removes none, else a note saying
    how many and which dates. Raises MarketlakeError, before anything is written, when it would remove ANY
    bar the earlier file landed outside this file's own span (its first to last bar it lands; a rejected
    row does not widen it): only removals inside its span are a correction. Brokers name every export alike
    (`export.csv`): a second export of other dates, or a narrower one (a quarter's export after the year's),
    would otherwise silently remove the first's bars and overwrite its raw copy. `replace` (`--replace`)
    removes them on purpose."""
    old_bars: list[dt.datetime] = []
    for period in sorted(periods):
        part = {"source": source, "interval": interval, "symbol": symbol, "period": period}
        directory = partition_dir(ctx.paths, BARS, part)
        target = directory / "data.parquet"
        if not (target.exists() and partition_intact(directory)):
            continue
        table = read_partition(target, BARS)
        mine = pc.fill_null(pc.equal(table.column("source_file"), source_file), False)
        old_bars += [t for t in table.filter(mine).column("ts").to_pylist() if t is not None]
    new_bars = {b["ts"] for b in parsed.bars}
    gone = sorted(t for t in old_bars if t not in new_bars)
    if not gone:
        return None
    new_times = sorted(new_bars)  # a rejected row does not widen it: one dated years away would let it all go
    span = (new_times[0], new_times[-1]) if new_times else None
    outside = [t for t in gone if span is None or not span[0] <= t <= span[1]]
    if outside and not replace:
        before = [t for t in outside if span is None or t < span[0]]
        after = [t for t in outside if span is not None and t > span[1]]
        where = " and ".join(_dates(part) for part in (before, after) if part)
        raise MarketlakeError(
            f"{path}: an earlier file named {path.name!r} landed {symbol} {interval} bars (source {source}); "
            f"importing this one under the same name would remove {len(outside)} of them, dated {where}, "
            "outside this file's span ("
            + (_dates(new_times) if new_times else "no rows")
            + "); nothing was stored. If it is a different export, rename the file (e.g. with its dates) and "
            "import it again; if it is a correction that drops those bars on purpose, pass --replace"
        )
    return (
        f"{path.name}: this version of the file removes {len(gone)} {symbol} {interval} bars its earlier "
        f"version landed ({_dates(gone)}); bar_revisions keeps their values"
    )


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()

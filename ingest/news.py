"""News: the latest Yahoo items per symbol, and headline archives from a file; VADER sentiment.

Every article lands in the NEWS dataset (one partition per symbol, key `id`, the first-seen row kept),
scored once, at ingest, with the VADER compound of its title and summary. Yahoo serves only the newest
items, so each run keeps what it saw: an id already in the lake is never rewritten (its first
`ingested_at`, title and score stay), and a title that came back changed is counted in the summary.

A symbol with no bars in the lake is not an error: its articles are stored (news may be collected before
prices) and the summary carries a note naming the symbol, since such articles join no bar until its
prices land (and a misspelt symbol shows up there).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
from rich.table import Table
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ingest.common import IngestSummary, RawCache, RunContext, progress_bar
from ingest.ratelimit import YAHOO_LIMITER, RateLimiter
from ingest.sentiment import score
from ingest.sessions import land
from ingest.yahoo import Unreachable, require_reachable, yahoo_symbol
from lake.context import plain
from lake.errors import InvalidName, MarketlakeError
from lake.paths import LakePaths, validate_symbol
from lake.schemas import NEWS, UTC_TS
from lake.writer import DATA_FILE, LakeWriter, partition_dir, read_partition

SOURCE_YAHOO = "yahoo"
SOURCE_FILE = "file"
YAHOO_NEWS_COUNT = 10
"""Items asked of Yahoo per symbol (yfinance's default; Yahoo serves about this many)."""
RATE_LIMIT_ATTEMPTS = 4
RATE_LIMIT_WAIT_SECONDS = 5.0
"""First back-off after a Yahoo rate-limit error; doubles on each further attempt (capped at 2 minutes)."""
MAX_LISTED_ERRORS = 50
"""Bad lines listed one by one in a summary; the rest are counted."""
# Epoch seconds from Yahoo must fall in this range; anything else (milliseconds, garbage) is refused.
_EPOCH_MIN = int(dt.datetime(1990, 1, 1, tzinfo=dt.UTC).timestamp())
_EPOCH_MAX = int(dt.datetime(2100, 1, 1, tzinfo=dt.UTC).timestamp())


class BadRecord(ValueError):
    """One article (a Yahoo item or a line of a file) that cannot land; the message says why."""


@dataclass(frozen=True)
class Article:
    symbol: str
    id: str
    published_at: dt.datetime
    title: str
    summary: str | None
    publisher: str | None
    url: str | None
    source: str


@dataclass
class NewsSummary(IngestSummary):
    """The ingest summary, plus what deduplication saw per symbol.

    `rows_landed` counts articles new to the lake; `duplicates` articles whose id was already known (in
    the lake or earlier in the same input); `title_changes` those among them that came with a different
    title (the first-seen title is kept)."""

    seen: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    title_changes: dict[str, int] = field(default_factory=dict)

    def table(self) -> Table:
        t = Table(title=f"{self.source}: ingest summary")
        for col in ("symbol", "articles seen", "new", "already known", "title changed", "rejected", "failed"):
            t.add_column(col, justify="left" if col == "symbol" else "right")
        for sym, s in sorted(self.symbols.items()):
            t.add_row(
                plain(sym),
                str(self.seen.get(sym, 0)),
                str(s.rows_landed),
                str(self.duplicates.get(sym, 0)),
                str(self.title_changes.get(sym, 0)),
                str(s.rows_rejected),
                str(s.files_failed),
            )
        return t

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["seen"] = dict(sorted(self.seen.items()))
        d["duplicates"] = dict(sorted(self.duplicates.items()))
        d["title_changes"] = dict(sorted(self.title_changes.items()))
        return d

    def reject(self, message: str, symbol: str | None) -> None:
        """A bad article: counted for its symbol (when known), listed up to MAX_LISTED_ERRORS."""
        if symbol is not None:
            self.of(symbol).rows_rejected += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(message)
        elif len(self.errors) == MAX_LISTED_ERRORS:
            self.errors.append("… further bad articles are counted in the summary table, not listed")


# --- small parsers ------------------------------------------------------------------------------------


def _text(value: Any, name: str, *, required: bool = False) -> str | None:
    """A string field: stripped, empty means absent; anything but a string (or null) is refused."""
    if value is None:
        if required:
            raise BadRecord(f"no {name}")
        return None
    if not isinstance(value, str):
        raise BadRecord(f"{name} is a {type(value).__name__}, not a string: {value!r}")
    value = value.strip()
    if not value:
        if required:
            raise BadRecord(f"no {name} ({name} is empty)")
        return None
    return value


def _required(value: Any, name: str) -> str:
    text = _text(value, name, required=True)
    if text is None:  # _text raises first; this keeps the type checker informed
        raise BadRecord(f"no {name}")
    return text


@dataclass(frozen=True)
class AssumedTime:
    """--assume-time HH:MM --tz ZONE: the local time given to date-only timestamps."""

    time: dt.time
    zone: ZoneInfo

    @classmethod
    def parse(cls, assume_time: str | None, tz: str | None) -> AssumedTime | None:
        if assume_time is None and tz is None:
            return None
        if assume_time is None or tz is None:
            raise MarketlakeError(
                "--assume-time and --tz go together: give both (e.g. 16:00 America/New_York)"
            )
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", assume_time.strip())
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise MarketlakeError(f"--assume-time {assume_time!r} is not a time of day HH:MM (00:00-23:59)")
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise MarketlakeError(
                f"--tz {tz!r} is not a known time zone (e.g. America/New_York, UTC)"
            ) from None
        return cls(dt.time(int(m.group(1)), int(m.group(2))), zone)


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_timestamp(
    value: Any, assume: AssumedTime | None = None, *, name: str = "published_at"
) -> dt.datetime:
    """An ISO 8601 instant with an explicit offset or Z, as UTC. A date alone is refused unless `assume`
    gives the local time and zone to put on it; a time without offset is always refused (never guessed)."""
    text = _text(value, name)
    if text is None:
        raise BadRecord(f"no timestamp ({name} is missing or empty)")
    if _DATE_ONLY.fullmatch(text):
        if assume is None:
            raise BadRecord(
                f"{name} {text!r} is a date without a time: give --assume-time HH:MM and --tz ZONE "
                "to import date-only values"
            )
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise BadRecord(f"{name} {text!r} is not a valid date") from None
        return dt.datetime.combine(day, assume.time, tzinfo=assume.zone).astimezone(dt.UTC)
    try:
        ts = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRecord(f"{name} {text!r} is not an ISO 8601 timestamp (e.g. 2024-01-02T14:30:00Z)") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise BadRecord(
            f"{name} {text!r} has no UTC offset: write it with an explicit offset (+00:00, -05:00) or Z"
        )
    return ts.astimezone(dt.UTC)


def derived_id(symbol: str, published_at: dt.datetime, title: str) -> str:
    """A deterministic id for an article that has none: sha256 of symbol, UTC instant and title."""
    key = f"{symbol}\n{published_at.astimezone(dt.UTC).isoformat()}\n{title}"
    return "sha256-" + hashlib.sha256(key.encode()).hexdigest()


# --- Yahoo --------------------------------------------------------------------------------------------


def parse_yahoo_item(item: Any, symbol: str) -> Article:
    """One Yahoo news item, in either shape Yahoo has served (FORMATS.md):

    - old: {uuid, title, publisher, link, providerPublishTime (epoch seconds), type, relatedTickers}
    - new: {id, content: {title, summary, pubDate (ISO, Z), provider: {displayName}, canonicalUrl: {url}}}
    """
    if not isinstance(item, Mapping):
        raise BadRecord(f"not an object: {type(item).__name__}")
    content = item.get("content")
    if isinstance(content, Mapping):
        article_id = _text(item.get("id"), "id") or _text(content.get("id"), "id")
        if article_id is None:
            raise BadRecord("no id")
        title = _required(content.get("title"), "title")
        published = parse_timestamp(content.get("pubDate"), name="pubDate")
        provider = content.get("provider")
        publisher = (
            _text(provider.get("displayName"), "provider.displayName")
            if isinstance(provider, Mapping)
            else None
        )
        canonical = content.get("canonicalUrl")
        click = content.get("clickThroughUrl")
        url = None
        for link in (canonical, click):
            if isinstance(link, Mapping) and url is None:
                url = _text(link.get("url"), "url")
        return Article(
            symbol=symbol,
            id=article_id,
            published_at=published,
            title=title,
            summary=_text(content.get("summary"), "summary"),
            publisher=publisher,
            url=url,
            source=SOURCE_YAHOO,
        )
    if "uuid" in item or "providerPublishTime" in item:
        article_id = _text(item.get("uuid"), "uuid")
        if article_id is None:
            raise BadRecord("no uuid")
        title = _required(item.get("title"), "title")
        when = item.get("providerPublishTime")
        if when is None:
            raise BadRecord("no timestamp (providerPublishTime is missing)")
        if isinstance(when, bool) or not isinstance(when, int):
            raise BadRecord(f"providerPublishTime {when!r} is not whole epoch seconds")
        if not _EPOCH_MIN <= when < _EPOCH_MAX:
            raise BadRecord(f"providerPublishTime {when!r} is not epoch seconds between 1990 and 2100")
        return Article(
            symbol=symbol,
            id=article_id,
            published_at=dt.datetime.fromtimestamp(when, tz=dt.UTC),
            title=title,
            summary=_text(item.get("summary"), "summary"),
            publisher=_text(item.get("publisher"), "publisher"),
            url=_text(item.get("link"), "link"),
            source=SOURCE_YAHOO,
        )
    raise BadRecord(f"unknown item shape (keys: {', '.join(sorted(map(str, item))) or 'none'})")


class _ErrorLog(logging.Handler):
    """Collects yfinance's ERROR records: it logs (and swallows) a faulty response instead of raising."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


NEWS_PATH = "/xhr/ncp"
NEWS_QUERY = "queryRef=latestNews&serviceKey=ncp_fin"
"""Yahoo's news endpoint, as yfinance's `Ticker.get_news(tab="news")` asks it (yfinance/base.py)."""


class NewsAnswerError(MarketlakeError):
    """Yahoo's news endpoint answered, but not with a news stream: an error status, a body that is not
    JSON, or JSON without `data.tickerStream.stream` (yfinance's `get_news` reads all of these as no
    news). The message says which."""


def _why(body: bytes) -> str:
    """Yahoo's own reason in an error body (`finance.error.description` or `code`), else its first 200
    characters."""
    try:
        err = json.loads(body)["finance"]["error"]
        why = err.get("description") or err.get("code")
        if isinstance(why, str) and why.strip():
            return why.strip()
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    text = " ".join(body[:200].decode("utf-8", "replace").split())
    return text or "an empty body"


def news_stream(status: int, body: bytes) -> list[Any]:
    """The items of one answer of Yahoo's news endpoint, its ads dropped (as yfinance drops them), or a
    NewsAnswerError: a status other than 2xx, a body that is not JSON, or JSON without a list at
    `data.tickerStream.stream`. A well-formed empty stream is no news (an empty list)."""
    if not 200 <= status < 300:
        raise NewsAnswerError(f"Yahoo answered HTTP {status}: {_why(body)}")
    if b"Will be right back" in body:
        raise NewsAnswerError("Yahoo Finance is down (its 'Will be right back' page)")
    try:
        payload = json.loads(body)
    except ValueError:
        raise NewsAnswerError(f"a faulty response, not JSON: {_why(body)}") from None
    node: Any = payload
    path: list[str] = []
    for key in ("data", "tickerStream", "stream"):
        if not isinstance(node, Mapping) or key not in node:
            where = ".".join(path) or "the answer"
            has = ", ".join(sorted(map(str, node))) if isinstance(node, Mapping) else type(node).__name__
            raise NewsAnswerError(
                f"a faulty response: {where} has no {key!r} (it has: {has or 'nothing'}); "
                "not the news stream Yahoo serves"
            )
        node = node[key]
        path.append(key)
    if not isinstance(node, list):
        raise NewsAnswerError(
            f"a faulty response: data.tickerStream.stream is a {type(node).__name__}, not a list"
        )
    return [item for item in node if not (isinstance(item, Mapping) and item.get("ad"))]


def fetch_yahoo_news(
    symbol: str,
    session: Any = None,
    *,
    limiter: RateLimiter = YAHOO_LIMITER,
    count: int = YAHOO_NEWS_COUNT,
) -> list[Any]:
    """The raw news items Yahoo serves for `symbol`, through yfinance's HTTP layer (`YfData`: cookie,
    crumb, rate-limit error; `session`: a requests or curl_cffi session, None for yfinance's own), asked
    as `Ticker.get_news` asks. Rate-limited; a rate-limit error is retried with back-off. Yahoo is asked
    for its own spelling (BRK-B for the lake's BRK.B, as the price ingest asks).

    The answer is read here, not by `get_news`, which turns an error status or a body without the news
    stream into no news: those raise NewsAnswerError (`news_stream`)."""
    from yfinance.const import _ROOT_URL_
    from yfinance.data import YfData
    from yfinance.exceptions import YFRateLimitError

    if session is None:  # yfinance's own session: the real network, checked before the first request
        require_reachable()
    url = f"{_ROOT_URL_}{NEWS_PATH}?{NEWS_QUERY}"
    ask = {"serviceConfig": {"snippetCount": count, "s": [yahoo_symbol(symbol)]}}

    def once() -> list[Any]:
        limiter.acquire()
        handler = _ErrorLog()
        yf_log = logging.getLogger("yfinance")
        yf_log.addHandler(handler)
        try:
            data = YfData(session=session) if session is not None else YfData()
            resp = data.post(url, body=ask)
        finally:
            yf_log.removeHandler(handler)
        if handler.messages:
            raise MarketlakeError("; ".join(handler.messages))
        if resp is None:
            raise NewsAnswerError("no answer from Yahoo")
        return news_stream(int(resp.status_code), bytes(resp.content))

    retrying = Retrying(
        retry=retry_if_exception_type(YFRateLimitError),
        stop=stop_after_attempt(RATE_LIMIT_ATTEMPTS),
        wait=wait_exponential(multiplier=RATE_LIMIT_WAIT_SECONDS, max=120),
        reraise=True,
    )
    result: list[Any] = retrying(once)
    return result


def yahoo_session() -> Any:
    """The session handed to yfinance: None lets yfinance build its own (tests replace this)."""
    return None


def _take(
    symbol: str,
    items: list[Any],
    summary: NewsSummary,
    stamps: dict[str, dt.datetime],
    raws: dict[str, bytes],
    now: dt.datetime | None,
) -> list[Article]:
    """One symbol's answer: stamped when it arrived, kept as served, parsed (a bad item is rejected)."""
    stamps[symbol] = _now(now)
    summary.of(symbol).files_done += 1
    raws[symbol] = json.dumps(items, sort_keys=True, ensure_ascii=False, default=str).encode()
    articles: list[Article] = []
    for i, item in enumerate(items, start=1):
        try:
            articles.append(parse_yahoo_item(item, symbol))
        except BadRecord as exc:
            summary.reject(f"{symbol}: Yahoo news item {i}: {exc}", symbol)
    return articles


def run(
    ctx: RunContext,
    symbols: list[str],
    *,
    session: Any = None,
    now: dt.datetime | None = None,
    limiter: RateLimiter = YAHOO_LIMITER,
) -> NewsSummary:
    """Fetch the latest Yahoo news of each symbol, score the new articles, and merge them into the lake."""
    summary = NewsSummary("news")
    # ingested_at is taken per symbol once its response has arrived, never at the start of the run: an
    # article published while the run was under way must not look as if the lake knew it before it existed.
    stamps: dict[str, dt.datetime] = {}
    session = session if session is not None else yahoo_session()
    cache = RawCache(ctx.paths, "news")
    fetched: dict[str, list[Article]] = {}
    raws: dict[str, bytes] = {}
    for symbol in symbols:
        validate_symbol(symbol)
    with progress_bar(ctx, "news", len(symbols), "symbols") as step:
        for symbol in symbols:
            summary.of(symbol)
            try:
                items = fetch_yahoo_news(symbol, session, limiter=limiter)
            except Unreachable:
                raise  # offline: one line for the run, not one failure per symbol
            except Exception as exc:  # any failure of one symbol's request is reported, the others go on
                why = str(exc) if isinstance(exc, NewsAnswerError) else f"{type(exc).__name__}: {exc}"
                summary.fail(f"{symbol}: the Yahoo news request failed: {why}", symbol)
                step(False)
                continue
            step(True)
            fetched[symbol] = _take(symbol, items, summary, stamps, raws, now)

    def inputs_for(symbol: str) -> list[dict[str, Any]]:
        # The response as served is kept under raw/news/ only when it brought something new.
        stamp = stamps[symbol].strftime("%Y%m%dT%H%M%S%fZ")
        cached = cache.put(
            f"yahoo/{symbol}/{stamp}.json", raws[symbol], symbol=symbol, fetched_at=stamps[symbol].isoformat()
        )
        return [{"source": SOURCE_YAHOO, "raw": f"news/yahoo/{symbol}/{stamp}.json", "sha256": cached.sha256}]

    _land(ctx, fetched, summary, stamps.__getitem__, inputs_for)
    return summary


# --- files --------------------------------------------------------------------------------------------

REQUIRED_COLUMNS = ("symbol", "published_at", "title")
OPTIONAL_COLUMNS = ("publisher", "url", "id", "summary")


def _file_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _records(path: Path, text: str, summary: NewsSummary) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, record) for each record of a CSV or JSONL file; a malformed JSONL line or CSV row is
    reported with its line number and skipped."""
    name = path.name
    if _file_format(path, text) == "jsonl":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                summary.reject(f"{name} line {n}: not valid JSON ({exc.msg} at column {exc.colno})", None)
                continue
            if not isinstance(obj, dict):
                summary.reject(f"{name} line {n}: not a JSON object but {type(obj).__name__}", None)
                continue
            missing = [c for c in REQUIRED_COLUMNS if c not in obj]
            if missing:
                summary.reject(f"{name} line {n}: missing field(s) {', '.join(missing)}", _symbol_of(obj))
                continue
            yield n, obj
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise MarketlakeError(f"news file {path}: line 1: unreadable CSV header: {exc}") from exc
    columns = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise MarketlakeError(
            f"news file {path}: the CSV header lacks required column(s) {', '.join(missing)} "
            f"(it has: {', '.join(columns) or 'nothing'}; required: {', '.join(REQUIRED_COLUMNS)})"
        )
    if len(set(columns)) != len(columns):
        raise MarketlakeError(f"news file {path}: the CSV header repeats a column name: {', '.join(columns)}")
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        summary.notes.append(f"{name}: ignored column(s) {', '.join(unknown)}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            summary.reject(f"{name} line {reader.line_num}: unreadable CSV row: {exc}", None)
            continue
        n = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            summary.reject(
                f"{name} line {n}: {len(row)} field(s) where the header has {len(columns)}",
                _symbol_of(dict(zip(columns, row, strict=False))),
            )
            continue
        yield n, dict(zip(columns, row, strict=True))


def _symbol_of(record: Mapping[str, Any]) -> str | None:
    """The record's symbol if it is a valid one (to count a rejection against it), else None."""
    value = record.get("symbol")
    if isinstance(value, str):
        try:
            return validate_symbol(value.strip())
        except InvalidName:
            return None
    return None


def parse_file_record(record: Mapping[str, Any], assume: AssumedTime | None) -> Article:
    """One record of a headline archive: symbol, published_at, title required; publisher, url, id,
    summary optional. Without an id, a deterministic one is derived from symbol, instant and title."""
    symbol = _required(record.get("symbol"), "symbol")
    try:
        validate_symbol(symbol)
    except InvalidName as exc:
        raise BadRecord(str(exc)) from None
    title = _required(record.get("title"), "title")
    published = parse_timestamp(record.get("published_at"), assume)
    article_id = _text(record.get("id"), "id") or derived_id(symbol, published, title)
    return Article(
        symbol=symbol,
        id=article_id,
        published_at=published,
        title=title,
        summary=_text(record.get("summary"), "summary"),
        publisher=_text(record.get("publisher"), "publisher"),
        url=_text(record.get("url"), "url"),
        source=SOURCE_FILE,
    )


def run_file(
    ctx: RunContext,
    path: Path,
    assume_time: str | None,
    tz: str | None,
    *,
    now: dt.datetime | None = None,
) -> NewsSummary:
    """Import a headline archive (CSV with a header, or JSONL): good lines land, bad ones are reported
    with their line number and the reason (and make the exit status non-zero)."""
    assume = AssumedTime.parse(assume_time, tz)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MarketlakeError(f"news file {path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MarketlakeError(f"news file {path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from exc
    summary = NewsSummary("news-file")
    ingested_at = _now(now)
    by_symbol: dict[str, list[Article]] = {}
    for n, record in _records(path, text, summary):
        try:
            article = parse_file_record(record, assume)
        except BadRecord as exc:
            sym = _symbol_of(record)
            summary.reject(f"{path.name} line {n}{f' ({sym})' if sym else ''}: {exc}", sym)
            continue
        by_symbol.setdefault(article.symbol, []).append(article)
    for symbol in by_symbol:
        summary.of(symbol).files_done += 1
    if not by_symbol and not summary.errors:
        summary.notes.append(f"{path.name}: no articles in the file")
    digest = hashlib.sha256(data).hexdigest()
    inputs = [{"source": SOURCE_FILE, "file": str(path.resolve()), "sha256": digest}]
    _land(ctx, by_symbol, summary, lambda _symbol: ingested_at, lambda _symbol: inputs)
    return summary


# --- landing ------------------------------------------------------------------------------------------


def _now(now: dt.datetime | None) -> dt.datetime:
    t = now or dt.datetime.now(dt.UTC)
    if t.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return t.astimezone(dt.UTC)


def symbol_has_bars(paths: LakePaths, symbol: str) -> bool:
    """True when the lake holds bars of `symbol` from any source and interval."""
    return any(paths.dataset("bars").glob(f"source=*/interval=*/symbol={symbol}/period=*/{DATA_FILE}"))


def _existing_titles(writer: LakeWriter, symbol: str) -> dict[str, str]:
    target = partition_dir(writer.paths, NEWS, {"symbol": symbol}) / DATA_FILE
    if not target.exists():
        return {}
    table = read_partition(target, NEWS)
    return dict(zip(table.column("id").to_pylist(), table.column("title").to_pylist(), strict=True))


def news_table(articles: Sequence[Article], ingested_at: dt.datetime) -> pa.Table:
    """The NEWS-schema rows of `articles` (without the symbol: it is the partition), scored here."""
    return pa.table(
        {
            "id": [a.id for a in articles],
            "published_at": pa.array([a.published_at for a in articles], type=UTC_TS),
            "ingested_at": pa.array([ingested_at] * len(articles), type=UTC_TS),
            "title": [a.title for a in articles],
            "summary": pa.array([a.summary for a in articles], type=pa.string()),
            "publisher": pa.array([a.publisher for a in articles], type=pa.string()),
            "url": pa.array([a.url for a in articles], type=pa.string()),
            "sentiment": pa.array([score(a.title, a.summary) for a in articles], type=pa.float64()),
            "source": [a.source for a in articles],
        }
    )


def _land(
    ctx: RunContext,
    by_symbol: Mapping[str, Sequence[Article]],
    summary: NewsSummary,
    ingested_at: Callable[[str], dt.datetime],
    inputs_for: Callable[[str], Sequence[Mapping[str, Any]]],
) -> None:
    """Merge each symbol's articles into its partition: ids already known (in the lake or earlier in the
    input) are not rewritten and not re-scored; a changed title among them is counted."""
    if not by_symbol:
        return
    with land(ctx.root) as writer:  # the writer itself says, even with --quiet, when it waits
        for symbol, articles in by_symbol.items():
            known = _existing_titles(writer, symbol)
            fresh: list[Article] = []
            changed_ids: list[str] = []
            duplicates = 0
            for a in articles:
                first_title = known.get(a.id)
                if first_title is None:
                    known[a.id] = a.title
                    fresh.append(a)
                    continue
                duplicates += 1
                if first_title != a.title:
                    changed_ids.append(a.id)
            summary.seen[symbol] = summary.seen.get(symbol, 0) + len(articles)
            summary.duplicates[symbol] = summary.duplicates.get(symbol, 0) + duplicates
            summary.title_changes[symbol] = summary.title_changes.get(symbol, 0) + len(changed_ids)
            if changed_ids:
                shown = ", ".join(changed_ids[:3]) + (" …" if len(changed_ids) > 3 else "")
                summary.notes.append(
                    f"{symbol}: {len(changed_ids)} article(s) came again with a different title; "
                    f"the first-seen title is kept ({shown})"
                )
            if not symbol_has_bars(writer.paths, symbol):
                summary.notes.append(
                    f"{symbol}: no bars of {symbol} in the lake; its articles are stored but join no bar "
                    "until its prices are ingested (check the symbol if that is unexpected)"
                )
            if not fresh:
                continue
            result = writer.write(
                NEWS,
                {"symbol": symbol},
                news_table(fresh, ingested_at(symbol)),
                mode="merge",
                inputs=inputs_for(symbol),
            )
            summary.of(symbol).rows_landed += result.rows_added

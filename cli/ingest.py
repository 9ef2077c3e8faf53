"""`marketlake ingest ...`: pull prices and news into the lake."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any

import click

from cli.main import F, _ctx, cli, handle_errors
from lake.config import SOURCE_INTERVALS
from lake.errors import LakeLocked, MarketlakeError
from lake.logs import redact
from lake.paths import parse_symbols, validate_symbol

# --- ingest --------------------------------------------------------------------------------------------


def _per_source(summaries: Sequence[Any]) -> list[Any]:
    """One summary per source, in first-seen order: several of one source (the demo's four files) merged
    into one table; a source's only summary kept as it is, with its own table (news: articles seen, already
    known, title changed)."""
    from ingest.common import IngestSummary

    by_source: dict[str, list[Any]] = {}
    for s in summaries:
        by_source.setdefault(s.source, []).append(s)
    return [group[0] if len(group) == 1 else IngestSummary.merged(group)[0] for group in by_source.values()]


EXIT_BUSY = 75
"""The exit status of an ingest that another writer's lock kept from running (sysexits' EX_TEMPFAIL: try
again later), unless a source failed for another reason too (then 1)."""


def _finish(summaries: Sequence[Any], run: Any, busy: str | None = None) -> None:
    """Report what the run did: the lake and settings file used and each source's table (not with
    --quiet; none for a source that did not run: its note or error says why), then every note and error
    (always: --quiet hides progress and the tables, never what a cron job's owner must see); exit 1 when a
    source failed. `busy`: the source another writer's lock kept out (its error says so, and what was
    skipped): the feature store is not refreshed and the exit status is EXIT_BUSY (1 if another source
    failed)."""
    from lake.config import settings_source
    from lake.context import stderr_console

    out = stderr_console()
    failed = False
    run.say(f"lake: {run.root}")  # which lake (a command run from another folder makes one at ./data/lake)
    run.say(f"settings: {settings_source(run.settings)}")  # the dates, sources and ETFs it read
    for s in _per_source(summaries):
        if not run.quiet and s.symbols:  # a source that did not run (skipped, or failed first): no table
            out.print(s.table())
        _say_problems(s)
        failed = failed or (not s.ok and s.source != busy)
    if busy is not None:
        # another writer held the lake: the sources after it and the store's refresh were not tried (each
        # would have waited as long again); a failure of their own still makes the exit status 1
        sys.exit(1 if failed else EXIT_BUSY)
    refresh_error = _refresh_store(run)
    if failed:
        sys.exit(1)
    if refresh_error is not None and _strict():
        sys.exit(EXIT_BUSY if isinstance(refresh_error, LakeLocked) else 1)


def _strict() -> bool:
    """`ingest --strict` (given to the group, before any subcommand)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(dict) if ctx is not None else None
    return bool(obj and obj.get("ingest_strict"))


def _busy_exits(fn: F) -> F:
    """One source's command (`ingest binance …`) kept out by another writer's lock: its error, and the exit
    status EXIT_BUSY (as `marketlake ingest`'s), not 1: a cron job can tell "try again later"."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LakeLocked as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            sys.exit(EXIT_BUSY)

    return wrapper  # type: ignore[return-value]


def _say_problems(s: Any) -> None:
    """A source's notes and errors (always: --quiet hides progress and tables, never these)."""
    for note in s.notes:
        click.echo(f"note: {redact(note)}", err=True)
    for e in s.errors:
        click.echo(f"error: {s.source}: {redact(e)}", err=True)


def _refresh_store(run: Any) -> MarketlakeError | None:
    """Bring the feature store up to date with what just landed (only the pairs whose inputs changed).
    The store is derived data: a failure here is a warning that names the cause (the ingested data is in
    the lake either way; `marketlake features refresh` retries and fails loudly), returned for `ingest
    --strict`, which then exits non-zero."""
    from features import store

    try:
        result = store.refresh(run.root, run.settings, run.say)
    except MarketlakeError as exc:
        first, *rest = redact(str(exc)).splitlines() or [""]  # (then any damaged files and their repair)
        click.echo(
            f"warning: feature store not refreshed: {first} (run `marketlake features refresh`)",
            err=True,
        )
        for line in rest:
            click.echo(line, err=True)
        return exc
    if result.built or result.removed:
        run.say(store.describe(result))
    return None


def _range(run: Any, start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    from ingest.common import parse_day

    s0, e0 = run.settings.date_range()
    s = parse_day(start, "--start") if start else s0
    e = parse_day(end, "--end") if end else e0
    if s > e:
        raise MarketlakeError(f"--start {s} is after --end {e}")
    return s, e


@cli.group(invoke_without_command=True)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit non-zero when the feature store's refresh after the landing fails (1; 75 when another "
    "writer held the lake), not only warn (the data landed either way). Before a subcommand: "
    "`ingest --strict binance …`.",
)
@click.pass_context
@handle_errors
def ingest(ctx: click.Context, strict: bool) -> None:
    """Pull prices and news into the lake (with no subcommand: every source in marketlake.toml, over its
    [data] range: start/end, or the data_days days ending yesterday, UTC).

    \b
    Example:
      marketlake ingest
      marketlake ingest binance --symbols BTCUSDT --start 2024-01-01 --end 2024-01-31
    """
    ctx.ensure_object(dict)["ingest_strict"] = strict
    if ctx.invoked_subcommand is not None:
        return
    from ingest import binance, news, polygon, yahoo

    run = _ctx(ctx)
    st = run.settings
    start, end = st.date_range()
    from ingest.common import IngestSummary

    summaries: list[IngestSummary] = []

    def each(source: str, go: Callable[[], IngestSummary]) -> None:
        # one source's error is recorded as its summary's failure: the other sources still run and print
        try:
            summaries.append(go())
        except (yahoo.Unreachable, LakeLocked):
            raise  # Unreachable: said once for both Yahoo sources; LakeLocked: the rest skipped (below)
        except MarketlakeError as exc:
            failed = IngestSummary(source)
            failed.fail(str(exc).removeprefix(f"{source}: "))
            summaries.append(failed)

    def go_binance() -> IngestSummary:
        return binance.run(run, st.binance.symbols, st.binance.interval, start, end)

    def go_polygon() -> IngestSummary:
        # configured without keys: skipped with a note, shown even with --quiet (DESIGN: with no keys at all
        # `make ingest` still works, Binance needs none); `marketlake ingest polygon` fails without them
        from ingest import s3

        try:
            return polygon.run(run, st.polygon.symbols, st.polygon.interval, start, end)
        except s3.MissingKeys as exc:
            from lake.config import settings_source

            skipped = IngestSummary("polygon")
            skipped.notes.append(
                f"{exc}; skipped (to leave Polygon out: symbols = [] under [polygon] in "
                f"{settings_source(st)}; `marketlake ingest polygon` fails without them)"
            )
            return skipped

    planned: list[tuple[str, Callable[[], IngestSummary]]] = [
        (name, go)
        for name, cfg, go in (
            ("binance", st.binance, go_binance),
            ("polygon", st.polygon, go_polygon),
            ("yahoo", st.yahoo, lambda: yahoo.run(run, st.yahoo.symbols, st.yahoo.interval, start, end)),
            ("news", st.news, lambda: news.run(run, st.news.symbols)),
        )
        if cfg.symbols
    ]
    offline = False
    busy: str | None = None
    try:
        for i, (name, go) in enumerate(planned):
            if offline and name in ("yahoo", "news"):
                continue
            try:
                each(name, go)
            except yahoo.Unreachable as exc:  # one line for the host, for both Yahoo sources
                if name not in ("yahoo", "news"):
                    raise
                offline = True
                both = [n for n, _ in planned if n in ("yahoo", "news")]
                failed = IngestSummary(" and ".join(both))
                failed.fail(f"{exc}; skipped")
                summaries.append(failed)
            except LakeLocked as exc:
                # another writer holds the lake (it waited the lock's whole wait): every later source, and
                # the store's refresh, would wait as long again for nothing; one line says what was skipped
                busy = name
                rest = [n for n, _ in planned[i + 1 :] if not (offline and n in ("yahoo", "news"))]
                failed = IngestSummary(name)
                failed.fail(f"{exc}; skipped: {', '.join([*rest, 'feature store refresh'])}")
                summaries.append(failed)
                break
    except BaseException:
        # stopped (Ctrl-C, SIGTERM) or failed in a later source: the earlier sources' notes and errors are
        # said before the stop's own line (and its exit status), not lost with the summary never printed
        for s in _per_source(summaries):
            _say_problems(s)
        raise
    _finish(summaries, run, busy)


def _date_options(fn: F) -> F:
    fn = click.option(
        "--end",
        default=None,
        help="Last day, inclusive (YYYY-MM-DD, UTC; default: [data] end in marketlake.toml, else yesterday).",
    )(fn)
    fn = click.option(
        "--start",
        default=None,
        help="First day, inclusive (YYYY-MM-DD, UTC; default: [data] start, else data_days (60) days "
        "before the end).",
    )(fn)
    return fn


@ingest.command("binance")
@click.option("--symbols", required=True, help="Comma separated, e.g. BTCUSDT,ETHUSDT.")
@click.option("--interval", type=click.Choice(SOURCE_INTERVALS["binance"]), default="1m", show_default=True)
@_date_options
@click.pass_context
@handle_errors
@_busy_exits
def ingest_binance(
    ctx: click.Context, symbols: str, interval: str, start: str | None, end: str | None
) -> None:
    """Binance Data Vision spot klines (no key needed).

    \b
    Example:
      marketlake ingest binance --symbols BTCUSDT,ETHUSDT --start 2024-01-01 --end 2024-01-31
    """
    from ingest import binance

    run = _ctx(ctx)
    s, e = _range(run, start, end)
    _finish([binance.run(run, parse_symbols(symbols), interval, s, e)], run)


@ingest.command("polygon")
@click.option("--symbols", "--tickers", "tickers", required=True, help="Comma separated, e.g. AAPL,MSFT.")
@click.option("--interval", type=click.Choice(SOURCE_INTERVALS["polygon"]), default="1m", show_default=True)
@_date_options
@click.pass_context
@handle_errors
@_busy_exits
def ingest_polygon(
    ctx: click.Context, tickers: str, interval: str, start: str | None, end: str | None
) -> None:
    """Polygon.io flat files over S3 (POLYGON_S3_* keys; --tickers is an alias of --symbols).

    \b
    Example:
      marketlake ingest polygon --symbols AAPL,SPY --interval 1d --start 2024-01-02 --end 2024-03-28
    """
    from ingest import polygon

    run = _ctx(ctx)
    s, e = _range(run, start, end)
    _finish([polygon.run(run, parse_symbols(tickers), interval, s, e)], run)


@ingest.command("yahoo")
@click.option("--symbols", required=True, help="Comma separated, e.g. AAPL,SPY.")
@click.option("--interval", type=click.Choice(SOURCE_INTERVALS["yahoo"]), default="1d", show_default=True)
@_date_options
@click.pass_context
@handle_errors
@_busy_exits
def ingest_yahoo(ctx: click.Context, symbols: str, interval: str, start: str | None, end: str | None) -> None:
    """Yahoo Finance prices: fills gaps, never overwrites a better source.

    \b
    Example:
      marketlake ingest yahoo --symbols AAPL,SPY --interval 1d --start 2024-01-02 --end 2024-03-28
    """
    from ingest import yahoo

    run = _ctx(ctx)
    s, e = _range(run, start, end)
    _finish([yahoo.run(run, parse_symbols(symbols), interval, s, e)], run)


@ingest.command("news")
@click.option("--symbols", required=True, help="Comma separated, e.g. AAPL,MSFT.")
@click.pass_context
@handle_errors
@_busy_exits
def ingest_news(ctx: click.Context, symbols: str) -> None:
    """The latest Yahoo news per symbol, scored and deduplicated (no date range: Yahoo serves the latest
    articles only).

    \b
    Example:
      marketlake ingest news --symbols AAPL,SPY
    """
    from ingest import news

    run = _ctx(ctx)
    _finish([news.run(run, parse_symbols(symbols))], run)


@ingest.command("news-file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--assume-time", default=None, help="HH:MM given to date-only timestamps (with --tz).")
@click.option("--tz", default=None, help="Time zone of date-only timestamps, e.g. America/New_York.")
@click.pass_context
@handle_errors
@_busy_exits
def ingest_news_file(ctx: click.Context, path: Path, assume_time: str | None, tz: str | None) -> None:
    """A headline archive (CSV or JSONL: symbol, published_at, title, …).

    \b
    Example:
      marketlake ingest news-file headlines.csv --assume-time 16:00 --tz America/New_York
    """
    from ingest import news

    run = _ctx(ctx)
    _finish([news.run_file(run, path, assume_time, tz)], run)


@ingest.command("csv")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--symbol", required=True, help="The symbol the file's bars are of, e.g. SPY.")
@click.option("--interval", type=click.Choice(["1m", "5m", "15m", "1h", "1d"]), required=True)
@click.option("--tz", default=None, help="Zone of times without an offset, e.g. America/New_York.")
@click.option("--source", default="csv", show_default=True, help="Source name stored with the bars.")
@click.option(
    "--asset-class",
    type=click.Choice(["stock", "etf", "crypto"]),
    default=None,
    help="Default: etf for known ETFs, else stock.",
)
@click.option(
    "--date-order",
    type=click.Choice(["mdy", "dmy"]),
    default=None,
    help="How slash dates are written: mdy (M/D/YYYY) or dmy (D/M/YYYY). Default: M/D/YYYY, and a file "
    "whose dates look day-first is refused; with dmy, a file whose dates look month-first is refused.",
)
@click.option(
    "--daily-stamps",
    type=click.Choice(["utc-date"]),
    default=None,
    help="Daily files only: utc-date reads a stamp that is an instant (2024-01-02T00:00:00Z, as Tiingo's) on "
    "its UTC date, the trading day. Default: such a stamp must be on its date in New York (UTC for crypto).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Let this file remove the bars an earlier file of the same name landed outside this file's dates "
    "(a correction that drops them on purpose). Without it such an import is refused: rename a different "
    "export instead.",
)
@click.option(
    "--allow-price-mismatch",
    is_flag=True,
    help="Land the file even when its closes disagree with the lake's bars of the same times (by default "
    "refused: adjusted prices beside traded ones).",
)
@click.pass_context
@handle_errors
@_busy_exits
def ingest_csv(
    ctx: click.Context,
    path: Path,
    symbol: str,
    interval: str,
    tz: str | None,
    source: str,
    asset_class: str | None,
    date_order: str | None,
    daily_stamps: str | None,
    replace: bool,
    allow_price_mismatch: bool,
) -> None:
    """Any OHLCV file (a broker export, Yahoo's CSV download): header layouts recognised in any column
    order, stamped by the vendors' rules, bad rows quarantined with a reason. Ranks below every vendor in
    `bars`.

    \b
    Example:
      marketlake ingest csv samples/yahoofinance-SPY-20080101-20180101.csv --symbol SPY --interval 1d
      marketlake ingest csv export.csv --symbol AAPL --interval 1m --tz America/New_York --source broker
    """
    from ingest import csv as csv_ingest

    run = _ctx(ctx)
    _finish(
        [
            csv_ingest.run(
                run,
                path,
                validate_symbol(symbol),
                interval,
                tz,
                source,
                asset_class=asset_class,
                date_order=date_order,
                replace=replace,
                allow_price_mismatch=allow_price_mismatch,
                daily_stamps=daily_stamps,
            )
        ],
        run,
    )

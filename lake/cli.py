"""The `marketlake` command line: a click group; `--lake PATH` is the group's option."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import duckdb

from lake.config import load_dotenv_file, load_settings
from lake.errors import MarketlakeError
from lake.logs import redact, setup_logging
from lake.paths import parse_symbols, resolve_lake_root

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = click.Choice(["table", "csv", "json"])
log = logging.getLogger("marketlake")


def _ctx(click_ctx: click.Context) -> Any:
    """The RunContext, built on first use so that `--help` never needs a valid config."""
    from ingest.common import RunContext

    obj = click_ctx.ensure_object(dict)
    if "run" not in obj:
        load_dotenv_file(obj.get("env_file", ".env"))
        settings = load_settings(obj.get("config"))
        obj["run"] = RunContext(
            root=resolve_lake_root(obj.get("lake")), settings=settings, quiet=obj["quiet"]
        )
    return obj["run"]


def handle_errors(fn: F) -> F:
    """Turn a MarketlakeError into one line on stderr and its exit code; never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MarketlakeError as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except duckdb.Error as exc:
            click.echo(
                f"error: {redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}", err=True
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def emit(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    """Print rows as a table, CSV or JSON (a list of objects)."""
    if fmt == "json":
        click.echo(
            json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=_json_default, indent=1)
        )
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_json_default(v) if isinstance(v, dt.date | dt.datetime) else v for v in r])
        click.echo(buf.getvalue(), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(show_lines=False)
        cells = [["NULL" if v is None else str(v) for v in r] for r in rows]
        for c in columns:
            t.add_column(c, no_wrap=True)
        for r in cells:
            t.add_row(*r)
        # never squeeze values into ellipses: as wide as the widest value needs
        needed = sum(max([len(c), *(len(r[i]) for r in cells)]) + 3 for i, c in enumerate(columns)) + 1
        Console(width=max(needed, shutil.get_terminal_size().columns)).print(t)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--lake",
    "lake_path",
    type=click.Path(path_type=str),
    default=None,
    help="The lake's folder (default: $LAKE_ROOT or ./data/lake).",
)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=str),
    default=None,
    help="Settings file (default: ./marketlake.toml).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option(
    "--log-level",
    default="WARNING",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.version_option(package_name="marketlake")
@click.pass_context
def cli(ctx: click.Context, lake_path: str | None, config: str | None, quiet: bool, log_level: str) -> None:
    """marketlake: real market data in a local Parquet lake, SQL features without look-ahead, PPO judged
    out of sample."""
    setup_logging(log_level)
    ctx.ensure_object(dict).update(lake=lake_path, config=config, quiet=quiet)


# --- ingest --------------------------------------------------------------------------------------------


def _finish(summaries: Sequence[Any], run: Any) -> None:
    from rich.console import Console

    out = Console(stderr=True)
    failed = False
    for s in summaries:
        if not run.quiet:
            out.print(s.table())
        for note in s.notes:
            run.say(f"note: {note}")
        for e in s.errors:
            click.echo(f"error: {s.source}: {redact(e)}", err=True)
        failed = failed or not s.ok
    if failed:
        sys.exit(1)


def _range(run: Any, start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    from ingest.common import parse_day

    s0, e0 = run.settings.date_range()
    s = parse_day(start, "--start") if start else s0
    e = parse_day(end, "--end") if end else e0
    if s > e:
        raise MarketlakeError(f"--start {s} is after --end {e}")
    return s, e


@cli.group(invoke_without_command=True)
@click.pass_context
@handle_errors
def ingest(ctx: click.Context) -> None:
    """Pull prices and news into the lake (with no subcommand: every source in marketlake.toml)."""
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
        except MarketlakeError as exc:
            failed = IngestSummary(source)
            failed.fail(str(exc).removeprefix(f"{source}: "))
            summaries.append(failed)

    if st.binance.symbols:
        each("binance", lambda: binance.run(run, st.binance.symbols, st.binance.interval, start, end))
    if st.polygon.symbols:
        if os.environ.get("POLYGON_S3_ACCESS_KEY"):
            each("polygon", lambda: polygon.run(run, st.polygon.symbols, st.polygon.interval, start, end))
        else:
            run.say("polygon: skipped, POLYGON_S3_ACCESS_KEY is not set")
    if st.yahoo.symbols:
        each("yahoo", lambda: yahoo.run(run, st.yahoo.symbols, st.yahoo.interval, start, end))
    if st.news.symbols:
        each("news", lambda: news.run(run, st.news.symbols))
    _finish(summaries, run)


def _date_options(fn: F) -> F:
    fn = click.option("--end", default=None, help="Last day, inclusive (YYYY-MM-DD, UTC).")(fn)
    fn = click.option("--start", default=None, help="First day, inclusive (YYYY-MM-DD, UTC).")(fn)
    return fn


@ingest.command("binance")
@click.option("--symbols", required=True, help="Comma separated, e.g. BTCUSDT,ETHUSDT.")
@click.option("--interval", default="1m", show_default=True)
@_date_options
@click.pass_context
@handle_errors
def ingest_binance(
    ctx: click.Context, symbols: str, interval: str, start: str | None, end: str | None
) -> None:
    """Binance Data Vision spot klines (no key needed)."""
    from ingest import binance

    run = _ctx(ctx)
    s, e = _range(run, start, end)
    _finish([binance.run(run, parse_symbols(symbols), interval, s, e)], run)


@ingest.command("polygon")
@click.option("--tickers", required=True, help="Comma separated, e.g. AAPL,MSFT.")
@click.option("--interval", type=click.Choice(["1m", "1d"]), default="1m", show_default=True)
@_date_options
@click.pass_context
@handle_errors
def ingest_polygon(
    ctx: click.Context, tickers: str, interval: str, start: str | None, end: str | None
) -> None:
    """Polygon.io flat files over S3 (POLYGON_S3_* keys)."""
    from ingest import polygon

    run = _ctx(ctx)
    s, e = _range(run, start, end)
    _finish([polygon.run(run, parse_symbols(tickers), interval, s, e)], run)


@ingest.command("yahoo")
@click.option("--symbols", required=True, help="Comma separated, e.g. AAPL,SPY.")
@click.option("--interval", type=click.Choice(["1m", "1d"]), default="1d", show_default=True)
@_date_options
@click.pass_context
@handle_errors
def ingest_yahoo(ctx: click.Context, symbols: str, interval: str, start: str | None, end: str | None) -> None:
    """Yahoo Finance prices: fills gaps, never overwrites a better source."""
    from ingest import yahoo

    run = _ctx(ctx)
    s, e = _range(run, start, end)
    _finish([yahoo.run(run, parse_symbols(symbols), interval, s, e)], run)


@ingest.command("news")
@click.option("--symbols", required=True, help="Comma separated, e.g. AAPL,MSFT.")
@click.pass_context
@handle_errors
def ingest_news(ctx: click.Context, symbols: str) -> None:
    """The latest Yahoo news per symbol, scored and deduplicated."""
    from ingest import news

    run = _ctx(ctx)
    _finish([news.run(run, parse_symbols(symbols))], run)


@ingest.command("news-file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--assume-time", default=None, help="HH:MM given to date-only timestamps (with --tz).")
@click.option("--tz", default=None, help="Time zone of date-only timestamps, e.g. America/New_York.")
@click.pass_context
@handle_errors
def ingest_news_file(ctx: click.Context, path: Path, assume_time: str | None, tz: str | None) -> None:
    """A headline archive (CSV or JSONL: symbol, published_at, title, …)."""
    from ingest import news

    run = _ctx(ctx)
    _finish([news.run_file(run, path, assume_time, tz)], run)


# --- reading -------------------------------------------------------------------------------------------


@cli.command("sql")
@click.argument("query")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.pass_context
@handle_errors
def sql_cmd(ctx: click.Context, query: str, fmt: str) -> None:
    """Run a query on the lake's views."""
    from lake.connect import connect

    run = _ctx(ctx)
    con = connect(run.root, read_only=True, settings=run.settings)
    try:
        rel = con.sql(query)
        if rel is None:
            return
        emit(rel.columns, rel.fetchall(), fmt)
    finally:
        con.close()


@cli.command("shell")
@click.pass_context
@handle_errors
def shell_cmd(ctx: click.Context) -> None:
    """The DuckDB shell on the lake, with every view ready."""
    from lake.connect import connect, write_catalog

    run = _ctx(ctx)
    try:
        connect(run.root, settings=run.settings).close()  # a new lake gets its folders and anchors
    except MarketlakeError:
        pass  # a read-only lake: the shell can still read what is there
    exe = Path(sys.executable).with_name("duckdb")
    duckdb_cli = str(exe) if exe.exists() else shutil.which("duckdb")
    if not duckdb_cli:
        raise MarketlakeError("the duckdb shell is not installed (pip install duckdb-cli, or `make install`)")
    if not run.root.is_dir():
        raise MarketlakeError(f"no lake at {run.root} (ingest something first, or pass --lake)")
    try:
        catalog = write_catalog(run.root, run.settings, run.root / "catalog.duckdb")
    except (OSError, duckdb.Error):
        catalog = write_catalog(run.root, run.settings, Path(tempfile.mkdtemp()) / "catalog.duckdb")
    cmd = [duckdb_cli, "-readonly", "-cmd", "SET TimeZone = 'UTC'", str(catalog)]
    sys.exit(subprocess.call(cmd, cwd=run.root))


@cli.command("check")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--strict", is_flag=True, help="Exit non-zero if a configured symbol is not eligible.")
@click.pass_context
@handle_errors
def check_cmd(ctx: click.Context, fmt: str, strict: bool) -> None:
    """Data-quality report per symbol (bar_quality and eligible_symbols)."""
    from features import check

    check.run(_ctx(ctx), fmt, strict)


@cli.command("verify")
@click.pass_context
@handle_errors
def verify_cmd(ctx: click.Context) -> None:
    """Check every Parquet file of the lake against its manifest's sha256."""
    from lake.writer import verify

    run = _ctx(ctx)
    problems = verify(run.root)
    for p in problems:
        click.echo(p)
    if problems:
        raise MarketlakeError(f"{len(problems)} file(s) do not match their manifest")
    click.echo("every file matches its manifest")


# --- training ------------------------------------------------------------------------------------------


@cli.command("train")
@click.option("--symbols", default=None)
@click.option("--interval", default=None)
@click.option("--iterations", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.pass_context
@handle_errors
def train_cmd(ctx: click.Context, **options: Any) -> None:
    """Train PPO on the train period and evaluate it on the unseen test period."""
    _ctx(ctx)
    from lake.errors import NotBuiltYet

    raise NotBuiltYet("train: not built yet")


@cli.command("evaluate")
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
@handle_errors
def evaluate_cmd(ctx: click.Context, run_id: str, fmt: str) -> None:
    """Evaluate a trained run on its test period, beside the baselines."""
    _ctx(ctx)
    from lake.errors import NotBuiltYet

    raise NotBuiltYet("evaluate: not built yet")


@cli.command("runs")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.pass_context
@handle_errors
def runs_cmd(ctx: click.Context, fmt: str) -> None:
    """List training and evaluation runs."""
    from lake.connect import connect

    run = _ctx(ctx)
    con = connect(run.root, read_only=True, settings=run.settings)
    try:
        rel = con.sql(
            "SELECT run_id, kind, started_at, status, data_snapshot, metrics FROM runs ORDER BY started_at"
        )
        emit(rel.columns, rel.fetchall(), fmt)
    finally:
        con.close()


@cli.command("demo")
@click.pass_context
@handle_errors
def demo_cmd(ctx: click.Context) -> None:
    """Run the whole chain offline on the real data the project ships."""
    _ctx(ctx)
    from lake.errors import NotBuiltYet

    raise NotBuiltYet("demo: not built yet")


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()

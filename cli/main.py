"""The `marketlake` command line: the click group, its options and the helpers every command shares.

The commands live beside this module, one module per family (cli/ingest.py, cli/reading.py,
cli/training.py, cli/demo.py); each registers its commands on `cli` when imported, and cli/__init__.py
imports them all. To add a command: write it in the family's module (or a new module imported by
cli/__init__.py) as `@cli.command("name")` + `@click.pass_context` + `@handle_errors`, take the run's
context with `_ctx(ctx)`, and print rows with `emit`."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import duckdb

from lake.config import load_dotenv_file, load_settings, settings_source
from lake.context import plain
from lake.errors import (
    MarketlakeError,
    Terminated,
    duckdb_message,
    is_interrupt,
    repair_advice,
    stop_signal,
    terminate_on_signals,
)
from lake.logs import redact, setup_logging
from lake.paths import require_lake, resolve_lake_root

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = click.Choice(["table", "csv", "json"])
log = logging.getLogger("marketlake")


VIEW_COMMANDS = ("sql", "shell")
"""The commands that show the views to a person: in a terminal they say on stderr which settings the views
use (`bar_quality`, eligibility, `features` and `splits` follow them, and ./marketlake.toml is read from the
working folder, so the same lake can answer differently from another folder)."""


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _ctx(click_ctx: click.Context) -> Any:
    """The RunContext, built on first use so that `--help` never needs a valid config."""
    from lake.context import RunContext

    obj = click_ctx.ensure_object(dict)
    if "run" not in obj:
        load_dotenv_file(obj.get("env_file", ".env"))
        settings = load_settings(obj.get("config"))
        obj["run"] = RunContext(
            root=resolve_lake_root(obj.get("lake")), settings=settings, quiet=obj["quiet"]
        )
        if click_ctx.command.name in VIEW_COMMANDS and not obj["quiet"] and _stderr_is_terminal():
            click.echo(
                f"settings: {settings_source(settings)} (the views follow them; another file: --config FILE)",
                err=True,
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
        except (KeyboardInterrupt, duckdb.InterruptException, RuntimeError) as exc:
            if not is_interrupt(exc):  # (a RuntimeError that is not DuckDB's Ctrl-C during a fetch)
                raise
            signum = stop_signal(exc)  # SIGTERM/SIGHUP, also when DuckDB made it its own interrupt
            if signum is not None:
                click.echo(f"terminated ({signal.Signals(signum).name})", err=True)
                sys.exit(128 + signum)
            click.echo("interrupted", err=True)
            sys.exit(130)
        except EOFError as exc:  # not a Ctrl-C (click would call it one: Abort)
            click.echo(f"error: {redact(_ended_early(exc))}", err=True)
            sys.exit(1)
        except duckdb.Error as exc:
            click.echo(f"error: {redact(duckdb_message(exc))}", err=True)
            for line in damaged_files():
                click.echo(redact(line), err=True)
            sys.exit(1)
        except BrokenPipeError as exc:
            if not _stdout_reader_gone():  # a pipe or socket of our own broke: an error like any other
                click.echo(f"error: {redact(str(exc))}", err=True)
                sys.exit(1)
            _quiet_stdout()  # the reader went away (`| head`): end quietly, as Unix tools do
            sys.exit(128 + signal.SIGPIPE)
        except OSError as exc:  # a full disk, a read-only mount, a file gone: one line naming the file
            from lake.writer import io_reason

            log.debug("I/O error", exc_info=True)
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            click.echo(f"error: {redact(where + io_reason(exc))}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _stdout_reader_gone() -> bool:
    """Whether stdout's reader has gone (Linux reports POLLERR on a pipe's write end, POLLHUP on a socket's,
    as under systemd or socat), so that a BrokenPipeError was ours to end on quietly; True too when stdout is
    no file to ask (cannot tell)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python's own flush at exit finds no closed pipe to complain of."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a real file (a test's captured output)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _ended_early(exc: EOFError) -> str:
    return f"a file or the input ended early (EOFError{': ' + str(exc) if str(exc) else ''})"


def damaged_files() -> list[str]:
    """After a failed query: the lake's files that do not match their manifest (a damaged file is the
    usual reason a query on a view fails), each named, and how to repair them; empty when all match."""
    ctx = click.get_current_context(silent=True)
    run = ctx.find_root().obj.get("run") if ctx is not None and ctx.find_root().obj else None
    if run is None or not (run.root / "datasets").is_dir():
        return []
    from lake.writer import verify

    try:
        problems = verify(run.root)
    except (OSError, ValueError):
        return []
    if not problems:
        return []
    return [*(f"damaged: {p}" for p in problems), f"to repair: {repair_advice(problems)}"]


def existing_lake(run: Any) -> Path:
    """The run's lake root, which must exist and hold a lake: reading commands never create one and never
    take a wrong path for an empty lake."""
    return require_lake(
        run.root,
        "create one with `marketlake ingest` (e.g. `marketlake ingest binance --symbols BTCUSDT`), or name "
        "yours with `marketlake --lake PATH ...` (or LAKE_ROOT); offline, `make demo` builds data/demo/lake "
        "(then e.g. `marketlake --lake data/demo/lake --config demo.toml train`)",
    )


TABLE_ROWS = 1_000  # the table format shows at most this many rows (csv and json print every row)
CHUNK_ROWS = 10_000  # rows fetched and written at a time by `marketlake sql` (bounded memory)
# DuckDB types whose Python values are never a date, a datetime, bytes, a list or a dict: their CSV cells are
# written as they are, with no conversion
_AS_IS = re.compile(
    r"(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|"
    r"DOUBLE|VARCHAR|JSON|UUID|INTERVAL|TIME|DECIMAL\(\d+,\d+\))"
)
_encode_str = json.encoder.encode_basestring_ascii


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float in it (at any depth) replaced by None: JSON has no NaN. A
    dict's key that JSON cannot take (a MAP's date, say) becomes its text as a value would."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {_json_key(k): _finite(v) for k, v in value.items()}
    return value


def _json_key(key: Any) -> Any:
    return key if key is None or isinstance(key, str | int | float | bool) else _json_default(key)


def _csv_cell(value: Any) -> Any:
    """A CSV cell: a date or time stamp in ISO 8601, a BLOB in hex, a LIST, ARRAY, STRUCT or MAP as JSON text
    (NaN and infinities in it as null, dates as ISO 8601 strings, blobs in hex), anything else as it is."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple | dict):
        return json.dumps(_finite(value), default=_json_default, ensure_ascii=False, allow_nan=False)
    return value


def _json_text(value: Any) -> Any:
    """A JSON column's value (DuckDB gives its text) as the JSON value it holds."""
    return value if value is None else json.loads(value)


def _json_value(value: Any) -> str:
    """One value of a row, as json.dumps(rows, indent=1) writes it two levels deep; NaN and infinities as
    null."""
    t = type(value)
    if value is None:
        return "null"
    if t is str:
        return _encode_str(value)
    if t is float:
        return float.__repr__(value) if math.isfinite(value) else "null"
    if t is int:
        return int.__repr__(value)
    if t is bool:
        return "true" if value else "false"
    if t is dt.datetime or t is dt.date:
        return _encode_str(value.isoformat())
    if t is decimal.Decimal:
        f = float(value)
        return float.__repr__(f) if math.isfinite(f) else "null"
    text = json.dumps(_finite(value), default=_json_default, indent=1, allow_nan=False)
    return text.replace("\n", "\n  ")


def write_rows(
    columns: Sequence[str],
    chunks: Iterable[Sequence[Sequence[Any]]],
    fmt: str,
    out: TextIO,
    types: Sequence[str] | None = None,
) -> int:
    """Write rows, given chunk by chunk, to `out` as CSV or JSON (a list of objects) and return how many;
    only one chunk is held at a time. CSV: a header line, then one line per row; a date or time stamp in
    ISO 8601 (a TIMESTAMPTZ in UTC, "+00:00"), NULL as an empty cell, a BLOB in hex, a LIST, ARRAY, STRUCT
    or MAP as JSON text (`_csv_cell`), every other value as Python's str() of DuckDB's value (a JSON column:
    its JSON text). JSON: the text `json.dumps(rows, indent=1)` would give, with a NULL, a NaN and an
    infinity as null (JSON has no NaN), a date or time stamp as its ISO 8601 string, a DECIMAL as a number,
    a BLOB in hex. `types` (DuckDB's, one per column) spares CSV the look at columns that need no
    conversion, and makes a JSON column's values JSON values in JSON (without it, strings of JSON text)."""
    n = 0
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        converted = [i for i, c in enumerate(columns) if types is None or not _AS_IS.fullmatch(types[i])]
        for chunk in chunks:
            n += len(chunk)
            if not converted:
                w.writerows(chunk)
                continue
            cells = [list(r) for r in chunk]
            for cell_row in cells:
                for i in converted:
                    cell_row[i] = _csv_cell(cell_row[i])
            w.writerows(cells)
        return n
    # a duplicate column name is one key, as in a dict: at its first place, with its last column's value
    last = {c: i for i, c in enumerate(columns)}
    keys = [(f"  {_encode_str(c)}: ", last[c]) for c in dict.fromkeys(columns)]
    parsed = {i for i, t in enumerate(types or ()) if t == "JSON"}
    for chunk in chunks:
        for r in chunk:
            body = ",\n".join([k + _json_value(_json_text(r[i]) if i in parsed else r[i]) for k, i in keys])
            out.write(("[\n" if n == 0 else ",\n") + (" {\n" + body + "\n }" if keys else " {}"))
            n += 1
    out.write("\n]\n" if n else "[]\n")
    return n


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], total: int, more: str = "") -> None:
    """Print `rows` (at most TABLE_ROWS) as a table; when `total` is more, say on stderr how many rows were
    not shown and how to get them (`more`: a hint of the command's own)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(show_lines=False)
    cells = [["NULL" if v is None else str(v) for v in r] for r in rows]
    for c in columns:
        t.add_column(plain(c), no_wrap=True)
    for r in cells:
        t.add_row(*map(plain, r))  # values as they are: never read as rich markup
    # never squeeze values into ellipses: as wide as the widest value needs
    needed = sum(max([len(c), *(len(r[i]) for r in cells)]) + 3 for i, c in enumerate(columns)) + 1
    Console(width=max(needed, shutil.get_terminal_size().columns)).print(t)
    if total > len(rows):
        click.echo(
            f"note: the table shows the first {len(rows):,} of {total:,} rows ({total - len(rows):,} not "
            f"shown); `--format csv` or `--format json` prints every row{more}",
            err=True,
        )


def emit(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    """Print rows as a table (the first TABLE_ROWS rows), CSV or JSON (a list of objects); see write_rows
    and print_table. `marketlake sql` streams its rows through the same two."""
    if fmt == "table":
        print_table(columns, rows[:TABLE_ROWS], len(rows))
        return
    buf = io.StringIO()
    write_rows(columns, [rows], fmt, buf)
    click.echo(buf.getvalue(), nl=False)


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


def _store(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value is not False:
            ctx.find_root().ensure_object(dict)[key] = value
        return value

    return store


def accept_group_options_everywhere(group: click.Group) -> None:
    """Give every command under `group` the group's `--lake`, `--config` and `--quiet`, so that
    `marketlake sql --lake PATH "..."` works as well as `marketlake --lake PATH sql "..."` (the one given
    after the command wins). Called once every command module is imported (cli/__init__.py)."""
    for cmd in group.commands.values():
        names = {p.name for p in cmd.params}
        if "lake_opt" not in names:
            cmd.params.extend(
                [
                    click.Option(
                        ["--lake", "lake_opt"],
                        type=click.Path(path_type=str),
                        expose_value=False,
                        callback=_store("lake"),
                        help="The lake's folder (default: $LAKE_ROOT or ./data/lake); also before the command.",
                    ),
                    click.Option(
                        ["--config", "config_opt"],
                        type=click.Path(path_type=str),
                        expose_value=False,
                        callback=_store("config"),
                        help="Settings file (default: ./marketlake.toml); also before the command.",
                    ),
                    click.Option(
                        ["--quiet", "-q", "quiet_opt"],
                        is_flag=True,
                        default=None,
                        expose_value=False,
                        callback=_store("quiet"),
                        help="No progress output; also before the command.",
                    ),
                ]
            )
        if isinstance(cmd, click.Group):
            accept_group_options_everywhere(cmd)


def main() -> None:
    import cli as _package  # noqa: F401  (registers every command module on the group)

    terminate_on_signals()  # SIGTERM, SIGHUP: stop as on Ctrl-C, so that a run is recorded as ended
    try:
        code = cli.main(obj={}, standalone_mode=False)
    except Terminated as exc:
        click.echo(f"terminated ({exc})", err=True)
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Abort as exc:
        # click turns a Ctrl-C into Abort ("Aborted!", 1), and an EOFError too (an input or a file that
        # ended): only the first is an interruption (130); the second is an error (1), as is a bare Abort
        why = exc.__cause__ or exc.__context__
        if isinstance(why, EOFError):
            click.echo(f"error: {redact(_ended_early(why))}", err=True)
            sys.exit(1)
        if why is not None and stop_signal(why) is not None:
            signum = stop_signal(why) or 0
            click.echo(f"terminated ({signal.Signals(signum).name})", err=True)
            sys.exit(128 + signum)
        if why is not None and is_interrupt(why):
            click.echo("interrupted", err=True)
            sys.exit(130)
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)

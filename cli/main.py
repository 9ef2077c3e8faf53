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
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import duckdb

from lake.config import load_dotenv_file, load_settings, settings_source
from lake.context import plain
from lake.errors import REPAIR, MarketlakeError, Terminated, is_interrupt, stop_signal, terminate_on_signals
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
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            click.echo(f"error: {redact(first)}", err=True)
            for line in damaged_files():
                click.echo(redact(line), err=True)
            sys.exit(1)
        except OSError as exc:  # a full disk, a read-only mount, a file gone: one line naming the file
            from lake.writer import io_reason

            log.debug("I/O error", exc_info=True)
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            click.echo(f"error: {redact(where + io_reason(exc))}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


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
    return [*(f"damaged: {p}" for p in problems), f"to repair: {REPAIR}"]


def existing_lake(run: Any) -> Path:
    """The run's lake root, which must exist and hold a lake: reading commands never create one and never
    take a wrong path for an empty lake."""
    return require_lake(
        run.root,
        "create one with `marketlake ingest` (e.g. `marketlake ingest binance --symbols BTCUSDT`), or name "
        "yours with `marketlake --lake PATH ...` (or LAKE_ROOT); offline, `make demo` builds data/demo/lake "
        "(then e.g. `marketlake --lake data/demo/lake --config demo.toml train`)",
    )


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
            t.add_column(plain(c), no_wrap=True)
        for r in cells:
            t.add_row(*map(plain, r))  # values as they are: never read as rich markup
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

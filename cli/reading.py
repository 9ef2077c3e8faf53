"""Reading the lake: `sql`, `shell`, `check`, `verify`."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import duckdb

import lake
from cli.main import (
    CHUNK_ROWS,
    FORMATS,
    TABLE_ROWS,
    _ctx,
    cli,
    existing_lake,
    handle_errors,
    print_table,
    write_rows,
)
from lake.config import DEFAULT_CONFIG, Settings
from lake.errors import MarketlakeError, repair_advice


def settings_line(settings: Settings) -> str:
    """The one line (progress, on stderr) a command that reads the settings file says about it: the file's
    absolute path, or that it runs on the built-in defaults (no ./marketlake.toml where it runs), and how to
    give another (`marketlake train`: `make train CONFIG=FILE` passes --config FILE)."""
    if settings.path is None:
        return (
            f"settings: the built-in defaults (no {DEFAULT_CONFIG} in {Path.cwd()}; --config FILE or "
            "$MARKETLAKE_CONFIG to use one)"
        )
    return f"settings: {settings.path.absolute()} (another file: --config FILE or $MARKETLAKE_CONFIG)"


# --- reading -------------------------------------------------------------------------------------------


_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _params(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str] | None:
    """--param NAME=VALUE, repeated: {NAME: VALUE} (None without any). A name is DuckDB's $NAME, whose case
    DuckDB ignores: one given twice, in any case, is refused."""
    out: dict[str, str] = {}
    for text in values:
        name, eq, value = text.partition("=")
        if not eq or not _PARAM_NAME.fullmatch(name):
            raise click.BadParameter(
                f"{text!r} is not NAME=VALUE (a name of letters, digits and _, bound as $NAME)", ctx, param
            )
        if name.lower() in {n.lower() for n in out}:
            raise click.BadParameter(f"{name} given twice (DuckDB takes $NAME in any case)", ctx, param)
        out[name] = value
    return out or None


def _query_params(query: str) -> list[str]:
    """The named parameters ($NAME) of the query's statements, as DuckDB's parser finds them, in sorted
    order ([] when it cannot tell, or when they are positional: ? and $1)."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error:
        return []
    names = {n for st in statements for n in st.named_parameters}
    return [] if any(n.isdigit() for n in names) else sorted(names)


def _param_error(exc: duckdb.Error, params: dict[str, str] | None, query: str = "") -> MarketlakeError | None:
    """DuckDB's error about the query's parameters, said in terms of --param; None for any other error."""
    text = str(exc)
    if "Unexpected prepared parameter" in text:
        if not params:
            names = _query_params(query)
            if names:
                return MarketlakeError(
                    f"the query has the parameter(s) {', '.join('$' + n for n in names)}: add "
                    + " ".join(f"--param {n}=VALUE" for n in names)
                )
            return MarketlakeError(
                "the query has a parameter ($NAME, or a positional ? or $1): give each $NAME its value with "
                "--param NAME=VALUE"
            )
        return MarketlakeError(
            "DuckDB takes no parameter in this kind of statement: write the value in the query itself"
        )
    missing = re.search(r"not provided for the following prepared statement parameters: (.+)", text)
    if missing:
        names = [n.strip() for n in missing.group(1).splitlines()[0].split(",")]
        if any(n.isdigit() for n in names):
            return MarketlakeError(
                "the query has a positional parameter (? or $1): `marketlake sql` binds named ones only; "
                "write $NAME in the query and give --param NAME=VALUE"
            )
        return MarketlakeError(
            f"no --param for {', '.join('$' + n for n in names)}: add "
            + " ".join(f"--param {n}=VALUE" for n in names)
        )
    excess = re.search(r"identifiers of the excess parameters: (.+)", text)
    if excess:
        names = [n.strip() for n in excess.group(1).splitlines()[0].split(",")]
        return MarketlakeError(
            "; ".join(f"--param {n} is not used: the query has no ${n}" for n in names)
            + " (drop it, or use it in the query)"
        )
    return None


@cli.command("sql")
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=FORMATS,
    default="table",
    show_default=True,
    help=f"table: the first {TABLE_ROWS:,} rows (stderr says how many more); csv, json: every row.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_params,
    help="Bind $NAME in the query to VALUE, as text (repeatable); cast it where DuckDB cannot tell the type "
    "($n::INTEGER).",
)
@click.pass_context
@handle_errors
def sql_cmd(ctx: click.Context, query: str, fmt: str, params: dict[str, str] | None) -> None:
    """Run a query on the lake's views (queries only: a statement that writes is refused, and no file
    outside the lake can be read).

    The table shows the first 1,000 rows and says on stderr how many it left out. CSV and JSON print every
    row, with bounded memory: they are written to a temporary file in $TMPDIR (as large as the output) and
    printed once the read is known consistent (not a mix of two versions of a file an ingest replaced
    meanwhile). JSON gives NULL, NaN and infinities as null, and a JSON column (runs.config, metrics,
    data_files) as JSON values; CSV gives a list, struct or map as JSON text and a blob in hex.

    Values come in with --param NAME=VALUE, bound as $NAME (never written into the query's text): each is
    text, which DuckDB casts where the query compares it with a typed column (close > $min, ts >= $from,
    LIMIT $n) and which a cast makes a number elsewhere ($n::INTEGER + 1). A $NAME without its --param, or a
    --param the query does not use, is an error.

    \b
    Example:
      marketlake sql "SELECT symbol, count(*) FROM bars GROUP BY symbol" --format csv
      marketlake sql 'SELECT * FROM bars WHERE symbol = $sym AND ts >= $from' -p sym=AAPL -p from=2024-01-02
    """
    from lake.connect import connect, query_only

    if not query.strip():
        raise click.UsageError('no query given: e.g. marketlake sql "SELECT * FROM bars LIMIT 5"')
    run = _ctx(ctx)
    existing_lake(run)
    query_only(query)
    if re.search(r"\bfeatures_store\b", query, re.IGNORECASE):
        warn_if_store_stale(run)
    try:
        n = len(duckdb.extract_statements(query))
    except duckdb.Error:
        n = 1  # query_only said it parses
    if n > 1:  # DuckDB would run them all and show only the last one's rows
        raise MarketlakeError(
            f"one query at a time: {n} statements given (run each with its own `marketlake sql`, or "
            "several in `marketlake shell`)"
        )
    con = connect(run.root, read_only=True, settings=run.settings)
    con.execute("SET lock_configuration = true")
    # csv and json stream: CHUNK_ROWS rows at a time from DuckDB's streaming result, written to a spool file
    # (a temporary file: bounded memory, as much disk as the output) that is copied to stdout only once the
    # read is known consistent; a read an ingest overlapped is run again from an emptied spool, so the
    # output is never a mix of two versions of the lake. The table holds its first TABLE_ROWS rows and
    # counts the others.
    spool = None if fmt == "table" else _spool(fmt)
    try:

        def read() -> tuple[list[str], list[tuple[Any, ...]], int] | None:
            if params:  # executed on the connection, whose result streams (con.sql with params holds it all)
                con.execute(query, params)
                if con.description is None:
                    return None
                columns = [d[0] for d in con.description]
                types = [str(d[1]) for d in con.description]
                fetch = con.fetchmany
            else:
                rel = con.sql(query)
                if rel is None:
                    return None
                columns, types, fetch = rel.columns, [str(t) for t in rel.types], rel.fetchmany
            chunks = iter(lambda: fetch(CHUNK_ROWS), [])
            if spool is None:
                shown = fetch(TABLE_ROWS)
                return columns, shown, len(shown) + sum(map(len, chunks))
            try:
                spool.seek(0)
                spool.truncate()
                n = write_rows(columns, chunks, fmt, spool, types)
            except OSError as exc:  # the spool's disk (a full $TMPDIR), not the lake's
                raise _spool_failed(fmt, exc) from exc
            return columns, [], n

        try:
            got = lake.consistent(run.root, read)  # read again if an ingest replaced a file meanwhile
        except duckdb.Error as exc:
            said = _param_error(exc, params, query)
            if said is None:
                raise
            raise said from exc
        if got is None:
            return
        if spool is None:
            print_table(got[0], got[1], got[2], more=", or narrow the query (LIMIT, WHERE)")
            return
        spool.seek(0)
        while text := spool.read(1 << 20):
            click.echo(text, nl=False)
    except BaseException:
        con.interrupt()  # a streaming query stopped midway (Ctrl-C, an error) runs on unless interrupted,
        raise  # and closing the connection would wait for it to end
    finally:
        con.close()
        if spool is not None:
            spool.close()


def _spool(fmt: str) -> Any:
    try:
        return tempfile.TemporaryFile("w+", encoding="utf-8", newline="")
    except OSError as exc:
        raise _spool_failed(fmt, exc) from exc


def _spool_failed(fmt: str, exc: OSError) -> MarketlakeError:
    """The one line for a spool that cannot be written: it names the folder (TMPDIR) and what to do."""
    from lake.writer import io_reason

    return MarketlakeError(
        f"the {fmt} output is held in a temporary file in {tempfile.gettempdir()} until the read is known "
        f"consistent, and writing it failed: {io_reason(exc)} (point TMPDIR at a folder with room for the whole "
        "output; the lake is untouched)"
    )


def warn_if_store_stale(run: Any) -> None:
    """A warning on stderr when `features_store` does not hold what the `features` view would give now (a
    settings change, an ingest stopped before its refresh, files changed by hand): its rows are those of its
    last refresh until `marketlake features refresh` (which train and evaluate run first)."""
    from features import store

    try:
        stale = store.stale(run.root, run.settings)
    except (OSError, ValueError):
        return
    if stale:
        some = ", ".join(f"{s} {i}" for s, i in stale[:5]) + (", ..." if len(stale) > 5 else "")
        click.echo(
            f"warning: features_store is out of date for {len(stale)} (symbol, interval) pair(s) ({some}): it "
            "holds their features as of its last refresh, not what the `features` view gives now; "
            "`marketlake features refresh` brings it up to date (`marketlake features status` lists them)",
            err=True,
        )


@cli.command("shell")
@click.pass_context
@handle_errors
def shell_cmd(ctx: click.Context) -> None:
    """The DuckDB shell on the lake, with every view ready (read-only; files outside the lake cannot be
    read).

    \b
    Example:
      marketlake --lake data/lake shell
    """
    from lake.connect import connect, private_workdir, write_catalog

    run = _ctx(ctx)
    existing_lake(run)
    warn_if_store_stale(run)
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
    with contextlib.ExitStack() as scratch:
        try:
            catalog = write_catalog(run.root, run.settings, run.root / "catalog.duckdb")
        except (OSError, duckdb.Error):  # a lake on a read-only folder: a private folder, removed after
            folder = scratch.enter_context(private_workdir("marketlake-shell-"))
            catalog = write_catalog(run.root, run.settings, folder / "catalog.duckdb")
        # The shell runs in the lake's folder: its SQL reads files there only (DuckDB's external access off,
        # './' allowed, the configuration locked). Its dot commands (.shell, .output) are the shell's own.
        confined = [
            "SET TimeZone = 'UTC'",
            "SET allowed_directories = ['./']",
            "SET enable_external_access = false",
            "SET lock_configuration = true",
        ]
        cmd = [duckdb_cli, "-readonly", *(a for c in confined for a in ("-cmd", c)), str(catalog)]
        code = subprocess.call(cmd, cwd=run.root)
    sys.exit(code)


@cli.command("check")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--strict", is_flag=True, help="Exit non-zero if a configured symbol is not eligible.")
@click.pass_context
@handle_errors
def check_cmd(ctx: click.Context, fmt: str, strict: bool) -> None:
    """Data-quality report per symbol (bar_quality and eligible_symbols).

    \b
    Example:
      marketlake check --strict --format json
    """
    from features import check

    run = _ctx(ctx)
    existing_lake(run)
    check.run(run, fmt, strict)


@cli.command("verify")
@click.pass_context
@handle_errors
def verify_cmd(ctx: click.Context) -> None:
    """Check every Parquet file of the lake against its manifest's sha256, and that the `bars` view's
    mirror (datasets/bars_chosen) matches the bars files.

    \b
    Example:
      marketlake verify --lake data/lake
    """
    from lake.chosen import mirror_problems
    from lake.paths import LakePaths
    from lake.writer import verify

    run = _ctx(ctx)
    existing_lake(run)
    problems = verify(run.root)
    checked = mirror_problems(LakePaths(run.root))
    mirror = checked or []
    for p in [*problems, *mirror]:
        click.echo(p)
    if problems:
        also = f"; {len(mirror)} symbol(s)' mirror is out of step" if mirror else ""
        raise MarketlakeError(
            f"{len(problems)} file(s) do not match their manifest{also}; to repair: {repair_advice(problems)}"
        )
    if mirror:
        raise MarketlakeError(
            f"{len(mirror)} symbol(s)' mirror of bars is out of step with the bars files; to repair: "
            "marketlake features refresh (it redoes their mirror)"
        )
    if checked is None:
        click.echo(
            "every file matches its manifest; the mirror of bars was not checked: it is not whole now (a writer "
            "is changing bars, or stopped midway, or a marketlake without it wrote since), and `bars` reads "
            "every bars file through its precedence window until the next ingest or `marketlake features "
            "refresh` makes it whole"
        )
    else:
        click.echo("every file matches its manifest; the mirror of bars holds what the bars files say")

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
from lake.errors import MarketlakeError, repair_advice

# --- reading -------------------------------------------------------------------------------------------


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
@click.pass_context
@handle_errors
def sql_cmd(ctx: click.Context, query: str, fmt: str) -> None:
    """Run a query on the lake's views (queries only: a statement that writes is refused, and no file
    outside the lake can be read).

    The table shows the first 1,000 rows and says on stderr how many it left out. CSV and JSON print every
    row, with bounded memory: they are written to a temporary file in $TMPDIR (as large as the output) and
    printed once the read is known consistent (not a mix of two versions of a file an ingest replaced
    meanwhile). JSON gives NULL, NaN and infinities as null, and a JSON column (runs.config, metrics,
    data_files) as JSON values; CSV gives a list, struct or map as JSON text and a blob in hex.

    \b
    Example:
      marketlake sql "SELECT symbol, count(*) FROM bars GROUP BY symbol" --format csv
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
            rel = con.sql(query)
            if rel is None:
                return None
            chunks = iter(lambda: rel.fetchmany(CHUNK_ROWS), [])
            if spool is None:
                shown = rel.fetchmany(TABLE_ROWS)
                return rel.columns, shown, len(shown) + sum(map(len, chunks))
            try:
                spool.seek(0)
                spool.truncate()
                n = write_rows(rel.columns, chunks, fmt, spool, [str(t) for t in rel.types])
            except OSError as exc:  # the spool's disk (a full $TMPDIR), not the lake's
                raise _spool_failed(fmt, exc) from exc
            return rel.columns, [], n

        got = lake.consistent(run.root, read)  # read again if an ingest replaced a file meanwhile
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
    """Check every Parquet file of the lake against its manifest's sha256.

    \b
    Example:
      marketlake verify --lake data/lake
    """
    from lake.writer import verify

    run = _ctx(ctx)
    existing_lake(run)
    problems = verify(run.root)
    for p in problems:
        click.echo(p)
    if problems:
        raise MarketlakeError(
            f"{len(problems)} file(s) do not match their manifest; to repair: {repair_advice(problems)}"
        )
    click.echo("every file matches its manifest")

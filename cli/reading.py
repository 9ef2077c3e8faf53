"""Reading the lake: `sql`, `shell`, `check`, `verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import duckdb

from cli.main import FORMATS, _ctx, cli, emit, handle_errors
from lake.errors import MarketlakeError

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

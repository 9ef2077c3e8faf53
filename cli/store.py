"""`marketlake features ...`: the feature store (features/store.py), the `features` view materialised."""

from __future__ import annotations

import click

from cli.main import _ctx, cli, emit, handle_errors
from lake.paths import parse_symbols


@cli.group("features")
def features_group() -> None:
    """The feature store: the `features` view materialised in the lake (view features_store), refreshed
    after every ingest and before training.

    \b
    Example:
      marketlake features status
      marketlake features refresh --symbols BTCUSDT --interval 1m
    """


@features_group.command("refresh")
@click.option("--symbols", default=None, help="Only these symbols (comma separated).")
@click.option("--interval", "intervals", multiple=True, help="Only this interval (repeatable).")
@click.option("--force", is_flag=True, help="Rebuild even the pairs whose inputs did not change.")
@click.pass_context
@handle_errors
def features_refresh(
    ctx: click.Context, symbols: str | None, intervals: tuple[str, ...], force: bool
) -> None:
    """Recompute the stored features of every (symbol, interval) whose inputs changed.

    \b
    Example:
      marketlake --lake data/lake features refresh --symbols AAPL,MSFT --interval 1m
    """
    from features import store

    run = _ctx(ctx)
    result = store.refresh(
        run.root,
        run.settings,
        run.say,
        symbols=parse_symbols(symbols) if symbols else None,
        intervals=intervals or None,
        force=force,
    )
    click.echo(store.describe(result))


@features_group.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_context
@handle_errors
def features_status(ctx: click.Context, fmt: str) -> None:
    """Per (symbol, interval): whether the stored features are up to date, and their years.

    \b
    Example:
      marketlake features status --format json
    """
    from features import store

    run = _ctx(ctx)
    rows = store.summary(run.root, run.settings)
    emit(
        ["symbol", "interval", "fresh", "years"],
        [[r["symbol"], r["interval"], r["fresh"], ",".join(r["years"])] for r in rows],
        fmt,
    )

"""`marketlake features ...`: the feature store (features/store.py), the `features` view materialised."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from cli.main import _ctx, cli, emit, existing_lake, handle_errors
from ingest.common import INTERVALS
from lake.errors import MarketlakeError
from lake.paths import parse_symbols


def _some(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(names[:most]) or "none"
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _require_held(
    root: Path, pairs: set[tuple[str, str]], symbols: list[str], intervals: Sequence[str]
) -> None:
    """Refuse a refresh restricted to symbols or intervals the lake does not hold (bars, or stored features
    to remove), naming them: else it would do nothing and say `0 rebuilt`."""
    held_intervals = sorted({i for _, i in pairs})
    missing = [i for i in intervals if i not in held_intervals]
    if missing:
        raise MarketlakeError(
            f"no {', '.join(missing)} bars in the lake at {root} (its intervals: {_some(held_intervals)})"
        )
    wanted = set(intervals) if intervals else None
    held = sorted({s for s, i in pairs if wanted is None or i in wanted})
    missing = [s for s in symbols if s not in held]
    if missing:
        of = f" {'/'.join(intervals)}" if intervals else ""
        raise MarketlakeError(
            f"no{of} bars of {', '.join(missing)} in the lake at {root} (its{of} symbols: {_some(held)})"
        )


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
@click.option(
    "--interval",
    "intervals",
    type=click.Choice(list(INTERVALS)),
    multiple=True,
    help="Only this interval (repeatable).",
)
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
    existing_lake(run)  # never makes a lake at a wrong path
    wanted = parse_symbols(symbols) if symbols else []
    if wanted or intervals:
        pairs = {(c.symbol, c.interval) for c in store.plan(run.root, run.settings)}
        _require_held(run.root, pairs, wanted, intervals)
    result = store.refresh(
        run.root,
        run.settings,
        run.say,
        symbols=wanted or None,
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
    rows = store.summary(existing_lake(run), run.settings)
    emit(
        ["symbol", "interval", "fresh", "years"],
        [[r["symbol"], r["interval"], r["fresh"], ",".join(r["years"])] for r in rows],
        fmt,
    )

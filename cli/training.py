"""Training and evaluation: `train`, `evaluate`, `runs`."""

from __future__ import annotations

from typing import Any

import click

from cli.main import FORMATS, _ctx, cli, emit, existing_lake, handle_errors

# --- training ------------------------------------------------------------------------------------------


@cli.command("train")
@click.option("--symbols", default=None)
@click.option("--interval", default=None)
@click.option("--iterations", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.pass_context
@handle_errors
def train_cmd(ctx: click.Context, **options: Any) -> None:
    """Train PPO on the train period and evaluate it on the unseen test period.

    \b
    Example:
      marketlake train --symbols BTCUSDT,ETHUSDT --iterations 50 --seed 1
    """
    _ctx(ctx)
    from lake.errors import NotBuiltYet

    raise NotBuiltYet("train: not built yet")


@cli.command("evaluate")
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
@handle_errors
def evaluate_cmd(ctx: click.Context, run_id: str, fmt: str) -> None:
    """Evaluate a trained run on its test period, beside the baselines.

    \b
    Example:
      marketlake evaluate RUN_ID --format json
    """
    _ctx(ctx)
    from lake.errors import NotBuiltYet

    raise NotBuiltYet("evaluate: not built yet")


@cli.command("runs")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.pass_context
@handle_errors
def runs_cmd(ctx: click.Context, fmt: str) -> None:
    """List training and evaluation runs.

    \b
    Example:
      marketlake runs --format json
    """
    from lake.connect import connect

    run = _ctx(ctx)
    existing_lake(run)
    con = connect(run.root, read_only=True, settings=run.settings)
    try:
        rel = con.sql(
            "SELECT run_id, kind, started_at, status, data_snapshot, metrics FROM runs ORDER BY started_at"
        )
        emit(rel.columns, rel.fetchall(), fmt)
    finally:
        con.close()

"""Training and evaluation: `train`, `evaluate`, `runs` (and `runs sync`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.main import FORMATS, _ctx, cli, existing_lake, handle_errors
from lake.context import RunContext
from lake.paths import parse_symbols


def train_and_evaluate(
    run: RunContext, overrides: dict[str, Any], *, runs_dir: Path | None = None, evaluate: bool = True
) -> tuple[Any, Any]:
    """What `marketlake train` does, for the command and for `marketlake demo`: train (train and validation
    periods only) and record the run (rl.evaluate.train_and_evaluate), evaluate the chosen model on the
    unseen test period, print the table. Returns (TrainResult, EvalReport or None)."""
    from cli.ingest import _refresh_store
    from rl import evaluate as ev

    _refresh_store(run)  # the episodes read the stored features when they are up to date
    result, report = ev.train_and_evaluate(
        run.root,
        run.settings,
        overrides,
        say=run.say,
        progress=not run.quiet,
        runs_dir=runs_dir,
        evaluate_test=evaluate,
    )
    if report is not None:
        click.echo(ev.render_table(report))
    return result, report


@cli.command("train")
@click.option(
    "--symbols", default=None, help="Comma separated (default: the train period's eligible symbols)."
)
@click.option("--interval", default=None, help="Bar interval to train on, e.g. 1m or 1d (default: [train]).")
@click.option(
    "--iterations", type=int, default=None, help="PPO iterations (default: [train] num_iterations)."
)
@click.option("--seed", type=int, default=None, help="Seed of the run (default: [train] seed).")
@click.option("--device", default=None, help="cpu, cuda or auto (default: auto: CUDA when present).")
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where run folders go (default: runs/ beside the lake).",
)
@click.option("--no-evaluate", is_flag=True, help="Only train; evaluate later with `marketlake evaluate`.")
@click.pass_context
@handle_errors
def train_cmd(
    ctx: click.Context,
    symbols: str | None,
    interval: str | None,
    iterations: int | None,
    seed: int | None,
    device: str | None,
    runs_dir: Path | None,
    no_evaluate: bool,
) -> None:
    """Train PPO on the train period, choose the model on the validation period, and evaluate it on the
    unseen test period beside buy-and-hold, flat and random.

    \b
    Example:
      marketlake --lake data/lake train --symbols BTCUSDT --interval 1m --iterations 20 --seed 1
    """
    run = _ctx(ctx)
    existing_lake(run)
    overrides = {
        "symbols": parse_symbols(symbols) if symbols else None,
        "interval": interval,
        "num_iterations": iterations,
        "seed": seed,
        "device": device,
    }
    result, _ = train_and_evaluate(run, overrides, runs_dir=runs_dir, evaluate=not no_evaluate)
    click.echo(f"run id: {result.run_id}  ({result.run_dir})")
    if result.exit_code:
        click.echo("interrupted: the best checkpoint so far is kept", err=True)
        sys.exit(result.exit_code)


@cli.command("evaluate")
@click.argument("run_id")
@click.option("--period", type=click.Choice(["test", "validation"]), default="test", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def evaluate_cmd(ctx: click.Context, run_id: str, period: str, fmt: str) -> None:
    """Evaluate a trained run on its test (or validation) period, beside the baselines, on the same bars
    and costs; writes evaluation-<period>.json and .png into the run's folder.

    \b
    Example:
      marketlake evaluate 20261130-031500-ab12cd --period test --format json
    """
    from rl.evaluate import evaluate_run, render_table, report_json

    run = _ctx(ctx)
    existing_lake(run)
    report = evaluate_run(run.root, run.settings, run_id, period, say=run.say)
    click.echo(report_json(report) if fmt == "json" else render_table(report))


@cli.group("runs", invoke_without_command=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option(
    "--kind", type=click.Choice(["train", "evaluate"]), default=None, help="Only runs of this kind."
)
@click.pass_context
@handle_errors
def runs_cmd(ctx: click.Context, fmt: str, kind: str | None) -> None:
    """List training and evaluation runs, newest first.

    \b
    Example:
      marketlake runs
      marketlake runs --format json
      marketlake runs sync        # send runs waiting in the outbox to Supabase
    """
    if ctx.invoked_subcommand is not None:
        return
    from rl.runlog import list_runs, render_runs

    run = _ctx(ctx)
    existing_lake(run)
    click.echo(render_runs(list_runs(run.root, run.settings, kind=kind), fmt), nl=False)


@runs_cmd.command("sync")
@click.pass_context
@handle_errors
def runs_sync_cmd(ctx: click.Context) -> None:
    """Send the runs waiting in the lake's outbox to Supabase (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY),
    each exactly once.

    \b
    Example:
      marketlake runs sync
    """
    from lake.errors import MarketlakeError
    from rl.mirror import sync_outbox

    run = _ctx(ctx)
    counts = sync_outbox(run.root, say=run.say)
    click.echo(f"sent {counts.sent}, failed {counts.failed}, still waiting {counts.waiting}")
    if counts.failed:
        raise MarketlakeError(f"runs sync: {counts.failed} run(s) not taken; they stay in the outbox")

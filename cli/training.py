"""Training and evaluation: `train`, `evaluate`, `runs` (and `runs sync`)."""

from __future__ import annotations

import logging
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.main import FORMATS, _ctx, cli, existing_lake, handle_errors
from cli.reading import settings_line
from lake.config import TRAIN_INTERVALS, check_train_value, set_takes_train_keys_only
from lake.context import RunContext
from lake.errors import MarketlakeError

log = logging.getLogger("marketlake.train")
ALL_SYMBOLS = "all"
"""`--symbols all`: every eligible symbol (rl.train.ALL_SYMBOLS; not imported here, rl pulls in torch)."""


def train_and_evaluate(
    run: RunContext,
    overrides: dict[str, Any],
    *,
    runs_dir: Path | None = None,
    evaluate: bool = True,
    judged: bool | None = None,
) -> tuple[Any, Any]:
    """What `marketlake train` does, for the command and for `marketlake demo`: train (train and validation
    periods only) and record the run (rl.evaluate.train_and_evaluate), evaluate the chosen model on the
    unseen test period, print the table. `judged` (default: `evaluate`): the run is to be evaluated on the
    test period (here or by the caller), which must then hold bars. Returns (TrainResult, EvalReport or
    None)."""
    from cli.ingest import _refresh_store
    from rl import evaluate as ev

    check_before_run(run, overrides, runs_dir=runs_dir, judged=evaluate if judged is None else judged)
    _refresh_store(run)  # the episodes read the stored features when they are up to date
    result, report = ev.train_and_evaluate(
        run.root,
        run.settings,
        overrides,
        say=run.say,
        note=_note(run),  # what changes how the result reads: shown even with --quiet, as `evaluate` does
        progress=not run.quiet,
        runs_dir=runs_dir,
        evaluate_test=evaluate,
    )
    if report is not None:
        click.echo(ev.render_table(report))
    return result, report


def check_before_run(
    run: RunContext, overrides: dict[str, Any], *, runs_dir: Path | None = None, judged: bool = True
) -> None:
    """What can be known wrong before a run is recorded is refused here, so that it never becomes a
    `failed` run, nor a long run lost at its end: the settings with the overrides, the device, the interval
    and symbols the lake holds (a symbol stored but not eligible in the train period is still the run's to
    skip), the lake and the runs folder writable, at least one symbol eligible in the train period, and, for
    a run to be judged, a test period with bars of the symbols the run trains on and a segment longer than
    the window. A setting the run will not use (the other slippage mode's) is a warning."""
    from lake.writer import require_writable
    from rl.ppo import resolve_device
    from rl.train import (
        check_in_lake,
        check_test_period,
        default_runs_dir,
        read_train_settings,
        split_fix,
        symbols_origin,
        test_period_problem,
        test_window_problem,
        train_eligibility,
        unused_settings,
    )

    cfg, env, opts = read_train_settings(run.settings, overrides)
    resolve_device(cfg.device)  # cuda on a machine without it
    origin = symbols_origin(run.settings, overrides)
    check_in_lake(run.root, run.settings, opts.interval, opts.symbols, origin)
    require_writable(run.root, "the lake records every run in its `runs` dataset")
    folder = Path(runs_dir or opts.runs_dir or default_runs_dir(run.root))
    require_writable(
        folder, "the run's folder, with its checkpoints and metrics, goes there; --runs-dir to choose"
    )
    for note in unused_settings(run.settings, overrides):
        log.warning(note)
    # the symbols the run will train on (nothing eligible is refused here, not recorded as a failed run)
    used = train_eligibility(run.root, run.settings, opts.interval, opts.symbols, origin).used
    if judged:
        check_test_period(run.root, run.settings, opts.interval, used)
        problem, _short = test_window_problem(run.root, run.settings, opts.interval, used, env.window)
        if problem is not None:
            raise MarketlakeError(problem)
        return
    # trained now, judged later: a test period with no bar is said (even with --quiet), not refused
    problem = test_period_problem(run.root, run.settings, opts.interval, used)
    if problem is None:
        short, _short = test_window_problem(run.root, run.settings, opts.interval, used, env.window)
        if short is not None:
            log.warning(
                "%s: `marketlake evaluate` will have nothing to score this run on; lower train.window to "
                "evaluate it",
                short.split(", so the evaluation")[0],
            )
    elif problem is not None:
        log.warning(
            "%s: `marketlake evaluate` will have nothing to judge this run on; %s",
            problem,
            split_fix(run.settings),
        )


def _train_flag(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback checking a flag's value like the [train] key `key` of the config file (`--symbols
    all`: every eligible symbol, whatever [train] symbols says)."""

    def check(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        if key == "symbols" and value == ALL_SYMBOLS:
            return ALL_SYMBOLS
        try:
            return check_train_value(key, value)
        except ValueError as exc:
            also = f" (--symbols {ALL_SYMBOLS}: every eligible symbol)" if key == "symbols" else ""
            raise click.BadParameter(f"{exc}{also}", param=param) from None

    return check


def _toml_value(raw: str) -> Any:
    """VALUE of `--set KEY=VALUE` as TOML reads it (20, 0.001, true, [32, 32], "x"); anything that is not
    a TOML value (cpu, 1d, AAPL,SPY, 0.1%) is the string as typed."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set_pairs(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """`--set KEY=VALUE ...` as {key: value}, each checked like the [train] key of the config file."""
    out: dict[str, Any] = {}
    for item in values:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param=param)
        try:
            value = _toml_value(raw.strip())
            if not (key == "symbols" and value == ALL_SYMBOLS):
                value = check_train_value(key, value)
        except ValueError as exc:
            only = set_takes_train_keys_only(key)  # (a [data] or [splits] key)
            if key == "symbols":
                only = f" (symbols={ALL_SYMBOLS}: every eligible symbol)"
            raise click.BadParameter(f"key {key!r}: {exc}{only}", param=param) from None
        if key in out:  # (the last one silently won)
            raise click.BadParameter(
                f"key {key!r} given twice ({out[key]!r} and {value!r}): give it once", param=param
            )
        out[key] = value
    return out


@cli.command("train")
@click.option(
    "--symbols",
    default=None,
    callback=_train_flag("symbols"),
    help="Comma separated, each once; `all`: every eligible symbol, whatever [train] symbols says (default: "
    "[train] symbols, else the train period's eligible symbols). The run trains on them in sorted order.",
)
@click.option(
    "--interval",
    default=None,
    callback=_train_flag("interval"),
    help=f"Bar interval to train on: {', '.join(TRAIN_INTERVALS)} (default: [train] interval, else 1m).",
)
@click.option(
    "--iterations",
    type=int,
    default=None,
    callback=_train_flag("num_iterations"),
    help="PPO iterations, at least 1 (default: [train] num_iterations).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    callback=_train_flag("seed"),
    help="Seed of the run (default: [train] seed).",
)
@click.option(
    "--device",
    default=None,
    callback=_train_flag("device"),
    help="auto, cpu, cuda or cuda:N (default: [train] device, else auto: CUDA when present).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_set_pairs,
    help="Override any [train] key of the config file, checked like the file's value (repeatable), e.g. "
    "--set window=20 --set commission=0.0005 --set hidden_sizes=[32,32].",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where run folders go (default: runs/ beside the lake; a relative path is from the working folder).",
)
@click.option("--no-evaluate", is_flag=True, help="Only train; evaluate later with `marketlake evaluate`.")
@click.pass_context
@handle_errors
def train_cmd(
    ctx: click.Context,
    symbols: list[str] | None,
    interval: str | None,
    iterations: int | None,
    seed: int | None,
    device: str | None,
    sets: dict[str, Any],
    runs_dir: Path | None,
    no_evaluate: bool,
) -> None:
    """Train PPO on the train period, choose the model on the validation period, and evaluate it on the
    unseen test period beside buy-and-hold, flat and random.

    \b
    Example:
      marketlake --lake data/lake train --symbols BTCUSDT --interval 1m --iterations 20 --seed 1
      marketlake train --set window=20 --set allow_short=true
    """
    flags = {
        "symbols": symbols,
        "interval": interval,
        "num_iterations": iterations,
        "seed": seed,
        "device": device,
    }
    given = {**flags, "runs_dir": runs_dir}  # (--runs-dir goes to the run apart: it won over --set silently)
    for key, value in given.items():
        if value is not None and key in sets:
            flag = {"num_iterations": "--iterations", "runs_dir": "--runs-dir"}.get(key, f"--{key}")
            raise click.BadParameter(f"{flag} and --set {key}=... both given: give one", param_hint="--set")
    overrides = {**sets, **{k: v for k, v in flags.items() if v is not None}}
    run = _ctx(ctx)
    existing_lake(run)
    run.say(settings_line(run.settings))  # the file it reads, or that it reads none: never silently
    result, _ = train_and_evaluate(run, overrides, runs_dir=runs_dir, evaluate=not no_evaluate)
    click.echo(f"run id: {result.run_id}  ({result.run_dir})")
    if result.exit_code:
        import signal

        how = f"terminated ({signal.Signals(result.signal).name})" if result.signal else "interrupted"
        if result.best_checkpoint is not None:
            click.echo(
                f"{how}: the best checkpoint so far is kept (iteration {result.best_iteration})",
                err=True,
            )
        else:
            click.echo(
                f"{how} before the first validation: no checkpoint was kept, nothing to evaluate",
                err=True,
            )
        sys.exit(result.exit_code)


def _note(run: RunContext) -> Callable[[str], None]:
    """What changes how a result is to be read (a `note: ...` line): printed on stderr even with --quiet,
    which hides only progress (`run.say`)."""

    def note(message: str) -> None:
        run.console.print(message, markup=False, highlight=False, soft_wrap=True)

    return note


@cli.command("evaluate")
@click.argument("run_id")
@click.option("--period", type=click.Choice(["test", "validation"]), default="test", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def evaluate_cmd(ctx: click.Context, run_id: str, period: str, fmt: str) -> None:
    """Evaluate a trained run on its test (or validation) period, beside the baselines, on the same bars
    and costs; writes evaluation-<period>.json (the report), .png (the equity curves) and .parquet (every
    step of every policy) into the run's folder.

    \b
    Example:
      marketlake evaluate 20261130-031500-ab12cd --period test --format json
    """
    from rl.evaluate import evaluate_run, render_table, report_json

    run = _ctx(ctx)
    existing_lake(run)
    report = evaluate_run(run.root, run.settings, run_id, period, say=run.say, note=_note(run))
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

    A `running` run whose process is gone (killed: it holds no lock on
    <lake>/locks/runs/<run_id>.lock any more) is shown interrupted, with a
    `killed` note; the next train, evaluate or `runs sync` writes that into the lake.

    \b
    Example:
      marketlake runs
      marketlake runs --format json
      marketlake runs sync        # send runs waiting in the outbox to Supabase
      marketlake runs sync --all  # send every run of the lake
    """
    if ctx.invoked_subcommand is not None:
        return
    from rl.runlog import list_runs, render_runs

    run = _ctx(ctx)
    existing_lake(run)
    parents = list_runs(run.root, run.settings, kind="train") if kind == "evaluate" else []  # judged_mark's
    click.echo(render_runs(list_runs(run.root, run.settings, kind=kind), fmt, parents=parents), nl=False)
    _outbox_note(run)


def _outbox_note(run: RunContext) -> None:
    """How many runs wait in the outbox for Supabase, and how many it refused for good (set aside in
    refused/): notes on stderr, in every format, also under -q."""
    from rl.mirror import outbox_dir, pending, refused, refused_dir, supabase_target

    aside = len(refused(run.root))
    if aside:
        click.echo(
            f"note: {aside} run(s) Supabase refused for good are set aside in {refused_dir(run.root)}, "
            "each with its reason (README, Supabase: a refused run)",
            err=True,
        )
    waiting = len(pending(run.root))
    if not waiting:
        return
    how = (
        "`marketlake runs sync` sends them"
        if supabase_target() is not None
        else "set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY, then `marketlake runs sync` sends them"
    )
    click.echo(
        f"note: {waiting} run(s) wait in the outbox {outbox_dir(run.root)} for Supabase: {how}", err=True
    )


@runs_cmd.command("sync")
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Send every run of the lake, not only those waiting (runs recorded while Supabase was not "
    "configured); safe to repeat.",
)
@click.pass_context
@handle_errors
def runs_sync_cmd(ctx: click.Context, every: bool) -> None:
    """Send the runs waiting in the lake's outbox to Supabase (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY).

    First the rows of runs whose process died (killed: `runs` shows them interrupted) are repaired in the
    lake, as the next train or evaluate would, so that Supabase gets their end. A run Supabase refuses
    itself (a run id collision, a value the table refuses) is named and set aside in the outbox's
    refused/ folder with its reason, not sent again (not a failure of the sync); the others go on. With
    --all every run of the lake is sent (Supabase keeps one row per run, and never lets a weaker record
    replace a stronger one, so sending again changes nothing).

    \b
    Example:
      marketlake runs sync
      marketlake runs sync --all    # also the runs recorded before Supabase was configured
    """
    from lake.errors import MarketlakeError
    from rl.mirror import outbox_dir, pending, supabase_target, sync_outbox
    from rl.runlog import repair_dead_runs, stored_records

    run = _ctx(ctx)
    existing_lake(run)
    if supabase_target() is None:
        raise MarketlakeError(
            "runs sync: SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are not both set "
            f"({len(pending(run.root))} run(s) wait in {outbox_dir(run.root)})"
        )
    for record in repair_dead_runs(run.root, run.settings, say=run.say):
        run.say(f"run {record.run_id}: its process died; recorded {record.status} (killed)")
    rows = [r.to_json() for r in stored_records(run.root, run.settings)] if every else []
    counts = sync_outbox(run.root, say=run.say, rows=rows)
    click.echo(
        f"sent {counts.sent}, failed {counts.failed}, still waiting {counts.waiting}, refused {counts.refused}"
    )
    if counts.failed:
        raise MarketlakeError(f"runs sync: {counts.failed} run(s) not taken; they stay in the outbox")

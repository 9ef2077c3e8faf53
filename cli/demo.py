"""`marketlake demo` (what `make demo` runs): the whole chain offline, on the real bars the project ships.

1. a lake of its own (`data/demo/lake`, or `--lake`), so that a user's lake is never touched;
2. the samples (samples/README.md: real Yahoo Finance daily bars of SPY, AAPL, GOOG and S&P 500 minute
   bars) through `ingest csv`, with the quality report;
3. a short PPO run on the train period (demo.toml), the model chosen on the validation period;
4. the chosen model on the unseen test period beside buy-and-hold, flat and random: table, JSON, PNG;
5. where everything is and what to try next.

Run twice, it changes nothing: the ingest is a no-op, and a finished demo run on the same data and settings
is reused (its evaluation is shown again) instead of training a second one; `--retrain` trains anew.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import click

from cli.main import _store, cli, handle_errors
from cli.training import _train_flag
from lake.context import RunContext

DEMO_LAKE = Path("data/demo/lake")
MARKER = "demo-run.json"


def demo_config() -> Path:
    """demo.toml at the repository's root, beside marketlake.toml."""
    from ingest.samples import samples_dir

    return samples_dir().parent / "demo.toml"


def _fingerprint(root: Path, config: Path, iterations: int | None) -> str:
    """What a demo run depends on: the lake it is recorded in (two demo lakes in one folder share its runs/
    folder, and a run is listed in the lake that recorded it), the market data in it (not its runs), the
    demo's settings and an --iterations override."""
    from lake.writer import snapshot_hash

    h = hashlib.sha256()
    h.update(f"lake {root.resolve()}\n".encode())
    h.update(snapshot_hash(root, ("bars", "bars_rejected", "news", "trading_sessions")).encode())
    h.update(config.read_bytes())
    h.update(repr(iterations).encode())
    return h.hexdigest()


def _reusable(runs_dir: Path, fingerprint: str) -> Path | None:
    """The folder of an earlier demo run made from the same data and settings, if it finished."""
    marker = runs_dir / MARKER
    try:
        saved = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    run_dir = Path(saved.get("run_dir", ""))
    if saved.get("fingerprint") != fingerprint or not (run_dir / "checkpoints" / "best.pt").exists():
        return None
    try:
        status = json.loads((run_dir / "status.json").read_text()).get("status")
    except (OSError, ValueError):
        return None
    return run_dir if status in ("finished", "completed") else None  # completed: an older version's folder


def _recorded_evaluation(run_dir: Path) -> str | None:
    """The run id of the evaluation the run folder's evaluation-test.json is (the demo's first, recorded in
    `runs`), None when there is none."""
    try:
        saved = json.loads((run_dir / "evaluation-test.json").read_text())
    except (OSError, ValueError):
        return None
    run_id = saved.get("run_id") if isinstance(saved, dict) else None
    return str(run_id) if run_id else "evaluation-test.json"


@cli.command("demo")
@click.option("--retrain", is_flag=True, help="Train a new run even if a finished demo run is there.")
@click.option(
    "--mirror",
    is_flag=True,
    help="Also send the demo's runs to Supabase when SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set "
    "(by default they stay in the demo's lake).",
)
@click.option(
    "--iterations",
    type=int,
    default=None,
    callback=_train_flag("num_iterations"),
    help="PPO iterations, at least 1 (default: demo.toml).",
)
# the demo's own --lake and --quiet (so that the group's generic ones, and --config, are not added to it)
@click.option(
    "--lake",
    "lake_opt",
    type=click.Path(path_type=str),
    expose_value=False,
    callback=_store("lake"),
    help=f"The demo's own lake (default: ./{DEMO_LAKE}; $LAKE_ROOT is not used, so that your lake is never "
    "touched); also before the command.",
)
@click.option(
    "--quiet",
    "-q",
    "quiet_opt",
    is_flag=True,
    default=None,
    expose_value=False,
    callback=_store("quiet"),
    help="No progress output; also before the command.",
)
@click.pass_context
@handle_errors
def demo_cmd(ctx: click.Context, retrain: bool, mirror: bool, iterations: int | None) -> None:
    """Run the whole chain offline on the real data the project ships: ingest the samples, report their
    quality, train PPO, evaluate it on the held-out test period beside the baselines.

    It uses a lake of its own, ./data/demo/lake (or --lake; never $LAKE_ROOT), and its own settings,
    demo.toml beside marketlake.toml (never marketlake.toml or $MARKETLAKE_CONFIG; --config is refused).
    Its runs are not sent to Supabase, even when it is configured, unless --mirror is given.

    \b
    Example:
      make demo
      marketlake demo --retrain --iterations 10
      marketlake demo --lake /tmp/demo-lake
    """
    import contextlib

    from rl.mirror import mirroring_off, supabase_target

    obj = ctx.ensure_object(dict)
    if obj.get("config") is not None:
        raise click.UsageError(
            f"the demo uses its own settings, {demo_config()}: --config {obj['config']} would not be used "
            "(it is for the other commands, e.g. `marketlake --config FILE train`)"
        )
    from lake.config import load_dotenv_file

    load_dotenv_file(obj.get("env_file", ".env"))  # the environment, as every command has it
    if not mirror and supabase_target() is not None:
        click.echo("note: the demo's runs are not sent to Supabase (--mirror sends them)", err=True)
    with contextlib.nullcontext() if mirror else mirroring_off():
        _demo(ctx, obj, retrain, iterations)


def _demo(ctx: click.Context, obj: dict[str, Any], retrain: bool, iterations: int | None) -> None:
    from cli.ingest import _finish
    from cli.training import train_and_evaluate
    from features import check
    from ingest import samples
    from lake.config import load_settings
    from lake.paths import resolve_lake_root
    from rl.train import default_runs_dir

    config = demo_config()
    root = resolve_lake_root(obj.get("lake") or DEMO_LAKE)
    run = RunContext(root=root, settings=load_settings(config), quiet=bool(obj.get("quiet")))
    obj["run"] = run  # the context a failed query's report of damaged files reads (cli.main.damaged_files)
    step = 0

    def head(text: str) -> None:
        nonlocal step
        step += 1
        click.secho(f"\n[{step}/4] {text}", bold=True, err=True)

    head(f"ingest the shipped samples into {root} (marketlake ingest csv)")
    _finish(samples.run(run), run)  # a sample that fails to land stops the demo, named, exit 1

    head("data quality (marketlake check)")
    check.run(run, "table", strict=False)

    runs_dir = default_runs_dir(root)
    fingerprint = _fingerprint(root, config, iterations)
    reused = None if retrain else _reusable(runs_dir, fingerprint)
    if reused is not None:
        head(
            f"train PPO: already done on this data and these settings ({reused.name}; --retrain to train again)"
        )
        run_dir = reused
    else:
        head("train PPO on the train period, choose the model on the validation period")
        result, _ = train_and_evaluate(
            run, {"num_iterations": iterations}, runs_dir=runs_dir, evaluate=False, judged=True
        )
        run_dir = result.run_dir
        if result.exit_code:
            click.echo("interrupted: the best checkpoint so far is kept", err=True)
            ctx.exit(result.exit_code)
        # marked as soon as the model is chosen: a demo stopped during its evaluation reuses the run next time
        (runs_dir / MARKER).write_text(
            json.dumps(
                {"fingerprint": fingerprint, "run_dir": str(run_dir), "run_id": result.run_id}, indent=1
            )
            + "\n"
        )

    from cli.training import _note
    from rl.evaluate import evaluate, render_table

    head("evaluate the chosen model on the unseen test period")
    recorded = _recorded_evaluation(run_dir)  # recorded in `runs` once, the first time
    if recorded:  # shown again, not written: its files (and the latest names linked to them) stay its own
        run.say(f"already evaluated ({recorded}): its numbers again, nothing written or recorded")
    report = evaluate(
        root,
        run.settings,
        run_dir,
        "test",
        say=run.say,
        note=_note(run),  # shown even with --quiet, as `marketlake evaluate` does
        record=not recorded,
        write=not recorded,
    )
    click.echo(render_table(report))

    files = sorted(p.name for p in run_dir.glob("evaluation-test.*"))
    click.echo(next_steps(root, run_dir, files, config))


_SPLITS = shlex.quote("SELECT * FROM splits")


def next_steps(root: Path, run_dir: Path, files: list[str], config: Path) -> str:
    """Where the demo put everything, and what to try next: every hint that reads the views names the demo's
    settings file (the views' quality, eligibility and periods follow the settings, and without it they would
    be those of the working folder's marketlake.toml)."""
    lake, cfg = shlex.quote(str(root)), shlex.quote(str(config))
    return (
        "\nWhere everything is:\n"
        f"  the lake          {root}\n"
        f"  the run           {run_dir}  ({', '.join(files) or 'no evaluation'})\n"
        f"  its settings      {config}\n"
        "\nWhat to try next (with the demo's settings: the views' quality, eligibility and periods follow them):\n"
        f"  make shell LAKE_ROOT={lake} CONFIG={cfg}\n"
        "      the DuckDB shell, every view ready\n"
        f"  .venv/bin/marketlake --lake {lake} --config {cfg} sql {_SPLITS}\n"
        "      the demo's train, validation and test periods\n"
        f"  .venv/bin/marketlake --lake {lake} runs\n"
        "      every run with its result\n"
        "  notebooks/explore.ipynb   bars, features, news, quality gaps, equity curves, on the demo's lake and\n"
        "      settings by default (.venv/bin/pip install jupyterlab)\n"
        "  make ingest && make train                    real minute bars (Binance needs no key; see README)"
    )

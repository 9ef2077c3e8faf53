"""`marketlake demo`'s options tell the truth: its lake is ./data/demo/lake or --lake (never $LAKE_ROOT),
its settings demo.toml (never marketlake.toml; --config is refused, not silently ignored). In-process with
CliRunner; the demo is stopped at its first step (the samples' ingest), whose context is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from cli.demo import demo_config
from lake.config import load_settings
from lake.errors import MarketlakeError


class Stopped(MarketlakeError):
    pass


@pytest.fixture
def first_step(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The RunContext the demo hands its first step; the demo stops there (exit 1, nothing ingested)."""
    seen: list[Any] = []

    def run(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(ctx)
        raise Stopped("stopped at the samples' ingest")

    monkeypatch.setattr("ingest.samples.run", run)
    return seen


def test_the_help_says_what_the_demo_uses(runner: CliRunner) -> None:
    r = runner.invoke(cli, ["demo", "--help"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "./data/demo/lake" in out and "demo.toml" in out, out
    assert "$LAKE_ROOT is not used" in out, out
    # not the other commands' defaults, which the demo does not use
    assert "$LAKE_ROOT or ./data/lake" not in out and "./marketlake.toml" not in out, out
    options = r.output.split("Options:", 1)[1]
    assert "--lake" in options and "--quiet" in options and "--config" not in options, options


def test_the_demo_uses_its_own_lake_whatever_lake_root_says(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_step: list[Any]
) -> None:
    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "users-lake"))
    r = runner.invoke(cli, ["demo"])
    assert r.exit_code == 1 and "stopped at the samples' ingest" in r.output, r.output
    (ctx,) = first_step
    assert ctx.root == tmp_path / "data" / "demo" / "lake"  # the working directory is tmp_path
    assert not (tmp_path / "users-lake").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_lake_names_the_demos_lake(
    runner: CliRunner, tmp_path: Path, first_step: list[Any], where: str
) -> None:
    lake_opt = ["--lake", str(tmp_path / "mine")]
    r = runner.invoke(cli, [*lake_opt, "demo"] if where == "before" else ["demo", *lake_opt])
    assert r.exit_code == 1 and "stopped" in r.output, r.output
    assert first_step[0].root == tmp_path / "mine"


def test_the_demo_runs_on_demo_toml_not_marketlake_toml(
    runner: CliRunner, tmp_path: Path, first_step: list[Any]
) -> None:
    (tmp_path / "marketlake.toml").write_text("this is [not toml\n")  # would stop any command that reads it
    r = runner.invoke(cli, ["demo"])
    assert r.exit_code == 1 and "stopped" in r.output, r.output
    assert first_step[0].settings == load_settings(demo_config())


@pytest.mark.parametrize("args", [["--config", "mine.toml", "demo"], ["demo", "--config", "mine.toml"]])
def test_config_is_refused_not_ignored(
    runner: CliRunner, tmp_path: Path, first_step: list[Any], args: list[str]
) -> None:
    (tmp_path / "mine.toml").write_text("[train]\n")
    r = runner.invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert "--config" in r.output, r.output
    assert first_step == [] and not (tmp_path / "data").exists()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_iterations_below_one_is_refused_naming_the_flag_before_any_work(
    runner: CliRunner, value: str, first_step: list[Any]
) -> None:
    r = runner.invoke(cli, ["demo", "--iterations", value])
    assert r.exit_code == 2 and "--iterations" in r.output and "demo.toml" not in r.output, r.output
    assert not first_step  # nothing ingested


def test_the_demos_hints_read_the_views_with_the_demos_settings(
    runner: CliRunner, tmp_path: Path, filled_lake: Path
) -> None:
    """What the demo prints to try next names demo.toml: without it the shell, `sql` and the notebook would
    show the working folder's settings (periods, quality, eligibility), not those the demo's run used."""
    import shlex

    from cli.demo import next_steps

    config = demo_config()
    text = next_steps(filled_lake, tmp_path / "runs" / "run-0001", [], config)
    shell = next(line.split() for line in text.splitlines() if line.strip().startswith("make shell"))
    assert f"CONFIG={config}" in shell and f"LAKE_ROOT={filled_lake}" in shell, text
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text(encoding="utf-8")
    assert '--config "$(CONFIG)") shell' in makefile  # `make shell CONFIG=FILE` passes it on
    sql = next(line for line in text.splitlines() if " sql " in line)
    args = shlex.split(sql)
    assert args[0] == ".venv/bin/marketlake" and "--config" in args, sql
    r = runner.invoke(cli, [*args[1:], "--format", "csv"])
    assert r.exit_code == 0, r.output
    test_period = next(line for line in r.stdout.splitlines() if line.startswith("test,"))
    # demo.toml's dates: the lake's three 2024 bars all fall after its validation_end, in the test period
    # (the built-in defaults, which this folder would give, cut the range 70/15/15 by fractions)
    assert test_period.split(",")[2] == "2024-01-01T00:00:00+00:00", r.stdout

"""The Makefile's targets that read the settings pass `CONFIG=FILE` on as --config and `ARGS="..."` as the
command's own flags, where the command line takes them (proved by running the very command `make -n` prints
through the command line: `make -n` runs nothing, not even the install its recipes depend on)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from lake.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _recipe(target: str, *assignments: str, env: dict[str, str] | None = None) -> list[str]:
    """The marketlake command `make -n TARGET ...` would run, split as the shell splits it."""
    clean = {k: v for k, v in os.environ.items() if k not in ("CONFIG", "ARGS", "MAKEFLAGS", "MFLAGS")}
    r = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, *assignments],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=True,
    )
    (line,) = [x for x in r.stdout.splitlines() if x.startswith(".venv/bin/marketlake")]
    return shlex.split(line)


def test_make_train_passes_config_and_args_on(tmp_path: Path) -> None:
    """`make train CONFIG=demo.toml` ran `marketlake train` on ./marketlake.toml, silently, and there was no
    way to give train a flag through make. (was: `.venv/bin/marketlake train` whatever was given)"""
    args = _recipe("train", "CONFIG=my settings.toml", "ARGS=--iterations 3 --seed 1")
    assert args == [
        ".venv/bin/marketlake",
        "--config",
        "my settings.toml",
        "train",
        "--iterations",
        "3",
        "--seed",
        "1",
    ], args
    # nothing given (or a CONFIG / ARGS in the environment, someone else's): the command as it was
    assert _recipe("train") == [".venv/bin/marketlake", "train"]
    assert _recipe("train", env={"CONFIG": "x.toml", "ARGS": "--seed 9"}) == [".venv/bin/marketlake", "train"]

    # the command line takes them where make puts them: the settings file is read (a wrong one refused,
    # named), and the flags are train's (a wrong one refused by train, named)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nwindow = 0\n")
    lake = tmp_path / "lake"
    (lake / "datasets").mkdir(parents=True)
    runner = CliRunner()
    r = runner.invoke(cli, ["--lake", str(lake), *_recipe("train", f"CONFIG={bad}", "ARGS=--seed 1")[1:]])
    assert r.exit_code != 0 and str(bad) in r.output and "window" in r.output, r.output
    r = runner.invoke(cli, ["--lake", str(lake), *_recipe("train", "ARGS=--iterations 0")[1:]])
    assert r.exit_code == 2 and "--iterations" in r.output, r.output


@pytest.mark.parametrize("target", ["ingest", "check", "demo"])
def test_the_other_targets_that_read_settings_pass_them_on_too(target: str) -> None:
    """`make check CONFIG=FILE` checked the lake by ./marketlake.toml's rules; `make demo CONFIG=FILE` now
    reaches the demo, which refuses it (its own demo.toml), instead of dropping it silently."""
    args = _recipe(target, "CONFIG=x.toml", "ARGS=--help")
    assert args == [".venv/bin/marketlake", "--config", "x.toml", target, "--help"], args
    r = CliRunner().invoke(cli, args[1:])
    assert r.exit_code == 0 and "Usage:" in r.output, r.output


def test_every_target_that_takes_config_or_args_says_so_in_its_help() -> None:
    r = subprocess.run(["make", "-C", str(ROOT), "-s", "help"], capture_output=True, text=True, check=True)
    helps = {line.split()[1]: line for line in r.stdout.splitlines() if line.strip().startswith("make ")}
    for target in ("train", "ingest", "check", "demo"):
        assert "ARGS=" in helps[target], helps[target]
    for target in ("train", "ingest", "check", "shell"):
        assert "CONFIG=FILE" in helps[target], helps[target]


def test_train_names_the_settings_file_it_reads_not_only_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one line train says about its settings: the file's absolute path when there is one (was: only the
    built-in defaults were said, a file never)."""
    from cli.reading import settings_line

    config = tmp_path / "mine.toml"
    config.write_text("[train]\nseed = 1\n")
    monkeypatch.chdir(tmp_path)
    line = settings_line(load_settings(Path("mine.toml")))
    assert line.startswith(f"settings: {config} (") and "\n" not in line, line
    monkeypatch.delenv("MARKETLAKE_CONFIG", raising=False)
    assert settings_line(Settings()) == (
        f"settings: the built-in defaults (no marketlake.toml in {tmp_path}; --config FILE or "
        "$MARKETLAKE_CONFIG to use one)"
    )

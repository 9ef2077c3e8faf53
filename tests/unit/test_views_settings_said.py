"""The views follow a settings file (bar_quality, eligibility, features, splits), and ./marketlake.toml is
read from the working folder: the same lake answers differently from another folder. What shows the views
to a person says which settings they use, once, on stderr: `marketlake sql` and `marketlake shell` in a
terminal, and `lake.connect()` when it reads the settings itself. A writable `lake.connect()` that makes a
new lake says so, naming the folder."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

import lake
from cli import cli

# (importlib: the package's attribute `lake.connect` is the function connect, not the module)
connect_module = importlib.import_module("lake.connect")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr is a terminal (CliRunner's is not)."""
    # (importlib: the package's attribute `cli.main` is the function main, not the module)
    monkeypatch.setattr(
        importlib.import_module("cli.main"), "_stderr_is_terminal", lambda: True, raising=False
    )


@pytest.fixture(autouse=True)
def _nothing_said_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connect_module, "_SAID_SETTINGS", set())


def _settings_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("settings:")]


@pytest.mark.usefixtures("terminal")
@pytest.mark.parametrize("command", [["sql", "SELECT count(*) FROM bars"], ["shell"]])
def test_sql_and_shell_name_the_settings_file_the_views_use(
    runner: CliRunner,
    filled_lake: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    monkeypatch.setattr("cli.reading.subprocess.call", lambda *a, **k: 0)  # no DuckDB shell started
    base = ["--lake", str(filled_lake)]
    r = runner.invoke(cli, [*base, *command])
    assert r.exit_code == 0, r.output
    (line,) = _settings_lines(r.stderr)
    assert "built-in defaults" in line and str(tmp_path) in line, r.stderr  # no marketlake.toml here
    assert _settings_lines(r.stdout) == [], r.stdout  # stderr only: a query's rows stay clean

    (tmp_path / "marketlake.toml").write_text('[data]\nsession = "extended"\n')
    r = runner.invoke(cli, [*base, *command])
    assert r.exit_code == 0, r.output
    assert _settings_lines(r.stderr) == [
        f"settings: {tmp_path / 'marketlake.toml'} (the views follow them; another file: --config FILE)"
    ], r.stderr

    other = tmp_path / "other.toml"
    other.write_text("[data]\n")
    r = runner.invoke(cli, [*base, "--config", str(other), *command])
    assert r.exit_code == 0 and str(other) in _settings_lines(r.stderr)[0], r.output

    r = runner.invoke(cli, [*base, "--quiet", *command])
    assert r.exit_code == 0 and _settings_lines(r.stderr) == [], r.output


def test_sql_into_a_pipe_or_a_file_says_nothing_more(runner: CliRunner, filled_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", "SELECT 1 AS one", "--format", "csv"])
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == "one\n1\n", r.output


def test_connect_names_the_settings_it_read_once_per_file(
    filled_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake.connect(filled_lake, read_only=True).close()
    lake.connect(filled_lake, read_only=True).close()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "the built-in defaults" in err[0] and str(tmp_path) in err[0], err

    folder = tmp_path / "A"
    folder.mkdir()
    (folder / "marketlake.toml").write_text('[data]\nsession = "extended"\n')
    monkeypatch.chdir(folder)
    lake.connect(filled_lake, read_only=True).close()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(folder / "marketlake.toml") in err[0], err

    lake.connect(filled_lake, read_only=True, settings=lake.config.load_settings()).close()
    assert capsys.readouterr().err == ""  # settings handed in: the caller chose them


def test_a_writable_connect_that_makes_a_new_lake_warns_naming_it(
    filled_lake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    new = tmp_path / "typo" / "lake"
    with caplog.at_level(logging.WARNING, logger="marketlake"):
        lake.connect(new).close()  # the contract: read_only=False creates it
    assert (new / "datasets").is_dir()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(new) in warning.getMessage() and "read_only=True" in warning.getMessage()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="marketlake"):
        lake.connect(new).close()  # there now: nothing to say
        lake.connect(filled_lake).close()
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []

"""The notebook's first cell picks the lake, the runs folder and the settings file as its text says: a relative
path from the environment is taken from the repository (Jupyter starts the kernel in notebooks/), the demo
lake is read with demo.toml however it is named, and runs are looked for where the command line puts them
([train] runs_dir, else runs/ beside the lake). (The whole notebook runs in tests/integration/test_notebook.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import lake
import lake.config

REPO = Path(__file__).resolve().parents[2]


def _first_cell(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, Any]:
    nb = json.loads((REPO / "notebooks" / "explore.ipynb").read_text(encoding="utf-8"))
    code = next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    for k in ("LAKE_ROOT", "MARKETLAKE_RUNS", "MARKETLAKE_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    seen: dict[str, Any] = {}
    real = lake.config.load_settings
    monkeypatch.setattr(
        lake.config, "load_settings", lambda path: real(seen.setdefault("settings", Path(path)))
    )
    monkeypatch.setattr(lake, "connect", lambda root, **kw: seen.setdefault("lake", Path(root)))
    monkeypatch.chdir(REPO / "notebooks")  # where Jupyter starts the kernel
    scope: dict[str, Any] = {}
    exec(compile(code, "explore.ipynb[1]", "exec"), scope)
    return {"lake": seen["lake"], "settings": seen["settings"], "runs": scope["RUNS"]}


def test_the_demo_lake_is_read_with_demo_toml_however_it_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ({}, {"LAKE_ROOT": "data/demo/lake"}, {"LAKE_ROOT": str(REPO / "data" / "demo" / "lake")}):
        got = _first_cell(monkeypatch, env)
        assert got["lake"] == REPO / "data" / "demo" / "lake", env
        assert got["settings"] == REPO / "demo.toml", env
        assert got["runs"] == REPO / "data" / "demo" / "runs", env


def test_another_lake_is_read_with_the_repositorys_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    got = _first_cell(monkeypatch, {"LAKE_ROOT": str(tmp_path / "lake")})
    assert got["lake"] == tmp_path / "lake"
    assert got["settings"] == REPO / "marketlake.toml"
    assert got["runs"] == tmp_path / "runs"  # beside the lake, as train puts them
    got = _first_cell(monkeypatch, {"LAKE_ROOT": str(tmp_path / "lake"), "MARKETLAKE_CONFIG": "demo.toml"})
    assert got["settings"] == REPO / "demo.toml"
    monkeypatch.setenv("HOME", str(tmp_path))
    got = _first_cell(monkeypatch, {"LAKE_ROOT": "~/mylake"})  # as the command line reads it
    assert got["lake"] == tmp_path / "mylake"


def test_runs_are_looked_for_where_the_command_line_puts_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`marketlake train` puts its run folders in [train] runs_dir (default: runs/ beside the lake) and
    `evaluate` looks there: the notebook looks there too, with the same function (rl.runlog.runs_folder), a
    relative runs_dir taken from the repository, where `make train` runs. A MARKETLAKE_RUNS, which no command
    reads, is not read. (was: MARKETLAKE_RUNS, else runs/ beside the lake, whatever runs_dir said)"""
    from lake.config import load_settings
    from rl.runlog import runs_folder

    config = tmp_path / "mine.toml"
    config.write_text('[train]\nruns_dir = "experiments/runs"\n')
    env = {"LAKE_ROOT": str(tmp_path / "lake"), "MARKETLAKE_CONFIG": str(config), "MARKETLAKE_RUNS": "x"}
    got = _first_cell(monkeypatch, env)
    monkeypatch.chdir(REPO)  # where `make train` runs the command line
    cli = runs_folder(tmp_path / "lake", load_settings(config)).absolute()
    assert got["runs"] == cli == REPO / "experiments" / "runs", (got["runs"], cli)
    config.write_text(f'[train]\nruns_dir = "{tmp_path / "kept"}"\n')
    assert _first_cell(monkeypatch, env)["runs"] == tmp_path / "kept"

"""`marketlake evaluate RUN_ID` reads a training run's folder (settings.json, status.json, norm.json,
checkpoints/best.pt): a missing or damaged file, or files that do not belong together, is one line naming
the run, the file and the reason and what to do (exit 1), never a traceback, never "interrupted" (an empty
checkpoint raised EOFError, which click reports as a Ctrl-C), and nothing is evaluated or recorded. A
garbage `periods` entry is refused too: it would turn off the guard that keeps the evaluation clear of the
bars the run trained on. And the run folder's files are written durably (fsynced before their rename)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
import torch
from click.testing import CliRunner

import rl.train
from cli import cli
from lake.config import Settings
from lake.errors import MarketlakeError
from rl import runlog
from rl.train import load_policy, train
from tests.unit.test_ppo_train import TINY, build_lake

REDO = "restore it from a copy, or train the run again (`marketlake train`)"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A lake and one healthy training run folder (the tiny run of test_ppo_train)."""
    base = tmp_path_factory.mktemp("runfolder")
    root = base / "lake"
    build_lake(root)
    result = train(root, Settings(), TINY, runs_dir=base / "runs")
    assert result.status == "finished" and result.best_checkpoint is not None
    return root, result.run_dir


def _copy(trained: tuple[Path, Path], tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """(lake, a copy of the run folder named `name` in a runs folder of its own, a config naming it)."""
    root, run_dir = trained
    runs = tmp_path / "runs"
    copy = runs / name
    shutil.copytree(run_dir, copy)
    config = tmp_path / "marketlake.toml"
    config.write_text(f"[train]\nruns_dir = {json.dumps(str(runs))}\n", encoding="utf-8")
    return root, copy, config


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _edit(name: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        got = change(_json(run / name))
        (run / name).write_text(json.dumps(got), encoding="utf-8")

    return damage


def _set(name: str, dotted: str, value: Any) -> Callable[[Path], None]:
    def change(d: dict[str, Any]) -> dict[str, Any]:
        *path, last = dotted.split(".")
        at = d
        for key in path:
            at = at[key]
        at[last] = value
        return d

    return _edit(name, change)


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_bytes(data)

    return damage


def _delete(name: str) -> Callable[[Path], None]:
    return lambda run: (run / name).unlink()


def _truncate(run: Path) -> None:
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])


def _folder(run: Path) -> None:
    best = run / "checkpoints" / "best.pt"
    best.unlink()
    best.mkdir()


def _other_torch_file(run: Path) -> None:
    torch.save({"weights": [1, 2, 3]}, run / "checkpoints" / "best.pt")


def _shorter_norm(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v[:-1] for k, v in d.items()}


def _zero_std(d: dict[str, Any]) -> dict[str, Any]:
    d["std"][3] = 0
    return d


def _nan_mean(d: dict[str, Any]) -> dict[str, Any]:
    d["mean"][0] = float("nan")
    return d


def _flip_short(d: dict[str, Any]) -> dict[str, Any]:
    d["env"]["allow_short"] = not d["env"]["allow_short"]
    return d


def _bogus_env_key(d: dict[str, Any]) -> dict[str, Any]:
    d["env"]["bogus"] = 1
    return d


def _no_periods(d: dict[str, Any]) -> dict[str, Any]:
    del d["periods"]
    return d


DAMAGE: list[tuple[str, Callable[[Path], None], str, str]] = [
    # (case, damage, the file named, what is said)
    ("settings-missing", _delete("settings.json"), "settings.json", "is missing"),
    ("settings-empty-object", _write("settings.json", b"{}"), "settings.json", "has no 'env' table"),
    (
        "settings-a-list",
        _write("settings.json", b"[1, 2]"),
        "settings.json",
        "holds a JSON list, not an object",
    ),
    ("settings-not-json", _write("settings.json", b"{\n"), "settings.json", "is not JSON"),
    ("env-unknown-key", _edit("settings.json", _bogus_env_key), "settings.json", "'env' table this version"),
    (
        "env-bad-value",
        _set("settings.json", "env.commission", 7),
        "settings.json",
        "'env' table this version",
    ),
    (
        "env-window-changed",
        _set("settings.json", "env.window", 9),
        "settings.json",
        "says window 9, but checkpoints/best.pt's network was built for windows of 8 bars",
    ),
    ("env-short-changed", _edit("settings.json", _flip_short), "settings.json", "do not belong together"),
    (
        "data-settings-value",
        _set("settings.json", "data_settings.max_missing_ratio", "abc"),
        "settings.json",
        "has a wrong 'data_settings' (key 'max_missing_ratio'",
    ),
    (
        "data-settings-split",
        _set("settings.json", "data_settings.split_method", "dates"),
        "settings.json",
        "key 'split_method': must be one of fraction, date",
    ),
    ("data-settings-not-a-table", _set("settings.json", "data_settings", 3), "settings.json", "not a table"),
    (
        "periods-garbage-end",
        _set("settings.json", "periods.train.end_at", "garbage"),
        "settings.json",
        "'periods.train' that is not a period",
    ),
    (
        "periods-garbage-entry",
        _set("settings.json", "periods.validation", "garbage"),
        "settings.json",
        "'periods.validation' that is not a period",
    ),
    ("periods-not-a-table", _set("settings.json", "periods", [1]), "settings.json", "has no train period"),
    ("periods-missing", _edit("settings.json", _no_periods), "settings.json", "has no 'periods'"),
    ("seed-garbage", _set("settings.json", "ppo.seed", "x"), "settings.json", "'ppo.seed'"),
    ("status-not-json", _write("status.json", b"nope"), "status.json", "is not JSON"),
    ("norm-missing", _delete("norm.json"), "norm.json", "is missing"),
    ("norm-not-json", _write("norm.json", b""), "norm.json", "is not JSON"),
    ("norm-empty-object", _write("norm.json", b"{}"), "norm.json", "has no list of feature names"),
    ("norm-zero-std", _edit("norm.json", _zero_std), "norm.json", "has a standard deviation of 0 for"),
    ("norm-nan-mean", _edit("norm.json", _nan_mean), "norm.json", "has a mean of nan for"),
    ("norm-one-feature-short", _edit("norm.json", _shorter_norm), "norm.json", "do not belong together"),
    ("best-truncated", _truncate, "checkpoints/best.pt", "is not a readable checkpoint ("),
    (
        "best-garbage",
        _write("checkpoints/best.pt", b"garbage!" * 64),
        "checkpoints/best.pt",
        "not a readable",
    ),
    (
        "best-empty",
        _write("checkpoints/best.pt", b""),
        "checkpoints/best.pt",
        "readable checkpoint (EOFError",
    ),
    ("best-a-folder", _folder, "checkpoints/best.pt", "is a folder, not a checkpoint file"),
    ("best-another-file", _other_torch_file, "checkpoints/best.pt", "is not a checkpoint of a training run"),
]


def test_a_healthy_copy_of_the_run_evaluates(
    runner: CliRunner, trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """The copies below are damaged one file at a time: the copy itself is sound."""
    root, run, config = _copy(trained, tmp_path, "healthy")
    r = runner.invoke(cli, ["--lake", str(root), "--config", str(config), "--quiet", "evaluate", "healthy"])
    assert r.exit_code == 0, r.output
    assert (run / "evaluation-test.json").is_file()


@pytest.mark.parametrize(("case", "damage", "name", "says"), DAMAGE, ids=[c[0] for c in DAMAGE])
def test_a_damaged_run_folder_is_one_line_naming_the_file(
    runner: CliRunner,
    trained: tuple[Path, Path],
    tmp_path: Path,
    case: str,
    damage: Callable[[Path], None],
    name: str,
    says: str,
) -> None:
    root, run, config = _copy(trained, tmp_path, case)
    damage(run)
    before = runlog.list_runs(root)
    r = runner.invoke(cli, ["--lake", str(root), "--config", str(config), "--quiet", "evaluate", case])
    assert r.exit_code == 1, r.output
    assert r.output.startswith(f"error: run {case}: {run / name} "), r.output
    assert says in r.output and r.output.rstrip().endswith(REDO), r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output
    assert "interrupted" not in r.output and "Aborted" not in r.output, r.output
    assert runlog.list_runs(root) == before, "a refused evaluation recorded a run"
    assert not (run / "evaluation-test.json").exists()


def test_load_policy_names_the_damaged_file_too(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _root, run, _config = _copy(trained, tmp_path, "direct")
    load_policy(run)  # sound
    (run / "checkpoints" / "best.pt").write_bytes(b"")
    with pytest.raises(
        MarketlakeError, match=r"checkpoints/best\.pt is not a readable checkpoint \(EOFError"
    ):
        load_policy(run)


def test_an_empty_checkpoint_is_an_error_not_a_ctrl_c_from_the_command_line(
    trained: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`: > RUN/checkpoints/best.pt; marketlake evaluate RUN`: torch.load raised EOFError, which click turns
    into Abort, which the command line reported as a Ctrl-C ("interrupted", 130)."""
    from cli.main import main

    root, run, config = _copy(trained, tmp_path, "empty-best")
    (run / "checkpoints" / "best.pt").write_bytes(b"")
    argv = ["marketlake", "--lake", str(root), "--config", str(config), "--quiet", "evaluate", "empty-best"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    assert done.value.code == 1, err
    assert f"error: run empty-best: {run / 'checkpoints' / 'best.pt'} is not a readable checkpoint" in err, (
        err
    )
    assert "interrupted" not in err, err


# --- the command line's Abort: a Ctrl-C is 130, an EOFError is an error --------------------------------------


def _group() -> click.Group:
    from cli.main import handle_errors

    @click.group()
    def group() -> None:
        pass

    @group.command("eof")
    def eof() -> None:
        raise EOFError("Ran out of input")

    @group.command("eof-wrapped")
    @handle_errors
    def eof_wrapped() -> None:
        raise EOFError("Ran out of input")

    @group.command("prompt")
    def prompt() -> None:
        click.prompt("value")  # stdin is empty: click raises Abort with the EOFError as its context

    @group.command("ctrl-c")
    def ctrl_c() -> None:
        raise KeyboardInterrupt

    @group.command("abort")
    def abort() -> None:
        raise click.Abort

    return group


@pytest.mark.parametrize(
    ("command", "code", "says"),
    [
        ("eof", 1, "error: a file or the input ended early (EOFError: Ran out of input)"),
        ("eof-wrapped", 1, "error: a file or the input ended early (EOFError: Ran out of input)"),
        ("prompt", 1, "error: a file or the input ended early (EOFError"),
        ("ctrl-c", 130, "interrupted"),
        ("abort", 1, "aborted"),
    ],
)
def test_only_a_ctrl_c_is_reported_as_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str, code: int, says: str
) -> None:
    import importlib
    import io

    module = importlib.import_module("cli.main")  # (the package's `main` attribute is the function)
    monkeypatch.setattr(module, "cli", _group())
    monkeypatch.setattr(sys, "argv", ["marketlake", command])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(SystemExit) as done:
        module.main()
    err = capsys.readouterr().err
    assert done.value.code == code, err
    assert says in err and "Traceback" not in err, err
    if code != 130:
        assert "interrupted" not in err, err


# --- durable writes ------------------------------------------------------------------------------------------


def test_the_run_folders_files_are_fsynced_before_their_rename(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_checkpoint and the JSON files of a run folder: the temporary file's bytes are on disk before
    the rename makes it the file (a power cut must not leave an empty best.pt or settings.json)."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(("rename", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    agent, _ = rl.train.load_agent(trained[1] / "checkpoints" / "best.pt")
    rl.train.save_checkpoint(tmp_path / "best.pt", agent, 3, 0.5)
    rl.train._write_json(tmp_path / "status.json", {"status": "running"})
    renames = [(i, src) for i, (kind, src) in enumerate(events) if kind == "rename"]
    assert len(renames) == 2, events
    for i, src in renames:
        assert ("fsync", src) in events[:i], f"{src} renamed before it was fsynced: {events}"
    assert torch.load(tmp_path / "best.pt", weights_only=True)["iteration"] == 3
    assert _json(tmp_path / "status.json") == {"status": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "status.json"]  # no temporary left


def test_a_validation_evaluation_says_so_with_its_costs_gaps_and_steps(
    runner: CliRunner, trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """`marketlake evaluate --period validation`: the table marks the period not out of sample and gives the
    costs paid and one gap line per symbol; the per-step file is written; `marketlake runs` marks its row."""
    import csv
    import io

    root, run, config = _copy(trained, tmp_path, "val-cli")
    args = ["--lake", str(root), "--config", str(config), "--quiet"]
    r = runner.invoke(cli, [*args, "evaluate", "val-cli", "--period", "validation"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "(validation: not out of sample, it chose the model)" in text and "costs" in text, r.output
    assert "Gaps per symbol" in text and "lost to warm-up" in text, r.output
    assert (run / "evaluation-validation.parquet").is_file()
    r = runner.invoke(cli, [*args, "runs", "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = [x for x in csv.DictReader(io.StringIO(r.stdout)) if x["run_dir"] == str(run)]
    assert len(rows) == 1 and rows[0]["result"].startswith("validation (not out of sample): agent return"), (
        r.output
    )
    assert "; buy & hold return " in rows[0]["result"], r.output

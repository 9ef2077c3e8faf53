"""A failed run recorded by `recorded_run` (every evaluation) says why in its metrics' `error`, as a training
run's row does, and `marketlake runs` shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from rl import runlog


def test_a_failed_evaluation_records_its_error_and_runs_shows_it(
    lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    with pytest.raises(RuntimeError), runlog.recorded_run(lake_root, "evaluate", {}, run_id="e-broke") as run:
        run.metrics = {"period": "test"}
        raise RuntimeError("the test period has no bars left")
    (row,) = runlog.list_runs(lake_root)
    assert row["status"] == "failed", row
    assert row["metrics"] == {"period": "test", "error": "RuntimeError: the test period has no bars left"}
    table = runner.invoke(cli, ["--lake", str(lake_root), "runs"])
    assert table.exit_code == 0 and "error: RuntimeError: the test period has no bars left" in table.stdout
    (listed,) = json.loads(runner.invoke(cli, ["--lake", str(lake_root), "runs", "--format", "json"]).stdout)
    assert listed["result"] == "error: RuntimeError: the test period has no bars left", listed


def test_an_error_already_recorded_is_kept_and_ctrl_c_records_none(lake_root: Path) -> None:
    with pytest.raises(ValueError), runlog.recorded_run(lake_root, "evaluate", {}, run_id="e-own") as run:
        run.metrics = {"error": "what the run itself said"}
        raise ValueError("later")
    with pytest.raises(KeyboardInterrupt), runlog.recorded_run(lake_root, "evaluate", {}, run_id="e-int"):
        raise KeyboardInterrupt
    rows = {r["run_id"]: r for r in runlog.list_runs(lake_root)}
    assert rows["e-own"]["metrics"] == {"error": "what the run itself said"}
    assert rows["e-int"]["status"] == "interrupted" and not rows["e-int"]["metrics"], rows["e-int"]

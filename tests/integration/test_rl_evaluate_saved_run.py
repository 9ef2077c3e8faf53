"""A saved training run, evaluated: the numbers training printed come back, the test period repeats itself,
and both runs are rows of `runs` (the evaluation's parent is the training run)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import pytest

from lake.config import Settings
from lake.errors import MarketlakeError
from rl import runlog
from rl.evaluate import evaluate, evaluate_run, find_run_dir, render_table, train_and_evaluate
from tests.conftest import bars_table
from tests.unit.test_rl_evaluate import walk_closes, write_bars

pytestmark = pytest.mark.integration
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def test_evaluate_reproduces_what_train_printed(lake_root: Path, tmp_path: Path) -> None:
    write_bars(lake_root, "BTCUSDT", bars_table(T0, walk_closes(1440, 1, 60000.0)))
    write_bars(lake_root, "ETHUSDT", bars_table(T0, walk_closes(1440, 2, 3000.0)))
    settings = Settings(
        train={
            "num_iterations": 2,
            "episodes_per_iteration": 4,
            "batch_size": 64,
            "validate_every": 1,
            "episode_length": 120,
            "symbols": SYMBOLS,
            "interval": "1m",
            "seed": 3,
            "device": "cpu",
        }
    )
    printed: list[str] = []
    result, report = train_and_evaluate(lake_root, settings, runs_dir=tmp_path / "runs", say=printed.append)
    assert result.status == "finished" and result.best_score is not None and report is not None
    shown = [
        m.group(1) for line in printed if (m := re.search(r"best validation score ([-+]?\d+\.\d+)", line))
    ]
    assert len(shown) == 1, printed
    status = json.loads((result.run_dir / "status.json").read_text())
    saved = json.loads((result.run_dir / "evaluation-test.json").read_text())
    assert report.parent_run_id == result.run_id and report.seed == 3

    # the validation score training chose its model by: the mean over symbols of the net log return
    val = evaluate(lake_root, settings, result.run_dir, "validation", record=False, resamples=400)
    score = sum(math.log1p(val.metrics[s]["agent"].total_return) for s in SYMBOLS) / len(SYMBOLS)
    assert score == pytest.approx(status["best_score"], rel=1e-9, abs=1e-12)
    assert float(shown[0]) == pytest.approx(score, abs=6e-6)  # as printed, to its 5 decimals

    # the saved run evaluated again, by id as the command line does: the numbers train printed
    assert find_run_dir(lake_root, result.run_id, settings) == result.run_dir
    again = evaluate_run(lake_root, settings, result.run_id, "test")
    assert again.metrics == report.metrics and again.sharpe_ci == report.sharpe_ci
    assert saved["overall"]["agent"] == again.metrics["overall"]["agent"].to_dict()
    assert render_table(again) == render_table(report)

    rows = runlog.list_runs(lake_root)
    assert [r["kind"] for r in rows] == ["evaluate", "evaluate", "train"]
    assert {r["parent_run_id"] for r in rows if r["kind"] == "evaluate"} == {result.run_id}
    train_row = rows[-1]
    assert train_row["metrics"]["best_score"] == status["best_score"]
    assert (
        train_row["data_snapshot"]
        == runlog.snapshot_for_run(lake_root, settings, SYMBOLS, "1m", ["train", "validation"]).hash
    )
    assert rows[0]["data_snapshot"] != train_row["data_snapshot"]  # another period, other bars
    # an evaluation's id is listed beside the training run's, but is not one to evaluate
    with pytest.raises(MarketlakeError, match=f"is an evaluate run of training run {result.run_id}, not a"):
        find_run_dir(lake_root, rows[0]["run_id"], settings)


def test_an_unknown_run_is_a_clear_error(lake_root: Path) -> None:
    with pytest.raises(MarketlakeError, match="no training run 'r-none'"):
        find_run_dir(lake_root, "r-none", Settings())


def test_a_failed_training_run_is_named_as_failed(lake_root: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), runlog.recorded_run(lake_root, "train", {}, say=lambda _m: None) as run:
        raise RuntimeError("stopped before any model")
    with pytest.raises(MarketlakeError, match=f"training run '{run.run_id}' is failed and kept no model"):
        find_run_dir(lake_root, run.run_id, Settings())


def test_a_copied_lake_finds_its_own_copy_of_the_run(tmp_path: Path) -> None:
    """A row records its run's folder absolute: in a copy of the lake and its runs folder, the copy's run is
    the one to read and write (it was the original's, whose evaluation files the copy's evaluate replaced)."""
    import shutil

    original = tmp_path / "a" / "lake"
    original.mkdir(parents=True)
    run_dir = tmp_path / "a" / "runs" / "r-kept"
    run_dir.mkdir(parents=True)
    with runlog.recorded_run(original, "train", {}, run_id="r-kept", run_dir=run_dir, say=lambda _m: None):
        pass
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = tmp_path / "b" / "lake"
    assert runlog.list_runs(copy)[0]["run_dir"] == str(run_dir)  # the original's folder, recorded
    assert find_run_dir(copy, "r-kept", Settings()) == copy.parent / "runs" / "r-kept"
    assert find_run_dir(original, "r-kept", Settings()) == run_dir

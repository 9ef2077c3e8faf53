"""A saved training run, evaluated: the numbers training printed come back, the test period repeats itself,
and both runs are rows of `runs` (the evaluation's parent is the training run)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest

from lake.config import Settings
from rl import runlog
from rl.evaluate import evaluate, evaluate_run, find_run_dir, record_training
from rl.train import train
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
    result = train(lake_root, settings, runs_dir=tmp_path / "runs", say=printed.append)
    assert result.status == "completed" and result.best_score is not None
    assert any(f"best validation score {result.best_score}" in line for line in printed)
    status = json.loads((result.run_dir / "status.json").read_text())

    trained = record_training(lake_root, settings, result.run_dir)
    assert trained.run_id == result.run_id and trained.status == "finished"

    # the validation score training chose its model by: the mean over symbols of the net log return
    val = evaluate(lake_root, settings, result.run_dir, "validation", record=False, resamples=100)
    score = sum(math.log1p(val.metrics[s]["agent"].total_return) for s in SYMBOLS) / len(SYMBOLS)
    assert score == pytest.approx(status["best_score"], rel=1e-9, abs=1e-12)

    assert find_run_dir(lake_root, result.run_id, settings) == result.run_dir
    first = evaluate(lake_root, settings, result.run_dir, "test", resamples=200)
    saved = json.loads((result.run_dir / "evaluation-test.json").read_text())
    second = evaluate_run(lake_root, settings, result.run_id, "test")  # by id, as the command line does
    assert second.metrics == first.metrics
    assert second.sharpe_ci["overall"] is not None and first.sharpe_ci["overall"] is not None
    assert second.sharpe_ci["overall"].difference == first.sharpe_ci["overall"].difference
    assert saved["overall"]["agent"] == second.metrics["overall"]["agent"].to_dict()
    assert first.seed == 3

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


def test_an_unknown_run_is_a_clear_error(lake_root: Path) -> None:
    from lake.errors import MarketlakeError

    with pytest.raises(MarketlakeError, match="no training run 'r-none'"):
        find_run_dir(lake_root, "r-none", Settings())

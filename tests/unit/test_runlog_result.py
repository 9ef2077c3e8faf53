"""The `result` of a killed training run in `marketlake runs` shows its best checkpoint beside the killed
note: the run kept it, and it can be evaluated."""

from __future__ import annotations

import datetime as dt
import json

from rl import runlog


def _row(metrics: dict[str, object]) -> dict[str, object]:
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    return {
        "run_id": "r-k",
        "kind": "train",
        "status": "interrupted",
        "started_at": start,
        "finished_at": start + dt.timedelta(hours=1),
        "parent_run_id": None,
        "data_snapshot": "h",
        "code_version": None,
        "run_dir": None,
        "config": {},
        "metrics": metrics,
    }


def test_a_killed_training_shows_its_best_checkpoint_beside_the_killed_note() -> None:
    row = _row({"killed": runlog.KILLED, "best_score": 0.0123, "best_iteration": 4, "iterations": 7})
    (listed,) = json.loads(runlog.render_runs([row], "json"))
    assert listed["result"].startswith("killed: the process ended without recording its end"), listed
    assert listed["result"].endswith("; best validation score +0.01230 at iteration 4 of 7"), listed
    assert "best validation score +0.01230 at iteration 4 of 7" in runlog.render_runs([row], "csv")


def test_a_killed_run_without_a_checkpoint_shows_the_note_alone() -> None:
    (listed,) = json.loads(runlog.render_runs([_row({"killed": runlog.KILLED, "iterations": 1})], "json"))
    assert listed["result"].startswith("killed: ") and "best" not in listed["result"], listed

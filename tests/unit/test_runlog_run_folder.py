"""`runlog.run_folder`: the folder of a training run that belongs to this lake (the rule the repair of dead
runs follows, public for `evaluate RUN_ID`): a lake copied without its runs folder records the original's
folders, which are never the copy's; `foreign_run_folder` says whose they are."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from ingest.sessions import land
from rl import runlog


def _finished_training(root: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps({"run_id": folder.name, "lake": str(root)}))
    (folder / "status.json").write_text(json.dumps({"status": "finished"}))
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    runlog.write_run(
        root,
        runlog.RunRecord(
            run_id=folder.name,
            kind="train",
            started_at=start,
            config={},
            status="finished",
            finished_at=start + dt.timedelta(hours=1),
            run_dir=str(folder),
        ),
    )


def test_a_copied_lakes_row_does_not_lead_to_the_originals_folder(tmp_path: Path) -> None:
    orig = tmp_path / "orig" / "lake"
    with land(orig):
        pass
    folder = tmp_path / "elsewhere" / "runs" / "r-t"  # a --runs-dir away from the lake
    _finished_training(orig, folder)
    copy = tmp_path / "copy" / "lake"
    shutil.copytree(orig, copy)

    (row,) = runlog.list_runs(orig)
    assert runlog.run_folder(orig, row) == folder
    assert runlog.foreign_run_folder(orig, row) is None

    (row,) = runlog.list_runs(copy)
    assert row["run_dir"] == str(folder)  # the copy's row records the original's folder
    assert runlog.run_folder(copy, row) is None
    why = runlog.foreign_run_folder(copy, row)
    assert why is not None and str(folder) in why and f"the lake at {orig.resolve()}" in why, why
    own = runlog.own_run_dir(copy, "r-t")
    assert str(own) in why

    shutil.copytree(folder, own)  # the run's folder copied beside the copy: the copy's own
    assert runlog.run_folder(copy, row) == own


def test_an_evaluation_row_has_no_run_folder(tmp_path: Path) -> None:
    row = {"run_id": "e1", "kind": "evaluate", "run_dir": str(tmp_path)}
    assert runlog.run_folder(tmp_path / "lake", row) is None
    assert runlog.foreign_run_folder(tmp_path / "lake", row) is None


def test_evaluate_in_a_copied_lake_never_finds_the_originals_folder(tmp_path: Path) -> None:
    """`evaluate RUN_ID` in a lake copied without the run's folder (a --runs-dir away): refused, saying whose
    the folder is, never writing the original's evaluation files; the original lake still finds it."""
    import pytest

    from lake.errors import MarketlakeError
    from rl.evaluate import find_run_dir

    orig = tmp_path / "orig" / "lake"
    with land(orig):
        pass
    folder = tmp_path / "elsewhere" / "runs" / "r-t"
    _finished_training(orig, folder)
    copy = tmp_path / "copy" / "lake"
    shutil.copytree(orig, copy)
    assert find_run_dir(orig, "r-t") == folder
    with pytest.raises(MarketlakeError, match="belongs to the lake at") as got:
        find_run_dir(copy, "r-t")
    assert str(runlog.own_run_dir(copy, "r-t")) in str(got.value)

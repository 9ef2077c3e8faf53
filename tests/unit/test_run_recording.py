"""A training run's `runs` row: listed `running` as soon as its data is read, its data snapshot taken
then (an ingest during the run does not change it), recorded even when Ctrl-C lands as it ends, mirrored
once with the state it ended in, and its folder named absolutely."""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from lake.config import Settings
from lake.errors import deferred_interrupts
from rl import mirror as mirror_module
from rl import runlog
from rl.evaluate import train_and_evaluate, training_snapshot
from rl.ppo import PPO
from tests.unit.test_features_point_in_time import write_news
from tests.unit.test_ppo_train import TINY, build_lake


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    build_lake(root)
    return root


def _rows(root: Path, runs: Path) -> list[dict[str, Any]]:
    return [
        r for r in runlog.list_runs(root, kind="train") if r["run_dir"] and Path(r["run_dir"]).parent == runs
    ]


def _article(symbol: str) -> dict[str, list[dict[str, Any]]]:
    at = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)  # inside the train period
    row = {
        "id": "mid-run",
        "published_at": at,
        "ingested_at": at,
        "title": "landed while the run trained",
        "summary": None,
        "publisher": None,
        "url": None,
        "sentiment": 0.5,
        "source": "test",
    }
    return {symbol: [row]}


def test_a_run_is_listed_running_with_its_snapshot_and_an_ingest_meanwhile_does_not_change_it(
    lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    seen: list[list[dict[str, Any]]] = []
    real = PPO.iterate

    def iterate(self: PPO) -> Any:
        if not seen:
            seen.append(_rows(lake_root, runs))  # what `marketlake runs` shows while it trains
            write_news(lake_root, _article("BTCUSDT"))  # an ingest lands news of a symbol it trains on
        return real(self)

    monkeypatch.setattr(PPO, "iterate", iterate)
    result, _ = train_and_evaluate(lake_root, Settings(), TINY, runs_dir=runs, evaluate_test=False)
    (running,) = seen[0]
    assert running["status"] == "running" and running["run_id"] == result.run_id, running
    (row,) = _rows(lake_root, runs)
    assert row["status"] == "finished", row
    # the data it read: the snapshot taken when it read it, not the lake at its end
    assert row["data_snapshot"] == running["data_snapshot"], (row, running)
    now = training_snapshot(lake_root, Settings(), result.run_dir)
    assert now.hash != row["data_snapshot"]  # the news it never read is in the lake now


def test_a_data_setting_changes_the_snapshot(lake_root: Path, tmp_path: Path) -> None:
    result, _ = train_and_evaluate(
        lake_root, Settings(), TINY, runs_dir=tmp_path / "runs", evaluate_test=False
    )
    a = training_snapshot(lake_root, Settings(), result.run_dir).hash
    b = training_snapshot(lake_root, Settings(max_gap_minutes=7), result.run_dir).hash
    assert a != b  # the features are made with it: the same hash must mean the same data


def test_a_ctrl_c_as_training_ends_still_records_the_run(
    lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ctrl_c: None
) -> None:
    runs = tmp_path / "runs"
    real = runlog.write_run

    def write_run(root: Any, record: runlog.RunRecord) -> None:
        if record.kind == "train" and record.status == "finished":
            os.kill(os.getpid(), signal.SIGINT)  # pressed to skip the evaluation, as the row is written
        real(root, record)

    monkeypatch.setattr(runlog, "write_run", write_run)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(lake_root, Settings(), TINY, runs_dir=runs)
    (row,) = _rows(lake_root, runs)
    assert row["status"] == "finished", row
    assert not list(Path(row["run_dir"]).glob("evaluation-*"))  # the Ctrl-C then skipped the evaluation


@pytest.fixture
def ctrl_c() -> Any:
    """SIGINT raises KeyboardInterrupt here, even where the test runner was started with it ignored (a
    background job of a non-interactive shell)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_deferred_interrupts_hold_ctrl_c_until_the_block_ends(
    ctrl_c: None, capsys: pytest.CaptureFixture[str]
) -> None:
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert "SIGINT: held until the run is recorded" in capsys.readouterr().err


def test_a_second_ctrl_c_stops_a_deferred_block_at_once(ctrl_c: None) -> None:
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # e.g. the block waits for the writer lock: the user insists
            done.append("not reached")
    assert done == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_turned_into_duckdbs_interrupt_is_still_sigterm() -> None:
    import lake.errors as errors

    errors._stopped_by.append(signal.SIGTERM)
    try:
        assert errors.stop_signal(RuntimeError("Query interrupted")) == signal.SIGTERM
        assert errors.stop_signal(KeyboardInterrupt()) is None  # a Ctrl-C is a Ctrl-C
        assert errors.stop_signal(errors.Terminated(signal.SIGHUP)) == signal.SIGHUP
    finally:
        errors._stopped_by.clear()


def test_a_run_whose_status_could_not_be_written_is_mirrored_failed_once(
    lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills under the run folder: status.json stays `running`; the row (lake and Supabase) says
    failed, and the running row is never mirrored (the mirror keeps the first row it takes)."""
    import rl.train

    mirrored: list[str] = []
    monkeypatch.setattr(
        mirror_module, "mirror_run", lambda _root, record, say: mirrored.append(record.status)
    )
    real_json = rl.train._write_json

    def write_json(path: Path, data: Any) -> None:
        if path.name == "status.json" and data.get("status") == "failed":
            raise OSError(28, "No space left on device")
        real_json(path, data)

    def boom(self: PPO) -> None:
        raise RuntimeError("the learner broke")

    monkeypatch.setattr(rl.train, "_write_json", write_json)
    monkeypatch.setattr(PPO, "iterate", boom)
    with pytest.raises(OSError):
        train_and_evaluate(lake_root, Settings(), TINY, runs_dir=tmp_path / "runs")
    (row,) = _rows(lake_root, tmp_path / "runs")
    assert row["status"] == "failed" and "No space left" in row["metrics"]["error"], row
    assert "the learner broke" in row["metrics"]["error"], row  # the first cause is kept beside it
    assert mirrored == ["failed"], mirrored


def test_a_relative_runs_dir_is_recorded_absolute(
    lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result, _ = train_and_evaluate(lake_root, Settings(), TINY, runs_dir=Path("relruns"), evaluate_test=False)
    assert result.run_dir.is_absolute(), result.run_dir
    (row,) = _rows(lake_root, tmp_path / "relruns")
    assert Path(row["run_dir"]).is_absolute(), row


def test_evaluate_says_when_its_run_did_not_finish_or_came_from_another_lake(
    lake_root: Path, tmp_path: Path
) -> None:
    import json

    from rl.evaluate import evaluate

    result, _ = train_and_evaluate(
        lake_root, Settings(), TINY, runs_dir=tmp_path / "runs", evaluate_test=False
    )
    said: list[str] = []
    evaluate(lake_root, Settings(), result.run_dir, "test", say=said.append, record=False)
    assert not [x for x in said if x.startswith("note:")], said  # a finished run of this lake: nothing to say

    status = result.run_dir / "status.json"
    state = json.loads(status.read_text())
    # running with no lock file (it was removed when the run was recorded): whether it runs cannot be told
    for how, words in (("running", "did not finish"), ("interrupted", "was interrupted")):
        status.write_text(json.dumps(state | {"status": how}))
        said = []
        evaluate(lake_root, Settings(), result.run_dir, "test", say=said.append, record=False)
        assert any(words in x and f"iteration {state['best_iteration']}" in x for x in said), said

    settings = result.run_dir / "settings.json"
    saved = json.loads(settings.read_text())
    settings.write_text(json.dumps(saved | {"lake": str(tmp_path / "another-lake")}))
    said = []
    evaluate(lake_root, Settings(), result.run_dir, "validation", say=said.append, record=False)
    assert any("another-lake" in x for x in said), said
    assert any("not out of sample" in x for x in said), said


def test_each_recorded_evaluation_keeps_its_own_files_and_the_table_shows_the_bars_span(
    lake_root: Path, tmp_path: Path
) -> None:
    import json

    from rl.evaluate import evaluate, render_table

    result, _ = train_and_evaluate(
        lake_root, Settings(), TINY, runs_dir=tmp_path / "runs", evaluate_test=False
    )
    first = evaluate(lake_root, Settings(), result.run_dir, "test", resamples=400)
    second = evaluate(lake_root, Settings(), result.run_dir, "test", resamples=400)
    rows = {r["run_id"]: r for r in runlog.list_runs(lake_root, kind="evaluate")}
    for report in (first, second):
        files = rows[report.run_id]["metrics"]["files"]
        saved = json.loads(Path(files["json"]).read_text())
        assert saved["run_id"] == report.run_id and Path(files["png"]).is_file(), files
    assert rows[first.run_id]["metrics"]["files"] != rows[second.run_id]["metrics"]["files"]
    latest = json.loads((result.run_dir / "evaluation-test.json").read_text())
    assert latest["run_id"] == second.run_id
    assert first.span is not None and latest["bars_span"] == list(first.span)
    assert first.span[0][:16] in render_table(first)


def test_an_evaluation_says_which_checkpoint_it_judged_and_whether_its_run_had_finished(
    lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`marketlake evaluate RUN` while RUN still trains judges the best checkpoint so far: the JSON, the runs
    row (hence the Supabase mirror, which sends the row) and `runs` say which (file, iteration, sha256) and
    that its run was running then; an evaluation of the finished run names its final best, unmarked."""
    import hashlib
    import json

    from rl.evaluate import evaluate

    runs = tmp_path / "runs"
    mirrored: list[dict[str, Any]] = []
    monkeypatch.setattr(
        mirror_module, "mirror_run", lambda _root, record, say: mirrored.append(record.to_json())
    )
    during: list[tuple[Any, bytes]] = []
    real = PPO.iterate

    def iterate(self: PPO) -> Any:
        best = list(runs.glob("*/checkpoints/best.pt"))
        if best and not during:  # as soon as best.pt appears: `marketlake evaluate RUN` in another shell
            raw = best[0].read_bytes()
            during.append(
                (evaluate(lake_root, Settings(), best[0].parent.parent, "test", resamples=400), raw)
            )
        return real(self)

    monkeypatch.setattr(PPO, "iterate", iterate)
    result, _ = train_and_evaluate(lake_root, Settings(), TINY, runs_dir=runs, evaluate_test=False)
    ((mid, raw),) = during
    monkeypatch.setattr(PPO, "iterate", real)
    final = evaluate(lake_root, Settings(), result.run_dir, "test", resamples=400)
    state = json.loads((result.run_dir / "status.json").read_text())

    rows = {r["run_id"]: r for r in runlog.list_runs(lake_root)}
    sent = {r["run_id"]: r for r in mirrored}
    for report, iteration, status in ((mid, 2, "running"), (final, state["best_iteration"], "finished")):
        saved = json.loads((result.run_dir / "evaluations" / f"{report.run_id}-test.json").read_text())
        ckpt = saved["checkpoint"]
        assert ckpt["file"] == "checkpoints/best.pt" and ckpt["iteration"] == iteration, ckpt
        assert saved["parent_status"] == status, saved["parent_status"]
        for got in (rows[report.run_id]["metrics"], sent[report.run_id]["metrics"]):
            assert got["checkpoint"] == ckpt and got["parent_status"] == status, got
    assert mid.checkpoint is not None and mid.checkpoint["sha256"] == hashlib.sha256(raw).hexdigest()
    best_now = (result.run_dir / "checkpoints" / "best.pt").read_bytes()
    assert final.checkpoint is not None and final.checkpoint["sha256"] == hashlib.sha256(best_now).hexdigest()

    listed = {
        r["run_id"]: r["result"] for r in json.loads(runlog.render_runs(runlog.list_runs(lake_root), "json"))
    }
    assert listed[mid.run_id].startswith("[judged iteration 2 of a running run"), listed[mid.run_id]
    assert not listed[final.run_id].startswith("["), listed[final.run_id]
    table = runlog.render_runs(runlog.list_runs(lake_root))
    # the result column's lines, in order (the table wraps a cell where its widths fall: read the column)
    result_column = " ".join(line.split("│")[-2] for line in table.splitlines() if line.count("│") >= 2)
    assert "[judged iteration 2 of a running run" in " ".join(result_column.split()), table


def test_status_json_says_what_runs_says_and_an_older_folders_completed_still_reads_finished(
    lake_root: Path, tmp_path: Path
) -> None:
    """status.json of a training run that ended says `finished`, as its `runs` row; a folder written by an
    older version says `completed`, and is still read as finished: its row, the evaluation's parent_status,
    the demo's reuse of its run."""
    import json

    from cli.demo import MARKER, _reusable
    from rl.evaluate import evaluate, record_training

    runs = tmp_path / "runs"
    result, _ = train_and_evaluate(lake_root, Settings(), TINY, runs_dir=runs, evaluate_test=False)
    status = result.run_dir / "status.json"
    (row,) = _rows(lake_root, runs)
    assert json.loads(status.read_text())["status"] == row["status"] == result.status == "finished", row

    status.write_text(json.dumps(json.loads(status.read_text()) | {"status": "completed"}))  # an older folder
    assert record_training(lake_root, Settings(), result.run_dir).status == "finished"
    (row,) = _rows(lake_root, runs)
    assert row["status"] == "finished", row
    report = evaluate(lake_root, Settings(), result.run_dir, "test", resamples=400, record=False, write=False)
    assert report.parent_status == "finished"
    (runs / MARKER).write_text(json.dumps({"fingerprint": "f", "run_dir": str(result.run_dir)}))
    assert _reusable(runs, "f") == result.run_dir

"""A run killed outright (SIGKILL, the OOM killer, a power cut) is not listed `running` forever: a running
run holds a `flock` on its lock file (rl.runlog.RunLock) that the kernel releases when its process dies.
`marketlake runs` shows a `running` row whose lock is free as interrupted (killed), a live one stays
`running`, and the next run started writes the repair (row, status.json, Supabase mirror once)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from ingest.sessions import land
from lake.config import Settings
from rl import mirror as mirror_module
from rl import runlog

pytestmark = pytest.mark.integration

RUN = textwrap.dedent(
    """
    import sys, time
    from rl import runlog

    with runlog.recorded_run(sys.argv[1], "evaluate", {"what": "a long evaluation"}, run_id=sys.argv[2]):
        print("running", flush=True)
        time.sleep(600)
    """
)


def _start(root: Path, run_id: str) -> subprocess.Popen[str]:
    """A child process whose run is recorded `running` (it prints `running` then), and stays so."""
    p = subprocess.Popen(
        [sys.executable, "-c", RUN, str(root), run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.strip() == "running", (line, p.stderr.read() if p.poll() is not None and p.stderr else "")
    return p


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def _kill(p: subprocess.Popen[str]) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)


def _listed(runner: CliRunner, root: Path) -> dict[str, dict[str, Any]]:
    """`marketlake runs` in its three formats, checked to agree; the JSON rows by run id."""
    r = runner.invoke(cli, ["--lake", str(root), "runs", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {x["run_id"]: x for x in json.loads(r.stdout)}
    c = runner.invoke(cli, ["--lake", str(root), "runs", "--format", "csv"])
    assert c.exit_code == 0, c.output
    for line in csv.DictReader(io.StringIO(c.stdout)):
        assert line["status"] == rows[line["run_id"]]["status"], (line, rows)
        assert json.loads(line["metrics"] or "null") == rows[line["run_id"]]["metrics"], line
    t = runner.invoke(cli, ["--lake", str(root), "runs"])
    assert t.exit_code == 0, t.output
    for run_id, row in rows.items():
        (shown,) = [x for x in t.stdout.splitlines() if run_id in x]
        assert f" {row['status']} " in shown, t.stdout
        if "killed" in (row["metrics"] or {}):
            assert "killed: the process ended without recording its end" in shown, t.stdout
    return rows


def _stored(runner: CliRunner, root: Path, run_id: str) -> dict[str, Any]:
    """The row as the lake stores it (what `sql` and the Supabase mirror see)."""
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(root),
            "sql",
            "--format",
            "json",
            f"SELECT status, finished_at, started_at, metrics FROM runs WHERE run_id = '{run_id}'",
        ],
    )
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    return dict(row)


@pytest.fixture
def mirrored(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(
        mirror_module, "mirror_run", lambda _root, record, say: sent.append((record.run_id, record.status))
    )
    return sent


def test_a_killed_run_is_listed_interrupted_and_the_next_run_repairs_it(
    lake_root: Path,
    runner: CliRunner,
    children: list[subprocess.Popen[str]],
    mirrored: list[tuple[str, str]],
) -> None:
    with land(lake_root):
        pass
    p = _start(lake_root, "r-killed")
    children.append(p)
    assert _listed(runner, lake_root)["r-killed"]["status"] == "running"  # its process lives
    _kill(p)

    row = _listed(runner, lake_root)["r-killed"]
    assert row["status"] == "interrupted", row
    assert row["metrics"]["killed"].startswith("the process ended without recording its end"), row
    assert row["finished_at"] is not None and row["finished_at"] >= row["started_at"], row
    assert _stored(runner, lake_root, "r-killed")["status"] == "running"  # listing writes nothing
    assert mirrored == []

    # the next run started (here an evaluation's record) writes the repair, and mirrors it once
    with runlog.recorded_run(lake_root, "evaluate", {}, run_id="r-next"):
        pass
    stored = _stored(runner, lake_root, "r-killed")
    assert stored["status"] == "interrupted" and stored["finished_at"] is not None, stored
    assert "without recording its end" in stored["metrics"]["killed"], stored
    assert mirrored == [("r-killed", "interrupted"), ("r-next", "finished")], mirrored
    assert not list((lake_root / "locks" / "runs").iterdir())  # no lock file left behind
    with runlog.recorded_run(lake_root, "evaluate", {}, run_id="r-after"):
        pass
    assert mirrored[2:] == [("r-after", "finished")], mirrored  # the repaired run is mirrored once only


def test_a_live_run_holding_its_lock_stays_running(
    lake_root: Path, runner: CliRunner, children: list[subprocess.Popen[str]], mirrored: list[tuple[str, str]]
) -> None:
    with land(lake_root):
        pass
    p = _start(lake_root, "r-live")
    children.append(p)
    assert runlog.repair_dead_runs(lake_root) == []
    with runlog.recorded_run(lake_root, "evaluate", {}, run_id="r-beside"):
        pass
    rows = _listed(runner, lake_root)
    assert rows["r-live"]["status"] == "running" and rows["r-live"]["metrics"] is None, rows
    assert _stored(runner, lake_root, "r-live")["status"] == "running"
    assert runlog.run_alive(lake_root, "r-live") is True
    assert ("r-live", "interrupted") not in mirrored
    _kill(p)
    assert runlog.run_alive(lake_root, "r-live") is False
    assert _listed(runner, lake_root)["r-live"]["status"] == "interrupted"


def test_a_running_row_without_a_lock_file_stays_running_with_its_liveness_unknown(
    lake_root: Path, runner: CliRunner
) -> None:
    """A row written by a version without run locks: its process may still run, so it is never called
    dead; the listing says its liveness is unknown."""
    with land(lake_root):
        pass
    old = runlog.RunRecord(
        run_id="r-old",
        kind="train",
        started_at=runlog.dt.datetime(2024, 1, 1, tzinfo=runlog.dt.UTC),
        config={},
    )
    runlog.write_run(lake_root, old)  # as an older version did: no lock
    rows = _listed(runner, lake_root)
    assert rows["r-old"]["status"] == "running", rows
    assert rows["r-old"]["metrics"]["liveness"].startswith("unknown"), rows
    t = runner.invoke(cli, ["--lake", str(lake_root), "runs"])
    assert "liveness: unknown" in t.stdout, t.stdout
    with runlog.recorded_run(lake_root, "evaluate", {}, run_id="r-next"):
        pass
    assert _stored(runner, lake_root, "r-old") == {
        "status": "running",
        "finished_at": None,
        "started_at": _stored(runner, lake_root, "r-old")["started_at"],
        "metrics": None,
    }


def test_a_training_killed_with_sigkill_is_repaired_by_the_next_train(
    tmp_path: Path, runner: CliRunner, mirrored: list[tuple[str, str]]
) -> None:
    """`marketlake train` SIGKILLed mid-run: `runs` shows it interrupted (killed) at once; the next `train`
    writes that into the lake with the killed run's last counts, and its status.json says so too."""
    from tests.unit.test_ppo_train import TINY, build_lake

    root = tmp_path / "lake"
    build_lake(root)
    config = tmp_path / "marketlake.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in (TINY | {"num_iterations": 100_000}).items()]
    config.write_text("[train]\n" + "\n".join(lines) + "\n")
    runs = tmp_path / "runs"
    exe = Path(sys.executable).with_name("marketlake")
    args = ["--lake", str(root), "--config", str(config), "train", "--no-evaluate", "--runs-dir", str(runs)]
    p = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(runs.glob("*/checkpoints/best.pt")):  # well inside its loop, its row `running`
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (killed,) = [r for r in runlog.list_runs(root, kind="train")]
        assert killed["status"] == "running", killed
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    run_id = killed["run_id"]
    status_file = Path(killed["run_dir"]) / "status.json"
    assert json.loads(status_file.read_text())["status"] == "running"

    row = _listed(runner, root)[run_id]
    assert row["status"] == "interrupted" and "killed" in row["metrics"], row
    assert row["metrics"]["iterations"] >= 2, row  # the counts of its folder, not of its first row

    config.write_text("[train]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items()) + "\n")
    r = runner.invoke(cli, [*args])
    assert r.exit_code == 0, r.output
    stored = _stored(runner, root, run_id)
    assert stored["status"] == "interrupted" and stored["finished_at"] >= stored["started_at"], stored
    assert stored["metrics"]["iterations"] >= 2, stored
    state = json.loads(status_file.read_text())
    assert state["status"] == "interrupted" and state["finished_at"] and "killed" in state, state
    assert (run_id, "interrupted") in mirrored, mirrored
    assert [s for s in mirrored if s[0] == run_id] == [(run_id, "interrupted")], mirrored


def test_a_run_whose_last_row_was_never_written_reads_as_its_folder_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C while the final row waits (here: the write raises it): the training had completed
    (status.json says so), the row still says `running`, and nobody holds its lock any more: it reads
    finished, with the note, and the next run writes that."""
    from rl.evaluate import train_and_evaluate
    from tests.unit.test_ppo_train import TINY, build_lake

    root = tmp_path / "lake"
    build_lake(root)
    real = runlog.write_run

    def write_run(at: Any, record: runlog.RunRecord) -> None:
        if record.kind == "train" and record.status != "running":
            raise KeyboardInterrupt  # the user insisted while the row waited for the lake
        real(at, record)

    monkeypatch.setattr(runlog, "write_run", write_run)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(root, Settings(), TINY, runs_dir=tmp_path / "runs", evaluate_test=False)
    monkeypatch.setattr(runlog, "write_run", real)
    (stored,) = runlog.list_runs(root, liveness=False)
    assert stored["status"] == "running", stored
    (row,) = runlog.list_runs(root)
    assert row["status"] == "finished" and "status.json says finished" in row["metrics"]["killed"], row
    assert row["metrics"]["iterations"] == TINY["num_iterations"], row
    (repaired,) = runlog.repair_dead_runs(root)
    assert repaired.status == "finished" and repaired.finished_at is not None
    (stored,) = runlog.list_runs(root, liveness=False)
    assert stored["status"] == "finished" and stored["finished_at"] == repaired.finished_at, stored


HOLD = textwrap.dedent(
    """
    import sys, time
    from rl import runlog

    lock = runlog.RunLock.take(sys.argv[1], sys.argv[2])
    print("running", flush=True)
    time.sleep(600)
    """
)


def test_evaluate_says_whether_the_run_it_judges_still_runs_or_was_killed(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    """Evaluating the best checkpoint of a training whose status.json says running: `still running` while
    its process holds its lock, `never finished ... killed` once it is gone, and that it cannot be told when
    it has no lock file (an older version's run). The lock asked is that of the lake the run was recorded in,
    also when another lake (a copy) is evaluated."""
    from rl.evaluate import evaluate, train_and_evaluate
    from tests.unit.test_ppo_train import TINY, build_lake

    root = tmp_path / "lake"
    build_lake(root)
    result, _ = train_and_evaluate(root, Settings(), TINY, runs_dir=tmp_path / "runs", evaluate_test=False)
    status = result.run_dir / "status.json"
    status.write_text(json.dumps(json.loads(status.read_text()) | {"status": "running"}))
    p = _holding(root, result.run_id, children)
    said: list[str] = []
    evaluate(root, Settings(), result.run_dir, "test", say=said.append, record=False)
    assert any(f"run {result.run_id} is still running" in x for x in said), said
    _kill(p)
    said = []
    evaluate(root, Settings(), result.run_dir, "test", say=said.append, record=False)
    assert any("never finished" in x and "killed" in x for x in said), said

    runlog.run_lock_path(root, result.run_id).unlink()  # as an older version left it: no lock file
    said = []
    evaluate(root, Settings(), result.run_dir, "test", say=said.append, record=False)
    (note,) = [x for x in said if f"run {result.run_id} did not finish" in x]
    assert "cannot be told" in note and "killed" not in note, said

    p = _holding(root, result.run_id, children)
    import shutil

    copy = tmp_path / "copy" / "lake"
    shutil.copytree(root, copy)  # its copied lock file is free: the run lives in the original lake
    said = []
    evaluate(copy, Settings(), result.run_dir, "test", say=said.append, record=False)
    assert any(f"run {result.run_id} is still running" in x for x in said), said


def _running_row(root: Path, run_id: str, kind: str = "evaluate", run_dir: Path | None = None) -> None:
    """A `running` row as a run writes it when it starts."""
    runlog.write_run(
        root,
        runlog.RunRecord(
            run_id=run_id,
            kind=kind,
            started_at=runlog.dt.datetime.now(runlog.dt.UTC) - runlog.dt.timedelta(minutes=5),
            config={},
            run_dir=str(run_dir) if run_dir is not None else None,
        ),
    )


def _dead_lock(root: Path, run_id: str) -> Path:
    """The lock file a killed run leaves: there, and held by nobody."""
    path = runlog.run_lock_path(root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("12345\n")
    return path


HOLD_POSIX = textwrap.dedent(
    """
    import fcntl, sys, time
    from rl import runlog

    fcntl.flock = lambda fd, op: fcntl.lockf(fd, op)  # NFS: flock emulated with per-process POSIX locks
    lock = runlog.RunLock.take(sys.argv[1], sys.argv[2])
    print("running", flush=True)
    time.sleep(600)
    """
)


def test_with_nfs_style_locks_a_run_keeps_its_own_lock_and_only_dead_runs_are_repaired(
    lake_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    children: list[subprocess.Popen[str]],
    mirrored: list[tuple[str, str]],
) -> None:
    """NFS (and some FUSE file systems) emulate flock with POSIX locks, owned per process: opening and
    unlocking a lock file this process holds would release its own lock. A run started there keeps its
    lock (its own is never probed), a run held by another process stays running, a dead one is repaired."""
    import fcntl

    with land(lake_root):
        pass
    _running_row(lake_root, "r-dead")
    _dead_lock(lake_root, "r-dead")
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD_POSIX, str(lake_root), "r-other"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    children.append(p)
    assert p.stdout is not None and p.stdout.readline().strip() == "running"
    _running_row(lake_root, "r-other")
    monkeypatch.setattr(runlog.fcntl, "flock", lambda fd, op: fcntl.lockf(fd, op))

    rec = runlog.start_run(lake_root, "evaluate", {}, run_id="r-own")
    assert rec.lock is not None and rec.lock.path.exists(), "the run's own lock file was removed"
    rows = {r["run_id"]: r for r in runlog.list_runs(lake_root)}
    assert rows["r-own"]["status"] == "running" and rows["r-own"]["metrics"] is None, rows["r-own"]
    assert rows["r-other"]["status"] == "running" and rows["r-other"]["metrics"] is None, rows["r-other"]
    assert rows["r-dead"]["status"] == "interrupted" and "killed" in rows["r-dead"]["metrics"], rows
    stored = {r["run_id"]: r["status"] for r in runlog.list_runs(lake_root, liveness=False)}
    assert stored == {"r-dead": "interrupted", "r-other": "running", "r-own": "running"}, stored
    assert runlog.repair_dead_runs(lake_root) == []  # its own lock and the other's: both held
    assert rec.lock.path.exists() and runlog.run_alive(lake_root, "r-own") is True
    runlog.finish_run(lake_root, rec, mirror=False)
    assert not runlog.run_lock_path(lake_root, "r-own").exists()
    assert ("r-dead", "interrupted") in mirrored


def test_a_lock_that_cannot_be_checked_is_never_called_dead(
    lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without flock (ENOLCK, EOPNOTSUPP): the row stays `running`, its liveness unknown,
    and no repair touches it."""
    import errno
    import fcntl

    with land(lake_root):
        pass
    _running_row(lake_root, "r-unsure")
    lock = _dead_lock(lake_root, "r-unsure")
    real = fcntl.flock

    def flock(fd: int, op: int) -> None:
        if "/locks/runs/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOLCK, "No locks available")
        real(fd, op)

    monkeypatch.setattr(runlog.fcntl, "flock", flock)
    assert runlog.run_alive(lake_root, "r-unsure") is None
    assert runlog.lock_state(lake_root, "r-unsure") == "unknown"
    row = _listed(runner, lake_root)["r-unsure"]
    assert row["status"] == "running" and row["metrics"]["liveness"] == runlog.UNCHECKED, row
    assert runlog.repair_dead_runs(lake_root) == []
    assert lock.exists() and _stored(runner, lake_root, "r-unsure")["status"] == "running"


def test_a_run_goes_on_without_a_lock_where_files_cannot_be_locked(
    lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Taking the lock on a file system without flock raised a raw OSError and the run never started: it now
    goes on without one, says so, leaves no lock file, and is listed running with its liveness unknown."""
    import errno
    import fcntl

    with land(lake_root):
        pass
    real = fcntl.flock

    def flock(fd: int, op: int) -> None:
        if "/locks/runs/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        real(fd, op)

    monkeypatch.setattr(runlog.fcntl, "flock", flock)
    record = runlog.start_run(lake_root, "evaluate", {}, run_id="r-nolock", say=lambda _: None)
    said = capsys.readouterr().err.splitlines()  # a warning: on stderr whatever `say` (progress) does
    assert record.lock is not None and not record.lock.held
    assert any("goes on without a liveness lock" in line and "cannot lock files" in line for line in said), (
        said
    )
    assert not list(runlog.run_locks_dir(lake_root).glob("*")), "no lock file, no temporary one"
    row = _listed(runner, lake_root)["r-nolock"]
    assert row["status"] == "running" and "unknown" in row["metrics"]["liveness"], row
    runlog.finish_run(lake_root, record, "finished")
    assert _listed(runner, lake_root)["r-nolock"]["status"] == "finished"


def _holding(root: Path, run_id: str, children: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """A child process holding the run's lock (HOLD), once it says it does."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), run_id],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    children.append(p)
    assert p.stdout is not None and p.stdout.readline().strip() == "running"
    return p


def _train_folder(runs: Path, run_id: str, lake: Path, iterations: int) -> Path:
    folder = runs / run_id
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps({"run_id": run_id, "lake": str(lake)}))
    (folder / "status.json").write_text(json.dumps({"status": "running", "iterations": iterations}))
    return folder


def test_a_copied_lakes_repair_never_writes_into_the_original_run_folder(tmp_path: Path) -> None:
    """A lake copied with its runs folder while a training runs: the copy's row of that run is dead (its
    copied lock file is free) and is repaired in the copy, with the copy's folder; the original's folder,
    which its row records, is neither read nor written. Without its runs folder, the copy repairs the row
    alone."""
    import shutil

    orig = tmp_path / "orig"
    with land(orig / "lake"):
        pass
    folder = _train_folder(orig / "runs", "r-train", orig / "lake", iterations=7)
    lock = runlog.RunLock.take(orig / "lake", "r-train")  # the original training is alive
    try:
        _running_row(orig / "lake", "r-train", kind="train", run_dir=folder)
        shutil.copytree(orig, tmp_path / "copy")
        copied = tmp_path / "copy" / "runs" / "r-train" / "status.json"
        copied.write_text(json.dumps({"status": "running", "iterations": 3}))
        shutil.copytree(orig / "lake", tmp_path / "bare" / "lake")

        (row,) = runlog.list_runs(tmp_path / "copy" / "lake")
        assert row["status"] == "interrupted" and row["metrics"]["iterations"] == 3, row
        (repaired,) = runlog.repair_dead_runs(tmp_path / "copy" / "lake")
        assert repaired.status == "interrupted" and (repaired.metrics or {}).get("iterations") == 3, repaired
        assert json.loads(copied.read_text())["status"] == "interrupted"
        assert json.loads((folder / "status.json").read_text()) == {"status": "running", "iterations": 7}

        (row,) = runlog.list_runs(tmp_path / "bare" / "lake")
        assert row["status"] == "interrupted" and "iterations" not in row["metrics"], row
        (repaired,) = runlog.repair_dead_runs(tmp_path / "bare" / "lake")
        assert "iterations" not in (repaired.metrics or {}), repaired
        assert json.loads((folder / "status.json").read_text()) == {"status": "running", "iterations": 7}

        (row,) = runlog.list_runs(orig / "lake")
        assert row["status"] == "running" and row["metrics"] is None, row
    finally:
        lock.release(ended=True)


def test_a_killed_runs_finished_at_is_its_last_sign_of_life_not_its_start(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An evaluation leaves no status.json: its lock file, touched while it runs, is its last sign of
    life."""
    monkeypatch.setattr(runlog, "HEARTBEAT", 0.05, raising=False)
    with land(lake_root):
        pass
    rec = runlog.start_run(lake_root, "evaluate", {}, run_id="r-eval")
    time.sleep(1.0)
    assert rec.lock is not None
    rec.lock.release(ended=False)  # as the kernel does when its process is killed: the file stays, free
    (row,) = runlog.list_runs(lake_root)
    assert row["status"] == "interrupted", row
    assert (row["finished_at"] - row["started_at"]).total_seconds() >= 0.7, row


def test_a_copy_beside_the_original_never_writes_into_their_shared_run_folder(tmp_path: Path) -> None:
    """A lake copied beside the original (data/lake -> data/lake-backup) shares its runs folder
    (data/runs): the copy's repair of a run it holds dead (its copied lock is free) rewrote the live original
    run's status.json to interrupted. The row of the copy is repaired; the folder, the original's, is not."""
    import shutil

    lake_a = tmp_path / "data" / "lake"
    with land(lake_a):
        pass
    folder = _train_folder(tmp_path / "data" / "runs", "r-train", lake_a, iterations=7)
    lock = runlog.RunLock.take(lake_a, "r-train")  # the original's training lives
    try:
        _running_row(lake_a, "r-train", kind="train", run_dir=folder)
        copy = tmp_path / "data" / "lake-backup"
        shutil.copytree(lake_a, copy)
        assert runlog.own_run_dir(copy, "r-train") == folder  # the one folder both lakes see
        (repaired,) = runlog.repair_dead_runs(copy)
        assert repaired.status == "interrupted"
        assert json.loads((folder / "status.json").read_text())["status"] == "running"
        assert runlog.list_runs(lake_a)[0]["status"] == "running"
    finally:
        lock.release(ended=True)

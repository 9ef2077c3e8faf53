"""`marketlake demo` on the shipped samples, in-process: every step runs, a second run changes nothing,
and the saved run re-evaluates to the numbers the demo printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from lake.writer import iter_manifests

pytestmark = pytest.mark.integration


def _lake_state(root: Path) -> dict[str, str]:
    """Every partition's manifest sha256 and mtime of its data file: what a re-run must not change."""
    return {
        str(p): f"{m['sha256']}:{(p.parent / m['file']).stat().st_mtime_ns}" for p, m in iter_manifests(root)
    }


def _demo(runner: CliRunner, root: Path) -> str:
    r = runner.invoke(cli, ["--lake", str(root), "demo", "--iterations", "2"])
    assert r.exit_code == 0, r.output
    return r.output


def test_the_demo_runs_end_to_end_and_a_second_run_changes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    root = tmp_path / "demo" / "lake"
    out = _demo(runner, root)
    for step in ("[1/4] ingest", "[2/4] data quality", "[3/4] train", "buy & hold", "Where everything is"):
        assert step in out, out
    # the real dirt of the SPY sample is quarantined with its reason, not landed
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(root),
            "sql",
            "SELECT reason FROM bars_rejected WHERE symbol = 'SPY'",
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    reasons = [row["reason"] for row in json.loads(r.stdout)]
    assert len(reasons) == 2 and all("open" in x for x in reasons), reasons

    runs = json.loads(runner.invoke(cli, ["--lake", str(root), "runs", "--format", "json"]).stdout)
    kinds = sorted(x["kind"] for x in runs)
    assert kinds == ["evaluate", "train"], runs
    train = next(x for x in runs if x["kind"] == "train")
    evaluation = next(x for x in runs if x["kind"] == "evaluate")
    assert evaluation["parent_run_id"] == train["run_id"]
    assert train["status"] == "finished" and evaluation["status"] == "finished"

    before = _lake_state(root)
    folder = Path(train["run_dir"])
    files = {p.name: (p.read_bytes(), p.stat().st_ino) for p in folder.glob("evaluation-test.*")}
    again = _demo(runner, root)
    assert "already done" in again, again
    assert _lake_state(root) == before  # nothing rewritten, no second run recorded
    assert len(json.loads(runner.invoke(cli, ["--lake", str(root), "runs", "--format", "json"]).stdout)) == 2
    # the run folder's latest evaluation is still the recorded one: its JSON names the recorded run, and the
    # .png and .parquet are still the links to that evaluation's own files
    assert {p.name: (p.read_bytes(), p.stat().st_ino) for p in folder.glob("evaluation-test.*")} == files
    assert json.loads((folder / "evaluation-test.json").read_text())["run_id"] == evaluation["run_id"]
    for ext in ("png", "parquet"):
        own = folder / "evaluations" / f"{evaluation['run_id']}-test.{ext}"
        assert (folder / f"evaluation-test.{ext}").samefile(own), ext

    # `evaluate RUN_ID` reproduces what the demo's training printed (read before it is written again)
    printed = json.loads((Path(train["run_dir"]) / "evaluation-test.json").read_text())
    r = runner.invoke(cli, ["--lake", str(root), "evaluate", train["run_id"], "--format", "json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    for key in ("overall", "per_symbol", "sharpe_ci", "bounds", "data_snapshot"):
        assert report[key] == printed[key], key


def test_a_demo_stopped_in_its_evaluation_reuses_its_run_and_a_sibling_lake_trains_its_own(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rl.evaluate

    real = rl.evaluate.evaluate
    calls: list[int] = []

    def stopped_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C during the demo's evaluation, its training done
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rl.evaluate, "evaluate", stopped_once)
    a, b = tmp_path / "x" / "a", tmp_path / "x" / "b"  # two demo lakes in one folder share x/runs
    r = runner.invoke(cli, ["--lake", str(a), "demo", "--iterations", "2"])
    assert r.exit_code == 130, r.output
    again = _demo(runner, a)
    assert "already done" in again, again  # the finished training is reused, not trained a second time
    runs = json.loads(runner.invoke(cli, ["--lake", str(a), "runs", "--format", "json"]).stdout)
    assert sorted(x["kind"] for x in runs) == ["evaluate", "train"], runs

    other = _demo(runner, b)
    assert "already done" not in other, other  # lake b's runs are recorded in lake b
    runs_b = json.loads(runner.invoke(cli, ["--lake", str(b), "runs", "--format", "json"]).stdout)
    assert sorted(x["kind"] for x in runs_b) == ["evaluate", "train"], runs_b

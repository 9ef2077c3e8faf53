"""A training run that raises is still a `runs` row (rl.evaluate.train_and_evaluate): from its folder when
it had one (status failed and the error), else a row with the overrides and the error; the error itself is
re-raised unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lake.config import Settings
from lake.errors import MarketlakeError
from rl import runlog
from rl.evaluate import train_and_evaluate
from rl.ppo import PPO
from tests.unit.test_ppo_train import TINY, build_lake


@pytest.fixture(scope="module")
def lake_for_failures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("failing") / "lake"
    build_lake(root)
    return root


def test_a_run_that_raises_in_its_loop_is_recorded_as_failed(
    lake_for_failures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: PPO) -> None:
        raise RuntimeError("the learner broke")

    monkeypatch.setattr(PPO, "iterate", boom)
    with pytest.raises(RuntimeError, match="the learner broke"):
        train_and_evaluate(lake_for_failures, Settings(), TINY, runs_dir=tmp_path / "runs")
    rows = runlog.list_runs(lake_for_failures, kind="train")
    (row,) = [r for r in rows if r["run_dir"] and Path(r["run_dir"]).parent == tmp_path / "runs"]
    assert row["status"] == "failed", row
    assert "RuntimeError: the learner broke" in row["metrics"]["error"], row
    assert (Path(row["run_dir"]) / "settings.json").exists()


def test_a_run_that_fails_before_its_folder_is_recorded_with_the_error(
    lake_for_failures: Path, tmp_path: Path
) -> None:
    before = {r["run_id"] for r in runlog.list_runs(lake_for_failures)}
    with pytest.raises(MarketlakeError) as err:
        train_and_evaluate(
            lake_for_failures, Settings(), TINY | {"symbols": ["NOSUCHUSDT"]}, runs_dir=tmp_path / "runs"
        )
    new = [r for r in runlog.list_runs(lake_for_failures) if r["run_id"] not in before]
    assert len(new) == 1, new
    (row,) = new
    assert row["kind"] == "train" and row["status"] == "failed" and row["run_dir"] is None, row
    assert str(err.value) in row["metrics"]["error"], row
    assert row["config"]["overrides"]["symbols"] == ["NOSUCHUSDT"], row
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_train_without_evaluation_records_the_run_and_writes_no_test_report(
    lake_for_failures: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    config = tmp_path / "marketlake.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in TINY.items()]
    config.write_text("[train]\n" + "\n".join(lines) + "\n")
    runs = tmp_path / "runs"
    args = ["--lake", str(lake_for_failures), "--config", str(config), "train", "--no-evaluate"]
    r = CliRunner().invoke(cli, [*args, "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    (run_dir,) = list(runs.iterdir())
    assert not list(run_dir.glob("evaluation-*")), list(run_dir.iterdir())
    (row,) = [x for x in runlog.list_runs(lake_for_failures, kind="train") if x["run_dir"] == str(run_dir)]
    assert row["status"] == "finished", row
    assert not [x for x in runlog.list_runs(lake_for_failures, kind="evaluate")], "no evaluation was asked"


def test_a_ctrl_c_during_the_data_read_is_recorded_as_interrupted(
    lake_for_failures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB turns a SIGINT during a query into its own exception (a RuntimeError "Query interrupted" during
    a fetch): the run is interrupted, not failed."""
    import rl.train

    def interrupted(*args: object, **kw: object) -> None:
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(rl.train, "train_eligibility", interrupted)
    before = {r["run_id"] for r in runlog.list_runs(lake_for_failures)}
    with pytest.raises(RuntimeError, match="Query interrupted"):
        train_and_evaluate(lake_for_failures, Settings(), TINY, runs_dir=tmp_path / "runs")
    (row,) = [r for r in runlog.list_runs(lake_for_failures) if r["run_id"] not in before]
    assert row["kind"] == "train" and row["status"] == "interrupted", row


def test_is_interrupt_knows_every_form_of_ctrl_c() -> None:
    import duckdb

    from lake.errors import is_interrupt

    assert is_interrupt(KeyboardInterrupt())
    assert is_interrupt(duckdb.InterruptException("INTERRUPT Error: Interrupted!"))
    assert is_interrupt(RuntimeError("Query interrupted"))
    assert not is_interrupt(RuntimeError("the learner broke"))
    assert not is_interrupt(RuntimeError("Parent directory /runs/interrupted-runs/x does not exist."))
    assert not is_interrupt(ValueError("interrupted"))


def test_a_ctrl_c_before_the_first_validation_says_nothing_was_kept(
    lake_for_failures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    def ctrl_c(self: PPO) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PPO, "iterate", ctrl_c)
    config = tmp_path / "marketlake.toml"
    config.write_text("[train]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items()) + "\n")
    args = [
        "--lake",
        str(lake_for_failures),
        "--config",
        str(config),
        "train",
        "--runs-dir",
        str(tmp_path / "r"),
    ]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 130, r.output
    assert "no checkpoint was kept, nothing to evaluate" in r.output, r.output
    assert "best checkpoint so far is kept" not in r.output, r.output

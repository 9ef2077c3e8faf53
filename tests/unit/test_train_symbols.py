"""Which symbols a training run uses, and what is refused or said about them before a run is recorded: the
test-period check counts the symbols the run trains on (not every symbol of the lake); the same symbols in
another order give the same run (they are sorted); a symbol with no bar in the train period is refused
before the run, with the train period's dates and why; `--symbols all` undoes [train] symbols of the file,
and an error about symbols says where they came from; a slippage parameter the chosen mode does not read is
a warning."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from lake.config import Settings
from rl import runlog
from rl.episodes import EmptyPeriod
from rl.train import train
from tests.conftest import bars_table
from tests.unit.test_ppo_train import START, TINY, build_lake, price_path, write

TINY_SETS = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]


@pytest.fixture(scope="module")
def crypto_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("symbols") / "lake"
    build_lake(root)  # 1m bars of BTCUSDT, ETHUSDT (eligible) and SOLUSDT (too short)
    return root


@pytest.fixture(scope="module")
def late_symbol_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AAAUSDT and BBBUSDT eligible in train, ending in the validation period; CCCUSDT only at the very end
    (in the test period, not eligible in train): the test period holds bars of no symbol a run trains on."""
    root = tmp_path_factory.mktemp("late") / "lake"
    for symbol, seed in (("AAAUSDT", 1), ("BBBUSDT", 2)):
        write(root, symbol, bars_table(START, price_path(40 * 60, seed, 100.0), source_file=f"{symbol}.zip"))
    late = START + dt.timedelta(hours=46)
    write(root, "CCCUSDT", bars_table(late, price_path(120, 3, 10.0), source_file="CCCUSDT.zip"))
    return root


def _train_runs(root: Path) -> list[dict[str, Any]]:
    return runlog.list_runs(root, kind="train")


def test_the_test_period_check_counts_the_symbols_the_run_trains_on(
    runner: CliRunner, late_symbol_lake: Path, tmp_path: Path
) -> None:
    """No --symbols: the run trains on AAAUSDT and BBBUSDT, which have no test bar; CCCUSDT's test bars
    (a symbol the run does not train on) made the check pass, and the run trained in full and then failed."""
    runs = tmp_path / "runs"
    r = runner.invoke(cli, ["--lake", str(late_symbol_lake), "train", "--runs-dir", str(runs), *TINY_SETS])
    assert r.exit_code == 1, r.output
    assert "holds no 1m bar of AAAUSDT, BBBUSDT" in r.output and "--no-evaluate" in r.output, r.output
    assert not runs.exists() and _train_runs(late_symbol_lake) == []


def test_an_evaluation_with_no_bar_after_training_says_the_run_was_trained_and_recorded(
    late_symbol_lake: Path, tmp_path: Path
) -> None:
    """rl.evaluate.train_and_evaluate (no check before): the evaluation's EmptyPeriod names the run, kept."""
    from rl.evaluate import train_and_evaluate

    with pytest.raises(EmptyPeriod) as caught:
        train_and_evaluate(late_symbol_lake, Settings(), TINY, runs_dir=tmp_path / "runs")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert str(caught.value).startswith(
        f"run {run_dir.name} was trained and recorded, but its evaluation "
    ), caught.value
    assert [r["status"] for r in _train_runs(late_symbol_lake) if r["run_id"] == run_dir.name] == ["finished"]


def test_the_same_symbols_in_another_order_give_the_same_run(crypto_lake: Path, tmp_path: Path) -> None:
    runs = []
    for i, order in enumerate((["BTCUSDT", "ETHUSDT"], ["ETHUSDT", "BTCUSDT"])):
        result = train(crypto_lake, Settings(), TINY | {"symbols": order}, runs_dir=tmp_path / f"r{i}")
        runs.append(result.run_dir)
    first, second = ((d / "metrics.jsonl").read_text() for d in runs)
    assert first == second  # (they differed: the given order was the order of the envs' symbols)
    assert result.symbols == ["BTCUSDT", "ETHUSDT"]
    assert json.loads((runs[1] / "settings.json").read_text())["symbols"] == ["BTCUSDT", "ETHUSDT"]


def test_a_symbol_with_no_bar_in_the_train_period_is_refused_before_the_run_with_the_periods_dates(
    runner: CliRunner, late_symbol_lake: Path, tmp_path: Path
) -> None:
    """CCCUSDT's bars all lie in the test period (the periods are cut from the whole lake's range): refused
    before any run row (it was a `failed` train run saying only "no bar in the train period"), with the
    train period's dates, why, and `[splits] method = "date"` to set."""
    runs = tmp_path / "runs"
    before = len(_train_runs(late_symbol_lake))
    args = ["--lake", str(late_symbol_lake), "train", "--runs-dir", str(runs), "--no-evaluate"]
    r = runner.invoke(cli, [*args, "--symbols", "CCCUSDT", *TINY_SETS])
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert "nothing to train on: no 1m symbol (symbols from the command line) is eligible" in out, out
    assert "CCCUSDT: no bar in the train period" in out, out
    assert "The train period is 2024-03-01 00:00 .. 2024-03-02 08:" in out, out
    assert (
        "the periods are cut from the whole lake's range (every interval and symbol, not the 1m bars" in out
    )
    assert 'use [splits] method = "date" with train_end and validation_end inside the 1m bars\' dates' in out
    assert not runs.exists() and len(_train_runs(late_symbol_lake)) == before


def test_symbols_all_undoes_the_files_symbols_and_an_error_names_where_symbols_came_from(
    runner: CliRunner, crypto_lake: Path, tmp_path: Path
) -> None:
    config = tmp_path / "cfg.toml"
    config.write_text('[train]\nsymbols = ["BTCUSDT", "NOPE"]\n')
    runs = tmp_path / "runs"
    args = ["--lake", str(crypto_lake), "--config", str(config), "train", "--runs-dir", str(runs)]
    r = runner.invoke(cli, [*args, "--no-evaluate", *TINY_SETS])
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert (
        f"symbol(s) NOPE (from {config} [train] symbols, line 2; --symbols all for every eligible one)"
        in (out)
    ), out
    assert not runs.exists()

    for how in (["--symbols", "all"], ["--set", "symbols=all"]):
        r = runner.invoke(cli, [*args, "--no-evaluate", *how, *TINY_SETS])
        assert r.exit_code == 0, r.output
        (run_dir,) = runs.iterdir()
        assert json.loads((run_dir / "settings.json").read_text())["symbols"] == ["BTCUSDT", "ETHUSDT"]
        for d in runs.iterdir():
            import shutil

            shutil.rmtree(d)


def test_a_slippage_parameter_of_the_mode_not_chosen_is_a_warning_before_the_run(
    runner: CliRunner, crypto_lake: Path, tmp_path: Path
) -> None:
    from rl.train import unused_settings

    args = ["--lake", str(crypto_lake), "-q", "train", "--runs-dir", str(tmp_path / "runs"), "--no-evaluate"]
    r = runner.invoke(cli, [*args, "--set", "slippage=range", "--set", "slippage_bps=5", *TINY_SETS])
    assert r.exit_code == 0, r.output
    (line,) = [re.sub(r"^\S+Z (?=WARNING )", "", ln) for ln in r.stderr.splitlines() if "slippage_bps" in ln]
    assert line.startswith(
        "WARNING marketlake.train: slippage_bps = 5 (from the command line) is not used: "
    ), line
    assert "slippage = 'range' (from the command line) reads only slippage_range_fraction" in line, line
    assert unused_settings(Settings(), {"slippage_bps": 5}) == []  # the default mode is bps
    assert unused_settings(Settings(), {"slippage": "range"}) == []
    assert len(unused_settings(Settings(), {"slippage_range_fraction": 0.2})) == 1

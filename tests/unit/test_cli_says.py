"""What the command line says where a user could be misled: `marketlake sql` on `features_store` (and
`marketlake shell`) warns when the store is out of date (a settings change, an ingest stopped before its
refresh: it holds its last refresh's rows, not the view's); an empty query is a usage error; `train` says
when it runs on the built-in defaults; a full disk is one line naming the file, never a traceback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest.sessions import land
from tests.conftest import bars_table


@pytest.fixture
def stored_lake(lake_root: Path, runner: CliRunner) -> Path:
    closes = [100.0 + 0.01 * (i % 37) for i in range(600)]
    with land(lake_root) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), closes))
    r = runner.invoke(cli, ["--lake", str(lake_root), "features", "refresh"])
    assert r.exit_code == 0, r.output
    return lake_root


QUERY = "SELECT count(*) AS n FROM features_store"


def test_a_fresh_store_is_queried_without_a_word(runner: CliRunner, stored_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(stored_lake), "sql", QUERY, "--format", "csv"])
    assert r.exit_code == 0 and "warning" not in r.output, r.output


def test_a_store_out_of_date_after_a_settings_change_is_said(
    runner: CliRunner, stored_lake: Path, tmp_path: Path
) -> None:
    config = tmp_path / "gaps.toml"
    config.write_text("[data]\nmax_gap_minutes = 3\n")
    args = ["--lake", str(stored_lake), "--config", str(config), "sql"]
    r = runner.invoke(cli, [*args, QUERY, "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert "warning: features_store is out of date for 1" in r.stderr and "BTCUSDT 1m" in r.stderr, r.stderr
    assert r.stdout.splitlines()[0] == "n", r.stdout  # the rows still come, on stdout
    other = runner.invoke(cli, [*args, "SELECT count(*) FROM bars"])
    assert other.exit_code == 0 and "warning" not in other.stderr, other.output  # not its business


def test_an_empty_query_is_a_usage_error(runner: CliRunner, stored_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(stored_lake), "sql", "  "])
    assert r.exit_code == 2 and "no query given" in r.output, r.output


def test_train_says_when_it_runs_on_the_built_in_defaults(
    runner: CliRunner, stored_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no marketlake.toml here
    monkeypatch.delenv("MARKETLAKE_CONFIG", raising=False)
    r = runner.invoke(cli, ["--lake", str(stored_lake), "train", "--symbols", "NOPE"])
    assert "settings: the built-in defaults (no marketlake.toml in" in r.output, r.output


def test_train_names_the_settings_file_it_reads(runner: CliRunner, stored_lake: Path, tmp_path: Path) -> None:
    config = tmp_path / "mine.toml"
    config.write_text("[train]\nwindow = 30\n")
    r = runner.invoke(
        cli, ["--lake", str(stored_lake), "--config", str(config), "train", "--symbols", "NOPE"]
    )
    assert f"settings: {config.absolute()}" in r.output, r.output


def test_a_full_disk_during_training_is_one_line_naming_the_file(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import json

    from rl.ppo import PPO
    from tests.unit.test_ppo_train import TINY, build_lake

    root = tmp_path / "lake"
    build_lake(root)

    def full(self: PPO) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs" / "x" / "last.pt"))

    monkeypatch.setattr(PPO, "iterate", full)
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    r = runner.invoke(cli, ["--lake", str(root), "train", "--runs-dir", str(tmp_path / "runs"), *sets])
    assert r.exit_code == 1, r.output
    assert f"error: {tmp_path / 'runs' / 'x' / 'last.pt'}: the disk is full" in r.stderr, r.stderr
    assert "Traceback" not in r.output, r.output

"""`marketlake features status|refresh` on a wrong lake path, symbol or interval: refused in one line
naming it (never an empty table, a new lake at a typo or `0 rebuilt`); in-process with CliRunner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from lake.paths import SCHEMA_ANCHOR, LakePaths
from lake.schemas import FEATURES
from lake.writer import DATA_FILE


def store_files(root: Path) -> list[Path]:
    """The feature store's data files that hold rows (not its schema anchor)."""
    base = LakePaths(root).dataset(FEATURES.name)
    return sorted(p for p in base.rglob(DATA_FILE) if SCHEMA_ANCHOR not in str(p))


@pytest.mark.parametrize("args", [["features", "status"], ["features", "refresh"]], ids=" ".join)
def test_a_missing_lake_is_refused_naming_it_and_nothing_is_made(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "lake"
    r = runner.invoke(cli, ["--lake", str(missing), *args])
    assert r.exit_code == 1, r.output
    assert str(missing) in r.output and "no lake" in r.output and "marketlake ingest" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("args", [["features", "status"], ["features", "refresh"]], ids=" ".join)
def test_a_folder_without_a_lake_is_refused_and_left_alone(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    r = runner.invoke(cli, ["--lake", str(photos), *args])
    assert r.exit_code == 1, r.output
    assert str(photos) in r.output and "no lake" in r.output, r.output
    assert os.listdir(photos) == []


def test_status_on_a_lake_lists_its_pairs(runner: CliRunner, filled_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(filled_lake), "features", "status", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["symbol,interval,fresh,years", "BTCUSDT,1m,False,"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--symbols", "NOPE"], ["NOPE", "BTCUSDT"]),  # the unknown symbol, and what the lake holds
        (["--symbols", "BTCUSDT,NOPE,ALSO"], ["NOPE, ALSO", "BTCUSDT"]),
        (["--interval", "1d"], ["1d", "1m"]),  # a valid interval the lake does not hold
        (["--symbols", "BTCUSDT", "--interval", "1d"], ["1d", "1m"]),
        (["--interval", "1m", "--interval", "1h"], ["1h", "its intervals: 1m"]),
    ],
)
def test_refresh_of_what_the_lake_does_not_hold_is_an_error_naming_it(
    runner: CliRunner, filled_lake: Path, args: list[str], named: list[str]
) -> None:
    r = runner.invoke(cli, ["--lake", str(filled_lake), "features", "refresh", *args])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: ") and str(filled_lake) in r.output, r.output
    for name in named:
        assert name in r.output, (name, r.output)
    assert len(r.output.strip().splitlines()) == 1 and "rebuilt" not in r.output, r.output
    assert store_files(filled_lake) == []


def test_refresh_with_an_invalid_interval_name_is_a_usage_error(runner: CliRunner, filled_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(filled_lake), "features", "refresh", "--interval", "1x"])
    assert r.exit_code == 2, r.output
    assert "'1x'" in r.output and "--interval" in r.output and "1m" in r.output, r.output
    assert store_files(filled_lake) == []


@pytest.mark.parametrize("args", [[], ["--symbols", "BTCUSDT"], ["--interval", "1m"]], ids=str)
def test_refresh_of_what_the_lake_holds_builds_it(
    runner: CliRunner, filled_lake: Path, args: list[str]
) -> None:
    r = runner.invoke(cli, ["--lake", str(filled_lake), "features", "refresh", "-q", *args])
    assert r.exit_code == 0, r.output
    assert "1 rebuilt" in r.output, r.output
    assert store_files(filled_lake) != []

"""`marketlake features status|refresh` on a wrong lake path, symbol or interval: refused in one line
naming it (never an empty table, a new lake at a typo or `0 rebuilt`); in-process with CliRunner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from lake.paths import SCHEMA_ANCHOR, LakePaths
from lake.schemas import FEATURES
from lake.writer import DATA_FILE
from tests.unit import test_features_store


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


@pytest.fixture
def store_lake(lake_root: Path) -> Path:
    """test_features_store's small lake: crypto pairs, a stock, SPY and QQQ, with news."""
    fixture: Any = test_features_store.small_lake
    lake: Path = fixture.__wrapped__(lake_root)  # (the fixture's own function)
    return lake


def _truncated_bars_of_spy(root: Path) -> Path:
    (bars,) = (p for p in (root / "datasets/bars").rglob(DATA_FILE) if "symbol=SPY" in str(p))
    data = bars.read_bytes()
    bars.write_bytes(data[: len(data) // 2])
    return bars


def test_a_refresh_on_a_damaged_bars_file_names_the_lake_file_and_the_repair(
    runner: CliRunner, store_lake: Path
) -> None:
    bars = _truncated_bars_of_spy(store_lake)
    r = runner.invoke(cli, ["--lake", str(store_lake), "features", "refresh", "--force"])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "marketlake-store-" not in r.output, r.output
    assert f"damaged: {bars}" in r.output and "to repair: " in r.output, r.output
    assert "re-run the ingest" in r.output, r.output


def test_a_ctrl_c_during_a_refresh_stops_at_once_as_an_interruption(
    runner: CliRunner, store_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB raises a Ctrl-C (or a SIGTERM made its interrupt) as its own error: the refresh stops with 130
    at once, not as a failed computation (1) that first hashes the whole lake looking for damaged files."""
    import duckdb

    from features import store

    verified: list[Path] = []

    def verify(root: Path) -> list[Path]:
        verified.append(root)
        return []

    monkeypatch.setattr(store, "verify", verify)

    def interrupted(*_: Any, **__: Any) -> Any:
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    monkeypatch.setattr(store, "_market_features", interrupted)
    r = runner.invoke(cli, ["--lake", str(store_lake), "features", "refresh", "--force"])
    assert r.exit_code == 130, r.output
    assert "interrupted" in r.output and "failed" not in r.output and not verified, r.output


def test_the_ingests_end_of_run_refresh_warns_naming_the_lake_file_and_the_repair(
    store_lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    from cli.ingest import _refresh_store
    from lake.config import Settings

    bars = _truncated_bars_of_spy(store_lake)
    _refresh_store(SimpleNamespace(root=store_lake, settings=Settings(), say=lambda _: None))
    err = capsys.readouterr().err
    assert err.startswith("warning: feature store not refreshed: "), err
    assert "marketlake-store-" not in err and f"damaged: {bars}" in err and "re-run the ingest" in err, err


def test_verify_on_a_damaged_store_file_says_features_refresh_repairs_it(
    runner: CliRunner, store_lake: Path
) -> None:
    assert runner.invoke(cli, ["--lake", str(store_lake), "features", "refresh"]).exit_code == 0
    f = store_files(store_lake)[0]
    f.write_bytes(f.read_bytes()[:100])
    r = runner.invoke(cli, ["--lake", str(store_lake), "verify"])
    assert r.exit_code == 1 and str(f) in r.output, r.output
    assert "marketlake features refresh" in r.output and "re-run the ingest" not in r.output, r.output
    r = runner.invoke(cli, ["--lake", str(store_lake), "features", "refresh"])  # the advice, followed
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--lake", str(store_lake), "verify"])
    assert r.exit_code == 0, r.output

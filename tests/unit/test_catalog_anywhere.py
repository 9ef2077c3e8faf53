"""The shell's catalog file (catalog.duckdb, written by `marketlake shell` / `make shell`) reads its own lake
from any working folder: opened from Python, the duckdb CLI or a GUI, never an empty lake ("No files found")
and never the files of another lake that happens to be the working folder."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import lake
from cli.main import cli
from ingest.sessions import land
from tests.conftest import bars_table


def _catalog(runner: CliRunner, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`marketlake shell` on `root` with the DuckDB shell itself not started: the catalog it leaves."""
    monkeypatch.setattr("cli.reading.subprocess.call", lambda *a, **k: 0)
    r = runner.invoke(cli, ["--lake", str(root), "shell"])
    assert r.exit_code == 0, r.output
    return root / "catalog.duckdb"


def _other_lake(root: Path) -> Path:
    with land(root) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "ETHUSDT", "period": "2024-01"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), [5.0] * 5))
    return root


def _counts(catalog: Path) -> list[tuple[str, int]]:
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.sql("SELECT symbol, count(*) FROM bars GROUP BY ALL ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_the_catalog_reads_its_own_lake_from_any_folder(
    runner: CliRunner, filled_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _catalog(runner, filled_lake, monkeypatch)
    other = _other_lake(tmp_path / "other")
    _catalog(runner, other, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (elsewhere, other, filled_lake):
        monkeypatch.chdir(cwd)
        assert _counts(catalog) == [("BTCUSDT", 3)], cwd
        assert _counts(other / "catalog.duckdb") == [("ETHUSDT", 5)], cwd


def test_the_duckdb_cli_reads_the_catalogs_lake_from_another_folder(
    runner: CliRunner, filled_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _catalog(runner, filled_lake, monkeypatch)
    duckdb_cli = Path(sys.executable).with_name("duckdb")
    if not duckdb_cli.exists():
        pytest.skip("no duckdb CLI beside this Python")
    p = subprocess.run(
        [str(duckdb_cli), "-readonly", "-csv", str(catalog), "-c", "SELECT count(*) AS n FROM bars"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and p.stdout.split() == ["n", "3"], p.stdout + p.stderr


def test_a_moved_lakes_old_catalog_names_the_old_folder_and_the_shell_writes_it_again(
    runner: CliRunner, filled_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _catalog(runner, filled_lake, monkeypatch)
    moved = filled_lake.rename(tmp_path / "moved")
    monkeypatch.chdir(_other_lake(tmp_path / "other"))
    with pytest.raises(duckdb.Error, match=str(filled_lake)):  # never the working folder's lake
        _counts(moved / "catalog.duckdb")
    assert _counts(_catalog(runner, moved, monkeypatch)) == [("BTCUSDT", 3)]


def test_a_lake_folder_with_quotes_in_its_name_is_read_as_named(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lake's folder is written into the catalog as a string literal (DuckDB takes no parameter in a
    macro's body), rendered by DuckDB itself: quotes and SQL in the name stay part of the name."""
    root = _other_lake(tmp_path / "it's a \"lake\"'); DROP VIEW bars; --")
    catalog = _catalog(runner, root, monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert _counts(catalog) == [("ETHUSDT", 5)]
    assert lake.connect(root, read_only=True).sql("SELECT count(*) FROM bars").fetchone() == (5,)


def test_a_newline_in_the_lakes_folder_is_data_never_sql(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path is rendered into the macro's body only: a newline in it stays inside the literal (in the
    comment above the macro it ended the comment and ran the rest of the path as SQL, before any confinement)."""
    pwned = tmp_path / "pwned.csv"
    root = _other_lake(tmp_path / f"inj\nCOPY (SELECT 42 AS x) TO $${pwned}$$; --" / "lake")
    for read_only in (False, True):
        con = lake.connect(root, read_only=read_only)
        try:
            assert con.sql("SELECT count(*) FROM bars").fetchone() == (5,)
        finally:
            con.close()
    catalog = _catalog(runner, root, monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert _counts(catalog) == [("ETHUSDT", 5)]
    assert not pwned.exists()

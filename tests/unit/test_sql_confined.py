"""Reading the lake cannot damage it or reach outside it (issue 14, items 1 and 3): `marketlake sql` runs
queries only, a read-only connection reads no file outside the lake, a damaged file is named with the way
to repair it, and a wrong lake path is an error, not an empty lake."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import lake
from cli import cli
from lake.config import Settings

PART = "datasets/bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-01/data.parquet"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file beside the lake, outside it."""
    p = tmp_path / "secret.csv"
    p.write_text("a,b\n1,2\n")
    return p


def sql(runner: CliRunner, root: Path, query: str) -> tuple[int, str]:
    r = runner.invoke(cli, ["--lake", str(root), "sql", query, "--format", "csv"])
    return r.exit_code, r.output


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1 AS x) TO '{target}' (FORMAT parquet)",
        "ATTACH '{lake}/other.duckdb' AS other",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO lake_settings SELECT * FROM lake_settings",
        "EXPORT DATABASE '{lake}/export'",
        "SET enable_external_access = true",
        "SELECT 1; COPY (SELECT 1 AS x) TO '{target}' (FORMAT parquet)",
        "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{target}' (FORMAT parquet)",
        "INSTALL httpfs",
    ],
)
def test_sql_refuses_a_statement_that_writes_and_the_lake_is_untouched(
    runner: CliRunner, filled_lake: Path, statement: str
) -> None:
    target = filled_lake / PART
    before = target.read_bytes()
    code, out = sql(runner, filled_lake, statement.format(target=target, lake=filled_lake))
    assert code != 0, out
    assert "refused" in out and "queries only" in out, out
    assert "Traceback" not in out
    assert target.read_bytes() == before
    assert not (filled_lake / "other.duckdb").exists() and not (filled_lake / "export").exists()
    assert lake.verify(filled_lake) == []
    code, out = sql(runner, filled_lake, "SELECT count(*) AS n FROM bars")
    assert (code, out.splitlines()) == (0, ["n", "3"]), out


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('{outside}')",
        "SELECT * FROM read_text('{outside}')",
        "SELECT * FROM read_text('{lake}/../secret.csv')",
        "SELECT * FROM glob('{outside_dir}/*')",
    ],
)
def test_sql_reads_no_file_outside_the_lake(
    runner: CliRunner, filled_lake: Path, outside: Path, query: str
) -> None:
    code, out = sql(
        runner, filled_lake, query.format(outside=outside, lake=filled_lake, outside_dir=outside.parent)
    )
    assert code != 0, out
    assert "a,b" not in out, out  # the file's content never shows
    assert "Permission" in out or "disabled" in out, out


def test_sql_still_reads_views_describe_and_explain(runner: CliRunner, filled_lake: Path) -> None:
    for query in ("DESCRIBE bars", "SUMMARIZE bars", "EXPLAIN SELECT * FROM bars", "FROM bars LIMIT 1"):
        code, out = sql(runner, filled_lake, query)
        assert code == 0, (query, out)
    code, out = sql(runner, filled_lake, f"SELECT count(*) AS n FROM read_parquet('{filled_lake / PART}')")
    assert (code, out.splitlines()) == (0, ["n", "3"]), out


def test_a_read_only_connection_reads_nothing_outside_the_lake(filled_lake: Path, outside: Path) -> None:
    con = lake.connect(filled_lake, read_only=True)
    assert con.sql("SELECT count(*) FROM bars").fetchone() == (3,)
    assert con.sql("SELECT count(*) FROM bar_features").fetchone() == (3,)
    with pytest.raises(duckdb.PermissionException):
        con.sql("SELECT * FROM read_csv(?)", params=[str(outside)]).fetchall()
    with pytest.raises(duckdb.PermissionException):
        con.execute("COPY (SELECT 1 AS x) TO ? (FORMAT csv)", [str(outside.parent / "out.csv")])
    with pytest.raises(duckdb.Error):
        con.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error):
        con.execute("SET allowed_directories = ['/']")
    assert not (outside.parent / "out.csv").exists()
    # an empty lake (a datasets/ folder without files) reads through a private empty lake: still allowed
    (filled_lake.parent / "new" / "datasets").mkdir(parents=True)
    empty = lake.connect(filled_lake.parent / "new", read_only=True)
    assert empty.sql("SELECT count(*) FROM bars").fetchone() == (0,)
    # a writing connection is not confined (the lake's own tools use it)
    assert lake.connect(filled_lake).sql(
        "SELECT count(*) FROM read_csv(?)", params=[str(outside)]
    ).fetchone() == (1,)


def test_the_confinement_is_not_fooled_by_a_sibling_folder_with_the_same_prefix(
    filled_lake: Path, tmp_path: Path
) -> None:
    sibling = Path(str(filled_lake) + "2")
    sibling.mkdir()
    (sibling / "x.csv").write_text("a\n1\n")
    con = lake.connect(filled_lake, read_only=True)
    with pytest.raises(duckdb.PermissionException):
        con.sql("SELECT * FROM read_csv(?)", params=[str(sibling / "x.csv")]).fetchall()


def test_a_query_on_a_damaged_file_names_it_and_the_repair(runner: CliRunner, filled_lake: Path) -> None:
    target = filled_lake / PART
    target.write_bytes(b"PAR1 this is not parquet PAR1")
    code, out = sql(runner, filled_lake, "SELECT count(*) FROM bars")
    assert code != 0
    assert "Traceback" not in out
    assert str(target) in out and "marketlake verify" in out and "re-run the ingest" in out, out
    r = runner.invoke(cli, ["--lake", str(filled_lake), "verify"])
    assert r.exit_code != 0 and str(target) in r.output and "re-run the ingest" in r.output, r.output


@pytest.mark.parametrize(
    "args",
    [
        ["sql", "SELECT 1"],
        ["check"],
        ["verify"],
        ["runs"],
        ["shell"],
    ],
)
def test_a_reading_command_on_a_missing_lake_fails_naming_it(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "lake"
    r = runner.invoke(cli, ["--lake", str(missing), *args])
    assert r.exit_code != 0, r.output
    assert str(missing) in r.output and "marketlake ingest" in r.output and "--lake" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert not missing.exists() and not (tmp_path / "no").exists()


def test_a_folder_that_holds_no_lake_is_not_an_empty_lake(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    r = runner.invoke(cli, ["--lake", str(tmp_path / "photos"), "verify"])
    assert r.exit_code != 0 and "no lake" in r.output, r.output
    assert os.listdir(tmp_path / "photos") == []


def test_the_shell_reads_the_lake_and_nothing_outside_it(filled_lake: Path, outside: Path) -> None:
    exe = Path(sys.executable).with_name("marketlake")
    p = subprocess.run(
        [str(exe), "--lake", str(filled_lake), "shell"],
        input=(
            "SELECT count(*) AS n FROM bars;\n"
            f"SELECT * FROM read_csv('{outside}');\n"
            "SET enable_external_access = true;\n"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "3" in p.stdout, p.stdout + p.stderr
    assert "Permission Error" in p.stdout + p.stderr and "a,b" not in p.stdout, p.stdout + p.stderr
    assert "locked" in p.stdout + p.stderr


def test_a_lake_connection_keeps_no_file_contents_across_queries(filled_lake: Path) -> None:
    """The writer replaces files by renames, and DuckDB's external file cache trusts its own check of a file's
    version to reuse bytes it cached: every lake connection has that cache off, so that a query reads the
    file that is there, never cached bytes of the one it replaced."""
    from features import store

    for con in (lake.connect(filled_lake, read_only=True), lake.connect(filled_lake)):
        try:
            setting = con.execute("SELECT current_setting('enable_external_file_cache')").fetchone()
            assert setting == (False,), setting
        finally:
            con.close()
    with tempfile.TemporaryDirectory() as work:
        con = store._connection(filled_lake, Settings(), store.DEFAULT_MEMORY_LIMIT, Path(work))
        try:
            setting = con.execute("SELECT current_setting('enable_external_file_cache')").fetchone()
            assert setting == (False,), setting
        finally:
            con.close()

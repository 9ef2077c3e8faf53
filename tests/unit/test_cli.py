"""The click group, in-process with CliRunner; the exit code is asserted with the output as the message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from ingest.sessions import land


def test_sql_json_reads_the_lake_given_by_lake_option(runner: CliRunner, filled_lake: Path) -> None:
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(filled_lake),
            "sql",
            "SELECT symbol, ts, close FROM bars ORDER BY ts",
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert rows[0] == {"symbol": "BTCUSDT", "ts": "2024-01-01T00:00:00+00:00", "close": 1.0}
    assert len(rows) == 3


def test_sql_csv_and_table(runner: CliRunner, filled_lake: Path) -> None:
    r = runner.invoke(
        cli, ["--lake", str(filled_lake), "sql", "SELECT close FROM bars ORDER BY ts", "--format", "csv"]
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["close", "1.0", "2.0", "3.0"]
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", "SELECT count(*) AS n FROM bars"])
    assert r.exit_code == 0, r.output
    assert "3" in r.stdout


def test_sql_table_prints_brackets_in_values_and_names_as_they_are(
    runner: CliRunner, filled_lake: Path
) -> None:
    """rich reads a str as markup: a headline "[video] ..." lost its tag and a lone "[/]" raised."""
    query = "SELECT '[video] Apple beats' AS headline, 'fixes [splits] ok' AS \"[note]\", 'a [/] b' AS c"
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", query])
    assert r.exit_code == 0, r.output
    for text in ("[video] Apple beats", "fixes [splits] ok", "[note]", "a [/] b"):
        assert text in r.stdout, r.output


def test_messages_print_brackets_as_they_are(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from lake.config import Settings
    from lake.context import RunContext

    buf = io.StringIO()
    ctx = RunContext(tmp_path, Settings(), console=Console(file=buf, width=200))
    ctx.say('a [splits] table with method = "date" fixes it [/]')
    assert buf.getvalue() == 'a [splits] table with method = "date" fixes it [/]\n'


def test_sql_runs_one_query_and_refuses_several(runner: CliRunner, filled_lake: Path) -> None:
    """Several statements would all run and show only the last one's rows: refused, saying how many."""
    r = runner.invoke(
        cli, ["--lake", str(filled_lake), "sql", "SELECT 1 AS a; SELECT 2 AS b", "--format", "csv"]
    )
    assert r.exit_code == 1, r.output
    assert "one query at a time: 2 statements given" in r.output
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", "SELECT 1 AS a;", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["a", "1"]


def test_lake_root_env_is_honoured(
    runner: CliRunner, filled_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_ROOT", str(filled_lake))
    r = runner.invoke(cli, ["sql", "SELECT count(*) FROM bars", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1] == "3"


def test_a_bad_query_is_one_line_and_non_zero(runner: CliRunner, lake_root: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(lake_root), "sql", "SELECT nope FROM bars"])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: ") and "Traceback" not in r.output


@pytest.mark.parametrize("args", [["train"], ["evaluate", "r1"], ["runs"]])
def test_training_commands_refuse_a_missing_lake_in_one_line(
    runner: CliRunner, lake_root: Path, args: list[str]
) -> None:
    r = runner.invoke(cli, ["--lake", str(lake_root / "nope"), *args])
    assert r.exit_code == 1, r.output
    assert str(lake_root / "nope") in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert not (lake_root / "nope").exists()


def test_evaluate_names_an_unknown_run(runner: CliRunner, filled_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(filled_lake), "evaluate", "no-such-run"])
    assert r.exit_code == 1, r.output
    assert "no-such-run" in r.output and "Traceback" not in r.output


def test_runs_on_a_lake_without_runs_is_an_empty_list(runner: CliRunner, filled_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(filled_lake), "runs", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == []


def test_every_contract_command_exists(runner: CliRunner) -> None:
    for args in (
        ["ingest"],
        ["ingest", "binance"],
        ["ingest", "polygon"],
        ["ingest", "yahoo"],
        ["ingest", "news"],
        ["ingest", "news-file"],
        ["check"],
        ["sql"],
        ["shell"],
        ["train"],
        ["evaluate"],
        ["runs"],
    ):
        r = runner.invoke(cli, [*args, "--help"])
        assert r.exit_code == 0, f"{args}: {r.output}"


def test_hostile_symbol_is_refused_before_any_work(runner: CliRunner, lake_root: Path) -> None:
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(lake_root),
            "ingest",
            "binance",
            "--symbols",
            "BTCUSDT,../../etc",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
        ],
    )
    assert r.exit_code == 1, r.output
    assert "invalid symbol '../../etc'" in r.output


def test_runs_on_an_empty_lake(runner: CliRunner, lake_root: Path) -> None:
    with land(lake_root):
        pass  # a lake with nothing in it yet
    r = runner.invoke(cli, ["--lake", str(lake_root), "runs", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == []


def test_verify_reports_a_changed_file(runner: CliRunner, filled_lake: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(filled_lake), "verify"])
    assert r.exit_code == 0, r.output
    f = next(filled_lake.rglob("symbol=BTCUSDT/*/data.parquet"))
    f.write_bytes(f.read_bytes()[:-10] + b"0123456789")
    r = runner.invoke(cli, ["--lake", str(filled_lake), "verify"])
    assert r.exit_code == 1, r.output
    assert str(f) in r.output


def test_verify_reports_a_bars_partition_copied_in_by_hand_until_features_refresh(
    runner: CliRunner, filled_lake: Path, tmp_path: Path
) -> None:
    """A partition copied from another lake (its file matches its own manifest) is in the bars files but not
    in the mirror `bars` reads: verify names the symbol and says how to repair; `features refresh` repairs."""
    import datetime as dt
    import shutil

    import lake
    from tests.conftest import bars_table

    other = tmp_path / "other"
    with land(other) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-02"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 2, 1, tzinfo=dt.UTC), [4.0, 5.0]))
    rel = Path("datasets/bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-02")
    shutil.copytree(other / rel, filled_lake / rel)

    def count() -> int:
        with lake.connect(filled_lake) as con:
            return int(con.execute("SELECT count(*) FROM bars").fetchone()[0])  # type: ignore[index]

    r = runner.invoke(cli, ["--lake", str(filled_lake), "verify"])
    assert r.exit_code == 1, r.output
    assert "BTCUSDT 1m" in r.output and "features refresh" in r.output, r.output
    assert count() == 3  # what the mirror held
    r = runner.invoke(cli, ["--lake", str(filled_lake), "features", "refresh"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--lake", str(filled_lake), "verify"])
    assert r.exit_code == 0, r.output
    assert count() == 5


def test_verify_passes_on_a_whole_copy_of_a_lake_whose_files_all_changed_identity(
    runner: CliRunner, filled_lake: Path, tmp_path: Path
) -> None:
    """A copy made file by file (no hard link kept, every inode new) holds what the original held: the
    mirror's check compares content, not only the files' identities, and names nothing."""
    import datetime as dt
    import shutil

    import lake
    from tests.conftest import bars_table

    with land(filled_lake) as w:  # a second source for the same minutes: the mirror holds a file of winners
        part = {"source": "yahoo", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}
        w.write(
            lake.BARS, part, bars_table(dt.datetime(2024, 1, 1, 0, 2, tzinfo=dt.UTC), [7.0, 8.0, 9.0, 10.0])
        )
    copy = tmp_path / "copy"
    shutil.copytree(filled_lake, copy)
    r = runner.invoke(cli, ["--lake", str(copy), "verify"])
    assert r.exit_code == 0, r.output
    assert "holds what the bars files say" in r.output, r.output
    chosen_file = next(copy.glob("datasets/bars_chosen/source=yahoo/**/data.parquet"))
    import pyarrow.parquet as pq

    t = pq.read_table(chosen_file, partitioning=None)
    assert t.num_rows == 3  # its winners: the minutes binance has not
    pq.write_table(t.slice(0, 1), chosen_file)  # two winners lost from the mirror by hand
    r = runner.invoke(cli, ["--lake", str(copy), "verify"])
    assert r.exit_code == 1, r.output
    assert "BTCUSDT 1m" in r.output, r.output


def test_shell_opens_the_duckdb_cli_with_views_ready(filled_lake: Path) -> None:
    exe = Path(sys.executable).with_name("marketlake")
    p = subprocess.run(
        [str(exe), "--lake", str(filled_lake), "shell"],
        input="SELECT count(*) AS n, min(ts) AS first FROM bars;\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "3" in p.stdout and "2024-01-01 00:00:00+00" in p.stdout, p.stdout


def test_runs_lists_an_evaluations_period_and_buy_and_hold(runner: CliRunner, filled_lake: Path) -> None:
    """`marketlake runs`: a validation evaluation is marked not out of sample and buy-and-hold's result is
    beside the agent's, in the table and in the CSV's `result` column."""
    import csv
    import io

    from rl import runlog

    rec = runlog.start_run(filled_lake, "evaluate", {}, run_id="r-val", parent_run_id="r-train")
    rec.metrics = {
        "period": "validation",
        "metrics_version": 2,
        "overall": {
            "agent": {"total_return": 0.1798, "sharpe": 0.934},
            "buy_and_hold": {"total_return": 0.2347, "sharpe": 1.101},
        },
    }
    runlog.finish_run(filled_lake, rec)
    r = runner.invoke(cli, ["--lake", str(filled_lake), "runs", "--format", "csv"])
    assert r.exit_code == 0, r.output
    (row,) = csv.DictReader(io.StringIO(r.stdout))
    assert row["result"] == (
        "validation (not out of sample): agent return +17.98%, sharpe +0.934; "
        "buy & hold return +23.47%, sharpe +1.101"
    ), r.output
    r = runner.invoke(cli, ["--lake", str(filled_lake), "runs"])
    assert r.exit_code == 0, r.output
    assert "validation (not out of sample)" in r.stdout and "buy & hold return +23.47%" in r.stdout, r.output

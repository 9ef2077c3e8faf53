"""The command line as a new user meets it (issue 14, item 6): `--lake` after the command, an example in
every command's help, one name for the symbols option, the default date range said, Ctrl-C exits 130."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest.sessions import land
from tests.conftest import bars_table


def every_command(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out.extend(every_command(cmd, (*prefix, name)))
    return out


COMMANDS = every_command(cli)


@pytest.fixture
def filled_lake(lake_root: Path) -> Path:
    with land(lake_root) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 1, 2, tzinfo=dt.UTC), [1.0, 2.0]))
    return lake_root


def test_the_commands_of_the_contract_are_all_seen() -> None:
    assert {("sql",), ("ingest", "binance"), ("ingest", "polygon"), ("verify",), ("runs",)} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_has_an_example_and_takes_lake(
    runner: CliRunner, command: tuple[str, ...]
) -> None:
    r = runner.invoke(cli, [*command, "--help"])
    assert r.exit_code == 0, r.output
    assert "Example:" in r.output, r.output
    example = r.output.split("Example:", 1)[1].split("Options:", 1)[0]
    assert "marketlake" in example and command[-1] in example, r.output
    assert "--lake" in r.output, r.output


@pytest.mark.parametrize("where", ["before", "after"])
def test_lake_is_accepted_before_and_after_the_command(
    runner: CliRunner, filled_lake: Path, where: str
) -> None:
    query = ["sql", "SELECT count(*) AS n FROM bars", "--format", "json"]
    lake_opt = ["--lake", str(filled_lake)]
    args = [*lake_opt, *query] if where == "before" else [*query, *lake_opt]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [{"n": 2}]


def test_lake_after_the_command_wins_and_quiet_works_there_too(
    runner: CliRunner, filled_lake: Path, tmp_path: Path
) -> None:
    r = runner.invoke(cli, ["--lake", str(tmp_path / "wrong"), "verify", "--lake", str(filled_lake), "-q"])
    assert r.exit_code == 0, r.output
    assert "every file matches" in r.output


def test_ingest_commands_name_the_symbols_option_alike_and_say_the_default_range(runner: CliRunner) -> None:
    for source in ("binance", "polygon", "yahoo", "news"):
        r = runner.invoke(cli, ["ingest", source, "--help"])
        assert "--symbols" in r.output, (source, r.output)
        if source != "news":
            assert "default:" in r.output and "yesterday" in r.output and "data_days" in r.output, r.output
    assert "--tickers" in runner.invoke(cli, ["ingest", "polygon", "--help"]).output


@pytest.mark.parametrize("option", ["--symbols", "--tickers"])
def test_polygon_takes_symbols_and_the_tickers_alias(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    from ingest import polygon
    from ingest.common import IngestSummary

    seen: list[list[str]] = []

    def fake_run(ctx: object, symbols: list[str], *args: object, **kwargs: object) -> IngestSummary:
        seen.append(symbols)
        return IngestSummary("polygon")

    monkeypatch.setattr(polygon, "run", fake_run)
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(lake_root),
            "ingest",
            "polygon",
            option,
            "AAPL,SPY",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-02",
        ],
    )
    assert r.exit_code == 0, r.output
    assert seen == [["AAPL", "SPY"]]


def test_ctrl_c_in_a_command_exits_130(
    runner: CliRunner, filled_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lake.writer

    def interrupted(root: object) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(lake.writer, "verify", interrupted)
    r = runner.invoke(cli, ["--lake", str(filled_lake), "verify"])
    assert r.exit_code == 130, r.output
    assert r.output.strip() == "interrupted"

"""`marketlake check` off a terminal (cron's mail, a file, a pipe): one line per table row, not the row
wrapped over five lines at 120 columns; with COLUMNS set, that width as on a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from tests.unit.test_check_report import checked_lake  # noqa: F401  (the fixture)


def _rows(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines() if ln.startswith("│") and ("USDT" in ln or "AAPL" in ln)]


def test_off_a_terminal_each_row_is_one_line(
    runner: CliRunner,
    checked_lake: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check"])
    assert r.exit_code == 0, r.output
    rows = _rows(r.stdout)
    assert len(rows) == 3, r.stdout  # BTCUSDT, ETHUSDT, AAPL: no continuation lines
    for row in rows:
        assert "2024-07-0" in row and " .. 2024-07-0" in row and "rejected 0" in row, r.stdout


def test_columns_set_is_the_width_used(
    runner: CliRunner,
    checked_lake: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    r = runner.invoke(cli, ["--lake", str(checked_lake), "check"])
    assert r.exit_code == 0, r.output
    assert max(len(ln) for ln in r.stdout.splitlines() if ln.startswith(("│", "┃", "┏"))) <= 120, r.stdout

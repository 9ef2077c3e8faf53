"""`marketlake sql`: DuckDB's errors keep their hints (`Did you mean "news"?`, `Candidate bindings: ...`) in
one short line, never a traceback; `--param NAME=VALUE` binds named parameters ($NAME)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli


def _sql(runner: CliRunner, root: Path, *args: str) -> tuple[int, str]:
    r = runner.invoke(cli, ["--lake", str(root), "sql", *args])
    return r.exit_code, r.output


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("SELECT * FROM newss", ["Table with name newss does not exist", 'Did you mean "news"?']),
        ("SELECT closee FROM bars", ['column "closee" not found', 'Candidate bindings: "close"']),
        ("SELECT clse(1)", ["Function with name clse does not exist", "Did you mean"]),
    ],
)
def test_duckdbs_hints_are_kept_in_one_line(
    runner: CliRunner, filled_lake: Path, query: str, says: list[str]
) -> None:
    code, out = _sql(runner, filled_lake, query)
    assert code == 1, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out, out
    assert all(s in lines[0] for s in says), out


def test_a_query_that_does_not_parse_is_one_line(runner: CliRunner, filled_lake: Path) -> None:
    code, out = _sql(runner, filled_lake, "SELEC 1")
    assert code == 1 and len(out.strip().splitlines()) == 1, out
    assert "does not parse" in out and 'syntax error at or near "SELEC"' in out, out

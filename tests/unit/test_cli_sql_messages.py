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


def test_params_are_bound_by_name(runner: CliRunner, filled_lake: Path) -> None:
    """`--param NAME=VALUE` (repeatable) binds $NAME; a value is text, which DuckDB casts where the query
    compares it with a typed column, and which a cast makes a number elsewhere."""
    q = "SELECT count(*) AS n FROM bars WHERE close > $min AND symbol = $sym AND ts >= $from"
    code, out = _sql(
        runner,
        filled_lake,
        q,
        "--param",
        "min=1.5",
        "--param",
        "sym=BTCUSDT",
        "--param",
        "from=2024-01-01",
        "--format",
        "csv",
    )
    assert code == 0 and out == "n\n2\n", out
    code, out = _sql(runner, filled_lake, "SELECT $x::INTEGER + 1 AS y, $s AS s", "-p", "x=41", "-p", "s=a=b")
    assert code == 0 and "42" in out and "a=b" in out, out


@pytest.mark.parametrize(
    ("query", "params", "says"),
    [
        ("SELECT * FROM bars WHERE close > $min", [], ["the parameter(s) $min", "add --param min=VALUE"]),
        ("SELECT * FROM bars WHERE symbol = $sym AND close > $min", [], ["$min, $sym", "--param sym=VALUE"]),
        ("SELECT * FROM bars WHERE close > $min AND symbol = $sym", ["sym=X"], ["no --param for $min"]),
        ("SELECT * FROM bars WHERE close > $min", ["min=1", "max=2"], ["--param max", "not used", "no $max"]),
        ("SELECT 1", ["max=2"], ["--param max", "not used"]),
        ("SELECT * FROM bars WHERE close > ?", ["min=1"], ["positional", "$NAME"]),
        ("SELECT * FROM bars WHERE close > ?", [], ["$NAME", "--param NAME=VALUE"]),
    ],
)
def test_a_missing_or_unused_param_is_one_clear_line(
    runner: CliRunner, filled_lake: Path, query: str, params: list[str], says: list[str]
) -> None:
    code, out = _sql(runner, filled_lake, query, *(a for p in params for a in ("--param", p)))
    assert code == 1, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out and "Unexpected prepared parameter" not in out, out
    assert all(s in lines[0] for s in says), out


@pytest.mark.parametrize(
    ("params", "says"), [(["min"], "'min' is not NAME=VALUE"), (["min=1", "MIN=2"], "MIN given twice")]
)
def test_a_malformed_param_is_a_usage_error(
    runner: CliRunner, filled_lake: Path, params: list[str], says: str
) -> None:
    code, out = _sql(runner, filled_lake, "SELECT $min", *(a for p in params for a in ("--param", p)))
    assert code == 2 and says in out and "Traceback" not in out, out

"""Case 5: hostile names. Symbols with quotes, ';', '/', '..', spaces, unicode, NUL or great length are
refused through every command and config list that takes symbols: one clear line, exit 1, no traceback,
no file or folder created anywhere. In `marketlake sql` a hostile literal is data, never code. And a
static check: no SQL call in the product formats a value into its SQL text.
"""

from __future__ import annotations

import ast
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from tests.faults import REPO, lake_files

pytestmark = pytest.mark.integration

ESCAPE = f"marketlake-escaped-{uuid.uuid4().hex[:8]}"

HOSTILE = {
    "single-quote": "AA'PL",
    "double-quote": 'AA"PL',
    "semicolon-sql": "AAPL'; DROP VIEW bars; --",
    "slash": "BRK/B",
    "backslash": "BRK\\B",
    "dotdot": "..",
    "dotdot-inside": "A..B",
    "traversal": "../../etc",
    "deep-traversal": "../" * 12 + f"tmp/{ESCAPE}",
    "absolute": f"/tmp/{ESCAPE}",
    "space": "BTC USDT",
    "tab": "BTC\tUSDT",
    "newline": "BTC\nUSDT",
    "unicode-letters": "ÄPFEL",
    "cyrillic-lookalike": "АAPL",  # first letter is Cyrillic
    "zero-width": "AAPL\u200b",
    "emoji": "BTC🚀",
    "nul": "AA\x00PL",
    "too-long": "A" * 33,
    "very-long": "B" * 5000,
    "leading-dash": "-rf",
    "shell": "$(touch pwned)",
    "glob": "*",
    "percent": "%2e%2e",
    "hive-equals": "symbol=AAPL",
}

# (command, option) for every command that takes symbols.
SYMBOL_COMMANDS = [
    (["ingest", "binance"], "--symbols"),
    (["ingest", "polygon"], "--tickers"),
    (["ingest", "yahoo"], "--symbols"),
    (["ingest", "news"], "--symbols"),
]


def _tree(*roots: Path) -> set[str]:
    out: set[str] = set()
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            out.update(os.path.join(dirpath, n) for n in [*dirs, *files])
    return out


def _assert_refused_cleanly(output: str, exit_code: int) -> None:
    assert exit_code == 1, output
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output


def _assert_nothing_created(before: set[str], tmp_path: Path) -> None:
    assert _tree(tmp_path) == before, sorted(_tree(tmp_path) - before)
    assert not Path("/tmp", ESCAPE).exists()
    assert not any(ESCAPE in n for n in os.listdir(tmp_path.parent))


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("command", SYMBOL_COMMANDS, ids=lambda c: c[0][1] if isinstance(c, tuple) else c)
def test_a_hostile_symbol_on_the_command_line_is_refused(
    runner: CliRunner, tmp_path: Path, lake_root: Path, command: tuple[list[str], str], name: str
) -> None:
    args, option = command
    dates = ["--start", "2024-01-02", "--end", "2024-01-02"] if args[1] != "news" else []
    before = _tree(tmp_path)
    r = runner.invoke(cli, ["--lake", str(lake_root), *args, option, f"AAPL,{HOSTILE[name]}", *dates])
    _assert_refused_cleanly(r.output, r.exit_code)
    assert "invalid symbol" in r.output, r.output
    assert repr(HOSTILE[name])[:40] in r.output, "the message names the refused symbol"
    _assert_nothing_created(before, tmp_path)
    assert not lake_root.exists()


def _toml_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON's escapes are TOML's (\" \\ \n \t \u0000 …)


@pytest.mark.parametrize(
    "name", ["semicolon-sql", "traversal", "deep-traversal", "nul", "unicode-letters", "very-long"]
)
@pytest.mark.parametrize("section", ["binance", "polygon", "yahoo", "news"])
def test_a_hostile_symbol_in_marketlake_toml_is_refused_naming_its_line(
    runner: CliRunner, tmp_path: Path, lake_root: Path, section: str, name: str
) -> None:
    lines = ["[data]", "data_days = 2"]
    for s in (
        "binance",
        "polygon",
        "yahoo",
        "news",
    ):  # every section has a symbols line: the right one is named
        symbols = ["AAPL", HOSTILE[name]] if s == section else ["AAPL"]
        lines += [f"[{s}]", f"symbols = [{', '.join(_toml_string(x) for x in symbols)}]"]
    (tmp_path / "marketlake.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected_line = lines.index(f"[{section}]") + 2
    before = _tree(tmp_path)
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest"])
    _assert_refused_cleanly(r.output, r.exit_code)
    assert f"marketlake.toml, line {expected_line}: key '{section}.symbols'" in r.output, r.output
    assert "invalid symbol" in r.output
    _assert_nothing_created(before, tmp_path)


def _sql_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@pytest.mark.parametrize("name", [n for n in HOSTILE if n != "nul"])
def test_a_hostile_literal_in_marketlake_sql_is_data(
    runner: CliRunner, tmp_path: Path, filled_lake: Path, name: str
) -> None:
    files = lake_files(filled_lake)
    before = _tree(tmp_path)
    query = f"SELECT count(*) AS n FROM bars WHERE symbol = {_sql_literal(HOSTILE[name])}"
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", query, "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["n", "0"], r.output
    # The control: the same query with a real symbol finds its rows, and the views are all still there.
    query = f"SELECT count(*) AS n FROM bars WHERE symbol = {_sql_literal('BTCUSDT')}"
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", query, "--format", "csv"])
    assert r.exit_code == 0 and r.stdout.splitlines() == ["n", "3"], r.output
    assert lake_files(filled_lake) == files
    _assert_nothing_created(before, tmp_path)


def test_a_nul_in_a_sql_literal_is_one_clear_error(
    runner: CliRunner, tmp_path: Path, filled_lake: Path
) -> None:
    before = _tree(tmp_path)
    query = f"SELECT count(*) FROM bars WHERE symbol = {_sql_literal(HOSTILE['nul'])}"
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", query])
    _assert_refused_cleanly(r.output, r.exit_code)
    _assert_nothing_created(before, tmp_path)


# --- static check: values are bound as parameters, never formatted into SQL text -----------------------

SQL_METHODS = {"execute", "executemany", "sql", "query", "from_query"}
PRODUCT_DIRS = ("lake", "ingest", "features", "rl")

# Interpolations that are identifiers chosen by the code, never values. Each entry says why.
ALLOWED = {
    (
        "lake/connect.py",
        "cols",
    ): "`?::TYPE AS name` per Settings field: names from the dataclass, values bound",
    ("lake/connect.py", "name"): "dataset names from lake.schemas.DATASETS (SET VARIABLE dataset_<name> = ?)",
}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    expression: str


def _interpolated(node: ast.expr) -> list[str]:
    """The expressions formatted into a string built by `node` (f-string, %, +, .format)."""
    if isinstance(node, ast.JoinedStr):
        return [ast.unparse(v.value) for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _is_text(node.left):
        return [ast.unparse(node.right)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [node.left, node.right]
        if any(_is_text(p) for p in parts):
            out: list[str] = []
            for p in parts:
                out += _interpolated(p) if _is_text(p) else [ast.unparse(p)]
            return out
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and _is_text(node.func.value)
    ):
        return [ast.unparse(a) for a in [*node.args, *(k.value for k in node.keywords)]]
    return []


def _is_text(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(
        node, ast.JoinedStr | ast.BinOp
    )


def find_formatted_sql(source: str, filename: str) -> list[Finding]:
    """Every SQL call whose query text is built by formatting, directly or through a local variable."""
    tree = ast.parse(source, filename)
    assigned: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            if node.value is not None:
                assigned.setdefault(node.target.id, []).append(node.value)
    findings: list[Finding] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_METHODS
            and node.args
        ):
            continue
        query = node.args[0]
        candidates = assigned.get(query.id, []) if isinstance(query, ast.Name) else [query]
        for c in candidates:
            findings += [Finding(filename, node.lineno, e) for e in _interpolated(c)]
    return findings


def test_the_static_check_catches_formatted_sql() -> None:
    bad = (
        "def f(con, s):\n"
        "    con.execute(f\"SELECT * FROM bars WHERE symbol = '{s}'\")\n"
        "    con.sql(\"SELECT * FROM bars WHERE symbol = '%s'\" % s)\n"
        '    con.sql("SELECT * FROM bars WHERE symbol = \'" + s + "\'")\n'
        "    con.execute(\"SELECT * FROM bars WHERE symbol = '{}'\".format(s))\n"
        '    q = f"DELETE FROM t WHERE id = {s}"\n'
        "    con.execute(q)\n"
    )
    assert [f.expression for f in find_formatted_sql(bad, "bad.py")] == ["s", "s", "s", "s", "s"]
    good = (
        "def f(con, s, path):\n"
        "    con.execute('SELECT * FROM bars WHERE symbol = ?', [s])\n"
        "    con.sql('SELECT 1')\n"
        "    con.execute(path.read_text())\n"
    )
    assert find_formatted_sql(good, "good.py") == []


def test_no_product_sql_formats_a_value_into_its_text() -> None:
    findings: list[Finding] = []
    for d in PRODUCT_DIRS:
        for path in sorted((REPO / d).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            findings += find_formatted_sql(path.read_text(encoding="utf-8"), rel)
    unexplained = [f for f in findings if (f.file, f.expression) not in ALLOWED]
    assert unexplained == [], (
        "SQL text built by formatting; bind values as parameters (`?`), or, for an identifier chosen by "
        f"the code, add it to ALLOWED with the reason: {unexplained}"
    )
    assert {(f.file, f.expression) for f in findings} == set(ALLOWED), "an ALLOWED entry is stale"

"""Layers import downward only: the storage layer (lake/) nothing above it, the feature store (features/)
never the vendors' code (ingest/), the RL half (rl/) neither ingest/ nor the command line, and nothing
imports the command line (cli/), which sits on top. Every import counts, also one inside a function or
under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN: dict[str, set[str]] = {
    "lake": {"ingest", "features", "rl", "cli"},
    "features": {"ingest", "rl", "cli"},
    "ingest": {"rl", "cli"},
    "rl": {"ingest", "cli"},
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, top in imported_packages(path):
            if top in FORBIDDEN[package]:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package: str) -> None:
    assert (ROOT / package).is_dir()
    assert violations(package) == []


def test_the_scan_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from features.calendars import ensure_sessions\n    import ingest.common\n"
    )
    assert imported_packages(module) == [(2, "features"), (3, "ingest")]


def test_the_command_line_is_not_inside_the_storage_layer() -> None:
    assert not (ROOT / "lake" / "cli.py").exists()
    assert (ROOT / "cli" / "main.py").exists()

"""A command's output to a file or a pipe is not cut at 80 columns."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from lake.config import Settings
from lake.context import LOG_WIDTH, RunContext, stderr_console


def test_a_console_not_on_a_terminal_is_log_wide_unless_columns_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = stderr_console()
    assert not console.is_terminal  # pytest captures stderr
    assert console.width == LOG_WIDTH
    monkeypatch.setenv("COLUMNS", "97")
    assert stderr_console().width == 97


def test_say_never_breaks_a_long_line(tmp_path: Path) -> None:
    buf = io.StringIO()
    ctx = RunContext(tmp_path, Settings(), console=Console(file=buf, width=80))
    path = "/a/" + "very-long-folder-name/" * 12 + "evaluation-validation.json"
    ctx.say(f"wrote {path}")
    assert buf.getvalue() == f"wrote {path}\n"
    ctx.quiet = True
    ctx.say("not shown")
    assert "not shown" not in buf.getvalue()

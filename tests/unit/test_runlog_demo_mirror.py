"""`marketlake demo` leaves the team's Supabase table alone: its runs are neither sent nor queued unless
--mirror is given (said in a note when Supabase is configured). The demo is stopped at its first step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from lake.errors import MarketlakeError
from rl import mirror


class Stopped(MarketlakeError):
    pass


@pytest.mark.parametrize("flag", [[], ["--mirror"]])
def test_the_demo_mirrors_its_runs_only_when_asked(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-for-tests")
    seen: list[Any] = []

    def run(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(mirror.supabase_target())  # what a run recorded now would be mirrored to
        raise Stopped("stopped at the samples' ingest")

    monkeypatch.setattr("ingest.samples.run", run)
    r = runner.invoke(cli, ["demo", *flag])
    assert r.exit_code == 1 and "stopped" in r.output, r.output
    (target,) = seen
    if flag:
        assert target is not None and "not sent to Supabase" not in r.stderr, r.stderr
    else:
        assert target is None, target
        assert "note: the demo's runs are not sent to Supabase (--mirror sends them)" in r.stderr, r.stderr
    assert mirror.supabase_target() is not None  # the other commands mirror as before


def test_no_note_when_supabase_is_not_configured(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SUPABASE_URL", raising=False)

    def run(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise Stopped("stopped at the samples' ingest")

    monkeypatch.setattr("ingest.samples.run", run)
    r = runner.invoke(cli, ["demo"])
    assert r.exit_code == 1 and "Supabase" not in r.output, r.output

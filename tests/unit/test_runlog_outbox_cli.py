"""The Supabase mirror from the command line: `-q` hides only progress, so a run kept in the outbox is said on
stderr by `train -q` and `evaluate -q`; `marketlake runs` says how many runs wait in the outbox (a note on
stderr, in every format); after a run is mirrored the runs waiting are sent too, briefly (a short timeout,
stopping at the first failure every row would meet); a row Supabase refuses itself does not block the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from rl import mirror, runlog
from rl.mirror import SendError, SupabaseTarget, pending, queue_row, sync_outbox
from tests.integration.supabase_stub import free_port
from tests.unit.test_ppo_train import TINY, build_lake

SETS = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    build_lake(root)
    return root


def test_quiet_train_and_evaluate_still_say_a_run_was_kept_in_the_outbox(
    runner: CliRunner, lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens: refused
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-for-tests")
    base = ["--lake", str(lake_root), "-q"]
    r = runner.invoke(cli, [*base, "train", "--runs-dir", str(tmp_path / "runs"), "--no-evaluate", *SETS])
    assert r.exit_code == 0, r.output
    (train_id,) = [x["run_id"] for x in runlog.list_runs(lake_root, kind="train")]
    assert f"warning: Supabase did not take run {train_id}" in r.stderr, r.stderr
    assert "cannot connect" in r.stderr and "runs sync" in r.stderr, r.stderr

    e = runner.invoke(cli, [*base, "evaluate", train_id])
    assert e.exit_code == 0, e.output
    (eval_id,) = [x["run_id"] for x in runlog.list_runs(lake_root, kind="evaluate")]
    assert f"warning: Supabase did not take run {eval_id}" in e.stderr, e.stderr
    assert sorted(p.stem for p in pending(lake_root)) == sorted([train_id, eval_id])

    for fmt in ("table", "csv", "json"):
        listed = runner.invoke(cli, [*base, "runs", "--format", fmt])
        assert listed.exit_code == 0, listed.output
        assert "note: 2 run(s) wait in the outbox" in listed.stderr, (fmt, listed.stderr)
        assert "note:" not in listed.stdout, listed.stdout
    json.loads(runner.invoke(cli, [*base, "runs", "--format", "json"]).stdout)  # stdout stays JSON

    monkeypatch.delenv("SUPABASE_URL")
    listed = runner.invoke(cli, [*base, "runs"])
    assert "set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY, then `marketlake runs sync`" in listed.stderr


def _queued(root: Path, ids: list[str]) -> None:
    for run_id in ids:
        rec = runlog.RunRecord(
            run_id=run_id, kind="train", started_at=runlog.dt.datetime.now(runlog.dt.UTC), config={}
        )
        queue_row(root, rec.to_json())


TARGET = SupabaseTarget("http://127.0.0.1:9", "service-key-for-tests")


def test_a_mirrored_run_sends_what_waits_briefly_and_stops_when_the_server_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lake"
    _queued(root, ["w1", "w2", "w3"])
    calls: list[tuple[str, float]] = []

    def send(
        target: SupabaseTarget, rows: list[dict[str, Any]], *, timeout: float = 10.0, **_: Any
    ) -> list[Any]:
        calls.append((rows[0]["run_id"], timeout))
        return []

    monkeypatch.setattr(mirror, "send_rows", send)
    said: list[str] = []
    rec = runlog.RunRecord(
        run_id="now", kind="train", started_at=runlog.dt.datetime.now(runlog.dt.UTC), config={}
    )
    assert mirror.mirror_run(root, rec, target=TARGET, say=said.append, warn=said.append) == "sent"
    assert calls == [("now", 10.0), ("w1", 3.0), ("w2", 3.0), ("w3", 3.0)]
    assert pending(root) == [] and said == ["sent 3 run(s) that waited in the outbox"]

    # the server answered the run, then hangs: one short try of the waiting ones, not one per row
    _queued(root, ["w4", "w5", "w6"])
    calls.clear()
    said.clear()

    def hangs(
        target: SupabaseTarget, rows: list[dict[str, Any]], *, timeout: float = 10.0, **_: Any
    ) -> list[Any]:
        calls.append((rows[0]["run_id"], timeout))
        if rows[0]["run_id"] != "now":
            raise SendError("no answer in time")
        return []

    monkeypatch.setattr(mirror, "send_rows", hangs)
    assert mirror.mirror_run(root, rec, target=TARGET, warn=said.append) == "sent"
    assert calls == [("now", 10.0), ("w4", mirror.WAITING_TIMEOUT)]
    assert [p.stem for p in pending(root)] == ["w4", "w5", "w6"]
    assert any("w4" in s and "no answer in time" in s for s in said), said
    assert any("3 run(s) still wait in the outbox" in s for s in said), said

    # a run not taken: nothing else is tried
    calls.clear()
    other = runlog.RunRecord(run_id="late", kind="train", started_at=rec.started_at, config={})
    assert mirror.mirror_run(root, other, target=TARGET, warn=said.append) == "queued"
    assert calls == [("late", 10.0)]


def test_a_refused_outbox_file_does_not_block_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lake"
    _queued(root, ["a1", "a2-bad", "a3"])
    tried: list[str] = []

    def send(
        target: SupabaseTarget, rows: list[dict[str, Any]], *, timeout: float = 10.0, **_: Any
    ) -> list[Any]:
        tried.append(rows[0]["run_id"])
        if rows[0]["run_id"] == "a2-bad":
            raise SendError("23514: new row violates check constraint", "23514")
        return []

    monkeypatch.setattr(mirror, "send_rows", send)
    said: list[str] = []
    counts = sync_outbox(root, target=TARGET, warn=said.append)
    assert tried == ["a1", "a2-bad", "a3"]
    assert (counts.sent, counts.failed, counts.waiting, counts.refused) == (2, 0, 0, 1)
    (line,) = said
    assert "a2-bad" in line and "23514" in line and "check constraint" in line, line
    assert "not sent again" in line and "refused/a2-bad.json" in line, line
    assert [p.name for p in mirror.refused(root)] == ["a2-bad.json"]

    # authentication, a missing table, no answer: every row would fail alike: it stops there
    for code in ("PGRST301", "42501", "42P01", "PGRST205", None, "503"):
        _queued(root, ["b1", "b2"])
        tried.clear()

        def refuse(
            target: SupabaseTarget, rows: list[dict[str, Any]], *, timeout: float = 10.0, **_: Any
        ) -> list[Any]:
            tried.append(rows[0]["run_id"])
            raise SendError("refused", code)  # noqa: B023

        monkeypatch.setattr(mirror, "send_rows", refuse)
        counts = sync_outbox(root, target=TARGET, warn=said.append)
        assert tried == ["b1"], (code, tried)
        assert (counts.failed, counts.waiting, counts.refused) == (1, 2, 0), code
    assert [p.name for p in mirror.refused(root)] == ["a2-bad.json"]


@pytest.mark.parametrize(
    ("code", "of_the_row"),
    [
        ("23505", True),  # a run id collision
        ("23514", True),  # a check constraint
        ("22P02", True),  # a value of the wrong type
        ("PGRST102", True),  # a body PostgREST cannot read
        ("409", True),
        ("22023", False),  # a key whose JWT role does not exist: every row alike
        ("PGRST100", False),
        ("PGRST106", False),  # a schema not exposed
        ("PGRST107", False),  # a content type not accepted
        ("PGRST125", False),  # an invalid path
        ("400", False),
        ("42501", False),
        (None, False),
    ],
)
def test_only_a_rows_own_refusal_sets_it_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str | None, of_the_row: bool
) -> None:
    """A refusal every row would meet stops the sync with every row still queued; only a row's own refusal
    sets that row aside (for good) and lets the others go on."""
    root = tmp_path / "lake"
    _queued(root, ["c1", "c2"])
    tried: list[str] = []

    def refuse(target: SupabaseTarget, rows: list[dict[str, Any]], **_: Any) -> list[Any]:
        tried.append(rows[0]["run_id"])
        raise SendError("refused", code)

    monkeypatch.setattr(mirror, "send_rows", refuse)
    assert SendError("refused", code).of_the_row is of_the_row
    counts = sync_outbox(root, target=TARGET, warn=lambda _m: None)
    if of_the_row:
        assert tried == ["c1", "c2"] and counts.refused == 2 and pending(root) == []
    else:
        assert tried == ["c1"] and counts.refused == 0 and [p.stem for p in pending(root)] == ["c1", "c2"]
        assert mirror.refused(root) == []

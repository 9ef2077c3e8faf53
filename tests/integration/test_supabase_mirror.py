"""The Supabase mirror against real parts: the shipped DDL on a real PostgreSQL (anon and service roles, row-
level security), the supabase client's real HTTP calls against a PostgREST stand-in backed by it, the
outbox when Supabase is down, `sync_outbox` when it is back: one row per run, none lost, none doubled, and
the service key nowhere."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rl import runlog
from rl.mirror import SupabaseTarget, mirror_run, outbox_dir, pending, sync_outbox
from tests.integration.supabase_stub import Postgres, PostgrestStub, free_port, postgrest, supabase_roles
from tests.secrets_canary import CANARIES, assert_no_leak, canaries, run_callable, run_cli

pytestmark = pytest.mark.integration

DDL = Path(__file__).resolve().parents[2] / "sql" / "supabase" / "001_training_runs.sql"
SERVICE_KEY = CANARIES["SUPABASE_SERVICE_ROLE_KEY"]
ANON_KEY = "anon-public-key-for-tests"
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    server = Postgres.start()
    try:
        supabase_roles(server)
        server.execute(DDL.read_text())
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _schema_asked_afresh() -> Iterator[None]:
    """Each test as a new process: the table's rule is asked again."""
    from rl import mirror

    asked: dict[str, bool] = getattr(mirror, "_MERGES", {})
    asked.clear()
    yield
    asked.clear()


@pytest.fixture
def db(pg: Postgres) -> Postgres:
    pg.execute("TRUNCATE training_runs")
    return pg


@pytest.fixture
def stub(db: Postgres) -> Iterator[PostgrestStub]:
    with postgrest(db, {SERVICE_KEY: "service_role", ANON_KEY: "anon"}) as s:
        yield s


def _rows(pg: Postgres) -> list[tuple[str, str, dict[str, object]]]:
    with pg.connect() as con:
        return con.execute("SELECT run_id, status, config FROM training_runs ORDER BY run_id").fetchall()


INSERT = (
    "INSERT INTO training_runs (run_id, kind, started_at, status, config, data_snapshot) "
    "VALUES (%s, 'train', now(), 'finished', '{}'::jsonb, 'h') ON CONFLICT (run_id) DO NOTHING"
)


def test_ddl_enables_row_level_security_and_applies_twice(db: Postgres) -> None:
    db.execute(DDL.read_text())  # re-applying is safe
    with db.connect() as con:
        assert con.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.training_runs'::regclass"
        ).fetchone() == (True,)
        grants = con.execute(
            "SELECT grantee, privilege_type FROM information_schema.role_table_grants "
            "WHERE table_name = 'training_runs' AND grantee IN ('anon', 'authenticated')"
        ).fetchall()
    assert grants == []


FUNCTIONS = (
    "public.training_runs_status_rank(text)",
    "public.training_runs_keep_stronger()",
    "public.training_runs_schema_version()",
)


def test_anon_and_authenticated_cannot_call_the_ddls_functions(db: Postgres, stub: PostgrestStub) -> None:
    """Supabase grants every new public function to anon and authenticated (and PostgreSQL to PUBLIC); the DDL
    takes that back: none of its functions is callable with the anon key (PostgREST's /rpc), the service
    role's rule still works (the trigger calls the rank as the service role)."""
    import httpx

    db.execute(DDL.read_text())  # again: the revokes hold on a re-run
    with db.connect() as con:
        for fn in FUNCTIONS:
            for role in ("anon", "authenticated", "public"):
                got = con.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')", [role, fn]).fetchone()
                assert got == (False,), (role, fn)
        for fn in (FUNCTIONS[0], FUNCTIONS[2]):
            assert con.execute(
                "SELECT has_function_privilege('service_role', %s, 'EXECUTE')", [fn]
            ).fetchone() == (True,)
    headers = {"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"}
    for fn in ("training_runs_schema_version", "training_runs_status_rank"):
        got = httpx.post(f"{stub.url}/rest/v1/rpc/{fn}", json={}, headers=headers, timeout=10)
        assert got.status_code in (403, 404), (fn, got.status_code, got.text)
    with db.connect() as con:
        con.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("SELECT public.training_runs_status_rank('finished')")


def test_anon_sees_no_row_and_cannot_insert(db: Postgres) -> None:
    with db.connect() as con:
        con.execute("SET ROLE service_role")
        con.execute(INSERT, ["r-secret"])
    with db.connect() as con:
        con.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("SELECT * FROM training_runs")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute(INSERT, ["r-anon"])
    # even if a grant slipped back in, row-level security admits no row and no insert for anon
    with db.connect(autocommit=False) as con:
        con.execute("GRANT SELECT, INSERT ON training_runs TO anon")
        con.execute("SET ROLE anon")
        assert con.execute("SELECT count(*) FROM training_runs").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            con.execute(INSERT, ["r-anon"])
        con.rollback()
    assert [r[0] for r in _rows(db)] == ["r-secret"]


def test_service_role_inserts_once_per_run_id(db: Postgres) -> None:
    with db.connect() as con:
        con.execute("SET ROLE service_role")
        con.execute(INSERT, ["r1"])
        con.execute(INSERT, ["r1"])
        assert con.execute("SELECT count(*) FROM training_runs").fetchone() == (1,)


def test_a_run_goes_through_the_client_to_the_table(
    monkeypatch: pytest.MonkeyPatch, lake_root: Path, stub: PostgrestStub, db: Postgres
) -> None:
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
    said: list[str] = []
    with runlog.recorded_run(
        lake_root, "train", {"symbols": ["BTCUSDT"]}, run_id="r-http", say=said.append
    ) as r:
        r.metrics = {"sharpe": 0.5}
    assert said == []
    assert _rows(db) == [("r-http", "finished", {"symbols": ["BTCUSDT"]})]
    rpc, post = [s for s in stub.seen if s.method == "POST"]
    assert rpc.path == "/rest/v1/rpc/training_runs_schema_version" and rpc.status == 200  # the rule is there
    assert post.path == "/rest/v1/training_runs" and post.role == "service_role" and post.status == 201
    assert post.query["on_conflict"] == ["run_id"] and "resolution=merge-duplicates" in post.prefer
    assert pending(lake_root) == []
    with db.connect() as con:
        row = con.execute("SELECT metrics, kind, code_version FROM training_runs").fetchone()
    assert row is not None
    (metrics, kind, code) = row
    assert metrics == {"sharpe": 0.5} and kind == "train" and code


def test_the_anon_key_is_refused_and_the_run_waits(
    lake_root: Path, stub: PostgrestStub, db: Postgres
) -> None:
    rec = runlog.start_run(lake_root, "train", {}, run_id="r-anon")
    said: list[str] = []
    assert mirror_run(lake_root, rec, warn=said.append, target=SupabaseTarget(stub.url, ANON_KEY)) == "queued"
    (line,) = said
    assert "42501" in line and "r-anon" in line and "runs sync" in line and ANON_KEY not in line
    assert [p.name for p in pending(lake_root)] == ["r-anon.json"]
    assert _rows(db) == []


def test_supabase_down_then_up_no_run_lost_none_doubled(
    monkeypatch: pytest.MonkeyPatch, lake_root: Path, db: Postgres
) -> None:
    port = free_port()  # nothing listens there yet: connection refused
    ids = [f"r{i}" for i in range(3)]

    def work() -> None:
        monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{port}")
        for i, run_id in enumerate(ids):
            with runlog.recorded_run(
                lake_root,
                "train",
                {"i": i, "url_seen": "no"},
                run_id=run_id,
                say=lambda m: print(m, file=sys.stderr),
            ) as r:
                r.metrics = {"i": i}

    with canaries(monkeypatch):
        cap = run_callable(work)
        assert cap.exception == ""
        warnings = [ln for ln in cap.stderr.splitlines() if ln.startswith("warning: Supabase")]
        assert len(warnings) == 3 and all("cannot connect" in w for w in warnings)
        assert [p.stem for p in pending(lake_root)] == ids
        assert {json.loads(p.read_text())["status"] for p in pending(lake_root)} == {"finished"}

        with postgrest(db, {SERVICE_KEY: "service_role"}, port=port) as stub:
            stub.refuse = True  # up but refusing (503): nothing sent, nothing lost
            counts = run_callable(lambda: print(sync_outbox(lake_root), file=sys.stderr))
            assert "SyncCounts(sent=0, failed=1, waiting=3, refused=0)" in counts.stderr
            assert _rows(db) == []

            stub.refuse = False
            first = sync_outbox(lake_root)
            assert (first.sent, first.failed, first.waiting) == (3, 0, 0)
            assert [r[0] for r in _rows(db)] == ids
            again = sync_outbox(lake_root)
            assert (again.sent, again.waiting) == (0, 0)

            # a run sent whose outbox file survived (a crash between send and delete) is sent again: one row
            rec = runlog.record_of(runlog.get_run(lake_root, "r1"))
            from rl.mirror import queue_row

            queue_row(lake_root, rec.to_json())
            assert sync_outbox(lake_root).sent == 1
            assert [r[0] for r in _rows(db)] == ids
            posts = [s for s in stub.seen if s.path.endswith("/training_runs") and s.status == 201]
            assert len(posts) == 4
        cap2 = run_callable(lambda: sync_outbox(lake_root))
        assert cap2.exception == ""
    assert_no_leak(cap, lake_root)
    assert_no_leak(counts, lake_root)
    assert SERVICE_KEY not in json.dumps(_rows(db), default=str)
    for p in outbox_dir(lake_root).rglob("*"):
        if p.is_file():
            assert SERVICE_KEY not in p.read_text(errors="replace")


def _record(run_id: str, status: str, finished: dt.datetime | None, **kw: object) -> runlog.RunRecord:
    return runlog.RunRecord(
        run_id=run_id,
        kind="train",
        started_at=kw.pop("started_at", T0),  # type: ignore[arg-type]
        config={"host": kw.pop("host", "a")},
        status=status,
        finished_at=finished,
        data_snapshot="h",
        metrics=kw.pop("metrics", None),  # type: ignore[arg-type]
    )


def _stored(pg: Postgres, run_id: str) -> tuple[str, dt.datetime | None]:
    with pg.connect() as con:
        got = con.execute(
            "SELECT status, finished_at FROM training_runs WHERE run_id = %s", [run_id]
        ).fetchone()
    assert got is not None
    return got[0], got[1]


def test_a_later_row_of_a_run_updates_supabase_but_a_weaker_one_never_replaces_a_stronger(
    lake_root: Path, stub: PostgrestStub, db: Postgres
) -> None:
    """A copy of the lake repaired run X as killed (`interrupted`) and mirrored it first; the original then
    finished: Supabase ends with `finished`, whichever order the rows come in, and says when it kept its
    own row."""
    target = SupabaseTarget(stub.url, SERVICE_KEY)
    said: list[str] = []
    t1, t2 = T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=9)
    for status, finished in [("running", None), ("interrupted", t1), ("finished", t2)]:
        rec = _record("r-x", status, finished)
        assert mirror_run(lake_root, rec, target=target, warn=said.append) == "sent"
        assert _stored(db, "r-x") == (status, finished)  # each later, stronger row updates the stored one
    assert said == []
    # the copy's repair comes (again) after the original's end: the table keeps `finished`, and says so
    killed = _record("r-x", "interrupted", t1, metrics={"killed": "..."})
    assert mirror_run(lake_root, killed, target=target, warn=said.append) == "sent"
    assert _stored(db, "r-x") == ("finished", t2)
    (note,) = said
    assert note.startswith("note: Supabase keeps run r-x as finished") and "interrupted" in note
    assert pending(lake_root) == []  # handled: nothing waits
    # as strong, the later finished_at stays (an older `failed` does not replace a newer `finished`)
    mirror_run(lake_root, _record("r-x", "failed", t1), target=target, warn=said.append)
    assert _stored(db, "r-x") == ("finished", t2)
    mirror_run(
        lake_root, _record("r-x", "failed", t2 + dt.timedelta(seconds=1)), target=target, warn=said.append
    )
    assert _stored(db, "r-x")[0] == "failed"


def test_the_rule_is_the_tables_for_every_writer(db: Postgres) -> None:
    """The shipped DDL's trigger holds for any client: a plain upsert as the service role cannot put an
    `interrupted` row over a `finished` one, nor a `running` over an `interrupted` one."""
    upsert = (
        "INSERT INTO training_runs (run_id, kind, started_at, finished_at, status, config, data_snapshot) "
        "VALUES (%s, 'train', %s, %s, %s, '{}'::jsonb, 'h') "
        "ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status, finished_at = EXCLUDED.finished_at"
    )
    t1 = T0 + dt.timedelta(hours=1)
    with db.connect() as con:
        con.execute("SET ROLE service_role")
        con.execute(upsert, ["r-w", T0, t1, "finished"])
        con.execute(upsert, ["r-w", T0, t1 + dt.timedelta(hours=1), "interrupted"])
        con.execute(upsert, ["r-w", T0, None, "running"])
        con.execute(upsert, ["r-i", T0, t1, "interrupted"])
        con.execute(upsert, ["r-i", T0, None, "running"])
    assert _stored(db, "r-w") == ("finished", t1)
    assert _stored(db, "r-i") == ("interrupted", t1)


def test_a_run_id_collision_is_refused_said_once_and_set_aside(
    lake_root: Path, stub: PostgrestStub, db: Postgres
) -> None:
    """Another machine's run under the same run_id (another started_at) neither overwrites the stored run
    nor vanishes: refused, said once with both start times and the database's hint, and set aside in the
    outbox's refused/ folder with its reason, never sent again: later runs do not warn of it, `runs sync`
    succeeds."""
    from rl.mirror import refused

    target = SupabaseTarget(stub.url, SERVICE_KEY)
    said: list[str] = []
    mine = _record("r-same", "finished", T0 + dt.timedelta(hours=1))
    theirs = _record(
        "r-same", "finished", T0 + dt.timedelta(hours=3), started_at=T0 + dt.timedelta(hours=2), host="b"
    )
    assert mirror_run(lake_root, mine, target=target, warn=said.append) == "sent"
    assert mirror_run(lake_root, theirs, target=target, warn=said.append) == "refused"
    (line,) = said
    assert "run id collision" in line and "r-same" in line and "give one of the runs another id" in line, line
    assert "not sent again" in line and "runs sync sends it" not in line, line
    assert pending(lake_root) == []
    (aside,) = refused(lake_root)
    assert aside.name == "r-same.json" and json.loads(aside.read_text())["config"] == {"host": "b"}
    reason = aside.with_suffix(".reason").read_text()
    assert reason.count("\n") == 1 and "run id collision" in reason, reason
    with db.connect() as con:
        assert con.execute("SELECT config FROM training_runs").fetchall() == [({"host": "a"},)]

    said.clear()
    for i in range(2):  # later runs: not a word of it
        assert (
            mirror_run(lake_root, _record(f"later{i}", "finished", T0), target=target, warn=said.append)
            == "sent"
        )
    assert said == []
    counts = sync_outbox(lake_root, target=target, warn=said.append)
    assert (counts.failed, counts.waiting, counts.refused) == (0, 0, 0) and said == []


def test_runs_sync_sets_a_collided_run_aside_and_succeeds(
    monkeypatch: pytest.MonkeyPatch, lake_root: Path, stub: PostgrestStub, db: Postgres
) -> None:
    from rl.mirror import queue_row, refused

    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
    with runlog.recorded_run(lake_root, "train", {}, run_id="r-dup"):
        pass
    other = _record("r-dup", "finished", T0 + dt.timedelta(hours=1), host="b")
    queue_row(lake_root, other.to_json())
    r = _sync(lake_root)
    assert r.exit_code == 0, r.output
    assert "sent 0, failed 0, still waiting 0, refused 1" in r.stdout, r.output
    assert "run id collision" in r.stderr and "refused/r-dup.json" in r.stderr, r.stderr
    assert [p.name for p in refused(lake_root)] == ["r-dup.json"]
    again = _sync(lake_root)
    assert again.exit_code == 0 and "refused 0" in again.stdout and again.stderr == "", again.output
    # `marketlake runs` says a run is set aside, in every format (stderr; the JSON on stdout stays JSON)
    for fmt in ("table", "json"):
        listed = _runs(lake_root, "--format", fmt)
        assert listed.exit_code == 0, listed.output
        assert "note: 1 run(s) Supabase refused for good are set aside in" in listed.stderr, listed.stderr
        assert "note:" not in listed.stdout


def test_sync_without_settings_is_a_clear_error(lake_root: Path) -> None:
    from lake.errors import MarketlakeError

    with pytest.raises(MarketlakeError, match="SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are not both set"):
        sync_outbox(lake_root)


def test_a_corrupt_outbox_file_is_named_and_kept(
    monkeypatch: pytest.MonkeyPatch, lake_root: Path, stub: PostgrestStub, db: Postgres
) -> None:
    bad = outbox_dir(lake_root) / "broken.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    said: list[str] = []
    counts = sync_outbox(lake_root, warn=said.append, target=SupabaseTarget(stub.url, SERVICE_KEY))
    assert (counts.sent, counts.failed, counts.waiting) == (0, 1, 1)
    assert any("broken.json" in s for s in said) and bad.exists()
    shutil.rmtree(outbox_dir(lake_root))


URL_CANARY = "PWCANARY77"


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_the_supabase_url_and_its_password_never_reach_a_log_line(
    monkeypatch: pytest.MonkeyPatch, lake_root: Path, stub: PostgrestStub, level: str
) -> None:
    """SUPABASE_URL is a secret (README, Configuration): with a password in it, `runs sync` at any log level
    lets neither the URL nor its password out, from our lines or from httpx's request line."""
    from click.testing import CliRunner

    from rl.mirror import queue_row

    host = stub.url.removeprefix("http://")
    secret_url = f"http://usr:{URL_CANARY}@{host}"
    rec = runlog.start_run(lake_root, "train", {}, run_id="r-url")
    queue_row(lake_root, rec.to_json())
    with canaries(monkeypatch):
        monkeypatch.setenv("SUPABASE_URL", secret_url)
        cap = run_cli(CliRunner(), ["--lake", str(lake_root), "--log-level", level, "runs", "sync"])
    assert [s.method for s in stub.seen][:1] == ["POST"], cap.stderr  # the request was made (not vacuous)
    for where, text in cap.texts().items():
        assert URL_CANARY not in text, f"{where}: {text}"
        assert secret_url not in text and f"usr:{URL_CANARY}" not in text, f"{where}: {text}"
    assert_no_leak(cap, lake_root)
    if level == "DEBUG":
        assert "HTTP Request: POST ***/rest/v1/" in cap.stderr, cap.stderr  # the line, the URL masked
    else:
        assert "HTTP Request" not in cap.stderr, cap.stderr  # httpx's request line only at DEBUG


def _runs(root: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from cli import cli

    return CliRunner().invoke(cli, ["--lake", str(root), "-q", "runs", *args])


def _sync(root: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from cli import cli

    return CliRunner().invoke(cli, ["--lake", str(root), "runs", "sync", *args])


def test_runs_recorded_before_supabase_was_configured_are_sent_by_sync_all(
    monkeypatch: pytest.MonkeyPatch, lake_root: Path, stub: PostgrestStub, db: Postgres
) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    files = [{"path": "bars/x/data.parquet", "sha256": "s", "rows": 1}]
    for i in range(3):
        with runlog.recorded_run(lake_root, "train", {"i": i}, run_id=f"old{i}") as r:
            r.metrics = {"i": i}
            r.data_files = files
    assert pending(lake_root) == []  # not configured: nothing was queued
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
    r = _sync(lake_root)
    assert r.exit_code == 0 and "sent 0, failed 0, still waiting 0" in r.stdout, r.output
    assert _rows(db) == []
    for _ in range(2):  # and again: the same rows, none doubled
        r = _sync(lake_root, "--all")
        assert r.exit_code == 0 and "sent 3, failed 0, still waiting 0" in r.stdout, r.output
        assert _rows(db) == [(f"old{i}", "finished", {"i": i}) for i in range(3)]
    with db.connect() as con:
        assert con.execute("SELECT DISTINCT data_files FROM training_runs").fetchall() == [(files,)]
    assert pending(lake_root) == []


KILLED_CHILD = """
import os, signal, sys
from rl import runlog
runlog.start_run(sys.argv[1], "evaluate", {"what": "killed"}, run_id="r-killed")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sync_first_records_the_end_of_a_killed_run_then_sends_it(
    monkeypatch: pytest.MonkeyPatch, lake_root: Path, stub: PostgrestStub, db: Postgres
) -> None:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    with runlog.recorded_run(lake_root, "train", {}, run_id="r-before"):
        pass
    done = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(lake_root)],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr
    (stored,) = [r for r in runlog.list_runs(lake_root, liveness=False) if r["run_id"] == "r-killed"]
    assert stored["status"] == "running"
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
    r = _sync(lake_root)
    assert r.exit_code == 0, r.output
    (stored,) = [r for r in runlog.list_runs(lake_root, liveness=False) if r["run_id"] == "r-killed"]
    assert stored["status"] == "interrupted" and "killed" in stored["metrics"], stored  # written in the lake
    with db.connect() as con:
        got = con.execute("SELECT status, metrics FROM training_runs WHERE run_id = 'r-killed'").fetchone()
    assert got is not None and got[0] == "interrupted" and "killed" in got[1], got
    assert pending(lake_root) == []


def test_the_next_run_mirrored_sends_what_waited(
    monkeypatch: pytest.MonkeyPatch, lake_root: Path, db: Postgres
) -> None:
    """Runs kept in the outbox while Supabase was down go with the next run recorded once it is back, with
    no `runs sync`."""
    port = free_port()
    monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
    said: list[str] = []
    for run_id in ("w1", "w2"):
        with runlog.recorded_run(lake_root, "train", {}, run_id=run_id):
            pass
    assert [p.stem for p in pending(lake_root)] == ["w1", "w2"]
    with postgrest(db, {SERVICE_KEY: "service_role"}, port=port):
        with runlog.recorded_run(lake_root, "train", {}, run_id="w3", say=said.append):
            pass
    assert [r[0] for r in _rows(db)] == ["w1", "w2", "w3"]
    assert pending(lake_root) == []
    assert said == ["sent 2 run(s) that waited in the outbox"]


OLD_DDL = """
CREATE TABLE public.training_runs (
    run_id        text PRIMARY KEY CHECK (run_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    kind          text NOT NULL CHECK (kind IN ('train', 'evaluate')),
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    status        text NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
    config        jsonb NOT NULL,
    data_snapshot text NOT NULL,
    metrics       jsonb,
    code_version  text,
    run_dir       text,
    parent_run_id text,
    data_files    jsonb,
    received_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.training_runs ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE public.training_runs FROM PUBLIC;
REVOKE ALL ON TABLE public.training_runs FROM anon, authenticated;
GRANT SELECT, INSERT ON TABLE public.training_runs TO service_role;
DROP POLICY IF EXISTS training_runs_service_role ON public.training_runs;
CREATE POLICY training_runs_service_role ON public.training_runs
    FOR ALL TO service_role USING (true) WITH CHECK (true);
"""
"""The DDL as shipped before the trigger (git show 1b707eb^1:sql/supabase/001_training_runs.sql), in short."""


def _old_ddl(pg: Postgres) -> None:
    pg.execute(
        "DROP TABLE IF EXISTS public.training_runs; "
        "DROP FUNCTION IF EXISTS public.training_runs_keep_stronger(); "
        "DROP FUNCTION IF EXISTS public.training_runs_status_rank(text); "
        "DROP FUNCTION IF EXISTS public.training_runs_schema_version();"
    )
    pg.execute(OLD_DDL)


def test_a_table_of_the_older_ddl_keeps_its_first_row_and_the_client_says_to_reapply_the_ddl(
    lake_root: Path, pg: Postgres
) -> None:
    """The team's table still has the DDL of before the trigger (Supabase's service role may update it):
    the client does not merge into it, so a killed run's repair never replaces its `finished` row; it says
    once to re-apply the DDL. Re-applied (twice, over the data), later records update the table by the
    rule."""
    from rl import mirror

    _old_ddl(pg)
    try:
        with postgrest(pg, {SERVICE_KEY: "service_role"}) as stub:
            target = SupabaseTarget(stub.url, SERVICE_KEY)
            said: list[str] = []
            t1, t2 = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)
            assert (
                mirror_run(lake_root, _record("r-x", "finished", t2), target=target, warn=said.append)
                == "sent"
            )
            killed = _record("r-x", "interrupted", t1)
            assert mirror_run(lake_root, killed, target=target, warn=said.append) == "sent"
            assert _stored(pg, "r-x") == ("finished", t2)
            assert said == [mirror.OLD_SCHEMA_WARNING], said  # once
            assert "re-apply sql/supabase/001_training_runs.sql to let later records update" in said[0]
            assert pending(lake_root) == []

            pg.execute(DDL.read_text())
            pg.execute(DDL.read_text())
            mirror._MERGES.clear()  # a new process asks again
            said.clear()
            mirror_run(lake_root, _record("r-y", "running", None), target=target, warn=said.append)
            mirror_run(lake_root, _record("r-y", "finished", t2), target=target, warn=said.append)
            assert _stored(pg, "r-y") == ("finished", t2)  # a later record updates it now
            mirror_run(lake_root, killed, target=target, warn=said.append)
            assert _stored(pg, "r-x") == ("finished", t2)
            (note,) = said
            assert note.startswith("note: Supabase keeps run r-x as finished"), said
    finally:
        pg.execute(DDL.read_text())


def test_a_key_whose_role_does_not_exist_stops_the_sync_and_sets_nothing_aside(
    lake_root: Path, db: Postgres
) -> None:
    """A JWT whose role the database does not have (22023 on every request) is not any row's fault: the sync
    stops at the first row, every row still queued, none set aside."""
    from rl.mirror import queue_row, refused

    for run_id in ("g1", "g2"):
        queue_row(lake_root, _record(run_id, "finished", T0).to_json())
    with postgrest(db, {"ghost-key-123456": "ghost_role"}) as stub:
        said: list[str] = []
        counts = sync_outbox(lake_root, target=SupabaseTarget(stub.url, "ghost-key-123456"), warn=said.append)
    assert (counts.sent, counts.failed, counts.waiting, counts.refused) == (0, 1, 2, 0), said
    assert "22023" in said[0], said
    assert refused(lake_root) == [] and [p.stem for p in pending(lake_root)] == ["g1", "g2"]

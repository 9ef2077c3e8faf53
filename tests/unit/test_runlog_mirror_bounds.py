"""A run's end is not held by its mirroring: the run's row is written (in the lake and in the outbox) while
Ctrl-C is held, its sending comes after and a Ctrl-C stops it (the row stays queued, said); the outbox lock is
waited for briefly (another `runs sync` holding it: the row stays queued, said); one deadline covers the
whole send, so a server trickling its answer cannot keep the command going."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rl import mirror, runlog
from rl.mirror import SupabaseTarget, pending

TARGET = SupabaseTarget("http://127.0.0.1:9", "service-key-for-tests")


def _record(run_id: str) -> runlog.RunRecord:
    now = dt.datetime.now(dt.UTC)
    return runlog.RunRecord(
        run_id=run_id, kind="train", started_at=now, config={}, status="finished", finished_at=now
    )


def _in_thread(work: Any, seconds: float) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    return thread, out


def test_a_run_does_not_wait_for_an_outbox_another_process_is_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lake"
    monkeypatch.setattr(mirror, "send_rows", lambda *a, **k: [])
    monkeypatch.setattr(mirror, "LOCK_WAIT", 0.3, raising=False)
    folder = mirror.outbox_dir(root)
    folder.mkdir(parents=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process's `runs sync` (flock: per open file)
    said: list[str] = []
    try:
        thread, out = _in_thread(
            lambda: mirror.mirror_run(root, _record("r1"), target=TARGET, warn=said.append), 8
        )
        assert not thread.is_alive(), "the run waited for the outbox lock"
        assert out == ["queued"]
        assert [p.stem for p in pending(root)] == ["r1"]
        (line,) = said
        assert "r1" in line and "another process is sending the outbox" in line and "runs sync" in line, line
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        thread.join(10)


@pytest.fixture
def trickling() -> Iterator[str]:
    """A server that answers every POST at once with its headers, then one byte every 0.3 s (never a long
    silence)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = b'[{"version": 2}]' + b" " * 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for b in data:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_one_deadline_covers_the_whole_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trickling: str
) -> None:
    root = tmp_path / "lake"
    monkeypatch.setattr(mirror, "TIMEOUT_SECONDS", 1.0)
    said: list[str] = []
    target = SupabaseTarget(trickling, "service-key-for-tests")
    started = time.monotonic()
    thread, out = _in_thread(
        lambda: mirror.mirror_run(root, _record("r1"), target=target, warn=said.append), 8
    )
    assert not thread.is_alive(), "a trickling answer kept the send going past its deadline"
    assert time.monotonic() - started < 4
    assert out == ["queued"] and [p.stem for p in pending(root)] == ["r1"]
    (line,) = said
    assert "no answer within 1 s" in line and "runs sync" in line, line


def test_ctrl_c_while_a_finished_run_is_sent_stops_the_sending_and_the_run_stays_queued(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-for-tests")

    def send(*_a: Any, **_k: Any) -> list[Any]:
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while Supabase is slow to answer
        time.sleep(5)
        return []

    monkeypatch.setattr(mirror, "send_rows", send)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), runlog.recorded_run(lake_root, "train", {}, run_id="r-stop"):
        pass
    assert time.monotonic() - started < 4, "Ctrl-C was held while the run was being sent"
    (row,) = [r for r in runlog.list_runs(lake_root, liveness=False) if r["run_id"] == "r-stop"]
    assert row["status"] == "finished"  # recorded in the lake first
    assert [p.stem for p in pending(lake_root)] == ["r-stop"]
    err = capsys.readouterr().err
    assert "stopped: run r-stop is recorded in the lake" in err and "runs sync" in err, err
    assert "held until the run is recorded" not in err, err

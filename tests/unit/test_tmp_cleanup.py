"""Temporary folders: a confined connection's spill folder goes when it closes, the process's private
folder at exit; a killed refresh's work folder goes at the next run, never a live process's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import lake


def ours(tmp: Path) -> list[str]:
    return sorted(n for n in os.listdir(tmp) if n.startswith("marketlake-"))


def test_no_folder_is_left_in_tmpdir_by_read_only_connections_or_sql(
    filled_lake: Path, tmp_path: Path
) -> None:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    script = (
        "import sys, lake\n"
        "for _ in range(3):\n"
        "    lake.connect(sys.argv[1], read_only=True).close()\n"
        "kept = lake.connect(sys.argv[1], read_only=True)  # never closed\n"
        "kept.execute('SELECT count(*) FROM bars').fetchall()\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", script, str(filled_lake)], env=env, cwd=tmp, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    exe = Path(sys.executable).with_name("marketlake")
    for _ in range(2):
        p = subprocess.run(
            [str(exe), "--lake", str(filled_lake), "sql", "SELECT 1", "--format", "csv"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0, p.stderr
    assert ours(tmp) == []


def test_a_connection_spill_folder_goes_when_it_closes(filled_lake: Path) -> None:
    con = lake.connect(filled_lake, read_only=True)
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])  # type: ignore[index]
    con.execute("SET memory_limit = '20MB'")
    con.execute("SET threads = 1")
    con.execute("SELECT count(*) FROM (SELECT random() AS x FROM range(3000000) ORDER BY x)").fetchall()
    assert spill.is_dir()  # it spilled there
    con.close()
    assert not spill.exists()


def test_a_spill_folder_stays_while_a_cursor_of_a_dropped_connection_still_uses_it(filled_lake: Path) -> None:
    """A cursor shares its connection's database, whose temp_directory it is: dropping the connection while
    a cursor lives must not take the folder away from the cursor's queries; it goes with the database."""
    import gc

    con = lake.connect(filled_lake, read_only=True)
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])  # type: ignore[index]
    con.execute("SET memory_limit = '20MB'")
    con.execute("SET threads = 1")
    big = "SELECT count(*) FROM (SELECT random() AS x FROM range(3000000) ORDER BY x)"
    assert con.execute(big).fetchall() == [(3000000,)]
    assert spill.is_dir()  # it spilled there
    cur = con.cursor()
    del con
    gc.collect()
    assert spill.is_dir()
    assert cur.execute(big).fetchall() == [(3000000,)]  # and spills there again, through the cursor
    cur.close()
    del cur
    gc.collect()
    assert not spill.exists()


LIVE = """
import sys, time
from lake.connect import private_workdir
with private_workdir("marketlake-store-") as d:
    (d / "chunk").mkdir()
    print(d, flush=True)
    time.sleep(120)
"""


def test_a_killed_refresh_work_folder_goes_at_the_next_run_a_live_one_stays(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    live = subprocess.Popen([sys.executable, "-c", LIVE], env=env, stdout=subprocess.PIPE, text=True)
    killed = subprocess.Popen([sys.executable, "-c", LIVE], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None and killed.stdout is not None
        live_dir, killed_dir = Path(live.stdout.readline().strip()), Path(killed.stdout.readline().strip())
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        assert killed_dir.is_dir()  # SIGKILL: nothing of the process ran
        old = tmp_path / "marketlake-store-old"  # no lock file (an older version's): left alone
        old.mkdir()
        sweep = subprocess.run(
            [
                sys.executable,
                "-c",
                "from lake.connect import private_workdir as w\nwith w('marketlake-store-'): pass",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        assert sweep.returncode == 0, sweep.stderr
        assert not killed_dir.exists()
        assert (live_dir / "chunk").is_dir() and old.is_dir()
        assert ours(tmp_path) == sorted([live_dir.name, old.name])
    finally:
        for proc in (live, killed):
            proc.kill()
            proc.wait(30)


def test_the_shells_catalog_for_a_read_only_lake_goes_with_the_shell(
    filled_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the lake's folder takes no catalog.duckdb, it is written in a private folder, removed when
    the shell ends."""
    import subprocess as sp

    from click.testing import CliRunner

    from cli import cli

    connect_module = sys.modules["lake.connect"]  # (`lake.connect` is the function)

    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    write = connect_module.write_catalog
    seen: list[Path] = []

    def catalog(root: Path, settings: Any, target: Path) -> Path:
        if target.parent == root:
            raise PermissionError(13, "Permission denied", str(target))  # a read-only lake's folder
        seen.append(write(root, settings, target))
        return seen[-1]

    def shell(cmd: list[str], cwd: Path) -> int:
        assert Path(cmd[-1]) == seen[0] and seen[0].is_file()  # the shell opens it while it runs
        return 0

    monkeypatch.setattr(connect_module, "write_catalog", catalog)
    monkeypatch.setattr(sp, "call", shell)
    r = CliRunner().invoke(cli, ["--lake", str(filled_lake), "shell"])
    assert r.exit_code == 0, r.output
    assert seen and ours(tmp) == [] and not any(tmp.iterdir()), list(tmp.iterdir())


def test_a_new_folder_is_never_swept_before_its_owner_holds_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeper that looks between the folder's making and its lock (another process starting at the same
    instant) must not take the owner for dead: the lock file appears only once it is held."""
    import fcntl
    import importlib

    connect = importlib.import_module("lake.connect")  # (the module: `lake.connect` is the function)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    swept: list[list[Path]] = []
    real_flock = fcntl.flock

    def sweep_first(fd: int, op: int) -> None:
        if op == fcntl.LOCK_EX and not swept:  # the owner about to lock: another process sweeps now
            swept.append(connect.remove_stale_tmpdirs("marketlake-store-"))
        real_flock(fd, op)

    monkeypatch.setattr(connect.fcntl, "flock", sweep_first)
    with connect.private_workdir("marketlake-store-") as d:
        assert swept == [[]] and d.is_dir(), swept
        assert (d / ".owner.lock").exists()


def test_a_process_folder_removed_under_it_is_made_again_and_exit_says_nothing(tmp_path: Path) -> None:
    """A tmp cleaner removing the process's folder: it is made again; at exit no handler closes a descriptor
    twice (an 'Exception ignored in atexit callback' traceback) and no folder is left."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    script = (
        "import shutil\n"
        "from lake.connect import _process_dir\n"
        "first = _process_dir()\n"
        "shutil.rmtree(first)\n"
        "second = _process_dir()\n"
        "assert second != first and second.is_dir()\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "TMPDIR": str(tmp)}, capture_output=True, text=True
    )
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert ours(tmp) == []

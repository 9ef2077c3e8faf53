"""Machinery for the fault suite (issue 7): run a command in a subprocess, kill it at a chosen point,
re-run it, and check the lake it leaves; fingerprints of a lake for byte-for-byte comparisons.

Everything here works on any command line, so an ingest plugs in as it is:

    argv = marketlake_argv("--lake", str(root), "ingest", "binance", "--symbols", "BTCUSDT", ...)
    report = kill_then_rerun(argv, root, when_temp_file(root), env=env)
    assert_lake_consistent(root)
    assert lake_files(root) == lake_files(reference_root)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lake
from lake.schemas import DATASETS
from lake.writer import DATA_FILE, DERIVED_DATASETS, MANIFEST_FILE, TMP_MARK, iter_manifests

REPO = Path(__file__).resolve().parents[1]


def marketlake_argv(*args: str) -> list[str]:
    """The installed `marketlake` console script of this venv, with arguments."""
    return [str(Path(sys.executable).with_name("marketlake")), *args]


def python_argv(script: str, *args: str) -> list[str]:
    return [sys.executable, "-c", script, *args]


def subprocess_env(**overrides: str | None) -> dict[str, str]:
    """The test's environment (already isolated by conftest) with overrides; None removes a variable."""
    env = dict(os.environ)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing stdout and stderr as text."""
    return subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- killing at a chosen point ------------------------------------------------------------------------


@dataclass
class Running:
    """A subprocess whose stdout and stderr lines are collected by background threads."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(
        cls, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Running:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd or REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        r = cls(proc)
        for stream in (proc.stdout, proc.stderr):
            t = threading.Thread(target=r._pump, args=(stream,), daemon=True)
            t.start()
            r._threads.append(t)
        return r

    def _pump(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait(self, timeout: float = 120) -> int:
        rc = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.wait(timeout=30)


Trigger = Callable[[Running], bool]
"""Polled while the command runs; SIGKILL is sent the first time it returns True."""


def when_line(pattern: str, nth: int = 1) -> Trigger:
    """Kill once `pattern` (a regex) has matched `nth` output lines (stdout or stderr)."""
    rx = re.compile(pattern)
    return lambda r: sum(1 for line in list(r.lines) if rx.search(line)) >= nth


def when_temp_file(root: Path) -> Trigger:
    """Kill the moment a temporary file (`*.tmp-*`) exists under the lake: inside a write."""

    def trigger(_: Running) -> bool:
        return any(TMP_MARK in p.name for p in _walk(root))

    return trigger


def after_seconds(seconds: float) -> Trigger:
    t0 = time.monotonic()
    return lambda _: time.monotonic() - t0 >= seconds


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(Path(dirpath) / f for f in files)
    return out


@dataclass
class KillReport:
    killed: bool
    """False when the command finished before the trigger fired (the kill point was never reached)."""
    first_output: str
    first_returncode: int
    rerun: subprocess.CompletedProcess[str]


def kill_at(
    argv: Sequence[str],
    trigger: Trigger,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    poll: float = 0.001,
) -> tuple[bool, Running]:
    """Start `argv`, SIGKILL it when `trigger` fires; return (killed, the process)."""
    r = Running.start(argv, env=env)
    deadline = time.monotonic() + timeout
    try:
        while r.proc.poll() is None:
            if trigger(r):
                os.kill(r.proc.pid, signal.SIGKILL)
                r.wait()
                return True, r
            if time.monotonic() > deadline:
                raise AssertionError(f"{argv!r}: the kill point was not reached within {timeout}s")
            time.sleep(poll)
        r.wait()
        return False, r
    finally:
        if r.proc.poll() is None:
            r.kill()


def kill_then_rerun(
    argv: Sequence[str],
    trigger: Trigger,
    *,
    env: Mapping[str, str] | None = None,
    rerun_argv: Sequence[str] | None = None,
    timeout: float = 120,
) -> KillReport:
    """Run `argv`, SIGKILL it at `trigger`, then run it (or `rerun_argv`) again to completion."""
    killed, first = kill_at(argv, trigger, env=env, timeout=timeout)
    rerun = run(rerun_argv or argv, env=env, timeout=timeout)
    return KillReport(killed, first.output(), first.proc.returncode, rerun)


# --- what a lake holds --------------------------------------------------------------------------------


VOLATILE_INPUT_KEYS = ("landed_at",)
"""Keys of a manifest's input record that say when it was landed, not what it is."""


def lake_files(root: Path, *, include_raw: bool = False) -> dict[str, bytes]:
    """Every data.parquet and _manifest.json of the lake (and raw/ files if asked), by relative path;
    derived datasets (the feature store, refreshed by the command line after an ingest, not by the
    ingestors themselves) left out, and a manifest without its inputs' volatile keys (when each was
    landed), so that two runs of the same ingest compare equal."""
    out: dict[str, bytes] = {}
    for p in sorted(_walk(root)):
        rel = p.relative_to(root).as_posix()
        if any(rel.startswith(f"datasets/{d}/") for d in DERIVED_DATASETS):
            continue
        if p.name in (DATA_FILE, MANIFEST_FILE) or (include_raw and rel.startswith("raw/")):
            data = p.read_bytes()
            if p.name == MANIFEST_FILE:
                manifest = json.loads(data)
                for i in manifest.get("inputs", []):
                    for key in VOLATILE_INPUT_KEYS:
                        i.pop(key, None)
                data = json.dumps(manifest, sort_keys=True).encode()
            out[rel] = data
    return out


VOLATILE_META_KEYS = ("verified_at",)
"""Keys of a raw file's `.meta.json` that say when it was fetched, not what it is."""


def raw_files(root: Path) -> dict[str, bytes]:
    """Every file of the raw cache by relative path; a `.meta.json` sidecar without its volatile keys
    (the instant of the download), so that two runs of the same ingest compare equal."""
    out: dict[str, bytes] = {}
    for p in sorted(_walk(root / "raw")):
        rel = p.relative_to(root).as_posix()
        data = p.read_bytes()
        if p.name.endswith(".meta.json"):
            meta = json.loads(data)
            for key in VOLATILE_META_KEYS:
                meta.pop(key, None)
            data = json.dumps(meta, sort_keys=True).encode()
        out[rel] = data
    return out


def temp_files(root: Path) -> list[Path]:
    return [p for p in _walk(root) if TMP_MARK in p.name]


def base_view(dataset: str) -> str:
    return f"lake_{dataset}"


def view_rows(root: Path, view: str, order_by: str | None = None) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True)
    try:
        rel = con.sql(f"SELECT * FROM {view}")
        rows = rel.fetchall()
    finally:
        con.close()
    return sorted(rows, key=repr) if order_by is None else rows


def view_contents(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every base view's rows (with their partition columns), sorted: a lake's content, comparable."""
    return {name: view_rows(root, base_view(name)) for name in DATASETS}


def assert_lake_consistent(root: Path) -> None:
    """What a lake must look like after any fault and a re-run:

    - every Parquet file matches its manifest (`lake.verify`);
    - each base view holds exactly the rows the manifests list (so no stray or partial file is read);
    - no temporary file is left behind (the next writer removes a killed writer's);
    - no duplicate key in any dataset partition.
    """
    problems = lake.verify(root)
    assert problems == [], problems
    leftovers = temp_files(root)
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    manifest_rows: dict[str, int] = dict.fromkeys(DATASETS, 0)
    datasets_dir = root / "datasets"
    for manifest_path, manifest in iter_manifests(root):
        name = manifest_path.relative_to(datasets_dir).parts[0]
        manifest_rows[name] += int(manifest["rows"])
    con = lake.connect(root, read_only=True)
    try:
        for name, ds in DATASETS.items():
            view = base_view(name)
            (n,) = con.sql(f"SELECT count(*) FROM {view}").fetchone()  # type: ignore[misc]
            assert n == manifest_rows[name], f"{view}: {n} rows visible, manifests list {manifest_rows[name]}"
            columns = con.sql(f"SELECT * FROM {view} LIMIT 0").columns
            keys = ", ".join(f'"{k}"' for k in (*ds.partition_by, *ds.key) if k in columns)
            dup = con.sql(f"SELECT {keys}, count(*) FROM {view} GROUP BY ALL HAVING count(*) > 1 LIMIT 5")
            assert dup.fetchall() == [], f"{view}: duplicate keys"
    finally:
        con.close()

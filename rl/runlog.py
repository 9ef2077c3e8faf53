"""Run records: every training and evaluation is a row of the lake's `runs` dataset (and view).

A run is written when it starts (status `running`) and again when it ends (`finished`, `interrupted` on
Ctrl-C, `failed` on an error): one row per run_id, the last write wins. Each row carries the run's
settings, its metrics, the code version (git commit, else the package version), its folder, and the data
snapshot: a hash over the manifests of exactly the lake files the run read, so the same hash means the same
data. When Supabase is configured, the finished row is mirrored there too (rl/mirror.py).

A running run holds an exclusive `flock` on `<lake>/locks/runs/<run_id>.lock` (RunLock), taken before its
`running` row is written and released after its last row is (the file is then removed): the kernel releases
it when the process dies, however it dies (SIGKILL, the OOM killer, power loss). A `running` row whose lock
nobody holds is a run whose process ended without recording its end: `list_runs` shows it `interrupted` with
a `killed` note in its metrics, and the next run started (`train`, `evaluate`) writes that repair into the
lake (`repair_dead_runs`), mirrors it once and brings its folder's status.json in line. A `running` row with
no lock file was recorded by a version without run locks: whether its process lives cannot be told, so it
stays `running` with a `liveness` note (never called dead), as does one whose lock cannot be checked here
(a file system without flock). This process's own locks are never probed (on NFS, whose flock is a
per-process POSIX lock, probing would release them), and a repair writes only into a run folder of its own
lake (never into the original of a copied lake). A held lock file is touched every 10 s (HEARTBEAT): its
mtime is a killed run's last sign of life.

    with recorded_run(root, "train", config, run_dir=folder) as run:
        ...                                   # the work
        run.data_snapshot = snapshot.hash     # what it read
        run.metrics = {...}
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from lake.config import Settings, load_settings
from lake.connect import sql_dir, views_needed
from lake.context import plain
from lake.errors import MarketlakeError, deferred_interrupts
from lake.paths import SCHEMA_ANCHOR, LakePaths, resolve_lake_root, validate_symbol
from lake.schemas import RUNS
from lake.writer import DATA_FILE, MANIFEST_FILE, LakeWriter, atomic_write_bytes, fsync_dir, sha256_file

Say = Callable[[str], None]
KINDS = ("train", "evaluate")
STATUSES = ("running", "finished", "interrupted", "failed")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
CONTEXT_SYMBOLS = ("SPY", "QQQ")
"""Symbols whose bars and news every symbol's features read (the market_context view)."""


def _sql(name: str) -> str:
    """A statement of sql/runs/ (SQL lives in .sql files; values are bound as parameters)."""
    return (sql_dir() / "runs" / f"{name}.sql").read_text(encoding="utf-8")


def _quiet(_: str) -> None:
    pass


def to_stderr(message: str) -> None:
    """A warning or a note: always on stderr, whatever `--quiet` says (it hides only progress, `say`)."""
    print(message, file=sys.stderr, flush=True)


def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise MarketlakeError(
            f"invalid run id {run_id!r}: 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit"
        )
    return run_id


def new_run_id(kind: str, now: dt.datetime | None = None) -> str:
    """`20240131T120000Z-train-1a2b3c4d`: sortable by time, unique."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{kind}-{uuid.uuid4().hex[:8]}"


def code_version() -> str:
    """The git commit of the code (with `-dirty` when it has uncommitted changes), else the installed
    package's version."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode == 0 and head.stdout.strip():
            status = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            dirty = "-dirty" if status.returncode == 0 and status.stdout.strip() else ""
            return f"git:{head.stdout.strip()}{dirty}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"marketlake {version('marketlake')}"
    except PackageNotFoundError:
        return "unknown"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default, allow_nan=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def settings_dict(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready data (no secrets live in Settings)."""
    out: dict[str, Any] = {}
    for k, v in vars(settings).items():
        if k == "path":
            out[k] = str(v) if v is not None else None
        elif hasattr(v, "__dataclass_fields__"):
            out[k] = dict(vars(v))
        else:
            out[k] = v
    return json.loads(_json(out))


# --- the data snapshot ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSnapshot:
    """A hash over the manifests of the lake files a run read (and whatever else fixed its data, such as
    the period bounds), with the files it covers."""

    hash: str
    files: list[dict[str, Any]]
    """One entry per file: path relative to the lake's datasets folder, sha256 and rows from its manifest."""

    def files_json(self) -> str:
        return _json(self.files)


def snapshot_of_files(
    root: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]], *, extra: Any = None
) -> DataSnapshot:
    """Hash the manifests of these data files (paths absolute or relative to the lake's datasets folder).
    A file without a manifest is hashed itself. `extra` (JSON-ready) enters the hash too."""
    paths = LakePaths(resolve_lake_root(root))
    entries: dict[str, dict[str, Any]] = {}
    for f in files:
        p = Path(f)
        p = p if p.is_absolute() else paths.datasets / p
        try:
            rel = p.resolve().relative_to(paths.datasets.resolve()).as_posix()
        except ValueError as exc:
            raise MarketlakeError(f"data snapshot: {p} is not a file of the lake at {paths.root}") from exc
        if not p.exists():
            raise MarketlakeError(f"data snapshot: {p} does not exist")
        entries[rel] = {"path": rel, **_manifest_of(p)}
    listed = [entries[k] for k in sorted(entries)]
    h = hashlib.sha256()
    for e in listed:
        h.update(f"{e['path']}\x00{e['sha256']}\x00{e['rows']}\n".encode())
    if extra is not None:
        h.update(b"extra\x00" + _json(extra).encode())
    return DataSnapshot(hash=h.hexdigest(), files=listed)


def _manifest_of(data_file: Path) -> dict[str, Any]:
    manifest = data_file.parent / MANIFEST_FILE
    try:
        m = json.loads(manifest.read_text())
        if m.get("file", DATA_FILE) == data_file.name and m.get("sha256"):
            return {"sha256": str(m["sha256"]), "rows": m.get("rows")}
    except (OSError, ValueError):
        pass
    return {"sha256": sha256_file(data_file), "rows": None}


def _period_range(period: str) -> tuple[dt.datetime, dt.datetime] | None:
    """The UTC time range of a `period` partition value: YYYY-MM (a month) or YYYY (a year)."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", period)
    if not m:
        return None
    year = int(m.group(1))
    if m.group(2) is None:
        return dt.datetime(year, 1, 1, tzinfo=dt.UTC), dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    month = int(m.group(2))
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


def _partition_value(path: Path, key: str) -> str | None:
    for part in path.parts:
        if part.startswith(f"{key}="):
            return part.split("=", 1)[1]
    return None


def file_range(path: str | os.PathLike[str]) -> tuple[dt.datetime, dt.datetime] | None:
    """The UTC time range a lake file's `period=` partition covers (a month or a year), None for a file
    with no period (a symbol's news)."""
    period = _partition_value(Path(path), "period")
    return _period_range(period) if period else None


def lake_files_for(
    root: str | os.PathLike[str],
    symbols: Sequence[str],
    interval: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    lookback: dt.timedelta | None = None,
    context_symbols: Sequence[str] = CONTEXT_SYMBOLS,
) -> list[Path]:
    """The lake files a run over [start, end) of these symbols at this interval reads: the bars partitions
    (every source) of the symbols and of the market-context symbols whose period overlaps
    [start - lookback, end), their news, and the trading-session partitions of those years.

    `lookback` (default: 100 bars plus 4 days) covers the feature windows that reach back before `start`.
    """
    from rl.metrics import interval_minutes

    paths = LakePaths(resolve_lake_root(root))
    minutes = interval_minutes(interval)
    back = lookback if lookback is not None else dt.timedelta(minutes=100 * minutes) + dt.timedelta(days=4)
    lo, hi = start - back, end
    wanted = {validate_symbol(s) for s in [*symbols, *context_symbols]}

    def overlaps(p: Path) -> bool:
        period = _partition_value(p, "period")
        rng = _period_range(period) if period else None
        return rng is not None and rng[0] < hi and rng[1] > lo

    out: list[Path] = []
    bars = paths.dataset("bars")
    if bars.exists():
        for p in bars.glob(f"source=*/interval={interval}/symbol=*/period=*/{DATA_FILE}"):
            if _partition_value(p, "symbol") in wanted and overlaps(p):
                out.append(p)
    news = paths.dataset("news")
    for s in sorted(wanted):
        p = news / f"symbol={s}" / DATA_FILE
        if p.exists():
            out.append(p)
    sessions = paths.dataset("trading_sessions")
    if sessions.exists():
        out += [p for p in sessions.glob(f"calendar=*/period=*/{DATA_FILE}") if overlaps(p)]
    return sorted(p for p in out if SCHEMA_ANCHOR not in p.as_posix())


def period_bounds(
    root: str | os.PathLike[str], settings: Settings | None, periods: Sequence[str]
) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """[start_at, end_at) of each named period (train, validation, test) from the lake's `splits` view."""
    import lake

    def read() -> list[tuple[Any, ...]]:
        con = lake.connect(root, read_only=True, settings=settings)
        try:
            return con.execute(_sql("split_bounds")).fetchall()
        finally:
            con.close()

    rows = lake.consistent(root, read)  # again if an ingest replaced a file meanwhile
    found = {str(r[0]): (r[1].astimezone(dt.UTC), r[2].astimezone(dt.UTC)) for r in rows}
    missing = [p for p in periods if p not in found]
    if missing:
        raise MarketlakeError(f"the lake at {root} has no {', '.join(missing)} period (no bars?)")
    return {p: found[p] for p in periods}


def snapshot_for_run(
    root: str | os.PathLike[str],
    settings: Settings | None,
    symbols: Sequence[str],
    interval: str,
    periods: Sequence[str],
    *,
    bounds: Mapping[str, tuple[dt.datetime, dt.datetime]] | None = None,
) -> DataSnapshot:
    """The data snapshot of a run over these periods: the lake files they cover (`lake_files_for`), the
    periods' bounds and the data settings the features are made with (session, news_time, max_gap_minutes,
    ...): the same hash means the same data. `bounds`: the periods as the run read them (taken when it read
    them: a run must not be hashed with periods the lake has moved to since); default: the lake's periods
    now, which depend on the whole lake's bar range (so a moved split changes the hash)."""
    if bounds is None:
        bounds = period_bounds(root, settings, periods)
    else:
        bounds = {p: bounds[p] for p in periods if p in bounds}
        if not bounds:
            raise MarketlakeError(f"data snapshot: none of the periods {', '.join(periods)} was read")
    start = min(b[0] for b in bounds.values())
    end = max(b[1] for b in bounds.values())
    files = lake_files_for(root, symbols, interval, start, end)
    extra = {
        "interval": interval,
        "symbols": sorted(symbols),
        "periods": {p: [b[0].isoformat(), b[1].isoformat()] for p, b in sorted(bounds.items())},
        "settings": settings.sql_settings() if settings is not None else None,
    }
    return snapshot_of_files(root, files, extra=extra)


# --- liveness -------------------------------------------------------------------------------------------

RUN_LOCKS = Path("locks") / "runs"
"""Where the liveness locks of running runs live, under the lake's root: `<lake>/locks/runs/<run_id>.lock`."""
KILLED = (
    "the process ended without recording its end (SIGKILL, the OOM killer, a power cut, a second Ctrl-C "
    "while its last row waited...); finished_at is its last sign of life (its lock file, touched every "
    "10 s while it ran, or its folder's status.json)"
)
"""The `killed` note in the metrics of a `running` row whose process is gone."""
NO_LOCK = (
    "unknown: recorded by a version without run locks, so whether its process still runs cannot be told "
    "(never called dead)"
)
"""The `liveness` note in the metrics of a `running` row with no lock file."""
UNCHECKED = (
    "unknown: its lock file cannot be checked here (unreadable, or a file system without flock), so whether "
    "its process still runs cannot be told (never called dead)"
)
"""The `liveness` note in the metrics of a `running` row whose lock cannot be checked."""
_ENDED = {"finished": "finished", "completed": "finished", "interrupted": "interrupted", "failed": "failed"}
"""A training folder's status.json status (rl/train.py) -> the row's: the same words, and `completed`, which
folders written by versions before 2026-11-30 say for finished."""
_TRAIN_STATE = "status.json"


def run_locks_dir(root: str | os.PathLike[str] | None) -> Path:
    return LakePaths(resolve_lake_root(root)).root / RUN_LOCKS


def run_lock_path(root: str | os.PathLike[str] | None, run_id: str) -> Path:
    return run_locks_dir(root) / f"{validate_run_id(run_id)}.lock"


def default_runs_dir(root: Path) -> Path:
    """`runs/` beside the lake: ./data/lake -> ./data/runs."""
    return root.resolve().parent / "runs"


def runs_folder(root: str | os.PathLike[str] | None, settings: Settings | None = None) -> Path:
    """This lake's runs folder, where `marketlake train` puts its run folders and `evaluate` looks first:
    the [train] runs_dir setting (a relative path is from the working folder), default `runs/` beside the
    lake (the notebook finds runs with it too)."""
    base = (settings.train.get("runs_dir") if settings else None) or default_runs_dir(resolve_lake_root(root))
    return Path(base)


def own_run_dir(root: str | os.PathLike[str] | None, run_id: str, settings: Settings | None = None) -> Path:
    """Where this lake keeps the folder of training run `run_id`: `<runs_dir>/<run_id>` (`runs_folder`: the
    [train] runs_dir setting, default `runs/` beside the lake). It comes before the `run_dir` a row records: a
    lake copied with its runs folder records the original's absolute folders, and what reads or writes a run
    of the copy must find the copy's folder, not the original's (rl.evaluate.find_run_dir, the repair here)."""
    return runs_folder(root, settings) / validate_run_id(run_id)


def _recorded_lake(run_dir: Path) -> Path | None:
    """The lake a training run folder says it was trained on (its settings.json), when it says."""
    try:
        saved = json.loads((run_dir / "settings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    got = saved.get("lake") if isinstance(saved, dict) else None
    return Path(got).resolve() if isinstance(got, str) and got else None


def _run_folder(root: Path, row: Mapping[str, Any], settings: Settings | None) -> Path | None:
    """The folder of a training row that belongs to this lake, else None: this lake's `<runs_dir>/<run_id>`
    (own_run_dir) when it exists, else the recorded run_dir when its settings.json names this lake. A
    folder of another lake (the original of a copied lake) is never read or written by this lake's repair."""
    if row.get("kind") != "train":
        return None
    own = own_run_dir(root, str(row["run_id"]), settings)
    recorded = Path(str(row["run_dir"])) if row.get("run_dir") else None
    if own.is_dir():
        # a folder another lake's row records as its own and says it trained on (a copy of the lake made
        # beside the original shares its runs folder) is that lake's; a copy of the folder (made with the
        # lake's copy, elsewhere) is this lake's, whatever its settings.json says
        lake = _recorded_lake(own)
        shared = recorded is not None and recorded.resolve() == own.resolve()
        if not (shared and lake is not None and lake != root.resolve()):
            return own
        return None
    if recorded is not None and recorded.is_dir() and _recorded_lake(recorded) == root.resolve():
        return recorded
    return None


def run_folder(
    root: str | os.PathLike[str] | None, row: Mapping[str, Any], settings: Settings | None = None
) -> Path | None:
    """The folder of a training run's row (`list_runs`, `get_run`) that belongs to this lake, else None: the
    rule the repair of dead runs follows (this lake's `<runs_dir>/<run_id>` first; else the recorded
    run_dir only when its settings.json names this lake), for whatever reads or writes a run's folder (`evaluate
    RUN_ID`): a lake copied with its rows records the original's folders, which are not the copy's to
    write into."""
    return _run_folder(resolve_lake_root(root), row, settings)


def foreign_run_folder(
    root: str | os.PathLike[str] | None, row: Mapping[str, Any], settings: Settings | None = None
) -> str | None:
    """When a training row's recorded run_dir exists but is another lake's (its settings.json names
    another lake: the row came with a copy of the lake), one line saying so and what to do; else None."""
    recorded = Path(str(row["run_dir"])) if row.get("run_dir") else None
    if row.get("kind") != "train" or recorded is None or not recorded.is_dir():
        return None
    lake_root = resolve_lake_root(root).resolve()
    lake = _recorded_lake(recorded)
    if lake == lake_root:
        return None
    whose = f"the lake at {lake}" if lake is not None else "no lake it names (its settings.json says none)"
    return (
        f"run {row['run_id']}'s recorded folder {recorded} belongs to {whose}, not to this lake at {lake_root} "
        f"(a copy of it?): it is not written from here; copy the folder to "
        f"{own_run_dir(lake_root, str(row['run_id']), settings)} to evaluate it in this lake, or run it in that lake"
    )


LockState = Literal["held", "free", "unknown"]
"""What a run's lock file says: held (its process lives), free (its process is gone) or unknown (the lock
cannot be checked here: never taken for dead)."""
HEARTBEAT = 10.0
"""Seconds between two touches of a held lock file (its mtime: a killed run's last sign of life)."""
_HELD: set[tuple[int, int]] = set()
"""The lock files (device, inode) this process holds. They are never probed: on file systems that emulate
flock with per-process POSIX locks (NFS, some FUSE ones) a second open and unlock of the file in the same
process would succeed, and release the run's own lock."""
_HELD_GUARD = threading.Lock()


_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
"""flock's errors on a file system that cannot lock files (some network and FUSE ones)."""


@dataclass
class RunLock:
    """The liveness mark of a running run: an exclusive `flock` on `<lake>/locks/runs/<run_id>.lock`, held
    from before the run's `running` row is written until after its last row is. The kernel releases it when
    the process dies, whatever kills it: a `running` row whose lock can be taken is a run whose process
    ended without recording its end. While held, the file is touched every HEARTBEAT seconds, so its mtime
    is the run's last sign of life."""

    path: Path
    fd: int | None = field(default=None, repr=False)
    _key: tuple[int, int] | None = field(default=None, repr=False)
    _stop: threading.Event | None = field(default=None, repr=False)
    _beat: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def take(
        cls,
        root: str | os.PathLike[str] | None,
        run_id: str,
        say: Say | None = None,
        *,
        warn: Say = to_stderr,
    ) -> RunLock:
        """Create the run's lock file already locked (made under a temporary name, then linked into place:
        its path is never seen unlocked while the run lives) and durable (a power cut must not leave a
        `running` row without it). A run id whose lock another process (or this one) holds is refused. On a
        file system without flock (ENOLCK, EOPNOTSUPP) the run goes on without a lock, said through `warn`
        (stderr, also under --quiet; `say`, progress, says nothing here):
        its row, with no lock file, is listed as `running` with liveness unknown, never called dead."""
        path = run_lock_path(root, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{run_id}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it
        except OSError as exc:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            if exc.errno not in _NO_FLOCK:
                raise
            warn(
                f"warning: run {run_id} goes on without a liveness lock: the file system of {path.parent} "
                f"cannot lock files ({os.strerror(exc.errno or 0)}); if its process is killed, `runs` lists it "
                "as running with its liveness unknown"
            )
            return cls(path)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                if _probe(path) != "free":
                    raise MarketlakeError(
                        f"run {run_id} is already running in another process (its lock {path} is held)"
                    ) from None
                os.replace(tmp, path)  # a lock left by an earlier process of this run id, which is gone
            except OSError:  # a file system without hard links: the same, without the check's atomicity
                if _probe(path) not in ("free", None):
                    raise MarketlakeError(
                        f"run {run_id} is already running in another process (its lock {path} is held)"
                    ) from None
                os.replace(tmp, path)
            else:
                tmp.unlink()
            with contextlib.suppress(OSError):
                fsync_dir(path.parent)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        st = os.fstat(fd)
        lock = cls(path, fd, (st.st_dev, st.st_ino))
        with _HELD_GUARD:
            _HELD.add((st.st_dev, st.st_ino))
        lock._stop = threading.Event()
        lock._beat = threading.Thread(target=lock._touch, name=f"run-lock-{run_id}", daemon=True)
        lock._beat.start()
        return lock

    def _touch(self) -> None:
        """Touch the lock file every HEARTBEAT seconds until released (by path: opening the file again
        would drop a per-process POSIX lock when closed)."""
        assert self._stop is not None
        while not self._stop.wait(HEARTBEAT):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self, *, ended: bool) -> None:
        """Let go of the lock. `ended`: the run's last row is written, so its lock file goes too; else the
        file stays (free), and the `running` row it leaves is repaired by the next run."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        if self._stop is not None:
            self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            if ended:
                with contextlib.suppress(OSError):
                    self.path.unlink(missing_ok=True)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if self._key is not None:
                with _HELD_GUARD:
                    _HELD.discard(self._key)


def _held_here(path: Path) -> bool:
    """Whether this process holds this lock file (found without opening it)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    with _HELD_GUARD:
        return (st.st_dev, st.st_ino) in _HELD


def _probe(path: Path) -> LockState | None:
    """What this lock file says: held (a process holds it: this one's own are never opened), free (its
    process is gone), unknown (it cannot be checked: unreadable, or the file system does not support
    flock), or None (no such file). Only a lock actually taken counts as free: a live run is never called
    dead."""
    if _held_here(path):
        return "held"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError:
        return "unknown"
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return "held"
        return "unknown"  # ENOLCK, EOPNOTSUPP, ...: this file system cannot tell
    else:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return "free"
    finally:
        os.close(fd)


def lock_state(root: str | os.PathLike[str] | None, run_id: str) -> LockState | None:
    """The run's lock: held, free, unknown (cannot be checked here), or None when it has no lock file
    (ended and cleaned up, or recorded by a version without run locks)."""
    return _probe(run_lock_path(root, run_id))


def run_alive(root: str | os.PathLike[str] | None, run_id: str) -> bool | None:
    """True while a process holds the run's lock, False when its lock file is free (the process is gone),
    None when that cannot be told: no lock file (ended and cleaned up, or recorded by a version without run
    locks) or a lock that cannot be checked here."""
    state = lock_state(root, run_id)
    return {"held": True, "free": False}.get(state) if state is not None else None


def _lock_names(root: Path) -> set[str]:
    """The run ids with a lock file in the lake (listed, not opened)."""
    try:
        names = os.listdir(root / RUN_LOCKS)
    except OSError:
        return set()
    return {n[: -len(".lock")] for n in names if n.endswith(".lock") and not n.startswith(".")}


def _instant(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            got = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return got if got.tzinfo else got.replace(tzinfo=dt.UTC)
    return None


def _mtime(path: Path) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    except OSError:
        return None


def _folder_state(
    root: Path, row: Mapping[str, Any], settings: Settings | None
) -> tuple[Path, dict[str, Any]] | None:
    """The status.json of a training run's folder of this lake (rl/train.py writes it every iteration), when
    readable."""
    folder = _run_folder(root, row, settings)
    if folder is None:
        return None
    path = folder / _TRAIN_STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (path, state) if isinstance(state, dict) else None


@dataclass(frozen=True)
class _Death:
    """How a `running` row whose process is gone reads once repaired."""

    status: str
    finished_at: dt.datetime | None
    metrics: dict[str, Any]
    folder: tuple[Path, dict[str, Any]] | None
    """The run folder's status.json to write (it still says running), else None."""


def _death_of(root: Path, row: Mapping[str, Any], settings: Settings | None) -> _Death:
    """A dead run's row: `interrupted` (or how its folder's status.json says the training ended, when the
    process died after writing it), finished at its last sign of life (the lock file's or status.json's
    mtime; status.json's finished_at when it has one), the `killed` note and the folder's last counts in its
    metrics. Only a folder of this lake is read (_run_folder)."""
    metrics = dict(row.get("metrics") or {})
    signs = [t for t in (_mtime(root / RUN_LOCKS / f"{row['run_id']}.lock"),) if t is not None]
    status, folder = "interrupted", None
    note = KILLED
    found = _folder_state(root, row, settings)
    if found is not None:
        path, state = found
        signs += [t for t in (_mtime(path),) if t is not None]
        for k in ("iterations", "env_steps", "best_iteration", "best_score"):
            if k in state:
                metrics[k] = state[k]
        own = state.get("status")
        if own in _ENDED:
            status = _ENDED[str(own)]
            note = f"{KILLED}; its folder's status.json says {own}"
            if own == "failed" and state.get("error"):
                metrics["error"] = state["error"]
            ended = _instant(state.get("finished_at"))
            signs = [ended] if ended is not None else signs
    started = _instant(row.get("started_at"))
    finished = max(signs) if signs else None
    if finished is not None and started is not None:
        finished = max(finished, started)
    if finished is None:
        note += " (unknown here)"
    metrics["killed"] = note
    if found is not None and found[1].get("status") == "running":
        state = {
            **found[1],
            "status": "interrupted",
            "finished_at": finished.isoformat() if finished else None,
            "killed": KILLED,
        }
        folder = (found[0], state)
    return _Death(status, finished, metrics, folder)


def _seen_alive(root: Path, row: dict[str, Any], listed: set[str], settings: Settings | None) -> None:
    """A listed `running` row as its lock says (`listed`: the run ids with a lock file before the rows were
    read): free -> the dead run's repaired row; no lock file and none before -> `running`, its liveness
    unknown (an older version's row); gone since the listing -> its run has just ended: as it is; cannot be
    checked -> `running`, its liveness unknown; held -> as it is."""
    state = _probe(root / RUN_LOCKS / f"{row['run_id']}.lock")
    if state is None:
        if row["run_id"] not in listed:
            row["metrics"] = {**(row.get("metrics") or {}), "liveness": NO_LOCK}
        return
    if state == "unknown":
        row["metrics"] = {**(row.get("metrics") or {}), "liveness": UNCHECKED}
        return
    if state == "held":
        return
    death = _death_of(root, row, settings)
    row.update(status=death.status, finished_at=death.finished_at, metrics=death.metrics)


def repair_dead_runs_safely(
    root: str | os.PathLike[str] | None, settings: Settings | None, say: Say, *, warn: Say = to_stderr
) -> None:
    """repair_dead_runs, whose failure never stops the run about to start (one warning line, through `warn`:
    stderr, also under --quiet)."""
    try:
        repair_dead_runs(root, settings, say=say)
    except Exception as exc:
        warn(f"warning: the rows of runs whose process died could not be repaired now: {exc}")


def repair_dead_runs(
    root: str | os.PathLike[str] | None, settings: Settings | None = None, *, say: Say | None = None
) -> list[RunRecord]:
    """Write the repair of every `running` row whose lock nobody holds (its process ended without
    recording its end): the row as `list_runs` shows it (`interrupted`, finished at its last sign of life,
    the `killed` note), its folder's status.json brought in line (a folder of this lake only: _run_folder),
    the row mirrored to Supabase once (when configured), and its lock file removed. Only the locks of
    `running` rows are probed, never one this process holds; runs with no lock file, or a lock that cannot
    be checked here, are left alone. Under the lake's writer lock; returns the repaired records."""
    root = resolve_lake_root(root)
    if all(_held_here(root / RUN_LOCKS / f"{n}.lock") for n in _lock_names(root)):
        return []  # no lock file but this process's own: nothing to read
    # the locks are probed before the rows are read again under the writer's lock: a run that ended cleanly
    # meanwhile (its last row written before its lock file goes) shows its last row there
    free = {
        row["run_id"]
        for row in _running_rows(root, settings)
        if _probe(root / RUN_LOCKS / f"{row['run_id']}.lock") == "free"
    }
    if not free:
        return []
    repaired: list[RunRecord] = []
    with LakeWriter.open(root) as w:
        for row in _running_rows(root, settings):
            if row["run_id"] not in free:
                continue
            death = _death_of(root, row, settings)
            record = RunRecord(
                run_id=row["run_id"],
                kind=row["kind"],
                started_at=row["started_at"],
                config=dict(row["config"] or {}),
                status=death.status,
                finished_at=death.finished_at,
                data_snapshot=row["data_snapshot"] or "",
                metrics=death.metrics,
                code_version=row["code_version"],
                run_dir=row["run_dir"],
                parent_run_id=row["parent_run_id"],
                data_files=row["data_files"],
            )
            w.write(
                RUNS, {"period": record.period}, pa.Table.from_pylist([record.to_row()], schema=RUNS.schema)
            )
            if death.folder is not None:
                path, state = death.folder
                with contextlib.suppress(OSError):  # the row is the record; the folder follows when it can
                    atomic_write_bytes(
                        path, (json.dumps(state, indent=2, default=str) + "\n").encode("utf-8")
                    )
            repaired.append(record)
    for record in repaired:
        from rl.mirror import mirror_run

        mirror_run(root, record, say=say or _quiet)
    for record in repaired:
        path = root / RUN_LOCKS / f"{record.run_id}.lock"
        if _probe(path) == "free":
            with contextlib.suppress(OSError):
                path.unlink()
    return repaired


def _running_rows(root: Path, settings: Settings | None) -> list[dict[str, Any]]:
    """The `running` rows of the lake, every column (config, metrics and data_files parsed)."""
    return _whole_rows(root, settings, "running_runs")


def stored_records(root: str | os.PathLike[str] | None, settings: Settings | None = None) -> list[RunRecord]:
    """Every run of the lake as stored (every column, no liveness read into it), oldest first: what
    `marketlake runs sync --all` sends."""
    return [record_of(r) for r in _whole_rows(resolve_lake_root(root), settings, "all_runs")]


def recorded_snapshot(
    root: str | os.PathLike[str] | None, run_id: str
) -> tuple[str, list[dict[str, Any]] | None] | None:
    """The data snapshot the `runs` row of training run `run_id` recorded: its hash and its files (None for
    a row written without them); None when the lake has no such row or it has no snapshot."""
    import lake

    lake_root = resolve_lake_root(root)
    query = _sql("train_snapshot")

    def read() -> tuple[Any, ...] | None:
        con = lake.connect(lake_root, read_only=True, settings=Settings(), views=views_needed([query]))
        try:
            return con.execute(query, {"run_id": validate_run_id(run_id)}).fetchone()
        finally:
            con.close()

    row = lake.consistent(lake_root, read)
    if row is None or not row[0]:
        return None
    return str(row[0]), json.loads(row[1]) if row[1] else None


def _whole_rows(root: Path, settings: Settings | None, name: str) -> list[dict[str, Any]]:
    """The rows of sql/runs/<name>.sql, every column (config, metrics and data_files parsed)."""
    import lake

    def read() -> list[tuple[Any, ...]]:
        # the runs view alone, which does not depend on the settings: the defaults (no config file read)
        query = _sql(name)
        con = lake.connect(root, read_only=True, settings=settings or Settings(), views=views_needed([query]))
        try:
            cur = con.execute(query)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]  # type: ignore[misc]
        finally:
            con.close()

    rows: list[dict[str, Any]] = lake.consistent(root, read)  # type: ignore[arg-type]
    for r in rows:
        for k in ("config", "metrics", "data_files"):
            r[k] = json.loads(r[k]) if r[k] else None
    return rows


# --- the record -----------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One training or evaluation run, as the `runs` dataset stores it."""

    run_id: str
    kind: str
    started_at: dt.datetime
    config: dict[str, Any]
    status: str = "running"
    finished_at: dt.datetime | None = None
    data_snapshot: str = ""
    metrics: dict[str, Any] | None = None
    code_version: str | None = None
    run_dir: str | None = None
    parent_run_id: str | None = None
    data_files: list[dict[str, Any]] | None = field(default=None, repr=False)
    lock: RunLock | None = field(default=None, repr=False, compare=False)
    """The run's liveness lock while this process runs it (start_run takes it, finish_run ends it)."""

    def check(self) -> None:
        validate_run_id(self.run_id)
        if self.kind not in KINDS:
            raise MarketlakeError(f"run {self.run_id}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.status not in STATUSES:
            raise MarketlakeError(
                f"run {self.run_id}: status {self.status!r} is not one of {', '.join(STATUSES)}"
            )
        if self.started_at.tzinfo is None:
            raise MarketlakeError(f"run {self.run_id}: started_at must be timezone-aware")

    @property
    def period(self) -> str:
        """The `period` partition of the row: the UTC month it started."""
        return self.started_at.astimezone(dt.UTC).strftime("%Y-%m")

    def to_row(self) -> dict[str, Any]:
        """The row as the lake stores it (JSON as text)."""
        self.check()
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "started_at": self.started_at.astimezone(dt.UTC),
            "finished_at": self.finished_at.astimezone(dt.UTC) if self.finished_at else None,
            "config": _json(self.config),
            "data_snapshot": self.data_snapshot,
            "metrics": _json(self.metrics) if self.metrics is not None else None,
            "status": self.status,
            "code_version": self.code_version,
            "run_dir": self.run_dir,
            "parent_run_id": self.parent_run_id,
            "data_files": _json(self.data_files) if self.data_files is not None else None,
        }

    def to_json(self) -> dict[str, Any]:
        """The row as JSON-ready data (timestamps ISO 8601, config and metrics as objects): what the
        Supabase mirror and the outbox hold."""
        row = self.to_row()
        return {
            **row,
            "started_at": row["started_at"].isoformat(),
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
            "config": json.loads(row["config"]),
            "metrics": json.loads(row["metrics"]) if row["metrics"] is not None else None,
            "data_files": json.loads(row["data_files"]) if row["data_files"] is not None else None,
        }


def write_run(root: str | os.PathLike[str], record: RunRecord) -> None:
    """Write (or overwrite, by run_id) the run's row in the lake, through the lake's writer."""
    table = pa.Table.from_pylist([record.to_row()], schema=RUNS.schema)
    with LakeWriter.open(root) as w:
        w.write(RUNS, {"period": record.period}, table)


def start_run(
    root: str | os.PathLike[str],
    kind: str,
    config: Mapping[str, Any],
    *,
    run_id: str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    parent_run_id: str | None = None,
    data_snapshot: str = "",
    started_at: dt.datetime | None = None,
    say: Say | None = None,
) -> RunRecord:
    """Record a run as `running` and return its record, holding its liveness lock (RunLock) until
    finish_run. The rows of runs found dead meanwhile are repaired first (`repair_dead_runs`)."""
    record = RunRecord(
        run_id=run_id or new_run_id(kind),
        kind=kind,
        started_at=started_at or dt.datetime.now(dt.UTC),
        config=json.loads(_json(dict(config))),
        data_snapshot=data_snapshot,
        code_version=code_version(),
        run_dir=str(run_dir) if run_dir is not None else None,
        parent_run_id=parent_run_id,
    )
    record.check()
    record.lock = RunLock.take(root, record.run_id, say)
    try:
        repair_dead_runs_safely(root, None, say or _quiet)
        write_run(root, record)
    except BaseException:
        record.lock.release(ended=False)
        record.lock = None
        raise
    return record


def finish_run(
    root: str | os.PathLike[str],
    record: RunRecord,
    status: str = "finished",
    *,
    say: Say | None = None,
    mirror: bool = True,
) -> RunRecord:
    """Record the run's end (its metrics and snapshot as set on `record`); mirror it to Supabase when
    configured (unreachable: kept in the outbox, one warning on stderr, also under --quiet). The run's liveness lock is
    released once the row is written (and also when writing it fails: the row then stays `running` with a
    lock nobody holds, which the next run repairs)."""
    record.status = status
    record.finished_at = dt.datetime.now(dt.UTC)
    if record.metrics is not None:
        record.metrics = json.loads(_json(record.metrics))
    lock, record.lock = record.lock, None
    try:
        write_run(root, record)
    except BaseException:
        if lock is not None:
            lock.release(ended=False)
        raise
    if lock is not None:
        lock.release(ended=True)
    if mirror:
        from rl.mirror import mirror_run

        mirror_run(root, record, say=say or _quiet)
    return record


def failure_reason(exc: BaseException) -> str:
    """A failed run's `error` (its metrics): the exception's type and message, as a training run's row has
    it, with what it happened while handling; redacted."""
    from lake.logs import redact

    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__context__
    if cause is not None and not isinstance(cause, KeyboardInterrupt):
        text += f" (while handling {type(cause).__name__}: {cause})"
    return redact(text)


@contextmanager
def recorded_run(
    root: str | os.PathLike[str],
    kind: str,
    config: Mapping[str, Any],
    *,
    run_id: str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    parent_run_id: str | None = None,
    say: Say | None = None,
) -> Iterator[RunRecord]:
    """A run recorded from start to end: `finished` when the block ends, `interrupted` on Ctrl-C,
    `failed` on any other exception (which is re-raised), its `error` in the metrics (failure_reason)."""
    record = start_run(
        root, kind, config, run_id=run_id, run_dir=run_dir, parent_run_id=parent_run_id, say=say
    )
    try:
        yield record
    except KeyboardInterrupt:
        finish_run(root, record, "interrupted", say=say)
        raise
    except BaseException as exc:
        metrics = record.metrics if isinstance(record.metrics, dict) else {}
        if not metrics.get("error"):  # why it failed, as a training run's row says it (`runs` shows it)
            record.metrics = {**metrics, "error": failure_reason(exc)}
        finish_run(root, record, "failed", say=say)
        raise
    from rl.mirror import mirror_run, queue_run

    queued: Path | None = None
    try:
        # a Ctrl-C now waits until the row says finished, in the lake and in the outbox (a second one does not)
        with deferred_interrupts():
            finish_run(root, record, "finished", say=say, mirror=False)
            queued = queue_run(root, record)
    except KeyboardInterrupt:
        if queued is not None:
            print(
                f"stopped: run {record.run_id} is recorded in the lake; not sent to Supabase, it waits in "
                f"the outbox {queued}: `marketlake runs sync` sends it",
                file=sys.stderr,
                flush=True,
            )
        raise
    # sent after the block (queued again: the same file): a Ctrl-C stops the sending, the row stays queued, said
    mirror_run(root, record, say=say or _quiet)


# --- listing --------------------------------------------------------------------------------------------

LIST_COLUMNS = (
    "run_id",
    "kind",
    "status",
    "started_at",
    "finished_at",
    "parent_run_id",
    "data_snapshot",
    "code_version",
    "run_dir",
    "config",
    "metrics",
)


def list_runs(
    root: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    *,
    kind: str | None = None,
    limit: int | None = None,
    liveness: bool = True,
) -> list[dict[str, Any]]:
    """Every run in the lake, newest first (config and metrics parsed), optionally of one kind. A `running`
    row whose process is gone (its lock is free) is shown as its repair will write it: `interrupted`, with
    the `killed` note in its metrics; one with no lock file, or whose lock cannot be checked here, gets a
    `liveness` note (`liveness=False`: the rows as stored)."""
    import lake

    lake_root = resolve_lake_root(root)
    settings = settings or load_settings()
    listed = _lock_names(lake_root) if liveness else set()  # before the rows: see _seen_alive

    def read() -> list[tuple[Any, ...]]:
        con = lake.connect(root, read_only=True, settings=settings)
        try:
            return con.execute(_sql("list_runs"), {"kind": kind, "limit": limit}).fetchall()
        finally:
            con.close()

    rows = lake.consistent(root, read)  # again if a run's record was replaced meanwhile
    out = []
    for r in rows:
        d = dict(zip(LIST_COLUMNS, r, strict=True))
        d["config"] = json.loads(d["config"]) if d["config"] else None
        d["metrics"] = json.loads(d["metrics"]) if d["metrics"] else None
        if liveness and d["status"] == "running":
            _seen_alive(lake_root, d, listed, settings)
        out.append(d)
    return out


def get_run(root: str | os.PathLike[str], run_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """One run by id (a clear error when the lake has none)."""
    validate_run_id(run_id)
    for r in list_runs(root, settings):
        if r["run_id"] == run_id:
            return r
    raise MarketlakeError(
        f"no run {run_id!r} in the lake at {resolve_lake_root(root)} (see `marketlake runs`)"
    )


def record_of(row: Mapping[str, Any]) -> RunRecord:
    """A RunRecord from a `list_runs` / `get_run` row, or a whole stored row (with its data_files)."""
    return RunRecord(
        run_id=row["run_id"],
        kind=row["kind"],
        started_at=row["started_at"],
        config=dict(row["config"] or {}),
        status=row["status"],
        finished_at=row["finished_at"],
        data_snapshot=row["data_snapshot"] or "",
        metrics=row["metrics"],
        code_version=row["code_version"],
        run_dir=row["run_dir"],
        parent_run_id=row["parent_run_id"],
        data_files=row.get("data_files"),
    )


ERROR_WIDTH = 80
"""The most characters of a run's error the table shows (`runs --format json` has it whole)."""


def _return_and_sharpe(m: Any) -> str:
    if not isinstance(m, dict):
        return ""
    parts = []
    v = m.get("total_return")
    if isinstance(v, int | float):
        parts.append(f"return {v:+.2%}")
    v = m.get("sharpe")
    if isinstance(v, int | float):
        few = m.get("too_few_to_annualise") is True  # marked as `evaluate` marks it (runs_note says why)
        parts.append(f"sharpe {v:+.3f}" + ("*" if few else ""))
    return ", ".join(parts)


def runs_note() -> str:
    """The legend of a Sharpe marked `*` in the listing's `result` (`evaluate` marks it the same way)."""
    from rl.metrics import TOO_FEW_NOTE

    return TOO_FEW_NOTE


def judged_mark(run: Mapping[str, Any], parent: Mapping[str, Any] | None = None) -> str:
    """A short mark on an evaluation that judged a checkpoint its training run may not stand by: one taken
    while the run had not finished (its metrics' `parent_status`: running, interrupted, failed), or one that
    is no longer the run's best (`parent`: the training run's row, whose best_iteration is then another
    than the `checkpoint` iteration judged). "" otherwise, and for an evaluation recorded before either was."""
    m = run.get("metrics")
    if run.get("kind") != "evaluate" or not isinstance(m, dict):
        return ""
    got = m.get("checkpoint")
    ckpt: dict[str, Any] = got if isinstance(got, dict) else {}
    at = ckpt.get("iteration")
    which = f"iteration {at}" if isinstance(at, int) else "its checkpoint"
    marks = []
    status = m.get("parent_status")
    if isinstance(status, str) and status != "finished":
        marks.append(f"judged {which} of a {status} run")
    pm = parent.get("metrics") if parent is not None else None
    best = pm.get("best_iteration") if isinstance(pm, dict) else None
    if isinstance(at, int) and isinstance(best, int) and best != at:
        marks.append(
            f"not the run's best (iteration {best})"
            if marks
            else f"judged {which}, not the run's best ({best})"
        )
    return "[" + "; ".join(marks) + "]" if marks else ""


def _edge_verdict(ci: dict[str, Any]) -> str:
    """The interval's verdict word (better, worse, borderline, not distinguishable: rl.metrics.SharpeDiffCI),
    as the row records it; a row from before the verdict was recorded (no band): read from the interval,
    better or worse when it excludes 0."""
    verdict = ci.get("verdict")
    if isinstance(verdict, str) and verdict:
        return verdict
    try:
        low, high = float(ci["low"]), float(ci["high"])
    except (KeyError, TypeError, ValueError):
        return ""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    return "better" if low > 0 else "worse" if high < 0 else "not distinguishable"


def _headline(run: Mapping[str, Any], parent: Mapping[str, Any] | None = None) -> str:
    """A short summary of a run's metrics (the listing's `result`). An evaluation: its period (marked when it
    is validation, which chose the model: not out of sample), the agent's return and Sharpe beside
    buy-and-hold's on the same bars, and the interval of the Sharpe edge with its verdict word (marked when its metrics are of
    version 1: docs/trading.md, "Which definition"). A training run: its best
    validation score. A run that failed (or was stopped before its folder): its error, shortened to
    ERROR_WIDTH characters."""
    m = run.get("metrics") or {}
    for key in ("killed", "liveness"):  # what the row's status alone does not say
        note = m.get(key) if isinstance(m, dict) else None
        if isinstance(note, str) and note:
            best = _best_of_training(m) if key == "killed" else ""  # a killed training's checkpoint stays
            return f"{key}: {_shortened(note)}" + (f"; {best}" if best else "")
    error = m.get("error") if isinstance(m, dict) else None
    if isinstance(error, str) and error:
        return f"error: {_shortened(error)}"
    if not isinstance(m, dict):
        return ""
    got = m.get("overall")
    overall: dict[str, Any] = got if isinstance(got, dict) else {}
    parts = []
    period = m.get("period")
    label = ""
    if isinstance(period, str) and period:
        label = f"{period} (not out of sample): " if period == "validation" else f"{period}: "
    agent = _return_and_sharpe(overall.get("agent"))
    if agent:
        parts.append(f"{label}agent {agent}")
    bh = _return_and_sharpe(overall.get("buy_and_hold"))
    if bh:
        parts.append(f"buy & hold {bh}")
    ci = m.get("sharpe_ci")
    if isinstance(ci, dict) and "low" in ci and "high" in ci:
        parts.append(f"edge CI [{ci['low']:+.2f}, {ci['high']:+.2f}] {_edge_verdict(ci)}".rstrip())
    if label and not agent:
        parts.insert(0, label.rstrip(": "))
    mark = judged_mark(run, parent)
    if mark:
        parts.insert(0, mark)
    if agent and "metrics_version" not in m:  # an evaluation's metrics before rl.metrics.METRICS_VERSION 2
        parts.append("metrics v1: log-return Sharpe, not comparable with later rows")
    best = _best_of_training(m)
    if best:
        parts.append(best)
    return "; ".join(parts)


def _best_of_training(m: Mapping[str, Any]) -> str:
    """A training run's best validation score and its iteration (its checkpoint), when it has one."""
    if not isinstance(m.get("best_score"), int | float):
        return ""
    at = m.get("best_iteration")
    of = f" of {m['iterations']}" if isinstance(m.get("iterations"), int) else ""
    return f"best validation score {m['best_score']:+.5f}" + (f" at iteration {at}{of}" if at else "")


def _shortened(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 1] + "…"


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return _json(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


ON_SYMBOLS = 3
"""How many of a run's symbols the listing's `on` column names (the rest are counted)."""


def run_on(run: Mapping[str, Any]) -> str:
    """What a run ran on, from its `config` (the listing's `on` column): its interval, its symbols (the first
    ON_SYMBOLS named, the rest counted) and its seed (a training run's PPO seed, an evaluation's bootstrap
    and random-policy seed), so that runs of different settings are told apart without opening their
    folders; empty for a row that recorded none (a run that failed before its settings were known)."""
    config = run.get("config")
    if not isinstance(config, Mapping):
        return ""
    parts = []
    interval = config.get("interval")
    if isinstance(interval, str) and interval:
        parts.append(interval)
    symbols = config.get("symbols")
    if isinstance(symbols, list) and symbols:
        named = " ".join(str(x) for x in symbols[:ON_SYMBOLS])
        parts.append(named + (f" +{len(symbols) - ON_SYMBOLS}" if len(symbols) > ON_SYMBOLS else ""))
    ppo = config.get("ppo")
    seed = ppo.get("seed") if isinstance(ppo, Mapping) else config.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        parts.append(f"seed {seed}")
    return ", ".join(parts)


def render_runs(
    runs: Sequence[Mapping[str, Any]],
    fmt: str = "table",
    *,
    parents: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The runs as a table (rich, for a terminal), CSV or JSON (a list of objects, every column): each with
    its `result` (`_headline`: for an evaluation its period, the agent's return and Sharpe beside
    buy-and-hold's, the Sharpe edge's interval), a column the lake's `runs` does not have (derived from
    `metrics`), last in CSV; an evaluation of a checkpoint its run may not stand by is marked (`judged_mark`,
    its parent's row found among `runs` and `parents`). A Sharpe from too few bars to annualise is marked `*`
    (its metrics' `too_few_to_annualise`), as `evaluate` marks it; the table says why below it."""
    by_id = {str(r["run_id"]): r for r in [*parents, *runs]}

    def result(r: Mapping[str, Any]) -> str:
        return _headline(r, by_id.get(str(r.get("parent_run_id"))) if r.get("parent_run_id") else None)

    if fmt == "json":
        listed = [{**r, "result": result(r)} for r in runs]
        return json.dumps(listed, default=_json_default, indent=1, sort_keys=False) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([*LIST_COLUMNS, "result"])
        for r in runs:
            w.writerow([*(_cell(r[c]) for c in LIST_COLUMNS), result(r)])
        return buf.getvalue()
    if fmt != "table":
        raise MarketlakeError(f"unknown format {fmt!r}: table, csv or json")
    from rich.console import Console
    from rich.table import Table

    t = Table(show_lines=False)
    for c in ("run_id", "kind", "status", "started_at", "took", "of run", "on", "data", "result"):
        t.add_column(c, no_wrap=c not in ("on", "result"))
    for r in runs:
        started, finished = r["started_at"], r["finished_at"]
        took = str(finished - started).split(".")[0] if started and finished else ""
        cells = (
            r["run_id"],
            r["kind"],
            r["status"],
            started.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if started else "",
            took,
            r["parent_run_id"] or "",
            run_on(r),
            (r["data_snapshot"] or "")[:12],
            result(r),  # an error naming "[train]" or "[splits]" is text, not rich markup
        )
        t.add_row(*map(plain, cells))
    buf = io.StringIO()
    console = Console(file=buf, width=200, no_color=True)
    console.print(t)
    if any(re.search(r"sharpe [+-][0-9.]+\*", result(r)) for r in runs):
        console.print(runs_note(), markup=False, highlight=False)
    return buf.getvalue()

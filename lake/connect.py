"""`lake.connect()`: a DuckDB connection with every view of the contract registered from sql/views."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar, cast

import duckdb
import pyarrow as pa

from lake import chosen
from lake.config import Settings, load_settings, settings_source
from lake.errors import MarketlakeError, duckdb_message
from lake.paths import LakePaths, no_lake, require_lake, resolve_lake_root
from lake.schemas import DATASETS
from lake.writer import DATA_FILE, read_writes, write_anchor

log = logging.getLogger("marketlake")

_VIEW_FILE = re.compile(r"^(\d{3})_([a-z_][a-z0-9_]*)\.sql$")


def sql_dir() -> Path:
    """sql/ sits beside the lake package, in the repository and in an installed wheel alike."""
    return Path(__file__).resolve().parent.parent / "sql"


def view_files() -> list[tuple[str, Path]]:
    """(view name, file) for every sql/views/NNN_name.sql, in load order."""
    out = []
    for p in sorted((sql_dir() / "views").iterdir()):
        m = _VIEW_FILE.match(p.name)
        if m:
            out.append((m.group(2), p))
    return out


_DEFINES = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:VIEW|MACRO|TABLE)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE
)
_COMMENT_OR_STRING = re.compile(r"--[^\n]*|'(?:[^']|'')*'")
_WORD = re.compile(r"[a-z_][a-z0-9_]*", re.IGNORECASE)


def _referenced(sql: str) -> set[str]:
    """The identifiers of `sql` outside its comments and string literals, lower-cased."""
    return {w.lower() for w in _WORD.findall(_COMMENT_OR_STRING.sub(" ", sql))}


def views_needed(statements: Iterable[str]) -> set[str]:
    """The view files (by view name) that the statements refer to, with every view file those refer to in
    turn: what a connection needs registered to run them. A file is referred to by the name of anything
    it creates (its view, or a macro beside it); comments and string literals refer to nothing."""
    files = [(name, path.read_text(encoding="utf-8")) for name, path in view_files()]
    by_defined = {d.lower(): name for name, text in files for d in _DEFINES.findall(text)}
    texts = dict(files)
    todo = [by_defined[w] for sql in statements for w in _referenced(sql) if w in by_defined]
    needed: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += [by_defined[w] for w in _referenced(texts[name]) if w in by_defined]
    return needed


def check_files() -> list[tuple[str, Path]]:
    return [(p.stem, p) for p in sorted((sql_dir() / "checks").glob("*.sql"))]


def _settings_table(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    values = settings.sql_settings()
    cols = ", ".join(f"?::{_sql_type(v)} AS {k}" for k, v in values.items())
    con.execute(f"CREATE OR REPLACE TABLE lake_settings AS SELECT {cols}", list(values.values()))


def _sql_type(value: object) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


_OWNER_LOCK = ".owner.lock"


def _locked_tmpdir(prefix: str) -> tuple[Path, int]:
    """A new private folder in $TMPDIR (mkdtemp) and an open descriptor holding an exclusive lock on its
    lock file for as long as it is open: the folder's owner is alive while the lock is held (the kernel
    drops it when the process dies, even by SIGKILL). Stale folders of `prefix` are swept first."""
    remove_stale_tmpdirs(prefix)
    d = Path(tempfile.mkdtemp(prefix=prefix))
    # locked under another name first, then renamed into place: a sweeper finds the lock file only once it
    # is held (opened before the flock, it would have looked like a dead owner's)
    pending = d / f"{_OWNER_LOCK}.{os.getpid()}"
    fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(pending, d / _OWNER_LOCK)
    return d, fd


def remove_stale_tmpdirs(prefix: str) -> list[Path]:
    """Remove the $TMPDIR folders named `prefix`* whose owner has died without removing them (killed,
    say): only this user's real folders holding a lock file that nobody holds any more. A live owner
    holds its lock, so its folder is never touched; a folder without a lock file (being made, or made by
    an older version) is left alone. Returns the folders removed."""
    removed: list[Path] = []
    base = Path(tempfile.gettempdir())
    try:
        names = [n for n in os.listdir(base) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        d = base / name
        try:
            st = d.lstat()
            if not d.is_dir() or d.is_symlink() or st.st_uid != os.getuid():
                continue
            fd = os.open(d / _OWNER_LOCK, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live owner holds it
            continue
        try:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        finally:
            os.close(fd)
    return removed


@contextmanager
def private_workdir(prefix: str) -> Iterator[Path]:
    """A private temporary folder for the duration of the block, removed after it; if the process is
    killed meanwhile, the next one to ask for a `prefix` folder removes it (`remove_stale_tmpdirs`)."""
    d, fd = _locked_tmpdir(prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        os.close(fd)


_PRIVATE_DIR: tuple[int, Path, int] | None = None  # (pid, folder, lock descriptor)
_SPILLS = itertools.count()


def _process_dir() -> Path:
    """This process's private folder (the confined connections' spill folders and the private empty
    lake live in it), made on first use and removed at exit; one per process (a forked child makes its
    own)."""
    global _PRIVATE_DIR
    if _PRIVATE_DIR is None or _PRIVATE_DIR[0] != os.getpid() or not _PRIVATE_DIR[1].exists():
        if _PRIVATE_DIR is not None and _PRIVATE_DIR[0] == os.getpid():  # removed under us (a tmp cleaner)
            atexit.unregister(_remove_process_dir)  # its exit handler would close the new lock's descriptor
            with contextlib.suppress(OSError):
                os.close(_PRIVATE_DIR[2])
        d, fd = _locked_tmpdir("marketlake-private-")
        _PRIVATE_DIR = (os.getpid(), d, fd)
        atexit.register(_remove_process_dir, os.getpid(), d, fd)
    return _PRIVATE_DIR[1]


def _remove_process_dir(pid: int, d: Path, fd: int) -> None:
    if os.getpid() != pid:  # a forked child exiting: the folder is its parent's
        return
    shutil.rmtree(d, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.close(fd)


_EMPTY_LAKE: Path | None = None


def _empty_lake() -> Path:
    """A private empty lake (schema anchors only), for reading a lake that has no files yet without
    writing to it."""
    global _EMPTY_LAKE
    if _EMPTY_LAKE is None or not _EMPTY_LAKE.exists():
        tmp = _process_dir() / "empty-lake"
        for dataset in DATASETS.values():
            write_anchor(LakePaths(tmp), dataset)
        _EMPTY_LAKE = tmp
    return _EMPTY_LAKE


def dataset_has_files(paths: LakePaths, name: str) -> bool:
    depth = len(DATASETS[name].partition_by)
    pattern = "/".join(["*"] * depth + [DATA_FILE])
    return any(paths.dataset(name).glob(pattern))


def register_views(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    settings: Settings,
    only: Collection[str] | None = None,
    *,
    mirror: bool = True,
) -> bool:
    """Create the settings table, the macro `lake_dataset` (sql/views/lake_dataset.sql: the lake's absolute
    dataset folders) and every view on `con` (or, given `only`, those views only, in the same order:
    `views_needed` says which a set of statements needs). The views read the folders the session variables
    dataset_<name> name, else `lake_dataset(name)`: no path is relative to the working folder, so a catalog
    file holding them (`write_catalog`) reads this lake wherever it is opened. `bars` reads the writer's
    mirror of the rows it keeps (sql/views/bars_chosen.sql, lake/chosen.py) while the mirror is whole, else
    its precedence window (sql/views/020_bars.sql); `mirror=False`: the window always (the feature store
    points dataset_bars at a batch's own files). Returns whether a dataset without files was pointed at the
    private empty lake (whose folder a confined connection must allow)."""
    con.execute("SET TimeZone = 'UTC'")
    # No cache of file contents across queries: the writer replaces a partition's file by a rename, and
    # DuckDB's external file cache decides by the file's version information (its modification time for a
    # local file) whether bytes it cached are still the file's; stale reads from it are a known DuckDB
    # problem. CI once saw a read, during writes, take a file's layout from a larger earlier version
    # ("Prefetch registered for bytes outside file"), not reproduced since: with the cache off, it cannot
    # be the cause. The OS page cache still holds the files.
    con.execute("SET enable_external_file_cache = false")
    used_empty = False
    paths = LakePaths(root)
    for name in DATASETS:
        if dataset_has_files(paths, name):
            base = paths
        else:
            base, used_empty = LakePaths(_empty_lake()), True
        con.execute(f"SET VARIABLE dataset_{name} = ?", [str(base.dataset(name))])
    # DuckDB takes no parameter in a macro's body: the folder is written as DuckDB renders a constant (a
    # string literal, its quotes doubled), not formatted by hand
    datasets = str(duckdb.ConstantExpression(str(paths.datasets)))
    # the one placeholder, in the macro's body only (never in a comment: a newline in the path would end
    # the comment and run the rest as SQL); inside the literal, a newline is data
    text = (sql_dir() / "views" / "lake_dataset.sql").read_text(encoding="utf-8")
    assert text.count("{datasets_folder}") == 1, "lake_dataset.sql: one {datasets_folder}, in the macro"
    con.execute(text.replace("{datasets_folder}", datasets))
    _settings_table(con, settings)
    for name, path in view_files():
        if only is not None and name not in only:
            continue
        try:
            con.execute(path.read_text(encoding="utf-8"))
        except duckdb.Error as exc:
            raise MarketlakeError(f"view {name} ({path.name}) failed to register: {exc}") from exc
    if mirror and (only is None or "bars" in only) and chosen.is_current(paths):
        con.execute("SET VARIABLE dataset_bars_chosen = ?", [str(chosen.mirror_dir(paths))])
        con.execute((sql_dir() / "views" / "bars_chosen.sql").read_text(encoding="utf-8"))
    return used_empty


# What a query may be: read statements only. Anything else (COPY, EXPORT, ATTACH, INSERT, CREATE, SET, LOAD,
# CALL, ...) could write a file or change what later statements see.
_QUERY_TYPES = {duckdb.StatementType.SELECT}
_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\s+", re.IGNORECASE)


def query_only(sql: str) -> None:
    """Raise MarketlakeError unless every statement of `sql` only reads (SELECT, FROM, WITH, DESCRIBE,
    SHOW, SUMMARIZE, PRAGMA of a table function, EXPLAIN of one of these)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise MarketlakeError(f"the query does not parse: {duckdb_message(exc)}") from exc
    for st in statements:
        kind = st.type
        if kind == duckdb.StatementType.EXPLAIN:
            inner = _EXPLAIN.sub("", st.query, count=1)
            try:
                kinds = {s.type for s in duckdb.extract_statements(inner)}
            except duckdb.Error:
                kinds = {kind}
            if kinds <= _QUERY_TYPES:
                continue
            kind = next(iter(kinds - _QUERY_TYPES))
        if kind not in _QUERY_TYPES:
            raise MarketlakeError(
                f"refused: a {kind.name} statement; `marketlake sql` runs queries only (SELECT, FROM, WITH, "
                "DESCRIBE, SUMMARIZE, EXPLAIN); the lake changes only through `marketlake ingest`"
            )


def _spill_dir() -> Path:
    """A connection's own spill folder, inside the process's private folder: not made here (DuckDB makes it
    when it first spills and removes it, as a folder it made, when its database closes: when the connection
    and every cursor of it are closed or dropped, not before); what is left goes with the process's folder
    at exit."""
    return _process_dir() / f"spill-{next(_SPILLS)}"


def _dir_forms(path: Path) -> set[str]:
    """A folder as given and with its symbolic links resolved, each ending in a separator (so that
    /x/lake does not also allow /x/lake2)."""
    return {str(p).rstrip(os.sep) + os.sep for p in (path.absolute(), path.resolve())}


def confine(con: duckdb.DuckDBPyConnection, folders: Iterable[Path], *, lock: bool = False) -> None:
    """Confine the connection's file access to `folders` (and a private spill folder), with DuckDB's own
    settings: once external access is off it cannot be turned back on, nor the folders widened. With
    `lock`, every other setting is frozen too (lock_configuration)."""
    spill = _spill_dir()
    allowed = sorted(set().union(*(_dir_forms(Path(f)) for f in [*folders, spill])))
    con.execute("SET temp_directory = $dir", {"dir": str(spill)})
    con.execute("SET allowed_directories = $dirs", {"dirs": allowed})
    con.execute("SET enable_external_access = false")
    if lock:
        con.execute("SET lock_configuration = true")


_SAID_SETTINGS: set[tuple[str, str]] = set()


def say_settings(settings: Settings, who: str = "lake.connect: the views use") -> None:
    """One line on stderr, once per settings file in a process (per `who`), naming the settings a
    connection's views (or, `who` saying so, the trading environment) use when it read them itself (the
    working folder's marketlake.toml, $MARKETLAKE_CONFIG or the built-in defaults): `bar_quality`,
    eligibility, `features` and `splits` follow them, so the same lake can answer differently from another
    folder."""
    source = settings_source(settings)
    if (who, source) in _SAID_SETTINGS:
        return
    _SAID_SETTINGS.add((who, source))
    print(
        f"{who} settings from {source} (another file: "
        "MARKETLAKE_CONFIG=FILE, or settings=lake.config.load_settings(FILE))",
        file=sys.stderr,
    )


def connect(
    path: str | os.PathLike[str] | None = None,
    read_only: bool = False,
    *,
    settings: Settings | None = None,
    views: Collection[str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection on the lake at `path` (or LAKE_ROOT, or ./data/lake) with every view ready.

    The connection is in memory: views read the lake's Parquet files at query time, so many
    notebooks, shells and an ingest can use one lake at once. With `read_only=False` a new lake's
    folders are created; with `read_only=True` nothing is written (a lake on a read-only folder works)
    and the connection reads and writes no file outside the lake: DuckDB's external access is off, with
    only the lake's folder allowed (read_csv('/etc/passwd'), ATTACH or COPY elsewhere are refused).
    With `read_only=True` the path must hold a lake (a datasets/ folder, `lake.paths.no_lake`): a
    missing or wrong path is a MarketlakeError naming it, never an empty lake. Every view exists, typed,
    even on an empty or brand-new lake. Given `views` (view names, e.g. from
    `views_needed`), only those are registered: binding the views costs most of a connection's set-up.
    Without `settings`, the views use lake.config.load_settings() ($MARKETLAKE_CONFIG, else the working
    folder's marketlake.toml, else the defaults): a line on stderr names which, once per file. A writable
    connection that makes a new lake logs a warning naming its folder.
    """
    root = resolve_lake_root(path)
    paths = LakePaths(root)
    if read_only:
        require_lake(
            root,
            "a read-only connection never creates one; name the lake's folder (or set LAKE_ROOT), or make "
            "a lake there with `marketlake ingest` or lake.connect(path) without read_only",
        )
    else:
        new_lake = no_lake(root) is not None
        try:
            for dataset in DATASETS.values():
                write_anchor(paths, dataset)
        except OSError as exc:
            raise MarketlakeError(
                f"cannot create the lake at {root}: {exc.strerror or exc} (use read_only=True to read only)"
            ) from exc
        if new_lake:
            log.warning(
                "lake.connect: no lake was at %s, so a new, empty one was made there; to read a lake, "
                "connect with read_only=True (it refuses a path with no lake)",
                root,
            )
    if settings is None:
        settings = load_settings()
        say_settings(settings)
    con = duckdb.connect(":memory:")
    try:
        used_empty = register_views(con, root, settings, views)
        if read_only:
            # the private empty lake is made (a few files written) only when a dataset needs it
            confine(con, [root, _empty_lake()] if used_empty else [root])
    except BaseException:
        con.close()
        raise
    return con


def write_catalog(root: Path, settings: Settings, target: Path) -> Path:
    """Write a DuckDB catalog file holding the views, for the DuckDB shell (and any DuckDB client).

    The views reach the lake's files by its absolute folder (the macro `lake_dataset`, stored in the file
    with them; the session variables `register_views` sets are not stored): the catalog reads this lake
    from any working folder, and a moved lake needs its catalog written again (`marketlake shell` writes it
    each time). It also keeps `settings` (the lake_settings table) as they were when it was written.
    """
    tmp = target.with_name(target.name + ".tmp-" + str(os.getpid()))
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        register_views(con, root, settings)
    finally:
        con.close()
    os.replace(tmp, target)
    return target


T = TypeVar("T")


def _writer_busy(root: Path) -> bool:
    """Whether a writer holds the lake's lock now (a shared lock is refused while it does)."""
    try:
        fd = os.open(LakePaths(root).lock_file, os.O_RDONLY)
    except OSError:
        return False  # no lock file (never written), or not ours to read: nobody to wait for
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # (closing releases the shared lock)
    return False


_FETCH = (
    "fetch inside the function, e.g. lake.consistent(root, lambda: con.sql(q).df()) (or .fetchall(), .pl(), "
    ".arrow())"
)


def _refuse_lazy(out: object) -> None:
    """A TypeError when `out` would read the lake only later, after the guard: a result that is not fetched."""
    kind = type(out)
    if isinstance(out, duckdb.DuckDBPyRelation):
        what = "an unexecuted DuckDB relation, which would run later"
    elif isinstance(out, duckdb.DuckDBPyConnection):
        what = "a DuckDB connection (con.execute(q) without a fetch), whose rows would be fetched later"
    elif kind.__name__ == "LazyFrame" and kind.__module__.startswith("polars"):
        what = "a polars LazyFrame, which would read when collected"
        raise TypeError(
            f"lake.consistent: the function returned {what}, outside the guard; collect inside the function "
            "(lambda: con.sql(q).pl(lazy=True).collect()), or fetch eagerly (lambda: con.sql(q).pl())"
        )
    elif isinstance(out, types.GeneratorType):
        what = "a generator, which would run later"
    else:
        return
    raise TypeError(f"lake.consistent: the function returned {what}, outside the guard; {_FETCH}")


def consistent(
    root: str | os.PathLike[str] | None,
    query: Callable[[], T],
    *,
    attempts: int = 100,
    wait_seconds: float = 600.0,
) -> T:
    """`query()` (a read of the lake through DuckDB), run again until no writer replaced a file of the lake
    while it ran. DuckDB opens a Parquet file twice in one scan (its footer, then its pages), so a read that
    overlaps a replacement can see neither version whole: an error, or rows that never were. The lake's
    write sequence (lake.writer.WRITES_FILE, a seqlock) is read before and after: while it is odd a writer is
    renaming files in (waited for, up to `wait_seconds`, as long as a writer would wait for the lake's lock),
    and a read is kept only when the sequence did not move; a read that overlapped a replacement is run
    again, at most `attempts` times. An error raised while a write overlapped is taken as that overlap's
    and the read runs again; any other is raised. A read is run again whole: `query` must have no effect
    but its result (what it says may be said twice). `query` must fetch its rows (`.df()`, `.fetchall()`, ...):
    what would read the lake later, outside the guard, is refused with a TypeError (an unexecuted
    DuckDBPyRelation, the connection `con.execute(q)` returns, a polars LazyFrame, a generator), except a
    pyarrow RecordBatchReader (what `.arrow()` gives in DuckDB 1.5.6), which is read whole inside the guard
    and returned as a pyarrow Table. `root` must hold a lake (`lake.paths.no_lake`): a path with none (a
    mistyped one, or a relative one from another working folder) is a MarketlakeError naming it, before
    `query` runs."""
    lake_root = require_lake(
        resolve_lake_root(root),
        "lake.consistent watches the lake's write sequence there, so it needs the folder of the lake the "
        "query reads (a relative path is taken from the working folder)",
    )
    deadline = time.monotonic() + wait_seconds
    overlapped, waits = 0, 0
    last: Exception | None = None
    while True:
        before = read_writes(lake_root)
        if before is not None and before % 2 and _writer_busy(lake_root):
            if time.monotonic() > deadline:
                break
            waits += 1
            time.sleep(min(0.001 * 2 ** min(waits, 6), 0.05))  # renames take microseconds to milliseconds
            continue
        try:
            out = query()
            if isinstance(out, pa.RecordBatchReader):  # rows not read yet: read them inside the guard
                out = cast(T, out.read_all())  # (pyarrow is untyped: a reader and a table are both Any)
        except Exception as exc:
            if read_writes(lake_root) == before:
                raise
            last = exc  # a write overlapped: the error is taken as its doing
        else:
            _refuse_lazy(out)
            if read_writes(lake_root) == before:
                return out
        overlapped += 1
        if overlapped >= attempts or time.monotonic() > deadline:
            break
    if not overlapped:
        raise MarketlakeError(
            f"the lake at {lake_root}: a writer was replacing files for all the {wait_seconds:g} s this read "
            "waited; try again when it is done"
        )
    raise MarketlakeError(
        f"the lake at {lake_root} kept changing while it was read ({overlapped} reads overlapped a write): a "
        "writer is busy; try again when it is done"
        + (f" (the last read failed with: {duckdb_message(last)})" if last is not None else "")
    ) from last

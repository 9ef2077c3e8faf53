"""Errors the lake raises. Each one carries a message that names the piece and the reason."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import FrameType

REPAIR = (
    "`marketlake verify` names every damaged file; re-run the ingest that wrote it (same symbols and days) "
    "to rebuild it from the raw cache"
)
"""How a damaged lake file is repaired: said wherever one is found."""

STORE_REPAIR = (
    "a damaged file of the feature store (datasets/features/, derived from the other datasets) is rebuilt by "
    "`marketlake features refresh` (with `--force --symbols SYMBOL` if `marketlake verify` still names it: a "
    "file changed without changing its size)"
)
"""How a damaged file of the feature store is repaired: the store is derived, no ingest wrote it."""


def repair_advice(damaged: Iterable[str]) -> str:
    """How to repair the damaged files named (as `lake.writer.verify` names them): the ingest that wrote
    a file of the lake's own datasets, `marketlake features refresh` for the feature store's (after the
    others, since the store is computed from them)."""
    marker = f"{os.sep}datasets{os.sep}features{os.sep}"
    damaged = list(damaged)
    store = [p for p in damaged if marker in p]
    if store and len(store) == len(damaged):
        return STORE_REPAIR
    return f"{REPAIR}; then {STORE_REPAIR}" if store else REPAIR


def is_interrupt(exc: BaseException) -> bool:
    """A Ctrl-C, however it surfaced: KeyboardInterrupt, or DuckDB's own (a SIGINT during a query or a fetch
    raises a RuntimeError "Query interrupted"; an interrupted connection duckdb.InterruptException). Only
    DuckDB's exact text: another RuntimeError merely naming a path with "interrupted" in it is an error."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    import duckdb

    if isinstance(exc, duckdb.InterruptException):
        return True
    return isinstance(exc, RuntimeError) and str(exc) == "Query interrupted"


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a `kill`, `timeout`, `docker stop`, a closed terminal), raised in the main thread
    by the command line's handler (`terminate_on_signals`): the work stops as on Ctrl-C (a run is recorded
    `interrupted`, its best checkpoint kept) and the process exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_stopped_by: list[int] = []
"""The SIGTERM/SIGHUP numbers terminate_on_signals' handler has raised Terminated for."""


def stop_signal(exc: BaseException) -> int | None:
    """The signal an interrupt came from: Terminated's, or, for DuckDB's own interrupt (a signal handler's
    exception raised inside a query becomes DuckDB's "Query interrupted"), SIGTERM/SIGHUP when the handler
    raised for one; None for a Ctrl-C or anything else."""
    if isinstance(exc, Terminated):
        return exc.signum
    if is_interrupt(exc) and not isinstance(exc, KeyboardInterrupt) and _stopped_by:
        return _stopped_by[-1]
    return None


def terminate_on_signals() -> None:
    """SIGTERM and SIGHUP raise Terminated in the main thread (the command line calls this once), instead
    of killing the process where it stands: a training run is then recorded as ended, not left `running`."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        _stopped_by.append(signum)  # DuckDB turns the exception into its own interrupt: remembered here
        raise Terminated(signum)

    for s in STOP_SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:  # nohup's SIGHUP stays ignored
            signal.signal(s, stop)


@contextmanager
def deferred_interrupts(
    notice: str = "held until the run is recorded (again to stop now, without recording it)",
) -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM, SIGHUP) while the block runs, then act on it: for the writes that record a
    run, so that a Ctrl-C pressed as training ends (to skip the evaluation) does not lose the run's row. The
    first signal is held and `notice` printed on stderr (the block may wait for the lake's writer lock); a
    second one stops at once. Outside the main thread (where signals are not delivered) the block just
    runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[signal.Signals] = []
    signals = (signal.SIGINT, *STOP_SIGNALS)
    before = {s: signal.getsignal(s) for s in signals}

    def hold(signum: int, _frame: FrameType | None) -> None:
        if held:  # a second signal: stop now, as asked
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            _stopped_by.append(signum)
            raise Terminated(signum)
        held.append(signal.Signals(signum))
        sys.stderr.write(f"{signal.Signals(signum).name}: {notice}\n")
        sys.stderr.flush()

    for s in signals:
        if before[s] is not signal.SIG_IGN:
            signal.signal(s, hold)
    try:
        yield
    finally:
        for s in signals:
            signal.signal(s, before[s])
    if held:
        signum = held[0]
        previous = before[signum]
        if callable(previous):
            previous(signum, None)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            os.kill(os.getpid(), signum)  # its default action, now that the run is recorded


class MarketlakeError(Exception):
    """A failure the user can act on; the CLI prints it on one line and exits non-zero."""

    exit_code = 1


class NotBuiltYet(MarketlakeError):
    """A command of the contract whose capability does not exist yet."""

    exit_code = 3


class InvalidName(MarketlakeError, ValueError):
    """A symbol or partition value that cannot safely become a path."""


class SchemaMismatch(MarketlakeError, ValueError):
    """A table handed to a writer does not match its dataset's Arrow schema."""


class LakeLocked(MarketlakeError):
    """Another process holds the lake's writer lock (for the whole wait). Every command exits 75 on it
    (sysexits' EX_TEMPFAIL: try again later), so that a cron job tells it from a failure."""

    exit_code = 75


class ConfigError(MarketlakeError, ValueError):
    """A malformed marketlake.toml or .env: the message names the file, key and line."""


def duckdb_message(exc: BaseException) -> str:
    """A DuckDB error as one line: its first line with the hints DuckDB adds below it (`Did you mean
    "news"?`, `Candidate bindings: "close", ...`), without the quoted query and caret (`LINE 1: ...`) that
    need several lines to point."""
    kept: list[str] = []
    for line in str(exc).splitlines():
        if line.startswith("LINE ") or (kept and not line.strip()):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept) or type(exc).__name__

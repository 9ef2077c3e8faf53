"""Errors the lake raises. Each one carries a message that names the piece and the reason."""

from __future__ import annotations

REPAIR = (
    "`marketlake verify` names every damaged file; re-run the ingest that wrote it (same symbols and days) "
    "to rebuild it from the raw cache"
)
"""How a damaged lake file is repaired: said wherever one is found."""


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
    """Another process holds the lake's writer lock."""


class ConfigError(MarketlakeError, ValueError):
    """A malformed marketlake.toml or .env: the message names the file, key and line."""

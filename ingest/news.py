"""News: the latest Yahoo items per symbol, and headline archives from a file; VADER sentiment."""

from __future__ import annotations

from pathlib import Path

from ingest.common import IngestSummary, RunContext
from lake.errors import NotBuiltYet


def run(ctx: RunContext, symbols: list[str]) -> IngestSummary:
    raise NotBuiltYet("ingest news: not built yet")


def run_file(ctx: RunContext, path: Path, assume_time: str | None, tz: str | None) -> IngestSummary:
    raise NotBuiltYet("ingest news-file: not built yet")

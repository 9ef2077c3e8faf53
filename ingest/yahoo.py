"""Yahoo Finance prices through yfinance: a backup and gap-filler, never an overwrite."""

from __future__ import annotations

import datetime as dt

from ingest.common import IngestSummary, RunContext
from lake.errors import NotBuiltYet


def run(ctx: RunContext, symbols: list[str], interval: str, start: dt.date, end: dt.date) -> IngestSummary:
    raise NotBuiltYet("ingest yahoo: not built yet")

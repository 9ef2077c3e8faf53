"""Binance Data Vision spot klines (issue: verified, resumable, async ingest)."""

from __future__ import annotations

import datetime as dt

from ingest.common import IngestSummary, RunContext
from lake.errors import NotBuiltYet


def run(ctx: RunContext, symbols: list[str], interval: str, start: dt.date, end: dt.date) -> IngestSummary:
    raise NotBuiltYet("ingest binance: not built yet")

"""Polygon.io flat files over the S3-compatible endpoint."""

from __future__ import annotations

import datetime as dt

from ingest.common import IngestSummary, RunContext
from lake.errors import NotBuiltYet


def run(ctx: RunContext, tickers: list[str], interval: str, start: dt.date, end: dt.date) -> IngestSummary:
    raise NotBuiltYet("ingest polygon: not built yet")
